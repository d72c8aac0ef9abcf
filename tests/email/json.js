// json.js: the JSON the email tests read, turned into lines the shell can compare (tests/email/README.md).
// Node.js only (a dependency of the build already: scripts/deps); no package, no network but 127.0.0.1.
//
//   node json.js get URL                   GET, prints the body; exit 1 unless 200
//   node json.js post URL [BODY]           POST (BODY: JSON text, default none), prints the body; exit 1 unless 200
//   node json.js stat URL NAME             one figure of GET URL/_mock/stats: a top-level name, or by_status.CODE (0 if absent)
//   node json.js emails URL                GET URL/_mock/emails, one line per accepted email:
//                                          to  idempotency_key  endpoint  batch_index  id  api_key
//   node json.js requests LOG              resend-mock's request log, one line per request:
//                                          time_ms  method  path  status  outcome  fault  idempotency_key
//                                          x-batch-validation  emails  tos (comma-separated)
//   node json.js request LOG N             the N-th request of the log (1-based) as the expected files
//                                          of tests/email/expected/ write it (see there)
//   node json.js body LOG N                the N-th request's body, byte for byte
//   node json.js worker LOG...             the instance lines of skene-vm run logs, one per line:
//                                          ts_ms  event  subject  attempt  idempotency_key  delay_ms  id  outcome  reason
//                                          (a line cut short by kill -9 is skipped; "-" for absent fields)
//   node json.js simcheck LOG N SIM        the N-th request's email against the simulator's rendering of it
//                                          (the first action.ok of `skene-vm simulate` output SIM): prints
//                                          what differs, exit 1 if anything does
// Exit 2: usage or an unreadable file.
'use strict';
const fs = require('fs');
const http = require('http');

function die(msg, code) {
  process.stderr.write('json.js: ' + msg + '\n');
  process.exit(code === undefined ? 2 : code);
}

function fetchText(method, url, body) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    if (u.hostname !== '127.0.0.1') return reject(new Error('loopback only: ' + url));
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method,
      headers: body === undefined ? {} : { 'Content-Type': 'application/json' } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

async function getJson(url) {
  const r = await fetchText('GET', url);
  if (r.status !== 200) die(`GET ${url}: HTTP ${r.status}: ${r.text}`, 1);
  return JSON.parse(r.text);
}

// The complete JSON lines of a file (a last line cut short is skipped).
function jsonLines(file) {
  let text;
  try { text = fs.readFileSync(file, 'utf8'); } catch (e) { die(`cannot read ${file}: ${e.message}`); }
  const out = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try { out.push(JSON.parse(line)); } catch (e) { /* cut short by a kill */ }
  }
  return out;
}

function header(req, name) {
  const h = req.headers.find(([k]) => k.toLowerCase() === name.toLowerCase());
  return h ? h[1] : undefined;
}

function nth(file, n) {
  const reqs = jsonLines(file);
  const i = Number(n);
  if (!(i >= 1 && i <= reqs.length)) die(`${file} has ${reqs.length} requests, not a request ${n}`, 1);
  return reqs[i - 1];
}

function bodyOf(req) {
  return req.body_base64 !== undefined ? Buffer.from(req.body_base64, 'base64') : Buffer.from(req.body, 'utf8');
}

// The headers that matter, in this order, with names as Resend documents them. Each must be sent
// exactly once; their values as sent.
const MATTER = ['Authorization', 'Content-Type', 'Idempotency-Key', 'User-Agent', 'x-batch-validation'];

function renderRequest(req) {
  const lines = [`${req.method} ${req.path}`];
  for (const name of MATTER) {
    const all = req.headers.filter(([k]) => k.toLowerCase() === name.toLowerCase());
    if (all.length > 1) lines.push(`${name}: (sent ${all.length} times)`);
    else if (all.length === 1) lines.push(`${name}: ${all[0][1]}`);
  }
  const body = bodyOf(req);
  const cl = header(req, 'Content-Length');
  if (cl !== undefined && Number(cl) !== body.length) lines.push(`Content-Length: ${cl} (the body has ${body.length} bytes)`);
  return Buffer.concat([Buffer.from(lines.join('\n') + '\n\n', 'utf8'), body]);
}

const dash = (v) => (v === undefined || v === null ? '-' : String(v).replace(/[\t\n]/g, ' '));

function tsv(fields) { return fields.map(dash).join('\t'); }

// The email of a request as the simulator prints it (tests/sim/README.md, action.ok).
function asSimulated(email) {
  const out = { to: email.to, from: email.from === undefined ? null : email.from };
  if (email.reply_to !== undefined) out.reply_to = email.reply_to;
  if (email.template !== undefined) {
    if (email.subject !== undefined) out.subject = email.subject;
    out.template = email.template.id;
    out.variables = email.template.variables;
  } else {
    out.subject = email.subject === undefined ? null : email.subject;
    out.html = email.html === undefined ? null : email.html;
    out.text = email.text === undefined ? null : email.text;
  }
  if (email.tags !== undefined) {
    out.tags = {};
    for (const t of email.tags) out.tags[t.name] = t.value;
  }
  return out;
}

async function main() {
  const [cmd, ...a] = process.argv.slice(2);
  switch (cmd) {
    case 'get':
    case 'post': {
      if (!a[0]) die(`usage: json.js ${cmd} URL`);
      const r = await fetchText(cmd.toUpperCase(), a[0], cmd === 'post' ? (a[1] || '') : undefined);
      process.stdout.write(r.text + '\n');
      if (r.status !== 200) die(`${cmd.toUpperCase()} ${a[0]}: HTTP ${r.status}`, 1);
      break;
    }
    case 'stat': {
      const s = await getJson(a[0] + '/_mock/stats');
      const v = a[1].startsWith('by_status.') ? (s.by_status || {})[a[1].slice(10)] : s[a[1]];
      if (v !== undefined && typeof v !== 'number') die(`stat ${a[1]} is not a number`, 1);
      process.stdout.write(String(v || 0) + '\n');
      break;
    }
    case 'emails': {
      const list = await getJson(a[0] + '/_mock/emails');
      const out = list.map((e) => tsv([Array.isArray(e.request.to) ? e.request.to.join(',') : e.request.to,
        e.idempotency_key, e.endpoint, e.batch_index, e.id, e.api_key]));
      process.stdout.write(out.join('\n') + (out.length ? '\n' : ''));
      break;
    }
    case 'requests': {
      const out = jsonLines(a[0]).map((r) => {
        let emails = '-', tos = '-';
        try {
          const b = JSON.parse(bodyOf(r).toString('utf8'));
          const list = Array.isArray(b) ? b : [b];
          emails = list.length;
          tos = list.map((e) => (e && typeof e.to === 'string' ? e.to : '?')).join(',');
        } catch (e) { /* not JSON */ }
        return tsv([r.time_ms, r.method, r.path, r.status, r.outcome, r.fault, header(r, 'Idempotency-Key'),
          header(r, 'x-batch-validation'), emails, tos]);
      });
      process.stdout.write(out.join('\n') + (out.length ? '\n' : ''));
      break;
    }
    case 'request':
      process.stdout.write(renderRequest(nth(a[0], a[1])));
      break;
    case 'body':
      process.stdout.write(bodyOf(nth(a[0], a[1])));
      break;
    case 'worker': {
      const out = [];
      for (const f of a)
        for (const l of jsonLines(f)) {
          if (l.subject === undefined) continue;
          out.push(tsv([Date.parse(l.ts), l.event, l.subject, l.attempt, l.idempotency_key, l.delay_ms, l.id,
            l.outcome, l.reason]));
        }
      process.stdout.write(out.join('\n') + (out.length ? '\n' : ''));
      break;
    }
    case 'simcheck': {
      const req = nth(a[0], a[1]);
      const sent = JSON.parse(bodyOf(req).toString('utf8'));
      const ok = jsonLines(a[2]).find((l) => l.event === 'action.ok' && l.email);
      if (!ok) die(`${a[2]}: no action.ok with an email`, 1);
      const want = Object.assign({}, ok.email);
      const key = want.idempotency_key;
      delete want.provider;
      delete want.idempotency_key;
      const got = asSimulated(sent);
      const diffs = [];
      for (const k of new Set([...Object.keys(want), ...Object.keys(got)]))
        if (JSON.stringify(want[k]) !== JSON.stringify(got[k]))
          diffs.push(`${k}: simulated ${JSON.stringify(want[k])}, sent ${JSON.stringify(got[k])}`);
      if (header(req, 'Idempotency-Key') !== key)
        diffs.push(`Idempotency-Key: simulated ${key}, sent ${header(req, 'Idempotency-Key')}`);
      process.stdout.write(diffs.join('\n') + (diffs.length ? '\n' : ''));
      if (diffs.length) process.exit(1);
      break;
    }
    default:
      die('usage: json.js get|post|stat|emails|requests|request|body|worker|simcheck ... (see its first lines)');
  }
}

main().catch((e) => die(e.message, 1));
