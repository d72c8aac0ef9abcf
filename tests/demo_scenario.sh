#!/usr/bin/env bash
# demo_scenario.sh SKENEC SKENE_VM: examples/activation/demo.scenario.json (the demo on the simulator: of three
# sign-ups, Ada (after one retried 500) and Grace get their email, Linus times out) still does so.
set -eu
skenec=$1 vm=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$skenec" build examples/activation/skene.config.ts -o "$tmp/a.skb"
SKENE_EMAIL_FROM="Acme <hello@acme.example>" "$vm" simulate "$tmp/a.skb" examples/activation/demo.scenario.json >"$tmp/out"
fail=0
expect() { grep -q -- "$1" "$tmp/out" || { echo "FAIL: the demo's timeline has no line matching: $1" >&2; fail=1; }; }
expect '"subject":"u1","event":"action.retry"'
expect '"subject":"u1","event":"action.ok".*"to":"ada@example.com"'
expect '"subject":"u3","event":"action.ok".*"to":"grace@example.com"'
expect '"subject":"u2","event":"instance.end","outcome":"timed_out"'
n=$(grep -c '"event":"action.ok"' "$tmp/out")
[ "$n" = 2 ] || { echo "FAIL: $n emails, expected 2" >&2; fail=1; }
[ $fail = 0 ] && echo "demo scenario: 2 emails, 1 timed out, as its description says"
exit $fail
