// A three-step sequence: a welcome email at sign-up; a day later, tips if the user has a project
// (checked once: no project skips the tips); two days after that, a webhook to the CRM.
import { defineLoop } from '@skene/sdk';

export default defineLoop({
  name: 'onboarding',
  type: 'activation',
  opinion: 'Welcome, then tips for users with a project, then tell the CRM',
  steps: [
    {
      trigger: { type: 'database', table: 'users', event: 'insert' },
      action: { type: 'email', provider: 'resend', template: 'day0', personalization: { name: "{{user.name | default: 'there'}}" } },
    },
    {
      delay: '1d',
      condition: { type: 'query', query: 'SELECT id, name FROM projects WHERE user_id = $1' },
      action: { type: 'email', provider: 'resend', template: 'tips', personalization: { project: '{{match.name}}' } },
    },
    {
      delay: '2d',
      action: { type: 'webhook', url: 'https://crm.example/hooks/day3', body: { user: '{{user.id}}' } },
    },
  ],
  recovery: { retries: 3, backoff: 'exponential', delay: '1s', jitter: false },
});
