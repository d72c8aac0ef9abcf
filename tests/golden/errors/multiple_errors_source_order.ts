import { defineLoop } from '@skene/sdk';

// Three mistakes: all are reported, in source order (not in the order they are checked).
export default defineLoop({
  type: 'activaton',
  steps: [{
    trigger: { type: 'database', table: 'users', event: 'insert' },
    delay: '10 min',
    action: { type: 'email', template: 'welcome', subject: 'Welcome aboard' },
  }],
  recovery: { retries: 50, backoff: 'linear' },
});
