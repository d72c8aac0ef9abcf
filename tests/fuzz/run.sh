#!/usr/bin/env bash
# run.sh: runs one libFuzzer target of tests/fuzz for a while (see README.md).
#   tests/fuzz/run.sh TARGET SECONDS [BUILD_DIR] [-- LIBFUZZER_ARGS...]
# TARGET is compile, sql, tmpl or load; BUILD_DIR defaults to build-fuzz (configured with SKENE_FUZZ=ON).
# The working corpus BUILD_DIR/fuzz/corpus/TARGET keeps what the fuzzer learned between runs; it starts
# from tests/fuzz/corpus/TARGET, tests/fuzz/regressions/TARGET and, for compile, the examples and a dozen
# golden error cases, for load, the examples built with BUILD_DIR's skenec. Crashes, leaks and timeouts
# land in BUILD_DIR/fuzz/artifacts/TARGET/.
set -euo pipefail
if (($# < 2)); then
  sed -n '2,9p' "$0" >&2
  exit 2
fi
target=$1 seconds=$2
shift 2
build=build-fuzz
if (($#)) && [[ $1 != -- ]]; then build=$1; shift; fi
if (($#)) && [[ $1 == -- ]]; then shift; fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "$build" && pwd)
bin=$build/tests/fuzz_$target
[[ -x $bin ]] || { echo "run.sh: $bin not built (cmake --build $build --target fuzz_$target)" >&2; exit 2; }

corpus=$build/fuzz/corpus/$target
artifacts=$build/fuzz/artifacts/$target
mkdir -p "$corpus" "$artifacts"
for dir in "$here/corpus/$target" "$here/regressions/$target"; do
  [[ -d $dir ]] && cp -n "$dir"/* "$corpus"/ 2>/dev/null || true
done
extra=()
case $target in
  compile)
    for f in "$root"/examples/*/skene.config.ts; do
      cp -n "$f" "$corpus/example_$(basename "$(dirname "$f")").ts"
    done
    for name in sql_multiline_join tmpl_unclosed const_self_reference satisfies_as_const spread_object \
                template_no_subject webhook_header_name multiple_errors_static string_interpolation \
                syntax_missing_brace duration_fraction table_key_two_ids; do
      cp -n "$root/tests/golden/errors/$name.ts" "$corpus/"
    done
    # The deep-nesting regressions are 64 KB; mutating inputs that long would only slow the search.
    extra=(-dict="$here/compile.dict" -max_len=8192)
    ;;
  load)
    for f in "$root"/examples/*/skene.config.ts; do
      name=$(basename "$(dirname "$f")")
      [[ -f $corpus/$name.skb ]] || "$build/compiler/skenec" build -o "$corpus/$name.skb" "$f"
    done
    ;;
esac
cd "$artifacts"
exec "$bin" "$corpus" -artifact_prefix="$artifacts/" -max_total_time="$seconds" \
  -timeout=5 -rss_limit_mb=2048 -print_final_stats=1 "${extra[@]}" "$@"
