"""GGUF models end to end: F32/F16/BF16 GGUFs of a transformers model give the same logits as its
safetensors through our engine; files written by our quantizer load and run in llama-cpp-python;
our logits on quantized files (gguf-package and llama.cpp quantized) against llama-cpp-python's.

Shapes keep LFM2's ratios at a small size (H = 256 so K-quants apply, hd = 64, GQA 2:1, 2 conv
layers per attention layer). Run with -s to see the parity table."""

import numpy as np
import pytest

import liquidlfm as lfm
from liquidlfm.gguf import read_gguf, read_metadata
from liquidlfm.quantize import quantize_hf, main as quantize_main
from tests.fixtures.gguf_models import hf_to_gguf, require_exact_llama_reference, llama_quantize, make_tiny_hf

pytestmark = pytest.mark.reference  # models are built with transformers, logits compared with llama.cpp

N_POS = 256
SHAPE = dict(vocab_size=512, hidden_size=256, n_layers=6,
             layer_types=["conv", "conv", "full_attention", "conv", "conv", "full_attention"],
             heads=4, kv_heads=2, ff=768, max_position_embeddings=4096)


@pytest.fixture(scope="module")
def hf32(tmp_path_factory):
    return make_tiny_hf(tmp_path_factory.mktemp("hf32"), dtype="float32", seed=1, **SHAPE)


@pytest.fixture(scope="module")
def gguf_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("gguf")


@pytest.fixture(scope="module")
def f32_gguf(hf32, gguf_dir):
    return hf_to_gguf(hf32, gguf_dir / "m-f32.gguf", "f32")


def tokens(n=N_POS, vocab=SHAPE["vocab_size"], seed=0):
    return np.random.default_rng(seed).integers(1, vocab, n).tolist()


def our_logits(path, ids, **kw):
    m = lfm.load(str(path), **kw)
    try:
        return np.array(m.forward(ids), dtype=np.float32)
    finally:
        close = getattr(m, "close", None)
        if close:
            close()


def transformers_logits(hf_dir, ids):
    import torch
    from transformers import Lfm2ForCausalLM

    m = Lfm2ForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        return m(torch.tensor([ids])).logits[0].float().numpy()


def llama_logits(path, ids, n_batch=None, kv_f32=True):
    """llama-cpp-python's logits; kv_f32: its KV cache in F32 like our default (type_k/type_v 0),
    else its default F16 cache."""
    import llama_cpp

    n_batch = n_batch or len(ids)
    kv = dict(type_k=0, type_v=0) if kv_f32 else {}
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=len(ids) + 8, n_batch=n_batch, n_ubatch=n_batch,
                          logits_all=True, n_threads=2, verbose=False, seed=0, **kv)
    try:
        llm.eval(ids)
        return np.array(llm.scores[: len(ids)], dtype=np.float32)
    finally:
        llm.close()


def our_step_logits(path, ids, kv_cache="f32"):
    """Our logits one token at a time (the generation path)."""
    m = lfm.load(str(path), kv_cache=kv_cache)
    try:
        with m.session(n_ctx=len(ids) + 8) as s:
            return np.stack([np.array(s.step(t), dtype=np.float32) for t in ids])
    finally:
        m.close()


def parity(ours, ref):
    err = np.abs(ours - ref)
    top1 = float(np.mean(ours.argmax(-1) == ref.argmax(-1)))
    return top1, float(err.max()), float(err.mean())


# ---- float GGUFs vs safetensors ----------------------------------------------------------------

def test_f32_gguf_equals_safetensors(hf32, f32_gguf):
    ids = tokens(64)
    a = our_logits(hf32, ids)
    b = our_logits(f32_gguf, ids)
    assert a.shape == b.shape == (64, SHAPE["vocab_size"])
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-5)
    ref = transformers_logits(hf32, ids)
    # measured max |error| 2.03e-5 (logit scale 6.6; the reference rounded to float32): the bound is
    # absolute, not relative to the logits (rtol=1e-4 allowed 7.6e-4 here)
    np.testing.assert_allclose(b, ref, rtol=0, atol=3e-5)


@pytest.mark.parametrize("dtype,ftype", [("float16", "f16"), ("bfloat16", "bf16")])
def test_half_gguf_equals_safetensors(tmp_path, dtype, ftype):
    hf = make_tiny_hf(tmp_path / "hf", dtype=dtype, seed=2, **SHAPE)
    g = hf_to_gguf(hf, tmp_path / f"m-{ftype}.gguf", ftype)
    assert read_gguf(g).tensor("blk.0.ffn_gate.weight").type_name.lower() == ftype
    ids = tokens(64, seed=3)
    np.testing.assert_allclose(our_logits(g, ids), our_logits(hf, ids), rtol=0, atol=1e-5)


def test_config_from_gguf(hf32, f32_gguf):
    a = lfm.load(str(hf32)).config
    b = lfm.load(str(f32_gguf)).config
    for k in ("n_vocab", "n_embd", "n_layer", "n_head", "n_head_kv", "head_dim", "n_ff", "layer_types",
              "bos_id", "eos_id", "pad_id"):
        assert getattr(a, k) == getattr(b, k), k
    assert b.layer_types == SHAPE["layer_types"]
    assert b.n_ctx_train == a.n_ctx_train


# ---- quantized GGUFs vs llama-cpp-python -------------------------------------------------------

PARITY = {}


def _report():
    if PARITY:
        print("\n| file | 256-token batch: top-1 / max err / mean err | 256 one-token steps: top-1 / max err / mean err |")
        print("|---|---|---|")
        nan = float("nan")
        for k, v in sorted(PARITY.items()):
            b = v[1:4]
            st = v[4:7] if len(v) > 4 else (nan, nan, nan)
            print(f"| {k} | {b[0] * 100:.1f}% / {b[1]:.2g} / {b[2]:.2g} | {st[0] * 100:.1f}% / {st[1]:.2g} / {st[2]:.2g} |")


@pytest.fixture(scope="module", autouse=True)
def parity_table():
    yield
    _report()


@pytest.mark.parametrize("qtype,source", [
    ("f32", "gguf"), ("q8_0", "gguf"), ("q4_0", "gguf"), ("q4_1", "gguf"), ("q5_0", "gguf"), ("q5_1", "gguf"),
    ("q4_k_m", "llama"), ("q5_k_m", "llama"), ("q6_k", "llama"),
])  # files from our quantizer are byte-identical to the "gguf" ones (test_our_quantizer_* below)
def test_logits_vs_llama_cpp(hf32, f32_gguf, gguf_dir, qtype, source):
    """Two paths, each against llama.cpp's own: a 256-token batch (prefill) and 256 one-token steps
    (generation). llama.cpp rounds differently in the two (its one-token attention and its K-quant
    kernels for 4+ or 8+ token batches sum in another order); we follow it in both."""
    require_exact_llama_reference()
    path = gguf_dir / f"m-{qtype}-{source}.gguf"
    if source == "gguf":
        path = f32_gguf if qtype == "f32" else hf_to_gguf(hf32, path, qtype)
    elif source == "llama":
        llama_quantize(f32_gguf, path, qtype)
    else:
        quantize_hf(hf32, path, qtype, progress=False)
    ids = tokens()
    batch = parity(our_logits(path, ids), llama_logits(path, ids))
    step = parity(our_step_logits(path, ids), llama_logits(path, ids, n_batch=1))
    PARITY[f"{qtype}" + ("" if source == "gguf" else f" ({source})")] = (source, *batch, *step)
    for top1, mx, mean in (batch, step):
        assert top1 >= 0.99, (qtype, batch, step)  # the issue's bar
        # bit for bit, but F32 one-token steps: llama.cpp's F32 matmul for one token sums in an
        # order we do not copy (F32 GGUFs are a test format, not a deployment one); measured 1.2e-5
        assert mx == 0.0 or (qtype == "f32" and mx < 2.5e-5), (qtype, batch, step)


@pytest.mark.parametrize("qtype,source", [("q8_0", "gguf"), ("q4_0", "gguf"), ("q4_k_m", "llama"), ("q6_k", "llama")])
def test_f16_cache_vs_default_llama_cpp(hf32, f32_gguf, gguf_dir, qtype, source):
    """kv_cache="f16" against llama.cpp with its default settings (F16 KV cache): both paths."""
    require_exact_llama_reference()
    path = gguf_dir / f"m-{qtype}-{source}.gguf"
    if not path.exists():
        if source == "gguf":
            hf_to_gguf(hf32, path, qtype)
        else:
            llama_quantize(f32_gguf, path, qtype)
    ids = tokens()
    batch = parity(our_logits(path, ids, kv_cache="f16"), llama_logits(path, ids, kv_f32=False))
    step = parity(our_step_logits(path, ids, kv_cache="f16"), llama_logits(path, ids, n_batch=1, kv_f32=False))
    PARITY[f"{qtype} F16 KV vs default llama.cpp"] = (source, *batch, *step)
    for top1, mx, _ in (batch, step):
        assert top1 >= 0.99, (qtype, batch, step)
        assert mx == 0.0, (qtype, batch, step)


@pytest.mark.parametrize("qtype", ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1"])
def test_our_quantizer_output_runs_in_llama_cpp(hf32, gguf_dir, qtype):
    path = quantize_hf(hf32, gguf_dir / f"ours-{qtype}.gguf", qtype, progress=False)
    info = read_gguf(path)
    assert info.tensor("blk.0.ffn_gate.weight").type_name.lower() == qtype
    assert info.tensor("blk.0.shortconv.conv.weight").type_name == "f32"
    assert info.tensor("token_embd_norm.weight").type_name == "f32"
    ids = tokens(32)
    ref = llama_logits(path, ids)
    assert ref.shape == (32, SHAPE["vocab_size"]) and np.isfinite(ref).all()
    # the gguf package's reference quantizer gives the same tensors, but for the tied embedding (but in
    # q8_0): Q6_K here as llama-quantize makes it (test_quantize_mixes.py compares it with llama.cpp's
    # bytes), Q8_0 there (the gguf package has no Q6_K quantizer)
    from liquidlfm.gguf import tensor_data
    assert info.tensor("token_embd.weight").type_name == ("q8_0" if qtype == "q8_0" else "q6_K")
    other = read_gguf(hf_to_gguf(hf32, gguf_dir / f"ref-{qtype}.gguf", qtype))
    for t in info.tensors:
        if t.name != "token_embd.weight":
            assert t.type_name == other.tensor(t.name).type_name, t.name
            assert bytes(tensor_data(info, t.name)) == bytes(tensor_data(other, t.name)), t.name


@pytest.mark.parametrize("qtype", ["q4_k", "q5_k", "q6_k"])
def test_k_quant_output(hf32, gguf_dir, qtype):
    """K-quants: written and run by llama.cpp when the C core has their quantizer, otherwise a
    clean UnsupportedModelError and no output file."""
    from liquidlfm.quantize import _core_available

    out = gguf_dir / f"ours-{qtype}.gguf"
    if not _core_available(qtype):
        with pytest.raises(lfm.UnsupportedModelError, match=f"no quantizer for {qtype}"):
            quantize_hf(hf32, out, qtype, progress=False)
        assert not out.exists()
        return
    quantize_hf(hf32, out, qtype, progress=False)
    assert read_gguf(out).tensor("blk.0.ffn_gate.weight").type_name.lower() == qtype
    ids = tokens(32)
    assert np.isfinite(llama_logits(out, ids)).all()
    require_exact_llama_reference()
    top1, mx, mean = parity(our_logits(out, ids), llama_logits(out, ids))
    PARITY[f"{qtype} (ours)"] = ("ours", top1, mx, mean)  # no self-agreement column
    # the same file through both engines: bit for bit, as test_logits_vs_llama_cpp for K-quants
    assert top1 == 1.0 and mx == 0.0, (qtype, top1, mx, mean)


def test_our_quantizer_matches_gguf_reference_bytes(hf32, gguf_dir):
    """Q8_0 / Q4_0 blocks from our C quantizer equal the gguf package's reference quantizer."""
    for q in ("q8_0", "q4_0"):
        ours = read_gguf(quantize_hf(hf32, gguf_dir / f"bytes-ours-{q}.gguf", q, progress=False))
        ref = read_gguf(hf_to_gguf(hf32, gguf_dir / f"bytes-ref-{q}.gguf", q))
        from liquidlfm.gguf import tensor_data
        for name in ("blk.0.ffn_gate.weight", "blk.2.attn_q.weight", "blk.5.ffn_down.weight"):
            assert bytes(tensor_data(ours, name)) == bytes(tensor_data(ref, name)), (q, name)


# ---- quantize on load ----------------------------------------------------------------------------

def test_quantize_on_load_equals_quantized_gguf(hf32, gguf_dir):
    ids = tokens(64, seed=5)
    path = quantize_hf(hf32, gguf_dir / "qol-q8_0.gguf", "q8_0", progress=False)
    a = our_logits(hf32, ids, quantize="q8_0")
    b = our_logits(path, ids)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    f = our_logits(hf32, ids)
    # quantization noise only (the random test model amplifies it: ~5% of the logit spread)
    assert np.abs(a - f).mean() < 0.1 * f.std()


def test_quantize_on_load_bad_type(hf32):
    with pytest.raises((ValueError, lfm.UnsupportedModelError)):
        lfm.load(str(hf32), quantize="q9_9")


# ---- quantize CLI --------------------------------------------------------------------------------

def test_quantize_cli_writes_atomically(hf32, tmp_path, monkeypatch, capsys):
    out = tmp_path / "cli-q4_0.gguf"
    assert quantize_main([str(hf32), str(out), "--type", "q4_0", "-q"]) == 0
    assert read_metadata(out)["general.file_type"] == 2
    # a failure mid-write leaves neither the output nor a temp file behind
    import liquidlfm.quantize as q

    calls = {"n": 0}
    real = q._core_encode

    def boom(a, t, n_threads=None):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(a, t, n_threads)

    monkeypatch.setattr(q, "_core_encode", boom)
    out2 = tmp_path / "cli-fail.gguf"
    with pytest.raises(KeyboardInterrupt):
        quantize_main([str(hf32), str(out2), "--type", "q8_0", "-q"])
    assert not out2.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cli-q4_0.gguf"]
    assert quantize_main([str(tmp_path / "missing"), str(tmp_path / "x.gguf"), "--type", "q8_0", "-q"]) == 1
    assert "error" in capsys.readouterr().err


# ---- bad models ------------------------------------------------------------------------------------

def _rewrite(src, dst, *, arch=None, drop=(), meta_override=None, reshape=None):
    """Copy a GGUF with changes, using the gguf package (reader + writer)."""
    import gguf

    r = gguf.GGUFReader(str(src))
    w = gguf.GGUFWriter(str(dst), arch or "lfm2")
    for k, f in r.fields.items():
        if k.startswith("GGUF.") or k == "general.architecture":
            continue
        v = f.contents()
        if meta_override and k.replace("lfm2.", "") in meta_override:
            v = meta_override[k.replace("lfm2.", "")]
        if arch and k.startswith("lfm2."):
            k = arch + k[4:]
        types = f.types
        if types[0] == gguf.GGUFValueType.ARRAY:
            w.add_key_value(k, v, types[0], sub_type=types[1])
        else:
            w.add_key_value(k, v, types[0])
    for t in r.tensors:
        if t.name in drop:
            continue
        data = np.array(t.data)
        if reshape and t.name in reshape:
            data = data.reshape(reshape[t.name])
        w.add_tensor(t.name, data, raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return dst


def test_other_architectures_unsupported(f32_gguf, tmp_path):
    for arch in ("llama", "lfm2vl"):
        p = _rewrite(f32_gguf, tmp_path / f"{arch}.gguf", arch=arch)
        with pytest.raises(lfm.UnsupportedModelError, match=f"architecture '{arch}' is not supported"):
            lfm.load(str(p))


def test_lfm3_needs_its_head_size_key(f32_gguf, tmp_path):
    """A dense file relabelled lfm3 is read as LFM3 (tests/engine/test_lfm3.py), whose head size is a key."""
    p = _rewrite(f32_gguf, tmp_path / "lfm3.gguf", arch="lfm3")
    with pytest.raises(lfm.ModelFormatError, match="missing metadata key 'lfm3.attention.key_length'"):
        lfm.load(str(p))


def test_lfm2moe_needs_its_expert_keys(f32_gguf, tmp_path):
    """A dense file relabelled lfm2moe is read as LFM2-MoE (tests/engine/test_moe.py) and lacks its keys."""
    p = _rewrite(f32_gguf, tmp_path / "lfm2moe.gguf", arch="lfm2moe")
    with pytest.raises(lfm.ModelFormatError, match="missing metadata key 'lfm2moe.expert_count'"):
        lfm.load(str(p))


def test_missing_and_misshaped_tensors(f32_gguf, tmp_path):
    p = _rewrite(f32_gguf, tmp_path / "missing.gguf", drop=("blk.2.attn_k.weight",))
    with pytest.raises(lfm.ModelFormatError, match=r"blk\.2\.attn_k\.weight"):
        lfm.load(str(p))
    p = _rewrite(f32_gguf, tmp_path / "shape.gguf", reshape={"blk.0.ffn_up.weight": (256, 768)})
    with pytest.raises(lfm.ModelFormatError, match=r"blk\.0\.ffn_up\.weight"):
        lfm.load(str(p))
    p = _rewrite(f32_gguf, tmp_path / "kv.gguf", meta_override={"attention.head_count_kv": [2, 0, 2, 0, 0, 2]})
    with pytest.raises(lfm.ModelFormatError, match="head_count_kv"):
        lfm.load(str(p))


def test_output_norm_alias_and_untied_head(hf32, tmp_path):
    """ollama-style files name the final norm output_norm.weight; an output.weight unties the head."""
    import gguf

    src = hf_to_gguf(hf32, tmp_path / "src.gguf", "f32")
    r = gguf.GGUFReader(str(src))
    dst = tmp_path / "alias.gguf"
    w = gguf.GGUFWriter(str(dst), "lfm2")
    for k, f in r.fields.items():
        if k.startswith("GGUF.") or k == "general.architecture":
            continue
        if f.types[0] == gguf.GGUFValueType.ARRAY:
            w.add_key_value(k, f.contents(), f.types[0], sub_type=f.types[1])
        else:
            w.add_key_value(k, f.contents(), f.types[0])
    emb = None
    for t in r.tensors:
        name = "output_norm.weight" if t.name == "token_embd_norm.weight" else t.name
        if t.name == "token_embd.weight":
            emb = np.array(t.data)
        w.add_tensor(name, np.array(t.data))
    w.add_tensor("output.weight", emb * 2)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    ids = tokens(16)
    a = our_logits(src, ids)
    b = our_logits(dst, ids)
    np.testing.assert_allclose(b, 2 * a, rtol=1e-5, atol=1e-4)
