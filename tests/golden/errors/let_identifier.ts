import { defineLoop } from '@skene/sdk';

let subject = 'Welcome';

export default defineLoop({
  type: 'activation',
  steps: [{
    trigger: { type: 'database', table: 'users', event: 'insert' },
    action: { type: 'email', template: 'welcome', subject },
  }],
});
