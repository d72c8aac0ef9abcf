#!/usr/bin/env bash
# run.sh SKENEC SKENE_VM NAME CASE: one simulator golden test. Builds tests/sim/NAME/skene.config.ts (or
# the config that NAME/config.path names, relative to the repository), replays NAME/CASE.scenario.json
# twice (the two outputs must be the same bytes) and compares the timeline with NAME/CASE.expected.jsonl;
# and, when NAME/CASE.expected.txt exists, the --format text output with it.
# SKENE_EMAIL_FROM is unset unless NAME/env sets it (lines VAR=value).
# SKENE_UPDATE_GOLDEN=1 rewrites the expected files instead: review every line of the diff by hand.
set -u
skenec=$1 vm=$2 name=$3 case=$4
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dir=$here/$name
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ -f "$dir/skene.config.ts" ]; then config=$dir/skene.config.ts; else config=$root/$(cat "$dir/config.path"); fi
"$skenec" build -o "$tmp/loop.skb" "$config" || { echo "FAIL: $name: skenec build $config" >&2; exit 1; }

unset SKENE_EMAIL_FROM
if [ -f "$dir/env" ]; then
  while IFS= read -r line; do [ -n "$line" ] && export "$line"; done <"$dir/env"
fi

scenario=$dir/$case.scenario.json
fail=0
"$vm" simulate "$tmp/loop.skb" "$scenario" >"$tmp/out1.jsonl" 2>"$tmp/err1" || { echo "FAIL: $name/$case: exit $?" >&2; cat "$tmp/err1" >&2; exit 1; }
"$vm" simulate "$tmp/loop.skb" "$scenario" >"$tmp/out2.jsonl" 2>/dev/null
cmp -s "$tmp/out1.jsonl" "$tmp/out2.jsonl" || { echo "FAIL: $name/$case: two runs differ" >&2; fail=1; }

check() { # check ACTUAL EXPECTED
  if [ "${SKENE_UPDATE_GOLDEN:-0}" = 1 ]; then
    cp "$1" "$2"
  elif ! diff -u "$2" "$1" >&2; then
    echo "FAIL: $name/$case: output differs from $(basename "$2") (above: - expected, + actual)" >&2
    fail=1
  fi
}
check "$tmp/out1.jsonl" "$dir/$case.expected.jsonl"
if [ -f "$dir/$case.expected.txt" ]; then
  "$vm" simulate --format text "$tmp/loop.skb" "$scenario" >"$tmp/out.txt" 2>&1 || { echo "FAIL: $name/$case: text exit $?" >&2; fail=1; }
  check "$tmp/out.txt" "$dir/$case.expected.txt"
fi
exit $fail
