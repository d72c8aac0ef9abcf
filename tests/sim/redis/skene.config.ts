// Redis conditions and actions: one loop checks a set once and stamps the user's hash; the other
// waits up to 2 minutes for a key (a redis condition is polled) and counts the users who had it.
import { defineLoop } from '@skene/sdk';

export default [
  defineLoop({
    name: 'mark_onboarded',
    type: 'activation',
    opinion: 'Record when an onboarded user signs up',
    steps: [{
      trigger: { type: 'database', table: 'users', event: 'insert' },
      condition: { type: 'redis', command: ['SISMEMBER', 'onboarded', '{{user.id}}'] },
      action: { type: 'redis', command: ['HSET', 'users:{{user.id}}', 'onboarded_at', '{{now}}'] },
    }],
    recovery: { retries: 3, backoff: 'exponential', delay: '1s', jitter: false },
  }),
  defineLoop({
    name: 'wait_for_flag',
    type: 'activation',
    opinion: 'Count the users whose flag is set within two minutes',
    steps: [{
      trigger: { type: 'database', table: 'users', event: 'insert' },
      condition: { type: 'redis', command: ['GET', 'flag:{{user.id}}'], timeout: '2m' },
      action: { type: 'redis', command: ['INCR', 'flagged'] },
    }],
    recovery: { retries: 3, backoff: 'exponential', delay: '1s', jitter: false },
  }),
];
