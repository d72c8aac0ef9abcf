import { defineLoop } from '@skene/sdk';

const production = true;

export default defineLoop({
  type: 'activation',
  steps: [{
    trigger: { type: 'database', table: 'users', event: 'insert' },
    delay: production ? '1h' : '10s',
    action: { type: 'email', template: 'welcome', subject: 'Welcome' },
  }],
});
