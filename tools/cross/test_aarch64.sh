#!/usr/bin/env bash
# The kernel tests on the aarch64 build under qemu-user, at every ARM kernel level: forced with
# LFM_KERNELS on a CPU that has them all (qemu's "max": NEON + dotprod + i8mm), and as detected on
# a CPU with dotprod only (cortex-a76) and on one with plain NEON only (cortex-a72). Each SIMD
# kernel is checked bit for bit against the scalar oracles of the x86 AVX2 order, as on x86.
# Usage: test_aarch64.sh [PYTEST ARGS...] (after build_aarch64.sh).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
cd "$REPO"
TESTS=(tests/engine/test_kernels.py tests/engine/test_quants.py tests/engine/test_nonfinite.py)
status=0
for run in "max neon" "max dotprod" "max i8mm" "cortex-a76 " "cortex-a72 "; do
    read -r cpu level <<<"$run"
    echo "== aarch64 under qemu: cpu=$cpu LFM_KERNELS=${level:-(detected)}"
    LFM_KERNELS=$level "$HERE/run_aarch64.sh" --cpu "$cpu" -- -P -m pytest -q -p no:cacheprovider \
        --import-mode=append -m "not reference" "${TESTS[@]}" "$@" || status=1
done
exit $status
