// worker.js: the activation loop as a Next.js team would write it on BullMQ, the peer of Skene's
// examples/activation in bench/e2e/resend.sh.
//
// The app adds one job per sign-up (signups.js). A job checks the loop's condition, "the user has a
// user_actions row with action_type first_project_created", as one EXISTS on the index set the app
// keeps next to the row (actions.js: SADD user_actions_by_user:<id>:first_project_created <row id>
// in the MULTI that writes the row), so the check is an O(1) lookup like Skene's indexed query.
// While it is false the job moves itself back to the delayed set for RECHECK_MS (no attempt used);
// after TIMEOUT_MS from the sign-up it ends as timed_out, as Skene's `timeout: '5m'` does. Once true
// it reads the user row (HGETALL), renders examples/activation/templates/activation_welcome (the
// same subject, HTML and text Skene sends) and POSTs it to {RESEND_API_URL}/emails with keep-alive
// (fetch, or node:http) and the Idempotency-Key "activation/<user id>". The job was added with
// attempts: 3 and exponential backoff: 408, 429, 5xx and network errors throw (retried), other 4xx
// fail the job for good (UnrecoverableError), as Skene's recovery policy splits them.
//
// Environment: REDIS_URL, RESEND_API_URL, RESEND_API_KEY, EMAIL_FROM, TEMPLATES (folder),
// CONCURRENCY (default 300), RECHECK_MS (default 1000), TIMEOUT_MS (default 300000), HTTP_CLIENT
// (fetch, the default, or http).
// SIGUSR1 prints one JSON line {"msg":"worker.stats",...} on stdout: the bench's counters, kept in
// this process and costing no Redis command (checks; parked: users seen false a first time;
// rechecks; sent; ended: jobs completed, or failed for good). wire_commands counts every Redis
// command this process wrote (BullMQ's connections and the app's client; a script call is one):
// what Upstash bills.
// SIGTERM closes the worker (waits for the jobs in hand) and exits 0.
'use strict';

const fs = require('fs');
const http = require('http');
const path = require('path');
const IORedis = require('ioredis');
const { Worker, DelayedError, UnrecoverableError } = require('bullmq');

const env = (name, dflt) => (process.env[name] !== undefined && process.env[name] !== '' ? process.env[name] : dflt);
const redisUrl = env('REDIS_URL');
const apiUrl = env('RESEND_API_URL');
const apiKey = env('RESEND_API_KEY');
const from = env('EMAIL_FROM');
const templates = env('TEMPLATES');
const concurrency = Number(env('CONCURRENCY', '300'));
const recheckMs = Number(env('RECHECK_MS', '1000'));
const timeoutMs = Number(env('TIMEOUT_MS', '300000'));
const httpClient = env('HTTP_CLIENT', 'fetch');
if (httpClient !== 'fetch' && httpClient !== 'http') {
  console.error(`worker.js: HTTP_CLIENT must be fetch or http, not '${httpClient}'`);
  process.exit(2);
}
for (const [k, v] of Object.entries({ REDIS_URL: redisUrl, RESEND_API_URL: apiUrl, RESEND_API_KEY: apiKey, EMAIL_FROM: from, TEMPLATES: templates })) {
  if (!v) {
    console.error(`worker.js: ${k} is not set`);
    process.exit(2);
  }
}

// Every command ioredis writes goes through Command#toWritable once (also a script's EVALSHA, and
// its EVAL fallback after NOSCRIPT, which Redis bills too).
const stats = { wire_commands: 0, checks: 0, parked: 0, rechecks: 0, sent: 0, timed_out: 0, retried: 0, failed: 0, ended: 0 };
const toWritable = IORedis.Command.prototype.toWritable;
IORedis.Command.prototype.toWritable = function (...args) {
  stats.wire_commands++;
  return toWritable.apply(this, args);
};

// The template, split as Skene's compiler does: front matter subject, HTML body, text body.
function readTemplate(name) {
  let html = fs.readFileSync(path.join(templates, `${name}.html`), 'utf8');
  let subject = '';
  const fm = /^---\n([\s\S]*?)\n---\n/.exec(html);
  if (fm) {
    html = html.slice(fm[0].length);
    const m = /^subject:\s*(.*)$/m.exec(fm[1]);
    if (m) subject = m[1].trim();
  }
  let text = null;
  try {
    text = fs.readFileSync(path.join(templates, `${name}.txt`), 'utf8');
  } catch (_) { /* no text part */ }
  return { subject, html, text };
}
const template = readTemplate('activation_welcome');
const escapeHtml = (s) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
const render = (t, vars, esc) => t.replace(/\{\{\s*(\w+)\s*\}\}/g, (_, k) => (esc ? escapeHtml(String(vars[k] ?? '')) : String(vars[k] ?? '')));

// POST with keep-alive: fetch (Node's undici, as Resend's SDK sends) or node:http with a
// keep-alive Agent (HTTP_CLIENT=http: a quarter of fetch's CPU per request here).
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
async function post(url, headers, body) {
  if (httpClient === 'fetch') {
    const r = await fetch(url, { method: 'POST', headers, body });
    return { status: r.status, body: await r.text() };
  }
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers, agent }, (r) => {
      const parts = [];
      r.on('data', (d) => parts.push(d));
      r.on('end', () => resolve({ status: r.statusCode, body: Buffer.concat(parts).toString('utf8') }));
      r.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

const connection = { maxRetriesPerRequest: null }; // BullMQ requires it for the worker's connections
const app = new IORedis(redisUrl); // the app's own client (Upstash's, in production)
const seenParked = new Set();

async function processJob(job, token) {
  const { userId, signedUpAt } = job.data;
  stats.checks++;
  const holds = await app.exists(`user_actions_by_user:${userId}:first_project_created`);
  if (!holds) {
    if (Date.now() - signedUpAt >= timeoutMs) {
      stats.timed_out++;
      return 'timed_out';
    }
    if (seenParked.has(userId)) stats.rechecks++;
    else {
      seenParked.add(userId);
      stats.parked++;
    }
    await job.moveToDelayed(Date.now() + recheckMs, token);
    throw new DelayedError();
  }
  const user = await app.hgetall(`users:${userId}`);
  if (!user.email) throw new UnrecoverableError(`users:${userId} has no email`);
  const vars = { name: user.name, activationLink: user.activation_link };
  const body = {
    from,
    to: user.email,
    subject: render(template.subject, vars, false),
    html: render(template.html, vars, true),
  };
  if (template.text !== null) body.text = render(template.text, vars, false);
  const res = await post(`${apiUrl}/emails`, {
    Authorization: `Bearer ${apiKey}`,
    'Content-Type': 'application/json',
    'Idempotency-Key': `activation/${userId}`,
    'User-Agent': 'skene-bench-bullmq',
  }, JSON.stringify(body));
  const reply = res.body;
  if (res.status >= 200 && res.status < 300) {
    stats.sent++;
    return JSON.parse(reply).id;
  }
  const transient = res.status === 408 || res.status === 429 || res.status >= 500 ||
    (res.status === 409 && reply.includes('concurrent_idempotent_requests'));
  if (transient) {
    stats.retried++;
    throw new Error(`resend: HTTP ${res.status}: ${reply}`);
  }
  stats.failed++;
  throw new UnrecoverableError(`resend: HTTP ${res.status}: ${reply}`);
}

const worker = new Worker('activation', processJob, {
  connection: { ...connection, ...urlOptions(redisUrl) },
  concurrency,
});
worker.on('completed', () => stats.ended++);
worker.on('failed', (job, err) => {
  if (err instanceof DelayedError || !job) return;
  if (!(err instanceof UnrecoverableError) && job.attemptsMade < (job.opts.attempts || 1)) return;
  stats.ended++;
  console.error(`worker.js: job ${job.id} failed: ${err.message}`);
});
worker.on('error', (err) => console.error(`worker.js: ${err.message}`));

function urlOptions(url) {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port || 6379) };
}

process.on('SIGUSR1', () => {
  process.stdout.write(JSON.stringify({ msg: 'worker.stats', ...stats }) + '\n');
});
process.on('SIGTERM', async () => {
  await worker.close();
  await app.quit();
  process.exit(0);
});
worker.waitUntilReady().then(() => process.stdout.write(JSON.stringify({ msg: 'worker.start', concurrency, recheck_ms: recheckMs, http: httpClient }) + '\n'));
