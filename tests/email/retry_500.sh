#!/usr/bin/env bash
# email_retry_500: Resend answers 500 twice, then accepts. The worker retries by the loop's recovery
# policy (examples/activation: retries 3, exponential backoff from 1 s with jitter, at --time-scale
# 20 here): three attempts under one Idempotency-Key, each retry after its backoff, one email
# accepted, the instance completed, no dead letter.
#   usage: with-redis.sh -- retry_500.sh SKENEC SKENE_VM RESEND_MOCK
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
em_init email_retry_500 "$@"
scale=20

build_skb "$RUN_ROOT/examples/activation/skene.config.ts"
mock_start --rps 0
mock_faults '{"faults":[{"path":"/emails","method":"POST","status":500,"count":2}]}'
one_activation w1 1 --time-scale "$scale"

# The requests: 500, 500, 200, one key, each after the worker's backoff.
check_requests 1 4 "500 500 200 " "3 requests to POST /emails: 500, 500, 200, all with Idempotency-Key" \
    "want 3 requests (500, 500, 200)"

wlog u1 >"$RUN_WORK/u1"
attempts=$(awk -F'\t' '$2 == "action.attempt" { print $4 }' "$RUN_WORK/u1" | tr '\n' ' ')
[[ "$attempts" == "1 2 3 " ]] && ok "action.attempt 1, 2, 3" || fail "action.attempt lines: '$attempts' (want 1 2 3)"

# action.retry: Resend's error as the reason; exponential backoff from 1 s with jitter (half to all
# of it): 500-1000 ms of the loop's clock, then 1000-2000 ms.
mapfile -t retries < <(awk -F'\t' '$2 == "action.retry" { print $6 "\t" $9 }' "$RUN_WORK/u1")
want_reason='resend: HTTP 500 application_error: An unexpected error occurred.'
if ((${#retries[@]} != 2)); then
    fail "${#retries[@]} action.retry lines (want 2)"
else
    d1=${retries[0]%%$'\t'*} d2=${retries[1]%%$'\t'*}
    if [[ ${retries[0]#*$'\t'} == "$want_reason" && ${retries[1]#*$'\t'} == "$want_reason" ]]; then
        ok "both action.retry lines give Resend's error: $want_reason"
    else
        fail "action.retry reasons: '${retries[0]#*$'\t'}', '${retries[1]#*$'\t'}' (want '$want_reason')"
    fi
    if ((d1 >= 500 && d1 <= 1000 && d2 >= 1000 && d2 <= 2000)); then
        ok "backoff $d1 ms then $d2 ms of the loop's clock (exponential from 1 s, jitter)"
    else
        fail "backoff $d1 ms then $d2 ms (want 500-1000, then 1000-2000)"
    fi
    # The mock logs a request when it has answered it; the next one cannot come before the worker
    # saw that answer and waited its delay (wall ms = loop ms / scale; 1 ms for the two clocks' rounding).
    mapfile -t t < <(cut -f1 "$RUN_WORK/reqs")
    g1=$((t[1] - t[0])) g2=$((t[2] - t[1]))
    if ((g1 * scale >= d1 - scale && g2 * scale >= d2 - scale)); then
        ok "the retries reached the mock $g1 ms and $g2 ms apart (wall), no sooner than their delays / $scale"
    else
        fail "the retries reached the mock $g1 ms and $g2 ms apart (wall); their delays are $d1 and $d2 ms / $scale"
    fi
fi

check_one_email 1
check_outcome 1 completed
[[ $(mock_stat accepted_emails) == 1 && $(mock_stat by_status.500) == 2 ]] ||
    fail "mock stats: $(js get "$EM_MOCK_URL/_mock/stats")"
n=$(rcli XLEN skene:dlq)
((n == 0)) && ok "no dead letter" || fail "$n dead letters"
worker_stop w1
mock_stop
em_done
