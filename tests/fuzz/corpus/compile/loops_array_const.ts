import { defineLoop } from '@skene/sdk';
const T = '2h' as const;
const EMAIL = { type: 'email', template: 'welcome', personalization: { name: '{{user.name}}', link: '{{user.link | default: "https://example.com"}}' } } as const;
export default [defineLoop({ type: 'conversion', name: 'a', recovery: { retries: 2, backoff: 'linear', jitter: true },
  tables: { users: { key: 'users:{id}', format: 'hash' } },
  steps: [{
  trigger: { type: 'database', table: 'users', event: 'update' },
  condition: { type: 'query', query: 'select id from plans where user_id = $1 limit 1', timeout: T },
  action: EMAIL,
  onTimeout: { type: 'redis', command: ['SET', 'k:{{user.id}}', '{{now}}'] } }] }),
 defineLoop({ type: 'retention', name: 'b', steps: [{
  trigger: { type: 'database', table: 'users', event: 'insert' },
  condition: { type: 'redis', command: ['SISMEMBER', 'vip', '{{user.id}}'] },
  action: { type: 'webhook', url: 'https://example.com/h?u={{user.id}}', headers: { 'X-Loop': '{{loop.name}}' },
    body: { user: '{{user.id}}', n: 1, ok: true, tags: ['a', null] } } },
  { trigger: { type: 'database', table: 'projects', event: 'insert' }, delay: '1h',
    condition: { type: 'query', query: `SELECT * FROM tasks WHERE project_id = $1 AND owner = $2`, params: ['{{project.id}}', '{{user.id}}'], minRows: 2, timeout: '3d' },
    action: { type: 'email', template: 'resend:digest-v1', to: '{{user.email}}', personalization: { n: '{{match.count}}' } } }] })] satisfies unknown[];
