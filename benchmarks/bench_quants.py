"""Quantized matmul kernels in isolation: GB/s of weights streamed by the matvec (decode) and
GFLOP-equivalents of the prefill tiles, next to the machine's memory read bandwidth.

    python benchmarks/bench_quants.py [--rows 8192 --cols 2048] [--threads 1 2] [--types q4_0 q8_0 ...]
    python benchmarks/bench_quants.py --shapes 65536x1024 2048x1024 --types q4_K q6_K   # decode shapes

Weights are random valid blocks; the matrix is larger than the last-level cache by default so the
matvec numbers are DRAM-bound like real decode."""
import argparse
import sys
from pathlib import Path
import time

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf.constants import GGML_QUANT_SIZES

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from liquidlfm import _core  # noqa: E402

TYPES = {"q4_0": Q.Q4_0, "q4_1": Q.Q4_1, "q5_0": Q.Q5_0, "q5_1": Q.Q5_1, "q8_0": Q.Q8_0,
         "q4_K": Q.Q4_K, "q5_K": Q.Q5_K, "q6_K": Q.Q6_K, "q2_K": Q.Q2_K, "q3_K": Q.Q3_K}
HALF_FIELDS = {Q.Q4_0: [0], Q.Q4_1: [0, 2], Q.Q5_0: [0], Q.Q5_1: [0, 2], Q.Q8_0: [0], Q.Q2_K: [80, 82],
               Q.Q3_K: [108], Q.Q4_K: [0, 2], Q.Q5_K: [0, 2], Q.Q6_K: [208]}


def random_weights(qtype, rows, cols, rng):
    bs, ts = GGML_QUANT_SIZES[qtype]
    nb = rows * cols // bs
    raw = rng.integers(0, 256, size=(nb, ts), dtype=np.uint8)
    for off in HALF_FIELDS[qtype]:
        raw[:, off:off + 2] = (rng.standard_normal(nb) * 0.01).astype(np.float16).view(np.uint8).reshape(nb, 2)
    return raw.tobytes()


def read_bandwidth(nbytes=256 << 20, repeat=5):
    a = np.ones(nbytes // 8, dtype=np.int64)
    best = 1e9
    for _ in range(repeat):
        t = time.perf_counter()
        a.sum()
        best = min(best, time.perf_counter() - t)
    return nbytes / best / 1e9


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=8192)
    ap.add_argument("--cols", type=int, default=2048)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--shapes", nargs="+", metavar="ROWSxCOLS",
                    help="several matrix shapes, e.g. 65536x1024 (the tied head of LFM2-350M) 2048x1024")
    ap.add_argument("--types", nargs="+", default=["q4_0", "q8_0", "q4_K", "q5_K", "q6_K"])
    ap.add_argument("--prefill", type=int, default=0, help="also time T activation rows (e.g. 64)")
    ap.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"kernels: {_core._quant_kernels()}; numpy single-thread read bandwidth ~{read_bandwidth():.1f} GB/s")
    print("GB/s = weight bytes / time; 'cpu' uses the first thread's CPU time (robust when the machine is"
          " shared), 'wall' the elapsed time. x8 = rows repacked 8 at a time (LFM_LAYOUT_X8).\n")
    print("| type | layout | rows x cols | MB | threads | T | ms (wall) | GB/s wall | GB/s cpu | GMAC/s cpu |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes] if args.shapes else [(args.rows, args.cols)]
    for rows, cols in shapes:
        for name in args.types:
            qt = TYPES[name]
            w = random_weights(qt, rows, cols, rng)
            for x8 in [False] + ([True] if has_x8(qt, cols) else []):
                for T in [1] + ([args.prefill] if args.prefill else []):
                    x = rng.standard_normal((T, cols)).astype(np.float32)
                    for nth in args.threads:
                        one = _core._quant_bench(int(qt), w, rows, cols, x, 1, nth, x8)[0]
                        iters = max(1, int(args.seconds / max(one, 1e-6)))
                        runs = [_core._quant_bench(int(qt), w, rows, cols, x, iters, nth, x8) for _ in range(3)]
                        wall = min(r[0] for r in runs)
                        cpu = min(r[1] for r in runs)
                        print(f"| {name} | {'x8' if x8 else 'rows'} | {rows}x{cols} | {len(w) / 1e6:.1f} | {nth} | "
                              f"{T} | {wall * 1e3:.3f} | {len(w) / wall / 1e9:.1f} | {len(w) / cpu / 1e9:.1f} | "
                              f"{rows * cols * T / cpu / 1e9:.1f} |", flush=True)


def has_x8(qtype, cols):
    """Whether this build and CPU have an X8 kernel for qtype (the kernel says no with ValueError)."""
    bs, ts = GGML_QUANT_SIZES[qtype]
    try:
        _core._quant_matmul(int(qtype), bytes(8 * ts), 8, bs, np.zeros(bs, np.float32), x8=True)
        return True
    except ValueError:
        return False

if __name__ == "__main__":
    main()
