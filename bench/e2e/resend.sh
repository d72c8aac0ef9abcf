#!/usr/bin/env bash
# resend.sh [BUILD_DIR] [--write] [--users N] [--runs R] [--wait-seconds S] [--concurrency C]
#           [--recheck-ms MS]
# The end-to-end benchmark of the activation loop with email through the local Resend server, on
# Skene and on BullMQ in the same run, against the same redis-server and the same resend-mock.
#   skene:        `skene-vm run` of examples/activation with RESEND_API_KEY and RESEND_API_URL.
#   bullmq_fetch: bench/e2e/bullmq/worker.js: a job per sign-up that checks the condition in
#                 Redis, re-checks it every MS ms (default 1000) while false, and POSTs the email
#                 with fetch; concurrency C (default 300).
#   bullmq_http:  the same worker posting with node:http and a keep-alive Agent.
# `npm ci` installs bullmq and ioredis, pinned and integrity-checked by
# bench/e2e/bullmq/package-lock.json, into BUILD_DIR/bench/bullmq (again only when the lock changes).
# R times (default 3) each side in turn (Redis flushed and the mock reset before each side):
#   1. sign-ups: N users (default 20,000) written as the app does; time until every one waits.
#   2. waiting: S seconds (default 10) with every user waiting: Redis commands and worker CPU.
#   3. activations: a first project for each user (the time of each write recorded): activations
#      per second (first write to the N-th email accepted by the mock), latency p50/p99 from a
#      user's write to the acceptance of their email, worker CPU per activation, Redis commands
#      per activated user (on the wire, and as INFO commandstats counts them), redis-server CPU.
#   Then: every email accepted exactly once (total and distinct `to`), the worker's peak RSS.
# Each figure is the median of its R values. About 4 minutes with the defaults on 2 cores.
# Prints a markdown section with the ratios Skene/BullMQ; --write replaces the
# "## End to end with Resend: Skene and BullMQ" section of bench/RESULTS.md.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
section_name="End to end with Resend: Skene and BullMQ"

if [[ ${1:-} != --inner ]]; then
  build="" args=()
  while (($#)); do
    case $1 in
      -h | --help) sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
      --write) args+=(--write) ;;
      --users | --runs | --wait-seconds | --concurrency | --recheck-ms)
        [[ ${2:-} =~ ^[0-9]+$ ]] || { echo "resend.sh: $1 needs a number" >&2; exit 2; }
        args+=("$1" "$2"); shift ;;
      -*) echo "resend.sh: unknown option $1" >&2; exit 2 ;;
      *) build=$1 ;;
    esac
    shift
  done
  build=$(cd "${build:-$root/build}" && pwd)
  for c in redis-cli redis-server node npm curl; do
    command -v "$c" >/dev/null || { echo "resend.sh: $c not found (scripts/deps installs it)" >&2; exit 2; }
  done
  # BullMQ, as pinned by the lock file, outside the source tree; again only when the lock changes.
  nm=$build/bench/bullmq
  lock_sum=$(sha256sum "$here/bullmq/package-lock.json" | cut -d' ' -f1)
  if [[ ! -d $nm/node_modules || $(cat "$nm/.lock-sha256" 2>/dev/null) != "$lock_sum" ]]; then
    rm -rf "$nm"
    mkdir -p "$nm"
    cp "$here/bullmq/package.json" "$here/bullmq/package-lock.json" "$here/bullmq/.npmrc" "$nm/"
    echo "resend.sh: npm ci (bullmq, ioredis) into $nm" >&2
    (cd "$nm" && npm ci --ignore-scripts --no-audit --no-fund >&2)
    echo "$lock_sum" >"$nm/.lock-sha256"
  fi
  export TMPDIR=/dev/shm
  exec bash "$root/tests/redis/with-redis.sh" -- bash "${BASH_SOURCE[0]}" --inner "$build" "${args[@]}"
fi

# ---- inside with-redis.sh: SKENE_TEST_REDIS_URL, _PORT and _PIDFILE are set ----
set -E
trap 'echo "resend.sh: line $LINENO: \"$BASH_COMMAND\" failed" >&2' ERR
shift
build=$1
shift
# shellcheck source=../lib.sh
. "$root/bench/lib.sh"
write=0 n=20000 runs=3 wait_s=10 conc=300 recheck=1000
while (($#)); do
  case $1 in
    --write) write=1 ;;
    --users) n=$2; shift ;;
    --runs) runs=$2; shift ;;
    --wait-seconds) wait_s=$2; shift ;;
    --concurrency) conc=$2; shift ;;
    --recheck-ms) recheck=$2; shift ;;
  esac
  shift
done
skenec=$build/compiler/skenec vm=$build/runtime/skene-vm mock=$build/tests/resend/resend-mock
for b in "$skenec" "$vm" "$mock"; do
  [[ -x $b ]] || { echo "resend.sh: $b not found (cmake --build $build --target skenec skene-vm resend-mock)" >&2; exit 2; }
done
export NODE_PATH=$build/bench/bullmq/node_modules
js=$here/bullmq
port=$SKENE_TEST_REDIS_PORT
rc() { redis-cli -p "$port" "$@"; }
work=$(mktemp -d /dev/shm/skene-e2e-resend.XXXXXX)
wpid= mpid=
cleanup() {
  [[ -n $wpid ]] && kill -9 "$wpid" 2>/dev/null
  [[ -n $mpid ]] && kill "$mpid" 2>/dev/null && wait "$mpid" 2>/dev/null
  [[ -n ${KEEP:-} ]] || rm -rf "$work"
}
trap cleanup EXIT

now_ms() { date +%s%3N; }
die() { echo "resend.sh: $*" >&2; exit 1; }
wait_for() { # wait_for WHAT SECONDS COMMAND...: polls COMMAND (true when done) every 50 ms
  local what=$1 secs=$2
  shift 2
  local end=$(($(now_ms) + secs * 1000))
  until "$@"; do
    (($(now_ms) < end)) || die "gave up waiting for $what"
    sleep 0.05
  done
}

# The local Resend: no rate limit either side comes near (neither is capped by it), its headers on.
mock_rps=100000
"$mock" --port 0 --port-file "$work/mock.port" --rps "$mock_rps" 2>"$work/mock.err" &
mpid=$!
wait_for "resend-mock" 10 test -s "$work/mock.port"
mock_url=http://127.0.0.1:$(cat "$work/mock.port")
mock_stat() { curl -sf "$mock_url/_mock/stats" | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }

"$skenec" build "$root/examples/activation/skene.config.ts" -o "$work/activation.skb"
# The commit the binaries were built from: the build's source tree, "+changes" when its compiler,
# vm or runtime differ from that commit.
src=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$build/CMakeCache.txt")
rev=$(git -C "${src:-/nonexistent}" rev-parse --short HEAD 2>/dev/null || echo "an unknown commit")
if git -C "${src:-/nonexistent}" status --porcelain -- compiler vm runtime 2>/dev/null | grep -q .; then
  rev+="+changes"
fi
from_addr='Acme <hello@acme.example>'
skene_rps=10000 # the most SKENE_RESEND_RPS accepts: the sender's own pacing is not the bottleneck
redis_pid=$(cat "$SKENE_TEST_REDIS_PIDFILE")

redis_calls() { # every command Redis ran since CONFIG RESETSTAT, script-internal ones included
  rc INFO commandstats | awk -F'[=,:]' '/^cmdstat_/ && $1 != "cmdstat_info" && $1 != "cmdstat_config|resetstat" && $1 != "cmdstat_flushall" { s += $3 } END { print s + 0 }'
}
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; } # utime + stime, in 1/100 s

start_worker() { # start_worker SIDE
  log=$work/$1.log
  : >"$log" # emptied here, not by the child's redirection: no stale worker.start line to find
  if [[ $1 == skene ]]; then
    REDIS_URL=$SKENE_TEST_REDIS_URL RESEND_API_KEY=re_bench_skene RESEND_API_URL=$mock_url \
      SKENE_RESEND_RPS=$skene_rps SKENE_EMAIL_FROM=$from_addr \
      "$vm" run --worker bench "$work/activation.skb" >"$log" 2>"$work/$1.err" &
  else
    REDIS_URL=$SKENE_TEST_REDIS_URL RESEND_API_KEY=re_bench_$1 RESEND_API_URL=$mock_url \
      EMAIL_FROM=$from_addr TEMPLATES=$root/examples/activation/templates CONCURRENCY=$conc \
      RECHECK_MS=$recheck HTTP_CLIENT=${1#bullmq_} node "$js/worker.js" >"$log" 2>"$work/$1.err" &
  fi
  wpid=$!
  for _ in $(seq 200); do grep -q '"worker.start"' "$log" 2>/dev/null && return 0; sleep 0.05; done
  cat "$work/$1.err" >&2
  die "the $1 worker did not start"
}
stop_worker() {
  kill -TERM "$wpid"
  wait "$wpid" || die "the worker exited with $?"
  wpid=
}

# run_side SIDE: the three phases on skene, bullmq_fetch or bullmq_http; leaves the figures in
# R_<side>_<figure>.
run_side() {
  local side=$1 key=re_bench_$1 t0 t1 c0 c1 w0 w1 r0 r1 k0 k1 app
  rc FLUSHALL >/dev/null
  curl -sf -X POST "$mock_url/_mock/reset" >/dev/null
  start_worker "$side"

  # 1. sign-ups
  rc CONFIG RESETSTAT >/dev/null
  c0=$(ticks "$wpid") w0=$(worker_stat wire_commands)
  t0=$(now_ms)
  app=$(node "$js/write.js" users "${side%%_*}" 1 "$n" --redis "$SKENE_TEST_REDIS_URL" | awk '/^wire/ { print $2 }')
  parked_all() { (($(worker_stat parked) >= n)); }
  wait_for "$n sign-ups to wait ($side)" 600 parked_all
  t1=$(now_ms)
  c1=$(ticks "$wpid") w1=$(worker_stat wire_commands)
  eval "R_${side}_signup_rate=$((n * 1000 / (t1 - t0 > 0 ? t1 - t0 : 1)))"
  eval "R_${side}_signup_cpu_us=$(((c1 - c0) * 10000 / n))"
  eval "R_${side}_signup_wire=$((w1 - w0)) R_${side}_signup_app=$app R_${side}_signup_calls=$(redis_calls)"
  echo "resend.sh: $side: $n sign-ups waiting after $((t1 - t0)) ms" >&2

  # 2. waiting
  rc CONFIG RESETSTAT >/dev/null
  c0=$(ticks "$wpid") w0=$(worker_stat wire_commands) r0=$(ticks "$redis_pid") k0=0 k1=0
  [[ $side == bullmq* ]] && k0=$(worker_stat checks)
  sleep "$wait_s"
  c1=$(ticks "$wpid") w1=$(worker_stat wire_commands) r1=$(ticks "$redis_pid")
  [[ $side == bullmq* ]] && k1=$(worker_stat checks)
  eval "R_${side}_wait_checks_s=$(((k1 - k0) / wait_s))" # BullMQ's re-checks a second (Skene polls none)
  eval "R_${side}_wait_wire_h=$(((w1 - w0) * 3600 / wait_s)) R_${side}_wait_calls_h=$(($(redis_calls) * 3600 / wait_s))"
  eval "R_${side}_wait_wire_um=$(awk -v c=$((w1 - w0)) -v s="$wait_s" -v n="$n" 'BEGIN { printf "%.2f", c * 60 / s / n }')"
  eval "R_${side}_wait_cpu_pct=$(awk -v t=$((c1 - c0)) -v s="$wait_s" 'BEGIN { printf "%.1f", t / s }')"
  eval "R_${side}_wait_redis_cpu_pct=$(awk -v t=$((r1 - r0)) -v s="$wait_s" 'BEGIN { printf "%.1f", t / s }')"

  # 3. activations
  rc CONFIG RESETSTAT >/dev/null
  c0=$(ticks "$wpid") w0=$(worker_stat wire_commands) r0=$(ticks "$redis_pid")
  app=$(node "$js/write.js" actions "${side%%_*}" 1 "$n" --redis "$SKENE_TEST_REDIS_URL" --stamps "$work/$side.stamps" |
    awk '/^wire/ { print $2 }')
  all_accepted() { (($(mock_stat accepted_emails) >= n)); }
  wait_for "$n emails ($side)" 600 all_accepted
  ended_all() { (($(worker_stat ended) >= n)); }
  wait_for "$n instances to end ($side)" 60 ended_all
  c1=$(ticks "$wpid") w1=$(worker_stat wire_commands) r1=$(ticks "$redis_pid")
  eval "R_${side}_act_calls=$(redis_calls) R_${side}_act_wire=$((w1 - w0)) R_${side}_act_app=$app"
  eval "R_${side}_act_cpu_us=$(((c1 - c0) * 10000 / n)) R_${side}_act_redis_cpu_us=$(((r1 - r0) * 10000 / n))"
  eval "R_${side}_hwm_kb=$(hwm_kb "$wpid")"
  sleep 1 # anything sent twice would show now
  curl -sf "$mock_url/_mock/emails" >"$work/$side.emails.json"
  curl -sf "$mock_url/_mock/stats" >"$work/$side.stats.json"
  eval "R_${side}_requests=$(mock_stat requests) R_${side}_batches=$(mock_stat batches)"
  eval "R_${side}_replays=$(mock_stat idempotent_replays) R_${side}_limited=$(mock_stat rate_limited)"
  local k v
  while read -r k v; do eval "R_${side}_$k=$v"; done < <(node "$js/latency.js" "$work/$side.stamps" "$work/$side.emails.json" "$key")
  stop_worker
  echo "resend.sh: $side: $n activations in $(eval echo "\$R_${side}_span_ms") ms" >&2
}

# Each figure's values over the runs, then their median (the lower middle one for an even count).
sides="skene bullmq_fetch bullmq_http"
figures="signup_rate signup_cpu_us signup_wire signup_app signup_calls wait_wire_h wait_calls_h
  wait_wire_um wait_cpu_pct wait_redis_cpu_pct wait_checks_s act_calls act_wire act_app act_cpu_us
  act_redis_cpu_us hwm_kb requests batches replays limited emails distinct duplicates unknown
  missing span_ms p50_ms p99_ms max_ms"
exact_ok=yes
for ((run = 1; run <= runs; run++)); do
  for s in $sides; do
    echo "resend.sh: run $run of $runs: $s" >&2
    run_side "$s"
    for k in $figures; do eval "L_${s}_$k=\${L_${s}_$k:+\$L_${s}_$k }\$R_${s}_$k"; done
    (($(eval echo "\$R_${s}_emails") == n && $(eval echo "\$R_${s}_distinct") == n)) || exact_ok=NO
  done
done
median() { tr ' ' '\n' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
for s in $sides; do
  for k in $figures; do eval "R_${s}_$k=$(eval echo "\$L_${s}_$k" | median)"; done
done

# ---- the figures ----
get() { eval echo "\${R_$1_$2}"; }
runs_of() { eval echo "\$L_$1_$2" | tr ' ' '/'; } # runs_of SIDE FIGURE: each run's value, a/b/c
calc() { awk "BEGIN { printf \"$1\", ($2) }"; }   # calc FORMAT EXPRESSION
# The Skene sender's own Redis connection (the shared rate limit: one EVALSHA per HTTP request at
# most; the record of a batch: one EVAL per batch) is not in worker.stats: count it from the mock.
sender_wire=$((R_skene_requests + R_skene_batches))
for s in $sides; do
  extra=0
  [[ $s == skene ]] && extra=$sender_wire
  eval "R_${s}_act_rate=$(calc %.0f "$n * 1000 / $(get "$s" span_ms)")"
  eval "R_${s}_wire_worker=$(calc %.2f "($(get "$s" signup_wire) + $(get "$s" act_wire) + $extra) / $n")"
  eval "R_${s}_wire_all=$(calc %.2f "($(get "$s" signup_wire) + $(get "$s" act_wire) + $extra + $(get "$s" signup_app) + $(get "$s" act_app)) / $n")"
  eval "R_${s}_calls_all=$(calc %.2f "($(get "$s" signup_calls) + $(get "$s" act_calls)) / $n")"
  eval "R_${s}_calls_act=$(calc %.2f "$(get "$s" act_calls) / $n")"
  eval "R_${s}_hwm_mib=$(calc %.1f "$(get "$s" hwm_kb) / 1024")"
  eval "R_${s}_recheck_s=$(calc %.1f "$(get "$s" wait_checks_s) > 0 ? $n / $(get "$s" wait_checks_s) : 0")"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f", a / b }'; }
row() { # row LABEL FIGURE [UNIT] [**]: the three values and Skene's ratio to each BullMQ
  local label=$1 k=$2 unit=${3:+ $3} b=${4:-} sk bf bh
  sk=$(get skene "$k") bf=$(get bullmq_fetch "$k") bh=$(get bullmq_http "$k")
  echo "| $label | $b$sk$unit$b | $b$bf$unit$b | $b$bh$unit$b | $(ratio "$sk" "$bf") | $(ratio "$sk" "$bh") |"
}
node_v=$(node --version)
bullmq_v=$(node -p "require('bullmq/package.json').version")
ioredis_v=$(node -p "require('ioredis/package.json').version")
redis_v=$(redis-server --version | awk '{print $3}' | cut -d= -f2)
wflag=
((write)) && wflag=" --write"

section="## $section_name

\`bench/e2e/resend.sh$wflag --users $n --runs $runs --wait-seconds $wait_s --concurrency $conc --recheck-ms $recheck\`
(Skene at $rev): the activation loop of examples/activation, $n sign-ups and then a first project
for each, on one 2-core machine with one local redis-server $redis_v (no persistence, data in
/dev/shm) and one \`resend-mock --rps $mock_rps\`, a limit far above what any side sends, so none is
capped by it. Three sides in turn, $runs times: Skene, then BullMQ $bullmq_v (ioredis $ioredis_v,
Node.js $node_v) posting with \`fetch\`, then the same BullMQ worker posting with \`node:http\`; Redis
is flushed and the mock reset before each. Each figure is the median of the $runs runs.

- Skene: \`skene-vm run --worker bench activation.skb\` with \`RESEND_API_KEY\` (a \`re_\` key),
  \`RESEND_API_URL\` the mock, \`SKENE_RESEND_RPS=$skene_rps\` (the most it accepts: its own pacing is
  not the bottleneck) and \`SKENE_EMAIL_FROM\`. The app writes \`MULTI; HSET; XADD skene:<table>; EXEC\`.
  Emails that wait at the same moment go in one \`POST /emails/batch\` (up to 100).
- BullMQ: \`node bench/e2e/bullmq/worker.js\`, one Node.js process as Skene is one process,
  concurrency $conc (of 30, 100, 300 and 1000 tried, 300 and 1000 were the fastest). The app
  writes \`HSET users:uN\` then \`Queue.add\` (job id per user, \`attempts: 3\`, exponential
  backoff from 1 s, \`removeOnComplete\`), and a first project as \`MULTI; HSET user_actions:aN;
  SADD user_actions_by_user:uN:first_project_created aN; EXEC\`. A job checks \`EXISTS\` on that
  index set (the same O(1) indexed lookup as Skene's condition) and, while false, moves itself
  back to the delayed set for $recheck ms; when true it reads the user row (HGETALL) and POSTs the
  same rendered email with keep-alive and an \`Idempotency-Key\`, one request per email: with
  \`fetch\` (Node's undici, what Resend's SDK uses), or with \`node:http\` and a keep-alive Agent.
- Activations per second: $n over the time from the first action write to the $n-th email
  the mock accepted. Latency: per user, from the moment its action write was handed to the socket to
  the mock's \`created_at\` of its email (same clock). CPU: utime+stime of the worker process
  (\`/proc/PID/stat\`) over the phase. Peak RSS: the worker's VmHWM at the end.
- Redis commands on the wire: what Upstash bills, a script call counting one. Skene: the worker's
  own count (SIGUSR1 \`worker.stats\`) plus its sender's connection, which that count does not
  include yet (at most one rate-limit EVALSHA per HTTP request and one EVAL per batch: taken from
  the mock's counts, $sender_wire here); BullMQ: every command its ioredis connections wrote. The
  app's writes: the writer's own count. INFO commandstats counts every command Redis ran, those
  inside scripts too, for all clients (the app's too).

| figure | Skene | BullMQ, fetch | BullMQ, node:http | Skene/BullMQ fetch | Skene/BullMQ node:http |
|---|---|---|---|---|---|
$(row "activations per second" act_rate "" "**")
$(row "latency p50, action write to accepted POST" p50_ms ms)
$(row "latency p99" p99_ms ms)
$(row "worker CPU per activation (activation phase)" act_cpu_us µs "**")
$(row "worker CPU per sign-up (sign-up phase)" signup_cpu_us µs)
$(row "worker peak RSS (VmHWM)" hwm_mib MiB "**")
$(row "Redis commands per activated user, wire, worker (sign-up to email, time spent waiting aside)" wire_worker "" "**")
$(row "the same with the app's writes" wire_all)
$(row "INFO commandstats per activated user, sign-up to email" calls_all)
$(row "INFO commandstats per activated user, activation phase" calls_act)
$(row "redis-server CPU per activation" act_redis_cpu_us µs)
$(row "Redis commands per waiting user per minute of waiting, wire (worker)" wait_wire_um "" "**")
$(row "Redis commands per hour while $n users wait, wire (worker)" wait_wire_h)
$(row "the same by INFO commandstats" wait_calls_h)
$(row "worker CPU while $n users wait (share of one core)" wait_cpu_pct %)
$(row "sign-ups per second until every user waits" signup_rate)
$(row "HTTP requests to the mock" requests)
$(row "of which batches" batches)

Ratios are Skene's figure divided by BullMQ's: above 1 is better for a rate, below 1 for a cost.
Waiting: measured over $wait_s s with all $n users waiting, extrapolated. Meanwhile BullMQ
re-checked $(get bullmq_fetch wait_checks_s) (fetch) and $(get bullmq_http wait_checks_s) (node:http) users a second: each waiting
user about every $(get bullmq_fetch recheck_s) and $(get bullmq_http recheck_s) s where it asked for $(calc %.1f "$recheck / 1000") s; a first project waits for
the next re-check. Skene's waiting users cost nothing until their table's feed wakes them.

Every email arrived exactly once, in each of the $runs runs: **$exact_ok**. Accepted, distinct
\`to\`, duplicates (one value per run; the mock counts an email sent again under a known
\`Idempotency-Key\` as a replay, not as an email):
$(for s in $sides; do
  echo "- $s: $(runs_of "$s" emails); $(runs_of "$s" distinct); $(runs_of "$s" duplicates); idempotent replays $(runs_of "$s" replays); rate-limited requests $(runs_of "$s" limited)"
done)"
echo "$section"
if ((write)); then bench_write_section "$root" "$build" "$section_name" "$section"; fi
[[ $exact_ok == yes ]] || die "an email was lost or sent twice"
