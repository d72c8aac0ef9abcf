# lib.sh: what the email tests share (tests/email/README.md). Sourced by each test script, which runs
# under tests/redis/with-redis.sh (SKENE_TEST_REDIS_* in the environment) with the paths of skenec,
# skene-vm and resend-mock as its arguments.
#
#   em_init NAME SKENEC SKENE_VM MOCK    a work folder, the trap that stops every process started here
#   say, ok, fail, fatal, show            readable output; fail records a failure and goes on
#   em_done                               prints the verdict and exits 0 or 1
#   rcli ARGS                             redis-cli on the test's server (with its ACL user if any)
#   write_plan FILE                       the app's writes of a plan (`user N`, `action N`), pipelined
#   build_skb CONFIG                      skenec build into the work folder (EM_SKB)
#   mock_start [OPTIONS]                  resend-mock on a free port, its request log in EM_MOCK_LOG;
#                                         sets EM_MOCK_URL
#   mock_faults JSON / mock_stat NAME     the mock's control API (json.js); mock_stop (must exit 0)
#   requests [TO]                         the mock's request log as tab-separated lines (json.js)
#   worker_start ID [RUN OPTIONS]         skene-vm run with RESEND_API_KEY=$EM_API_KEY against the mock,
#                                         waits for its worker.start line
#   worker_stop ID / worker_kill ID       SIGTERM (must exit 0) / SIGKILL
#   wait_for SECS WHAT FUNC [ARGS]        polls FUNC until it returns 0, else fails with EM_MISSING
#   wlog [SUBJECT]                        the instance lines of every worker log (json.js worker)
#   ended uN / ended_with N OUTCOME / n_events EVENT N   conditions for wait_for
#   one_activation ID N [RUN OPTIONS]     user N signs up and activates; waits until the instance ends
#   check_one_email N / check_one_each N / check_outcome N OUTCOME    the assertions
#   dlq ARGS                              skene-vm dlq on the test's Redis
#
# Every process started here (workers, the mock) is stopped by its own PID, also when the script
# fails or is interrupted. The work folder is removed at the end unless EM_KEEP=1.

set -uo pipefail

EM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
EM_ROOT=$(cd "$EM_DIR/../.." && pwd)
EM_FROM='Acme <hello@acme.example>'
EM_API_KEY=${EM_API_KEY:-re_test_skene_email_0123456789}
EM_RPS=${EM_RPS:-1000} # SKENE_RESEND_RPS unless a test says otherwise: pacing is not what most tests look at
EM_FAILS=0
declare -A EM_PIDS=()    # pid -> what it is
declare -A W_PID=()      # worker id -> pid of its current run
declare -A W_RUNS=()     # worker id -> how many times it was started
declare -a W_ALL_LOGS=() # every worker log, in start order
EM_MISSING=

# ---- output ----

em_elapsed() {
    local ms=$(((${EPOCHREALTIME/./} - EM_T0) / 1000))
    printf '%d.%03ds' $((ms / 1000)) $((ms % 1000))
}
say() { printf '[%8s] %s\n' "$(em_elapsed)" "$*"; }
ok() { printf '[%8s]   ok: %s\n' "$(em_elapsed)" "$*"; }
fail() {
    printf '[%8s]   FAIL: %s\n' "$(em_elapsed)" "$*"
    EM_FAILS=$((EM_FAILS + 1))
}
fatal() {
    fail "$*"
    say "stopping here: the checks after this one need it"
    exit 1
}
# The first lines of a file, indented (a failure's details).
show() { sed -n "1,${2:-10}p" "$1" | sed 's/^/        /'; }

# Wall-clock milliseconds.
now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }

# ---- setup and teardown ----

em_init() {
    EM_NAME=$1 SKENEC=$2 SKENE_VM=$3 MOCK=$4
    EM_T0=${EPOCHREALTIME/./}
    if [[ -z "${SKENE_TEST_REDIS_URL:-}" || -z "${SKENE_TEST_REDIS_PORT:-}" ]]; then
        echo "$EM_NAME: SKENE_TEST_REDIS_URL is not set: run me under tests/redis/with-redis.sh" >&2
        exit 1
    fi
    local tool
    for tool in "$SKENEC" "$SKENE_VM" "$MOCK"; do
        [[ -x "$tool" ]] || { echo "$EM_NAME: $tool is not an executable" >&2; exit 1; }
    done
    for tool in redis-cli node; do
        command -v "$tool" >/dev/null || { echo "$EM_NAME: $tool not found (scripts/deps installs it)" >&2; exit 1; }
    done
    EM_WORK=$(mktemp -d "${TMPDIR:-/tmp}/skene-email.XXXXXX")
    mkdir -p "$EM_WORK/logs"
    EM_OUTBOX=$EM_WORK/outbox # must stay empty: with an API key, email goes to Resend only
    trap em_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    say "$EM_NAME: skene-vm run, resend-mock and redis-server on 127.0.0.1:$SKENE_TEST_REDIS_PORT" \
        "(acl=${SKENE_TEST_REDIS_ACL:-0})"
}

# Workers at once (SIGKILL: nothing is lost, and a failed test has nothing to drain), each reaped
# right away so that bash does not report its death; the mock with SIGTERM, which ends it with
# status 0 (SIGKILL after 5 s).
em_cleanup() {
    local status=$? pid
    set +e
    for pid in "${!EM_PIDS[@]}"; do
        [[ "${EM_PIDS[$pid]}" == mock ]] && continue
        kill -KILL "$pid" 2>/dev/null
        { wait "$pid"; } 2>/dev/null
    done
    for pid in "${!EM_PIDS[@]}"; do
        [[ "${EM_PIDS[$pid]}" == mock ]] || continue
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -KILL "$pid" 2>/dev/null
        { wait "$pid"; } 2>/dev/null
    done
    if [[ "${EM_KEEP:-0}" == 1 ]]; then
        echo "$EM_NAME: kept the logs in $EM_WORK"
    else
        rm -rf "$EM_WORK"
    fi
    exit "$status"
}

em_done() {
    if [[ -d "$EM_OUTBOX" ]] && [[ -n "$(ls -A "$EM_OUTBOX")" ]]; then
        fail "the outbox folder has files: with RESEND_API_KEY set, no email may go there"
    fi
    # Under -DSKENE_SANITIZE=ON: a report makes a process exit non-zero, but one killed first
    # would not say so.
    local f
    for f in "$EM_WORK"/logs/*.stderr; do
        if grep -q 'Sanitizer\|runtime error:' "$f"; then
            fail "$(basename "$f") has a sanitizer report:"
            show "$f" 20
        fi
    done
    if ((EM_FAILS)); then
        say "$EM_NAME: FAILED, $EM_FAILS check(s) (EM_KEEP=1 keeps the logs)"
        exit 1
    fi
    say "$EM_NAME: passed"
    exit 0
}

# ---- Redis ----

rcli() {
    local args=(-h 127.0.0.1 -p "$SKENE_TEST_REDIS_PORT")
    if [[ "${SKENE_TEST_REDIS_ACL:-0}" == 1 ]]; then
        REDISCLI_AUTH=$SKENE_TEST_REDIS_PASSWORD redis-cli "${args[@]}" --user "$SKENE_TEST_REDIS_USER" "$@"
    else
        redis-cli "${args[@]}" "$@"
    fi
}

# User N of these tests: id uN, email uN@example.com; the first project of user N is user_actions:aN.
# A plan has one write per line: `user N` (MULTI; HSET users:uN ...; XADD skene:users * id uN; EXEC)
# or `action N` (the same for user_actions:aN, action_type first_project_created). Pipelined; fails
# unless Redis answered every command without an error.
write_plan() {
    local out
    out=$(LC_ALL=C awk '
        function resp(n, a,    i) {
            printf "*%d\r\n", n
            for (i = 1; i <= n; i++) printf "$%d\r\n%s\r\n", length(a[i]), a[i]
        }
        function one(x,    a) { a[1] = x; resp(1, a) }
        $1 == "user" {
            one("MULTI")
            h[1] = "HSET"; h[2] = "users:u" $2; h[3] = "name"; h[4] = "User " $2
            h[5] = "email"; h[6] = "u" $2 "@example.com"
            h[7] = "activation_link"; h[8] = "https://app.example.com/setup?u=u" $2
            resp(8, h)
            x[1] = "XADD"; x[2] = "skene:users"; x[3] = "*"; x[4] = "id"; x[5] = "u" $2
            resp(5, x)
            one("EXEC")
            next
        }
        $1 == "action" {
            one("MULTI")
            h[1] = "HSET"; h[2] = "user_actions:a" $2; h[3] = "user_id"; h[4] = "u" $2
            h[5] = "action_type"; h[6] = "first_project_created"
            resp(6, h)
            x[1] = "XADD"; x[2] = "skene:user_actions"; x[3] = "*"; x[4] = "id"; x[5] = "a" $2
            resp(5, x)
            one("EXEC")
            next
        }
        { printf "write_plan: cannot read line %d: %s\n", NR, $0 > "/dev/stderr"; exit 2 }' "$1" |
        rcli --pipe 2>&1)
    if ! grep -q '^errors: 0, replies: [0-9]' <<<"$out"; then
        fail "writing $(basename "$1") to Redis: $(tr '\n' ' ' <<<"$out")"
        return 1
    fi
}

# ---- the loops ----

# build_skb CONFIG: EM_SKB is the result.
build_skb() {
    EM_SKB=$EM_WORK/loops.skb
    if ! "$SKENEC" build -o "$EM_SKB" "$1" >"$EM_WORK/skenec.out" 2>&1; then
        show "$EM_WORK/skenec.out" 20
        fatal "skenec build $1"
    fi
}

# ---- the local Resend ----

js() { node "$EM_DIR/json.js" "$@"; }

# mock_start [resend-mock options]: on a free loopback port, its request log in EM_MOCK_LOG (one
# file per start).
mock_start() {
    EM_MOCK_RUNS=$((${EM_MOCK_RUNS:-0} + 1))
    EM_MOCK_LOG=$EM_WORK/logs/requests.$EM_MOCK_RUNS.jsonl
    local portfile=$EM_WORK/mock.$EM_MOCK_RUNS.port
    "$MOCK" --port 0 --port-file "$portfile" --log "$EM_MOCK_LOG" "$@" 2>"$EM_WORK/logs/mock.$EM_MOCK_RUNS.stderr" &
    local pid=$!
    EM_PIDS[$pid]=mock
    EM_MOCK_PID=$pid
    for _ in $(seq 1 200); do
        if [[ -s "$portfile" ]]; then
            EM_MOCK_URL=http://127.0.0.1:$(cat "$portfile")
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    show "$EM_WORK/logs/mock.$EM_MOCK_RUNS.stderr"
    fatal "resend-mock did not start"
}

# SIGTERM: the mock must exit 0.
mock_stop() {
    local rc
    kill -TERM "$EM_MOCK_PID"
    { wait "$EM_MOCK_PID"; } 2>/dev/null
    rc=$?
    unset "EM_PIDS[$EM_MOCK_PID]"
    ((rc == 0)) || fail "resend-mock exited with status $rc after SIGTERM (want 0)"
}

# mock_faults JSON: replaces the mock's fault script.
mock_faults() {
    js post "$EM_MOCK_URL/_mock/faults" "$1" >"$EM_WORK/faults.out" || {
        show "$EM_WORK/faults.out"
        fatal "the mock refused the fault script $1"
    }
}

# One figure of /_mock/stats: a name, or by_status.CODE.
mock_stat() { js stat "$EM_MOCK_URL" "$1"; }

# ---- workers ----

# worker_start ID [run options]: skene-vm run --worker ID on EM_SKB, email through the mock with
# EM_API_KEY, SKENE_RESEND_RPS=EM_RPS; its log in logs/ID.RUN.jsonl, its stderr next to it. Waits
# (10 s at most) for its worker.start line.
worker_start() {
    local id=$1
    shift
    local run=$((${W_RUNS[$id]:-0} + 1))
    W_RUNS[$id]=$run
    local log=$EM_WORK/logs/$id.$run.jsonl err=$EM_WORK/logs/$id.$run.stderr
    env -u UPSTASH_REDIS_URL -u SKENE_REDIS_PREFIX -u SKENE_WORKER -u SKENE_RESEND_BURST \
        REDIS_URL="$SKENE_TEST_REDIS_URL" RESEND_API_KEY="$EM_API_KEY" RESEND_API_URL="$EM_MOCK_URL" \
        SKENE_RESEND_RPS="$EM_RPS" SKENE_EMAIL_FROM="$EM_FROM" SKENE_OUTBOX="$EM_OUTBOX" \
        "$SKENE_VM" run --worker "$id" "$@" "$EM_SKB" >"$log" 2>"$err" &
    local pid=$!
    EM_PIDS[$pid]="worker $id"
    W_PID[$id]=$pid
    W_ALL_LOGS+=("$log")
    for _ in $(seq 1 200); do
        grep -q '"event":"worker.start"' "$log" 2>/dev/null && return 0
        if ! kill -0 "$pid" 2>/dev/null; then
            { wait "$pid"; } 2>/dev/null
            local rc=$?
            unset "EM_PIDS[$pid]"
            show "$err" 20
            fatal "worker $id (run $run) exited with status $rc before starting (its stderr above)"
        fi
        sleep 0.05
    done
    fatal "worker $id (run $run) printed no worker.start line within 10 s"
}

# SIGTERM: the worker drains and must exit 0 (within 20 s).
worker_stop() {
    local id=$1 pid=${W_PID[$1]} rc
    kill -TERM "$pid"
    for _ in $(seq 1 400); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        fail "worker $id did not exit within 20 s of SIGTERM"
        kill -KILL "$pid"
    fi
    { wait "$pid"; } 2>/dev/null
    rc=$?
    unset "EM_PIDS[$pid]"
    W_PID[$id]=
    ((rc == 0)) || fail "worker $id exited with status $rc after SIGTERM (want 0)"
}

# SIGKILL, no drain. A worker that is no longer running by then died by itself: a failure.
worker_kill() {
    local id=$1 pid=${W_PID[$1]} rc
    if ! kill -KILL "$pid" 2>/dev/null; then
        { wait "$pid"; } 2>/dev/null
        rc=$?
        fail "worker $id had exited by itself (status $rc) before it was killed; its stderr:"
        show "$EM_WORK/logs/$id.${W_RUNS[$id]}.stderr" 10
    fi
    { wait "$pid"; } 2>/dev/null
    unset "EM_PIDS[$pid]"
    W_PID[$id]=
}

# The instance lines of every worker log so far (json.js worker), those of SUBJECT only if given:
#   ts_ms event subject attempt idempotency_key delay_ms id outcome reason
wlog() {
    if (($#)); then
        js worker "${W_ALL_LOGS[@]}" | awk -F'\t' -v s="$1" '$3 == s'
    else
        js worker "${W_ALL_LOGS[@]}"
    fi
}

# ---- waiting ----

# wait_for SECONDS WHAT FUNC [ARGS]: polls FUNC every 0.05 s until it returns 0. On timeout it
# fails with what FUNC left in EM_MISSING, and returns 1.
wait_for() {
    local secs=$1 what=$2
    shift 2
    local deadline=$((${EPOCHREALTIME/./} + secs * 1000000))
    while :; do
        "$@" && return 0
        if ((${EPOCHREALTIME/./} > deadline)); then
            fail "gave up after ${secs}s waiting for $what: ${EM_MISSING:-(nothing said)}"
            return 1
        fi
        sleep "${EM_POLL:-0.05}"
    done
}

# An instance.end line for subject $1 (uN) in the logs.
ended() {
    EM_MISSING="no instance.end for $1 yet; its last lines: $(wlog "$1" | tail -2 | cut -f2,4,8,9 | tr '\n\t' '; ')"
    wlog "$1" | awk -F'\t' '$2 == "instance.end"' | grep -q .
}

# N instance.end lines in the logs (all subjects).
n_ended() {
    local n
    n=$(wlog | awk -F'\t' '$2 == "instance.end"' | wc -l)
    EM_MISSING="$n of $1 instances ended"
    ((n >= $1))
}

# ---- one email ----

# one_activation ID N [run options]: user N signs up and creates their first project (examples/
# activation, already built into EM_SKB) while worker ID runs; waits (15 s) until the instance ended.
one_activation() {
    local id=$1 n=$2
    shift 2
    [[ -n "${W_PID[$id]:-}" ]] || worker_start "$id" "$@"
    printf 'user %s\naction %s\n' "$n" "$n" >"$EM_WORK/plan.u$n"
    write_plan "$EM_WORK/plan.u$n"
    wait_for 15 "u$n's instance to end" ended "u$n"
}

# The requests of the mock's log with their time, status, fault and key (json.js requests), those
# whose emails include TO only if given.
requests() {
    if (($#)); then
        js requests "$EM_MOCK_LOG" | awk -F'\t' -v to="$1" '{ n = split($10, t, ","); for (i = 1; i <= n; i++) if (t[i] == to) { print; next } }'
    else
        js requests "$EM_MOCK_LOG"
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

# u<N>'s instance.end lines include one with OUTCOME (for an instance that ends more than once:
# failed, then re-driven from the dead letters).
ended_with() {
    EM_MISSING="u$1 has not ended $2 yet; its last lines: $(wlog "u$1" | tail -2 | cut -f2,4,8,9 | tr '\n\t' '; ')"
    wlog "u$1" | awk -F'\t' -v o="$2" '$2 == "instance.end" && $8 == o' | grep -q .
}

# skene-vm dlq ARGS on the test's Redis.
dlq() {
    env -u UPSTASH_REDIS_URL -u SKENE_REDIS_PREFIX REDIS_URL="$SKENE_TEST_REDIS_URL" "$SKENE_VM" dlq "$@"
}

# N lines of EVENT in the worker logs (a cheap grep, for polling).
n_events() { # EVENT N
    local n
    n=$(cat "${W_ALL_LOGS[@]}" | grep -c "\"event\":\"$1\"")
    EM_MISSING="$n of $2 $1 lines"
    ((n >= $2))
}

# check_one_each N: the mock accepted exactly one email for each of u1..uN@example.com and no other.
check_one_each() {
    local n=$1 total distinct missing extra
    js emails "$EM_MOCK_URL" | cut -f1 | sort >"$EM_WORK/emails.to"
    seq 1 "$n" | sed 's/.*/u&@example.com/' | sort >"$EM_WORK/emails.want"
    total=$(wc -l <"$EM_WORK/emails.to")
    distinct=$(sort -u "$EM_WORK/emails.to" | wc -l)
    missing=$(sort -u "$EM_WORK/emails.to" | comm -23 "$EM_WORK/emails.want" - | wc -l)
    extra=$(comm -13 "$EM_WORK/emails.want" "$EM_WORK/emails.to" | wc -l)
    if ((total == n && distinct == n && missing == 0 && extra == 0)); then
        ok "the mock accepted $total emails, $distinct distinct \`to\`: exactly one per user"
    else
        fail "the mock accepted $total emails, $distinct distinct \`to\`, for $n users: $missing missing" \
            "($(sort -u "$EM_WORK/emails.to" | comm -23 "$EM_WORK/emails.want" - | head -3 | tr '\n' ' ')...)," \
            "duplicates $(uniq -d "$EM_WORK/emails.to" | head -3 | tr '\n' ' ')..., $extra for no user"
    fi
}
