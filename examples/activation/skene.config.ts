import { defineLoop } from '@skene/sdk';
export default defineLoop({
  type: 'activation',
  opinion: 'Detect when users complete their first key action and trigger personalized onboarding',
  steps: [{
    trigger: { type: 'database', table: 'users', event: 'insert' },
    condition: { type: 'query', timeout: '5m',
      query: `SELECT * FROM user_actions WHERE user_id = $1 AND action_type = 'first_project_created'` },
    action: { type: 'email', provider: 'resend', template: 'activation_welcome',
      personalization: { name: '{{user.name}}', activationLink: '{{user.activation_link}}' } },
  }],
  recovery: { retries: 3, backoff: 'exponential' },
});
