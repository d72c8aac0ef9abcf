# lib.sh: what the email tests share (tests/email/README.md). Sourced by each test script, which runs
# under tests/redis/with-redis.sh (SKENE_TEST_REDIS_* in the environment) with the paths of skenec,
# skene-vm and resend-mock as its arguments. It sources tests/lib/run.sh: say, ok, fail, fatal,
# show, now_ms, rcli, write_plan (`user N`, `action N`; users from people.awk), build_skb (RUN_SKB),
# wait_for (RUN_MISSING), the work folder RUN_WORK, RUN_ROOT; and adds:
#
#   em_init NAME SKENEC SKENE_VM MOCK    a work folder, the trap that stops every process started here
#   em_done                               prints the verdict and exits 0 or 1
#   mock_start [OPTIONS]                  resend-mock on a free port, its request log in EM_MOCK_LOG;
#                                         sets EM_MOCK_URL
#   mock_faults JSON / mock_stat NAME     the mock's control API (json.js); mock_stop (must exit 0)
#   requests [TO]                         the mock's request log as tab-separated lines (json.js)
#   worker_start ID [RUN OPTIONS]         skene-vm run with RESEND_API_KEY=$EM_API_KEY against the mock,
#                                         waits for its worker.start line
#   worker_stop ID / worker_kill ID       SIGTERM (must exit 0) / SIGKILL
#   wlog [SUBJECT]                        the instance lines of every worker log (json.js worker)
#   ended uN / ended_with N OUTCOME / n_events EVENT N   conditions for wait_for
#   one_activation ID N [RUN OPTIONS]     user N signs up and activates; waits until the instance ends
#   check_requests N FIELDS WANT SAID WANTED / check_one_email N / check_one_each N /
#   check_outcome N OUTCOME               the assertions
#   dlq ARGS                              skene-vm dlq on the test's Redis
#
# Every process started here (workers, the mock) is stopped by its own PID, also when the script
# fails or is interrupted. The work folder is removed at the end unless EM_KEEP=1.

EM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/run.sh
source "$EM_DIR/../lib/run.sh"
RUN_KEEP=${EM_KEEP:-0}
RUN_KEPT="the logs"
RUN_POLL=0.05
RUN_PEOPLE=$EM_DIR/people.awk
EM_FROM='Acme <hello@acme.example>'
EM_API_KEY=${EM_API_KEY:-re_test_skene_email_0123456789}
EM_RPS=${EM_RPS:-1000} # SKENE_RESEND_RPS unless a test says otherwise: pacing is not what most tests look at

# ---- setup and teardown ----

em_init() {
    command -v node >/dev/null || { echo "$1: node not found (scripts/deps installs it)" >&2; exit 1; }
    run_init "$1" email "$2" "$3" "$4"
    MOCK=$4
    EM_OUTBOX=$RUN_WORK/outbox # must stay empty: with an API key, email goes to Resend only
    say "$RUN_NAME: skene-vm run, resend-mock and redis-server on 127.0.0.1:$SKENE_TEST_REDIS_PORT" \
        "(acl=${SKENE_TEST_REDIS_ACL:-0})"
}

em_done() {
    if [[ -d "$EM_OUTBOX" ]] && [[ -n "$(ls -A "$EM_OUTBOX")" ]]; then
        fail "the outbox folder has files: with RESEND_API_KEY set, no email may go there"
    fi
    # Under -DSKENE_SANITIZE=ON: a report makes a process exit non-zero, but one killed first
    # would not say so.
    local f
    for f in "$RUN_WORK"/logs/*.stderr; do
        if grep -q 'Sanitizer\|runtime error:' "$f"; then
            fail "$(basename "$f") has a sanitizer report:"
            show "$f" 20
        fi
    done
    run_done "EM_KEEP=1 keeps the logs"
}

# ---- the local Resend ----

js() { node "$EM_DIR/json.js" "$@"; }

# mock_start [resend-mock options]: on a free loopback port, its request log in EM_MOCK_LOG (one
# file per start).
mock_start() {
    EM_MOCK_RUNS=$((${EM_MOCK_RUNS:-0} + 1))
    EM_MOCK_LOG=$RUN_WORK/logs/requests.$EM_MOCK_RUNS.jsonl
    local portfile=$RUN_WORK/mock.$EM_MOCK_RUNS.port
    "$MOCK" --port 0 --port-file "$portfile" --log "$EM_MOCK_LOG" "$@" 2>"$RUN_WORK/logs/mock.$EM_MOCK_RUNS.stderr" &
    local pid=$! port
    RUN_PIDS[$pid]=mock
    EM_MOCK_PID=$pid
    if port=$(await_port "$portfile" "$pid"); then
        EM_MOCK_URL=http://127.0.0.1:$port
        return 0
    fi
    show "$RUN_WORK/logs/mock.$EM_MOCK_RUNS.stderr"
    fatal "resend-mock did not start"
}

# SIGTERM: the mock must exit 0.
mock_stop() {
    local rc
    kill -TERM "$EM_MOCK_PID"
    { wait "$EM_MOCK_PID"; } 2>/dev/null
    rc=$?
    unset "RUN_PIDS[$EM_MOCK_PID]"
    ((rc == 0)) || fail "resend-mock exited with status $rc after SIGTERM (want 0)"
}

# mock_faults JSON: replaces the mock's fault script.
mock_faults() {
    js post "$EM_MOCK_URL/_mock/faults" "$1" >"$RUN_WORK/faults.out" || {
        show "$RUN_WORK/faults.out"
        fatal "the mock refused the fault script $1"
    }
}

# One figure of /_mock/stats: a name, or by_status.CODE.
mock_stat() { js stat "$EM_MOCK_URL" "$1"; }

# ---- workers ----

# worker_start ID [run options]: skene-vm run --worker ID on RUN_SKB, email through the mock with
# EM_API_KEY, SKENE_RESEND_RPS=EM_RPS; its log in logs/ID.RUN.jsonl, its stderr next to it. Waits
# (10 s at most) for its worker.start line.
worker_start() {
    W_ENV=(-u UPSTASH_REDIS_URL -u SKENE_REDIS_PREFIX -u SKENE_WORKER -u SKENE_RESEND_BURST
        REDIS_URL="$SKENE_TEST_REDIS_URL" RESEND_API_KEY="$EM_API_KEY" RESEND_API_URL="$EM_MOCK_URL"
        SKENE_RESEND_RPS="$EM_RPS" SKENE_EMAIL_FROM="$EM_FROM" SKENE_OUTBOX="$EM_OUTBOX")
    worker_run "$@"
}

# SIGTERM: the worker drains and must exit 0 (within 20 s).
worker_stop() { worker_term "$1" 20 || fail "worker $1 exited with status $? after SIGTERM (want 0)"; }

# SIGKILL, no drain. A worker that is no longer running by then died by itself: a failure.
worker_kill() {
    local id=$1 killed=1 rc
    kill -KILL "${W_PID[$id]}" 2>/dev/null || killed=0
    worker_reap "$id"
    rc=$?
    if ((!killed)); then
        fail "worker $id had exited by itself (status $rc) before it was killed; its stderr:"
        show "$RUN_WORK/logs/$id.${W_RUNS[$id]}.stderr" 10
    fi
}

# The instance lines of every worker log so far (json.js worker), those of SUBJECT only if given:
#   ts_ms event subject attempt idempotency_key delay_ms id outcome reason
wlog() { js worker "${W_ALL_LOGS[@]}" | awk -F'\t' -v s="${1-}" 's == "" || $3 == s'; }

# ---- waiting ----

# The last two instance lines of subject $1, on one line (what a wait for it was missing).
last_lines() { wlog "$1" | tail -2 | cut -f2,4,8,9 | tr '\n\t' '; '; }

# An instance.end line for subject $1 (uN) in the logs.
ended() {
    RUN_MISSING="no instance.end for $1 yet; its last lines: $(last_lines "$1")"
    wlog "$1" | awk -F'\t' '$2 == "instance.end"' | grep -q .
}

# u<N>'s instance.end lines include one with OUTCOME (for an instance that ends more than once:
# failed, then re-driven from the dead letters).
ended_with() {
    RUN_MISSING="u$1 has not ended $2 yet; its last lines: $(last_lines "u$1")"
    wlog "u$1" | awk -F'\t' -v o="$2" '$2 == "instance.end" && $8 == o' | grep -q .
}

# N lines of EVENT in the worker logs (a cheap grep, for polling).
n_events() { # EVENT N
    local n
    n=$(cat "${W_ALL_LOGS[@]}" | grep -c "\"event\":\"$1\"")
    RUN_MISSING="$n of $2 $1 lines"
    ((n >= $2))
}

# ---- one email ----

# one_activation ID N [run options]: user N signs up and creates their first project (examples/
# activation, already built into RUN_SKB) while worker ID runs; waits (15 s) until the instance ended.
one_activation() {
    local id=$1 n=$2
    shift 2
    [[ -n "${W_PID[$id]:-}" ]] || worker_start "$id" "$@"
    printf 'user %s\naction %s\n' "$n" "$n" >"$RUN_WORK/plan.u$n"
    write_plan "$RUN_WORK/plan.u$n"
    wait_for 15 "u$n's instance to end" ended "u$n"
}

# The requests of the mock's log with their time, status, fault and key (json.js requests), those
# whose emails include TO only if given.
requests() {
    js requests "$EM_MOCK_LOG" | awk -F'\t' -v to="${1-}" '
        to == "" { print; next }
        { n = split($10, t, ","); for (i = 1; i <= n; i++) if (t[i] == to) { print; next } }'
}

# check_requests N FIELDS WANT SAID WANTED: the requests for uN@example.com (kept in RUN_WORK/reqs),
# each as its fields FIELDS (cut -f; 4 is the status) joined by commas and followed by a space, are
# WANT; all have one Idempotency-Key, and the mock received no other. ok: SAID and the key; else
# fails with WANTED and shows the requests.
check_requests() {
    local n=$1 fields=$2 want=$3 got keys
    requests "u$n@example.com" >"$RUN_WORK/reqs"
    got=$(cut -f"$fields" "$RUN_WORK/reqs" | tr '\t\n' ', ')
    keys=$(cut -f7 "$RUN_WORK/reqs" | sort -u)
    if [[ "$got" == "$want" && $(grep -c . <<<"$keys") == 1 && $(requests | wc -l) == $(wc -w <<<"$want") ]]; then
        ok "$4 $keys"
    else
        fail "$5 under one key; got:"
        show "$RUN_WORK/reqs"
    fi
}

# check_one_email N: the mock accepted exactly one email, to uN@example.com, with the idempotency key
# of the worker's action.attempt lines (all the same), and action.ok logged its id.
check_one_email() {
    local n=$1 emails keys ok_id
    emails=$(js emails "$EM_MOCK_URL")
    keys=$(wlog "u$n" | awk -F'\t' '$2 == "action.attempt" { print $5 }' | sort -u)
    ok_id=$(wlog "u$n" | awk -F'\t' '$2 == "action.ok" { print $7 }')
    if [[ $(grep -c . <<<"$emails") == 1 && $(cut -f1 <<<"$emails") == "u$n@example.com" &&
        $(cut -f2 <<<"$emails") == "$keys" && $(cut -f5 <<<"$emails") == "$ok_id" ]]; then
        ok "the mock accepted one email, to u$n@example.com, under the key of every action.attempt ($keys);" \
            "action.ok logged its id"
    else
        fail "want one email to u$n@example.com under the attempts' key '$(tr '\n' ' ' <<<"$keys")'" \
            "with the id of action.ok ('$ok_id'); the mock has: $(tr '\n' ';' <<<"$emails")"
    fi
}

# check_outcome N OUTCOME: u<N>'s instance ended once, with OUTCOME.
check_outcome() {
    local got
    got=$(wlog "u$1" | awk -F'\t' '$2 == "instance.end" { print $8 }' | tr '\n' ' ')
    if [[ "$got" == "$2 " ]]; then
        ok "u$1's instance ended $2"
    else
        fail "u$1's instance ended '$got' (want $2, once)"
    fi
}

# skene-vm dlq ARGS on the test's Redis.
dlq() {
    env -u UPSTASH_REDIS_URL -u SKENE_REDIS_PREFIX REDIS_URL="$SKENE_TEST_REDIS_URL" "$SKENE_VM" dlq "$@"
}

# check_one_each N: the mock accepted exactly one email for each of u1..uN@example.com and no other.
check_one_each() {
    local n=$1 total distinct missing extra
    js emails "$EM_MOCK_URL" | cut -f1 | sort >"$RUN_WORK/emails.to"
    seq 1 "$n" | sed 's/.*/u&@example.com/' | sort >"$RUN_WORK/emails.want"
    total=$(wc -l <"$RUN_WORK/emails.to")
    distinct=$(sort -u "$RUN_WORK/emails.to" | wc -l)
    missing=$(sort -u "$RUN_WORK/emails.to" | comm -23 "$RUN_WORK/emails.want" - | wc -l)
    extra=$(comm -13 "$RUN_WORK/emails.want" "$RUN_WORK/emails.to" | wc -l)
    if ((total == n && distinct == n && missing == 0 && extra == 0)); then
        ok "the mock accepted $total emails, $distinct distinct \`to\`: exactly one per user"
    else
        fail "the mock accepted $total emails, $distinct distinct \`to\`, for $n users: $missing missing" \
            "($(sort -u "$RUN_WORK/emails.to" | comm -23 "$RUN_WORK/emails.want" - | head -3 | tr '\n' ' ')...)," \
            "duplicates $(uniq -d "$RUN_WORK/emails.to" | head -3 | tr '\n' ' ')..., $extra for no user"
    fi
}

# check_one_per_user GOT WANT USERS WHO: GOT lists the `to` of every email WHO accepted (one a line,
# any order), WANT the addresses of the activated users (sorted): ok when each got exactly one and
# nobody else any, else a failure that counts the missing, the duplicated and the extra.
check_one_per_user() {
    local got=$1 want=$2 users=$3 who=$4 total distinct missing extra n
    n=$(grep -c . "$want")
    total=$(grep -c . "$got")
    distinct=$(sort -u "$got" | grep -c .)
    missing=$(sort -u "$got" | comm -23 "$want" - | wc -l)
    extra=$(sort -u "$got" | comm -13 "$want" - | wc -l)
    if ((total == n && distinct == n && missing == 0 && extra == 0)); then
        ok "$who accepted $total emails, $distinct distinct \`to\`: exactly one per activated user," \
            "none for the $((users - n)) others"
    else
        fail "$who accepted $total emails, $distinct distinct \`to\`, for $n activated users:" \
            "$missing activated users without one ($(sort -u "$got" | comm -23 "$want" - | head -3 | tr '\n' ' ')...)," \
            "$((total - distinct)) duplicates ($(sort "$got" | uniq -d | head -3 | tr '\n' ' ')...)," \
            "$extra for users who never activated"
    fi
}
