#!/usr/bin/env bash
# run.sh [BUILD_DIR] [--write]: the compile benchmark. For N in 10 100 1000
# 10000 it generates a config of N loops (gen.sh), then times `skenec build`
# of it against parse_only (tree-sitter parse + one walk: the floor), best of
# 5 runs (3 for N = 10000), with peak RSS. Prints a markdown section to
# stdout; with --write it also replaces the "## Compile" section of
# bench/RESULTS.md (creating the file, with a header naming the machine).
# BUILD_DIR defaults to ./build under the repository root and must hold
# compiler/skenec and bench/parse_only (cmake --build BUILD_DIR).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=../lib.sh
. "$root/bench/lib.sh"
sizes=(10 100 1000 10000)

build=""
write=0
for arg in "$@"; do
  case $arg in
    --write) write=1 ;;
    -h|--help) sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "run.sh: unknown option $arg" >&2; exit 2 ;;
    *) if [[ -n $build ]]; then echo "run.sh: one BUILD_DIR only" >&2; exit 2; fi
       build=$arg ;;
  esac
done
build=${build:-$root/build}
if [[ ! -d $build ]]; then
  echo "run.sh: build directory $build not found (cmake -S . -B build && cmake --build build)" >&2
  exit 2
fi
build=$(cd "$build" && pwd)

skenec=$build/compiler/skenec
parse_only=$build/bench/parse_only
if [[ ! -x $skenec ]]; then
  echo "run.sh: $skenec not found: build skenec first (cmake --build $build --target skenec)" >&2
  exit 2
fi
if [[ ! -x $parse_only ]]; then
  echo "run.sh: $parse_only not found: cmake --build $build --target parse_only" >&2
  exit 2
fi
if [[ ! -x /usr/bin/time ]]; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "run.sh: installing GNU time (for peak RSS)" >&2
    apt-get install -y -qq time >/dev/null
  fi
  if [[ ! -x /usr/bin/time ]]; then
    echo "run.sh: /usr/bin/time (GNU time) is needed for peak RSS: apt-get install time" >&2
    exit 2
  fi
fi

work=$build/bench/compile-inputs
mkdir -p "$work"

# measure RUNS CMD...: runs CMD RUNS times; sets best_ms (best wall time, ms)
# and rss_kib (largest peak RSS). Fails, showing CMD's stderr, if CMD fails.
measure() {
  local runs=$1; shift
  local k t0 t1 ns rss
  best_ms=""
  rss_kib=0
  for ((k = 0; k < runs; k++)); do
    t0=$(date +%s%N)
    if ! /usr/bin/time -f '%M' -o "$work/rss" "$@" >"$work/out" 2>"$work/err"; then
      echo "run.sh: failed: $*" >&2
      head -20 "$work/err" >&2
      exit 1
    fi
    t1=$(date +%s%N)
    ns=$((t1 - t0))
    rss=$(tail -1 "$work/rss")
    (( rss > rss_kib )) && rss_kib=$rss
    if [[ -z $best_ms ]] || (( ns < best_ns )); then
      best_ns=$ns
      best_ms=$(awk -v ns="$ns" 'BEGIN { printf "%.2f", ns / 1e6 }')
    fi
  done
}

declare -A size_b parse_ms compile_ms parse_rss compile_rss
for n in "${sizes[@]}"; do
  file=$("$here/gen.sh" "$n" "$work")
  size_b[$n]=$(wc -c <"$file")
  runs=5; (( n >= 10000 )) && runs=3
  # The input must be clean for the comparison to mean anything.
  if ! "$parse_only" "$file" >/dev/null; then
    echo "run.sh: generated $file has syntax errors (see above)" >&2
    exit 1
  fi
  echo "run.sh: N=$n ($runs runs each)" >&2
  measure "$runs" "$parse_only" "$file"
  parse_ms[$n]=$best_ms; parse_rss[$n]=$rss_kib
  measure "$runs" "$skenec" build -o "$work/loops-$n.skb" "$file"
  compile_ms[$n]=$best_ms; compile_rss[$n]=$rss_kib
done

# The command as it should be retyped from the repository root.
case $build in
  "$root"/*) build_shown=${build#"$root"/} ;;
  *) build_shown="BUILD_DIR" ;;
esac
command_line="bench/compile/run.sh $build_shown"
(( write )) && command_line+=" --write"

section() {
  local n us
  echo "## Compile"
  echo
  echo "\`skenec build\` of a generated config of N loops (\`bench/compile/gen.sh N\`, ~20 lines per loop)"
  echo "against \`parse_only\` (tree-sitter parse + one walk of the tree), wall time best of 5 runs (3 for"
  echo "N = 10000), peak RSS the largest seen. Command: \`$command_line\`; $(date -u +%Y-%m-%d)."
  echo
  echo "| N | file size (KiB) | parse (ms) | compile (ms) | compile / parse | compile µs / loop | peak RSS parse / compile (KiB) |"
  echo "|---:|---:|---:|---:|---:|---:|---:|"
  for n in "${sizes[@]}"; do
    awk -v n="$n" -v b="${size_b[$n]}" -v p="${parse_ms[$n]}" -v c="${compile_ms[$n]}" \
        -v pr="${parse_rss[$n]}" -v cr="${compile_rss[$n]}" 'BEGIN {
      printf "| %d | %.1f | %.2f | %.2f | %.2f | %.1f | %d / %d |\n",
             n, b / 1024, p, c, (p > 0 ? c / p : 0), c * 1000 / n, pr, cr }'
  done
  echo
  awk -v c100="${compile_ms[100]}" -v c10k="${compile_ms[10000]}" 'BEGIN {
    a = c100 * 1000 / 100; b = c10k * 1000 / 10000
    printf "- Time per loop at N = 10000 (%.1f µs) is %s 2x that at N = 100 (%.1f µs): %s.\n",
           b, (b <= 2 * a ? "within" : "NOT within"), a, (b <= 2 * a ? "yes" : "no") }'
  awk -v p1="${parse_ms[1000]}" -v c1="${compile_ms[1000]}" \
      -v p2="${parse_ms[10000]}" -v c2="${compile_ms[10000]}" 'BEGIN {
    ok = (c1 <= 2 * p1 && c2 <= 2 * p2)
    printf "- Compile <= 2x parse for N >= 1000 (%.2fx at 1000, %.2fx at 10000): %s.\n",
           c1 / p1, c2 / p2, (ok ? "yes" : "no") }'
}

out=$(section)
printf '%s\n' "$out"

if (( write )); then
  bench_write_section "$root" "$build" Compile "$out"
fi
