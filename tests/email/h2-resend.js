// h2-resend.js: a local Resend served as the real one is, over HTTP/2 and TLS, for tests/email/h2.sh
// (tests/email/README.md). Node.js 18 or later, built-in modules only (http2, fs).
//
//   node h2-resend.js [--api-key KEY] [--delay-ms MS] [--log FILE] [--stats FILE]
//
// The certificate and its key: the PEM files named by SKENE_TEST_TLS_CERT and SKENE_TEST_TLS_KEY
// (tests/redis/with-redis.sh --tls makes them: SAN IP:127.0.0.1 and DNS:localhost). It listens on
// 127.0.0.1, on a port the system chooses, and prints that port on standard output (decimal, one
// line) once listening. HTTP/2 only (http2.createSecureServer, allowHTTP1 false): a client that does
// not negotiate h2 by ALPN has its connection closed and is counted (unknown_protocol).
//
// The API: what resend-mock checks (tests/resend/README.md), in part, with the same statuses, names
// and messages, in the same order:
//   1. no User-Agent: 403 `error code: 1010` (text/plain)
//   2. the route: POST /emails, POST /emails/batch; another path 404 not_found, another method 405
//   3. `Authorization: Bearer KEY`: none (or another scheme) 401 missing_api_key; a key other than
//      --api-key 401 validation_error (without --api-key: any `re_[A-Za-z0-9_-]+`, else 400)
//   4. Idempotency-Key (1-256 bytes, else 400 invalid_idempotency_key), per API key: a key already
//      used by an accepted request with the same endpoint, batch mode and body (compared as JSON)
//      gets that answer again (a replay: counted, nothing stored); another body 409
//      invalid_idempotent_request; while the first is still held, 409 concurrent_idempotent_requests
//   5. the body: not JSON 400 validation_error; one email (or each email of a batch): an object;
//      `from`, `to` (a string or 1-50 strings), `subject` present (`from` and `subject` may be absent
//      with a template), strings, addresses `a@b.c` or `Name <a@b.c>`; `html` or `text`, or
//      `template` {id} without them; `reply_to` addresses. 422 missing_required_field or
//      validation_error, Resend's words. A batch: an array of 1 to 100 (strict, the default: the
//      first bad email is the answer, nothing stored) or, with `x-batch-validation: permissive`,
//      every good email stored and the others listed in `errors` [{index, message}]
//   6. stored: 200 {"id"} or {"data":[{"id"}...]} (+ "errors" when permissive)
// Every answer to the API is held --delay-ms (default 150) first, so that requests overlap.
// GET /stats: the summary below (no key needed; not counted, not logged).
//
// Recorded for each API request (--log FILE: one JSON line when it is answered or reset): n, t_ms
// (arrival), session (the connection it came on: 1, 2, ... in order of opening), http_version,
// in_flight (requests of every session not answered yet, this one included, when it arrived),
// in_flight_session (the same, on its session), method, path, status (null if the client reset the
// stream first), replay, idempotency_key, batch_validation, emails (in the body), accepted (emails
// stored), tos.
//
// The summary (GET /stats; on SIGTERM or SIGINT written to --stats FILE, or standard output, then
// the connections are closed and it exits 0): sessions (opened), sessions_with_requests, requests,
// requests_by_session, by_version, non_http2 (requests over another version: none can arrive with
// allowHTTP1 false), unknown_protocol, tls_client_errors (TLS handshakes that failed: a client that
// does not trust the certificate) and tls_client_error_messages (distinct, at most 5),
// max_in_flight, max_streams_one_session (the most requests in flight at once on one session),
// by_status, emails_accepted, distinct_recipients, replays, batches (accepted), accepted_to (the `to`
// of each accepted email in order, an array's addresses joined by ',').
'use strict';
const http2 = require('http2');
const fs = require('fs');

function usage(msg) {
  process.stderr.write(`h2-resend.js: ${msg}\n` +
    'usage: node h2-resend.js [--api-key KEY] [--delay-ms MS] [--log FILE] [--stats FILE]\n');
  process.exit(2);
}

const opt = { apiKey: null, delayMs: 150, log: null, stats: null };
{
  const args = process.argv.slice(2);
  for (let i = 0; i < args.length; i += 2) {
    const a = args[i], v = args[i + 1];
    if (v === undefined) usage(`${a} needs a value`);
    if (a === '--api-key') opt.apiKey = v;
    else if (a === '--delay-ms') {
      opt.delayMs = Number(v);
      if (!Number.isInteger(opt.delayMs) || opt.delayMs < 0) usage(`--delay-ms needs whole milliseconds, not '${v}'`);
    } else if (a === '--log') opt.log = v;
    else if (a === '--stats') opt.stats = v;
    else usage(`unknown option '${a}'`);
  }
}
const certFile = process.env.SKENE_TEST_TLS_CERT, keyFile = process.env.SKENE_TEST_TLS_KEY;
if (!certFile || !keyFile) usage('SKENE_TEST_TLS_CERT and SKENE_TEST_TLS_KEY must name the certificate and its key (tests/redis/with-redis.sh --tls)');
let cert, key;
try {
  cert = fs.readFileSync(certFile);
  key = fs.readFileSync(keyFile);
} catch (e) {
  process.stderr.write(`h2-resend.js: ${e.message}\n`);
  process.exit(1);
}
if (opt.log) fs.writeFileSync(opt.log, '');

// ---- the counters ----
const st = {
  sessions: 0, requests: 0, requests_by_session: {}, by_version: {}, non_http2: 0, unknown_protocol: 0,
  tls_client_errors: 0, tls_client_error_messages: [], max_in_flight: 0, max_streams_one_session: 0,
  by_status: {}, emails_accepted: 0, replays: 0, batches: 0,
};
const recipients = new Set();
const acceptedTo = [];
let inFlight = 0;
let idSeq = 0;
const idSeed = process.pid.toString(16).padStart(8, '0').slice(-8);
const keys = new Map(); // API key + '\n' + Idempotency-Key -> {endpoint, mode, payload, inProgress, status, body}

function summary() {
  const used = Object.keys(st.requests_by_session).length;
  return Object.assign({}, st, { sessions_with_requests: used, distinct_recipients: recipients.size,
    accepted_to: acceptedTo });
}

// ---- Resend's checks ----
const err = (status, name, message) => ({ status, body: { statusCode: status, message, name } });
const missing = (f) => err(422, 'missing_required_field', `Missing \`${f}\` field.`);
const wrongType = (f, t) => err(422, 'validation_error', `The \`${f}\` field must be a \`${t}\`.`);
const badAddress = (f) => err(422, 'validation_error', `Invalid \`${f}\` field. The email address needs to follow ` +
  'the `email@example.com` or `Name <email@example.com>` format.');
const ADDR = /^[^\s()<>[\]:;@\\,"]{1,64}@[A-Za-z0-9\u0080-\uffff-]+(\.[A-Za-z0-9\u0080-\uffff-]+)+$/;
function addressOk(s) {
  const m = /^(?:"[^"]*"|[^<>"]*?)\s*<([^<>]+)>$/.exec(s);
  return ADDR.test(m ? m[1] : s);
}
const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const present = (v) => v !== undefined && v !== null && v !== '';

// One email: null when Resend would take it, else its error.
function checkEmail(e) {
  if (!isObject(e)) return err(422, 'validation_error', 'The request body must be an `object`.');
  const template = e.template !== undefined && e.template !== null;
  for (const f of ['from', 'to', 'subject']) {
    const v = e[f], optional = template && f !== 'to';
    if (v === undefined || v === '' || (f === 'to' && Array.isArray(v) && v.length === 0) || (v === null && optional)) {
      if (optional) continue;
      return missing(f);
    }
    if (f === 'to' && Array.isArray(v)) {
      if (v.length > 50) return err(422, 'validation_error', 'Too many recipients in the `to` field. The maximum is 50.');
      for (const a of v) {
        if (typeof a !== 'string') return wrongType(f, 'string');
        if (!addressOk(a)) return badAddress(f);
      }
      continue;
    }
    if (typeof v !== 'string') return wrongType(f, 'string');
    if (f !== 'subject' && !addressOk(v)) return badAddress(f);
  }
  if (template) {
    if (!isObject(e.template)) return wrongType('template', 'object');
    if (!present(e.template.id)) return missing('template.id');
    if (typeof e.template.id !== 'string') return wrongType('template.id', 'string');
    if (present(e.html) || present(e.text))
      return err(422, 'validation_error', 'The `html` and `text` fields cannot be used together with a `template`.');
  } else {
    if (!present(e.html) && !present(e.text)) return err(422, 'missing_required_field', 'Missing `html` or `text` field.');
    for (const f of ['html', 'text']) if (present(e[f]) && typeof e[f] !== 'string') return wrongType(f, 'string');
  }
  if (present(e.reply_to) && !(Array.isArray(e.reply_to) && e.reply_to.length === 0)) {
    for (const a of Array.isArray(e.reply_to) ? e.reply_to : [e.reply_to]) {
      if (typeof a !== 'string') return wrongType('reply_to', 'string');
      if (!addressOk(a)) return badAddress('reply_to');
    }
  }
  return null;
}

// JSON with its object keys sorted: two payloads are the same when these are.
function canonical(v) {
  if (Array.isArray(v)) return '[' + v.map(canonical).join(',') + ']';
  if (isObject(v)) return '{' + Object.keys(v).sort().map((k) => JSON.stringify(k) + ':' + canonical(v[k])).join(',') + '}';
  return JSON.stringify(v);
}

function newId() {
  idSeq++;
  return `${idSeed}-0000-4000-8000-${idSeq.toString(16).padStart(12, '0')}`;
}

function store(e) {
  const to = Array.isArray(e.to) ? e.to.join(',') : e.to;
  st.emails_accepted++;
  for (const a of Array.isArray(e.to) ? e.to : [e.to]) recipients.add(a);
  acceptedTo.push(to);
  return { id: newId() };
}

// The answer to an API request that got past the route, the key and the idempotency check.
function answer(endpoint, mode, text, rec) {
  let body;
  try {
    body = JSON.parse(text);
  } catch (e) {
    return err(400, 'validation_error', 'The request body is not valid JSON.');
  }
  if (endpoint === '/emails') {
    const bad = checkEmail(body);
    if (bad) return bad;
    rec.accepted = 1;
    return { status: 200, body: store(body) };
  }
  if (!Array.isArray(body)) return err(422, 'validation_error', 'The request body must be an `array` of emails.');
  if (body.length === 0) return err(422, 'validation_error', 'The batch must contain at least one email.');
  rec.emails = body.length;
  if (mode === 'strict') {
    if (body.length > 100) return err(422, 'validation_error', 'Too many emails in the batch. The maximum is 100.');
    for (const e of body) {
      const bad = checkEmail(e);
      if (bad) return bad;
    }
    st.batches++;
    rec.accepted = body.length;
    return { status: 200, body: { data: body.map(store) } };
  }
  const data = [], errors = [];
  body.forEach((e, index) => {
    const bad = index >= 100 ? { body: { message: 'The batch contains more than 100 emails.' } } : checkEmail(e);
    if (bad) errors.push({ index, message: bad.body.message });
    else data.push(store(e));
  });
  st.batches++;
  rec.accepted = data.length;
  return { status: 200, body: { data, errors } };
}

// ---- the server ----
const server = http2.createSecureServer({ cert, key, allowHTTP1: false });

server.on('session', (s) => {
  s.skId = ++st.sessions;
  s.skInFlight = 0;
  s.on('error', () => {}); // a client gone: its streams close, which is all that counts here
});
server.on('unknownProtocol', (socket) => {
  st.unknown_protocol++;
  socket.destroy();
});
server.on('tlsClientError', (e) => {
  st.tls_client_errors++;
  const m = e && e.code ? e.code + (e.reason ? ': ' + e.reason : '') : String(e && e.message).split('\n')[0];
  if (st.tls_client_error_messages.length < 5 && !st.tls_client_error_messages.includes(m))
    st.tls_client_error_messages.push(m);
});

function send(res, status, body, type) {
  if (res.stream.destroyed || res.headersSent) return false;
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': type || 'application/json' });
  res.end(text);
  return true;
}

server.on('request', (req, res) => {
  const session = req.stream.session;
  const path = req.url.split('?')[0];
  if (req.method === 'GET' && path === '/stats') {
    send(res, 200, summary());
    return;
  }
  // Counted from its arrival to its answer (or its reset).
  const sid = session.skId;
  st.requests++;
  st.requests_by_session[sid] = (st.requests_by_session[sid] || 0) + 1;
  st.by_version[req.httpVersion] = (st.by_version[req.httpVersion] || 0) + 1;
  if (req.httpVersion !== '2.0') st.non_http2++;
  inFlight++;
  session.skInFlight++;
  st.max_in_flight = Math.max(st.max_in_flight, inFlight);
  st.max_streams_one_session = Math.max(st.max_streams_one_session, session.skInFlight);
  const rec = {
    n: st.requests, t_ms: Date.now(), session: sid, http_version: req.httpVersion, in_flight: inFlight,
    in_flight_session: session.skInFlight, method: req.method, path: req.url, status: null, replay: false,
    idempotency_key: req.headers['idempotency-key'] === undefined ? null : req.headers['idempotency-key'],
    batch_validation: req.headers['x-batch-validation'] === undefined ? null : req.headers['x-batch-validation'],
    emails: 0, accepted: 0, tos: [],
  };
  let ended = false, held = null;
  const end = (status) => {
    if (ended) return;
    ended = true;
    inFlight--;
    session.skInFlight--;
    if (held) held.inProgress = false;
    rec.status = status;
    if (status !== null) st.by_status[status] = (st.by_status[status] || 0) + 1;
    if (opt.log) fs.appendFileSync(opt.log, JSON.stringify(rec) + '\n');
  };
  req.on('error', () => {});
  res.on('error', () => {});
  res.on('close', () => end(null)); // reset by the client before the answer
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const text = Buffer.concat(chunks).toString('utf8');
    const a = route(req, path, text, rec);
    if (a.held) held = a.held;
    setTimeout(() => {
      if (send(res, a.status, a.body, a.type)) end(a.status);
      else end(null);
    }, opt.delayMs);
  });
});

// Steps 1 to 6 above for one request: {status, body, type?, held?}.
function route(req, path, text, rec) {
  try {
    const j = JSON.parse(text);
    const list = Array.isArray(j) ? j : [j];
    rec.emails = list.length;
    for (const e of list) if (isObject(e)) rec.tos.push(Array.isArray(e.to) ? e.to.join(',') : e.to);
  } catch (e) { /* checked below */ }
  if (!req.headers['user-agent']) return { status: 403, body: 'error code: 1010', type: 'text/plain' };
  if (path !== '/emails' && path !== '/emails/batch')
    return err(404, 'not_found', 'The requested endpoint does not exist.');
  if (req.method !== 'POST') return err(405, 'method_not_allowed', 'Method is not allowed for the requested path.');
  const m = /^Bearer +(\S+)\s*$/.exec(req.headers.authorization || '');
  if (!m) return err(401, 'missing_api_key', 'Missing API key in the authorization header');
  const apiKey = m[1];
  if (opt.apiKey !== null ? apiKey !== opt.apiKey : !/^re_[A-Za-z0-9_-]+$/.test(apiKey))
    return err(opt.apiKey !== null ? 401 : 400, 'validation_error', 'API key is invalid');
  let mode = 'strict';
  if (path === '/emails/batch' && rec.batch_validation !== null) {
    mode = rec.batch_validation.toLowerCase();
    if (mode !== 'strict' && mode !== 'permissive')
      return err(422, 'validation_error', 'Invalid `x-batch-validation` header. It must be `strict` or `permissive`.');
  }
  const ikey = rec.idempotency_key;
  let payload = null, slot = null;
  if (ikey !== null) {
    if (Buffer.byteLength(ikey) < 1 || Buffer.byteLength(ikey) > 256)
      return err(400, 'invalid_idempotency_key', 'Idempotency keys, if present, must have between 1 and 256 characters.');
    try {
      payload = canonical(JSON.parse(text));
    } catch (e) {
      payload = text;
    }
    slot = apiKey + '\n' + ikey;
    const old = keys.get(slot);
    if (old) {
      if (old.inProgress)
        return err(409, 'concurrent_idempotent_requests', 'There is another request in progress with the same idempotency key.');
      if (old.endpoint !== path || old.mode !== mode || old.payload !== payload)
        return err(409, 'invalid_idempotent_request', 'This idempotency key has been used with this HTTP method and ' +
          "endpoint within the last 24 hours, but the request body was modified and doesn't match the original request.");
      st.replays++;
      rec.replay = true;
      return { status: old.status, body: old.body };
    }
  }
  const a = answer(path, mode, text, rec);
  if (a.status === 200 && slot !== null) {
    const held = { endpoint: path, mode, payload, inProgress: true, status: a.status, body: a.body };
    keys.set(slot, held);
    a.held = held;
  }
  return a;
}

server.on('error', (e) => {
  process.stderr.write(`h2-resend.js: ${e.message}\n`);
  process.exit(1);
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${server.address().port}\n`);
  process.stderr.write(`h2-resend.js: listening on https://127.0.0.1:${server.address().port} (HTTP/2 only)\n`);
});

function stop() {
  const text = JSON.stringify(summary()) + '\n';
  if (opt.stats) {
    fs.writeFileSync(opt.stats + '.tmp', text);
    fs.renameSync(opt.stats + '.tmp', opt.stats);
  } else {
    process.stdout.write(text);
  }
  process.exit(0); // the sessions and the listening socket close with the process
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
