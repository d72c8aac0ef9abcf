import { defineLoop } from '@skene/sdk';

export default defineLoop({
  type: 'activation',
  steps: [{
    trigger: { type: 'database', table: 'users', event: 'insert' },
    condition: {
      type: 'query',
      query: 'SELECT * FROM projects JOIN users ON users.id = projects.user_id WHERE user_id = $1',
    },
    action: { type: 'email', template: 'welcome', subject: 'Welcome' },
  }],
});
