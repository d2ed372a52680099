#!/usr/bin/env bash
# One entry point for people and CI. Installs what is missing (Debian 12), builds, and runs:
#   tools/run.sh bench [raggedattn-bench flags]   the benchmark (default: --quick)
#   tools/run.sh test                             every test: ctest (Release), then the whole
#                                                 ctest suite under ASan+UBSan, the core tests
#                                                 under valgrind, a clang build without SIMD
#                                                 kernels and an arm64 build under qemu, and a
#                                                 bounded fuzzing run
#   tools/run.sh deps                             only install the Debian packages
# Environment: RA_FUZZ_SECONDS (default 90), RA_SKIP_SLOW=1 skips sanitizers/valgrind/
# portability/fuzz.
# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are passed through untouched.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(cmake make gcc g++ pkgconf libopenblas-dev libopenblas-serial-dev libcmocka-dev libomp-14-dev
          abigail-tools jq valgrind clang libclang-rt-14-dev openmpi-bin libopenmpi-dev)

deps() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "== installing: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

build() {
    echo "== building (Release) in build/"
    # RA_BUILD_STATIC=ON: libraggedattn.a is installed too, so ctest also runs the consumers
    # that link it (consumer_c_cmake_static, consumer_c_pkgconfig_static).
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DRA_BUILD_STATIC=ON >/dev/null
    cmake --build build -j"$(nproc)"
}

case "${1:-}" in
deps)
    deps ;;
bench)
    shift
    deps
    build
    [ $# -eq 0 ] && set -- --quick
    exec ./build/bench/raggedattn-bench "$@" ;;
test)
    deps
    build
    echo "== ctest (Release)"
    ctest --test-dir build --output-on-failure -j2
    if [ "${RA_SKIP_SLOW:-0}" != 1 ]; then
        echo "== ctest under AddressSanitizer + UndefinedBehaviorSanitizer"
        bash tools/sanitize.sh
        echo "== core tests under valgrind memcheck (the Release build's, its library has -g)"
        BUILD_DIR="$PWD/build" bash tools/valgrind.sh
        echo "== portability: RA_ISA=generic with clang, and arm64 (NEON) under qemu-aarch64"
        bash tools/portability.sh
        echo "== fuzzing (${RA_FUZZ_SECONDS:-90} s)"
        # A fixed seed keeps CI repeatable; run tools/fuzz.sh yourself to explore further.
        FUZZ_ARGS="${FUZZ_ARGS:--seed=20261127}" bash tools/fuzz.sh "${RA_FUZZ_SECONDS:-90}"
    fi
    echo "== all tests passed" ;;
*)
    sed -n '2,10p' "$0"
    exit 2 ;;
esac
