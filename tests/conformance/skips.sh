#!/usr/bin/env bash
# skips.sh SKENEC SKENE_VM: conf_skips. Lists the simulator's cases the conformance suite does not
# play (skip.txt) with their reasons, and checks that each reason still holds:
#   webhook   the case's config still calls a webhook on an outside URL (https://...example)
#   generate  the scenario still uses `generate`
# A reason that no longer holds fails the test: remove the line from skip.txt and let the case run.
set -u
skenec=$1 vm=$2
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
sim=$root/tests/sim
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail=0
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
    webhook)
      dir=$sim/$name
      if [ -f "$dir/skene.config.ts" ]; then config=$dir/skene.config.ts; else config=$root/$(cat "$dir/config.path"); fi
      if ! "$skenec" build -o "$tmp/$name.skb" "$config" >"$tmp/err" 2>&1; then
        cat "$tmp/err" >&2
        bad "$entry: skenec build $config"
        continue
      fi
      # The config still calls a webhook whose URL (https://...example) a test cannot reach.
      if ! "$vm" --help >/dev/null || ! "$skenec" dump "$tmp/$name.skb" 2>/dev/null | grep -Eq "url: +https://"; then
        bad "$entry: its config no longer calls a webhook on an outside URL: remove the line from skip.txt"
        continue
      fi
      ;;
    generate)
      for c in $cases; do
        grep -q '"generate"' "$sim/$name/$c.scenario.json" ||
          bad "$name/$c: its scenario no longer uses generate: remove the line from skip.txt"
      done
      ;;
    *)
      bad "$entry: unknown kind '$kind' (webhook or generate)"
      continue
      ;;
  esac
  for c in $cases; do
    echo "not played on Redis: $name/$c ($kind): $reason"
  done
done <"$here/skip.txt"
exit $fail
