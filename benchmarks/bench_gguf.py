"""Prefill / decode speed and peak memory of liquidlfm next to llama.cpp (llama-cpp-python) on the same
GGUF files with the same thread count.

    python benchmarks/bench_gguf.py                       # LFM2-350M and LFM2.5-1.2B x Q4_0, Q4_K_M, Q8_0
    python benchmarks/bench_gguf.py --quick               # 350M, Q4_0, pp128 / tg32, one repetition
    python benchmarks/bench_gguf.py --models 350M --types q4_0 q8_0 --threads 2 --reps 3
    python benchmarks/bench_gguf.py --models 350M --types q4_0 --profile   # where our decode time goes

The models have the real shapes (docs/architecture.md §4) and random weights: an F16 GGUF is written directly with
numpy + the `gguf` package (LFM2 metadata, a synthetic 65 536-token byte-level BPE vocabulary so
llama.cpp loads it), then quantized with llama.cpp's own llama_model_quantize — so the files are what
llama.cpp itself makes (Q6_K token embedding in Q4_0 / Q4_K_M files, etc.). Files are cached in
--cache-dir. Random weights say nothing about quality; they are only for speed.

Each measurement runs in a fresh subprocess per engine (so peak RSS, VmHWM from /proc, is that
engine's alone). pp = prefill of N random tokens in one call; tg = N single-token decode steps after a
one-token prompt (llama-bench's definitions). The engines alternate, and the best of --reps runs is
kept, since the machine may be shared. ratio = liquidlfm / llama.cpp (higher is better for t/s).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

SHAPES = {
    # H, layers, attention layer indices, heads, kv heads, head dim, FFN width, vocab
    "350M": dict(name="LFM2-350M", H=1024, L=16, attn=(2, 5, 8, 10, 12, 14), nh=16, nkv=8, hd=64, F=4608, V=65536),
    "1.2B": dict(name="LFM2.5-1.2B", H=2048, L=16, attn=(2, 5, 8, 10, 12, 14), nh=32, nkv=8, hd=64, F=8192, V=65536),
}
TYPES = {"q4_0": "Q4_0", "q4_k_m": "Q4_K_M", "q8_0": "Q8_0", "q4_k_s": "Q4_K_S", "q5_k_m": "Q5_K_M",
         "q6_k": "Q6_K", "q5_0": "Q5_0", "q4_1": "Q4_1", "f16": "F16"}


# ---- model files ----

def _byte_alphabet():
    """GPT-2's printable stand-ins for the 256 bytes."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    chars, n = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + n)
            n += 1
    return [chars[b] for b in range(256)]


def _vocab(V):
    """V tokens: LFM2-style specials at 0..13, the 256 bytes, then byte pairs with their merges."""
    specials = ["<|pad|>", "<|startoftext|>", "<|endoftext|>", "<|fim_pre|>", "<|fim_mid|>", "<|fim_suf|>",
                "<|im_start|>", "<|im_end|>", "<|tool_list_start|>", "<|tool_list_end|>",
                "<|tool_call_start|>", "<|tool_call_end|>", "<|tool_response_start|>", "<|tool_response_end|>"]
    alpha = _byte_alphabet()
    tokens = specials + alpha
    types = [3] * len(specials) + [1] * 256
    merges = []
    for a in alpha:
        for b in alpha:
            if len(tokens) >= V:
                break
            tokens.append(a + b)
            types.append(1)
            merges.append(f"{a} {b}")
    return tokens[:V], types[:V], merges


def write_random_f16_gguf(path: Path, shape: dict, seed: int = 0) -> None:
    import gguf

    H, L, F, V, nh, nkv, hd = (shape[k] for k in ("H", "L", "F", "V", "nh", "nkv", "hd"))
    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path) + ".tmp", "lfm2")
    w.add_block_count(L)
    w.add_context_length(128000)
    w.add_embedding_length(H)
    w.add_feed_forward_length(F)
    w.add_head_count(nh)
    w.add_head_count_kv([nkv if i in shape["attn"] else 0 for i in range(L)])
    w.add_rope_freq_base(1e6)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_shortconv_l_cache(3)
    w.add_vocab_size(V)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    tokens, types, merges = _vocab(V)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("lfm2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(1)
    w.add_eos_token_id(7)
    w.add_pad_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)

    def mat(rows, cols):
        return (rng.standard_normal((rows, cols), dtype=np.float32) * 0.02).astype(np.float16)

    def norm(n):
        return (1 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    sys.path.insert(0, str(REPO))
    from liquidlfm.quantize import tensor_table

    dims = {"V": V, "H": H, "3H": 3 * H, "F": F, "nh*hd": nh * hd, "nkv*hd": nkv * hd, "hd": hd, "K": 3}
    for i in range(-1, L):  # -1: the global tensors; the head stays tied
        scopes = ("global",) if i < 0 else ("layer", "attn" if i in shape["attn"] else "conv")
        for row in tensor_table():
            if row["scope"] not in scopes or row["role"] == "head":
                continue
            dim = tuple(dims[d] for d in row["shape"])
            if row["role"] == "norm":
                data = norm(dim[0])
            elif row["role"] == "conv_kernel":
                data = (rng.standard_normal(dim) * 0.3).astype(np.float32)
            else:
                data = mat(*dim)
            w.add_tensor(row["gguf"] % i if i >= 0 else row["gguf"], data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(str(path) + ".tmp", path)


def llama_quantize(src: Path, dst: Path, type_name: str, n_threads: int) -> None:
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, "LLAMA_FTYPE_MOSTLY_" + type_name.upper())
    params.nthread = n_threads
    rc = llama_cpp.llama_model_quantize(os.fsencode(str(src)), os.fsencode(str(dst) + ".tmp"), llama_cpp.byref(params))
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize({src} -> {dst}, {type_name}) failed: {rc}")
    os.replace(str(dst) + ".tmp", dst)


def model_file(cache: Path, key: str, qtype: str, threads: int) -> Path:
    shape = SHAPES[key]
    cache.mkdir(parents=True, exist_ok=True)
    f16 = cache / f"{shape['name']}-random-F16.gguf"
    if not f16.exists():
        t = time.time()
        print(f"# writing {f16.name} ...", file=sys.stderr, flush=True)
        write_random_f16_gguf(f16, shape)
        print(f"#   {time.time() - t:.0f} s", file=sys.stderr, flush=True)
    if qtype == "f16":
        return f16
    out = cache / f"{shape['name']}-random-{TYPES[qtype]}.gguf"
    if not out.exists():
        print(f"# llama_model_quantize -> {out.name} ...", file=sys.stderr, flush=True)
        llama_quantize(f16, out, qtype, threads)
    return out


# ---- workers (one engine per process) ----

def _peak_rss_mib() -> float:
    """VmHWM of this process (getrusage's ru_maxrss would carry over the parent's peak across exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _tokens(n, V, seed=1):
    return [int(t) for t in np.random.default_rng(seed).integers(300, V, size=n)]


def worker_liquidlfm(path, threads, pp, tg, n_ctx, profile):
    sys.path.insert(0, str(REPO))
    import liquidlfm as lfm
    from liquidlfm import _core

    t0 = time.perf_counter()
    model = lfm.load(path, n_threads=threads)
    load_s = time.perf_counter() - t0
    V = model.config.n_vocab
    res = {"load_s": load_s, "kernels": _core._quant_kernels()}
    with model.session(n_ctx=n_ctx) as s:
        s.prefill(_tokens(8, V, 9))  # warm-up: page in the weights
        s.reset()
        if pp:
            ids = _tokens(pp, V)
            t = time.perf_counter()
            s.prefill(ids)
            res["pp"] = pp / (time.perf_counter() - t)
            s.reset()
        if tg:
            toks = _tokens(tg, V, 2)
            s.prefill([1])
            if profile:
                _core._profile_enable(True)
                _core._profile_get(reset=True)
            t = time.perf_counter()
            for tok in toks:
                s.step(tok)
            dt = time.perf_counter() - t
            res["tg"] = tg / dt
            if profile:
                res["profile"] = {"total_s": dt, "steps": tg, "matmuls": _core._profile_get(reset=True)}
                _core._profile_enable(False)
    model.close()
    res["rss_mib"] = _peak_rss_mib()
    return res


def worker_llama(path, threads, pp, tg, n_ctx, profile):
    import llama_cpp

    t0 = time.perf_counter()
    llm = llama_cpp.Llama(model_path=path, n_ctx=n_ctx, n_batch=512, n_ubatch=512, n_threads=threads,
                          n_threads_batch=threads, verbose=False)
    load_s = time.perf_counter() - t0
    V = llm.n_vocab()
    res = {"load_s": load_s}
    llm.eval(_tokens(8, V, 9))  # warm-up
    llm.reset()
    if pp:
        ids = _tokens(pp, V)
        t = time.perf_counter()
        llm.eval(ids)
        res["pp"] = pp / (time.perf_counter() - t)
        llm.reset()
    if tg:
        toks = _tokens(tg, V, 2)
        llm.eval([1])
        t = time.perf_counter()
        for tok in toks:
            llm.eval([tok])
        res["tg"] = tg / (time.perf_counter() - t)
    llm.close() if hasattr(llm, "close") else None
    res["rss_mib"] = _peak_rss_mib()
    return res


def run_worker(engine, path, threads, pp, tg, n_ctx, profile=False, timeout=1800):
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", engine, "--model-path", str(path),
           "--threads", str(threads), "--pp", str(pp), "--tg", str(tg), "--n-ctx", str(n_ctx)]
    if profile:
        cmd.append("--profile")
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or ["failed"])[-1][:200]}
    return json.loads(p.stdout.strip().splitlines()[-1])


# ---- report ----

def _role(name):
    parts = name.split(".")
    return ".".join(parts[2:-1]) if name.startswith("blk.") else ".".join(parts[:-1]) or name


def print_profile(label, prof):
    total = prof["total_s"]
    steps = prof["steps"]
    by_role = {}
    for name, calls, rows, sec in prof["matmuls"]:
        r = by_role.setdefault(_role(name), [0, 0.0])
        r[0] += calls
        r[1] += sec
    mm = sum(v[1] for v in by_role.values())
    print(f"\n#### decode profile: {label} ({steps} steps, {1e3 * total / steps:.2f} ms/token)\n")
    print("| op | ms/token | share |")
    print("|---|---|---|")
    for role, (calls, sec) in sorted(by_role.items(), key=lambda kv: -kv[1][1]):
        print(f"| matmul {role} ({calls // steps}/token) | {1e3 * sec / steps:.2f} | {100 * sec / total:.1f}% |")
    rest = total - mm
    print(f"| everything else (attention, conv, norms, RoPE, SwiGLU, embedding, Python) | {1e3 * rest / steps:.2f} | "
          f"{100 * rest / total:.1f}% |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["350M", "1.2B"], choices=sorted(SHAPES))
    ap.add_argument("--types", nargs="+", default=["q4_0", "q4_k_m", "q8_0"], choices=sorted(TYPES))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pp", type=int, default=512)
    ap.add_argument("--tg", type=int, default=128)
    ap.add_argument("--n-ctx", type=int, default=1024)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="350M, Q4_0, pp128/tg32, one repetition")
    ap.add_argument("--profile", action="store_true", help="also split our decode time per weight matrix")
    ap.add_argument("--engines", nargs="+", default=["liquidlfm", "llama.cpp"], choices=["liquidlfm", "llama.cpp"])
    ap.add_argument("--cache-dir", type=Path, default=Path(os.environ.get("LIQUIDLFM_BENCH_CACHE",
                                                                          "/tmp/liquidlfm-bench-gguf")))
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    ap.add_argument("--worker", choices=["liquidlfm", "llama.cpp"], help=argparse.SUPPRESS)
    ap.add_argument("--model-path", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        fn = worker_liquidlfm if args.worker == "liquidlfm" else worker_llama
        print(json.dumps(fn(args.model_path, args.threads, args.pp, args.tg, args.n_ctx, args.profile)))
        return

    if args.quick:
        args.models, args.types, args.pp, args.tg, args.reps = ["350M"], ["q4_0"], 128, 32, 1
    args.n_ctx = max(args.n_ctx, args.pp + args.tg + 16)

    import llama_cpp

    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
               platform.processor()) if os.path.exists("/proc/cpuinfo") else platform.processor()
    print(f"CPU: {cpu}, {os.cpu_count()} logical cores; threads: {args.threads}; liquidlfm {commit}; "
          f"llama-cpp-python {llama_cpp.__version__}; best of {args.reps}; pp{args.pp} / tg{args.tg}, n_ctx {args.n_ctx}\n")

    results = []
    profiles = []
    for key in args.models:
        for qt in args.types:
            path = model_file(args.cache_dir, key, qt, args.threads)
            best = {e: {} for e in args.engines}
            for rep in range(args.reps):
                for e in (args.engines if rep % 2 == 0 else args.engines[::-1]):
                    r = run_worker(e, path, args.threads, args.pp, args.tg, args.n_ctx)
                    b = best[e]
                    if "error" in r:
                        b.setdefault("error", r["error"])
                        continue
                    for k in ("pp", "tg"):
                        if k in r:
                            b[k] = max(b.get(k, 0.0), r[k])
                    b["rss_mib"] = min(b.get("rss_mib", 1e18), r["rss_mib"])
            row = {"model": SHAPES[key]["name"], "type": TYPES[qt], "size_mib": path.stat().st_size / 2**20,
                   "results": best}
            results.append(row)
            if args.profile and "liquidlfm" in args.engines:
                r = run_worker("liquidlfm", path, args.threads, 0, args.tg, args.n_ctx, profile=True)
                if "profile" in r:
                    profiles.append((f"{row['model']} {row['type']}", r["profile"]))
            print(f"# done {row['model']} {row['type']}: {json.dumps(best)}", file=sys.stderr, flush=True)

    ours, ref = "liquidlfm", "llama.cpp"
    print("| model | type | MiB | test | liquidlfm t/s | llama.cpp t/s | ratio | liquidlfm peak RSS MiB | llama.cpp peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in results:
        a, b = row["results"].get(ours, {}), row["results"].get(ref, {})
        for test, n in (("pp", args.pp), ("tg", args.tg)):
            va, vb = a.get(test), b.get(test)
            ratio = f"{va / vb:.2f}" if va and vb else "-"
            fa = f"{va:.1f}" if va else a.get("error", "-")
            fb = f"{vb:.1f}" if vb else b.get("error", "-")
            ra = f"{a['rss_mib']:.0f}" if "rss_mib" in a else "-"
            rb = f"{b['rss_mib']:.0f}" if "rss_mib" in b else "-"
            print(f"| {row['model']} | {row['type']} | {row['size_mib']:.0f} | {test}{n} | {fa} | {fb} | {ratio} | {ra} | {rb} |")
    for label, prof in profiles:
        print_profile(label, prof)
    if args.json:
        args.json.write_text(json.dumps({"results": results, "profiles": profiles}, indent=1))


if __name__ == "__main__":
    main()
