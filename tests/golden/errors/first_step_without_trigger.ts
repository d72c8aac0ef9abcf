import { defineLoop } from '@skene/sdk';

export default defineLoop({
  type: 'activation',
  steps: [
    {
      delay: '1h',
      action: { type: 'email', template: 'welcome', subject: 'Welcome' },
    },
  ],
});
