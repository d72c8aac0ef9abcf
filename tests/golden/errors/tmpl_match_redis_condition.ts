import { defineLoop } from '@skene/sdk';

export default defineLoop({
  type: 'activation',
  steps: [{
    trigger: { type: 'database', table: 'users', event: 'insert' },
    delay: '1d',
    condition: { type: 'redis', command: ['SISMEMBER', 'onboarded', '{{user.id}}'] },
    action: { type: 'webhook', url: 'https://hooks.example.com/onboarded/{{match.id}}' },
  }],
});
