"""Prefill / decode speed of liquidlfm next to llama.cpp's own llama-bench on the same GGUF files with the
same thread count, decode against the machine's memory read bandwidth, and decode with a busy core.

    python benchmarks/bench_gguf.py                       # LFM2-350M and LFM2.5-1.2B x Q4_0, Q4_K_M, Q8_0
    python benchmarks/bench_gguf.py --quick               # 350M, Q4_0, pp128 / tg32, one repetition, one round
    python benchmarks/bench_gguf.py --llama-bench ~/llama.cpp/build/bin/llama-bench --rounds 5
    python benchmarks/bench_gguf.py --engines liquidlfm llama-bench llama-cpp-python
    python benchmarks/bench_gguf.py --models 350M --types q4_0 --profile   # where our prefill and decode time goes
    python benchmarks/bench_gguf.py --models 8B-A1B --types q4_0 q4_k_m    # LFM2-MoE (a 16.6 GB F16 file first)

Engines: liquidlfm; llama-bench (a llama.cpp build, ideally native: --llama-bench PATH, else
$LLAMA_BENCH, else llama-bench on PATH, else /opt/lfm-tools/llama-native/bin/llama-bench); and
llama-cpp-python (the pip wheel's llama.cpp). Default: liquidlfm and llama-bench when one is found,
else liquidlfm and llama-cpp-python.

The models have the real shapes (docs/architecture.md §4) and random weights: an F16 GGUF is written directly with
numpy + the `gguf` package (LFM2 metadata, or for LFM2-8B-A1B llama.cpp's lfm2moe metadata with the
experts stacked, the router and expert bias in F32 as its converter writes them; a synthetic 65
536-token byte-level BPE vocabulary so llama.cpp loads it), then quantized by llama.cpp's own quantizer (the llama-quantize next to
llama-bench, else llama-cpp-python's llama_model_quantize), so the files are what llama.cpp itself
makes (Q6_K token embedding in Q4_0 / Q4_K_M files, etc.). Files are cached in --cache-dir. Random
weights say nothing about quality; they are only for speed.

The tests are llama-bench's, run the same way in every engine (tools/llama-bench/llama-bench.cpp):
- ppN: N tokens (BOS, then random ids) from an empty context, in chunks of n_batch = n_ubatch = 512,
  logits of the last position only;
- tgN: N single-token steps from an empty context (BOS, then random ids), logits each step;
- each test in its own context of n_ctx = N with an F16 KV cache, after one untimed warm-up (the
  whole prompt for pp, one token for tg); then --reps timed repetitions from an empty context, and
  the engine's figure is their mean t/s (llama-bench's avg_ts);
- "tgN, busy core": tgN again while a third process keeps one core busy (a Python busy loop that
  this script starts and kills).
Each engine runs in its own process (so peak RSS, VmHWM, is that engine's alone); the engines
alternate in --rounds rounds and each figure is the median of the rounds, with ± half the range
between rounds, since the machine may be shared. ratio = liquidlfm / the other engine (higher is
better for t/s).

Decode is bound by memory reads, so the script also measures the read bandwidth of this machine
(benchmarks/read_bandwidth.c, compiled here with the system cc: --threads threads summing slices
of a buffer far larger than the last-level cache, best of several passes) and reports, for tg,
bytes of weights read per token x tokens/s as GB/s and as a share of that ceiling. Bytes per token
come from the GGUF's tensor sizes: every layer tensor, the output head (the token embedding when
tied) and one row of the token embedding; of a MoE layer's expert stacks, the share of the experts a
token uses (expert_used_count / expert_count), the bytes of the experts it is routed to. KV cache and
conv state reads are left out (under 1% at these lengths).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ENGINES = ("liquidlfm", "llama-bench", "llama-cpp-python")
LLAMA_BENCH_DEFAULT = Path("/opt/lfm-tools/llama-native/bin/llama-bench")

SHAPES = {
    # H, layers, attention layer indices, heads, kv heads, head dim, FFN width, vocab
    "350M": dict(name="LFM2-350M", H=1024, L=16, attn=(2, 5, 8, 10, 12, 14), nh=16, nkv=8, hd=64, F=4608, V=65536),
    "1.2B": dict(name="LFM2.5-1.2B", H=2048, L=16, attn=(2, 5, 8, 10, 12, 14), nh=32, nkv=8, hd=64, F=8192, V=65536),
    # LFM2-2.6B (and its fine-tunes such as LFM-CiteAgent-2.6B): 30 layers, FFN width as written (no auto-adjust)
    "2.6B": dict(name="LFM2-2.6B", H=2048, L=30, attn=(2, 5, 9, 13, 17, 21, 24, 27), nh=32, nkv=8, hd=64, F=10752,
                 V=65536),
    # LFM2-MoE: E experts of width FE, k per token, the first `dense` layers with a dense FFN of F
    "8B-A1B": dict(name="LFM2-8B-A1B", H=2048, L=24, attn=(2, 6, 10, 14, 18, 21), nh=32, nkv=8, hd=64, F=7168,
                   V=65536, E=32, k=4, FE=1792, dense=2),
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
    """The tensors are written one at a time (the 8B MoE's 16 GB never sit in memory)."""
    import gguf

    H, L, F, V, nh, nkv, hd = (shape[k] for k in ("H", "L", "F", "V", "nh", "nkv", "hd"))
    moe = "E" in shape
    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path) + ".tmp", "lfm2moe" if moe else "lfm2")
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
    if moe:
        w.add_expert_count(shape["E"])
        w.add_expert_used_count(shape["k"])
        w.add_expert_feed_forward_length(shape["FE"])
        w.add_leading_dense_block_count(shape["dense"])
        w.add_expert_gating_func(gguf.ExpertGatingFuncType.SIGMOID)
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

    def mat(*dims):
        return (rng.standard_normal(dims, dtype=np.float32) * 0.02).astype(np.float16)

    def norm(n):
        return (1 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    sys.path.insert(0, str(REPO))
    from liquidlfm.quantize import layer_scopes, tensor_table

    dims = {"V": V, "H": H, "3H": 3 * H, "F": F, "nh*hd": nh * hd, "nkv*hd": nkv * hd, "hd": hd, "K": 3,
            "E": shape.get("E", 0), "FE": shape.get("FE", 0)}
    cfg = dict(layer_types=["full_attention" if i in shape["attn"] else "conv" for i in range(L)], n_layer=L, moe=moe,
               n_layer_dense=shape.get("dense", L), expert_bias=moe)
    plan = []  # (name, shape, numpy dtype, make the data)
    for i in range(-1, L):  # -1: the global tensors; the head stays tied
        for row in tensor_table():
            if row["scope"] not in layer_scopes(cfg, i) or row["role"] == "head":
                continue
            dim = tuple(dims[d] for d in row["shape"])
            if row["role"] in ("norm", "bias"):  # a bias of the sigmoid scores' scale
                make = (lambda n=dim[0]: norm(n)) if row["role"] == "norm" else \
                    (lambda n=dim[0]: (0.05 * rng.standard_normal(n)).astype(np.float32))
            elif row["role"] == "conv_kernel":
                make = lambda d=dim: (rng.standard_normal(d) * 0.3).astype(np.float32)  # noqa: E731
            elif row["role"] == "router":  # F32, as llama.cpp's converter writes it
                make = lambda d=dim: rng.standard_normal(d, dtype=np.float32) * 0.02  # noqa: E731
            else:
                make = lambda d=dim: mat(*d)  # noqa: E731
            f32 = row["role"] in ("norm", "bias", "conv_kernel", "router")
            plan.append((row["gguf"] % i if i >= 0 else row["gguf"], dim, np.float32 if f32 else np.float16, make))
    for name, dim, dt, _ in plan:
        w.add_tensor_info(name, dim, np.dtype(dt), int(np.prod(dim)) * np.dtype(dt).itemsize)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for _, _, _, make in plan:
        w.write_tensor_data(make())
    w.close()
    os.replace(str(path) + ".tmp", path)


def llama_quantize(src: Path, dst: Path, type_name: str, n_threads: int, quantize_bin: str | None = None) -> None:
    tmp = Path(str(dst) + ".tmp")
    if quantize_bin:
        p = subprocess.run([quantize_bin, str(src), str(tmp), type_name.upper(), str(n_threads)],
                           capture_output=True, text=True)
        if p.returncode != 0:
            tail = (p.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"{quantize_bin} {src} -> {dst} ({type_name}) failed with status {p.returncode}: {tail}")
    else:
        import llama_cpp

        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = getattr(llama_cpp, "LLAMA_FTYPE_MOSTLY_" + type_name.upper())
        params.nthread = n_threads
        rc = llama_cpp.llama_model_quantize(os.fsencode(str(src)), os.fsencode(str(tmp)), llama_cpp.byref(params))
        if rc != 0:
            raise RuntimeError(f"llama_model_quantize({src} -> {dst}, {type_name}) failed: {rc}")
    os.replace(tmp, dst)


def model_file(cache: Path, key: str, qtype: str, threads: int, quantize_bin: str | None = None) -> Path:
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
        print(f"# {quantize_bin or 'llama_model_quantize'} -> {out.name} ...", file=sys.stderr, flush=True)
        llama_quantize(f16, out, qtype, threads, quantize_bin)
    return out


def decode_bytes_per_token(path: Path) -> int:
    """Bytes of weights one decode step reads: every tensor but the token embedding in full (layers,
    norms, an untied output head; of an expert stack the experts a token uses), the token embedding
    in full when it is also the (tied) head, and one row of it for the lookup."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    arch = str(bytes(reader.fields["general.architecture"].parts[-1]), "utf-8")
    share = 1.0
    if f"{arch}.expert_count" in reader.fields:
        share = int(reader.fields[f"{arch}.expert_used_count"].parts[-1][0]) / int(
            reader.fields[f"{arch}.expert_count"].parts[-1][0])
    tensors = {t.name: (int(t.n_bytes * (share if t.name.endswith("_exps.weight") else 1)), [int(d) for d in t.shape])
               for t in reader.tensors}
    del reader
    if "token_embd.weight" not in tensors:
        raise ValueError(f"{path}: no token_embd.weight tensor")
    embd_bytes, embd_shape = tensors.pop("token_embd.weight")
    n_rows = int(np.prod(embd_shape[1:]))  # GGUF shapes list the row length first
    tied = "output.weight" not in tensors
    return sum(b for b, _ in tensors.values()) + (embd_bytes if tied else 0) + embd_bytes // n_rows


# ---- the machine ----

ISA_X86 = ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx_vnni",
           "amx_tile", "amx_int8", "amx_bf16")
ISA_ARM = ("asimd", "asimdhp", "asimddp", "i8mm", "bf16", "sve", "sve2")


def _last_level_cache_bytes() -> int:
    best = 0
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        scale = {"K": 1024, "M": 1024**2, "G": 1024**3}.get(size[-1:], 1)
        best = max(best, int(size.rstrip("KMG")) * scale)
    return best


def cpu_description() -> dict:
    """CPU model, core count, last-level cache and which of the ISA extensions that matter here it has."""
    first = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip() not in first:
                    first[key.strip()] = value.strip()
    except OSError:
        pass
    name = first.get("model name") or first.get("Hardware") or platform.processor() or platform.machine()
    ident = ", ".join(f"{k} {first[k]}" for k in ("cpu family", "model", "stepping", "CPU implementer", "CPU part")
                      if k in first)
    flags = set((first.get("flags") or first.get("Features") or "").split())
    wanted = ISA_X86 if "flags" in first else ISA_ARM
    return {"name": name, "ident": ident, "cores": os.cpu_count(), "llc_bytes": _last_level_cache_bytes(),
            "isa": [f for f in wanted if f in flags], "isa_missing": [f for f in wanted if f not in flags]}


def read_bandwidth(threads: int, passes: int = 10, mib: int = 0) -> dict:
    """Best-pass read GB/s of benchmarks/read_bandwidth.c with `threads` threads; a dict with "error"
    when there is no C compiler or the program fails."""
    if mib <= 0:
        # 32x the last-level cache, at least 1 GiB, so at most a thirty-second of it can hit in cache
        mib = max(1024, 32 * _last_level_cache_bytes() // 2**20)
    cc = os.environ.get("CC", "cc")
    if not shutil.which(cc):
        return {"error": f"no C compiler ({cc}) to build read_bandwidth.c"}
    src = Path(__file__).resolve().with_name("read_bandwidth.c")
    with tempfile.TemporaryDirectory(prefix="lfm-bw-") as tmp:
        exe = Path(tmp) / "read_bandwidth"
        for cflags in (["-O2", "-march=native"], ["-O2"]):  # a compiler without -march=native gets the baseline ISA
            p = subprocess.run([cc, *cflags, "-pthread", str(src), "-o", str(exe)], capture_output=True, text=True)
            if p.returncode == 0:
                break
        else:
            return {"error": f"{cc} could not build {src.name}: {(p.stderr.strip().splitlines() or ['?'])[-1]}"}
        p = subprocess.run([str(exe), str(threads), str(mib), str(passes)], capture_output=True, text=True)
        if p.returncode != 0:
            return {"error": f"read_bandwidth failed: {(p.stderr.strip().splitlines() or ['?'])[-1]}"}
    res = json.loads(p.stdout)
    res["cflags"] = " ".join(cflags)
    return res


class BusyCore:
    """A third process that keeps one core busy while the block runs; started and killed here."""

    def __enter__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.2)  # let it reach the loop before the measured engine starts
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()


# ---- workers (one engine per process) ----

def _peak_rss_mib() -> float:
    """VmHWM of this process (getrusage's ru_maxrss would carry over the parent's peak across exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _timed_samples(run, n_tokens, reps, reset):
    """t/s of `reps` runs of run(), each from an empty context."""
    samples = []
    for _ in range(reps):
        reset()
        t = time.perf_counter()
        run()
        samples.append(n_tokens / (time.perf_counter() - t))
    return samples


def worker_liquidlfm(path, threads, pp, tg, reps, n_batch, profile):
    sys.path.insert(0, str(REPO))
    import liquidlfm as lfm
    from liquidlfm import _core

    model = lfm.load(path, n_threads=threads, kv_cache="f16")
    V, bos = model.config.n_vocab, model.config.bos_id
    rng = np.random.default_rng(0)

    def tokens(n):  # BOS first, as llama-bench does for a model that adds one
        ids = [int(t) for t in rng.integers(0, V, size=n)]
        if bos is not None and n:
            ids[0] = bos
        return ids

    res = {"info": {"kernel_level": lfm.kernel_level, "float_kernels": lfm.float_kernels, "kv_cache": "f16"}}
    if pp:
        with model.session(n_ctx=pp, n_batch=n_batch) as s:
            s.prefill(tokens(pp))  # warm-up
            if profile:  # one prompt, each weight matrix timed on its own
                s.reset()
                _core._profile_enable(True)
                _core._profile_get(reset=True)
                t = time.perf_counter()
                s.prefill(tokens(pp))
                res["profile"] = {"total_s": time.perf_counter() - t, "steps": 1, "tokens": pp, "phase": "prefill",
                                  "matmuls": _core._profile_get(reset=True)}
                _core._profile_enable(False)
            else:
                res["pp"] = _timed_samples(lambda: s.prefill(tokens(pp)), pp, reps, s.reset)
    if tg:
        with model.session(n_ctx=tg, n_batch=n_batch) as s:
            s.step(tokens(1)[0])  # warm-up

            def generate():
                for tok in tokens(tg):
                    s.step(tok)

            if profile:
                _core._profile_enable(True)
                _core._profile_get(reset=True)
            t = time.perf_counter()
            res["tg"] = _timed_samples(generate, tg, reps, s.reset)
            if profile:
                res["profile"] = {"total_s": time.perf_counter() - t, "steps": tg * reps, "phase": "decode",
                                  "matmuls": _core._profile_get(reset=True)}
                _core._profile_enable(False)
    model.close()
    res["rss_mib"] = _peak_rss_mib()
    return res


def worker_llama_cpp_python(path, threads, pp, tg, reps, n_batch, profile):
    import llama_cpp

    res = {"info": {"version": llama_cpp.__version__,
                    "system_info": llama_cpp.llama_print_system_info().decode(errors="replace").strip()}}
    rng = np.random.default_rng(0)
    for test, n in (("pp", pp), ("tg", tg)):
        if not n:
            continue
        llm = llama_cpp.Llama(model_path=path, n_ctx=n, n_batch=n_batch, n_ubatch=n_batch, n_threads=threads,
                              n_threads_batch=threads, verbose=False)
        V, bos = llm.n_vocab(), llm.token_bos()

        def tokens(k):
            ids = [int(t) for t in rng.integers(0, V, size=k)]
            ids[0] = bos
            return ids

        if test == "pp":
            llm.eval(tokens(n))  # warm-up
            res["pp"] = _timed_samples(lambda: llm.eval(tokens(n)), n, reps, llm.reset)
        else:
            llm.eval(tokens(1))  # warm-up

            def generate():
                for tok in tokens(n):
                    llm.eval([tok])

            res["tg"] = _timed_samples(generate, n, reps, llm.reset)
        llm.close() if hasattr(llm, "close") else None
        del llm
    res["rss_mib"] = _peak_rss_mib()
    return res


LLAMA_BENCH_INFO = ("build_commit", "build_number", "cpu_info", "gpu_info", "backends", "type_k", "type_v",
                    "flash_attn", "n_batch", "n_ubatch", "n_threads", "poll")


def worker_llama_bench(binary, path, threads, pp, tg, reps, n_batch):
    """llama-bench itself, with its own JSON report; peak RSS is that of this worker's only child."""
    import resource

    cmd = [binary, "-m", path, "-t", str(threads), "-p", str(pp), "-n", str(tg), "-b", str(n_batch),
           "-ub", str(n_batch), "-r", str(reps), "-o", "json"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: status {p.returncode}: "
                           f"{(p.stderr.strip().splitlines() or ['no output'])[-1]}")
    tests = json.loads(p.stdout)
    res = {"info": {k: tests[0].get(k) for k in LLAMA_BENCH_INFO} if tests else {}}
    for t in tests:
        test = "pp" if t["n_prompt"] > 0 and t["n_gen"] == 0 else "tg" if t["n_gen"] > 0 and t["n_prompt"] == 0 else None
        if test:
            res[test] = [float(x) for x in t["samples_ts"]]
    # ru_maxrss of the children is the largest of llama-bench's own peak and this small process's
    # peak at exec, so llama-bench's as long as it is the bigger one
    res["rss_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    return res


def run_worker(engine, path, args, pp, tg, reps, profile=False, timeout=3600):
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", engine, "--model-path", str(path),
           "--threads", str(args.threads), "--pp", str(pp), "--tg", str(tg), "--reps", str(reps),
           "--n-batch", str(args.n_batch)]
    if engine == "llama-bench":
        cmd += ["--llama-bench", args.llama_bench]
    if profile:
        cmd.append("--profile")
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or ["failed"])[-1][:200]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def find_llama_bench(given: str | None) -> str | None:
    for candidate in (given, os.environ.get("LLAMA_BENCH"), shutil.which("llama-bench"), str(LLAMA_BENCH_DEFAULT)):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return os.path.abspath(candidate)
        if candidate and candidate == given:
            raise SystemExit(f"--llama-bench {given}: not an executable file")
    return None


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
    prefill = prof.get("phase") == "prefill"
    unit = "prompt" if prefill else "token"
    if prefill:
        print(f"\n#### prefill profile: {label} (one pp{prof['tokens']} prompt, {1e3 * total:.1f} ms, "
              f"{prof['tokens'] / total:.1f} t/s with every matmul timed apart)\n")
    else:
        print(f"\n#### decode profile: {label} ({steps} steps, {1e3 * total / steps:.2f} ms/token)\n")
    print(f"| op | ms/{unit} | share |")
    print("|---|---|---|")
    for role, (calls, sec) in sorted(by_role.items(), key=lambda kv: -kv[1][1]):
        print(f"| matmul {role} ({calls // steps}/{unit}) | {1e3 * sec / steps:.2f} | {100 * sec / total:.1f}% |")
    rest = total - mm
    print(f"| everything else (attention, conv, norms, RoPE, SwiGLU, embedding, Python) | {1e3 * rest / steps:.2f} | "
          f"{100 * rest / total:.1f}% |")


def summarize(rounds):
    """(median, ± half the range as a fraction of the median) of per-round figures, or None."""
    if not rounds:
        return None
    med = float(np.median(rounds))
    return med, (max(rounds) - min(rounds)) / 2 / med if med else 0.0


def fmt_rate(stat, error=None):
    if stat is None:
        return error or "-"
    med, spread = stat
    return f"{med:.1f}" + (f" ±{100 * spread:.0f}%" if spread >= 0.005 else "")


def print_header(args, cpu, bandwidth, infos, commit, loads):
    isa = " ".join(cpu["isa"]) + (f" (not: {' '.join(cpu['isa_missing'])})" if cpu["isa_missing"] else "")
    llc = f", last-level cache {cpu['llc_bytes'] // 2**20} MiB" if cpu["llc_bytes"] else ""
    print(f"- CPU: {cpu['name']}" + (f" ({cpu['ident']})" if cpu["ident"] else "") +
          f", {cpu['cores']} logical cores{llc}; ISA: {isa}")
    if loads:
        # other work on the machine shows here: the runs themselves add about --threads, so a load
        # well above that means the cores were shared while measuring
        print(f"- load average (1 min), sampled before, between and after the models: {min(loads):.1f} to "
              f"{max(loads):.1f} on {cpu['cores']} cores (the runs themselves add about {args.threads})")
    if "gb_s" in bandwidth:
        print(f"- read bandwidth ceiling: {bandwidth['gb_s']:.1f} GB/s ({bandwidth['threads']} threads, "
              f"{bandwidth['mib']:.0f} MiB, best of {bandwidth['passes']} passes, twice: before and after the runs; "
              f"read_bandwidth.c with {bandwidth['cflags']})")
    else:
        print(f"- read bandwidth ceiling: not measured ({bandwidth.get('error')})")
    for engine, info in infos.items():
        if engine == "liquidlfm":
            print(f"- liquidlfm {commit}: kernel level {info.get('kernel_level')}, float kernels "
                  f"{info.get('float_kernels')}, KV cache {info.get('kv_cache')}")
        elif engine == "llama-bench":
            print(f"- llama-bench {args.llama_bench}: build {info.get('build_commit')} ({info.get('build_number')}), "
                  f"backends {info.get('backends')}, cpu_info \"{info.get('cpu_info')}\", KV cache "
                  f"{info.get('type_k')}/{info.get('type_v')}, flash_attn {info.get('flash_attn')}, poll {info.get('poll')}")
        elif engine == "llama-cpp-python":
            print(f"- llama-cpp-python {info.get('version')}: {info.get('system_info')}")
    print(f"- {args.threads} threads; pp{args.pp} / tg{args.tg}, n_batch = n_ubatch = {args.n_batch}; per engine and "
          f"round: a warm-up, then the mean t/s of {args.reps} repetitions; median of {args.rounds} alternating "
          f"rounds (± half their range); \"busy core\": a third process spins on one core during the run\n")


def print_tables(args, rows, engines, ceiling):
    peers = [e for e in engines if e != "liquidlfm"]
    ratio_cols = peers if "liquidlfm" in engines else []
    head = (["model", "type", "MiB", "test"] + [f"{e} t/s" for e in engines] + [f"liquidlfm / {p}" for p in ratio_cols]
            + [f"{e} peak RSS MiB" for e in engines])
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        for test, label in (("pp", f"pp{args.pp}"), ("tg", f"tg{args.tg}"), ("tg_busy", f"tg{args.tg}, busy core")):
            stats = {e: summarize(row["runs"][e][test]) for e in engines}
            if all(s is None for s in stats.values()) and test == "tg_busy" and args.no_busy:
                continue
            cells = [row["model"], row["type"], f"{row['size_mib']:.0f}", label]
            cells += [fmt_rate(stats[e], row["runs"][e]["error"]) for e in engines]
            for p in ratio_cols:
                a, b = stats["liquidlfm"], stats[p]
                cells.append(f"{a[0] / b[0]:.2f}" if a and b else "-")
            for e in engines:
                rss = row["runs"][e]["rss_mib"]
                cells.append(f"{min(rss):.0f}" if rss else "-")
            print("| " + " | ".join(cells) + " |")

    print(f"\nDecode (tg{args.tg}) against the read bandwidth ceiling"
          + (f" of {ceiling:.1f} GB/s" if ceiling else " (not measured)")
          + ": GB/s = weight bytes read per token x tokens/s.\n")
    head = ["model", "type", "MB read/token"]
    for e in engines:
        head += [f"{e} t/s", f"{e} GB/s", f"{e} % of ceiling"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        mb = row["bytes_per_token"] / 1e6
        cells = [row["model"], row["type"], f"{mb:.1f}"]
        for e in engines:
            stat = summarize(row["runs"][e]["tg"])
            if stat is None:
                cells += [row["runs"][e]["error"] or "-", "-", "-"]
                continue
            gb_s = mb * stat[0] / 1e3
            cells += [f"{stat[0]:.1f}", f"{gb_s:.1f}", f"{100 * gb_s / ceiling:.0f}%" if ceiling else "-"]
        print("| " + " | ".join(cells) + " |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["350M", "1.2B"], choices=sorted(SHAPES),
                    help="350M, 1.2B (default), 2.6B, 8B-A1B (LFM2-MoE: 16.6 GB F16 file, ~5 GB per quantized one)")
    ap.add_argument("--types", nargs="+", default=["q4_0", "q4_k_m", "q8_0"], choices=sorted(TYPES))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pp", type=int, default=512)
    ap.add_argument("--tg", type=int, default=128)
    ap.add_argument("--n-batch", type=int, default=512, help="n_batch = n_ubatch of the pp test (default 512)")
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions per engine run (llama-bench -r)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; figures are their median")
    ap.add_argument("--quick", action="store_true", help="350M, Q4_0, pp128/tg32, one repetition, one round")
    ap.add_argument("--profile", action="store_true", help="also split our prefill and decode time per weight matrix")
    ap.add_argument("--no-busy", action="store_true", help="skip the tg run with a busy core")
    ap.add_argument("--engines", nargs="+", choices=ENGINES,
                    help="default: liquidlfm llama-bench, or liquidlfm llama-cpp-python without a llama-bench")
    ap.add_argument("--llama-bench", metavar="PATH",
                    help=f"llama-bench binary (default: $LLAMA_BENCH, llama-bench on PATH, {LLAMA_BENCH_DEFAULT})")
    ap.add_argument("--cache-dir", type=Path, default=Path(os.environ.get("LIQUIDLFM_BENCH_CACHE",
                                                                          "/tmp/liquidlfm-bench-gguf")))
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    ap.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    ap.add_argument("--model-path", help=argparse.SUPPRESS)
    args = ap.parse_args()
    for name in ("threads", "pp", "tg", "n_batch", "reps", "rounds"):
        if getattr(args, name) < (0 if name in ("pp", "tg") else 1):
            ap.error(f"--{name.replace('_', '-')} must be {'>= 0' if name in ('pp', 'tg') else 'positive'}")

    if args.worker:
        if args.worker == "llama-bench":
            res = worker_llama_bench(args.llama_bench, args.model_path, args.threads, args.pp, args.tg, args.reps,
                                     args.n_batch)
        else:
            fn = worker_liquidlfm if args.worker == "liquidlfm" else worker_llama_cpp_python
            res = fn(args.model_path, args.threads, args.pp, args.tg, args.reps, args.n_batch, args.profile)
        print(json.dumps(res))
        return

    if args.quick:
        args.models, args.types, args.pp, args.tg, args.reps, args.rounds = ["350M"], ["q4_0"], 128, 32, 1, 1
    args.llama_bench = find_llama_bench(args.llama_bench)
    if args.engines is None:
        args.engines = ["liquidlfm", "llama-bench" if args.llama_bench else "llama-cpp-python"]
    if "llama-bench" in args.engines and not args.llama_bench:
        ap.error("no llama-bench found: give --llama-bench PATH or set $LLAMA_BENCH (benchmarks/README.md builds one)")
    engines = list(dict.fromkeys(args.engines))
    quantize_bin = None
    if args.llama_bench:
        sibling = Path(args.llama_bench).with_name("llama-quantize")
        quantize_bin = str(sibling) if os.access(sibling, os.X_OK) else None

    commit = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True,
                            text=True).stdout.strip()
    cpu = cpu_description()
    loads = [os.getloadavg()[0]] if hasattr(os, "getloadavg") else []
    print(f"# read bandwidth with {args.threads} threads ...", file=sys.stderr, flush=True)
    bandwidth_runs = [read_bandwidth(args.threads)]

    rows, profiles, infos = [], [], {}
    for key in args.models:
        for qt in args.types:
            path = model_file(args.cache_dir, key, qt, args.threads, quantize_bin)
            runs = {e: {"pp": [], "tg": [], "tg_busy": [], "rss_mib": [], "error": None} for e in engines}

            def record(engine, r, tests):
                if "error" in r:
                    runs[engine]["error"] = runs[engine]["error"] or r["error"]
                    print(f"# {engine} failed: {r['error']}", file=sys.stderr, flush=True)
                    return
                infos.setdefault(engine, r.get("info", {}))
                for src, dst in tests:
                    if r.get(src):
                        runs[engine][dst].append(float(np.mean(r[src])))
                runs[engine]["rss_mib"].append(r["rss_mib"])

            for rnd in range(args.rounds):
                order = engines if rnd % 2 == 0 else engines[::-1]
                for e in order:
                    record(e, run_worker(e, path, args, args.pp, args.tg, args.reps), (("pp", "pp"), ("tg", "tg")))
                if not args.no_busy and args.tg:
                    for e in order:
                        with BusyCore():
                            r = run_worker(e, path, args, 0, args.tg, args.reps)
                        record(e, r, (("tg", "tg_busy"),))
            row = {"model": SHAPES[key]["name"], "type": TYPES[qt], "size_mib": path.stat().st_size / 2**20,
                   "bytes_per_token": decode_bytes_per_token(path), "runs": runs}
            rows.append(row)
            if loads:
                loads.append(os.getloadavg()[0])
            if args.profile and "liquidlfm" in engines:
                for pp, tg in ((args.pp, 0), (0, args.tg)):
                    if pp or tg:
                        r = run_worker("liquidlfm", path, args, pp, tg, 1, profile=True)
                        if "profile" in r:
                            profiles.append((f"{row['model']} {row['type']}", r["profile"]))
            print(f"# done {row['model']} {row['type']}: " +
                  json.dumps({e: {t: summarize(v[t]) for t in ("pp", "tg", "tg_busy")} for e, v in runs.items()}),
                  file=sys.stderr, flush=True)

    bandwidth_runs.append(read_bandwidth(args.threads))
    good = [b for b in bandwidth_runs if "gb_s" in b]
    bandwidth = max(good, key=lambda b: b["gb_s"]) if good else bandwidth_runs[0]
    ceiling = bandwidth.get("gb_s")
    print_header(args, cpu, bandwidth, infos, commit, loads)
    print_tables(args, rows, engines, ceiling)
    for label, prof in profiles:
        print_profile(label, prof)
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu, "load_average": loads, "bandwidth": bandwidth_runs, "engines": infos,
                                         "commit": commit, "rows": rows, "profiles": profiles}, indent=1))


if __name__ == "__main__":
    main()
