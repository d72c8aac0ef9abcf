import { defineLoop } from '@skene/sdk';

const product = 'Acme';

export default defineLoop({
  type: 'activation',
  steps: [{
    trigger: { type: 'database', table: 'users', event: 'insert' },
    action: { type: 'email', template: 'welcome', subject: `Welcome to ${product}, {{user.name}}` },
  }],
});
