// A later step's trigger: welcome at sign-up, then wait (without a deadline) for the user's first
// project, a row of another table linked by projects.user_id, and congratulate them on it.
import { defineLoop } from '@skene/sdk';

export default defineLoop({
  name: 'first_project',
  type: 'activation',
  opinion: 'Welcome users, then congratulate them on their first project',
  steps: [
    {
      trigger: { type: 'database', table: 'users', event: 'insert' },
      action: { type: 'email', provider: 'resend', template: 'welcome' },
    },
    {
      trigger: { type: 'database', table: 'projects', event: 'insert' },
      action: { type: 'email', provider: 'resend', template: 'project', personalization: { title: '{{project.name}}' } },
    },
  ],
  recovery: { retries: 3, backoff: 'exponential', delay: '1s', jitter: false },
});
