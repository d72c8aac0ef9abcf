// Trial conversion for an app whose users are stored by the Auth.js Upstash
// adapter: one JSON string per user at `user:<id>`, no change to the app needed.
import { defineLoop } from '@skene/sdk';

export default defineLoop({
  name: 'trial_conversion',
  type: 'conversion',
  opinion: 'Remind trial users before the 14-day trial ends, record who converts, and warn sales about the rest',
  tables: {
    // Auth.js writes these keys itself; Skene learns of new ones from keyspace notifications.
    users: { key: 'user:{id}', format: 'json', feed: 'keyspace' },
    // Written by the app's Stripe webhook handler, with an XADD to skene:subscriptions.
    subscriptions: { key: 'subscription:{id}', format: 'hash', feed: 'stream' },
  },
  steps: [
    {
      // Day 11 of 14: users still in the `trialing` set get the reminder (Resend-hosted template).
      trigger: { type: 'database', table: 'users', event: 'insert' },
      delay: '11d',
      condition: { type: 'redis', command: ['SISMEMBER', 'trialing', '{{user.id}}'] },
      action: {
        type: 'email',
        provider: 'resend',
        template: 'resend:0f6b2d1c-7a3e-4e5f-8b9c-1d2e3f4a5b6c',
        personalization: {
          name: "{{user.name | default: 'there'}}",
          daysLeft: '3',
          upgradeUrl: 'https://app.example.com/billing/upgrade',
        },
        tags: { loop: 'trial_conversion', day: '11' },
      },
    },
    {
      // Converted before the trial ends (3 more days)? Record the plan.
      condition: {
        type: 'query',
        query: "SELECT id, plan FROM subscriptions WHERE user_id = $1 AND status = 'active' LIMIT 1",
        timeout: '3d',
      },
      action: {
        type: 'redis',
        command: ['HSET', 'conversions:{{user.id}}', 'plan', '{{match.plan}}', 'converted_at', '{{now}}'],
      },
      // Trial over without a subscription: a note to the sales inbox, written to
      // the outbox (an .eml file per message) for the team's own mail pickup.
      onTimeout: {
        type: 'email',
        provider: 'outbox',
        template: 'trial_expired_sales',
        to: 'sales@example.com',
        from: 'Skene <skene@example.com>',
        personalization: {
          userName: "{{user.name | default: 'A trial user'}}",
          userEmail: '{{user.email}}',
          userId: '{{user.id}}',
        },
      },
    },
  ],
  recovery: { retries: 4, backoff: 'fixed', delay: '30s', jitter: false },
});
