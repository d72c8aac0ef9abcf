import { defineLoop } from '@skene/sdk';

export default defineLoop({
  type: 'activation',
  steps: [{
    trigger: { type: 'database', table: 'users', event: 'insert' },
    condition: {
      type: 'query',
      query: 'SELECT * FROM projects WHERE user_id = $1 AND team_id = $2',
    },
    action: { type: 'email', template: 'welcome', subject: 'Welcome' },
  }],
});
