#!/usr/bin/env bash
# email_no_secrets: run with a Redis password (with-redis.sh --acl: user skene, a random password
# with characters a URL must escape) and a Resend API key made here, then make the worker say as
# much as it can: a permanent failure (422) and transient ones (500, a dropped connection), both
# with an error body that echoes the API key back, as a careless server might; Redis connections
# killed under it (it reconnects); a worker.stats line; the dead letter listed and retried; a start
# refused for a wrong Redis password that begins with the right one. Then neither secret, nor its
# random part in any escaping, may be found in: every log line and the standard error of every
# skene-vm process, the outputs of `skene-vm dlq list`, `dlq list --json`, `dlq retry`, `skenec
# dump`, the dead letters as Redis holds them (XRANGE skene:dlq), or anything Skene wrote to Redis
# (an uncompressed RDB snapshot of the whole server). The request log of the mock must show the
# key in its Authorization header, which proves the search finds it where it is.
#   usage: with-redis.sh --acl -- no_secrets.sh SKENEC SKENE_VM RESEND_MOCK
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
em_init email_no_secrets "$@"
[[ "${SKENE_TEST_REDIS_ACL:-0}" == 1 ]] || fatal "run me under with-redis.sh --acl (a Redis password to look for)"
key_part=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
EM_API_KEY=re_test_$key_part
password=$SKENE_TEST_REDIS_PASSWORD
pw_part=${password: -16} # with-redis.sh: 16 random hex digits at the end
[[ "$pw_part" =~ ^[0-9a-f]{16}$ ]] || fatal "the Redis password does not end in 16 hex digits as with-redis.sh makes it"
out=$RUN_WORK/out
mkdir -p "$out"

build_skb "$RUN_ROOT/examples/activation/skene.config.ts"
RESEND_API_KEY=$EM_API_KEY REDIS_URL=$SKENE_TEST_REDIS_URL "$SKENEC" dump "$RUN_SKB" >"$out/skenec-dump.out" 2>&1 ||
    fail "skenec dump failed"
mock_start --rps 0
worker_start w1 --time-scale 20 --due-interval-ms 200

say "-- u1: 422 whose message echoes the API key: permanent, a dead letter"
echo_body() { # STATUS NAME: Resend's error shape, the key in the message
    printf '{"statusCode":%s,"name":"%s","message":"The key Bearer %s was refused (%s)"}' "$1" "$2" "$EM_API_KEY" "$EM_API_KEY"
}
mock_faults '{"faults":[{"path":"/emails","status":422,"body":'"$(echo_body 422 validation_error)"'}]}'
one_activation w1 1
check_outcome 1 failed

say "-- u2: 500 echoing the key, then a dropped connection: transient, retried"
mock_faults '{"faults":[{"path":"/emails","status":500,"body":'"$(echo_body 500 application_error)"'},{"path":"/emails","drop":"before"}]}'
one_activation w1 2
check_outcome 2 completed
# libcurl may send a request again by itself on a new connection when a reused one closes before
# any answer: the dropped one then costs no action.retry. The mock saw all three.
got=$(requests u2@example.com | cut -f4,5 | tr '\t\n' ', ')
[[ "$got" == "500,replied -,dropped 200,replied " ]] || fail "u2's requests: $got (want 500, dropped, 200)"

say "-- Redis connections killed under the worker, then u3"
rcli CLIENT KILL TYPE normal SKIPME yes >"$out/client-kill.out" 2>&1
one_activation w1 3
check_outcome 3 completed
kill -USR1 "${W_PID[w1]}"
wait_for 5 "a worker.stats line" n_events worker.stats 1

say "-- the dead letter: listed, retried"
dlq list >"$out/dlq-list.out" 2>&1 || fail "skene-vm dlq list failed"
dlq list --json >"$out/dlq-list-json.out" 2>&1 || fail "skene-vm dlq list --json failed"
rcli XRANGE skene:dlq - + >"$out/xrange-dlq.out" 2>&1
grep -q 'resend: HTTP 422 validation_error' "$out/dlq-list.out" && ok "the 422 is in skene:dlq" ||
    fail "no 422 in the dead letters: $(cat "$out/dlq-list.out")"
dlq retry --all >"$out/dlq-retry.out" 2>&1 || fail "skene-vm dlq retry --all failed: $(cat "$out/dlq-retry.out")"
wait_for 15 "u1 to complete after the retry" ended_with 1 completed
worker_stop w1

say "-- a start refused: the right user, a wrong password that begins with the right one"
env -u UPSTASH_REDIS_URL REDIS_URL="${SKENE_TEST_REDIS_URL/@/x@}" RESEND_API_KEY="$EM_API_KEY" \
    RESEND_API_URL="$EM_MOCK_URL" SKENE_EMAIL_FROM="$EM_FROM" \
    "$SKENE_VM" run --worker w2 "$RUN_SKB" >"$out/refused.stdout" 2>"$out/refused.stderr"
rc=$?
if ((rc == 1)) && grep -q . "$out/refused.stderr"; then
    ok "refused to start (exit 1): $(head -1 "$out/refused.stderr")"
else
    fail "a wrong Redis password: exit $rc (want 1) with a message; stderr: $(cat "$out/refused.stderr")"
fi

say "-- everything Skene wrote to Redis"
rcli CONFIG SET rdbcompression no >/dev/null
rcli CONFIG SET repl-diskless-sync-delay 0 >/dev/null
rcli --rdb "$out/redis.rdb" >"$out/rdb.log" 2>&1 || fail "redis-cli --rdb failed: $(cat "$out/rdb.log")"
[[ -s "$out/redis.rdb" ]] && grep -aq 'skene:dlq' "$out/redis.rdb" ||
    fail "the RDB snapshot is empty or has no skene:dlq: the search below would prove nothing"
mv "$out/redis.rdb" "$out/redis.rdb.out"

# The search: every file of out/ and every worker log and stderr, for each secret whole and for its
# random part (which no escaping changes).
found=0
for f in "$out"/* "$RUN_WORK"/logs/w*.jsonl "$RUN_WORK"/logs/w*.stderr; do
    for s in "$EM_API_KEY" "$key_part" "$password" "$pw_part"; do
        if grep -aqF -- "$s" "$f"; then
            fail "$(basename "$f") holds a secret: $(grep -aF -- "$s" "$f" | head -1 | cut -c1-200)"
            found=$((found + 1))
        fi
    done
done
n=$(ls "$out" "$RUN_WORK"/logs/w*.jsonl "$RUN_WORK"/logs/w*.stderr | wc -l)
lines=$(cat "$RUN_WORK"/logs/w*.jsonl | wc -l)
((found == 0)) && ok "neither the API key nor the Redis password in $n files ($lines worker log lines, the" \
    "dead letters, the dlq and dump outputs, the whole of Redis)"
if grep -qF "\"Authorization\",\"Bearer $EM_API_KEY\"" "$EM_MOCK_LOG"; then
    ok "(the mock's request log has the key where it belongs, in Authorization: the search finds it)"
else
    fail "the mock's request log does not show the key in Authorization: the search proves nothing"
fi
reasons=$(wlog | awk -F'\t' '$9 ~ /refused/ { print $9 }' | sort -u)
if grep -q . <<<"$reasons"; then
    ok "the echoed messages were logged, the key scrubbed: $(head -1 <<<"$reasons")"
else
    fail "the reasons of the failures are not in the log: nothing shows the key was scrubbed rather than dropped"
fi
mock_stop
em_done
