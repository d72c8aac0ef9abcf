import { defineLoop } from '@skene/sdk';

export default defineLoop({
  type: 'activation',
  steps: [{
    trigger: { type: 'database', table: 'users', event: 'insert' },
    condition: {
      type: 'query',
      query: `
        SELECT id, name
        FROM projects
        WHERE user_id = $1
           OR owner_id = $1
        LIMIT 1`,
      timeout: '7d',
    },
    action: { type: 'email', template: 'welcome', subject: 'Your first project: {{match.name}}' },
  }],
});
