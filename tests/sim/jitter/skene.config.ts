// Jitter on: retry delays are drawn from the scenario's seed ("equal jitter": half the backoff plus a
// seeded random part up to the other half). Same seed, same delays; another seed, others.
import { defineLoop } from '@skene/sdk';

export default defineLoop({
  name: 'jittered',
  type: 'activation',
  opinion: 'Welcome every user, retrying with jitter',
  steps: [{
    trigger: { type: 'database', table: 'users', event: 'insert' },
    action: { type: 'email', provider: 'resend', template: 'hello' },
  }],
  recovery: { retries: 3, backoff: 'exponential', delay: '1s', jitter: true },
});
