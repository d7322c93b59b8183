#!/usr/bin/env bash
# Run Python for aarch64 under qemu-user on the package build_aarch64.sh made:
#   run_aarch64.sh [--cpu MODEL] -- ARGS...
# e.g. run_aarch64.sh --cpu cortex-a72 -- -P -m pytest -p no:cacheprovider --import-mode=append tests/engine/test_quants.py
# (-P and --import-mode=append: the arm64 package on PYTHONPATH, not the checkout's liquidlfm/, is imported)
# MODEL is a qemu CPU: max (NEON + dotprod + i8mm), cortex-a76 / neoverse-n1 (+ dotprod), cortex-a72 (NEON only).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
ROOT=${LFM_ARM64_SYSROOT:-/opt/lfm-arm64/root}
PKG=${LFM_ARM64_PKG:-$REPO/build/aarch64/pkg}
CPU=max
if [ "${1:-}" = "--cpu" ]; then CPU=$2; shift 2; fi
[ "${1:-}" = "--" ] && shift
export QEMU_LD_PREFIX="$ROOT" QEMU_CPU="$CPU"
export PYTHONPATH="$PKG:$REPO/build/aarch64/site${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
exec qemu-aarch64 "$ROOT/usr/bin/python3.11" "$@"
