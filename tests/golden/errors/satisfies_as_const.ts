import { defineLoop } from '@skene/sdk';
import type { Recovery } from '@skene/sdk';

const recovery = { retries: 3, backoff: 'exponentail' } as const satisfies Recovery;

export default defineLoop({
  type: 'activation',
  steps: [{
    trigger: { type: 'database', table: 'users', event: 'insert' } as const,
    action: { type: 'email', template: 'welcome', subject: 'Welcome' } satisfies object,
  }],
  recovery,
});
