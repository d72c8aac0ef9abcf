import { defineLoop } from '@skene/sdk';

const welcome = defineLoop({
  type: 'activation',
  steps: [{
    trigger: { type: 'database', table: 'users', event: 'insert' },
    action: { type: 'email', template: 'welcome', subject: 'Welcome' },
  }],
});
const others = [welcome];

export default [...others];
