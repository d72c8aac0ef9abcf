// minRows: a user with three projects within the hour is a power user; tell the CRM.
import { defineLoop } from '@skene/sdk';

export default defineLoop({
  name: 'power_user',
  type: 'expansion',
  opinion: 'Three projects in the first hour mark a power user',
  steps: [{
    trigger: { type: 'database', table: 'users', event: 'insert' },
    condition: { type: 'query', query: 'SELECT id FROM projects WHERE user_id = $1', minRows: 3, timeout: '1h' },
    action: { type: 'webhook', url: 'https://crm.example/hooks/power-user', body: { user: '{{user.id}}', first_project: '{{match.id}}' } },
  }],
  recovery: { retries: 3, backoff: 'exponential', delay: '1s', jitter: false },
});
