#!/usr/bin/env bash
# Builds that show the library does not depend on the host's ISA:
#   1. RA_ISA=generic on this machine with clang (gcc builds everything else): only the
#      portable C and BLAS kernels, -Werror, and the core tests;
#   2. arm64: cross-compiled with Debian's gcc-aarch64-linux-gnu against the arm64 multiarch
#      OpenBLAS and CMocka, NEON kernel included, every test but the install-consumer and ABI
#      ones (they drive the host's toolchain) and the full-size multi-token bench run under
#      qemu-aarch64.
# Installs what it needs (Debian 12, as root or with sudo). Usage: tools/portability.sh
# [generic|arm64] (default: both). Build trees: build-generic/, build-arm64/.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

install_missing() { # Debian packages given as arguments, those not yet installed
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "== installing: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${missing[@]}"
}

generic() {
    install_missing cmake make gcc pkgconf clang libomp-14-dev libopenblas-dev \
        libopenblas-serial-dev libcmocka-dev
    echo "== RA_ISA=generic build (portable C and BLAS kernels only) in build-generic/"
    CC=${GENERIC_CC:-clang} cmake -S . -B build-generic -DCMAKE_BUILD_TYPE=Release -DRA_ISA=generic \
        -DRA_BUILD_EXAMPLES=OFF >/dev/null
    cmake --build build-generic -j"$(nproc)"
    ctest --test-dir build-generic --output-on-failure -j2 -L "core|fuzz"
}

arm64_deps() {
    dpkg --print-foreign-architectures | grep -qx arm64 || $sudo dpkg --add-architecture arm64
    install_missing gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user libc6:arm64 \
        libgomp1:arm64 libopenblas-serial-dev:arm64 libcmocka-dev:arm64
}

arm64() {
    arm64_deps
    echo "== arm64 cross build (NEON kernel) in build-arm64/, tests under qemu-aarch64"
    cmake -S . -B build-arm64 -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake \
        -DRA_BUILD_EXAMPLES=OFF >/dev/null
    cmake --build build-arm64 -j"$(nproc)"
    readelf -h build-arm64/src/libraggedattn.so | grep -q "AArch64" ||
        { echo "build-arm64: the library is not an arm64 binary" >&2; exit 1; }
    # bench_multi_smoke times a full-size verification case (B 8, S 4096), minutes under qemu
    ctest --test-dir build-arm64 --output-on-failure -j2 -LE "consumers|abi" \
        -E "^bench_multi_smoke$"
}

case "${1:-all}" in
generic) generic ;;
arm64) arm64 ;;
all) generic; arm64 ;;
*) sed -n '2,9p' "$0"; exit 2 ;;
esac
