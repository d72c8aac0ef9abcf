import { defineLoop } from '@skene/sdk';

export default [
  defineLoop({
    name: 'welcome',
    type: 'activation',
    steps: [{ trigger: { type: 'database', table: 'users', event: 'insert' },
              action: { type: 'email', template: 'welcome', subject: 'Welcome' } }],
  }),
  defineLoop({
    name: 'welcome',
    type: 'retention',
    steps: [{ trigger: { type: 'database', table: 'users', event: 'update' },
              action: { type: 'email', template: 'welcome', subject: 'Welcome back' } }],
  }),
];
