#!/bin/sh
# Regenerates the ABI baseline from this checkout:
#   abi/libraggedattn.abi      abidw dump of the installed library's public ABI
#   abi/exported-symbols.txt   nm -D --defined-only of the installed library
# The abi_abidiff and abi_exported_symbols tests compare every build with these files, so
# changing them must be a deliberate commit that says why the ABI changed (and bumps
# RA_VERSION_MAJOR if the change is incompatible; see the README's versioning policy).
#
# Usage: abi/update-baseline.sh [BUILD_DIR]
#   Configures a library-only build (no tests, bench or examples) in BUILD_DIR, or in a
#   temporary directory that is removed afterwards, builds the shared library, installs its
#   Runtime and Development components into a scratch prefix and dumps that.
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
tmp=
if [ $# -ge 1 ]; then
    build=$1
else
    tmp=$(mktemp -d)
    build=$tmp/build
fi
trap '[ -z "$tmp" ] || rm -rf "$tmp"' EXIT

cmake -S "$repo" -B "$build" -DRA_BUILD_TESTS=OFF -DRA_BUILD_BENCH=OFF \
    -DRA_BUILD_EXAMPLES=OFF -DRA_BUILD_STATIC=OFF >/dev/null
cmake --build "$build" --target raggedattn -j2
stage=$build/abi-update-stage
rm -rf "$stage"
for component in Runtime Development; do
    env -u DESTDIR cmake --install "$build" --prefix "$stage" --component "$component" >/dev/null
done
cmake -DMODE=update -DSTAGE="$stage" -DOUT_DIR="$build/abi-update" -P "$repo/abi/abi_gate.cmake"
rm -rf "$stage"

echo "Review the new baseline and commit it, saying why the ABI changed:"
echo "  git -C '$repo' diff --stat -- abi/"
