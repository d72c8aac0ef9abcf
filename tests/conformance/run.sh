#!/usr/bin/env bash
# run.sh SKENEC SKENE_VM NAME CASE: one conformance test (README.md here). Plays
# tests/sim/NAME/CASE.scenario.json both ways, with `skene-vm simulate` on the in-memory store and
# with `skene-vm run` on the redis-server of tests/redis/with-redis.sh (conf-replay drives it), and
# diffs their outcomes (conf-outcomes: instances, steps, emails, dead letters; no times).
#
# Run it under with-redis.sh, which exports SKENE_TEST_REDIS_URL. conf-replay and conf-outcomes are
# found through SKENE_CONF_REPLAY and SKENE_CONF_OUTCOMES (ctest sets them), else next to the build's
# skene-vm (BUILD/tests/conformance/). The environment is tests/sim/NAME/env, then this folder's
# env/NAME (for both stores); nothing else of the caller's Skene settings is passed on.
# SKENE_CONF_KEEP=DIR keeps the files of the run in DIR (the worker's log, the outbox, both outcomes).
# SKENE_CONF_ARGS adds options to conf-replay, e.g. '--min-gap-ms 100' or '--time-scale 60'.
set -u
skenec=$1 vm=$2 name=$3 case=$4
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dir=$root/tests/sim/$name
scenario=$dir/$case.scenario.json
tools=$(cd "$(dirname "$vm")/../tests/conformance" 2>/dev/null && pwd)
replay=${SKENE_CONF_REPLAY:-$tools/conf-replay}
outcomes=${SKENE_CONF_OUTCOMES:-$tools/conf-outcomes}

fail() { echo "FAIL: conf $name/$case: $*" >&2; exit 1; }
[ -f "$scenario" ] || fail "no $scenario"
[ -n "${SKENE_TEST_REDIS_URL:-}" ] || fail "SKENE_TEST_REDIS_URL is not set: run me under tests/redis/with-redis.sh"
if [ ! -x "$replay" ] || [ ! -x "$outcomes" ]; then
  fail "conf-replay or conf-outcomes not found (set SKENE_CONF_REPLAY and SKENE_CONF_OUTCOMES)"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
keep() {
  if [ -n "${SKENE_CONF_KEEP:-}" ]; then mkdir -p "$SKENE_CONF_KEEP" && cp -r "$tmp"/. "$SKENE_CONF_KEEP"/; fi
}

if [ -f "$dir/skene.config.ts" ]; then config=$dir/skene.config.ts; else config=$root/$(cat "$dir/config.path"); fi
"$skenec" build -o "$tmp/loop.skb" "$config" >"$tmp/skenec.err" 2>&1 || { cat "$tmp/skenec.err" >&2; fail "skenec build $config"; }

# The same environment for both stores: the case's, and this suite's additions (env/NAME).
unset SKENE_EMAIL_FROM RESEND_API_KEY RESEND_API_URL REDIS_URL UPSTASH_REDIS_URL SKENE_REDIS_PREFIX \
  SKENE_WORKER SKENE_OUTBOX SKENE_REDIS_CA SKENE_REDIS_INSECURE
for envfile in "$dir/env" "$here/env/$name"; do
  [ -f "$envfile" ] || continue
  while IFS= read -r line; do
    case "$line" in ''|'#'*) continue ;; esac
    export "${line?}" # VAR=value
  done <"$envfile"
done

"$vm" simulate "$tmp/loop.skb" "$scenario" >"$tmp/sim.jsonl" 2>"$tmp/sim.err" || { cat "$tmp/sim.err" >&2; fail "skene-vm simulate: exit $?"; }

mkdir "$tmp/outbox"
export REDIS_URL=$SKENE_TEST_REDIS_URL
# shellcheck disable=SC2086 # SKENE_CONF_ARGS is a list of options
"$replay" ${SKENE_CONF_ARGS:-} --vm "$vm" --outbox "$tmp/outbox" --timeline "$tmp/sim.jsonl" "$scenario" "$tmp/loop.skb" \
  >"$tmp/redis.jsonl" 2>"$tmp/replay.err"
status=$?
if [ "$status" != 0 ]; then
  cat "$tmp/redis.jsonl" "$tmp/replay.err" >&2
  keep
  fail "conf-replay: exit $status"
fi
"$outcomes" sim "$tmp/sim.jsonl" >"$tmp/sim.outcomes" || fail "conf-outcomes sim"
"$outcomes" redis "$tmp/redis.jsonl" "$tmp/outbox" >"$tmp/redis.outcomes" || fail "conf-outcomes redis"
keep

plan=$(head -n 1 "$tmp/redis.jsonl")
if ! diff -u --label "simulate" --label "run on Redis" "$tmp/sim.outcomes" "$tmp/redis.outcomes" >"$tmp/diff"; then
  echo "--- the worker's log (conf-replay's output):" >&2
  cat "$tmp/redis.jsonl" "$tmp/replay.err" >&2
  echo "--- outcomes (- simulate, + run on Redis):" >&2
  cat "$tmp/diff" >&2
  fail "the outcomes differ (above)"
fi
cat "$tmp/replay.err" >&2
echo "conf $name/$case: the same $(wc -l <"$tmp/sim.outcomes") outcomes; $plan"
cat "$tmp/sim.outcomes"
