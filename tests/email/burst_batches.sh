#!/usr/bin/env bash
# email_burst_batches: 1,000 users wait for their first project, then all create it at once. The
# server allows 5 requests a second (resend-mock --rps 5) and the worker is told so
# (SKENE_RESEND_RPS=5): it must never be refused with a 429, which means sending most emails in
# batches (POST /emails/batch, at most 100 each, x-batch-validation: permissive), each recorded in
# Redis before it is sent (skene:batch:<key>, the exact bytes). Exactly one email per user.
#   usage: with-redis.sh -- burst_batches.sh SKENEC SKENE_VM RESEND_MOCK
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
em_init email_burst_batches "$@"
users=${EM_USERS:-1000}
EM_RPS=5

build_skb "$RUN_ROOT/examples/activation/skene.config.ts"
mock_start --rps 5
worker_start w1 --time-scale 10
seq 1 "$users" | sed 's/^/user /' >"$RUN_WORK/plan.users"
seq 1 "$users" | sed 's/^/action /' >"$RUN_WORK/plan.actions"
write_plan "$RUN_WORK/plan.users"
wait_for 30 "$users users to wait" n_events condition.wait "$users" || fatal "the sign-ups did not wait"
say "$users users wait; their first projects now, all at once"
t0=$(now_ms)
write_plan "$RUN_WORK/plan.actions"
wait_for 60 "$users instances to end" n_events instance.end "$users"
say "$users instances ended $(($(now_ms) - t0)) ms after the first projects were written"

limited=$(mock_stat rate_limited)
s429=$(mock_stat by_status.429)
requests >"$RUN_WORK/reqs"
if ((limited == 0 && s429 == 0)); then
    ok "no 429: the mock's limiter refused nothing"
else
    fail "the mock refused $limited requests over its limit ($s429 answers 429); the requests, ms after" \
        "the first (answered; the mock's window is the second after the first request it counts):" \
        "$(awk -F'\t' 'NR == 1 { t0 = $1 } { printf "+%d %s, ", $1 - t0, $4 }' "$RUN_WORK/reqs" | head -c 400)"
fi
n=$(wc -l <"$RUN_WORK/reqs")
batches=$(awk -F'\t' '$3 == "/emails/batch"' "$RUN_WORK/reqs" | wc -l)
in_batches=$(awk -F'\t' '$3 == "/emails/batch" && $4 == 200 { s += $9 } END { print s + 0 }' "$RUN_WORK/reqs")
bad=$(awk -F'\t' '$3 == "/emails/batch" && !($8 == "permissive" && $9 >= 1 && $9 <= 100 && $7 ~ /^skb_[0-9a-f]+$/ && length($7) == 20)' "$RUN_WORK/reqs")
others=$(awk -F'\t' '$3 != "/emails/batch" && $3 != "/emails" || !($4 == 200 || $4 == 429)' "$RUN_WORK/reqs")
say "requests: $n, of which $batches batches of $(awk -F'\t' '$3 == "/emails/batch" { printf "%s ", $9 }' "$RUN_WORK/reqs")emails"
if ((batches * 2 > n && in_batches * 10 >= users * 9)); then
    ok "mostly batches: $batches of $n requests; the accepted ones carried $in_batches of the $users emails"
else
    fail "$batches of $n requests are batches, carrying $in_batches of $users emails (want most requests, 90% of emails)"
fi
if [[ -z "$bad" && -z "$others" ]]; then
    ok "every batch: 1-100 emails, x-batch-validation: permissive, Idempotency-Key skb_<16 hex>;" \
        "every request a POST /emails or /emails/batch answered 200 (or 429, counted above)"
else
    fail "requests that are not right:"
    printf '%s\n%s\n' "$bad" "$others" | grep . | head -5 | cut -f1-9 | sed 's/^/        /'
fi
# The span of the requests: at 5 a second, N requests take at least (N - 1) / 5 s.
span=$(awk -F'\t' 'NR == 1 { a = $1 } { b = $1 } END { print b - a }' "$RUN_WORK/reqs")
say "the $n requests took $span ms"

# Each batch was recorded in Redis before it was sent: its key and the exact bytes.
recorded=0 i=0
while IFS=$'\t' read -r _ _ path _ _ _ key _; do
    i=$((i + 1))
    [[ $path == /emails/batch ]] || continue
    js body "$EM_MOCK_LOG" "$i" >"$RUN_WORK/sent.body"
    rcli --raw HGET "skene:batch:$key" body | head -c -1 >"$RUN_WORK/recorded.body"
    if cmp -s "$RUN_WORK/sent.body" "$RUN_WORK/recorded.body" && [[ -n $(rcli ZSCORE skene:batches "$key") ]]; then
        recorded=$((recorded + 1))
    else
        fail "batch $key (request $i): not recorded in Redis as sent (skene:batch:$key, skene:batches)"
    fi
done <"$RUN_WORK/reqs"
((recorded == batches)) && ok "all $batches batches are in Redis (skene:batch:<key> with the exact body, skene:batches)"

check_one_each "$users"
completed=$(wlog | awk -F'\t' '$2 == "instance.end" && $8 == "completed"' | wc -l)
((completed == users)) && ok "$users instances completed" || fail "$completed of $users instances completed"
worker_stop w1
mock_stop
em_done
