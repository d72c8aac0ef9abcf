#!/usr/bin/env bash
# run.sh SKENEC SKENE_VM NAME CASE: one conformance test (README.md here). Plays
# tests/sim/NAME/CASE.scenario.json both ways, with `skene-vm simulate` on the in-memory store and
# with `skene-vm run` on the redis-server of tests/redis/with-redis.sh (conf-replay drives it), and
# diffs their outcomes (conf-outcomes: instances, steps, emails, webhooks, dead letters; no times).
#
# A config that calls webhooks is run on Redis from a copy (with its templates folder) whose webhook
# URLs' scheme and host (https://crm.example) are those of conf-sink (http://127.0.0.1:PORT), a
# receiver started here that records each request; the simulator runs the original.
#
# Run it under with-redis.sh, which exports SKENE_TEST_REDIS_URL. conf-replay, conf-outcomes and
# conf-sink are found through SKENE_CONF_REPLAY, SKENE_CONF_OUTCOMES and SKENE_CONF_SINK (ctest sets
# them), else next to the build's skene-vm (BUILD/tests/conformance/). The environment is
# tests/sim/NAME/env, then this folder's env/NAME (for both stores); nothing else of the caller's
# Skene settings is passed on, nor a proxy.
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
sink=${SKENE_CONF_SINK:-$tools/conf-sink}

fail() { echo "FAIL: conf $name/$case: $*" >&2; exit 1; }
[ -f "$scenario" ] || fail "no $scenario"
[ -n "${SKENE_TEST_REDIS_URL:-}" ] || fail "SKENE_TEST_REDIS_URL is not set: run me under tests/redis/with-redis.sh"
if [ ! -x "$replay" ] || [ ! -x "$outcomes" ] || [ ! -x "$sink" ]; then
  fail "conf-replay, conf-outcomes or conf-sink not found (set SKENE_CONF_REPLAY, SKENE_CONF_OUTCOMES and SKENE_CONF_SINK)"
fi

tmp=$(mktemp -d)
sink_pid=
# Stops the sink we started, by its pid (SIGTERM: it exits 0), and waits for it.
stop_sink() {
  if [ -n "$sink_pid" ]; then
    kill -TERM "$sink_pid" 2>/dev/null
    wait "$sink_pid" 2>/dev/null
    sink_status=$?
    sink_pid=
  fi
}
trap 'stop_sink; rm -rf "$tmp"' EXIT
keep() {
  if [ -n "${SKENE_CONF_KEEP:-}" ]; then mkdir -p "$SKENE_CONF_KEEP" && cp -r "$tmp"/. "$SKENE_CONF_KEEP"/; fi
}

if [ -f "$dir/skene.config.ts" ]; then config=$dir/skene.config.ts; else config=$root/$(cat "$dir/config.path"); fi
"$skenec" build -o "$tmp/loop.skb" "$config" >"$tmp/skenec.err" 2>&1 || { cat "$tmp/skenec.err" >&2; fail "skenec build $config"; }

# The webhook URLs of a .skb, one a line, from skenec's dump ("url:" fields of its effects).
webhook_urls() {
  "$skenec" dump "$1" | sed -n -E 's/^ +url: +//p'
}
# Webhooks: the run's config is a copy whose webhook URLs' scheme and host are conf-sink's.
run_skb=$tmp/loop.skb
hosts=$(webhook_urls "$tmp/loop.skb" | sed -n -E 's|^([A-Za-z][A-Za-z0-9+.-]*://[^/?#]*).*|\1|p' | sort -u)
if [ -n "$hosts" ]; then
  "$sink" --port-file "$tmp/sink.port" --log "$tmp/sink.jsonl" 2>"$tmp/sink.err" &
  sink_pid=$!
  for _ in $(seq 500); do
    [ -s "$tmp/sink.port" ] || ! kill -0 "$sink_pid" 2>/dev/null && break
    sleep 0.01
  done
  [ -s "$tmp/sink.port" ] || { cat "$tmp/sink.err" >&2; fail "conf-sink did not start"; }
  local_url=http://127.0.0.1:$(cat "$tmp/sink.port")
  mkdir "$tmp/config"
  text=$(cat "$config")
  while IFS= read -r host; do
    text=${text//"$host"/"$local_url"}
  done <<<"$hosts"
  printf '%s\n' "$text" >"$tmp/config/skene.config.ts"
  if [ -d "$(dirname "$config")/templates" ]; then cp -r "$(dirname "$config")/templates" "$tmp/config/"; fi
  "$skenec" build -o "$tmp/run.skb" "$tmp/config/skene.config.ts" >"$tmp/skenec.err" 2>&1 ||
    { cat "$tmp/skenec.err" >&2; fail "skenec build of the copy of $config with its webhooks on $local_url"; }
  outside=$(webhook_urls "$tmp/run.skb" | grep -v -E "^${local_url//./\\.}([/?#]|\$)")
  [ -z "$outside" ] || fail "the copy of $config still calls $outside (its host is not written as such in the config)"
  run_skb=$tmp/run.skb
fi

# The same environment for both stores: the case's, and this suite's additions (env/NAME).
unset SKENE_EMAIL_FROM RESEND_API_KEY RESEND_API_URL REDIS_URL UPSTASH_REDIS_URL SKENE_REDIS_PREFIX \
  SKENE_WORKER SKENE_OUTBOX SKENE_REDIS_CA SKENE_REDIS_INSECURE SKENE_HTTP_CA \
  http_proxy HTTP_PROXY https_proxy HTTPS_PROXY all_proxy ALL_PROXY
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
"$replay" ${SKENE_CONF_ARGS:-} --vm "$vm" --outbox "$tmp/outbox" --timeline "$tmp/sim.jsonl" "$scenario" "$run_skb" \
  >"$tmp/redis.jsonl" 2>"$tmp/replay.err"
status=$?
sink_status=0
stop_sink
if [ "$status" != 0 ]; then
  cat "$tmp/redis.jsonl" "$tmp/replay.err" >&2
  keep
  fail "conf-replay: exit $status"
fi
if [ "$sink_status" != 0 ]; then
  cat "$tmp/sink.err" >&2
  keep
  fail "conf-sink: exit $sink_status"
fi
"$outcomes" sim "$tmp/sim.jsonl" >"$tmp/sim.outcomes" || fail "conf-outcomes sim"
sink_log=()
if [ -n "$hosts" ]; then sink_log=("$tmp/sink.jsonl"); fi
"$outcomes" redis "$tmp/redis.jsonl" "$tmp/outbox" "${sink_log[@]}" >"$tmp/redis.outcomes" || fail "conf-outcomes redis"
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
