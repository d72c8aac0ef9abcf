import { defineLoop } from '@skene/sdk';

// An emoji needs both halves of its UTF-16 pair: \uD83D alone cannot be encoded in UTF-8.
export default defineLoop({
  type: 'activation',
  opinion: 'Welcome users with a smile \uD83D',
  steps: [{ trigger: { type: 'database', table: 'users', event: 'insert' } }],
});
