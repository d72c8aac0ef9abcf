// examples/activation with its users table on a keyspace feed: the app writes only the user's hash
// (HSET users:<id> ...), and Skene learns of new users from keyspace notifications and SCAN.
// Built by keyspace.sh with --templates examples/activation/templates.
import { defineLoop } from '@skene/sdk';
export default defineLoop({
  type: 'activation',
  opinion: 'The activation example, for an app that does not announce its sign-ups on a stream',
  tables: { users: { feed: 'keyspace' } },
  steps: [{
    trigger: { type: 'database', table: 'users', event: 'insert' },
    condition: { type: 'query', timeout: '5m',
      query: `SELECT * FROM user_actions WHERE user_id = $1 AND action_type = 'first_project_created'` },
    action: { type: 'email', provider: 'resend', template: 'activation_welcome',
      personalization: { name: '{{user.name}}', activationLink: '{{user.activation_link}}' } },
  }],
  recovery: { retries: 3, backoff: 'exponential' },
});
