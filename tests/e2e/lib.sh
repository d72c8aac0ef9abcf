# lib.sh: what the end-to-end tests of `skene-vm run` share (tests/e2e/README.md). Sourced by each
# test script, which runs under tests/redis/with-redis.sh (SKENE_TEST_REDIS_* in the environment).
# It sources tests/lib/run.sh: say, ok, fail, fatal, show, now_ms, rcli, write_plan (users from
# people.awk), build_skb, wait_for (RUN_MISSING), the work folder RUN_WORK, RUN_ROOT; and adds:
#
#   e2e_init NAME SKENEC SKENE_VM   a work folder with an outbox, the trap that stops every process
#   worker_start ID [ARGS]          skene-vm run in the background, waits for its worker.start line
#   worker_stop ID / worker_kill ID SIGTERM (must exit 0 after draining) / SIGKILL
#   wait_all_done USERS SECS STREAMS   every instance started and ended, every entry acknowledged
#   streams_done, n_ended, wave_waiting   conditions for wait_for (all_ended: tests/lib/run.sh)
#   random_plan, signups, write_waves   the app's writes: one seeded stream, users in order, or waves
#                                   that wait; plan_users, plan_chunks: a plan's users, its chunks
#   check_outbox, check_outcomes, check_redis_clean, check_no_wait, check_woken   the assertions
#   e2e_done                        prints the verdict and exits 0 or 1
#
# Every process started here is stopped by its own PID, also when the script fails or is
# interrupted. The work folder is removed at the end unless E2E_KEEP=1.

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/run.sh
source "$E2E_DIR/../lib/run.sh"
RUN_KEEP=${E2E_KEEP:-0}
RUN_KEPT="the logs, outbox and plans"
RUN_POLL=0.1
RUN_PEOPLE=$E2E_DIR/people.awk
E2E_FROM='Acme <hello@acme.example>'

# ---- setup and teardown ----

e2e_init() {
    run_init "$1" e2e "$2" "$3"
    E2E_OUTBOX=$RUN_WORK/outbox
    mkdir -p "$E2E_OUTBOX"
    say "$RUN_NAME: skene-vm run against redis-server on 127.0.0.1:$SKENE_TEST_REDIS_PORT" \
        "(tls=${SKENE_TEST_REDIS_TLS:-0}, acl=${SKENE_TEST_REDIS_ACL:-0})"
}

e2e_done() { run_done "E2E_KEEP=1 keeps the logs and the outbox"; }

# ---- Redis ----

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
    RUN_MISSING=
    for s in "$@"; do
        st=$(stream_state "$s")
        [[ "$st" == "0 0" ]] || RUN_MISSING+="$s: pending/lag $st; "
    done
    [[ -z "$RUN_MISSING" ]]
}

# ---- workers ----

# worker_start ID [run options]: starts `skene-vm run --worker ID` on RUN_SKB with its log in
# logs/ID.RUN.jsonl, email to the outbox, and waits (10 s at most) for its worker.start line.
worker_start() {
    W_ENV=(-u RESEND_API_KEY -u UPSTASH_REDIS_URL -u SKENE_REDIS_PREFIX -u SKENE_REDIS_INSECURE -u SKENE_WORKER
        REDIS_URL="$SKENE_TEST_REDIS_URL" SKENE_OUTBOX="$E2E_OUTBOX" SKENE_EMAIL_FROM="$E2E_FROM")
    if [[ "${SKENE_TEST_REDIS_TLS:-0}" == 1 ]]; then
        W_ENV+=(SKENE_REDIS_CA="$SKENE_TEST_REDIS_CA")
    fi
    worker_run "$@"
}

# SIGTERM: the worker drains and must exit 0 (within 30 s) with its worker.stop line.
worker_stop() {
    local id=$1 rc
    local log=$RUN_WORK/logs/$id.${W_RUNS[$id]}.jsonl
    worker_term "$id" 30
    rc=$?
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
    kill -KILL "${W_PID[$1]}"
    worker_reap "$1"
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

# wait_all_done USERS SECS STREAMS...: every user's instance started and ended (within SECS), then
# every entry of the streams acknowledged (within 15 s more: a dead worker's entries are claimed
# within 5 claim-idle periods).
wait_all_done() {
    local users=$1 secs=$2
    shift 2
    wait_for "$secs" "all $users instances to start and end" all_ended "$users" || return 1
    wait_for 15 "every stream entry to be acknowledged once all instances ended" streams_done "$@"
}

# n_ended WANT LOGS...: at least WANT instance.end lines in the logs (a cheap grep, for polling).
n_ended() {
    local want=$1 n
    shift
    n=$(cat "$@" 2>/dev/null | grep -c '"event":"instance.end"')
    RUN_MISSING="$n of $want instances ended"
    ((n >= want))
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

# wave_waiting IDS LOGS...: every subject of the sorted file IDS shows a condition.wait in the logs.
wave_waiting() {
    local ids=$1 missing
    shift
    missing=$(log_table "$@" | awk -F'\t' '$2 == "condition.wait" { print $3 }' | sort -u | comm -23 "$ids" -)
    RUN_MISSING="$(grep -c . <<<"$missing") of $(wc -l <"$ids") users not waiting yet,"
    RUN_MISSING+=" e.g. $(head -5 <<<"$missing" | tr '\n' ' ')"
    [[ -z "$missing" ]]
}

# Users who create a first project in the tests that do not draw them at random: 2 of every 3.
activated() { (($1 % 3 != 0)); }

# signups VERB FIRST LAST: the plan of users FIRST..LAST signing up in order (VERB: user, or
# user-hset for a keyspace table), each activated user's first project right after its row.
signups() {
    local n
    for n in $(seq "$2" "$3"); do
        echo "$1 $n"
        activated "$n" && echo "action $n"
    done
    return 0
}

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
        w=$RUN_WORK/wave.$from
        seq "$from" "$to" | sed "s/^/$verb /" >"$w.users"
        seq "$from" "$to" | sed 's/^/u/' | sort >"$w.ids"
        for n in $(seq "$from" "$to"); do
            if activated "$n"; then echo "action $n"; elif ((n % 2)); then echo "other $n"; fi
        done >"$w.actions"
        cat "$w.users" "$w.actions" >>"$plan"
        write_plan "$w.users"
        RUN_POLL=0.02 wait_for 20 "the instances of users $from-$to to wait" wave_waiting "$w.ids" "$@"
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

# plan_chunks PLAN LINES: splits PLAN into files of LINES writes (chunks/cNNN), and prints their
# names in order.
plan_chunks() {
    mkdir -p "$RUN_WORK/chunks"
    split -l "$2" -d -a 3 "$1" "$RUN_WORK/chunks/c"
    printf '%s\n' "$RUN_WORK"/chunks/c*
}

# ---- assertions ----

# A sorted file of ids u1..uN of a plan: plan_ids PLAN VERB (user, user-hset, action...).
plan_ids() { awk -v v="$2" '$1 == v { print "u" $2 }' "$1" | sort -u; }

# plan_users PLAN VERB: the sorted id files of a plan's users: E2E_ALL (every user, VERB: user or
# user-hset), E2E_ACTIVATED (those with a first project) and E2E_OTHERS (the rest).
plan_users() {
    E2E_ALL=$RUN_WORK/all.ids E2E_ACTIVATED=$RUN_WORK/activated.ids E2E_OTHERS=$RUN_WORK/others.ids
    plan_ids "$1" "$2" >"$E2E_ALL"
    plan_ids "$1" action >"$E2E_ACTIVATED"
    comm -23 "$E2E_ALL" "$E2E_ACTIVATED" >"$E2E_OTHERS"
}

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
    local want=$1 tmp_ok=${2:-} res=$RUN_WORK/outbox.check
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
    local t=$RUN_WORK/outcomes
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
    rcli SMEMBERS skene:started:activation | sort >"$RUN_WORK/started.actual"
    same_ids "subjects in skene:started:activation" "$started" "$RUN_WORK/started.actual" || good=0
    if ! streams_done "$@"; then
        fail "streams not fully read and acknowledged: $RUN_MISSING"
        good=0
    fi
    ((good)) && ok "Redis is clean: no skene:inst:*, skene:lease:* or skene:wait:* key, skene:timers" \
        "empty, no dead letter; skene:started:activation holds the $(wc -l <"$started") users;" \
        "every entry of $* read and acknowledged"
}
