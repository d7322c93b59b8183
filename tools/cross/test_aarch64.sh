#!/usr/bin/env bash
# The kernel tests on the aarch64 build under qemu-user, at every ARM kernel level: forced with
# LFM_KERNELS on a CPU that has them all (qemu's "max": NEON + dotprod + i8mm), and as detected on
# a CPU with plain NEON only (cortex-a72). Each SIMD kernel is checked bit for bit against the
# scalar oracles of the x86 AVX2 order, as on x86. The runs go two at a time (qemu emulates on one
# core); each one's output is printed when it ends.
# Usage: test_aarch64.sh [PYTEST ARGS...] (after build_aarch64.sh).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
cd "$REPO"
TESTS=(tests/engine/test_kernels.py tests/engine/test_quants.py tests/engine/test_nonfinite.py)
LOGS=$(mktemp -d)
JOBS=${LFM_QEMU_JOBS:-2}
run() {  # cpu level log
    LFM_KERNELS=$2 "$HERE/run_aarch64.sh" --cpu "$1" -- -P -m pytest -q -p no:cacheprovider \
        --import-mode=append -m "not reference" "${TESTS[@]}" "${EXTRA[@]}" >"$3" 2>&1
}
EXTRA=("$@")
runs=("max neon" "max dotprod" "max i8mm" "cortex-a72 ")
pids=() status=0
for i in "${!runs[@]}"; do
    read -r cpu level <<<"${runs[$i]}"
    run "$cpu" "$level" "$LOGS/$i.log" &
    pids+=($!)
    if [ ${#pids[@]} -ge "$JOBS" ] || [ "$i" -eq $((${#runs[@]} - 1)) ]; then
        for pid in "${pids[@]}"; do wait "$pid" || status=1; done
        pids=()
    fi
done
for i in "${!runs[@]}"; do
    read -r cpu level <<<"${runs[$i]}"
    echo "== aarch64 under qemu: cpu=$cpu LFM_KERNELS=${level:-(detected)}"
    tail -n 25 "$LOGS/$i.log"
done
rm -rf "$LOGS"
exit $status
