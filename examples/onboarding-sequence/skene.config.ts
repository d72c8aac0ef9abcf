// Onboarding sequence: welcome on sign-up, mark the user activated when their
// first project appears, then a day later point onboarded users at their team.
import { defineLoop } from '@skene/sdk';

export default defineLoop({
  name: 'onboarding_sequence',
  type: 'activation',
  opinion: 'Welcome every new user, record when they activate, and guide onboarded users to invite their team',
  steps: [
    // 1. Sign-up (Clerk webhook -> users row): send the welcome email right away.
    {
      trigger: { type: 'database', table: 'users', event: 'insert' },
      action: {
        type: 'email',
        provider: 'resend',
        template: 'welcome',
        personalization: {
          name: "{{user.first_name | default: 'there'}}",
          dashboardUrl: 'https://app.example.com/dashboard',
        },
        tags: { loop: 'onboarding', step: 'welcome', user_id: '{{row.id}}' },
      },
    },
    // 2. Wait for this user's first project (projects.user_id links it to the
    //    subject) and stamp the activation on the user's hash.
    {
      trigger: { type: 'database', table: 'projects', event: 'insert' },
      action: { type: 'redis', command: ['HSET', 'users:{{user.id}}', 'activated_at', '{{now}}'] },
    },
    // 3. One day later, if the app has marked onboarding complete, suggest
    //    inviting the team. Without a timeout a false condition just skips the email.
    {
      delay: '1d',
      condition: { type: 'redis', command: ['SISMEMBER', 'onboarded', '{{user.id}}'] },
      action: {
        type: 'email',
        provider: 'resend',
        template: 'invite_your_team',
        personalization: {
          name: "{{user.first_name | default: 'there'}}",
          inviteUrl: 'https://app.example.com/settings/team',
        },
        tags: { loop: 'onboarding', step: 'invite_team' },
      },
    },
  ],
  recovery: { retries: 5, backoff: 'exponential', delay: '2s', maxDelay: '30m', jitter: true },
});
