import { defineLoop } from '@skene/sdk';

export default defineLoop({
  type: 'activation',
  steps: [{
    trigger: { type: 'database', table: 'users', event: 'insert' },
    action: { type: 'email', template: 'welcome', subject: 'Step \1: create a project' },
  }],
});
