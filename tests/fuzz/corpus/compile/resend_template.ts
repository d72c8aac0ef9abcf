import { defineLoop } from '@skene/sdk';

export default defineLoop({
  type: 'activation',
  steps: [{
    trigger: { type: 'database', table: 'users', event: 'insert' },
    action: { type: 'email', template: 'resend:welcome-v2', subject: 'Hi {{user.name}}',
      personalization: { name: '{{user.name}}' } },
  }],
});
