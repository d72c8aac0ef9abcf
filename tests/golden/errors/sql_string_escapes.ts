import { defineLoop } from '@skene/sdk';

export default defineLoop({
  type: 'activation',
  steps: [{
    trigger: { type: 'database', table: 'users', event: 'insert' },
    condition: {
      type: 'query',
      query: 'SELECT * FROM user_actions\n WHERE action_type = \'invite_sent\' AND user_id >= $1',
    },
    action: { type: 'email', template: 'welcome', subject: 'Welcome' },
  }],
});
