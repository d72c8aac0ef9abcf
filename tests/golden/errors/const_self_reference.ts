import { defineLoop } from '@skene/sdk';

const action = { type: 'email', template: 'welcome', subject: 'Welcome', next: action };

export default defineLoop({
  type: 'activation',
  steps: [{
    trigger: { type: 'database', table: 'users', event: 'insert' },
    action,
  }],
});
