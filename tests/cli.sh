#!/usr/bin/env bash
# cli.sh SKENEC: the command line's contract: --help and --version, exit codes (0 ok, 1 config errors,
# 2 usage or I/O), the default output name, JSON diagnostics, and that a failed build writes nothing.
set -u
skenec=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
check() { # check NAME WANT_RC ACTUAL_RC
  if [ "$2" = "$3" ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1: exit $3, expected $2" >&2; fi
}
contains() { # contains NAME FILE TEXT
  if grep -qF -- "$3" "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1: no '$3' in:" >&2; cat "$2" >&2; fi
}

"$skenec" --help >"$tmp/out"; check help 0 $?
contains help "$tmp/out" "usage: skenec build"
for cmd in build check dump; do contains "help mentions $cmd" "$tmp/out" "  $cmd "; done
"$skenec" --version >"$tmp/out"; check version 0 $?
contains version "$tmp/out" "bytecode format 1.0"
"$skenec" 2>"$tmp/err"; check "no command" 2 $?
contains "no command" "$tmp/err" "a command is needed"
"$skenec" frobnicate x.ts 2>"$tmp/err"; check "unknown command" 2 $?
"$skenec" build --frob x.ts 2>"$tmp/err"; check "unknown option" 2 $?
contains "unknown option" "$tmp/err" "unknown option '--frob'"
"$skenec" build 2>"$tmp/err"; check "missing input" 2 $?
"$skenec" check "$tmp/missing.ts" 2>"$tmp/err"; check "missing file" 2 $?
contains "missing file" "$tmp/err" "cannot read"
"$skenec" check --diagnostics-format=xml x.ts 2>"$tmp/err"; check "bad format" 2 $?

# A valid config: build writes CONFIG.skb next to it by default.
cp -r examples/activation "$tmp/act"
"$skenec" build "$tmp/act/skene.config.ts"; check "build default output" 0 $?
if [ -s "$tmp/act/skene.config.skb" ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: no default output" >&2; fi
"$skenec" check "$tmp/act/skene.config.ts"; check "check ok" 0 $?
"$skenec" build -o "$tmp/out.skb" "$tmp/act/skene.config.ts"; check "build -o before the file" 0 $?
cmp -s "$tmp/out.skb" "$tmp/act/skene.config.skb"; check "same bytes" 0 $?
"$skenec" dump "$tmp/out.skb" >"$tmp/out"; check "dump skb" 0 $?
contains "dump" "$tmp/out" "loop 'activation' (activation)"

# A config with an error: exit 1, gcc-style text, or JSON; nothing written.
printf "import { defineLoop } from '@skene/sdk';\nexport default defineLoop({ type: 'activate', steps: [] });\n" >"$tmp/bad.ts"
"$skenec" build "$tmp/bad.ts" 2>"$tmp/err"; check "bad config" 1 $?
contains "gcc style" "$tmp/err" "bad.ts:2:35: error: unknown loop type 'activate'"
contains "caret" "$tmp/err" "^~~~~~~~~~"
if [ -e "$tmp/bad.skb" ]; then fail=$((fail + 1)); echo "FAIL: a failed build wrote bad.skb" >&2; else pass=$((pass + 1)); fi
"$skenec" check --diagnostics-format=json "$tmp/bad.ts" 2>"$tmp/err"; check "json" 1 $?
contains "json line" "$tmp/err" '"line": 2'
contains "json column" "$tmp/err" '"column": 35'
contains "json severity" "$tmp/err" '"severity": "error"'

# A corrupt .skb: refused with a message, exit 1, no crash.
head -c 100 "$tmp/out.skb" >"$tmp/trunc.skb"
"$skenec" dump "$tmp/trunc.skb" 2>"$tmp/err"; check "truncated skb" 1 $?
contains "truncated skb" "$tmp/err" "trunc.skb: "

echo "cli: $pass passed, $fail failed"
[ "$fail" = 0 ]
