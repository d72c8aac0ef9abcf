#!/usr/bin/env bash
# crash.sh SKENEC SKENE_VM (ctest e2e_crash, under with-redis.sh): examples/activation while its
# worker is killed with SIGKILL again and again.
#
# E2E_USERS sign-ups (10,000) and first projects for about half of them, interleaved in one stream
# of writes (random_plan, seed E2E_SEED, default 1), written in chunks of 500 every 0.2 s. Meanwhile
# the worker is killed (kill -9) E2E_KILLS times (8) at seeded random intervals of 0.2 to 1.5 s, and
# started again at once under the same --worker name (--lease-ms 1000: the instances the dead
# process held come back a second later). --time-scale 60: the 5-minute timeout is 5 s, longer
# than an outage (a restart plus one lease), so an activated user never times out because of a kill.
# At the end, SIGTERM.
#
# Checked: one exact email per activated user and none for anyone else (the outbox); every
# instance ended (no skene:inst:*, no timer, no lease, no wait set; started:activation has every
# user; both streams read and acknowledged). Timed-out users are counted from Redis state and the
# outbox: every started user has ended, without a dead letter, and the ones without an email are
# the timed-out ones; that count must be the non-activated users. The logs of all runs are also
# checked (distinct subjects per outcome), though a killed run may not have logged everything.
source "$(dirname "$0")/lib.sh"

e2e_init e2e_crash "$1" "$2"
users=${E2E_USERS:-10000}
seed=${E2E_SEED:-1}
kills_wanted=${E2E_KILLS:-8}
opts=(--time-scale "${E2E_TIME_SCALE:-60}" --lease-ms 1000 --claim-idle-ms 1000)
build_skb "$RUN_ROOT/examples/activation/skene.config.ts"

plan=$RUN_WORK/plan
random_plan "$users" "$seed" "$plan"
plan_users "$plan" user
mapfile -t chunks < <(plan_chunks "$plan" 500)
say "plan (seed $seed): $users users, $(wc -l <"$E2E_ACTIVATED") of them with a first project," \
    "$(wc -l <"$plan") writes in ${#chunks[@]} chunks; $kills_wanted kills at random moments"

RANDOM=$seed
worker_start w1 "${opts[@]}"
t0=$(now_ms)
next_write=$t0
next_kill=$((t0 + 200 + RANDOM % 1301))
ci=0
kills=0
kill_times=()
while ((ci < ${#chunks[@]} || kills < kills_wanted)); do
    now=$(now_ms)
    if ((ci < ${#chunks[@]} && now >= next_write)); then
        write_plan "${chunks[ci]}"
        ci=$((ci + 1))
        next_write=$((now + 200))
    fi
    if ((kills < kills_wanted && now >= next_kill)); then
        worker_kill w1
        kills=$((kills + 1))
        kill_times+=("$(printf '%d.%03ds' $(((now - t0) / 1000)) $(((now - t0) % 1000)))($ci/${#chunks[@]} chunks)")
        worker_start w1 "${opts[@]}"
        next_kill=$(($(now_ms) + 200 + RANDOM % 1301))
    fi
    sleep 0.02
done
say "writes done; $kills kills (kill -9, then restarted as w1) at ${kill_times[*]}"

wait_all_done "$users" 45 skene:users skene:user_actions
worker_stop w1

say "checks"
if ((kills >= 5)); then
    ok "$kills kills with SIGKILL, each followed by a restart under the same worker name"
else
    fail "only $kills kills (want at least 5)"
fi
check_outbox "$E2E_ACTIVATED" tmp-ok
check_redis_clean "$E2E_ALL" skene:users skene:user_actions

# Timed out, from Redis state and the outbox: every started user ended (no instance left, checked
# above), none on the dead-letter stream; those without an email timed out.
emailed=$(wc -l <"$RUN_WORK/outbox.check.users")
ended_without=$(comm -23 "$RUN_WORK/started.actual" "$RUN_WORK/outbox.check.users" | wc -l)
if cmp -s <(comm -23 "$RUN_WORK/started.actual" "$RUN_WORK/outbox.check.users") "$E2E_OTHERS"; then
    ok "by Redis state and the outbox: $(wc -l <"$RUN_WORK/started.actual") instances started and ended," \
        "$emailed with an email, $ended_without without one and without a dead letter (timed_out):" \
        "exactly the $(wc -l <"$E2E_OTHERS") users who never activated"
else
    fail "by Redis state and the outbox: $ended_without ended without an email, want the $(wc -l <"$E2E_OTHERS") non-activated users"
fi
# The same from the logs of every run (a SIGKILL may cut a run's last line; each instance.end is
# logged before its end is recorded, so an end that counts was logged at least once).
check_outcomes "$E2E_ACTIVATED" "$E2E_OTHERS" distinct "${W_ALL_LOGS[@]}"

log_table "${W_ALL_LOGS[@]}" >"$RUN_WORK/all.tsv"
attempts=$(awk -F'\t' '$2 == "action.attempt" { if (seen[$3]++ == 1) n++ } END { print n + 0 }' "$RUN_WORK/all.tsv")
oks=$(awk -F'\t' '$2 == "action.ok" { if (seen[$3]++ == 1) n++ } END { print n + 0 }' "$RUN_WORK/all.tsv")
final=${W_ALL_LOGS[-1]}
say "resends: $attempts users' emails were attempted in more than one run ($oks logged action.ok" \
    "more than once): the outbox kept the first file; the last run's worker.stop counts" \
    "outbox_duplicates=$(worker_stop_count "$final" outbox_duplicates) (killed runs print no worker.stop)"
for f in "${W_ALL_LOGS[@]}"; do
    awk -F'\t' -v f="$(basename "$f" .jsonl)" '
        $2 == "instance.start" { s++ } $2 == "instance.end" { e++ } $2 == "action.ok" { m++ }
        END { printf "        run %s: %d started, %d ended, %d emails sent\n", f, s, e, m }' < <(log_table "$f")
done
e2e_done
