#!/usr/bin/env bash
# Cross-compile liquidlfm for Linux aarch64 with Debian's gcc-aarch64-linux-gnu (or CC=clang with
# --target), against the arm64 sysroot's Python and NumPy headers (make_sysroot.sh). The result is
# an importable package tree in OUT (default build/aarch64/pkg): liquidlfm/*.py and the arm64
# _core.cpython-311-aarch64-linux-gnu.so. Run it with run_aarch64.sh.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
ROOT=${LFM_ARM64_SYSROOT:-/opt/lfm-arm64/root}
OUT=${1:-$REPO/build/aarch64/pkg}
[ -x "$ROOT/usr/bin/python3.11" ] || "$HERE/make_sysroot.sh" "$ROOT"
export CC=${CC:-aarch64-linux-gnu-gcc}
command -v "${CC%% *}" >/dev/null || { echo "build_aarch64.sh: no $CC (apt-get install gcc-aarch64-linux-gnu)" >&2; exit 1; }
export LDSHARED="$CC -shared"
export SETUPTOOLS_EXT_SUFFIX=.cpython-311-aarch64-linux-gnu.so
# Debian's Python.h includes <aarch64-linux-gnu/python3.11/pyconfig.h>: a folder holding only that
# (not the sysroot's whole include root, whose libc headers would shadow the cross compiler's)
SHIM="$REPO/build/aarch64/include"
mkdir -p "$SHIM/aarch64-linux-gnu"
ln -sfn "$ROOT/usr/include/aarch64-linux-gnu/python3.11" "$SHIM/aarch64-linux-gnu/python3.11"
export LIQUIDLFM_PYTHON_INCLUDE="$ROOT/usr/include/python3.11:$SHIM"
export LIQUIDLFM_NUMPY_INCLUDE="$ROOT/usr/lib/python3/dist-packages/numpy/core/include"
# the build machine's sysconfig flags are x86 gcc's; keep only what any compiler accepts
export CFLAGS="-fPIC" LDFLAGS="" CPPFLAGS=""
cd "$REPO"
# pure-Python test dependencies the Debian root lacks, as aarch64 wheels (run_aarch64.sh puts them on the path)
SITE="$REPO/build/aarch64/site"
if [ ! -d "$SITE/gguf" ]; then
    python -m pip install -q --target "$SITE" --platform manylinux2014_aarch64 --python-version 3.11 \
        --implementation cp --abi cp311 --only-binary=:all: --no-deps gguf pyyaml tqdm
fi
rm -rf "$OUT"
python setup.py -q build_py --build-lib "$OUT" build_ext --build-lib "$OUT" \
    --build-temp "$REPO/build/aarch64/temp-$(basename "${CC%% *}")" 2>&1 | grep -v "^copying\|^creating" || true
SO=$(ls "$OUT"/liquidlfm/_core*.so)
file "$SO" | grep -q "ARM aarch64" || { echo "build_aarch64.sh: $SO is not an aarch64 object" >&2; exit 1; }
echo "$OUT"
