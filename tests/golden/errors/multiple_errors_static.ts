import { defineLoop } from '@skene/sdk';

let retries = 5;
const base = { type: 'email', template: 'welcome' } as const;

export default defineLoop({
  type: 'activation',
  steps: [{
    trigger: { type: 'database', table: 'users', event: 'insert' },
    action: { ...base, subject: `Welcome to ${process.env.PRODUCT_NAME}` },
  }],
  recovery: { retries },
});
