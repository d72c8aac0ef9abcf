#!/usr/bin/env bash
# email_permanent_422: Resend refuses the email with 422 validation_error. That is permanent: no
# retry, the instance ends `failed` and goes to the dead letters (skene:dlq) with Resend's name and
# message, which `skene-vm dlq list` shows. Then, the fault gone, `skene-vm dlq retry --all` puts it
# back; the running worker (--due-interval-ms 200) takes it, the email is accepted under the same
# Idempotency-Key, the instance completes and the dead letter is gone.
#   usage: with-redis.sh -- permanent_422.sh SKENEC SKENE_VM RESEND_MOCK
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
em_init email_permanent_422 "$@"

message='Invalid `to` field. The email address needs to follow the `email@example.com` or `Name <email@example.com>` format.'
want_reason="resend: HTTP 422 validation_error: $message"
build_skb "$RUN_ROOT/examples/activation/skene.config.ts"
mock_start --rps 0
mock_faults "$(node -e 'process.stdout.write(JSON.stringify({faults: [{path: "/emails", status: 422,
    body: {statusCode: 422, name: "validation_error", message: process.argv[1]}}]}))' "$message")"
one_activation w1 1 --time-scale 20 --due-interval-ms 200

say "-- the 422"
wlog u1 >"$RUN_WORK/u1.first"
end=$(awk -F'\t' '$2 == "instance.end"' "$RUN_WORK/u1.first")
retries=$(awk -F'\t' '$2 == "action.retry"' "$RUN_WORK/u1.first" | wc -l)
if [[ $(cut -f8 <<<"$end") == failed && $(cut -f9 <<<"$end") == "$want_reason" ]]; then
    ok "instance.end failed, reason: $want_reason"
else
    fail "instance.end: '$(cut -f8,9 <<<"$end")' (want failed, '$want_reason')"
fi
((retries == 0)) && ok "no action.retry: a 422 is permanent" || fail "$retries action.retry lines after a 422"
n=$(requests | wc -l)
accepted=$(mock_stat accepted_emails)
((n == 1 && accepted == 0)) && ok "one request (422), no email accepted" ||
    fail "$n requests, $accepted emails accepted (want 1 request, 0 emails)"

dlq list >"$RUN_WORK/dlq.list" 2>"$RUN_WORK/dlq.err" || fail "skene-vm dlq list failed: $(cat "$RUN_WORK/dlq.err")"
dlq list --json >"$RUN_WORK/dlq.json" 2>>"$RUN_WORK/dlq.err" || fail "skene-vm dlq list --json failed"
letter=$(node -e '
    const ls = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean).map(JSON.parse);
    for (const l of ls) console.log([l.id, l.loop, l.subject, l.step, l.reason].join("\t"));' "$RUN_WORK/dlq.json")
if [[ $(grep -c . <<<"$letter") == 1 && $(cut -f2-5 <<<"$letter") == "activation"$'\t'"u1"$'\t'"1"$'\t'"$want_reason" ]]; then
    ok "skene-vm dlq list --json: one letter, activation u1 step 1, Resend's name and message"
else
    fail "skene-vm dlq list --json: '$letter'"
fi
id=$(cut -f1 <<<"$letter")
if [[ $(wc -l <"$RUN_WORK/dlq.list") == 1 ]] && grep -qF "$id  activation  u1  step 1" "$RUN_WORK/dlq.list" &&
    grep -qF "$want_reason" "$RUN_WORK/dlq.list"; then
    ok "skene-vm dlq list: $(cat "$RUN_WORK/dlq.list")"
else
    fail "skene-vm dlq list printed:"
    show "$RUN_WORK/dlq.list"
fi

say "-- skene-vm dlq retry --all, the fault gone"
left=$(js get "$EM_MOCK_URL/_mock/faults")
[[ "$left" == '{"faults":[]}' ]] || fail "the mock still has faults: $left"
t0=$(now_ms)
if dlq retry --all >"$RUN_WORK/retry.out" 2>"$RUN_WORK/retry.err" &&
    [[ $(grep -c . "$RUN_WORK/retry.out") == 1 ]] && grep -q '"subject":"u1","result":"requeued"' "$RUN_WORK/retry.out"; then
    ok "skene-vm dlq retry --all: $(cat "$RUN_WORK/retry.out")"
else
    fail "skene-vm dlq retry --all: $(cat "$RUN_WORK/retry.out" "$RUN_WORK/retry.err")"
fi
wait_for 15 "u1 to complete after the retry" ended_with 1 completed && say "u1 completed $(($(now_ms) - t0)) ms after the retry"
check_one_email 1
reqs=$(requests u1@example.com | cut -f4 | tr '\n' ' ')
nkeys=$(requests u1@example.com | cut -f7 | sort -u | wc -l)
[[ "$reqs" == "422 200 " && $nkeys == 1 ]] && ok "requests: 422, then 200 after the retry, one key" || fail "requests: $reqs under $nkeys keys (want 422 200, one key)"
ends=$(wlog u1 | awk -F'\t' '$2 == "instance.end" { print $8 }' | tr '\n' ' ')
[[ "$ends" == "failed completed " ]] && ok "u1's instance ended failed, then completed" || fail "u1's instance.end outcomes: $ends"
n=$(rcli XLEN skene:dlq)
listed=$(dlq list | wc -l)
((n == 0 && listed == 0)) && ok "no dead letter left (XLEN skene:dlq 0, dlq list empty)" ||
    fail "$n entries in skene:dlq, $listed listed after the retry"
worker_stop w1
mock_stop
em_done
