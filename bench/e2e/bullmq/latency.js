// latency.js: what resend-mock accepted, against when the app wrote each user's first project.
//
//   node latency.js STAMPS EMAILS_JSON API_KEY
//
// STAMPS: "uN <epoch µs>" lines from write.js --stamps (the action writes). EMAILS_JSON: the body of
// GET /_mock/emails. Only the emails sent with API_KEY count. An email belongs to the user of its
// `to` address (uN@example.com); its acceptance time is the mock's created_at (wall clock, µs).
// Prints "key value" lines: emails (accepted), distinct (distinct `to`), duplicates (emails beyond
// the first for a user), unknown (a `to` with no stamp), missing (stamped users with no email),
// first_write_us, last_accept_us, span_ms (first action write to the last acceptance), p50_ms,
// p99_ms, max_ms (per user: its first acceptance minus its action write).
'use strict';

const fs = require('fs');

const [stampsFile, emailsFile, apiKey] = process.argv.slice(2);
if (!apiKey) {
  console.error('usage: node latency.js STAMPS EMAILS_JSON API_KEY');
  process.exit(2);
}
const written = new Map();
for (const line of fs.readFileSync(stampsFile, 'utf8').split('\n')) {
  if (!line) continue;
  const [id, t] = line.split(' ');
  written.set(id, Number(t));
}
// "2026-04-03 22:13:42.674981+00" -> µs since the epoch.
function createdAtUs(s) {
  const m = /^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{6})\+00$/.exec(s);
  if (!m) throw new Error(`unexpected created_at '${s}'`);
  const sec = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]) / 1000;
  return sec * 1e6 + Number(m[7]);
}
const accepted = new Map();
let emails = 0, duplicates = 0, unknown = 0;
for (const e of JSON.parse(fs.readFileSync(emailsFile, 'utf8'))) {
  if (e.api_key !== apiKey) continue;
  emails++;
  const to = Array.isArray(e.request.to) ? e.request.to.join(',') : e.request.to;
  const id = /^(u\d+)@example\.com$/.exec(to);
  if (!id || !written.has(id[1])) {
    unknown++;
    continue;
  }
  if (accepted.has(id[1])) {
    duplicates++;
    continue;
  }
  accepted.set(id[1], createdAtUs(e.created_at));
}
const lat = [];
let firstWrite = Infinity, lastAccept = 0;
for (const t of written.values()) firstWrite = Math.min(firstWrite, t);
for (const [id, t] of accepted) {
  lat.push((t - written.get(id)) / 1000);
  lastAccept = Math.max(lastAccept, t);
}
lat.sort((a, b) => a - b);
const pct = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.ceil((p / 100) * lat.length) - 1)] : NaN);
const out = {
  emails, distinct: accepted.size, duplicates, unknown, missing: written.size - accepted.size,
  first_write_us: firstWrite, last_accept_us: lastAccept,
  span_ms: ((lastAccept - firstWrite) / 1000).toFixed(1),
  p50_ms: pct(50).toFixed(1), p99_ms: pct(99).toFixed(1), max_ms: pct(100).toFixed(1),
};
for (const [k, v] of Object.entries(out)) console.log(`${k} ${v}`);
