import { defineLoop } from '@skene/sdk';

export default defineLoop({
  type: 'activation',
  steps: [{
    trigger: { type: 'database', table: 'users', event: 'insert' },
    condition: {
      type: 'query',
      query: 'SELECT id FROM projects WHERE user_id = $1 LIMIT 2',
      minRows: 3,
      timeout: '3d',
    },
    action: { type: 'email', template: 'welcome', subject: 'Welcome' },
  }],
});
