/*
 * Two loops in one build: remind invitees who have not joined yet, and tell
 * the CRM when a workspace grows to five members.
 */
import { defineLoop } from '@skene/sdk';

const APP_URL = 'https://app.example.com';
const INVITES_WEBHOOK = 'https://app.example.com/api/skene/invite-accepted';
const TEAM_FROM = 'Acme Team <team@example.com>';
const CRM_WEBHOOK = 'https://crm.example.com/hooks/skene';

// Static values may be shared through const bindings, with `as const` / `satisfies`.
const JSON_HEADERS = {
  'Content-Type': 'application/json',
  'X-Skene-Loop': '{{loop.name}}',
} as const satisfies Record<string, string>;

const PATIENT_RETRIES = {
  retries: 6,
  backoff: 'exponential',
  delay: '1s',
  maxDelay: '1h',
  jitter: true,
} as const;

export default [
  defineLoop({
    name: 'invite_reminder',
    type: 'referral',
    opinion: 'An invite accepted within two days brings a team; remind the invitee once, in the inviter\'s name',
    steps: [
      {
        trigger: { type: 'database', table: 'invites', event: 'insert' },
        condition: {
          type: 'query',
          query: "SELECT id FROM invites WHERE id = $1 AND status = 'accepted'",
          timeout: '2d',
        },
        // Accepted in time: tell our own backend, which credits the inviter.
        action: {
          type: 'webhook',
          url: INVITES_WEBHOOK,
          headers: JSON_HEADERS,
          body: {
            event: 'invite_accepted',
            inviteId: '{{invite.id}}',
            inviterId: '{{invite.inviter_id}}',
            orgId: '{{invite.org_id}}',
            at: '{{now}}',
          },
        },
        // Not accepted after two days: one reminder to the invitee (the row's email).
        onTimeout: {
          type: 'email',
          provider: 'resend',
          template: 'invite_reminder',
          from: TEAM_FROM,
          replyTo: '{{invite.inviter_email}}',
          subject: "{{invite.inviter_name | default: 'Your teammate'}} is waiting for you on Acme",
          personalization: {
            inviterName: "{{invite.inviter_name | default: 'Your teammate'}}",
            orgName: '{{invite.org_name}}',
            appUrl: APP_URL,
            acceptUrl: 'https://app.example.com/invites/{{invite.id}}',
          },
          tags: { loop: 'invite_reminder' },
        },
      },
    ],
    recovery: PATIENT_RETRIES,
  }),

  defineLoop({
    name: 'team_expansion_signal',
    type: 'expansion',
    opinion: 'A workspace that reaches five members is ready for the Team plan: hand it to sales',
    steps: [
      {
        trigger: { type: 'database', table: 'users', event: 'insert' },
        condition: {
          type: 'query',
          query: 'SELECT id FROM users WHERE org_id = $1 LIMIT 5',
          params: ['{{user.org_id}}'],
          minRows: 5,
          timeout: '30d',
        },
        action: {
          type: 'webhook',
          url: CRM_WEBHOOK,
          headers: JSON_HEADERS,
          body: {
            event: 'workspace_reached_5_members',
            orgId: '{{user.org_id}}',
            lastJoined: { id: '{{user.id}}', email: '{{user.email}}' },
            at: '{{now}}',
          },
        },
      },
    ],
    recovery: PATIENT_RETRIES,
  }),
];
