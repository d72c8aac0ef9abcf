// onTimeout: congratulate a user on their first project (outbox, with from, replyTo and tags), or,
// when none comes within 5 minutes, nudge them with a template stored in Resend.
import { defineLoop } from '@skene/sdk';

export default defineLoop({
  name: 'first_project_nudge',
  type: 'activation',
  opinion: 'Congratulate users on their first project; nudge the ones who have none after 5 minutes',
  steps: [{
    trigger: { type: 'database', table: 'users', event: 'insert' },
    condition: { type: 'query', query: 'SELECT id, name FROM projects WHERE user_id = $1 LIMIT 1', timeout: '5m' },
    action: {
      type: 'email',
      provider: 'outbox',
      template: 'congrats',
      from: 'Acme <team@acme.example>',
      replyTo: 'support@acme.example',
      personalization: { project: '{{match.name}}' },
      tags: { loop: 'nudge', step: 'congrats' },
    },
    onTimeout: {
      type: 'email',
      provider: 'resend',
      template: 'resend:nudge-v2',
      personalization: { name: "{{user.name | default: 'there'}}", url: 'https://app.example/new' },
      tags: { loop: 'nudge' },
    },
  }],
  recovery: { retries: 2, backoff: 'fixed', delay: '30s', jitter: false },
});
