#!/usr/bin/env bash
# The ctest tests labelled "valgrind" under valgrind memcheck: any invalid access, use of
# uninitialised memory or leak (definite or possible) fails the test. The tests that sweep
# grids of shapes run one case in RA_TEST_SAMPLE (default 3).
#
#   tools/valgrind.sh [ctest args...]
#   BUILD_DIR=...  default build-valgrind (RelWithDebInfo); a build directory that is already
#                  configured is used as it is (tools/run.sh passes its Release build, whose
#                  library carries -g, which saves CI a third build)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build-valgrind}
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)"; exit 1; }

if [ -f "$build/CMakeCache.txt" ]; then
    cmake -S "$root" -B "$build" >/dev/null
else
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$build" -j2

# ctest -T memcheck reads its settings from DartConfiguration.tcl, which only include(CTest)
# writes; the project uses plain enable_testing(), so write the few lines it needs.
cat >"$build/DartConfiguration.tcl" <<CFG
SourceDirectory: $root
BuildDirectory: $build
MemoryCheckType: Valgrind
MemoryCheckCommand: $(command -v valgrind)
MemoryCheckCommandOptions: --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,possible --show-leak-kinds=definite,possible --track-origins=yes --num-callers=30 --gen-suppressions=all
MemoryCheckSuppressionFile: $root/tools/valgrind.supp
CFG
# One grid case in 3 of the tests that sweep shapes (tc_sampled): under valgrind each case
# runs many times slower, and the Release and sanitizer runs cover every case.
export RA_TEST_SAMPLE=${RA_TEST_SAMPLE:-3}
cd "$build"
# Two tests at a time: valgrind runs each process on one core at a time, and there are two.
ctest -T memcheck -L valgrind --output-on-failure -j2 "$@"
