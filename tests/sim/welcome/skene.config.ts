// The activation loop of the issue, with a deterministic recovery policy (no jitter): wait up to 5
// minutes for the user's first project, then a welcome email. The name has a default, the link none.
import { defineLoop } from '@skene/sdk';

export default defineLoop({
  name: 'welcome',
  type: 'activation',
  opinion: 'Welcome users by email once they have created their first project',
  steps: [{
    trigger: { type: 'database', table: 'users', event: 'insert' },
    condition: {
      type: 'query',
      query: "SELECT * FROM user_actions WHERE user_id = $1 AND action_type = 'first_project_created'",
      timeout: '5m',
    },
    action: {
      type: 'email',
      provider: 'resend',
      template: 'welcome',
      personalization: { name: "{{user.name | default: 'there'}}", link: '{{user.activation_link}}' },
    },
  }],
  recovery: { retries: 3, backoff: 'exponential', delay: '1s', jitter: false },
});
