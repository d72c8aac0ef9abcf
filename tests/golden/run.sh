#!/usr/bin/env bash
# Golden test runner.
#   run.sh check SKENEC CONFIG EXPECTED   `skenec check CONFIG` must exit 1 with stderr == EXPECTED
#   run.sh dump  SKENEC CONFIG EXPECTED   `skenec dump CONFIG` must exit 0 with stdout == EXPECTED
# With SKENE_UPDATE_GOLDEN=1 the expected file is rewritten instead (review the diff before committing).
set -u
mode=$1 skenec=$2 config=$3 expected=$4
actual=$(mktemp)
trap 'rm -f "$actual"' EXIT
case $mode in
  check) "$skenec" check "$config" 2>"$actual" >/dev/null; rc=$?; want_rc=1 ;;
  dump)  "$skenec" dump "$config" >"$actual"; rc=$?; want_rc=0 ;;
  *) echo "run.sh: unknown mode $mode" >&2; exit 2 ;;
esac
if [ "${SKENE_UPDATE_GOLDEN:-}" = 1 ]; then
  cp "$actual" "$expected"
  echo "updated $expected"
  exit 0
fi
if [ "$rc" != "$want_rc" ]; then
  echo "FAIL: skenec $mode $config exited $rc, expected $want_rc" >&2
  cat "$actual" >&2
  exit 1
fi
if [ ! -f "$expected" ]; then
  echo "FAIL: no expected output $expected (run with SKENE_UPDATE_GOLDEN=1 and review it)" >&2
  cat "$actual" >&2
  exit 1
fi
if ! diff -u "$expected" "$actual"; then
  echo "FAIL: output of skenec $mode $config differs from $expected" >&2
  exit 1
fi
