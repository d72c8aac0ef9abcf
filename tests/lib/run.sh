# run.sh: what the end-to-end test libraries share (tests/e2e/lib.sh and tests/email/lib.sh source
# it; see tests/lib/README.md). A test script runs under tests/redis/with-redis.sh
# (SKENE_TEST_REDIS_* in the environment), starts `skene-vm run` workers and other processes, waits
# for what they do and checks it.
#
#   run_init NAME KIND SKENEC SKENE_VM [TOOL...]   a work folder RUN_WORK (with logs/), the trap that
#                                     stops every process started here
#   say, ok, fail, fatal, show        readable output; fail records a failure (RUN_FAILS) and goes on
#   run_done HINT                     prints the verdict and exits 0 or 1
#   now_ms                            wall-clock milliseconds
#   rcli ARGS / write_plan FILE       redis-cli on the test's server / the app's writes of a plan
#                                     (tests/lib/writes.awk, the users of RUN_PEOPLE), pipelined
#   build_skb CONFIG [ARGS]           skenec build into the work folder: RUN_SKB
#   worker_run ID [RUN OPTIONS]       skene-vm run --worker ID on RUN_SKB under `env W_ENV`, its log in
#                                     logs/ID.RUN.jsonl; waits for its worker.start line
#   worker_term ID SECS / worker_reap ID   SIGTERM and SECS to exit / forget it once it exited; both
#                                     return its exit status
#   wait_exit PID SECS                polls until PID has exited, SECS at most
#   wait_for SECS WHAT FUNC [ARGS]    polls FUNC until it returns 0; on timeout, fails with what FUNC
#                                     left in RUN_MISSING
#   await_port FILE PID               the port a server started in the background wrote to FILE (a line
#                                     of digits), echoed; 1 when PID died first or after 10 s
#   all_ended USERS                   for wait_for: USERS instances of examples/activation started and
#                                     none left
#
# Set by the library that sources this file: RUN_KEEP (1: keep the work folder), RUN_KEPT (what it
# holds, for the line that says where it was kept), RUN_POLL (wait_for's period), RUN_PEOPLE (the
# people.awk that names the users of write_plan), and before each worker_run, W_ENV.
#
# Every process started here is in RUN_PIDS (pid -> what it is) until it is reaped, and is stopped
# by its own PID when the script ends, also when it fails or is interrupted: a "worker ..." with
# SIGKILL at once (nothing is lost, and a failed test has nothing to drain), anything else (the
# mock, a redis-server) with SIGTERM, then SIGKILL after 5 s.
# shellcheck shell=bash

set -uo pipefail

RUN_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC2034 # used by the test scripts
RUN_ROOT=$(cd "$RUN_LIB/../.." && pwd)
RUN_FAILS=0
RUN_MISSING=
declare -A RUN_PIDS=()   # pid -> what it is
declare -A W_PID=()      # worker id -> pid of its current run
declare -A W_RUNS=()     # worker id -> how many times it was started
declare -a W_ALL_LOGS=() # every worker log, in start order
declare -a W_ENV=()      # env's arguments for the next worker_run: -u NAME, NAME=VALUE

# ---- output ----

run_elapsed() {
    local ms=$(((${EPOCHREALTIME/./} - RUN_T0) / 1000))
    printf '%d.%03ds' $((ms / 1000)) $((ms % 1000))
}
say() { printf '[%8s] %s\n' "$(run_elapsed)" "$*"; }
ok() { printf '[%8s]   ok: %s\n' "$(run_elapsed)" "$*"; }
fail() {
    printf '[%8s]   FAIL: %s\n' "$(run_elapsed)" "$*"
    RUN_FAILS=$((RUN_FAILS + 1))
}
fatal() {
    fail "$*"
    say "stopping here: the checks after this one need it"
    exit 1
}
# The first lines of a file, indented (for a failure's details).
show() { sed -n "1,${2:-10}p" "$1" | sed 's/^/        /'; }

# Wall-clock milliseconds.
now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }

# ---- setup and teardown ----

# run_init NAME KIND SKENEC SKENE_VM [TOOL...]: checks that the script runs under with-redis.sh, that
# each tool is an executable and redis-cli is there; makes the work folder (skene-KIND.XXXXXX under
# TMPDIR) with logs/ in it, and sets the traps.
run_init() {
    RUN_NAME=$1 SKENEC=$3 SKENE_VM=$4
    local kind=$2 tool
    shift 2
    RUN_T0=${EPOCHREALTIME/./}
    if [[ -z "${SKENE_TEST_REDIS_URL:-}" || -z "${SKENE_TEST_REDIS_PORT:-}" ]]; then
        echo "$RUN_NAME: SKENE_TEST_REDIS_URL is not set: run me under tests/redis/with-redis.sh" >&2
        exit 1
    fi
    for tool in "$@"; do
        [[ -x "$tool" ]] || { echo "$RUN_NAME: $tool is not an executable" >&2; exit 1; }
    done
    command -v redis-cli >/dev/null || { echo "$RUN_NAME: redis-cli not found (scripts/deps installs it)" >&2; exit 1; }
    RUN_WORK=$(mktemp -d "${TMPDIR:-/tmp}/skene-$kind.XXXXXX")
    mkdir -p "$RUN_WORK/logs"
    trap run_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# The EXIT trap: stops what is still running, each by its own PID (workers first, each reaped
# right away so that bash does not report its death), then removes the work folder unless RUN_KEEP.
run_cleanup() {
    local status=$? pid
    set +e
    for pid in "${!RUN_PIDS[@]}"; do
        [[ "${RUN_PIDS[$pid]}" == worker* ]] || continue
        kill -KILL "$pid" 2>/dev/null
        { wait "$pid"; } 2>/dev/null
    done
    for pid in "${!RUN_PIDS[@]}"; do
        [[ "${RUN_PIDS[$pid]}" == worker* ]] && continue
        kill -TERM "$pid" 2>/dev/null
        wait_exit "$pid" 5
        kill -KILL "$pid" 2>/dev/null
        { wait "$pid"; } 2>/dev/null
    done
    if [[ "$RUN_KEEP" == 1 ]]; then
        echo "$RUN_NAME: kept $RUN_KEPT in $RUN_WORK"
    else
        rm -rf "$RUN_WORK"
    fi
    exit "$status"
}

# run_done HINT: the verdict; HINT says how to keep the work folder of a failed run.
run_done() {
    if ((RUN_FAILS)); then
        say "$RUN_NAME: FAILED, $RUN_FAILS check(s) ($1)"
        exit 1
    fi
    say "$RUN_NAME: passed"
    exit 0
}

# wait_exit PID SECS: polls every 0.05 s until PID has exited, SECS at most; 1 if it still runs.
wait_exit() {
    local _
    for _ in $(seq 1 $(($2 * 20))); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.05
    done
    ! kill -0 "$1" 2>/dev/null
}

# ---- Redis ----

rcli() {
    local args=(-h 127.0.0.1 -p "$SKENE_TEST_REDIS_PORT")
    if [[ "${SKENE_TEST_REDIS_TLS:-0}" == 1 ]]; then
        args+=(--tls --cacert "$SKENE_TEST_REDIS_CA")
    fi
    if [[ "${SKENE_TEST_REDIS_ACL:-0}" == 1 ]]; then
        REDISCLI_AUTH=$SKENE_TEST_REDIS_PASSWORD redis-cli "${args[@]}" --user "$SKENE_TEST_REDIS_USER" "$@"
    else
        redis-cli "${args[@]}" "$@"
    fi
}

# write_plan FILE: the app's writes of a plan file (one per line, format in writes.awk), pipelined;
# fails unless Redis answered every command without an error.
write_plan() {
    local out
    out=$(LC_ALL=C awk -f "$RUN_PEOPLE" -f "$RUN_LIB/writes.awk" "$1" | rcli --pipe 2>&1)
    if ! grep -q '^errors: 0, replies: [0-9]' <<<"$out"; then
        fail "writing $(basename "$1") to Redis: $(tr '\n' ' ' <<<"$out")"
        return 1
    fi
}

# ---- the loops and their workers ----

# build_skb CONFIG [skenec build options]: RUN_SKB is the result.
build_skb() {
    local config=$1
    shift
    RUN_SKB=$RUN_WORK/loops.skb
    if ! "$SKENEC" build -o "$RUN_SKB" "$@" "$config" >"$RUN_WORK/skenec.out" 2>&1; then
        show "$RUN_WORK/skenec.out" 20
        fatal "skenec build $config"
    fi
}

# worker_run ID [run options]: starts `env W_ENV skene-vm run --worker ID` on RUN_SKB with its log in
# logs/ID.RUN.jsonl and its stderr next to it, and waits (10 s at most) for its worker.start line.
worker_run() {
    local id=$1
    shift
    local run=$((${W_RUNS[$id]:-0} + 1))
    W_RUNS[$id]=$run
    local log=$RUN_WORK/logs/$id.$run.jsonl err=$RUN_WORK/logs/$id.$run.stderr
    env "${W_ENV[@]}" "$SKENE_VM" run --worker "$id" "$@" "$RUN_SKB" >"$log" 2>"$err" &
    local pid=$!
    RUN_PIDS[$pid]="worker $id"
    W_PID[$id]=$pid
    W_ALL_LOGS+=("$log")
    for _ in $(seq 1 200); do
        grep -q '"event":"worker.start"' "$log" 2>/dev/null && return 0
        if ! kill -0 "$pid" 2>/dev/null; then
            worker_reap "$id"
            local rc=$?
            show "$err" 20
            fatal "worker $id (run $run) exited with status $rc before starting (its stderr above)"
        fi
        sleep 0.05
    done
    fatal "worker $id (run $run) printed no worker.start line within 10 s"
}

# worker_term ID SECS: SIGTERM to worker ID, which drains; one that is still running SECS later is a
# failure, and is killed. Returns its exit status.
worker_term() {
    local id=$1 secs=$2 pid=${W_PID[$1]}
    kill -TERM "$pid"
    if ! wait_exit "$pid" "$secs"; then
        fail "worker $id did not exit within $secs s of SIGTERM"
        kill -KILL "$pid"
    fi
    worker_reap "$id"
}

# worker_reap ID: waits for the process of worker ID (signalled, or dead) and forgets it. Returns its
# exit status.
worker_reap() {
    local pid=${W_PID[$1]} rc
    { wait "$pid"; } 2>/dev/null
    rc=$?
    unset "RUN_PIDS[$pid]"
    W_PID[$1]=
    return "$rc"
}

# ---- waiting ----

# wait_for SECONDS WHAT FUNC [ARGS]: polls FUNC every RUN_POLL seconds until it returns 0. On timeout
# it fails with what FUNC left in RUN_MISSING, and returns 1.
wait_for() {
    local secs=$1 what=$2
    shift 2
    local deadline=$((${EPOCHREALTIME/./} + secs * 1000000))
    while :; do
        "$@" && return 0
        if ((${EPOCHREALTIME/./} > deadline)); then
            fail "gave up after ${secs}s waiting for $what: ${RUN_MISSING:-(nothing said)}"
            return 1
        fi
        sleep "$RUN_POLL"
    done
}

# all_ended USERS: USERS subjects in started:activation and no timer left (every instance that
# started has ended: a live instance always has a timer, its deadline or its lease's end).
all_ended() {
    local started timers
    started=$(rcli SCARD skene:started:activation)
    timers=$(rcli ZCARD skene:timers)
    RUN_MISSING="$started of $1 users started, $timers instances with a timer (not ended)"
    ((started == $1 && timers == 0))
}

# await_port FILE PID: waits for the port a background server (PID) writes to FILE and echoes it.
await_port() {
    for _ in $(seq 1 200); do
        if grep -qx '[0-9][0-9]*' "$1" 2>/dev/null; then
            head -1 "$1"
            return 0
        fi
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}
