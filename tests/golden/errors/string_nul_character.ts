import { defineLoop } from '@skene/sdk';

export default defineLoop({
  type: 'activation',
  steps: [{
    trigger: { type: 'database', table: 'users', event: 'insert' },
    condition: { type: 'query', query: 'SELECT * FROM projects WHERE owner_id = $1\x00 OR 1 = 1' },
    action: { type: 'email', template: 'welcome', subject: 'Welcome' },
  }],
});
