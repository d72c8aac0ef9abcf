import { defineLoop } from '@skene/sdk';

const key = 'subject';

export default defineLoop({
  type: 'activation',
  steps: [{
    trigger: { type: 'database', table: 'users', event: 'insert' },
    action: { type: 'email', template: 'welcome', [key]: 'Welcome' },
  }],
});
