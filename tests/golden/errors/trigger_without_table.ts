import { defineLoop } from '@skene/sdk';

export default defineLoop({
  type: 'activation',
  steps: [{
    trigger: { type: 'database', event: 'insert' },
    action: { type: 'email', template: 'welcome', subject: 'Welcome' },
  }],
});
