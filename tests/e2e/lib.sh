# lib.sh: what the end-to-end tests of `skene-vm run` share (tests/e2e/README.md). Sourced by each
# test script, which runs under tests/redis/with-redis.sh (SKENE_TEST_REDIS_* in the environment).
#
#   e2e_init NAME SKENEC SKENE_VM   a work folder, the trap that stops every process started here
#   say, ok, fail, fatal            readable output; fail records a failure and goes on
#   rcli ARGS / write_plan FILE     redis-cli on the test's server / the app's writes (writes.awk)
#   build_skb CONFIG [ARGS]         skenec build into the work folder
#   worker_start ID [ARGS]          skene-vm run in the background, waits for its worker.start line
#   worker_stop ID / worker_kill ID SIGTERM (must exit 0 after draining) / SIGKILL
#   wait_for SECS WHAT FUNC [ARGS]  polls FUNC until it returns 0; on timeout, fails with what FUNC
#                                   left in E2E_MISSING (streams_done, all_ended, wave_waiting...)
#   wait_all_done USERS SECS STREAMS   every instance started and ended, every entry acknowledged
#   random_plan, write_waves        the app's writes: one seeded stream, or waves that wait
#   check_outbox, check_outcomes, check_redis_clean, check_no_wait, check_woken   the assertions
#   e2e_done                        prints the verdict and exits 0 or 1
#
# Every process started here is stopped by its own PID, also when the script fails or is
# interrupted. The work folder is removed at the end unless E2E_KEEP=1.

set -uo pipefail

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC2034 # used by the test scripts
E2E_ROOT=$(cd "$E2E_DIR/../.." && pwd)
E2E_FROM='Acme <hello@acme.example>'
E2E_FAILS=0
declare -A E2E_PIDS=()   # pid -> what it is (workers, restarted redis-servers)
declare -A W_PID=()      # worker id -> pid of its current run
declare -A W_RUNS=()     # worker id -> how many times it was started
declare -a W_ALL_LOGS=() # every log file, in start order
E2E_MISSING=

# ---- output ----

e2e_elapsed() {
    local now=${EPOCHREALTIME/./}
    local ms=$(((now - E2E_T0) / 1000))
    printf '%d.%03ds' $((ms / 1000)) $((ms % 1000))
}
say() { printf '[%8s] %s\n' "$(e2e_elapsed)" "$*"; }
ok() { printf '[%8s]   ok: %s\n' "$(e2e_elapsed)" "$*"; }
fail() {
    printf '[%8s]   FAIL: %s\n' "$(e2e_elapsed)" "$*"
    E2E_FAILS=$((E2E_FAILS + 1))
}
fatal() {
    fail "$*"
    say "stopping here: the checks after this one need it"
    exit 1
}
# The first lines of a file, indented (for a failure's details).
show() { sed -n "1,${2:-10}p" "$1" | sed 's/^/        /'; }

# ---- setup and teardown ----

e2e_init() {
    E2E_NAME=$1 SKENEC=$2 SKENE_VM=$3
    E2E_T0=${EPOCHREALTIME/./}
    if [[ -z "${SKENE_TEST_REDIS_URL:-}" || -z "${SKENE_TEST_REDIS_PORT:-}" ]]; then
        echo "$E2E_NAME: SKENE_TEST_REDIS_URL is not set: run me under tests/redis/with-redis.sh" >&2
        exit 1
    fi
    for tool in "$SKENEC" "$SKENE_VM"; do
        [[ -x "$tool" ]] || { echo "$E2E_NAME: $tool is not an executable" >&2; exit 1; }
    done
    command -v redis-cli >/dev/null || { echo "$E2E_NAME: redis-cli not found" >&2; exit 1; }
    E2E_WORK=$(mktemp -d "${TMPDIR:-/tmp}/skene-e2e.XXXXXX")
    E2E_OUTBOX=$E2E_WORK/outbox
    mkdir -p "$E2E_OUTBOX" "$E2E_WORK/logs"
    trap e2e_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    say "$E2E_NAME: skene-vm run against redis-server on 127.0.0.1:$SKENE_TEST_REDIS_PORT" \
        "(tls=${SKENE_TEST_REDIS_TLS:-0}, acl=${SKENE_TEST_REDIS_ACL:-0})"
}

# Stops what is still running, each by its own PID: workers at once (SIGKILL: nothing is lost, and
# a failed test has nothing to drain), redis-servers started here with SIGTERM, then SIGKILL.
e2e_cleanup() {
    local status=$? pid
    set +e
    for pid in "${!E2E_PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null || continue
        case "${E2E_PIDS[$pid]}" in
            redis-server*) kill -TERM "$pid" 2>/dev/null ;;
            *) kill -KILL "$pid" 2>/dev/null ;;
        esac
    done
    for pid in "${!E2E_PIDS[@]}"; do
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -KILL "$pid" 2>/dev/null
        { wait "$pid"; } 2>/dev/null
    done
    if [[ "${E2E_KEEP:-0}" == 1 ]]; then
        echo "$E2E_NAME: kept the logs, outbox and plans in $E2E_WORK"
    else
        rm -rf "$E2E_WORK"
    fi
    exit "$status"
}

e2e_done() {
    if ((E2E_FAILS)); then
        say "$E2E_NAME: FAILED, $E2E_FAILS check(s) (E2E_KEEP=1 keeps the logs and the outbox)"
        exit 1
    fi
    say "$E2E_NAME: passed"
    exit 0
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

# The app's writes of a plan file (format in writes.awk), pipelined; fails unless Redis answered
# every command without an error.
write_plan() {
    local out
    out=$(LC_ALL=C awk -f "$E2E_DIR/people.awk" -f "$E2E_DIR/writes.awk" "$1" | rcli --pipe 2>&1)
    if ! grep -q '^errors: 0, replies: [0-9]' <<<"$out"; then
        fail "writing $(basename "$1") to Redis: $(tr '\n' ' ' <<<"$out")"
        return 1
    fi
}

# Keys matching a pattern (SCAN, never KEYS), one per line.
rkeys() { rcli --scan --pattern "$1"; }

# "PENDING LAG" of the consumer group skene on a stream ("none" when the group does not exist).
stream_state() {
    rcli XINFO GROUPS "$1" 2>/dev/null | awk '
        prev == "name" { g = $0 }
        g == "skene" && prev == "pending" { p = $0 }
        g == "skene" && prev == "lag" { l = $0 }
        { prev = $0 }
        END { if (p == "") print "none"; else print p, (l == "" ? "?" : l) }'
}

# Every entry of every stream in $@ read by the group and acknowledged (0 pending, lag 0).
streams_done() {
    local s st
    E2E_MISSING=
    for s in "$@"; do
        st=$(stream_state "$s")
        [[ "$st" == "0 0" ]] || E2E_MISSING+="$s: pending/lag $st; "
    done
    [[ -z "$E2E_MISSING" ]]
}

# ---- the loops ----

# build_skb CONFIG [skenec build options]: E2E_SKB is the result.
build_skb() {
    local config=$1
    shift
    E2E_SKB=$E2E_WORK/loops.skb
    if ! "$SKENEC" build -o "$E2E_SKB" "$@" "$config" >"$E2E_WORK/skenec.out" 2>&1; then
        show "$E2E_WORK/skenec.out" 20
        fatal "skenec build $config"
    fi
}

# worker_start ID [run options]: starts `skene-vm run --worker ID` on E2E_SKB with its log in
# logs/ID.RUN.jsonl, and waits (10 s at most) for its worker.start line.
worker_start() {
    local id=$1
    shift
    local run=$((${W_RUNS[$id]:-0} + 1))
    W_RUNS[$id]=$run
    local log=$E2E_WORK/logs/$id.$run.jsonl err=$E2E_WORK/logs/$id.$run.stderr
    local -a envs=(REDIS_URL="$SKENE_TEST_REDIS_URL" SKENE_OUTBOX="$E2E_OUTBOX" SKENE_EMAIL_FROM="$E2E_FROM")
    if [[ "${SKENE_TEST_REDIS_TLS:-0}" == 1 ]]; then
        envs+=(SKENE_REDIS_CA="$SKENE_TEST_REDIS_CA")
    fi
    env -u RESEND_API_KEY -u UPSTASH_REDIS_URL -u SKENE_REDIS_PREFIX -u SKENE_REDIS_INSECURE -u SKENE_WORKER \
        "${envs[@]}" "$SKENE_VM" run --worker "$id" "$@" "$E2E_SKB" >"$log" 2>"$err" &
    local pid=$!
    E2E_PIDS[$pid]="worker $id"
    W_PID[$id]=$pid
    W_ALL_LOGS+=("$log")
    for _ in $(seq 1 200); do
        grep -q '"event":"worker.start"' "$log" 2>/dev/null && return 0
        if ! kill -0 "$pid" 2>/dev/null; then
            { wait "$pid"; } 2>/dev/null
            local rc=$?
            unset "E2E_PIDS[$pid]"
            show "$err" 20
            fatal "worker $id (run $run) exited with status $rc before starting (its stderr above)"
        fi
        sleep 0.05
    done
    fatal "worker $id (run $run) printed no worker.start line within 10 s"
}

# SIGTERM: the worker drains and must exit 0 (within 30 s) with its worker.stop line.
worker_stop() {
    local id=$1 pid=${W_PID[$1]} rc
    local log=$E2E_WORK/logs/$id.${W_RUNS[$id]}.jsonl
    kill -TERM "$pid"
    for _ in $(seq 1 600); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        fail "worker $id did not exit within 30 s of SIGTERM"
        kill -KILL "$pid"
    fi
    { wait "$pid"; } 2>/dev/null
    rc=$?
    unset "E2E_PIDS[$pid]"
    W_PID[$id]=
    if [[ $rc != 0 ]]; then
        fail "worker $id exited with status $rc after SIGTERM (want 0); its stderr:"
        show "${log%.jsonl}.stderr" 10
    elif ! grep -q '"event":"worker.stop"' "$log"; then
        fail "worker $id exited 0 but printed no worker.stop line"
    else
        ok "worker $id drained on SIGTERM and exited 0: $(worker_stop_line "$log")"
    fi
}

# SIGKILL, no drain: what it was doing must come back from Redis.
worker_kill() {
    local id=$1 pid=${W_PID[$1]}
    kill -KILL "$pid"
    { wait "$pid"; } 2>/dev/null
    unset "E2E_PIDS[$pid]"
    W_PID[$id]=
}

# The counters of a log's worker.stop line, as "started=.. claimed=.. ...".
worker_stop_line() {
    grep '"event":"worker.stop"' "$1" | tail -1 |
        sed -e 's/.*"events"/events/' -e 's/[{}"]//g' -e 's/:/=/g' -e 's/,/ /g'
}
# One counter of it (0 when the line is missing).
worker_stop_count() {
    local v
    v=$(grep '"event":"worker.stop"' "$1" | tail -1 | sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p")
    echo "${v:-0}"
}

# ---- waiting ----

# wait_for SECONDS WHAT FUNC [ARGS]: polls FUNC every E2E_POLL seconds (0.1) until it returns 0. On
# timeout it fails with what FUNC left in E2E_MISSING, and returns 1.
wait_for() {
    local secs=$1 what=$2
    shift 2
    local deadline=$((${EPOCHREALTIME/./} + secs * 1000000))
    while :; do
        "$@" && return 0
        if ((${EPOCHREALTIME/./} > deadline)); then
            fail "gave up after ${secs}s waiting for $what: ${E2E_MISSING:-(nothing said)}"
            return 1
        fi
        sleep "${E2E_POLL:-0.1}"
    done
}

# all_ended USERS: USERS subjects in started:activation and no timer left (every instance that
# started has ended: a live instance always has a timer, its deadline or its lease's end).
all_ended() {
    local started timers
    started=$(rcli SCARD skene:started:activation)
    timers=$(rcli ZCARD skene:timers)
    E2E_MISSING="$started of $1 users started, $timers instances with a timer (not ended)"
    ((started == $1 && timers == 0))
}

# wait_all_done USERS SECS STREAMS...: every user's instance started and ended (within SECS), then
# every entry of the streams acknowledged (within 15 s more: a dead worker's entries are claimed
# within 5 claim-idle periods).
wait_all_done() {
    local users=$1 secs=$2
    shift 2
    wait_for "$secs" "all $users instances to start and end" all_ended "$users" || return 1
    wait_for 15 "every stream entry to be acknowledged once all instances ended" streams_done "$@"
}

# ---- logs ----

# The instance lines of log files as TSV: worker, event, subject, outcome ("-" when absent), in file
# order. A line cut short by a SIGKILL (no closing brace) is skipped.
log_table() {
    LC_ALL=C awk '
        function f(name,    re) {
            re = "\"" name "\":\"[^\"]*\""
            if (match($0, re)) return substr($0, RSTART + length(name) + 4, RLENGTH - length(name) - 5)
            return "-"
        }
        /}$/ && /"subject":/ { print f("worker") "\t" f("event") "\t" f("subject") "\t" f("outcome") }' "$@"
}

# Subjects of an event in log files, sorted and distinct (outcome: only instance.end lines with it).
log_subjects() { # EVENT [OUTCOME] -- FILES
    local ev=$1 oc=-
    shift
    [[ "$1" != -- ]] && { oc=$1; shift; }
    shift
    log_table "$@" | awk -F'\t' -v ev="$ev" -v oc="$oc" '$2 == ev && (oc == "-" || $4 == oc) { print $3 }' | sort -u
}

# wave_waiting IDS LOGS...: every subject of the sorted file IDS shows a condition.wait in the logs.
wave_waiting() {
    local ids=$1 missing
    shift
    missing=$(log_table "$@" | awk -F'\t' '$2 == "condition.wait" { print $3 }' | sort -u | comm -23 "$ids" -)
    E2E_MISSING="$(grep -c . <<<"$missing") of $(wc -l <"$ids") users not waiting yet,"
    E2E_MISSING+=" e.g. $(head -5 <<<"$missing" | tr '\n' ' ')"
    [[ -z "$missing" ]]
}

# Users who create a first project in the tests that do not draw them at random: 2 of every 3.
activated() { (($1 % 3 != 0)); }

# write_waves FIRST LAST SIZE VERB PLAN LOGS...: users FIRST..LAST (VERB: user, or user-hset for a
# keyspace table) in waves of SIZE. Once the log shows every instance of a wave waiting, the wave's
# first projects (activated users) and other actions (odd users who never activate) are written:
# they wake instances that wait. The writes are appended to PLAN.
write_waves() {
    local first=$1 last=$2 size=$3 verb=$4 plan=$5 from to n w
    shift 5
    for ((from = first; from <= last; from += size)); do
        to=$((from + size - 1))
        ((to > last)) && to=$last
        w=$E2E_WORK/wave.$from
        seq "$from" "$to" | sed "s/^/$verb /" >"$w.users"
        seq "$from" "$to" | sed 's/^/u/' | sort >"$w.ids"
        for n in $(seq "$from" "$to"); do
            if activated "$n"; then echo "action $n"; elif ((n % 2)); then echo "other $n"; fi
        done >"$w.actions"
        cat "$w.users" "$w.actions" >>"$plan"
        write_plan "$w.users"
        E2E_POLL=0.02 wait_for 20 "the instances of users $from-$to to wait" wave_waiting "$w.ids" "$@"
        write_plan "$w.actions"
    done
}

# random_plan N SEED FILE: N sign-ups (user 1..N, in order) with a first project for about half of
# them, interleaved in one stream of writes: each first project lands between 20 writes before its
# user's row (about 1 in 10 is written before the row exists) and 200 writes after it. Seeded.
random_plan() {
    awk -v n="$1" -v seed="$2" 'BEGIN {
        srand(seed)
        for (i = 1; i <= n; i++) {
            printf "%d\tuser %d\n", 10 * i, i
            if (rand() < 0.5) printf "%d\taction %d\n", 10 * i - 200 + int(rand() * 2200), i
        }
    }' | sort -n -k1,1 | cut -f2 >"$3"
}

# ---- assertions ----

# A sorted file of ids u1..uN of a plan: plan_ids PLAN VERB (user, user-hset, action...).
plan_ids() { awk -v v="$2" '$1 == v { print "u" $2 }' "$1" | sort -u; }

# Compares two sorted id lists; says how many and which differ. 0 when equal.
same_ids() { # WHAT EXPECTED ACTUAL
    local what=$1 want=$2 got=$3 missing extra
    missing=$(comm -23 "$want" "$got" | wc -l)
    extra=$(comm -13 "$want" "$got" | wc -l)
    if ((missing || extra)); then
        fail "$what: $(wc -l <"$want") expected, $(wc -l <"$got") found; missing $missing" \
            "($(comm -23 "$want" "$got" | head -5 | tr '\n' ' ')...), unexpected $extra" \
            "($(comm -13 "$want" "$got" | head -5 | tr '\n' ' ')...)"
        return 1
    fi
    return 0
}

# check_outbox ACTIVATED [tmp-ok]: exactly one .eml per user in the sorted file ACTIVATED, none for
# anyone else, each exactly the activation email (eml.awk). Leftover temporary files (a write cut by
# SIGKILL) fail unless tmp-ok.
check_outbox() {
    local want=$1 tmp_ok=${2:-} res=$E2E_WORK/outbox.check
    (cd "$E2E_OUTBOX" && find . -maxdepth 1 -name '*.eml' -print0 |
        xargs -0 -r awk -v from="$E2E_FROM" -f "$E2E_DIR/people.awk" -f "$E2E_DIR/eml.awk") >"$res"
    local total bad dups
    total=$(wc -l <"$res")
    bad=$(grep -c '^bad ' "$res")
    if ((bad)); then
        fail "$bad of $total .eml files are not the activation email they should be:"
        grep '^bad ' "$res" | head -5 | sed 's/^/        /'
    fi
    awk '$1 == "ok" { print $2 }' "$res" | sort >"$res.subjects"
    dups=$(uniq -d "$res.subjects" | wc -l)
    if ((dups)); then
        fail "$dups users have more than one email: $(uniq -d "$res.subjects" | head -5 | tr '\n' ' ')"
    fi
    sort -u "$res.subjects" >"$res.users"
    local tmps
    tmps=$(find "$E2E_OUTBOX" -maxdepth 1 -name '.*.tmp' | wc -l)
    if ((tmps)) && [[ "$tmp_ok" != tmp-ok ]]; then
        fail "$tmps temporary files left in the outbox"
    fi
    if same_ids "emails (one per activated user, none for the others)" "$want" "$res.users" &&
        ((bad == 0 && dups == 0)); then
        ok "$total emails: exactly one per activated user ($(wc -l <"$want")), none for anyone else;" \
            "To, From, Subject, X-Skene-* headers, text and escaped html parts all right" \
            "$( ((tmps)) && echo "($tmps temporary files of writes cut by SIGKILL left, never linked)")"
    fi
}

# check_outcomes COMPLETED TIMED_OUT exact|distinct LOGS...: the subjects whose instance ended
# `completed` and `timed_out` in the logs are exactly those of the two sorted files, and nothing
# ended otherwise. exact (logs of runs never killed): every instance.start and instance.end line is
# there once per subject, and each subject's end comes after its start.
check_outcomes() {
    local completed=$1 timed_out=$2 mode=$3
    shift 3
    local t=$E2E_WORK/outcomes
    log_table "$@" >"$t.tsv"
    awk -F'\t' '$2 == "instance.end" && $4 == "completed" { print $3 }' "$t.tsv" | sort -u >"$t.completed"
    awk -F'\t' '$2 == "instance.end" && $4 == "timed_out" { print $3 }' "$t.tsv" | sort -u >"$t.timed_out"
    local others
    others=$(awk -F'\t' '$2 == "instance.end" && $4 != "completed" && $4 != "timed_out"' "$t.tsv" | wc -l)
    local good=1
    same_ids "instances that ended completed (in the logs)" "$completed" "$t.completed" || good=0
    same_ids "instances that ended timed_out (in the logs)" "$timed_out" "$t.timed_out" || good=0
    if ((others)); then
        fail "$others instances ended neither completed nor timed_out:"
        awk -F'\t' '$2 == "instance.end" && $4 != "completed" && $4 != "timed_out"' "$t.tsv" | head -5 | sed 's/^/        /'
        good=0
    fi
    if [[ $mode == exact ]]; then
        local n bad
        n=$(cat "$completed" "$timed_out" | wc -l)
        bad=$(awk -F'\t' '
            $2 == "instance.start" { if (s[$3]++) { print "started twice: " $3 } }
            $2 == "instance.end" { if (!s[$3]) print "ended before it started: " $3; if (e[$3]++) print "ended twice: " $3 }
            END { for (k in s) if (!e[k]) print "started, never ended: " k }' "$t.tsv")
        local starts ends
        starts=$(awk -F'\t' '$2 == "instance.start"' "$t.tsv" | wc -l)
        ends=$(awk -F'\t' '$2 == "instance.end"' "$t.tsv" | wc -l)
        if [[ -n "$bad" ]]; then
            fail "instance lifecycles: $(wc -l <<<"$bad") problems:"
            head -5 <<<"$bad" | sed 's/^/        /'
            good=0
        elif ((starts != n || ends != n)); then
            fail "$starts instance.start and $ends instance.end lines for $n users"
            good=0
        else
            ok "$n instance.start and $n instance.end lines: every instance started once and ended once"
        fi
    fi
    ((good)) && ok "in the logs: $(wc -l <"$completed") ended completed (the activated users)," \
        "$(wc -l <"$timed_out") ended timed_out (all the others)"
}

# check_no_wait IDS WHAT LOGS...: the users of the sorted file IDS met their condition without
# waiting (no condition.wait line): their first project was indexed before their sign-up was seen.
check_no_wait() {
    local ids=$1 what=$2 waited
    shift 2
    waited=$(log_table "$@" | awk -F'\t' '$2 == "condition.wait" { print $3 }' | sort -u | comm -12 "$ids" -)
    if [[ -n "$waited" ]]; then
        fail "$(grep -c . <<<"$waited") of $what waited for a first project that existed before they signed up:" \
            "$(head -5 <<<"$waited" | tr '\n' ' ')"
    else
        ok "the $(wc -l <"$ids") $what met their condition at once, without waiting"
    fi
}

# check_woken IDS WHAT LOGS...: the users of IDS logged condition.wait, then condition.met: the
# first project written after they waited woke them.
check_woken() {
    local ids=$1 what=$2 bad
    shift 2
    bad=$(log_table "$@" | awk -F'\t' -v ids="$ids" '
        BEGIN { while ((getline l < ids) > 0) want[l] = 1 }
        $2 == "condition.wait" { w[$3] = 1 }
        $2 == "condition.met" && ($3 in want) { if (!w[$3]) print $3; m[$3] = 1 }
        END { for (k in want) if (!m[k]) print k }')
    if [[ -n "$bad" ]]; then
        fail "$(grep -c . <<<"$bad") of $what did not wait then meet their condition: $(head -5 <<<"$bad" | tr '\n' ' ')"
    else
        ok "the $(wc -l <"$ids") $what waited, then were woken by their first project"
    fi
}

# check_redis_clean STARTED STREAMS...: Skene left nothing behind: no instance, lease or wait set,
# an empty timer set, no dead letter; started:activation is exactly the sorted file STARTED; every
# stream entry read and acknowledged.
check_redis_clean() {
    local started=$1
    shift
    local n good=1 k
    for k in 'skene:inst:*' 'skene:lease:*' 'skene:wait:*'; do
        n=$(rkeys "$k" | wc -l)
        if ((n)); then
            fail "$n keys $k left in Redis, e.g. $(rkeys "$k" | head -3 | tr '\n' ' ')"
            good=0
        fi
    done
    n=$(rcli ZCARD skene:timers)
    ((n == 0)) || { fail "skene:timers still has $n members, e.g. $(rcli ZRANGE skene:timers 0 2 | tr '\n' ' ')"; good=0; }
    n=$(rcli XLEN skene:dlq)
    ((n == 0)) || { fail "$n dead letters in skene:dlq"; good=0; }
    rcli SMEMBERS skene:started:activation | sort >"$E2E_WORK/started.actual"
    same_ids "subjects in skene:started:activation" "$started" "$E2E_WORK/started.actual" || good=0
    if ! streams_done "$@"; then
        fail "streams not fully read and acknowledged: $E2E_MISSING"
        good=0
    fi
    ((good)) && ok "Redis is clean: no skene:inst:*, skene:lease:* or skene:wait:* key, skene:timers" \
        "empty, no dead letter; skene:started:activation holds the $(wc -l <"$started") users;" \
        "every entry of $* read and acknowledged"
}
