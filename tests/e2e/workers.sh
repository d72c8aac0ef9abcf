#!/usr/bin/env bash
# workers.sh SKENEC SKENE_VM (ctest e2e_workers, under with-redis.sh): three workers (w1, w2, w3)
# share one Redis and E2E_USERS sign-ups (10,000; first projects for about half, interleaved:
# random_plan, seed E2E_SEED). Mid-run, w2 is killed with SIGKILL and not restarted: the stream
# entries it had read and not acknowledged are claimed by the others once idle for --claim-idle-ms
# (1000; they look every 5 of those), and the instances it held come back through the timer set
# after --lease-ms (1000). --time-scale 30: the timeout is 10 s, longer than the time w2's entries
# can stay unclaimed (up to 1 s idle + 5 s between looks); a first project among them is indexed
# only when claimed, so with a shorter timeout its user could time out (E2E_TIME_SCALE=60 shows
# it). Then SIGTERM to w1 and w3.
#
# Checked: one exact email per activated user, none for anyone else; every instance ended and
# Redis is clean (nothing pending for any consumer, w2's included); every worker's log shows part of
# the work, and instances w2 had started were finished by the others.
source "$(dirname "$0")/lib.sh"

e2e_init e2e_workers "$1" "$2"
users=${E2E_USERS:-10000}
seed=${E2E_SEED:-2}
opts=(--time-scale "${E2E_TIME_SCALE:-30}" --lease-ms 1000 --claim-idle-ms 1000)
build_skb "$RUN_ROOT/examples/activation/skene.config.ts"

plan=$RUN_WORK/plan
random_plan "$users" "$seed" "$plan"
plan_users "$plan" user
mapfile -t chunks < <(plan_chunks "$plan" 1000)
say "plan (seed $seed): $users users, $(wc -l <"$E2E_ACTIVATED") with a first project, $(wc -l <"$plan") writes" \
    "in ${#chunks[@]} chunks of 1000, one every 0.3 s"

# Entries of a stream delivered to a consumer and not acknowledged.
pending_of() { rcli XPENDING "$1" skene - + 100000 "$2" | grep -cE '^[0-9]+-[0-9]+$'; }

for w in w1 w2 w3; do worker_start "$w" "${opts[@]}"; done
kill_at=$((${#chunks[@]} * 2 / 5))
for ((ci = 0; ci < ${#chunks[@]}; ci++)); do
    write_plan "${chunks[ci]}"
    if ((ci == kill_at)); then
        # Mid-run: as soon as w2 holds entries it has not acknowledged (2 s at most).
        for _ in $(seq 1 200); do
            (($(pending_of skene:users w2) + $(pending_of skene:user_actions w2) > 0)) && break
            sleep 0.01
        done
        worker_kill w2
        pending=$(pending_of skene:users w2)
        pending_a=$(pending_of skene:user_actions w2)
        leases=$(rkeys 'skene:lease:*' | while read -r k; do rcli GET "$k"; done | grep -c '^w2$')
        say "killed w2 (kill -9) after $((ci + 1)) of ${#chunks[@]} chunks: it leaves $pending users" \
            "and $pending_a user_actions entries unacknowledged and holds $leases leases; not restarted"
    fi
    sleep 0.3
done
say "writes done"

wait_all_done "$users" 45 skene:users skene:user_actions
worker_stop w1
worker_stop w3

say "checks"
check_outbox "$E2E_ACTIVATED" tmp-ok
check_redis_clean "$E2E_ALL" skene:users skene:user_actions
for s in skene:users skene:user_actions; do
    left=$(pending_of "$s" w2)
    ((left == 0)) || fail "$s: w2 still has $left entries pending"
done
if ((pending + pending_a > 0)); then
    ok "the $((pending + pending_a)) entries w2 had not acknowledged were claimed and acknowledged by the others"
else
    say "note: w2 had no unacknowledged entry when it was killed, so no claim was needed this time"
fi
# Outcomes from the logs: w1 and w3 ran to the end; w2's log may have lost its last line.
check_outcomes "$E2E_ACTIVATED" "$E2E_OTHERS" distinct "${W_ALL_LOGS[@]}"

log_table "${W_ALL_LOGS[@]}" >"$RUN_WORK/all.tsv"
for w in w1 w2 w3; do
    counts=$(awk -F'\t' -v w="$w" '$1 == w && $2 == "instance.start" { s++ } $1 == w && $2 == "instance.end" { e++ }
        $1 == w && $2 == "action.ok" { m++ } END { print s + 0, e + 0, m + 0 }' "$RUN_WORK/all.tsv")
    read -r s e m <<<"$counts"
    if ((s > 0 && e > 0)); then
        ok "$w did part of the work: $s instances started, $e ended, $m emails"
    else
        fail "$w's log shows no share of the work: $s instances started, $e ended, $m emails"
    fi
done
moved=$(awk -F'\t' '$2 == "instance.start" && $1 == "w2" { s[$3] = 1 } $2 == "instance.end" && $1 != "w2" && s[$3] { n++ }
    END { print n + 0 }' "$RUN_WORK/all.tsv")
if ((moved > 0)); then
    ok "$moved instances started by w2 were finished by w1 or w3"
else
    fail "no instance started by w2 was finished by another worker"
fi
e2e_done
