"""Decode throughput with many sequences in one context: tokens/s over all sequences when 1, 2, 4, 8
and 16 sequences each take one token per step, all in one forward pass (_core.Ctx.decode_seqs).

    python benchmarks/bench_batch.py                         # LFM2-350M Q4_0, 1 2 4 8 16 sequences
    python benchmarks/bench_batch.py --models 350M 1.2B --types q4_0 q4_k_m --seqs 1 8 --steps 128

The model files are bench_gguf.py's (real shapes, random weights, quantized by llama.cpp's own
quantizer; cached in --cache-dir, shared with bench_gguf.py). Each row: one context of n_seq
sequences (F16 KV cache by default, as llama-bench's), each sequence prefilled with its own
--prompt random tokens, then --steps timed steps of one random token per sequence, every sequence
asking for its logits row (so the copy of n_seq x n_vocab logits to NumPy is in the time, as in a
generation loop); the figure is the median over --reps repetitions of the timed steps, from
freshly prefilled sequences. "1 (decode)" is the single-sequence path (Ctx.decode) for reference.
Speed-up is against "1 (decode)".

--clock cpu times the steps by the process's CPU time instead of the wall clock: on a machine shared
with other jobs, tokens per CPU-second with --threads 1 do not depend on how often the process was
descheduled (with more threads it would count the pool's waiting too).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

import bench_gguf  # noqa: E402  (model files, CPU description)


def run_row(model, n_seq, prompt, steps, reps, kv_f16, threads, single_path=False, clock=time.perf_counter):
    """Median tokens/s (over all sequences) of `steps` decode steps, and the ms one step takes."""
    from liquidlfm import _core

    V = model.config["n_vocab"]
    rng = np.random.default_rng(n_seq)
    samples = []
    with _core.Ctx(model, n_ctx=prompt + steps, n_seq=n_seq, n_threads=threads, kv_f16=kv_f16) as c:
        for _ in range(reps + 1):  # the first repetition warms up (page faults of the KV rows, caches)
            for s in range(n_seq):
                c.seq_reset(s)
            prompts = rng.integers(0, V, (n_seq, prompt))
            if single_path:
                c.decode(prompts[0].tolist(), logits="none")
            else:
                c.decode_seqs([(s, prompts[s].tolist(), False) for s in range(n_seq)])
            toks = rng.integers(0, V, (steps, n_seq)).tolist()
            t = clock()
            if single_path:
                for row in toks:
                    c.decode(row)
            else:
                for row in toks:
                    c.decode_seqs([(s, [tok], True) for s, tok in enumerate(row)])
            samples.append(steps * n_seq / (clock() - t))
    ts = statistics.median(samples[1:])
    spread = (max(samples[1:]) - min(samples[1:])) / 2 / ts if reps > 1 else 0.0
    return ts, spread, 1000.0 * n_seq / ts


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["350M"], choices=sorted(bench_gguf.SHAPES))
    ap.add_argument("--types", nargs="+", default=["q4_0"], choices=sorted(bench_gguf.TYPES))
    ap.add_argument("--seqs", nargs="+", type=int, default=[1, 2, 4, 8, 16])
    ap.add_argument("--prompt", type=int, default=32, help="tokens prefilled in each sequence before timing")
    ap.add_argument("--steps", type=int, default=64, help="timed decode steps (one token per sequence each)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--kv", choices=["f16", "f32"], default="f16")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="time by the wall clock, or by this process's CPU time (see above)")
    ap.add_argument("--cache-dir", type=Path, default=Path(os.environ.get("LIQUIDLFM_BENCH_CACHE",
                                                                          "/tmp/liquidlfm-bench-gguf")))
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    args = ap.parse_args()
    if min(args.seqs) < 1 or args.steps < 1 or args.prompt < 1 or args.reps < 1:
        ap.error("--seqs, --steps, --prompt and --reps must be >= 1")

    from liquidlfm import _core

    cpu = bench_gguf.cpu_description()
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "?"
    print(f"# CPU: {cpu['name']} ({cpu['ident']}), {cpu['cores']} cores; kernels {_core._quant_kernels()} "
          f"(float {_core.kernels_default()}); threads {args.threads}; KV cache {args.kv.upper()}; "
          f"prompt {args.prompt} per sequence, {args.steps} steps, median of {args.reps}; "
          f"{'tokens per CPU-second' if args.clock == 'cpu' else 'wall clock'}; "
          f"load average {os.getloadavg()[0]:.1f}; liquidlfm {commit}")
    print()
    print("| model | type | sequences | t/s (all sequences) | t/s per sequence | ms per step | speed-up |")
    print("|---|---|---|---|---|---|---|")
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    results = []
    for key in args.models:
        for qtype in args.types:
            path = bench_gguf.model_file(args.cache_dir, key, qtype, args.threads)
            with _core.Model(str(path)) as model:
                rows = [("1 (decode)", 1, True)] + [(str(n), n, False) for n in args.seqs]
                base = None
                for label, n, single in rows:
                    ts, spread, ms = run_row(model, n, args.prompt, args.steps, args.reps, args.kv == "f16",
                                             args.threads, single_path=single, clock=clock)
                    base = base or ts
                    name, tname = bench_gguf.SHAPES[key]["name"], bench_gguf.TYPES[qtype]
                    print(f"| {name} | {tname} | {label} | {ts:.1f} ±{100 * spread:.0f}% | {ts / n:.1f} | "
                          f"{ms:.1f} | {ts / base:.2f} |", flush=True)
                    results.append({"model": name, "type": tname, "sequences": n, "single_path": single,
                                    "tokens_per_s": ts, "spread": spread, "ms_per_step": ms})
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu, "commit": commit, "args": {k: str(v) for k, v in vars(args).items()},
                                         "results": results}, indent=2))


if __name__ == "__main__":
    main()
