// Retention: people who build a second project within three days of their
// first one tend to stay. Those who don't get one nudge.
import { defineLoop } from '@skene/sdk';

export default defineLoop({
  name: 'second_project_nudge',
  type: 'retention',
  opinion: 'Users who create a second project within 3 days of their first stay; nudge the ones who do not',
  steps: [
    {
      // Sign-up creates the instance; it then waits (up to 14 days) for the first project.
      trigger: { type: 'database', table: 'users', event: 'insert' },
      condition: {
        type: 'query',
        query: 'SELECT id, name FROM projects WHERE user_id = $1 LIMIT 1',
        timeout: '14d',
      },
      action: {
        type: 'email',
        provider: 'resend',
        template: 'first_project_tips',
        personalization: {
          name: "{{user.first_name | default: 'there'}}",
          projectName: '{{match.name}}',
        },
        tags: { loop: 'retention', step: 'first_project' },
      },
    },
    {
      // From then on, a second project within 3 days counts as retained.
      condition: {
        type: 'query',
        query: 'select id from projects where user_id = $1 and archived = 0 limit 2',
        params: ['{{user.id}}'],
        minRows: 2,
        timeout: '3d',
      },
      action: { type: 'redis', command: ['HSET', 'users:{{user.id}}', 'retained_at', '{{now}}'] },
      // No second project after 3 days: one nudge, from a template stored in Resend.
      onTimeout: {
        type: 'email',
        provider: 'resend',
        template: 'resend:8c3f5a2e-41d7-4b9a-9f06-2d7e1c4b5a90',
        personalization: {
          name: "{{user.first_name | default: 'there'}}",
          templatesUrl: 'https://app.example.com/new?from=template',
        },
        tags: { loop: 'retention', step: 'nudge' },
      },
    },
  ],
  recovery: { retries: 3, backoff: 'linear', delay: '5s', maxDelay: '15m' },
});
