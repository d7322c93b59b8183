"""Prefill / decode speed and peak memory of the C engine on random-weight models of real LFM2 shapes.

    python benchmarks/bench_engine.py                 # LFM2-350M and LFM2.5-1.2B, F32 + BF16, 1 and 2 threads
    python benchmarks/bench_engine.py --quick         # fewer tokens, 350M shape only
    python benchmarks/bench_engine.py --models 350M --dtypes bf16 --threads 2 --pp 256 --tg 64 --json out.json
    python benchmarks/bench_engine.py --blas off auto  # prefill with and without OpenBLAS (README, "OpenBLAS")

The checkpoints are written directly as safetensors with NumPy (no torch init; the weights are a
tiled block of random values, which is all a speed measurement needs) into --model-dir and reused.
Each measurement runs in a fresh process so peak RSS (VmHWM: weights touched via mmap + KV cache +
scratch) belongs to that configuration alone. "t/CPU-s" divides by the process's CPU time (all threads)
instead of wall time: on a shared, oversubscribed machine it shows what the code does per core-second.
Random weights: these numbers say nothing about quality.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

SHAPES = {
    # docs/architecture.md §4
    "350M": dict(name="LFM2-350M", hidden_size=1024, num_hidden_layers=16, num_attention_heads=16,
                 num_key_value_heads=8, block_ff_dim=6656, attn=(2, 5, 8, 10, 12, 14)),
    "1.2B": dict(name="LFM2.5-1.2B", hidden_size=2048, num_hidden_layers=16, num_attention_heads=32,
                 num_key_value_heads=8, block_ff_dim=12288, attn=(2, 5, 8, 10, 12, 14)),
}
VOCAB = 65536


def ffn_width(ff, multiple_of=256):
    f = int(2 * ff / 3)
    return multiple_of * ((f + multiple_of - 1) // multiple_of)


def tensor_specs(s):
    """(HF name, PyTorch shape, tensor-table row) of every weight, from the engine's tensor table."""
    sys.path.insert(0, str(ROOT))
    from liquidlfm.quantize import tensor_table

    H, L = s["hidden_size"], s["num_hidden_layers"]
    hd = H // s["num_attention_heads"]
    dims = {"V": VOCAB, "H": H, "3H": 3 * H, "F": ffn_width(s["block_ff_dim"]), "nh*hd": s["num_attention_heads"] * hd,
            "nkv*hd": s["num_key_value_heads"] * hd, "hd": hd, "K": 3}
    out = []
    for l in range(-1, L):
        scopes = ("global",) if l < 0 else ("layer", "attn" if l in s["attn"] else "conv")
        for row in tensor_table():
            if row["scope"] in scopes and row["role"] != "head":  # tied head
                shape = tuple(dims[d] for d in row["shape"])
                if row["role"] == "conv_kernel":
                    shape = (shape[0], 1, shape[1])  # as PyTorch saves it
                out.append((row["hf"] % l if l >= 0 else row["hf"], shape, row))
    return out


def write_random_safetensors(dest: Path, cfg: dict, specs, dtype: str) -> Path:
    """config.json + model.safetensors (F32 or BF16) holding specs' tensors [(name, shape, table row)]:
    norms 1, conv taps 0.3, the rest a tiled block of random values shifted per tensor (all a speed
    measurement needs, and no torch init). Written to a temporary file first."""
    st = dest / "model.safetensors"
    esize = 4 if dtype == "f32" else 2
    header, off = {}, 0
    for name, shape, _ in specs:
        n = int(np.prod(shape)) * esize
        header[name] = dict(dtype="F32" if dtype == "f32" else "BF16", shape=list(shape), data_offsets=[off, off + n])
        off += n
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    rng = np.random.default_rng(0)
    block = (rng.standard_normal(1 << 20) * 0.02).astype(np.float32)
    if dtype == "bf16":
        block = (block.view(np.uint32) >> 16).astype(np.uint16)
    tmp = st.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for name, shape, row in specs:
            n = int(np.prod(shape))
            if row["want_f32"]:  # norms, conv kernel
                v = np.ones(n, np.float32) if row["role"] == "norm" else np.full(n, 0.3, np.float32)
                f.write((v if dtype == "f32" else (v.view(np.uint32) >> 16).astype(np.uint16)).tobytes())
                continue
            start = 0
            while n > 0:  # tiled random block, shifted per tensor
                k = min(n, block.size - start)
                f.write(block[start:start + k].tobytes())
                n -= k
                start = (start + 9973) % (block.size // 2)
    os.replace(tmp, st)
    (dest / "config.json").write_text(json.dumps(cfg, indent=1))
    return dest


def make_model(dest: Path, key: str, dtype: str) -> Path:
    """Write config.json + model.safetensors for a random model of shape `key` (skip if present)."""
    s = SHAPES[key]
    dest.mkdir(parents=True, exist_ok=True)
    st = dest / "model.safetensors"
    if st.is_file() and (dest / "config.json").is_file():
        return dest
    cfg = dict(architectures=["Lfm2ForCausalLM"], model_type="lfm2", vocab_size=VOCAB, hidden_size=s["hidden_size"],
               num_hidden_layers=s["num_hidden_layers"], num_attention_heads=s["num_attention_heads"],
               num_key_value_heads=s["num_key_value_heads"], block_ff_dim=s["block_ff_dim"],
               block_auto_adjust_ff_dim=True, block_ffn_dim_multiplier=1.0, block_multiple_of=256,
               layer_types=["full_attention" if l in s["attn"] else "conv" for l in range(s["num_hidden_layers"])],
               norm_eps=1e-5, conv_L_cache=3, rope_theta=1e6, tie_word_embeddings=True,
               max_position_embeddings=128000, bos_token_id=1, eos_token_id=7, pad_token_id=0)
    return write_random_safetensors(dest, cfg, tensor_specs(s), dtype)


CHILD = r"""
import json, sys, time
import numpy as np
import liquidlfm as lfm
path, threads, pp, tg, reps, blas = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
t0 = time.perf_counter()
m = lfm.load(path, blas=blas)
load_s = time.perf_counter() - t0
rng = np.random.default_rng(0)
prompt = [int(x) for x in rng.integers(0, m.config.n_vocab, pp)]
pp_rates, tg_rates, pp_cpu, tg_cpu = [], [], [], []
with m.session(n_ctx=pp + tg + 8, n_threads=threads, n_batch=pp) as s:
    kernels = s._ctx.kernels
    blas_use = s.blas or "off"
    for r in range(reps):
        s.reset()
        t0, c0 = time.perf_counter(), time.process_time()
        logits = s.prefill(prompt)
        pp_rates.append(pp / (time.perf_counter() - t0)); pp_cpu.append(pp / (time.process_time() - c0))
        tok = int(np.argmax(logits))
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(tg):
            tok = int(np.argmax(s.step(tok)))
        tg_rates.append(tg / (time.perf_counter() - t0)); tg_cpu.append(tg / (time.process_time() - c0))
hwm = 0
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        hwm = int(line.split()[1]) / 1024
print(json.dumps(dict(load_s=load_s, pp=pp_rates, tg=tg_rates, pp_cpu=pp_cpu, tg_cpu=tg_cpu, rss_mib=hwm, kernels=kernels,
                 blas=blas_use)))
"""


def run_one(path, threads, pp, tg, reps, blas="auto"):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-c", CHILD, str(path), str(threads), str(pp), str(tg), str(reps), blas],
                         capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise RuntimeError(res.stderr)
    return json.loads(res.stdout.strip().splitlines()[-1])


def fmt(rates):
    a = np.array(rates)
    return f"{a.mean():.1f} ± {a.std():.1f}" if len(a) > 1 else f"{a.mean():.1f}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=None, choices=sorted(SHAPES))
    ap.add_argument("--dtypes", nargs="+", default=["f32", "bf16"], choices=["f32", "bf16"])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--pp", type=int, default=None, help="prompt tokens (default 128, quick 32)")
    ap.add_argument("--tg", type=int, default=None, help="generated tokens (default 32, quick 8)")
    ap.add_argument("--reps", type=int, default=None, help="repetitions (default 3, quick 1)")
    ap.add_argument("--blas", nargs="+", default=["auto"], choices=["auto", "on", "off"],
                    help="OpenBLAS modes to run (load(blas=...)); the blas column says what each session used")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--model-dir", default=os.environ.get("LIQUIDLFM_BENCH_DIR", "/tmp/liquidlfm-bench"))
    ap.add_argument("--json", help="also write the rows here")
    a = ap.parse_args(argv)
    models = a.models or (["350M"] if a.quick else ["350M", "1.2B"])
    pp = a.pp or (32 if a.quick else 128)
    tg = a.tg or (8 if a.quick else 32)
    reps = a.reps or (1 if a.quick else 3)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"CPU: {cpu} ({os.cpu_count()} logical cores); commit {commit}; pp={pp} tg={tg} reps={reps}")
    print("Random weights (speed only).\n")
    rows = []
    print(f"| model | weights | threads | kernels | blas | pp{pp} t/s | tg{tg} t/s | pp t/CPU-s | tg t/CPU-s | peak RSS MiB | load s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for key in models:
        for dt in a.dtypes:
            t0 = time.perf_counter()
            path = make_model(Path(a.model_dir) / f"{key}-{dt}", key, dt)
            made = time.perf_counter() - t0
            if made > 1:
                print(f"<!-- wrote {path} in {made:.0f} s -->", file=sys.stderr)
            for th in a.threads:
                for blas in a.blas:
                    r = run_one(path, th, pp, tg, reps, blas)
                    rows.append(dict(model=SHAPES[key]["name"], dtype=dt, threads=th, **r))
                    print(f"| {SHAPES[key]['name']} | {dt.upper()} | {th} | {r['kernels']} | {r['blas']} | {fmt(r['pp'])} | "
                          f"{fmt(r['tg'])} | {np.mean(r['pp_cpu']):.1f} | {np.mean(r['tg_cpu']):.1f} | {r['rss_mib']:.0f} | "
                          f"{r['load_s']:.2f} |", flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
