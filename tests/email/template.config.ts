// tests/email: an email of a template stored in Resend (`resend:<id>`), with the fields such an email
// carries besides the template: its own `from`, a `subject` (which replaces the template's), a
// `replyTo`, personalization (Resend's template
// variables) and tags. Sent to every new user, at once (no condition).
import { defineLoop } from '@skene/sdk';

export default defineLoop({
  name: 'welcome_template',
  type: 'activation',
  opinion: 'Welcome every new user with a template stored in Resend',
  steps: [{
    trigger: { type: 'database', table: 'users', event: 'insert' },
    action: {
      type: 'email',
      provider: 'resend',
      template: 'resend:3f1c9a7e-2b4d-4e8f-9a6b-5c7d8e9f0a1b',
      from: 'Acme Team <team@acme.example>',
      subject: 'Welcome aboard, {{user.name}}',
      replyTo: 'support@acme.example',
      personalization: {
        name: "{{user.name | default: 'there'}}",
        setupUrl: '{{user.activation_link}}',
        plan: 'pro',
      },
      tags: { loop: 'welcome', kind: 'template' },
    },
  }],
  recovery: { retries: 3, backoff: 'exponential' },
});
