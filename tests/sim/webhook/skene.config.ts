// A webhook with headers and a JSON body: when a second member joins an organisation, tell the CRM.
import { defineLoop } from '@skene/sdk';

export default defineLoop({
  name: 'crm_signal',
  type: 'expansion',
  opinion: 'An organisation with two members is worth a call',
  steps: [{
    trigger: { type: 'database', table: 'users', event: 'insert' },
    condition: { type: 'query', query: 'SELECT id FROM users WHERE org_id = $1', params: ['{{user.org_id}}'], minRows: 2, timeout: '1d' },
    action: {
      type: 'webhook',
      url: 'https://crm.example/hooks/orgs/{{user.org_id}}',
      headers: { 'Content-Type': 'application/json', 'X-Skene-Loop': 'crm_signal' },
      body: { org: '{{user.org_id}}', member: '{{user.name}}', at: '{{now}}' },
    },
  }],
  recovery: { retries: 2, backoff: 'linear', delay: '10s', jitter: false },
});
