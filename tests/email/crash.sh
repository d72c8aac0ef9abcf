#!/usr/bin/env bash
# email_crash: 12,000 sign-ups, 10,000 of them with a first project (every user but each sixth),
# written in as many parts as there are kills. After each part, the worker is killed with kill -9 at
# a random moment (seeded: 0.2-0.9 s later) and started again at once under the same --worker
# (--lease-ms 1000: the instances it held come back a second later). Email goes through resend-mock,
# mostly in batches, at SKENE_RESEND_RPS=10 (the mock allows 20) and each answer 100 ms late (a delay
# fault), so that the kills come while emails wait to be sent and while requests are in flight:
# sent, maybe accepted, not yet answered. When every instance has ended: the mock accepted exactly
# one email per activated user (as many emails as activated users, as many distinct `to`) and none
# for anyone else.
#   usage: with-redis.sh -- crash.sh SKENEC SKENE_VM RESEND_MOCK
# Knobs: EM_USERS (12000), EM_KILLS (8; fewer than 5 fails), EM_SEED (1).
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
em_init email_crash "$@"
users=${EM_USERS:-12000}
kills=${EM_KILLS:-8}
seed=${EM_SEED:-1}
EM_RPS=10
((kills >= 5)) || fatal "EM_KILLS=$kills: this test needs at least 5 kills"
activated() { (($1 % 6 != 0)); }
n_activated=$((users - users / 6))

build_skb "$RUN_ROOT/examples/activation/skene.config.ts"
mock_start --rps 20
mock_faults '{"faults":[{"path":"/emails*","delay_ms":100,"count":1000000}]}'
run_opts=(--time-scale 60 --lease-ms 1000 --due-interval-ms 500)
worker_start w1 "${run_opts[@]}"

# The kill moments, seeded: one per part, 200-900 ms after the part is written.
mapfile -t waits < <(awk -v n="$kills" -v seed="$seed" 'BEGIN { srand(seed); for (i = 0; i < n; i++) printf "%.3f\n", 0.2 + rand() * 0.7 }')
say "$users users ($n_activated activated) in $kills parts; kill -9 after each, seed $seed:" \
    "$(tr '\n' ' ' <<<"${waits[*]}")s"
per=$(((users + kills - 1) / kills))
killed_mid=0 killed_in_flight=0
for ((k = 0; k < kills; k++)); do
    from=$((k * per + 1)) to=$(((k + 1) * per))
    ((to > users)) && to=$users
    for ((n = from; n <= to; n++)); do
        echo "user $n"
        activated "$n" && echo "action $n"
    done >"$RUN_WORK/plan.$k"
    write_plan "$RUN_WORK/plan.$k"
    sleep "${waits[$k]}"
    in_flight=$(mock_stat in_flight) # requests held by the delay: sent, not answered yet
    worker_kill w1
    accepted=$(mock_stat accepted_emails)
    written=$((to - to / 6)) # activated users written so far
    ((accepted < written)) && killed_mid=$((killed_mid + 1))
    ((in_flight > 0)) && killed_in_flight=$((killed_in_flight + 1))
    say "kill $((k + 1)): users 1-$to written ($written activated); $in_flight requests in flight," \
        "$accepted emails accepted"
    worker_start w1 "${run_opts[@]}"
done
if ((killed_mid >= 5)); then
    ok "$killed_mid of the $kills kills came while emails of activated users were still to be sent," \
        "$killed_in_flight with requests in flight"
else
    fail "only $killed_mid of the $kills kills came while emails were still to be sent (want 5 or more)"
fi

wait_for 60 "every instance to end" all_ended "$users"
sleep 0.5 # anything sent twice would show now
worker_stop w1

js emails "$EM_MOCK_URL" | cut -f1 | sort >"$RUN_WORK/emails.to"
for ((n = 1; n <= users; n++)); do activated "$n" && echo "u$n@example.com"; done | sort >"$RUN_WORK/emails.want"
check_one_per_user "$RUN_WORK/emails.to" "$RUN_WORK/emails.want" "$users" "the mock"
requests >"$RUN_WORK/reqs"
say "the mock: $(wc -l <"$RUN_WORK/reqs") requests, $(awk -F'\t' '$3 == "/emails/batch"' "$RUN_WORK/reqs" | wc -l) batches," \
    "$(mock_stat idempotent_replays) idempotent replays (sends repeated after a kill, answered from Resend's" \
    "record), $(mock_stat by_status.409) answered 409, $(mock_stat rate_limited) rate-limited"
adopted=$(cat "${W_ALL_LOGS[@]}" | grep '"event":"resend.batches"' | sed -n 's/.*"adopted":\([0-9]*\).*/\1/p' | tr '\n' ' ')
say "recorded batches taken back at the restarts: ${adopted:-none}"
bad409=$(mock_stat by_status.409)
((bad409 == 0)) || fail "$bad409 requests answered 409 (a key reused with another body, or still in progress)"
timed_out=$(wlog | awk -F'\t' '$2 == "instance.end" && $8 == "timed_out" { print $3 }' | sort -u | wc -l)
dead=$(rcli XLEN skene:dlq)
((dead == 0)) && ok "no dead letter" || fail "$dead dead letters: $(dlq list | head -3)"
say "instances that ended timed_out in the logs: $timed_out (the $((users - n_activated)) who never activate)"
mock_stop
em_done
