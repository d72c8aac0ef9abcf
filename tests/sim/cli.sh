#!/usr/bin/env bash
# cli.sh SKENEC SKENE_VM: skene-vm's command line: --help and --version, `run`'s usage errors and start-up checks,
# usage errors (exit 2), a corrupt, truncated or foreign .skb (exit 1, the verifier's message), bad
# scenarios (exit 1, "FILE: json.path: message", or FILE:LINE:COL for JSON syntax), a missing file
# (exit 2), the warning for a table no loop uses, --quiet, and `generate` with its placeholders.
set -u
skenec=$(realpath "$1") vm=$(realpath "$2")
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 2
pass=0 fail=0
check() { # check NAME WANT_RC ACTUAL_RC
  if [ "$2" = "$3" ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1: exit $3, expected $2" >&2; fi
}
contains() { # contains NAME FILE TEXT
  if grep -qF -- "$3" "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1: no '$3' in:" >&2; cat "$2" >&2; fi
}
same() { # same NAME FILE TEXT: the whole file is exactly TEXT (and a newline)
  if [ "$(cat "$2")" = "$3" ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1: got '$(cat "$2")', expected '$3'" >&2; fi
}

"$vm" --help >out; check help 0 $?
contains help out "usage: skene-vm simulate"
contains "help documents run" out "skene-vm run [--worker ID]"
contains "help documents the outbox" out "SKENE_OUTBOX"
"$vm" --version >out; check version 0 $?
contains version out "bytecode format 1.0"
"$vm" 2>err; check "no command" 2 $?
contains "no command" err "a command is needed"
"$vm" frobnicate 2>err; check "unknown command" 2 $?
"$vm" run x.skb 2>err; check "run missing file" 2 $?
same "run missing file" err "skene-vm: cannot read x.skb: No such file or directory"
"$vm" run 2>err; check "run no file" 2 $?
contains "run no file" err "run needs FILE.skb"
"$vm" run --time-scale 0 x.skb 2>err; check "run bad scale" 2 $?
contains "run bad scale" err "--time-scale needs a positive number, not '0'"
"$vm" simulate x.skb 2>err; check "one file" 2 $?
"$vm" simulate --format xml x.skb s.json 2>err; check "bad format" 2 $?
contains "bad format" err "unknown format 'xml'"
"$vm" simulate --frob x.skb s.json 2>err; check "unknown option" 2 $?

"$skenec" build -o w.skb "$here/welcome/skene.config.ts" || exit 1
echo '{}' >empty.json
# run's start-up checks: every problem, one line each, exit 1, nothing started.
env -u REDIS_URL -u UPSTASH_REDIS_URL -u SKENE_EMAIL_FROM SKENE_OUTBOX="$PWD/ob" "$vm" run w.skb 2>err
check "run checks" 1 $?
contains "run checks: no url" err "REDIS_URL is not set (or UPSTASH_REDIS_URL)"
contains "run checks: no from" err "this email has no \`from\` and SKENE_EMAIL_FROM is not set"
contains "run checks: count" err "run: 2 problems; not starting"
env REDIS_URL='redis://127.0.0.1:notaport' SKENE_EMAIL_FROM='A <a@example.com>' SKENE_OUTBOX="$PWD/ob" "$vm" run w.skb 2>err
check "run bad url" 1 $?
contains "run bad url" err "bad REDIS_URL"
env REDIS_URL='redis://127.0.0.1:1' SKENE_EMAIL_FROM='A <a@example.com>' SKENE_OUTBOX="$PWD/ob" "$vm" run w.skb 2>err
check "run refused" 1 $?
contains "run refused" err "cannot connect to 127.0.0.1:1"
"$vm" simulate missing.skb empty.json 2>err; check "missing skb" 2 $?
contains "missing skb" err "cannot read missing.skb"
"$vm" simulate w.skb missing.json 2>err; check "missing scenario" 2 $?
contains "missing scenario" err "cannot read missing.json"
"$vm" simulate w.skb empty.json >out; check "empty scenario" 0 $?
same "empty scenario prints nothing" out ""

# Damaged bytecode: refused with the verifier's message, never run.
head -c 100 w.skb >trunc.skb
"$vm" simulate trunc.skb empty.json 2>err; check truncated 1 $?
contains truncated err "trunc.skb: "
cp w.skb flip.skb
printf '\x55' | dd of=flip.skb bs=1 seek=200 conv=notrunc 2>/dev/null
"$vm" simulate flip.skb empty.json 2>err; check corrupt 1 $?
contains corrupt err "flip.skb: hash mismatch: file is corrupt"
echo 'not bytecode' >text.skb
"$vm" simulate text.skb empty.json 2>err; check "not a skb" 1 $?
contains "not a skb" err "text.skb: "

# Bad scenarios: exit 1 and the place of the problem.
bad() { # bad NAME JSON EXPECTED_STDERR
  printf '%s\n' "$2" >"$1.json"
  "$vm" simulate w.skb "$1.json" >/dev/null 2>err; check "$1" 1 $?
  same "$1" err "$3"
}
bad syntax '{"events": [ }' "syntax.json:1:14: unexpected token near '}'"
bad duration '{"events": [{"at":"0s","table":"users","id":"u1","row":{}}, {"at":"0s","table":"users","id":"u2","row":{}},
 {"at":"0s","table":"users","id":"u3","row":{}}, {"at":"5 minutes","table":"users","id":"u4","row":{}}]}' \
  "duration.json: events[3].at: invalid duration '5 minutes': use '250ms', '30s', '5m', '2h', '7d' or a number of milliseconds"
bad negative '{"until": -5}' "negative.json: until: invalid duration -5: must be 0 to 3650d in ms"
bad unknown_key '{"evnts": []}' \
  "unknown_key.json: unknown key 'evnts' (expected: description, start, until, seed, rows, events, faults, redis, generate)"
bad start '{"start": "2026-02-30T00:00:00Z"}' \
  "start.json: start: invalid time '2026-02-30T00:00:00Z': use UTC ISO 8601, 'YYYY-MM-DDTHH:MM:SS[.mmm]Z'"
bad no_row '{"events": [{"at": "1s", "table": "users", "id": "u1"}]}' \
  "no_row.json: events[0]: 'row' is required (an object of the row's fields)"
bad row_type '{"rows": [{"table": "users", "id": "u1", "row": [1]}]}' "row_type.json: rows[0].row: must be an object of the row's fields"
bad op '{"events": [{"at": "1s", "table": "users", "id": "u1", "op": "delete", "row": {}}]}' \
  "op.json: events[0].op: invalid op 'delete': use 'insert' or 'update'"
bad provider '{"faults": [{"provider": "sendgrid", "status": 500}]}' \
  "provider.json: faults[0].provider: unknown provider 'sendgrid': use resend, outbox, webhook or redis"
bad status '{"faults": [{"provider": "resend"}]}' \
  "status.json: faults[0]: give either 'status' (an HTTP status) or \"error\": \"timeout\""
bad redis_shape '{"redis": ["SET k v"]}' \
  "redis_shape.json: redis[0]: must be a command: an array of 1 to 64 strings, e.g. [\"SADD\", \"onboarded\", \"u1\"]"
bad redis_cmd '{"redis": [["SET", "k", "v"], ["FLUSHALL"]]}' \
  "redis_cmd.json: redis[1]: the simulator's Redis refused 'FLUSHALL' (unknown command, or wrong arguments or type)"
bad placeholder '{"generate": [{"count": 2, "table": "users", "id": "u{n*x}"}]}' \
  "placeholder.json: generate[0].id: invalid placeholder in 'u{n*x}': use {n}, {n*K} or {n+K} with K below 2^31"
bad dup '{"seed": 1, "seed": 2}' "dup.json:1:18: duplicate object key near '\"seed\"'"

# A table no loop uses: a warning (probably a typo), not an error.
echo '{"events": [{"at": "0s", "table": "user", "id": "u1", "row": {}}]}' >typo.json
"$vm" simulate w.skb typo.json >out 2>err; check "unused table" 0 $?
same "unused table" err "skene-vm: warning: typo.json: no loop uses table 'user'; its rows are stored and trigger nothing"

# generate: ids and fields from {n}, {n*K}, {n+K}, lazily merged with events in time order.
cat >gen.json <<'JSON'
{ "until": "10m",
  "events": [ {"at": "2m", "table": "users", "id": "x", "row": {"email": "x@example.com", "activation_link": "L"}} ],
  "generate": [
    {"count": 3, "every": "1m", "table": "users", "id": "u{n}",
     "row": {"name": "User {n+1}", "email": "u{n}@example.com", "activation_link": "https://app.example/a/{n}", "plan": 3}},
    {"count": 2, "start": "30s", "every": "2m", "table": "user_actions", "id": "a{n}",
     "row": {"user_id": "u{n*2}", "action_type": "first_project_created"}} ] }
JSON
"$vm" simulate --quiet w.skb gen.json >out; check "generate quiet" 0 $?
contains "quiet summary" out "summary: started 4, completed 2, timed_out 2, skipped 0, failed 0, still waiting 0; dead letters 0; emails and webhooks sent 2"
contains "quiet bench line" out "instances/s"
"$vm" simulate w.skb gen.json | node -e '
const ev = require("fs").readFileSync(0, "utf8").trim().split("\n").map((l) => JSON.parse(l));
const got = ev.filter((e) => ["instance.start", "action.ok", "instance.end"].includes(e.event))
  .map((e) => [e.t_ms, e.subject, e.event]);
const want = [[0, "u0", "instance.start"], [30000, "u0", "action.ok"], [30000, "u0", "instance.end"],
  [60000, "u1", "instance.start"], [120000, "x", "instance.start"], [120000, "u2", "instance.start"],
  [150000, "u2", "action.ok"], [150000, "u2", "instance.end"],
  [360000, "u1", "instance.end"], [420000, "x", "instance.end"]];
const subjects = ev.filter((e) => e.event === "action.ok").map((e) => e.email.subject);
const ok = JSON.stringify(got) === JSON.stringify(want) &&
  JSON.stringify(subjects) === JSON.stringify(["Welcome, User 1", "Welcome, User 3"]);
if (!ok) console.log(JSON.stringify(got), JSON.stringify(subjects));
process.exit(ok ? 0 : 1);'
check "generate timeline" 0 $?

echo "cli: $pass passed, $fail failed"
[ "$fail" = 0 ]
