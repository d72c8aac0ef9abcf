# bench/lib.sh: what every bench script shares (source it): the machine header of RESULTS.md,
# replacing one "## NAME" section of it in place, and probes of a running worker (bench/e2e).

# bench_machine_header ROOT BUILD: the header RESULTS.md starts with (machine, toolchain, build type).
bench_machine_header() {
  local root=$1 build=$2 cpu ram os gcc_v cc_v ts_v
  cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
  ram=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo 2>/dev/null || true)
  os=$( (. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-unknown}") || uname -sr)
  gcc_v=$(gcc --version 2>/dev/null | head -1 || echo "gcc: not found")
  cc_v=$(cmake --version 2>/dev/null | head -1 || echo "cmake: not found")
  ts_v=$(dpkg-query -W -f='${Version}' libtree-sitter0 2>/dev/null || echo unknown)
  echo "# Benchmark results"
  echo
  echo "Recorded by the scripts under \`bench/\`; each section names the command that produced it."
  echo
  echo "Machine: $(nproc) CPUs, ${cpu:-unknown CPU}, ${ram:-unknown} RAM, $os, kernel $(uname -r)."
  echo "Toolchain: $gcc_v; $cc_v; libtree-sitter $ts_v; tree-sitter-typescript $(sed -n 's/^version=//p' "$root/grammar/tree-sitter-typescript.lock" 2>/dev/null)."
  echo "Build: \`$(grep -E '^CMAKE_BUILD_TYPE:' "$build/CMakeCache.txt" 2>/dev/null | cut -d= -f2 || echo '?')\` build type."
  echo
}

# bench_write_section ROOT BUILD NAME TEXT: replaces the "## NAME" section of ROOT/bench/RESULTS.md
# (up to the next "## ") with TEXT, or appends it; creates the file with the machine header.
bench_write_section() {
  local root=$1 build=$2 name=$3 text=$4 results tmp
  results=$root/bench/RESULTS.md
  tmp=$(mktemp "$root/bench/.RESULTS.md.XXXXXX")
  if [[ -f $results ]]; then
    NAME="## $name" SECTION=$text awk '
      /^## / { skip = 0
               if ($0 == ENVIRON["NAME"]) { skip = 1; if (!done) { print ENVIRON["SECTION"]; print ""; done = 1 } } }
      !skip { print }
      END { if (!done) { print ""; print ENVIRON["SECTION"] } }' "$results" >"$tmp"
  else
    { bench_machine_header "$root" "$build"; printf '%s\n' "$text"; } >"$tmp"
  fi
  mv "$tmp" "$results"
  echo "$(basename "$0"): wrote the $name section of bench/RESULTS.md" >&2
}

# ---- a running worker (bench/e2e): the script sets wpid (its PID) and log (its stdout) ----

# worker_stat KEY: KEY's value in the worker's last worker.stats line, asked for now with SIGUSR1
# (no Redis command).
worker_stat() {
  local before
  before=$(grep -c '"worker.stats"' "$log" || true)
  kill -USR1 "$wpid"
  for _ in $(seq 200); do
    (($(grep -c '"worker.stats"' "$log" || true) > before)) && break
    sleep 0.01
  done
  grep '"worker.stats"' "$log" | tail -1 | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"
}

# hwm_kb PID: the process's peak resident memory (VmHWM), KiB.
hwm_kb() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status"; }
