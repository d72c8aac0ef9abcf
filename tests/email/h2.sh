#!/usr/bin/env bash
# email_h2: email through a Resend served over HTTP/2 and TLS, as the real API is. h2-resend.js is
# an HTTP/2-only TLS server (the certificate with-redis.sh --tls made) that answers as Resend does,
# each answer held 150 ms so that requests overlap; skene-vm run trusts its CA through SKENE_HTTP_CA.
#   1. SKENE_HTTP_CA that cannot be read, or holds no certificate: the start is refused, one message.
#   2. The server is real (a client of its own, over HTTP/2): 401 without the key, 422 for a missing
#      field, the same key and body answered again as a replay, 409 for another body or while the
#      first is held, strict and permissive batches; an HTTP/1.1 client is refused.
#   3. 400 users sign up, 300 of them with a first project, all written at once, SKENE_RESEND_RPS
#      10000 (the limiter does not pace): every request came over HTTP/2, all on one connection, with
#      more than one stream in flight on it at some moment (multiplexing); exactly one accepted email
#      per activated user and none for the others; every answer 200, no replay.
#   4. Without SKENE_HTTP_CA (the system store does not know the test CA): the worker logs a
#      certificate error, no request reaches the server, nothing is accepted.
#   usage: with-redis.sh --tls -- h2.sh SKENEC SKENE_VM RESEND_MOCK   (the mock is not used)
# Knobs: EM_USERS (400; each fourth does not activate), EM_H2_DELAY_MS (150).
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
em_init email_h2 "$@"
users=${EM_USERS:-400}
delay=${EM_H2_DELAY_MS:-150}
EM_RPS=10000 # the most SKENE_RESEND_RPS takes: the limiter must not serialize the requests
activated() { (($1 % 4 != 0)); }
n_activated=$((users - users / 4))
if [[ -z "${SKENE_TEST_TLS_CERT:-}" || -z "${SKENE_TEST_TLS_KEY:-}" || -z "${SKENE_TEST_REDIS_CA:-}" ]]; then
    fatal "SKENE_TEST_TLS_CERT, SKENE_TEST_TLS_KEY or SKENE_TEST_REDIS_CA is not set: run me under with-redis.sh --tls"
fi
CA=$SKENE_TEST_REDIS_CA # the CA of the server's certificate (and of Redis's: the same one)

# ---- the HTTP/2 server ----

# h2_start [h2-resend.js options]: on a free loopback port; sets H2_URL, H2_PID, H2_LOG (its request
# log) and H2_STATS (the summary it writes on SIGTERM).
h2_start() {
    H2_RUNS=$((${H2_RUNS:-0} + 1))
    H2_LOG=$RUN_WORK/logs/h2.$H2_RUNS.jsonl
    H2_STATS=$RUN_WORK/h2.$H2_RUNS.stats.json
    local out=$RUN_WORK/h2.$H2_RUNS.port err=$RUN_WORK/logs/h2.$H2_RUNS.stderr
    node "$EM_DIR/h2-resend.js" --api-key "$EM_API_KEY" --delay-ms "$delay" --log "$H2_LOG" \
        --stats "$H2_STATS" "$@" >"$out" 2>"$err" &
    H2_PID=$!
    RUN_PIDS[$H2_PID]=h2-resend
    local port
    if port=$(await_port "$out" "$H2_PID"); then
        H2_URL=https://127.0.0.1:$port
        return 0
    fi
    show "$err"
    fatal "h2-resend.js did not start"
}

# SIGTERM: it writes its summary and must exit 0.
h2_stop() {
    local rc
    kill -TERM "$H2_PID"
    { wait "$H2_PID"; } 2>/dev/null
    rc=$?
    unset "RUN_PIDS[$H2_PID]"
    ((rc == 0)) || fail "h2-resend.js exited with status $rc after SIGTERM (want 0)"
    [[ -s "$H2_STATS" ]] || fatal "h2-resend.js wrote no summary to $(basename "$H2_STATS")"
}

# h2 NAME: one value of the last summary (a/b for a member; objects and arrays as JSON; absent: 0).
h2() {
    node -e '
        let v = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
        for (const k of process.argv[2].split("/")) v = v === undefined || v === null ? undefined : v[k];
        process.stdout.write(v === undefined || v === null ? "0" : typeof v === "object" ? JSON.stringify(v) : String(v));
    ' "$H2_STATS" "$1"
}

# h2_worker_start ID CA [run options]: skene-vm run against the server, trusting CA through
# SKENE_HTTP_CA (none when CA is ""); Redis over TLS with SKENE_REDIS_CA. No proxy, and none of the
# variables that could point OpenSSL or curl at another store.
h2_worker_start() {
    local id=$1 ca=$2
    shift 2
    W_ENV=(-u UPSTASH_REDIS_URL -u SKENE_REDIS_PREFIX -u SKENE_WORKER -u SKENE_RESEND_BURST -u SKENE_HTTP_CA
        -u SSL_CERT_FILE -u SSL_CERT_DIR -u CURL_CA_BUNDLE -u http_proxy -u HTTP_PROXY -u https_proxy
        -u HTTPS_PROXY -u all_proxy -u ALL_PROXY
        REDIS_URL="$SKENE_TEST_REDIS_URL" SKENE_REDIS_CA="$CA" RESEND_API_KEY="$EM_API_KEY"
        RESEND_API_URL="$H2_URL" SKENE_RESEND_RPS="$EM_RPS" SKENE_EMAIL_FROM="$EM_FROM" SKENE_OUTBOX="$EM_OUTBOX")
    [[ -n "$ca" ]] && W_ENV+=(SKENE_HTTP_CA="$ca")
    worker_run "$id" "$@"
}

build_skb "$RUN_ROOT/examples/activation/skene.config.ts"

# ---- 1. an SKENE_HTTP_CA that cannot be used stops the start ----
say "-- 1. SKENE_HTTP_CA unreadable, or not a certificate: the start is refused"
# start_refused CA WANT: skene-vm run must exit 1 at once with the line WANT and one problem.
start_refused() {
    local ca=$1 want=$2 rc out=$RUN_WORK/refused.out err=$RUN_WORK/refused.err
    timeout 5 env -u UPSTASH_REDIS_URL -u SKENE_REDIS_PREFIX REDIS_URL="$SKENE_TEST_REDIS_URL" \
        SKENE_REDIS_CA="$CA" RESEND_API_KEY="$EM_API_KEY" RESEND_API_URL=https://127.0.0.1:9 \
        SKENE_EMAIL_FROM="$EM_FROM" SKENE_OUTBOX="$EM_OUTBOX" SKENE_HTTP_CA="$ca" \
        "$SKENE_VM" run --worker refused "$RUN_SKB" >"$out" 2>"$err"
    rc=$?
    if ((rc == 1)) && [[ "$(cat "$err")" == "$want"$'\n'"skene-vm: run: 1 problem; not starting" && ! -s "$out" ]]; then
        ok "refused (exit 1): $want"
    else
        fail "SKENE_HTTP_CA=$ca: exit $rc (want 1), stderr (want '$want' and '1 problem'):"
        show "$err"
    fi
    ! grep -qF "$EM_API_KEY" "$out" "$err" || fail "the API key is in the output of the refused start"
}
start_refused "$RUN_WORK/no-such-ca.pem" \
    "skene-vm: cannot load the CA file '$RUN_WORK/no-such-ca.pem' (SKENE_HTTP_CA): No such file or directory"
start_refused "$RUN_SKB" "skene-vm: cannot load the CA file '$RUN_SKB' (SKENE_HTTP_CA): no PEM certificate in it"

# ---- 2. the server answers as Resend does ----
say "-- 2. h2-resend.js: its own checks, through a client of its own"
h2_start --delay-ms 30 # enough to hold the first of two requests sent at once
# One request after the other unless said; each line: what, status, Resend's name or what came back.
node - "$H2_URL" "$CA" "$EM_API_KEY" >"$RUN_WORK/probe.out" 2>"$RUN_WORK/probe.err" <<'EOF'
'use strict';
const http2 = require('http2'), https = require('https'), fs = require('fs');
const [url, caFile, key] = process.argv.slice(2);
const ca = fs.readFileSync(caFile);
const c = http2.connect(url, { ca });
c.on('error', (e) => { console.error('session: ' + e.message); process.exit(1); });
function req(method, path, headers, body) {
  return new Promise((resolve, reject) => {
    const s = c.request(Object.assign({ ':method': method, ':path': path, 'user-agent': 'probe',
      'content-type': 'application/json' }, headers));
    let status = 0, text = '';
    s.on('response', (h) => { status = h[':status']; });
    s.setEncoding('utf8');
    s.on('data', (d) => { text += d; });
    s.on('end', () => { try { resolve({ status, body: JSON.parse(text) }); } catch (e) { resolve({ status, body: text }); } });
    s.on('error', reject);
    s.end(body === undefined ? undefined : JSON.stringify(body));
  });
}
const auth = { authorization: 'Bearer ' + key };
const mail = (to, extra) => Object.assign({ from: 'Acme <hello@acme.example>', to, subject: 'Hi', html: '<p>Hi</p>' }, extra);
const out = (what, r, said) => console.log([what, r.status, said !== undefined ? said : r.body.name].join('\t'));
(async () => {
  out('no key', await req('POST', '/emails', {}, mail('p@example.com')));
  out('wrong key', await req('POST', '/emails', { authorization: 'Bearer re_wrong' }, mail('p@example.com')));
  const noTo = mail('p@example.com');
  delete noTo.to;
  const r = await req('POST', '/emails', auth, noTo);
  out('no to', r, r.body.name + ': ' + r.body.message);
  out('no body', await req('POST', '/emails', auth, mail('p@example.com', { html: undefined })));
  out('bad from', await req('POST', '/emails', auth, mail('p@example.com', { from: 'not an address' })));
  const first = await req('POST', '/emails', Object.assign({ 'idempotency-key': 'k1' }, auth), mail('p1@example.com'));
  out('k1', first, first.body.id ? 'id' : JSON.stringify(first.body));
  const again = await req('POST', '/emails', Object.assign({ 'idempotency-key': 'k1' }, auth),
    { html: '<p>Hi</p>', subject: 'Hi', to: 'p1@example.com', from: 'Acme <hello@acme.example>' });
  out('k1 again, keys reordered', again, again.body.id === first.body.id ? 'the same id' : JSON.stringify(again.body));
  out('k1, another body', await req('POST', '/emails', Object.assign({ 'idempotency-key': 'k1' }, auth), mail('p2@example.com')));
  const both = await Promise.all([1, 2].map(() =>
    req('POST', '/emails', Object.assign({ 'idempotency-key': 'k2' }, auth), mail('p3@example.com'))));
  out('k2 twice at once', { status: both.map((x) => x.status).join(',') }, both[1].body.name);
  out('strict batch', await req('POST', '/emails/batch', auth, [mail('p4@example.com'), mail('p5@example.com', { subject: '' })]));
  const p = await req('POST', '/emails/batch', Object.assign({ 'x-batch-validation': 'permissive' }, auth),
    [mail('p4@example.com'), mail('p5@example.com', { subject: '' })]);
  out('permissive batch', p, `data ${p.body.data.length}, errors ${JSON.stringify(p.body.errors)}`);
  out('GET /emails', await req('GET', '/emails', auth));
  out('no route', await req('POST', '/domains', auth, {}));
  const st = (await req('GET', '/stats', {})).body;
  console.log(['stats', st.sessions, st.requests, st.emails_accepted, st.distinct_recipients, st.replays,
    st.max_streams_one_session, JSON.stringify(st.by_version)].join('\t'));
  c.close();
  // HTTP/1.1 (no h2 by ALPN): the connection is closed, no answer.
  await new Promise((resolve) => {
    const r1 = https.request(url + '/emails', { method: 'POST', ca, headers: auth }, (res) => {
      console.log('http/1.1\t' + res.statusCode);
      res.resume();
      res.on('end', resolve);
    });
    r1.on('error', () => { console.log('http/1.1\trefused'); resolve(); });
    r1.end('{}');
  });
})().catch((e) => { console.error(e.stack); process.exit(1); });
EOF
rc=$?
h2_stop
cat >"$RUN_WORK/probe.want" <<'EOF'
no key	401	missing_api_key
wrong key	401	validation_error
no to	422	missing_required_field: Missing `to` field.
no body	422	missing_required_field
bad from	422	validation_error
k1	200	id
k1 again, keys reordered	200	the same id
k1, another body	409	invalid_idempotent_request
k2 twice at once	200,409	concurrent_idempotent_requests
strict batch	422	missing_required_field
permissive batch	200	data 1, errors [{"index":1,"message":"Missing `subject` field."}]
GET /emails	405	method_not_allowed
no route	404	not_found
stats	1	14	3	3	1	2	{"2.0":14}
http/1.1	refused
EOF
if ((rc == 0)) && cmp -s "$RUN_WORK/probe.want" "$RUN_WORK/probe.out"; then
    ok "401 without the key or with another, 422 for a missing field or a bad address, a replay for the" \
        "same key and body (same id), 409 for another body and while the first is held, strict and" \
        "permissive batches, 404/405; its counters agree; an HTTP/1.1 client is refused"
else
    fail "h2-resend.js does not answer as Resend does (exit $rc; - wanted, + got):"
    diff -u "$RUN_WORK/probe.want" "$RUN_WORK/probe.out" | sed -n '3,40p' | sed 's/^/        /'
    show "$RUN_WORK/probe.err"
fi
unknown=$(h2 unknown_protocol)
((unknown == 1)) && ok "the server counted the HTTP/1.1 connection (unknown_protocol 1)" ||
    fail "unknown_protocol $unknown after one HTTP/1.1 connection (want 1)"

# ---- 3. sign-ups over one HTTP/2 connection ----
say "-- 3. $users sign-ups, $n_activated first projects, answers held $delay ms"
h2_start
h2_worker_start w1 "$CA" --time-scale 300 # the condition's 5m timeout: 1 s
for ((n = 1; n <= users; n++)); do
    echo "user $n"
    activated "$n" && echo "action $n"
done >"$RUN_WORK/plan"
t0=$(now_ms)
write_plan "$RUN_WORK/plan"
wait_for 20 "every instance to end" all_ended "$users"
say "every instance ended $(($(now_ms) - t0)) ms after the writes"
sleep 0.3 # anything sent late would show now
worker_stop w1
h2_stop
requests=$(h2 requests)
say "the server: $requests requests ($(h2 batches) batches), $(h2 sessions) session(s), at most" \
    "$(h2 max_streams_one_session) streams in flight on one, by status $(h2 by_status), by version $(h2 by_version)"
logged=$(grep -c . "$H2_LOG")
((requests > 0 && logged == requests)) || fail "$requests requests counted, $logged in the request log"

# Every request over HTTP/2; one connection; multiplexed.
v2=$(h2 by_version/2.0)
if ((requests > 0 && v2 == requests && $(h2 non_http2) == 0 && $(h2 unknown_protocol) == 0 &&
    $(h2 tls_client_errors) == 0)) &&
    ! node -e 'process.exit(require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean)
        .some((l) => JSON.parse(l).http_version !== "2.0") ? 0 : 1)' "$H2_LOG"; then
    ok "all $requests requests came over HTTP/2 (none over another version, no connection without h2," \
        "no failed handshake: a client offering only HTTP/1.1 would be one)"
else
    fail "requests over HTTP/2: $v2 of $requests; by version $(h2 by_version), non_http2 $(h2 non_http2)," \
        "unknown_protocol $(h2 unknown_protocol), failed handshakes $(h2 tls_client_errors)"
fi
if (($(h2 sessions) == 1 && $(h2 sessions_with_requests) == 1)); then
    ok "one connection: 1 session opened, all $requests requests on it ($(h2 requests_by_session))"
else
    fail "$(h2 sessions) sessions opened, $(h2 sessions_with_requests) with requests ($(h2 requests_by_session)):" \
        "want one connection, reused"
fi
streams=$(h2 max_streams_one_session)
multi=$(node -e 'let n = 0; for (const l of require("fs").readFileSync(process.argv[1], "utf8").split("\n"))
    if (l && JSON.parse(l).in_flight_session > 1) n++; process.stdout.write(String(n))' "$H2_LOG")
if ((streams > 1 && multi > 0)); then
    ok "multiplexed: up to $streams streams in flight at once on one session;" \
        "$multi of $requests requests arrived while another was in flight there"
else
    fail "at most $streams stream in flight on a session ($multi requests arrived while another was): no multiplexing"
fi

# Exactly one email per activated user, none for the others; every answer 200, nothing sent twice.
node -e 'for (const t of JSON.parse(process.argv[1])) console.log(t)' "$(h2 accepted_to)" | sort >"$RUN_WORK/emails.to"
for ((n = 1; n <= users; n++)); do activated "$n" && echo "u$n@example.com"; done | sort >"$RUN_WORK/emails.want"
check_one_per_user "$RUN_WORK/emails.to" "$RUN_WORK/emails.want" "$users" "the HTTP/2 server"
total=$(grep -c . "$RUN_WORK/emails.to")
if (($(h2 emails_accepted) == total && $(h2 distinct_recipients) == total)); then
    ok "its own counters agree: $total accepted, $total distinct recipients"
else
    fail "its counters disagree with the list: $(h2 emails_accepted) accepted, $(h2 distinct_recipients) distinct recipients, $total listed"
fi
statuses=$(h2 by_status)
[[ "$statuses" == "{\"200\":$requests}" ]] && ok "every answer 200 (no 4xx, no 5xx)" ||
    fail "answers by status: $statuses (want only 200)"
replays=$(h2 replays)
((replays == 0)) && ok "no request sent twice (0 idempotent replays)" || fail "$replays idempotent replays: requests sent twice"
completed=$(wlog | awk -F'\t' '$2 == "instance.end" && $8 == "completed"' | wc -l)
timed_out=$(wlog | awk -F'\t' '$2 == "instance.end" && $8 == "timed_out"' | wc -l)
if ((completed == n_activated && timed_out == users - n_activated)); then
    ok "$completed instances completed, $timed_out timed out (the users without a first project)"
else
    fail "$completed instances completed (want $n_activated), $timed_out timed out (want $((users - n_activated)))"
fi
dead=$(rcli XLEN skene:dlq)
((dead == 0)) && ok "no dead letter" || fail "$dead dead letters"

# ---- 4. without SKENE_HTTP_CA the server is not trusted ----
say "-- 4. without SKENE_HTTP_CA: the system store does not know the test CA"
rcli FLUSHALL >/dev/null
W_ALL_LOGS=() # this part's worker only
h2_start
h2_worker_start w2 "" --time-scale 300
printf 'user %s\naction %s\n' 1 1 2 2 3 3 >"$RUN_WORK/plan.untrusted"
write_plan "$RUN_WORK/plan.untrusted"
failed_3() {
    local n
    n=$(wlog | awk -F'\t' '$2 == "instance.end" && $8 == "failed"' | wc -l)
    RUN_MISSING="$n of 3 instances ended failed; last lines: $(last_lines u1)"
    ((n == 3))
}
wait_for 15 "3 instances to fail" failed_3
worker_stop w2
h2_stop
wlog >"$RUN_WORK/untrusted"
reasons=$(awk -F'\t' '$2 == "action.retry" || $2 == "instance.end" { print $9 }' "$RUN_WORK/untrusted" | sort -u)
if [[ -n "$reasons" ]] && ! grep -qv 'certificate' <<<"$reasons"; then
    ok "every retry and failure gives a certificate error: $(head -1 <<<"$reasons")"
else
    fail "the worker's reasons (want a certificate error in each): $(tr '\n' ';' <<<"$reasons")"
fi
if (($(h2 requests) == 0 && $(h2 sessions) == 0 && $(h2 emails_accepted) == 0 && $(h2 tls_client_errors) > 0)); then
    ok "no request reached the server, nothing accepted; it saw $(h2 tls_client_errors) failed handshakes:" \
        "$(h2 tls_client_error_messages)"
else
    fail "the server saw $(h2 requests) requests, $(h2 sessions) sessions, $(h2 emails_accepted) emails," \
        "$(h2 tls_client_errors) failed handshakes (want 0, 0, 0, some)"
fi
dead=$(rcli XLEN skene:dlq)
((dead == 3)) && ok "3 dead letters" || fail "$dead dead letters (want 3)"
em_done
