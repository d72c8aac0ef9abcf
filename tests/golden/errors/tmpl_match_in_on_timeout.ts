import { defineLoop } from '@skene/sdk';

export default defineLoop({
  type: 'activation',
  steps: [{
    trigger: { type: 'database', table: 'users', event: 'insert' },
    condition: { type: 'query', query: 'SELECT * FROM projects WHERE user_id = $1', timeout: '3d' },
    action: { type: 'email', template: 'welcome', subject: 'Nice work on {{match.name}}' },
    onTimeout: { type: 'email', template: 'welcome', subject: 'Still thinking about {{match.name}}?' },
  }],
});
