import { defineLoop } from '@skene/sdk';

export default defineLoop({
  type: 'activation',
  tables: {
    users: { key: 'user:{id}', format: 'json', feed: 'keyspace' },
    sessions: { feed: 'scan' },
  },
  steps: [{
    trigger: { type: 'database', table: 'users', event: 'insert' },
    action: { type: 'email', template: 'welcome', subject: 'Welcome', from: 'Acme' },
  }],
});
