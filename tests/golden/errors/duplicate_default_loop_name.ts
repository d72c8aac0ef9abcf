import { defineLoop } from '@skene/sdk';

// Neither loop has a name, so both are named after their type: 'activation'.
export default [
  defineLoop({
    type: 'activation',
    steps: [{ trigger: { type: 'database', table: 'users', event: 'insert' },
              action: { type: 'email', template: 'welcome', subject: 'Welcome' } }],
  }),
  defineLoop({
    type: 'activation',
    steps: [{ trigger: { type: 'database', table: 'projects', event: 'insert' },
              action: { type: 'webhook', url: 'https://hooks.example.com/first-project' } }],
  }),
];
