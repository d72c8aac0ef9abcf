#!/usr/bin/env bash
# roundtrip.sh SKENEC CONFIG OUT.skb
# Builds CONFIG twice: the two .skb files must be byte-identical (deterministic output); then the
# dump of the .skb must equal the dump of the config compiled in memory (the file holds everything).
set -eu
skenec=$1 config=$2 out=$3
mkdir -p "$(dirname "$out")"
"$skenec" build "$config" -o "$out"
"$skenec" build "$config" -o "$out.again"
if ! cmp "$out" "$out.again"; then
  echo "FAIL: two builds of $config differ" >&2
  exit 1
fi
rm -f "$out.again"
diff -u <("$skenec" dump "$config") <("$skenec" dump "$out") || { echo "FAIL: dump of $out differs from dump of $config" >&2; exit 1; }
echo "ok: $config -> $out ($(wc -c <"$out") bytes), deterministic, dumps identically"
