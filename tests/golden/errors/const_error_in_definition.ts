import { defineLoop } from '@skene/sdk';

// The mistake is in the const, not where it is used.
const signup = { type: 'database', table: 'users', event: 'insret' } as const;

export default defineLoop({
  type: 'activation',
  steps: [{
    trigger: signup,
    action: { type: 'email', template: 'welcome', subject: 'Welcome' },
  }],
});
