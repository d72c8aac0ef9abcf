#!/usr/bin/env bash
# email_retry_after: Resend answers 429 rate_limit_exceeded with `retry-after: 2`, then accepts. The
# worker's next attempt waits at least those 2 s of the loop's clock (at --time-scale 10: 200 ms of
# wall time, while the backoff alone would be 50-100 ms), under the same Idempotency-Key; one email.
#   usage: with-redis.sh -- retry_after.sh SKENEC SKENE_VM RESEND_MOCK
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
em_init email_retry_after "$@"
scale=10
after=2

build_skb "$RUN_ROOT/examples/activation/skene.config.ts"
mock_start --rps 0
mock_faults '{"faults":[{"path":"/emails","status":429,"headers":{"retry-after":"'$after'"}}]}'
one_activation w1 1 --time-scale "$scale"

check_requests 1 4 "429 200 " \
    "2 requests to POST /emails: 429 (retry-after: $after), then 200, both with Idempotency-Key" \
    "want 2 requests (429, 200)"

wlog u1 >"$RUN_WORK/u1"
retry=$(awk -F'\t' '$2 == "action.retry"' "$RUN_WORK/u1")
delay=$(cut -f6 <<<"$retry")
reason=$(cut -f9 <<<"$retry")
want_reason='resend: HTTP 429 rate_limit_exceeded: Too many requests. Please limit the number of requests per second. Or contact support to increase rate limit.'
if [[ $(grep -c . <<<"$retry") == 1 && "$delay" =~ ^[0-9]+$ ]] && ((delay >= after * 1000)); then
    ok "one action.retry, after $delay ms of the loop's clock (retry-after: $after s; the backoff alone: 500-1000 ms)"
else
    fail "want one action.retry of at least $((after * 1000)) ms; got: $(tr '\n\t' '; ' <<<"$retry")"
fi
[[ "$reason" == "$want_reason" ]] && ok "its reason is Resend's: $reason" || fail "its reason: '$reason' (want '$want_reason')"

# Wall time between the two requests: at least retry-after in the loop's clock (/ scale). The
# sender's own rate limiter also pauses for retry-after, in wall-clock seconds: shown, not checked.
mapfile -t t < <(cut -f1 "$RUN_WORK/reqs")
if ((${#t[@]} == 2)); then
    gap=$((t[1] - t[0]))
    if ((gap * scale >= after * 1000 - scale)); then
        ok "the next request reached the mock $gap ms (wall) after the 429: no sooner than $after s / $scale"
    else
        fail "the next request reached the mock $gap ms (wall) after the 429: sooner than $after s / $scale"
    fi
fi

check_one_email 1
check_outcome 1 completed
n=$(mock_stat by_status.429)
((n == 1)) || fail "the mock answered $n 429s (want 1: the injected one)"
worker_stop w1
mock_stop
em_done
