#!/usr/bin/env bash
# Build liquidlfm for this machine with clang instead of gcc, into OUT (default build/clang/pkg):
# an importable package tree. tests/engine/test_other_builds.py checks that it gives gcc's logits
# bit for bit (both compile with -ffp-contract=off).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-$REPO/build/clang/pkg}
command -v clang >/dev/null || { echo "build_clang.sh: no clang (apt-get install clang)" >&2; exit 1; }
cd "$REPO"
rm -rf "$OUT"
CC=clang LDSHARED="clang -shared" CFLAGS="-fPIC" LDFLAGS="" python setup.py -q build_py --build-lib "$OUT" \
    build_ext --build-lib "$OUT" --build-temp "$REPO/build/clang/temp" 2>&1 | grep -v "^copying\|^creating" || true
ls "$OUT"/liquidlfm/_core*.so >/dev/null
echo "$OUT"
