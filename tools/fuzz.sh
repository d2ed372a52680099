#!/usr/bin/env bash
# Builds the libFuzzer target (fuzz/) with clang-14, ASan+UBSan and coverage instrumentation of
# the library itself, then fuzzes for a bounded time starting from the seed corpus fuzz/corpus.
# New interesting inputs go to a scratch directory (the repo's corpus stays as it is); a crash
# is written to $BUILD_DIR/crash-* and makes the script fail.
#
#   tools/fuzz.sh [SECONDS]        default 90 (or FUZZ_SECONDS)
#   BUILD_DIR=...  default build-fuzz       FUZZ_CORPUS_OUT=dir  keep the new inputs there
#   FUZZ_ARGS="..." extra libFuzzer flags
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-${FUZZ_SECONDS:-90}}
build=${BUILD_DIR:-$root/build-fuzz}
cc=${FUZZ_CC:-clang-14}

# -O1 (libFuzzer's usual level): clang instruments the AVX-512 kernel files with ASan and UBSan
# in 4.7 min at -O1 and more than 10 min at -O2 on the reference machine, which was most of CI.
CC=$cc cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g -DNDEBUG" \
  -DRA_FUZZ=ON -DRA_SANITIZE=ON -DRA_WERROR=ON \
  -DRA_BUILD_TESTS=OFF -DRA_BUILD_BENCH=OFF -DRA_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" -j2 --target ra_fuzz

out=${FUZZ_CORPUS_OUT:-$(mktemp -d)}
mkdir -p "$out"
export ASAN_OPTIONS="allocator_may_return_null=1:detect_leaks=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
echo "fuzzing for ${seconds}s; new inputs in $out"
# -max_len keeps inputs (and so the shapes they describe) small; -timeout flags hangs.
"$build/fuzz/ra_fuzz" -max_total_time="$seconds" -max_len=512 -timeout=30 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$build/" ${FUZZ_ARGS:-} "$out" "$root/fuzz/corpus"
