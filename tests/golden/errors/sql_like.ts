import { defineLoop } from '@skene/sdk';

export default defineLoop({
  type: 'activation',
  steps: [{
    trigger: { type: 'database', table: 'users', event: 'insert' },
    condition: {
      type: 'query',
      query: "SELECT * FROM user_actions WHERE user_id = $1 AND action_type LIKE 'first_%'",
    },
    action: { type: 'email', template: 'welcome', subject: 'Welcome' },
  }],
});
