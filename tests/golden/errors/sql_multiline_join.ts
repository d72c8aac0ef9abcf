import { defineLoop } from '@skene/sdk';

export default defineLoop({
  type: 'activation',
  steps: [{
    trigger: { type: 'database', table: 'users', event: 'insert' },
    condition: {
      type: 'query',
      query: `SELECT *
	FROM user_actions
	INNER JOIN projects ON projects.id = user_actions.project_id
	WHERE user_actions.user_id = $1`,
    },
    action: { type: 'email', template: 'welcome', subject: 'Welcome' },
  }],
});
