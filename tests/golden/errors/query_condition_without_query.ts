import { defineLoop } from '@skene/sdk';

export default defineLoop({
  type: 'activation',
  steps: [{
    trigger: { type: 'database', table: 'users', event: 'insert' },
    condition: { type: 'query', timeout: '1d' },
    action: { type: 'email', template: 'welcome', subject: 'Welcome' },
  }],
});
