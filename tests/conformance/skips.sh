#!/usr/bin/env bash
# skips.sh SKENEC SKENE_VM: conf_skips. Lists the simulator's cases the conformance suite does not
# play (skip.txt) with their reasons, and checks that each reason still holds:
#   generate  the scenario still uses `generate`
#   differs   played once more (run.sh under tests/redis/with-redis.sh), its outcomes still differ
#             from the simulator's
# A reason that no longer holds fails the test: remove the line from skip.txt and let the case run.
# With no line, it says that every case is played.
set -u
skenec=$1 vm=$2
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
sim=$root/tests/sim
fail=0
skipped=0
bad() { echo "FAIL: conf_skips: $*" >&2; fail=1; }

while read -r entry kind reason; do
  case "$entry" in ''|'#'*) continue ;; esac
  name=${entry%%/*}
  if [ "$entry" = "$name" ]; then
    cases=
    for f in "$sim/$name"/*.scenario.json; do
      [ -f "$f" ] && cases="$cases $(basename "$f" .scenario.json)"
    done
  else
    cases=${entry#*/}
    [ -f "$sim/$name/$cases.scenario.json" ] || cases=
  fi
  if [ -z "$cases" ]; then
    bad "$entry: no such case in tests/sim/ (remove the line)"
    continue
  fi
  case "$kind" in
    generate)
      for c in $cases; do
        grep -q '"generate"' "$sim/$name/$c.scenario.json" ||
          bad "$name/$c: its scenario no longer uses generate: remove the line from skip.txt"
      done
      ;;
    differs)
      for c in $cases; do
        if out=$(bash "$root/tests/redis/with-redis.sh" -- bash "$here/run.sh" "$skenec" "$vm" "$name" "$c" 2>&1); then
          bad "$name/$c: its outcomes agree with the simulator's now: remove the line from skip.txt"
        elif ! grep -q 'the outcomes differ' <<<"$out"; then
          printf '%s\n' "$out" >&2
          bad "$name/$c: could not be played (above)"
        fi
      done
      ;;
    *)
      bad "$entry: unknown kind '$kind' (generate or differs)"
      continue
      ;;
  esac
  for c in $cases; do
    echo "not compared on Redis: $name/$c ($kind): $reason"
    skipped=$((skipped + 1))
  done
done <"$here/skip.txt"
if [ "$skipped" = 0 ] && [ "$fail" = 0 ]; then
  echo "every case of tests/sim/ is played and compared on Redis (skip.txt lists none)"
fi
exit $fail
