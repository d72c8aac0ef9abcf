import { defineLoop } from '@skene/sdk';

export default defineLoop({
  type: 'activaton',
  steps: [{
    trigger: { type: 'database', table: 'users', event: 'insert' },
    action: { type: 'email', template: 'welcome', subject: 'Welcome' },
  }],
});
