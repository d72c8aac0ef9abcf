import { defineLoop } from '@skene/sdk';

const common = { type: 'email', template: 'welcome' } as const;

export default defineLoop({
  type: 'activation',
  steps: [{
    trigger: { type: 'database', table: 'users', event: 'insert' },
    action: { ...common, subject: 'Welcome' },
  }],
});
