"""Float matmul speed: the engine's blocked GEMM against OpenBLAS's sgemm, per weight shape, batch
size (tokens) and weight type. This is the measurement behind the batch size from which float
weights go to OpenBLAS (LFM_BLAS=auto; README, "OpenBLAS").

    python benchmarks/bench_blas.py                       # LFM2-350M and LFM2.5-1.2B shapes, F32/F16/BF16, all cores
    python benchmarks/bench_blas.py --dtypes f32 --batches 8 16 32 64 --threads 2 --json out.json
    python benchmarks/bench_blas.py --own-threads         # also: one sgemm call on OpenBLAS's own threads

Both sides run through the engine's matmul (liquidlfm._core._float_matmul) on one thread pool of
--threads workers: "ours" is the kernel table's GEMM, "OpenBLAS" is sgemm called by every worker on
its blocks of rows with OpenBLAS single-threaded (F16/BF16 blocks converted to F32 first), exactly
what a prefill runs. --own-threads adds the alternative the engine does not use: one sgemm call for
the whole matrix on OpenBLAS's own thread pool (F32 only, through ctypes).

GFLOP/s = 2*T*R*K / seconds, best of --repeat runs of about --seconds each (the best, because other
processes on a shared machine only ever slow a run down). Needs scipy-openblas32 (pip install
scipy-openblas32, or liquidlfm[blas]).
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

# (model, matrix, rows R, row length K): the matmul weights of the two shapes bench_engine.py runs
SHAPES = [
    ("test", "H 256 (the GGUF tests' model)", 256, 256),
    ("test", "ffn w1/w3, 768 x 256", 768, 256),
    ("350M", "attn q/out, H x H", 1024, 1024),
    ("350M", "conv in_proj, 3H x H", 3072, 1024),
    ("350M", "ffn w1/w3, F x H", 4608, 1024),
    ("350M", "ffn w2, H x F", 1024, 4608),
    ("1.2B", "attn k/v, kv x H", 512, 2048),
    ("1.2B", "attn q/out, H x H", 2048, 2048),
    ("1.2B", "ffn w1/w3, F x H", 8192, 2048),
    ("1.2B", "ffn w2, H x F", 2048, 8192),
]
BATCHES = [1, 4, 8, 16, 24, 32, 48, 64, 128, 512]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def commit() -> str:
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              timeout=10).stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def weights(R, K, dtype, rng):
    w = (rng.standard_normal((R, K)) * 0.02).astype(np.float32)
    if dtype == "f32":
        return w
    if dtype == "f16":
        return w.astype(np.float16).view(np.uint16)
    return (w.view(np.uint32) >> 16).astype(np.uint16)  # bf16 by truncation: speed does not care


def timed(fns, seconds, repeat):
    """Best seconds per call of each fn(iters) -> seconds per call, over `repeat` runs of about
    `seconds` each. The functions take turns, so a slow spell of the machine hits all of them."""
    iters = [max(1, int(seconds / max(fn(1), 1e-6))) for fn in fns]  # warm-up, and one call's time
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            best[i] = min(best[i], fn(iters[i]))
    return best


class OwnThreads:
    """One scipy_cblas_sgemm call on OpenBLAS's own thread pool (the design the engine rejected)."""

    def __init__(self, path):
        self.lib = ctypes.CDLL(path)
        f = self.lib.scipy_cblas_sgemm
        i, P = ctypes.c_int, ctypes.c_void_p
        f.argtypes = [i, i, i, i, i, i, ctypes.c_float, P, i, P, i, ctypes.c_float, P, i]
        f.restype = None
        self.sgemm = f
        self.set_threads = self.lib.scipy_openblas_set_num_threads
        self.set_threads.argtypes = [i]

    def run(self, W, X, n_threads, iters):
        T, K = X.shape
        R = W.shape[0]
        Y = np.empty((T, R), np.float32)
        self.set_threads(n_threads)
        try:
            t0 = time.perf_counter()
            for _ in range(iters):
                self.sgemm(101, 111, 112, T, R, K, 1.0, X.ctypes.data, K, W.ctypes.data, K, 0.0, Y.ctypes.data, R)
            return (time.perf_counter() - t0) / iters
        finally:
            self.set_threads(1)  # what the engine set at load


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dtypes", nargs="+", default=["f32", "f16", "bf16"], choices=["f32", "f16", "bf16"])
    ap.add_argument("--models", nargs="+", default=["350M", "1.2B"], choices=["test", "350M", "1.2B"])
    ap.add_argument("--batches", nargs="+", type=int, default=BATCHES)
    ap.add_argument("--threads", type=int, default=0, help="pool size (default: all usable cores)")
    ap.add_argument("--seconds", type=float, default=0.15, help="time per run")
    ap.add_argument("--repeat", type=int, default=3, help="runs per cell (best is reported)")
    ap.add_argument("--own-threads", action="store_true", help="also time OpenBLAS on its own threads (F32)")
    ap.add_argument("--cpu-time", action="store_true",
                    help="time by the CPU the calling thread used instead of wall time (with --threads 1: less "
                         "sensitive to other processes on a busy machine)")
    ap.add_argument("--json", default=None, help="write the rows as JSON here")
    args = ap.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    import liquidlfm
    from liquidlfm import _blas, _core

    path = _blas.library_path()
    if path is None:
        sys.exit("scipy-openblas32 is not installed: pip install scipy-openblas32 (or liquidlfm[blas])")
    info = _core.blas_load(path)
    n_threads = args.threads or _core.cpu_features()["usable_cores"]
    if args.cpu_time and n_threads != 1:
        sys.exit("--cpu-time measures the calling thread only: use it with --threads 1")
    if args.cpu_time and args.own_threads:
        sys.exit("--own-threads runs on OpenBLAS's threads, which --cpu-time cannot see")
    own = OwnThreads(path) if args.own_threads else None

    print(f"CPU: {cpu_name()}, {n_threads} thread(s); liquidlfm {commit()} float kernels {liquidlfm.float_kernels}; "
          f"{info}; timed by {'thread CPU time' if args.cpu_time else 'wall time'}")
    head = "| model | matrix | R x K | type | T | ours GFLOP/s | OpenBLAS GFLOP/s | OpenBLAS / ours |"
    if own:
        head += " OpenBLAS own threads |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    rows = []
    rng = np.random.default_rng(0)
    for model, what, R, K in SHAPES:
        if model not in args.models:
            continue
        for dtype in args.dtypes:
            W = weights(R, K, dtype, rng)
            for T in args.batches:
                X = rng.standard_normal((T, K)).astype(np.float32)
                flop = 2.0 * T * R * K

                def engine(mode):
                    return lambda iters: _core._float_matmul(W, X, dtype, n_threads=n_threads, blas=mode,
                                                             iters=iters)[2 if args.cpu_time else 1]

                ours, blas = timed([engine("off"), engine("on")], args.seconds, args.repeat)
                row = dict(model=model, matrix=what, R=R, K=K, dtype=dtype, T=T, threads=n_threads,
                           ours_gflops=flop / ours / 1e9, blas_gflops=flop / blas / 1e9)
                line = (f"| {model} | {what} | {R} x {K} | {dtype} | {T} | {row['ours_gflops']:.1f} | "
                        f"{row['blas_gflops']:.1f} | {ours / blas:.2f} |")
                if own:
                    if dtype == "f32":
                        t, = timed([lambda iters: own.run(W, X, n_threads, iters)], args.seconds, args.repeat)
                        row["blas_own_threads_gflops"] = flop / t / 1e9
                        line += f" {row['blas_own_threads_gflops']:.1f} |"
                    else:
                        line += " |"
                print(line, flush=True)
                rows.append(row)
    if args.json:
        Path(args.json).write_text(json.dumps(dict(cpu=cpu_name(), threads=n_threads, commit=commit(), blas=info,
                                                   timing="cpu" if args.cpu_time else "wall", rows=rows), indent=1))


if __name__ == "__main__":
    main()
