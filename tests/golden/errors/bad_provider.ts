import { defineLoop } from '@skene/sdk';

export default defineLoop({
  type: 'activation',
  steps: [{
    trigger: { type: 'database', table: 'users', event: 'insert' },
    action: { type: 'email', provider: 'sendgrid', template: 'welcome', subject: 'Welcome' },
  }],
});
