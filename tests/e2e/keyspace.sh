#!/usr/bin/env bash
# keyspace.sh SKENEC SKENE_VM (ctest e2e_keyspace, under with-redis.sh): the activation loop with its
# users table on a keyspace feed (keyspace.config.ts): the app writes only HSET users:<id>.
#
#   - users 1-100 exist before the first start, 2/3 of them with a first project: recorded as seen,
#     never started, never emailed (DESIGN.md, "History");
#   - the worker starts; once its first pass is recorded, user 5 (old) gets a new field: an update,
#     not a sign-up;
#   - users 101-130's first projects, then their rows (HSET only): emailed without waiting;
#   - users 131-300 in waves: first projects written once the instances wait;
#   - the worker stops (SIGTERM); users 301-360 sign up (and 2/3 act) while it is down; it starts
#     again: the pass at start finds them;
#   - users 361-420 in waves again, now through notifications after the restart.
# Checked as in example.sh, over both runs, for the 320 new users only.
source "$(dirname "$0")/lib.sh"

e2e_init e2e_keyspace "$1" "$2"
scale=600
build_skb "$E2E_DIR/keyspace.config.ts" --templates "$RUN_ROOT/examples/activation/templates"
plan=$RUN_WORK/plan
: >"$plan"
logs=("$RUN_WORK/logs/w1.1.jsonl" "$RUN_WORK/logs/w1.2.jsonl")

old_plan=$RUN_WORK/plan.old
signups user-hset 1 100 >"$old_plan"
say "users 1-100 (and first projects for 2/3 of them) written before Skene's first start"
write_plan "$old_plan"

first_pass_done() {
    local marker seen
    marker=$(rcli SISMEMBER skene:seen:users "")
    seen=$(rcli SCARD skene:seen:users)
    RUN_MISSING="first pass marker: $marker, skene:seen:users has $seen members"
    [[ "$marker" == 1 ]]
}
worker_start w1 --time-scale "$scale"
wait_for 20 "the keyspace feed's first pass over users" first_pass_done
seen=$(rcli SCARD skene:seen:users)
if ((seen == 101)); then
    ok "first pass: the 100 existing users recorded as seen (and the marker)"
else
    fail "after the first pass skene:seen:users has $seen members, want 101 (100 users and the marker)"
fi
rcli HSET users:u5 plan pro >/dev/null

say "users 101-130: first projects written before the user rows"
for n in $(seq 101 130); do activated "$n" && echo "action $n"; done >"$RUN_WORK/plan.a.actions"
for n in $(seq 101 130); do echo "user-hset $n"; done >"$RUN_WORK/plan.a.users"
cat "$RUN_WORK/plan.a.actions" "$RUN_WORK/plan.a.users" >>"$plan"
write_plan "$RUN_WORK/plan.a.actions"
wait_for 20 "the worker to index the early first projects" streams_done skene:user_actions
write_plan "$RUN_WORK/plan.a.users"

say "users 131-300 in waves of 60 (HSET only), first projects once their instances wait"
write_waves 131 300 60 user-hset "$plan" "${logs[0]}"

wait_for 30 "the 200 instances of users 101-300 to end" n_ended 200 "${logs[0]}"
worker_stop w1

say "users 301-360 sign up while the worker is down (2/3 with a first project); it starts again"
signups user-hset 301 360 >"$RUN_WORK/plan.down"
cat "$RUN_WORK/plan.down" >>"$plan"
write_plan "$RUN_WORK/plan.down"
worker_start w1 --time-scale "$scale"

say "users 361-420 in waves of 60, with the restarted worker"
write_waves 361 420 60 user-hset "$plan" "${logs[1]}"
wait_for 30 "the 320 instances of users 101-420 to end" n_ended 320 "${logs[@]}"
worker_stop w1

say "checks"
plan_users "$plan" user-hset
check_outbox "$E2E_ACTIVATED"
check_outcomes "$E2E_ACTIVATED" "$E2E_OTHERS" exact "${logs[@]}"
check_redis_clean "$E2E_ALL" skene:user_actions

seq 101 130 | sed 's/^/u/' | sort | comm -12 - "$E2E_ACTIVATED" >"$RUN_WORK/early.ids"
{ seq 131 300; seq 361 420; } | sed 's/^/u/' | sort | comm -12 - "$E2E_ACTIVATED" >"$RUN_WORK/woken.ids"
check_no_wait "$RUN_WORK/early.ids" "users of 101-130 who acted before signing up" "${logs[@]}"
check_woken "$RUN_WORK/woken.ids" "activated users of the waves" "${logs[@]}"
old_started=$(log_table "${logs[@]}" | awk -F'\t' '$2 == "instance.start" { sub(/^u/, "", $3); if ($3 + 0 <= 100) print }' | wc -l)
if ((old_started)); then
    fail "$old_started instances started for users who existed before the first start"
else
    ok "the 100 users who existed before the first start (67 with a first project, user 5 updated" \
        "since): no instance, no email"
fi
seen=$(rcli SCARD skene:seen:users)
if ((seen == 421)); then
    ok "skene:seen:users: the 420 users and the first-pass marker"
else
    fail "skene:seen:users has $seen members, want 421 (420 users and the marker)"
fi
flags=$(rcli CONFIG GET notify-keyspace-events | tail -1)
if [[ "$flags" == *K* && "$flags" == *n* ]]; then
    ok "the worker turned on keyspace notifications (flags '$flags')"
else
    fail "notify-keyspace-events is '$flags': no K or n"
fi
e2e_done
