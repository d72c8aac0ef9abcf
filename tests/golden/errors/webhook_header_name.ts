import { defineLoop } from '@skene/sdk';

export default defineLoop({
  type: 'activation',
  steps: [{
    trigger: { type: 'database', table: 'users', event: 'insert' },
    action: {
      type: 'webhook',
      url: 'https://hooks.example.com/signup',
      headers: { 'Content-Type': 'application/json', 'X Skene Loop': '{{loop.name}}' },
      body: { user: '{{row.id}}' },
    },
  }],
});
