import { defineLoop } from '@skene/sdk';

export default defineLoop({
  type: 'activation',
  steps: [{
    trigger: { type: 'database', table: 'users', event: 'insert' },
    wait: '5m',
    action: { type: 'email', template: 'welcome', subject: 'Welcome' },
  }],
});
