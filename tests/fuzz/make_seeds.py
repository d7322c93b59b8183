"""Write the seed corpora of the libFuzzer targets (tests/fuzz/fuzz_*.c) into a directory:

    python tests/fuzz/make_seeds.py build/fuzz/seeds
    # -> seeds/gguf/*, seeds/safetensors/*, seeds/tokenizer/*, seeds/state/*, seeds/sampler/*,
    #    seeds/quants/*, and seeds/model.gguf (the model fuzz_state loads, $FUZZ_MODEL)

Everything is generated (tiny random-weight LFM2 models from tests/fixtures, a small trained
tokenizer), so nothing large is committed; the committed reproducers in tests/fuzz/crashes/ are
added to the corpora by run.sh.
"""
from __future__ import annotations

import json
import random
import struct
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

SAFETENSORS_SEP = b"\n--model.safetensors--\n"  # = FUZZ_SEP in fuzz_safetensors.c


def _tiny_hf(dest: Path, **kw) -> Path:
    from tests.fixtures.gguf_models import make_tiny_hf

    args = dict(vocab_size=320, hidden_size=64, n_layers=2, layer_types=["conv", "full_attention"], heads=4,
                kv_heads=2, ff=96, tokenizer=False, max_position_embeddings=64)
    args.update(kw)
    return make_tiny_hf(dest, **args)


def gguf_seeds(out: Path, tmp: Path) -> Path:
    from tests.fixtures.gguf_models import hf_to_gguf, llama_quantize

    (out / "gguf").mkdir(parents=True, exist_ok=True)
    hf = _tiny_hf(tmp / "hf", hidden_size=32, heads=2, kv_heads=1, ff=64)
    for t in ("f32", "f16", "q8_0", "q4_0", "q5_1"):
        hf_to_gguf(hf, out / "gguf" / f"tiny-{t}", t)
    # a K-quant model (rows of 256): the Q8_K activation path
    hf256 = _tiny_hf(tmp / "hf256", hidden_size=256, ff=256, heads=2, kv_heads=1, vocab_size=272, n_layers=1,
                     layer_types=["full_attention"])
    f32 = hf_to_gguf(hf256, tmp / "k-f32.gguf", "f32")
    try:
        for t in ("q4_k_m",):
            llama_quantize(f32, out / "gguf" / f"tiny-{t}", t, n_threads=1)
    except Exception as e:  # llama.cpp's Python binding is optional here
        print(f"make_seeds: no K-quant seed ({e})", file=sys.stderr)
    # LFM3 (arch "lfm3", liquidlfm's own writer): sliding-window keys, attn_gate and the post norms
    from liquidlfm.quantize import quantize_hf
    try:
        for t in ("f32", "q8_0"):
            quantize_hf(_tiny_lfm3(tmp / "lfm3"), out / "gguf" / f"tiny-lfm3-{t}", t, progress=False)
        # the model the state_lfm3 run of fuzz_state loads: its blobs carry the sliding layers' ring
        quantize_hf(_tiny_lfm3(tmp / "lfm3"), out / "model-lfm3.gguf", "q8_0", progress=False)
    except ImportError as e:  # transformers builds the LFM3 checkpoint
        print(f"make_seeds: no LFM3 seed ({e})", file=sys.stderr)
    model = out / "model.gguf"
    hf_to_gguf(hf, model, "q8_0")
    return model


def _tiny_lfm3(dest: Path, **kw) -> Path:
    """A tiny LFM3 checkpoint (every layer kind, both optional parts), made once per directory."""
    from tests.fixtures.hf_models import make_lfm3_hf_model

    if (dest / "config.json").exists():
        return dest
    args = dict(vocab_size=320, hidden_size=32, num_hidden_layers=3, layer_types=["conv", "sliding_attention",
                "full_attention"], num_attention_heads=2, num_key_value_heads=1, head_dim=16, intermediate_size=64,
                sliding_window=4, tokenizer=False, max_position_embeddings=64)
    args.update(kw)
    return make_lfm3_hf_model(dest, **args)


def safetensors_seeds(out: Path, tmp: Path) -> None:
    (out / "safetensors").mkdir(parents=True, exist_ok=True)
    for i, kw in enumerate([{}, dict(tie=False, n_layers=3, layer_types=["conv", "full_attention", "conv"])]):
        hf = _tiny_hf(tmp / f"st{i}", vocab_size=64, hidden_size=32, heads=2, kv_heads=1, ff=64, **kw)
        blob = (hf / "config.json").read_bytes() + SAFETENSORS_SEP + (hf / "model.safetensors").read_bytes()
        (out / "safetensors" / f"tiny{i}").write_bytes(blob)
    try:
        hf = _tiny_lfm3(tmp / "lfm3")
    except ImportError as e:
        print(f"make_seeds: no LFM3 seed ({e})", file=sys.stderr)
        return
    blob = (hf / "config.json").read_bytes() + SAFETENSORS_SEP + (hf / "model.safetensors").read_bytes()
    (out / "safetensors" / "tiny-lfm3").write_bytes(blob)


def tokenizer_seeds(out: Path) -> None:
    from tests.fixtures.tokenizers import build_tokenizer_json

    (out / "tokenizer").mkdir(parents=True, exist_ok=True)
    texts = ["Hello world! 123 4567", "<|im_start|>user\nHi there<|im_end|>\n", " \t\n\n  x  ",
             "naïve café — 日本語 🙂", "don't 'LL've ", "\xff"]
    for vocab_size in (300, 400):
        data = json.loads(build_tokenizer_json(vocab_size))
        vocab = sorted(data["model"]["vocab"].items(), key=lambda kv: kv[1])
        kind = {}
        for a in data.get("added_tokens", []):
            kind[a["id"]] = 3 if a.get("special") else 4
        toks = [bytes([kind[i]]) + s.encode() if i in kind else s.encode() for s, i in vocab]
        merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"]["merges"]]
        for j, text in enumerate(texts):
            flags = 1 | (2 if j % 2 else 0) | (4 if j % 3 == 1 else 0) | (8 if j == 1 else 0)
            blob = bytes([flags, 1, 7]) + b"\n".join(toks) + b"\0" + "\n".join(merges).encode() + b"\0" + text.encode()
            (out / "tokenizer" / f"v{vocab_size}-{j}").write_bytes(blob)


def state_seeds(out: Path, model: Path, name: str = "state") -> None:
    import liquidlfm as lfm

    (out / name).mkdir(parents=True, exist_ok=True)
    m = lfm.load(str(model))
    for f16, kv in ((0, "f32"), (1, "f16")):
        s = m.session(n_ctx=16, n_threads=1, kv_cache=kv)  # = the contexts of fuzz_state.c
        for n in (0, 1, 3, 9):  # 9: past an LFM3 seed's window of 4
            if n:
                s.decode(list(range(1, n + 1)))
            blob = s.save()
            for fix in (0, 2):
                (out / name / f"{kv}-{n}-{fix}").write_bytes(bytes([f16 | fix]) + blob)
            s.reset()
        s.close()
    m.close()


def sampler_seeds(out: Path) -> None:
    (out / "sampler").mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    # byte 0: n_vocab-1; then temperature, top_k, top_p, min_p, rep, presence, freq, last_n, seed,
    # n_bias + pairs, n_hist + ids, logits (value bytes index INTERESTING in fuzz_sampler.c)
    base = [15, 1, 8 + 5, 5, 8, 1, 0, 0, 8 + 64, 3, 2, 8 + 1, 14, 8 + 2, 4, 3, 8 + 1, 8 + 1, 8 + 4]
    (out / "sampler" / "basic").write_bytes(bytes(base + [rng.randrange(27) for _ in range(16)]))
    (out / "sampler" / "greedy").write_bytes(bytes([3, 0, 8, 1, 0, 1, 0, 0, 8, 0, 0, 0, 1, 2, 3, 4]))
    raw = struct.pack("<16f", *[rng.gauss(0, 3) for _ in range(16)])
    logits = b"".join(b"\xff" + raw[i:i + 4] for i in range(0, len(raw), 4))
    (out / "sampler" / "raw").write_bytes(bytes([15, 3, 8 + 40, 5, 0, 22, 3, 4, 8 + 10, 1, 0, 0]) + logits)


def quant_seeds(out: Path) -> None:
    (out / "quants").mkdir(parents=True, exist_ok=True)
    rng = random.Random(1)
    for t in range(15):
        xs = [rng.gauss(0, 1) for _ in range(256)]
        if t % 3 == 0:
            xs[rng.randrange(256)] = float("nan")
        (out / "quants" / f"t{t}").write_bytes(bytes([t]) + struct.pack(f"<{len(xs)}f", *xs))


def python_seeds(out: Path, tmp: Path) -> None:
    """Seeds of py_targets.py (atheris): tokenizer.json files, vocabulary-only GGUFs, templates."""
    from liquidlfm.chat_template import LFM2_CHAT_TEMPLATE
    from tests.fixtures.tokenizers import build_tokenizer_json, write_tokenizer_files, write_vocab_gguf

    for d in ("py_tokenizer_json", "py_gguf_vocab", "py_chat_template"):
        (out / d).mkdir(parents=True, exist_ok=True)
    for vocab_size in (300, 400):
        (out / "py_tokenizer_json" / f"v{vocab_size}").write_text(
            json.dumps(json.loads(build_tokenizer_json(vocab_size)), ensure_ascii=False, separators=(",", ":")))
        tok_dir = write_tokenizer_files(tmp / f"tok{vocab_size}", vocab_size, chat_template=False)
        write_vocab_gguf(tok_dir, out / "py_gguf_vocab" / f"v{vocab_size}")
    loops = "{% for i in range(3) %}{% for m in messages %}{{ m['role'] }}{{ m.content|upper }}{% endfor %}{% endfor %}"
    for i, src in enumerate([LFM2_CHAT_TEMPLATE, loops, "{{ bos_token }}{{ messages|tojson }}{{ raise_exception('x') }}"]):
        (out / "py_chat_template" / f"t{i}").write_bytes(src.encode() + b"\0hello <|im_end|> world")


def main(argv) -> int:
    out = Path(argv[1] if len(argv) > 1 else ROOT / "build" / "fuzz" / "seeds")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        model = gguf_seeds(out, tmp)
        safetensors_seeds(out, tmp)
        python_seeds(out, tmp)
    tokenizer_seeds(out)
    state_seeds(out, model)
    if (out / "model-lfm3.gguf").exists():
        state_seeds(out, out / "model-lfm3.gguf", "state_lfm3")
    sampler_seeds(out)
    quant_seeds(out)
    for d in sorted(p for p in out.iterdir() if p.is_dir()):
        files = list(d.iterdir())
        print(f"make_seeds: {d.name}: {len(files)} seeds, {sum(f.stat().st_size for f in files)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
