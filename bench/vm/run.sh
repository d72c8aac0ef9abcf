#!/usr/bin/env bash
# run.sh [BUILD_DIR] [--write] [--signups N]: the VM benchmark. Compiles examples/activation and runs
# `skene-vm simulate --quiet` on a generated scenario: N sign-ups (default 1,000,000) one per ms, half
# of them (the even ones) creating their first project 3 minutes later, within the 5-minute timeout;
# the others time out. 9 runs; the best, median and worst are recorded, since this machine's speed
# drifts by up to 25% from run to run (other guests on the host; no steal time is visible):
# instances per second (started instances / wall time of the
# simulation, from the first event to the last, load and teardown excluded), the scheduler's bytes per
# waiting instance at the peak of waiting instances (instances in slabs, timer heap, waiter buckets,
# the seen set, id tables: the rows belong to the simulated database), and the process's peak RSS
# (which includes the simulated database: every row of the scenario is kept in memory).
# Prints a markdown section; --write replaces the "## VM" section of bench/RESULTS.md.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=../lib.sh
. "$root/bench/lib.sh"

build="" write=0 n=1000000
while (( $# )); do
  case $1 in
    --write) write=1 ;;
    --signups) shift; n=${1:?--signups needs a number} ;;
    -h|--help) sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    *) build=$1 ;;
  esac
  shift
done
build=$(cd "${build:-$root/build}" && pwd)
skenec=$build/compiler/skenec vm=$build/runtime/skene-vm
for b in "$skenec" "$vm"; do
  [[ -x $b ]] || { echo "run.sh: $b not found (cmake --build $build)" >&2; exit 2; }
done
command -v /usr/bin/time >/dev/null || { echo "run.sh: needs GNU time (apt-get install time)" >&2; exit 2; }

work=$build/bench/vm-inputs
mkdir -p "$work"
"$skenec" build "$root/examples/activation/skene.config.ts" -o "$work/activation.skb"
half=$(( n / 2 ))
cat >"$work/scenario.json" <<JSON
{ "until": "30m", "seed": 1,
  "generate": [
    {"count": $n, "start": "0s", "every": "1ms", "table": "users", "op": "insert", "id": "u{n}",
     "row": {"name": "User {n}", "email": "u{n}@example.com", "activation_link": "https://app.example/a/u{n}"}},
    {"count": $half, "start": "3m", "every": "2ms", "table": "user_actions", "op": "insert", "id": "a{n}",
     "row": {"user_id": "u{n*2}", "action_type": "first_project_created"}} ] }
JSON

best_rate=0 best_line="" rss_max=0 summary="" rates=()
for i in 1 2 3 4 5 6 7 8 9; do
  out=$(SKENE_EMAIL_FROM="Bench <bench@example.com>" /usr/bin/time -f 'rss %M' \
        "$vm" simulate "$work/activation.skb" "$work/scenario.json" --quiet 2>&1)
  line=$(grep '^bench:' <<<"$out")
  summary=$(grep '^summary:' <<<"$out")
  rate=$(grep -o '[0-9]* instances/s' <<<"$line" | cut -d' ' -f1)
  rss=$(grep -o '^rss [0-9]*' <<<"$out" | cut -d' ' -f2)
  (( rss > rss_max )) && rss_max=$rss
  rates+=("$rate")
  if (( rate > best_rate )); then best_rate=$rate best_line=$line; fi
  echo "run.sh: run $i: $rate instances/s" >&2
done
# Where the instructions go: callgrind (deterministic counts) on a tenth of the sign-ups.
profile=""
if command -v valgrind >/dev/null && command -v callgrind_annotate >/dev/null; then
  small=$(( n / 10 ))
  sed "s/\"count\": $n,/\"count\": $small,/; s/\"count\": $half,/\"count\": $(( small / 2 )),/" \
    "$work/scenario.json" >"$work/scenario-small.json"
  SKENE_EMAIL_FROM="Bench <bench@example.com>" valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out" \
    "$vm" simulate "$work/activation.skb" "$work/scenario-small.json" --quiet >/dev/null 2>&1
  profile=$(callgrind_annotate --inclusive=yes "$work/callgrind.out" 2>/dev/null | awk -v n="$small" '
    /PROGRAM TOTALS/ { gsub(",", "", $1); total = $1 }
    { f = $0; sub(/.*:/, "", f); sub(/ .*/, "", f); sub(/\..*/, "", f); gsub(",", "", $1) } # f.part.0 -> f
    f == "sk_sched_run" || f == "sk_sched_row" || f == "sk_sched_fire_timers" || f == "render" ||
    f == "sk_memstore_put_values" || f == "tmpl_append" || f == "eval_cond" || f == "do_effect" {
      if (!(f in seen)) { seen[f] = 1; name[++k] = f; ir[k] = $1 } }
    END {
      printf "Where the instructions go (callgrind, %d sign-ups, %.0f instructions per started instance; a\n", n, total / n
      printf "function'"'"'s share includes what it calls):\n\n| function | share | what it is |\n|---|---:|---|\n"
      what["sk_sched_run"] = "the VM: running instances (interpreter, conditions, effects)"
      what["sk_sched_row"] = "the VM: starting and waking instances on a row event"
      what["sk_sched_fire_timers"] = "the VM: timeouts"
      what["do_effect"] = "rendering and sending the email (within sk_sched_run)"
      what["render"] = "template rendering (within the above)"
      what["eval_cond"] = "condition lookups in the indexes (within sk_sched_run)"
      what["sk_memstore_put_values"] = "the simulated database: storing rows, updating indexes"
      what["tmpl_append"] = "the scenario generator: making the rows"
      for (i = 1; i <= k; i++) printf "| `%s` | %.1f%% | %s |\n", name[i], 100 * ir[i] / total, what[name[i]]
    }')
fi
read -r worst_rate median_rate < <(printf '%s\n' "${rates[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[1], v[int((NR + 1) / 2)] }')
per_inst=$(grep -o '([0-9.]* bytes per waiting instance)' <<<"$best_line" | grep -o '[0-9.]*')
peak=$(grep -o 'peak [0-9]* waiting' <<<"$best_line" | grep -o '[0-9]*')
wall=$(grep -o '^bench: [0-9.]* s' <<<"$best_line" | grep -o '[0-9.]*')

out=$(cat <<MD
## VM

\`skene-vm simulate --quiet\` of examples/activation on $n generated sign-ups (one per ms; the even
ones create their first project 3 minutes later, within the 5-minute timeout; the odd ones time out),
9 runs. Command: \`bench/vm/run.sh $(realpath --relative-to="$root" "$build") --write\`; $(date -u +%F).

| figure | value | target |
|---|---:|---:|
| instances per second, best of 9 (one core, simulation wall time ${wall} s) | $best_rate | 500,000 |
| instances per second, median / worst of the 9 | $median_rate / $worst_rate | |
| scheduler bytes per waiting instance, at the peak of $peak waiting | $per_inst | 256 |
| peak RSS of the process, simulated database included (KiB) | $rss_max | |

$summary

- Instances per second at least 500,000: best $( (( best_rate >= 500000 )) && echo yes || echo "no ($(awk -v r="$best_rate" 'BEGIN { printf "%.0f%%", r / 5000 }') of it)"); median $( (( median_rate >= 500000 )) && echo yes || echo "no ($(awk -v r="$median_rate" 'BEGIN { printf "%.0f%%", r / 5000 }') of it)").
- Bytes per waiting instance at most 256: $(awk -v b="$per_inst" 'BEGIN { print (b <= 256) ? "yes" : "no" }').

$profile
MD
)
printf '%s\n' "$out"
if (( write )); then bench_write_section "$root" "$build" VM "$out"; fi
