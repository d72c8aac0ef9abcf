import { defineLoop } from '@skene/sdk';

export default defineLoop({
  type: 'activation',
  opinion: 'Welcome every new user',
  recovery: { retries: 3 },
});
