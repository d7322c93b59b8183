"""liquidlfm.quantize against llama-quantize, file type by file type: the GGUF we write from a Hugging
Face folder holds, tensor by tensor, the types and bytes llama.cpp's llama_model_quantize (the pinned
llama-cpp-python) writes from an F32 GGUF of the same folder (from an F16 / BF16 GGUF when the
folder's weights are F16 / BF16), and the same general.file_type. Three random-weight shapes cover
LFM2's rules: the K-quant mixes' Q6_K / Q5_K choices for attention V (counted over attention layers)
and FFN down (over all layers), the tied and the untied head, and the fallbacks of row lengths a
block does not divide (to Q5_0 / Q5_1 / Q8_0, and to F16). Then the files run: in our engine, in
llama.cpp, and quantize on load gives the same weights."""

import numpy as np
import pytest

import liquidlfm as lfm
from liquidlfm.quantize import FILE_TYPE, quantize_hf
from tests.fixtures.gguf_models import hf_to_gguf, llama_quantize, make_tiny_hf, require_exact_llama_reference

pytestmark = pytest.mark.reference  # models from transformers, files from llama.cpp

K_MIXES = ["q4_k_m", "q5_k_m", "q4_k_s", "q5_k_s", "q6_k"]
LEGACY = ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1"]

SHAPES = {
    # test_gguf_model's shape: every row length a multiple of 256, 2 attention layers of 6, tied head
    "lfm2": dict(vocab_size=512, hidden_size=256, n_layers=6, heads=4, kv_heads=2, ff=768,
                 layer_types=["conv", "conv", "full_attention", "conv", "conv", "full_attention"]),
    # 17 layers, 8 of them attention (the n/8 and 7n/8 bounds are not 0 and n), untied head, FFN
    # down rows of 800 (not a multiple of 256: the K types fall back to 32-element blocks)
    "deep-untied": dict(vocab_size=384, hidden_size=256, n_layers=17, heads=4, kv_heads=2, ff=800, tie=False,
                        layer_types=["full_attention" if i % 2 else "conv" for i in range(17)]),
    # rows of 80 (not a multiple of 32: F16, also for the embedding) and FFN down rows of 96
    "narrow": dict(vocab_size=320, hidden_size=80, n_layers=2, heads=4, kv_heads=2, ff=96,
                   layer_types=["conv", "full_attention"]),
}
CASES = ([("lfm2", "float32", t) for t in K_MIXES + ["q4_k", "q5_k"] + LEGACY + ["f16", "bf16"]]
         + [(s, "float32", t) for s in ("deep-untied", "narrow") for t in K_MIXES + ["q4_0", "q8_0"]]
         + [("lfm2", dt, t) for dt in ("float16", "bfloat16") for t in K_MIXES])
SOURCE_GGUF = {"float32": "f32", "float16": "f16", "bfloat16": "bf16"}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """(shape, dtype) -> (HF folder, float GGUF of it), built on first use."""
    root = tmp_path_factory.mktemp("mixes")
    made = {}

    def get(shape, dtype):
        if (shape, dtype) not in made:
            d = root / f"{shape}-{dtype}"
            hf = make_tiny_hf(d / "hf", dtype=dtype, seed=3, **SHAPES[shape])
            made[(shape, dtype)] = hf, hf_to_gguf(hf, d / f"m-{SOURCE_GGUF[dtype]}.gguf", SOURCE_GGUF[dtype])
        return made[(shape, dtype)]

    return get


def read_tensors(path):
    import gguf

    r = gguf.GGUFReader(str(path))
    file_type = int(r.fields["general.file_type"].parts[-1][0])
    return file_type, {t.name: (t.tensor_type.name, tuple(int(n) for n in t.shape), t.data.tobytes()) for t in r.tensors}


@pytest.mark.parametrize("shape,dtype,ftype", CASES)
def test_file_equals_llama_quantize(folders, tmp_path, shape, dtype, ftype):
    hf, source = folders(shape, dtype)
    theirs = llama_quantize(source, tmp_path / "llama.gguf", ftype)
    ours = quantize_hf(hf, tmp_path / "ours.gguf", ftype, progress=False)
    their_ftype, want = read_tensors(theirs)
    our_ftype, got = read_tensors(ours)
    assert our_ftype == their_ftype == FILE_TYPE[ftype]
    assert sorted(got) == sorted(want)
    wrong = [(n, want[n][0], got[n][0]) for n in want if want[n][:2] != got[n][:2]]
    assert not wrong, f"types / shapes differ (tensor, llama.cpp, ours): {wrong}"
    differ = [n for n in want if want[n][2] != got[n][2]]
    assert not differ, f"{len(differ)} of {len(want)} tensors differ in bytes: {differ[:5]}"


def test_mixes_use_what_they_are_named_for(folders, tmp_path):
    """The cases above really meet the rules: the _M mixes put some attention V and FFN down in Q6_K,
    Q4_K_S some in Q5_K, the tied embedding is Q6_K, and the fallbacks happen (checked on our files;
    the test above shows llama.cpp's are the same)."""
    types = {}
    for shape, ftype in [("lfm2", "q4_k_m"), ("lfm2", "q4_k_s"), ("deep-untied", "q5_k_m"), ("narrow", "q4_k_m")]:
        hf, _ = folders(shape, "float32")
        _, t = read_tensors(quantize_hf(hf, tmp_path / f"{shape}-{ftype}.gguf", ftype, progress=False))
        types[shape, ftype] = {n: v[0] for n, v in t.items()}
    m = types["lfm2", "q4_k_m"]
    assert m["token_embd.weight"] == "Q6_K" and m["blk.0.ffn_gate.weight"] == "Q4_K"
    assert {m[f"blk.{i}.ffn_down.weight"] for i in range(6)} == {"Q4_K", "Q6_K"}
    # attention layers 0 and 1 of n = 2: only i >= 7n/8 = 1 passes
    assert (m["blk.2.attn_v.weight"], m["blk.5.attn_v.weight"]) == ("Q4_K", "Q6_K")
    assert types["lfm2", "q4_k_s"]["blk.5.attn_v.weight"] == "Q5_K"  # the first 4
    d = types["deep-untied", "q5_k_m"]
    assert d["token_embd.weight"] == "Q5_K" and d["output.weight"] == "Q6_K"
    assert {d[f"blk.{i}.ffn_down.weight"] for i in range(17)} == {"Q5_1", "Q8_0"}  # rows of 800
    assert [d[f"blk.{i}.attn_v.weight"] for i in range(1, 17, 2)].count("Q6_K") == 4
    n = types["narrow", "q4_k_m"]
    assert n["token_embd.weight"] == "F16" and n["blk.0.ffn_gate.weight"] == "F16"
    assert n["blk.0.ffn_down.weight"] == "Q5_0" and n["blk.1.ffn_down.weight"] == "Q8_0"


def our_logits(path, ids, **kw):
    with lfm.load(str(path), **kw) as m:
        return np.array(m.forward(ids), dtype=np.float32)


def llama_logits(path, ids):
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(path), n_ctx=len(ids) + 8, n_batch=len(ids), n_ubatch=len(ids),
                          logits_all=True, n_threads=2, verbose=False, seed=0, type_k=0, type_v=0)
    try:
        llm.eval(ids)
        return np.array(llm.scores[: len(ids)], dtype=np.float32)
    finally:
        llm.close()


@pytest.mark.parametrize("ftype", K_MIXES + ["q4_0"])
def test_our_file_runs_here_in_llama_cpp_and_on_load(folders, tmp_path, ftype):
    """Round trip: our file loads in our engine and in llama.cpp (its metadata is ours, its tensors
    llama-quantize's), and lfm.load(folder, quantize=ftype) holds the same weights as the file."""
    hf, _ = folders("lfm2", "float32")
    path = quantize_hf(hf, tmp_path / f"{ftype}.gguf", ftype, progress=False)
    ids = np.random.default_rng(4).integers(1, 512, 24).tolist()
    ours = our_logits(path, ids)
    assert ours.shape == (24, 512) and np.isfinite(ours).all()
    np.testing.assert_array_equal(our_logits(hf, ids, quantize=ftype), ours)
    theirs = llama_logits(path, ids)
    assert theirs.shape == ours.shape and np.isfinite(theirs).all()
    require_exact_llama_reference()
    np.testing.assert_array_equal(ours, theirs)  # the same file, bit for bit (test_gguf_model's claim)
