import { defineLoop } from '@skene/sdk';

export default defineLoop({
  type: 'activation',
  tables: {
    users: { key: 'user:{id}', format: 'string' },
  },
  steps: [{
    trigger: { type: 'database', table: 'users', event: 'insert' },
    action: { type: 'email', template: 'welcome', subject: 'Welcome' },
  }],
});
