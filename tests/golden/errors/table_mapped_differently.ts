import { defineLoop } from '@skene/sdk';

export default [
  defineLoop({
    type: 'activation',
    tables: { users: { key: 'user:{id}', format: 'json' } },
    steps: [{ trigger: { type: 'database', table: 'users', event: 'insert' },
              action: { type: 'email', template: 'welcome', subject: 'Welcome' } }],
  }),
  defineLoop({
    type: 'retention',
    tables: { users: { key: 'user:{id}', format: 'hash' } },
    steps: [{ trigger: { type: 'database', table: 'users', event: 'update' },
              action: { type: 'webhook', url: 'https://hooks.example.com/user-updated' } }],
  }),
];
