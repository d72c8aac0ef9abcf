import { defineLoop } from '@skene/sdk';

export default defineLoop({
  type: 'activation',
  tables: {
    users: { key: 'user:{id}', fromat: 'json', feed: 'keyspace' },
  },
  steps: [{
    trigger: { type: 'database', table: 'users', event: 'insert' },
    action: { type: 'email', template: 'welcome', subject: 'Welcome' },
  }],
});
