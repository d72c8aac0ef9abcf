import { defineLoop } from '@skene/sdk';

export default defineLoop({
  type: 'activation',
  steps: [{
    trigger: { type: 'database', table: 'users', event: 'insert' },
    action: {
      type: 'webhook',
      url: 'https://hooks.example.com/signup',
      body: { user: '{{row.id}}', credits: 1e400 },
    },
  }],
});
