#!/usr/bin/env bash
# redis_restart.sh SKENEC SKENE_VM (ctest e2e_redis_restart, under with-redis.sh): the worker keeps
# going when its Redis restarts.
#
# The test's redis-server is switched to appendonly yes + appendfsync always (CONFIG SET, and the same
# lines added to its redis.conf, SKENE_TEST_REDIS_CONF, for the restarts): whatever Redis acknowledged
# survives a crash. One worker (--time-scale 60, --lease-ms 1000). E2E_USERS sign-ups (4,000; first
# projects for about half, random_plan seed E2E_SEED) are written in three parts; 0.15 s after the
# first part (the worker busy with it) redis-server is stopped with SHUTDOWN, and after the second
# it is killed with SIGKILL (the second server is this script's own child); each time it stays down 0.5 s and starts again on the same port with
# the same conf (its data from the AOF). The worker is never restarted. Then SIGTERM.
#
# Checked: the worker is still the first process and exits 0 on SIGTERM; one exact email per
# activated user, none for anyone else; every instance ended and Redis is clean; in the log the
# activated ended completed and the others timed_out, and work went on after each restart.
source "$(dirname "$0")/lib.sh"

e2e_init e2e_redis_restart "$1" "$2"
users=${E2E_USERS:-4000}
seed=${E2E_SEED:-3}
opts=(--time-scale "${E2E_TIME_SCALE:-60}" --lease-ms 1000 --claim-idle-ms 1000)
build_skb "$RUN_ROOT/examples/activation/skene.config.ts"

# Durable Redis: now, and for every restart.
printf 'appendonly yes\nappendfsync always\n' >>"$SKENE_TEST_REDIS_CONF"
rcli CONFIG SET appendfsync always >/dev/null
rcli CONFIG SET appendonly yes >/dev/null
aof_ready() {
    local info
    info=$(rcli INFO persistence | tr -d '\r')
    RUN_MISSING=$(grep -E '^aof_(enabled|rewrite_in_progress|rewrite_scheduled):' <<<"$info" | tr '\n' ' ')
    grep -q '^aof_enabled:1$' <<<"$info" && grep -q '^aof_rewrite_in_progress:0$' <<<"$info" &&
        grep -q '^aof_rewrite_scheduled:0$' <<<"$info"
}
wait_for 20 "the append-only file to be on" aof_ready || exit 1
ok "redis-server runs with appendonly $(rcli CONFIG GET appendonly | tail -1)," \
    "appendfsync $(rcli CONFIG GET appendfsync | tail -1)"

# redis_restart kill|shutdown: stops the server whose PID is in the pidfile (SIGKILL, or SHUTDOWN:
# it writes its AOF and exits), waits 0.5 s, starts it again with its conf, waits for PING.
redis_restart() {
    local how=$1 pid i
    pid=$(cat "$SKENE_TEST_REDIS_PIDFILE")
    [[ "$pid" =~ ^[0-9]+$ ]] && grep -qa redis-server "/proc/$pid/cmdline" ||
        fatal "the pidfile names no redis-server ($pid)"
    if [[ $how == kill ]]; then
        kill -KILL "$pid"
    else
        rcli SHUTDOWN >/dev/null 2>&1
    fi
    wait_exit "$pid" 10 || fatal "redis-server $pid did not stop ($how)"
    sleep 0.5
    rm -f "$SKENE_TEST_REDIS_PIDFILE"
    # In a subshell whose own stderr is dropped, so that bash never reports the SIGKILL of its child.
    (redis-server "$SKENE_TEST_REDIS_CONF" </dev/null >>"$RUN_WORK/redis.out" 2>&1 || true) 2>/dev/null &
    RUN_PIDS[$!]="redis-server launcher"
    for i in $(seq 1 200); do
        [[ "$(rcli PING 2>/dev/null)" == PONG ]] && break
        sleep 0.05
    done
    [[ "$(rcli PING 2>/dev/null)" == PONG ]] || fatal "redis-server did not come back after $how"
    pid=$(cat "$SKENE_TEST_REDIS_PIDFILE")
    RUN_PIDS[$pid]="redis-server"
    say "redis-server restarted ($how, down 0.5 s); now PID $pid, $(rcli DBSIZE) keys loaded from the AOF"
}

plan=$RUN_WORK/plan
random_plan "$users" "$seed" "$plan"
plan_users "$plan" user
third=$((($(wc -l <"$plan") + 2) / 3))
mapfile -t parts < <(plan_chunks "$plan" "$third")
say "plan (seed $seed): $users users, $(wc -l <"$E2E_ACTIVATED") with a first project, in 3 parts of $third writes"

worker_start w1 "${opts[@]}"
pid0=${W_PID[w1]}
log=$RUN_WORK/logs/w1.1.jsonl
marks=()
write_plan "${parts[0]}"
sleep 0.15
marks+=("$(wc -l <"$log")")
redis_restart shutdown
write_plan "${parts[1]}"
sleep 0.15
marks+=("$(wc -l <"$log")")
redis_restart kill
write_plan "${parts[2]}"

wait_all_done "$users" 45 skene:users skene:user_actions
if [[ "${W_PID[w1]}" == "$pid0" ]] && kill -0 "$pid0" 2>/dev/null; then
    ok "the worker lived through both restarts (same process, PID $pid0)"
else
    fail "the worker is not the process started first"
fi
worker_stop w1

say "checks"
check_outbox "$E2E_ACTIVATED"
check_redis_clean "$E2E_ALL" skene:users skene:user_actions
check_outcomes "$E2E_ACTIVATED" "$E2E_OTHERS" distinct "$log"
for i in 0 1; do
    after=$(tail -n +"$((marks[i] + 1))" "$log" | grep -c '"event":"instance.end"')
    if ((after > 0)); then
        ok "after restart $((i + 1)), the worker ended $after more instances"
    else
        fail "no instance ended after restart $((i + 1))"
    fi
done
say "what the worker logged about the outages (errors, by event and operation):"
grep '"level":"error"' "$log" | sed -n 's/.*"event":"\([^"]*\)","message":"\([^:]*\):.*/\1 \2/p' |
    sed 's/ [au][0-9][0-9]* / ID /' |
    sort | uniq -c | sed 's/^/      /'
e2e_done
