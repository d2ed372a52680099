#!/usr/bin/env bash
# The whole ctest suite in an AddressSanitizer + UndefinedBehaviorSanitizer build
# (RA_SANITIZE=ON: -fsanitize=address,undefined -fno-sanitize-recover=all). Any report fails.
#
#   tools/sanitize.sh [ctest args...]     e.g. -L robustness
#   BUILD_DIR=...  default build-asan
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build-asan}

# RA_BUILD_STATIC=ON so that the static-archive consumer tests run sanitized too.
# -O1: gcc instruments the AVX-512 kernel file much faster than at -O2.
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRA_SANITIZE=ON \
  -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g -DNDEBUG" -DRA_BUILD_STATIC=ON >/dev/null
cmake --build "$build" -j2

# allocator_may_return_null: the library must survive failed allocations, so huge requests
# return NULL instead of aborting. No suppressions are needed (libgomp and OpenBLAS included).
export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
cd "$build"
ctest --output-on-failure -j2 "$@"
