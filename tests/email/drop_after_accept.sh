#!/usr/bin/env bash
# email_drop_after_accept: Resend accepts the email, then the connection drops before the answer.
# The worker cannot know it was accepted: a transient failure, retried by the policy under the same
# Idempotency-Key; the server answers the retry from its idempotency record (the original 200 and
# id, nothing stored again). Exactly one email for the user; action.ok logs the id of the first.
#   usage: with-redis.sh -- drop_after_accept.sh SKENEC SKENE_VM RESEND_MOCK
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
em_init email_drop_after_accept "$@"

build_skb "$RUN_ROOT/examples/activation/skene.config.ts"
mock_start --rps 0
mock_faults '{"faults":[{"path":"/emails","drop":"after_accept"}]}'
one_activation w1 1 --time-scale 20

check_requests 1 4,5,6 "-,dropped,drop_after_accept 200,replied,- " \
    "2 requests: accepted then dropped unanswered, then 200; both with Idempotency-Key" \
    "want 2 requests (dropped after accept, then 200)"
wlog u1 >"$RUN_WORK/u1"
retry=$(awk -F'\t' '$2 == "action.retry" { print $9 }' "$RUN_WORK/u1")
if [[ $(grep -c . <<<"$retry") == 1 && "$retry" == resend:* ]]; then
    ok "one action.retry (transient): $retry"
else
    fail "action.retry lines: '$(tr '\n' ';' <<<"$retry")' (want one, transient)"
fi
replays=$(mock_stat idempotent_replays)
dropped=$(mock_stat dropped)
((replays == 1 && dropped == 1)) && ok "the mock dropped 1 connection and answered the retry from its idempotency record (1 replay)" ||
    fail "mock stats: $replays idempotent replays, $dropped dropped (want 1 and 1)"
n=$(js emails "$EM_MOCK_URL" | awk -F'\t' '$1 == "u1@example.com"' | wc -l)
((n == 1)) && ok "the mock has exactly one email for u1@example.com" || fail "the mock has $n emails for u1@example.com"
check_one_email 1
check_outcome 1 completed
worker_stop w1
mock_stop
em_done
