#!/usr/bin/env bash
# An arm64 Debian root with Python 3.11, NumPy, pytest and Jinja2, for cross-building liquidlfm and
# running it under qemu-user (tools/cross/build_aarch64.sh, run_aarch64.sh). Needs debootstrap
# (Debian's package) and network access to Debian's mirror; nothing runs as arm64 here: the packages
# are only downloaded and unpacked. Usage: make_sysroot.sh [DIR] (default /opt/lfm-arm64/root).
set -euo pipefail
ROOT=${1:-${LFM_ARM64_SYSROOT:-/opt/lfm-arm64/root}}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
if [ -x "$ROOT/usr/bin/python3.11" ] && [ -e "$ROOT/usr/lib/aarch64-linux-gnu/libblas.so.3" ]; then
    echo "arm64 sysroot ready: $ROOT"
    exit 0
fi
command -v debootstrap >/dev/null || { echo "make_sysroot.sh: needs debootstrap (apt-get install debootstrap)" >&2; exit 1; }
mkdir -p "$ROOT"
# --foreign: download and unpack the base without running arm64 code; the extra packages are only
# downloaded, so unpack them too (their maintainer scripts, which would need arm64, are not needed)
debootstrap --arch=arm64 --foreign --variant=minbase \
    --include=python3,python3-dev,libpython3.11-dev,python3-numpy,python3-pytest,python3-jinja2 \
    bookworm "$ROOT" "$MIRROR"
for deb in "$ROOT"/var/cache/apt/archives/*.deb; do dpkg-deb -x "$deb" "$ROOT"; done
# what update-alternatives would have linked (NumPy's BLAS)
ln -sf blas/libblas.so.3 "$ROOT/usr/lib/aarch64-linux-gnu/libblas.so.3"
ln -sf lapack/liblapack.so.3 "$ROOT/usr/lib/aarch64-linux-gnu/liblapack.so.3"
echo "arm64 sysroot ready: $ROOT"
