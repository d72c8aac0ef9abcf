#!/usr/bin/env bash
# example.sh SKENEC SKENE_VM: examples/activation on `skene-vm run` and a real redis-server (ctest
# e2e_example, e2e_example_tls, e2e_example_acl: under with-redis.sh, with --tls or --acl).
#
# One worker (--time-scale 600: the loop's 5-minute timeout takes 0.5 s). E2E_USERS users (300) sign
# up as a Next.js app writes them (MULTI HSET + XADD); 2/3 of them (n % 3 != 0) create a first
# project, written:
#   - users 1-30: before the worker starts, each right after its user (the stream is read from
#     its beginning);
#   - users 31-60: before the user row itself exists (indexed before the sign-up is seen: the
#     condition holds at once, no wait);
#   - the others, in waves of 60: after the worker logged that the instance waits for it (the
#     wake-up path).
# Half of the users who never activate do something else (action_type invited_teammate), which
# must not count. Then SIGTERM. Checked: one exact email per activated user and none for the
# others; in the log, the activated ended completed and the others timed_out, every instance
# started and ended once, the early ones never waited and the late ones did; Redis left clean.
source "$(dirname "$0")/lib.sh"

name=e2e_example
[[ "${SKENE_TEST_REDIS_TLS:-0}" == 1 ]] && name=e2e_example_tls
[[ "${SKENE_TEST_REDIS_ACL:-0}" == 1 ]] && name=e2e_example_acl
e2e_init "$name" "$1" "$2"
users=${E2E_USERS:-300}
scale=600
wave=60

if [[ $name == e2e_example_tls && "$SKENE_TEST_REDIS_URL" != rediss://* ]]; then
    fatal "with --tls the URL must be rediss://, not ${SKENE_TEST_REDIS_URL%%://*}://"
fi

build_skb "$RUN_ROOT/examples/activation/skene.config.ts"
plan=$RUN_WORK/plan

# What the app writes, by phase; the whole plan is kept to compute what must happen.
signups user 1 30 >"$plan.0"
{
    for n in $(seq 31 60); do
        activated "$n" && echo "action $n"
    done
} >"$plan.a.actions"
{
    for n in $(seq 31 60); do
        echo "user $n"
        activated "$n" || { ((n % 2)) && echo "other $n"; }
    done
} >"$plan.a.users"
cat "$plan".* >"$plan"

say "phase 0: users 1-30 and their first projects written before the worker starts"
write_plan "$plan.0"
worker_start w1 --time-scale "$scale"

say "phase 1: first projects of users 31-60 written before their user rows exist"
write_plan "$plan.a.actions"
wait_for 20 "the worker to index the early first projects" streams_done skene:user_actions
write_plan "$plan.a.users"

say "phase 2: users 61-$users in waves of $wave; each wave's first projects written once its instances wait"
write_waves 61 "$users" "$wave" user "$plan" "$RUN_WORK/logs/w1.1.jsonl"

plan_users "$plan" user

log=$RUN_WORK/logs/w1.1.jsonl
say "waiting for the $users instances to end ($(wc -l <"$E2E_ACTIVATED") activate, $(wc -l <"$E2E_OTHERS") time out)"
wait_for 60 "every instance to end" n_ended "$users" "$log"
worker_stop w1

say "checks"
check_outbox "$E2E_ACTIVATED"
check_outcomes "$E2E_ACTIVATED" "$E2E_OTHERS" exact "$log"
check_redis_clean "$E2E_ALL" skene:users skene:user_actions
for counter in started:$users ended:$users failed:0 outbox_duplicates:0; do
    got=$(worker_stop_count "$log" "${counter%%:*}")
    [[ "$got" == "${counter#*:}" ]] || fail "worker.stop says ${counter%%:*}=$got, want ${counter#*:}"
done

# Users 31-60 acted before their sign-up was seen; the waves' activated users acted after waiting.
seq 31 60 | sed 's/^/u/' | sort | comm -12 - "$E2E_ACTIVATED" >"$RUN_WORK/early.ids"
seq 61 "$users" | sed 's/^/u/' | sort | comm -12 - "$E2E_ACTIVATED" >"$RUN_WORK/woken.ids"
check_no_wait "$RUN_WORK/early.ids" "users of 31-60 who acted before signing up" "$log"
check_woken "$RUN_WORK/woken.ids" "activated users of the waves" "$log"

if [[ $name == e2e_example_acl ]]; then
    if grep -qF -- "$SKENE_TEST_REDIS_PASSWORD" "$RUN_WORK"/logs/*; then
        fail "the Redis password appears in the worker's output"
    else
        ok "authenticated as ACL user $SKENE_TEST_REDIS_USER; the password appears nowhere in its output"
    fi
fi
e2e_done
