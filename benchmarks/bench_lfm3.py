"""Prefill / decode speed and peak memory of an LFM3-1.7B-shaped random model: liquidlfm against
transformers' Lfm3ForCausalLM on the CPU.

    nice -n 10 python benchmarks/bench_lfm3.py                      # pp 64, tg 16, 2 threads, BF16 + Q4_K_M
    nice -n 10 python benchmarks/bench_lfm3.py --pp 128 --tg 32 --threads 1 2 --skip-hf

The shape is transformers 5.25's Lfm3Config defaults (tests/fixtures/hf_models.LFM3_17B_SHAPE: 24
layers in its conv / sliding / full pattern, H 2048, 16 heads of 128, 4 KV heads, FFN 7680, window
256, vocabulary 128000, tied head). The checkpoint is written with NumPy as benchmarks/bench_engine.py
writes its LFM2 ones (a tiled block of random values, norms 1; ~3.4 GB in BF16) into --model-dir and
reused. Each measurement runs in a fresh process, so its peak RSS (VmHWM) is that configuration's
alone. transformers runs in the checkpoint's dtype with its default (sdpa) attention and its own
cache, greedy, through generate(). Random weights: speed only, nothing about quality.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_engine import CHILD, fmt, write_random_safetensors  # noqa: E402  (the liquidlfm child process and the ± format)

# the same child, with the weights quantized on load (argv[7]: a file type, "" for none)
assert "m = lfm.load(path, blas=blas)" in CHILD
Q_CHILD = CHILD.replace("m = lfm.load(path, blas=blas)", "m = lfm.load(path, blas=blas, quantize=sys.argv[7] or None)")

HF_CHILD = r"""
import json, sys, time
import torch
from transformers import Lfm3ForCausalLM
path, threads, pp, tg, dtype = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
torch.set_num_threads(threads)
t0 = time.perf_counter()
m = Lfm3ForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype)).eval()
load_s = time.perf_counter() - t0
g = torch.Generator().manual_seed(0)
ids = torch.randint(0, m.config.vocab_size, (1, pp), generator=g)
with torch.no_grad():
    t0, c0 = time.perf_counter(), time.process_time()
    out = m(ids, use_cache=True)
    pp_s, pp_c = time.perf_counter() - t0, time.process_time() - c0
    cache, tok = out.past_key_values, out.logits[:, -1:].argmax(-1)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(tg):
        out = m(tok, cache=cache, use_cache=True)
        cache, tok = out.past_key_values, out.logits[:, -1:].argmax(-1)
    tg_s, tg_c = time.perf_counter() - t0, time.process_time() - c0
hwm = 0
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        hwm = int(line.split()[1]) / 1024
print(json.dumps(dict(load_s=load_s, pp=[pp / pp_s], tg=[tg / tg_s], pp_cpu=[pp / pp_c], tg_cpu=[tg / tg_c], rss_mib=hwm,
                      kernels="torch " + torch.__version__, blas="-")))
"""


def lfm3_config() -> dict:
    from tests.fixtures.hf_models import LFM3_17B_SHAPE

    s = dict(LFM3_17B_SHAPE)
    L = s["num_hidden_layers"]
    return dict(architectures=["Lfm3ForCausalLM"], model_type="lfm3", **s,
                layer_types=["full_attention" if i % 4 == 2 else "sliding_attention" if i % 4 == 0 and i > 0 else "conv"
                             for i in range(L)],
                rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                                 "full_attention": {"rope_type": "proportional", "rope_theta": 1e6,
                                                    "partial_rotary_factor": 0.5}},
                conv_L_cache=7, conv_bias=False, use_sandwich_norm=True, use_attention_gate=True, attention_bias=False,
                norm_eps=1e-5, tie_word_embeddings=True, max_position_embeddings=128000, bos_token_id=1, eos_token_id=7,
                pad_token_id=0)


def tensor_specs(cfg: dict):
    """(HF name, PyTorch shape, tensor-table row) of every weight, from the engine's tensor table."""
    from liquidlfm.quantize import layer_scopes, tensor_table

    H, hd, nh = cfg["hidden_size"], cfg["head_dim"], cfg["num_attention_heads"]
    dims = {"V": cfg["vocab_size"], "H": H, "3H": 3 * H, "F": cfg["intermediate_size"], "nh*hd": nh * hd,
            "nkv*hd": cfg["num_key_value_heads"] * hd, "hd": hd, "K": cfg["conv_L_cache"], "nh": nh}
    qcfg = dict(layer_types=cfg["layer_types"], attn_gate=True, sandwich_norm=True)
    out = []
    for layer in range(-1, cfg["num_hidden_layers"]):
        for row in tensor_table():
            if row["scope"] in layer_scopes(qcfg, layer) and row["role"] != "head":  # tied head
                shape = tuple(dims[d] for d in row["shape"])
                if row["role"] == "conv_kernel":
                    shape = (shape[0], 1, shape[1])  # as PyTorch saves it
                name = row["hf_lfm3"]
                out.append((name % layer if layer >= 0 else name, shape, row))
    return out


def make_model(dest: Path) -> Path:
    """config.json + model.safetensors (BF16) of a random LFM3-1.7B-shaped model (skip if present)."""
    dest.mkdir(parents=True, exist_ok=True)
    st = dest / "model.safetensors"
    cfg = lfm3_config()
    if st.is_file() and (dest / "config.json").is_file():
        return dest
    return write_random_safetensors(dest, cfg, tensor_specs(cfg), "bf16")


def run(child: str, *args) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-c", child, *map(str, args)], capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-3000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", nargs="+", type=int, default=[2])
    ap.add_argument("--pp", type=int, default=64)
    ap.add_argument("--tg", type=int, default=16)
    ap.add_argument("--skip-hf", action="store_true", help="liquidlfm only")
    ap.add_argument("--quantize", nargs="*", default=["q4_k_m"],
                    help="also run liquidlfm with the weights quantized on load to these file types")
    ap.add_argument("--model-dir", default=os.environ.get("LIQUIDLFM_BENCH_DIR", "/tmp/liquidlfm-bench"))
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    path = make_model(Path(a.model_dir) / "lfm3-1.7b-bf16")
    print(f"<!-- model {path} ready in {time.perf_counter() - t0:.0f} s -->", file=sys.stderr)
    print(f"LFM3-1.7B shape, BF16 checkpoint, random weights (speed only); pp={a.pp} tg={a.tg}\n")
    print(f"| engine | threads | pp{a.pp} t/s | tg{a.tg} t/s | pp t/CPU-s | tg t/CPU-s | peak RSS MiB | load s |")
    print("|---|---|---|---|---|---|---|---|")
    for th in a.threads:
        rows = [("liquidlfm (bf16)", run(CHILD, path, th, a.pp, a.tg, 1, "auto"))]
        rows += [(f"liquidlfm ({q}, quantized on load)", run(Q_CHILD, path, th, a.pp, a.tg, 1, "auto", q)) for q in a.quantize]
        if not a.skip_hf:
            rows.append(("transformers (bf16)", run(HF_CHILD, path, th, a.pp, a.tg, "bfloat16")))
        for name, r in rows:
            print(f"| {name} | {th} | {fmt(r['pp'])} | {fmt(r['tg'])} | {np.mean(r['pp_cpu']):.1f} | {np.mean(r['tg_cpu']):.1f} | "
                  f"{r['rss_mib']:.0f} | {r['load_s']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
