#!/usr/bin/env bash
# run.sh [BUILD_DIR] [--write] [--users N] [--waiting N] [--idle-seconds S]: the end-to-end benchmark
# of `skene-vm run` on a local redis-server (started here on a free loopback port, no persistence,
# its files in /dev/shm), the outbox provider writing to a tmpfs folder, examples/activation.
#   1. sign-ups: N users (default 50,000) written the way the Next.js app does (MULTI; HSET; XADD;
#      EXEC, through redis-cli --pipe) while one worker runs: time until every instance waits.
#   2. activations: a first project for each of them: activations per second, from the first write to
#      the last .eml file; Redis commands per activated user, on the wire (the worker's own count of
#      what it wrote, which is what Upstash bills: a script is one command) and as INFO commandstats
#      counts them (every command a script runs counts again).
#   3. idle: nothing happens for S seconds (default 600): commands per idle hour per worker,
#      extrapolated from the window (the worker's own count and INFO commandstats).
#   3b. the same counts for 100 users written one at a time (50 ms apart), where every batch is one.
#   4. memory: sign-ups that never activate (5-minute timeout, real time) pile up to W waiting
#      instances (default 100,000): the worker's resident memory at W/100, W/10 and W waiting.
#   5. a cross-check of the billed count from Redis's side: MONITOR on 2,000 more activations, the
#      commands the worker sent counted apart from those its scripts ran and from the app's writes.
# Prints a markdown section; --write replaces the "## End to end (Redis)" section of bench/RESULTS.md.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

if [[ ${1:-} != --inner ]]; then
  build="" args=()
  while (($#)); do
    case $1 in
      -h | --help) sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
      --write) args+=(--write) ;;
      --users | --waiting | --idle-seconds) args+=("$1" "${2:?$1 needs a number}"); shift ;;
      -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
      *) build=$1 ;;
    esac
    shift
  done
  build=$(cd "${build:-$root/build}" && pwd)
  command -v redis-cli >/dev/null || { echo "run.sh: redis-cli not found (scripts/deps installs it)" >&2; exit 2; }
  export TMPDIR=/dev/shm
  exec bash "$root/tests/redis/with-redis.sh" -- bash "${BASH_SOURCE[0]}" --inner "$build" "${args[@]}"
fi

# ---- inside with-redis.sh: SKENE_TEST_REDIS_URL and _PORT are set ----
shift
build=$1
shift
# shellcheck source=../lib.sh
. "$root/bench/lib.sh"
write=0 n=50000 waiting=100000 idle=600
while (($#)); do
  case $1 in
    --write) write=1 ;;
    --users) n=$2; shift ;;
    --waiting) waiting=$2; shift ;;
    --idle-seconds) idle=$2; shift ;;
  esac
  shift
done
skenec=$build/compiler/skenec vm=$build/runtime/skene-vm
for b in "$skenec" "$vm"; do
  [[ -x $b ]] || { echo "run.sh: $b not found (cmake --build $build)" >&2; exit 2; }
done
port=$SKENE_TEST_REDIS_PORT
rc() { redis-cli -p "$port" "$@"; }
work=$(mktemp -d /dev/shm/skene-e2e.XXXXXX)
wpid=
cleanup() {
  [[ -n $wpid ]] && kill -9 "$wpid" 2>/dev/null
  [[ -n ${KEEP:-} ]] || rm -rf "$work"
}
trap cleanup EXIT

"$skenec" build "$root/examples/activation/skene.config.ts" -o "$work/activation.skb"

# RESP for redis-cli --pipe: the users u$from..u$to (MULTI; HSET; XADD; EXEC), or their first projects.
gen() { # gen users|actions FROM TO
  awk -v kind="$1" -v from="$2" -v to="$3" 'BEGIN {
    for (i = from; i <= to; i++) {
      id = "u" i
      if (kind == "users") {
        cmd1("MULTI")
        cmd("HSET", "users:" id, "name", "User " i, "email", id "@example.com", "activation_link", "https://app.example/a/" id)
        cmd("XADD", "skene:users", "*", "id", id)
      } else {
        cmd1("MULTI")
        cmd("HSET", "user_actions:a" i, "user_id", id, "action_type", "first_project_created")
        cmd("XADD", "skene:user_actions", "*", "id", "a" i)
      }
      cmd1("EXEC")
    }
  }
  function cmd1(a) { printf "*1\r\n$%d\r\n%s\r\n", length(a), a }
  function cmd(a, b, c, d, e, f, g, h, k,   n, args, j) {
    n = split(a "\x1f" b "\x1f" c "\x1f" d "\x1f" e "\x1f" f "\x1f" g "\x1f" h "\x1f" k, args, "\x1f")
    while (n > 0 && args[n] == "") n--
    printf "*%d\r\n", n
    for (j = 1; j <= n; j++) printf "$%d\r\n%s\r\n", length(args[j]), args[j]
  }'
}

now_ms() { date +%s%3N; }
log=$work/worker.log
start_worker() { # start_worker OUTBOX SCALE
  : >"$log" # a fresh log: its worker.start is this worker's (SIGUSR1 is sent only after it)
  REDIS_URL=$SKENE_TEST_REDIS_URL SKENE_EMAIL_FROM='Acme <hello@acme.example>' SKENE_OUTBOX=$1 \
    "$vm" run --worker bench --time-scale "$2" "$work/activation.skb" >>"$log" 2>"$work/worker.err" &
  wpid=$!
  for _ in $(seq 100); do grep -q worker.start "$log" 2>/dev/null && return 0; sleep 0.05; done
  echo "run.sh: the worker did not start:" >&2
  cat "$work/worker.err" >&2
  exit 1
}
stop_worker() {
  kill -TERM "$wpid"
  wait "$wpid" || { echo "run.sh: the worker exited with $?" >&2; exit 1; }
  wpid=
}
wait_for() { # wait_for WHAT SECONDS COMMAND...: polls COMMAND (true when done) every 20 ms
  local what=$1 secs=$2
  shift 2
  local end=$(($(now_ms) + secs * 1000))
  until "$@"; do
    (($(now_ms) < end)) || { echo "run.sh: gave up waiting for $what" >&2; exit 1; }
    sleep 0.02
  done
}
redis_calls() { # every command Redis ran since CONFIG RESETSTAT, script-internal ones included
  rc INFO commandstats | awk -F'[=,:]' '/^cmdstat_/ && $1 != "cmdstat_info" && $1 != "cmdstat_config" { s += $3 } END { print s + 0 }'
}
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }

# ---- 1 and 2: sign-ups, then activations ----
outbox=$work/outbox
gen users 1 "$n" >"$work/users.resp"
gen actions 1 "$n" >"$work/actions.resp"
start_worker "$outbox" 1
rc CONFIG RESETSTAT >/dev/null
wire_s0=$(worker_stat wire_commands)
t0=$(now_ms)
redis-cli -p "$port" --pipe <"$work/users.resp" >/dev/null
parked_all() { (($(worker_stat parked) >= n)); }
wait_for "$n sign-ups to wait" 600 parked_all
t1=$(now_ms)
signup_rate=$((n * 1000 / (t1 - t0 > 0 ? t1 - t0 : 1)))
echo "run.sh: $n sign-ups waiting after $((t1 - t0)) ms" >&2

wire0=$(worker_stat wire_commands)
t0=$(now_ms)
redis-cli -p "$port" --pipe <"$work/actions.resp" >/dev/null
all_sent() { local c; c=$(find "$outbox" -maxdepth 1 -name '*.eml' | wc -l); ((c >= n)); }
wait_for "$n emails" 600 all_sent
t1=$(now_ms)
ended_all() { (($(worker_stat ended) >= n)); }
wait_for "$n instances to end" 60 ended_all
wire1=$(worker_stat wire_commands)
calls=$(redis_calls)
rc INFO commandstats >"$work/cmdstats.txt"
act_ms=$((t1 - t0))
act_rate=$((n * 1000 / (act_ms > 0 ? act_ms : 1)))
wire_per=$(awk -v a="$wire_s0" -v b="$wire1" -v n="$n" 'BEGIN { printf "%.2f", (b - a) / n }')
wire_signup=$(awk -v a="$wire_s0" -v b="$wire0" -v n="$n" 'BEGIN { printf "%.2f", (b - a) / n }')
wire_act=$(awk -v a="$wire0" -v b="$wire1" -v n="$n" 'BEGIN { printf "%.2f", (b - a) / n }')
calls_per=$(awk -v c="$calls" -v n="$n" 'BEGIN { printf "%.2f", c / n }')
# The app's writes, from the same INFO commandstats: each is MULTI, HSET, XADD, EXEC (the worker
# sends no MULTI, and its scripts no EXEC), so they are 4 x cmdstat_exec; the rest is the worker's.
app_calls=$(awk -F'[=,:]' '/^cmdstat_exec:/ { print 4 * $3 }' "$work/cmdstats.txt")
worker_calls_per=$(awk -v c="$calls" -v a="${app_calls:-0}" -v n="$n" 'BEGIN { printf "%.2f", (c - a) / n }')
app_calls_per=$(awk -v a="${app_calls:-0}" -v n="$n" 'BEGIN { printf "%.2f", a / n }')
# per command, per activated user, the app's writes taken out (HSET and XADD once per EXEC each)
cmd_breakdown=$(awk -F'[=,:]' -v n="$n" '/^cmdstat_/ { c[substr($1, 9)] = $3 }
  END { x = c["exec"]; c["multi"] -= x; c["exec"] -= x; c["hset"] -= x; c["xadd"] -= x
        delete c["info"]; delete c["config"]
        for (k in c) if (c[k] / n >= 0.0005) printf "%s %.3f\n", k, c[k] / n }' "$work/cmdstats.txt" |
  sort -k2,2nr | awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $2 }')
emails=$(find "$outbox" -maxdepth 1 -name '*.eml' | wc -l)
echo "run.sh: $n activations in $act_ms ms; $wire_per wire commands each; idle window of ${idle} s next" >&2
cpu_ticks=$(awk '{ print $14 + $15 }' "/proc/$wpid/stat")

# ---- 3: idle ----
rc CONFIG RESETSTAT >/dev/null
wire0=$(worker_stat wire_commands)
sleep "$idle"
wire1=$(worker_stat wire_commands)
idle_calls=$(redis_calls)
idle_wire_h=$(awk -v a="$wire0" -v b="$wire1" -v s="$idle" 'BEGIN { printf "%.0f", (b - a) * 3600 / s }')
idle_calls_h=$(awk -v c="$idle_calls" -v s="$idle" 'BEGIN { printf "%.0f", c * 3600 / s }')

# ---- 3b: one user at a time: batches of one, the worst case for the batching ----
trickle=100
rc CONFIG RESETSTAT >/dev/null
wire0=$(worker_stat wire_commands)
ended0=$(worker_stat ended)
for ((i = n + waiting + 1; i <= n + waiting + trickle; i++)); do # ids phase 4 does not use
  gen users "$i" "$i" | redis-cli -p "$port" --pipe >/dev/null
  sleep 0.05
  gen actions "$i" "$i" | redis-cli -p "$port" --pipe >/dev/null
  sleep 0.05
done
ended_trickle() { (($(worker_stat ended) - ended0 >= trickle)); }
wait_for "$trickle users one at a time" 60 ended_trickle
wire1=$(worker_stat wire_commands)
rc INFO commandstats >"$work/cmdstats_trickle.txt"
trickle_wire=$(awk -v a="$wire0" -v b="$wire1" -v n="$trickle" 'BEGIN { printf "%.2f", (b - a) / n }')
trickle_calls=$(awk -F'[=,:]' -v n="$trickle" '/^cmdstat_/ && $1 != "cmdstat_info" && $1 != "cmdstat_config" { s += $3 }
  /^cmdstat_exec:/ { x = $3 } END { printf "%.2f", (s - 4 * x) / n }' "$work/cmdstats_trickle.txt")
stop_worker

# ---- 4: memory with waiting instances ----
gen users $((n + 1)) $((n + waiting)) >"$work/waiting.resp"
start_worker "$work/outbox2" 1
base_parked=$(worker_stat parked)
rss_at=()
marks=($((waiting / 100)) $((waiting / 10)) "$waiting")
sent=0
for mark in "${marks[@]}"; do
  awk -v from=$((sent + 1)) -v to="$mark" -v base="$n" 'BEGIN { RS = "\r\n"; ORS = "\r\n" }
    /^\*1$/ { m++ } { u = int((m + 1) / 2); if (u >= from && u <= to) print }' "$work/waiting.resp" |
    redis-cli -p "$port" --pipe >/dev/null
  sent=$mark
  parked_to() { (($(worker_stat parked) - base_parked >= mark)); }
  wait_for "$mark waiting instances" 600 parked_to
  rss_at+=("$(rss_kb "$wpid")")
done
peak=$(hwm_kb "$wpid")
redis_mem=$(rc INFO memory | awk -F: '/^used_memory:/ { printf "%.0f", $2 / 1048576 }')
stop_worker

# ---- 5: the billed count, seen from Redis: MONITOR marks what a script runs ("lua"), so the
# commands the worker sent itself can be counted apart from them and from the app's writes ----
rc FLUSHALL >/dev/null
mon_n=2000
gen users 1 "$mon_n" >"$work/mon_users.resp"
gen actions 1 "$mon_n" >"$work/mon_actions.resp"
start_worker "$work/outbox3" 1
redis-cli -p "$port" MONITOR >"$work/monitor.txt" &
mpid=$!
sleep 0.3
redis-cli -p "$port" --pipe <"$work/mon_users.resp" >/dev/null
mon_parked() { (($(worker_stat parked) >= mon_n)); }
wait_for "$mon_n sign-ups to wait (monitored)" 120 mon_parked
redis-cli -p "$port" --pipe <"$work/mon_actions.resp" >/dev/null
mon_ended() { (($(worker_stat ended) >= mon_n)); }
wait_for "$mon_n instances to end (monitored)" 120 mon_ended
sleep 0.3
kill "$mpid" 2>/dev/null || true
wait "$mpid" 2>/dev/null || true
stop_worker
# lines: TIME [DB CLIENT] "CMD" ...; the app's writes are MULTI, HSET, XADD, EXEC outside scripts
mon_worker=$(awk '/^[0-9]/ && $3 != "lua]" {
    cmd = toupper($4); gsub(/"/, "", cmd)
    if (cmd !~ /^(MULTI|EXEC|XADD|HSET|MONITOR|PING|INFO|CONFIG)$/) n++
  } END { print n + 0 }' "$work/monitor.txt")
mon_per=$(awk -v c="$mon_worker" -v n="$mon_n" 'BEGIN { printf "%.2f", c / n }')

mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
section="## End to end (Redis)

\`bench/e2e/run.sh$( ((write)) && echo " --write") --users $n --waiting $waiting --idle-seconds $idle\`: \`skene-vm run\`
(one worker, examples/activation, outbox on tmpfs) against a local redis-server $(redis-server --version | awk '{print $3}' | cut -d= -f2)
on the same 2-core machine (no persistence; data in /dev/shm). Users and first projects are written
the way the Next.js app does (MULTI; HSET; XADD; EXEC) through \`redis-cli --pipe\`.

| figure | value | target |
|---|---|---|
| sign-ups until every instance waits | $signup_rate per second ($n users) | |
| activations per second (first write to last .eml) | **$act_rate** ($n in $act_ms ms, $emails emails) | ≥ 20,000 |
| Redis commands per activated user, on the wire (billed): sign-up + activation | **$wire_per** ($wire_signup + $wire_act) | ≤ 8 |
| the same counted by INFO commandstats (script-internal commands too), the worker's | **$worker_calls_per** | ≤ 8 |
| INFO commandstats, everything: the worker's and the app's writes ($app_calls_per: MULTI, HSET, XADD, EXEC per write) | $calls_per | |
| the worker's commands seen by MONITOR on $mon_n more users (script-internal ones and the app's writes apart) | $mon_per | ≤ 8 |
| worker CPU for sign-ups and activations | $((cpu_ticks * 10)) ms ($(awk -v t="$cpu_ticks" -v n="$n" 'BEGIN { printf "%.1f", t * 10000 / n }') µs per user) | |
| the same, $trickle users one at a time (each operation a batch of one): on the wire / by INFO commandstats, the worker's | $trickle_wire / $trickle_calls | |
| commands per idle hour per worker, on the wire | **$idle_wire_h** (measured over ${idle} s) | ≤ 200 |
| the same by INFO commandstats | **$idle_calls_h** | ≤ 200 |
| worker RSS with ${marks[0]} / ${marks[1]} / ${marks[2]} instances waiting | $(mb "${rss_at[0]}") / $(mb "${rss_at[1]}") / $(mb "${rss_at[2]}") MiB (peak $(mb "$peak") MiB) | flat |
| Redis used_memory with $waiting waiting (and the $n done) | $redis_mem MiB | |

The worker's commands per activated user by INFO commandstats, script-internal ones included and
the app's writes taken out: $cmd_breakdown.

Per activated user the worker reads two rows (the action row for its index, the user row for the
email: HGETALL), adds the action to its index (ZADD), takes the lease (SET NX PX) and counts the
index (ZRANGE) as it claims the instance. Everything else (starting the instance, recording it
at its AWAIT, waking it, ending it, the feeds' reads and acknowledgements) goes in batches: the
store sends the entries of one operation queued together as one script whose commands take many
keys at once (runtime/store.c, "batches"), and a feed reads up to 100 entries at a time."
echo "$section"
if ((write)); then bench_write_section "$root" "$build" "End to end (Redis)" "$section"; fi
