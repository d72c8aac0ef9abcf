import { defineLoop } from '@skene/sdk';

// One mistake in the config and one in the template it uses: both are reported.
export default defineLoop({
  type: 'activation',
  steps: [{
    trigger: { type: 'database', table: 'users', event: 'insert' },
    condition: { type: 'query', query: 'SELECT * FROM projects WHERE user_id = $1', timeout: '3d' },
    action: { type: 'email', template: 'first_project', from: 'hello.acme.com' },
  }],
});
