"""What the engine can run, checked once at load (lfm_model_validate) whatever the loader: model
dimensions against the kernels' limits (LFM_MAX_HEAD_DIM and the others in model/model.h), every
weight's type against its role (a matmul kernel, a row decoder), and GGUF tensors at any alignment.

GGUFs are written here with the `gguf` package's GGUFWriter directly (names spelled out, raw bytes
for the types the package cannot encode), so each one can carry exactly the flaw under test. Run
the alignment test under UBSan with tests/sanitize/run.sh (a misaligned float load aborts there)."""
import json

import numpy as np
import pytest

import liquidlfm as lfm
from liquidlfm import ModelFormatError, UnsupportedModelError
from tests.fixtures.gguf_models import write_gguf_file

MAX_HEAD_DIM = 1024  # LFM_MAX_HEAD_DIM, csrc/kernels/kernels.h


def lfm2_tensors(V, H, nh, nkv, F, layers, K=3, tied=True, seed=0, float_dtype=np.float32):
    """{GGUF name: numpy array in PyTorch's shape (rows, row length)} of a random LFM2 model."""
    rng = np.random.default_rng(seed)
    hd = H // nh

    def mat(rows, cols):
        return (rng.standard_normal((rows, cols)) * 0.1).astype(float_dtype)

    def norm(n):
        return (1 + rng.standard_normal(n) * 0.1).astype(np.float32)

    t = {"token_embd.weight": mat(V, H), "token_embd_norm.weight": norm(H)}
    if not tied:
        t["output.weight"] = mat(V, H)
    for i, kind in enumerate(layers):
        b = f"blk.{i}."
        t[b + "attn_norm.weight"] = norm(H)
        if kind == "conv":
            t[b + "shortconv.in_proj.weight"] = mat(3 * H, H)
            t[b + "shortconv.conv.weight"] = (rng.standard_normal((H, K)) * 0.3).astype(np.float32)
            t[b + "shortconv.out_proj.weight"] = mat(H, H)
        else:
            t[b + "attn_q.weight"] = mat(nh * hd, H)
            t[b + "attn_k.weight"] = mat(nkv * hd, H)
            t[b + "attn_v.weight"] = mat(nkv * hd, H)
            t[b + "attn_output.weight"] = mat(H, nh * hd)
            t[b + "attn_q_norm.weight"] = norm(hd)
            t[b + "attn_k_norm.weight"] = norm(hd)
        t[b + "ffn_norm.weight"] = norm(H)
        t[b + "ffn_gate.weight"] = mat(F, H)
        t[b + "ffn_up.weight"] = mat(F, H)
        t[b + "ffn_down.weight"] = mat(H, F)
    return t


def write_gguf(path, *, V=64, H=64, nh=4, nkv=2, F=64, layers=("conv", "full_attention"), K=3, tied=True,
               raw=None, alignment=None, seed=0, float_dtype=np.float32, name="lfm2 test", meta=None):
    """An LFM2 GGUF. raw: {tensor name: GGMLQuantizationType} stored as zero bytes of that type's
    size (liquidlfm's block sizes) instead of the float array. alignment: general.alignment.
    meta: more uint32 keys."""
    import gguf

    from liquidlfm import _core

    w = gguf.GGUFWriter(str(path), "lfm2")
    w.add_name(name)
    if alignment is not None:
        w.add_custom_alignment(alignment)
    w.add_uint32("lfm2.block_count", len(layers))
    w.add_uint32("lfm2.embedding_length", H)
    w.add_uint32("lfm2.feed_forward_length", F)
    w.add_uint32("lfm2.context_length", 4096)
    w.add_uint32("lfm2.attention.head_count", nh)
    w.add_array("lfm2.attention.head_count_kv", [nkv if k == "full_attention" else 0 for k in layers])
    w.add_uint32("lfm2.shortconv.l_cache", K)
    w.add_float32("lfm2.attention.layer_norm_rms_epsilon", 1e-5)
    w.add_float32("lfm2.rope.freq_base", 1e6)
    for k, v in (meta or {}).items():  # more uint32 metadata
        w.add_uint32(k, v)
    for name, a in lfm2_tensors(V, H, nh, nkv, F, layers, K, tied, seed, float_dtype).items():
        if raw and name in raw:
            _, be, bb = _core.type_info(int(raw[name]))
            rows, cols = a.shape
            w.add_tensor(name, np.zeros(rows * cols // be * bb, np.int8), raw_shape=(rows, cols), raw_dtype=raw[name])
        else:
            w.add_tensor(name, a)
    write_gguf_file(w)
    return path


# ---- dimensions against the kernels' limits ------------------------------------------------

@pytest.fixture(scope="module")
def gguf_head_2048(tmp_path_factory):
    # hidden 2048, one head: head_dim 2048 = H / n_head, from the metadata alone
    return write_gguf(tmp_path_factory.mktemp("hd") / "hd2048.gguf", V=32, H=2048, nh=1, nkv=1, F=32,
                      layers=("full_attention",), float_dtype=np.float16)


@pytest.mark.parametrize("kv_cache", ["f16", "f32"])
def test_gguf_head_dim_over_the_limit_is_refused_at_load(gguf_head_2048, kv_cache):
    with pytest.raises(UnsupportedModelError, match=r"head_dim 2048 .*larger than 1024.*LFM_MAX_HEAD_DIM"):
        lfm.load(gguf_head_2048, kv_cache=kv_cache)


@pytest.fixture(scope="module")
def hf_head_2048(tmp_path_factory):
    from tests.fixtures.hf_models import make_hf_model

    return make_hf_model(tmp_path_factory.mktemp("hf") / "hd2048", vocab_size=32, hidden_size=2048, num_hidden_layers=1,
                         layer_types=["full_attention"], num_attention_heads=1, num_key_value_heads=1,
                         intermediate_size=32, tokenizer=False, dtype="float16")


def _set_head_dim(folder, head_dim):
    cfg = json.loads((folder / "config.json").read_text())
    cfg.pop("head_dim", None)
    if head_dim is not None:
        cfg["head_dim"] = head_dim
    (folder / "config.json").write_text(json.dumps(cfg))


@pytest.mark.reference
@pytest.mark.parametrize("head_dim", [None, 2048], ids=["default", "explicit"])
@pytest.mark.parametrize("kv_cache", ["f16", "f32"])
@pytest.mark.parametrize("quantize", [None, "q8_0"])
def test_hf_head_dim_over_the_limit_is_refused_at_load(hf_head_2048, head_dim, kv_cache, quantize):
    _set_head_dim(hf_head_2048, head_dim)  # None: config.json without head_dim (H / n_head)
    with pytest.raises(UnsupportedModelError, match=r"head_dim 2048 .*larger than 1024"):
        lfm.load(hf_head_2048, kv_cache=kv_cache, quantize=quantize)


def test_head_dim_at_the_limit_loads_and_runs(tmp_path):
    p = write_gguf(tmp_path / "hd1024.gguf", V=48, H=MAX_HEAD_DIM, nh=1, nkv=1, F=32, layers=("conv", "full_attention"))
    ids = [1, 5, 9, 2, 7]
    out = {}
    for kv in ("f32", "f16"):
        m = lfm.load(p, kv_cache=kv)
        assert m.config.head_dim == MAX_HEAD_DIM
        out[kv] = np.asarray(m.forward(ids), dtype=np.float64)
        with m.session(n_ctx=16) as s:  # the one-token path too
            s.prefill(ids[:-1])
            last = np.asarray(s.step(ids[-1]), dtype=np.float64)
        assert np.isfinite(out[kv]).all() and np.isfinite(last).all()
        m.close()
    # the F16 cache rounds q, k, v and the weights: close to the exact cache, not equal
    np.testing.assert_allclose(out["f16"], out["f32"], atol=5e-2)


@pytest.mark.reference
def test_hf_head_dim_at_the_limit_matches_transformers(tmp_path):
    from tests.fixtures.hf_models import hf_logits, load_hf_model, make_hf_model

    d = make_hf_model(tmp_path / "hd1024", vocab_size=48, hidden_size=MAX_HEAD_DIM, num_hidden_layers=2,
                      layer_types=["conv", "full_attention"], num_attention_heads=1, num_key_value_heads=1,
                      intermediate_size=32, tokenizer=False)
    _set_head_dim(d, None)
    ids = [3, 1, 4, 1, 5]
    ref = hf_logits(load_hf_model(d), ids)
    for kv in ("f32", "f16"):
        got = np.asarray(lfm.load(d, kv_cache=kv).forward(ids), dtype=np.float64)
        np.testing.assert_allclose(got, ref, atol=1e-3 if kv == "f32" else 5e-2)


def test_conv_only_model_is_not_held_to_the_head_limit(tmp_path):
    # no attention layer: head_dim (here H / 1 = 2048) is never used by a kernel
    p = write_gguf(tmp_path / "conv.gguf", V=32, H=2048, nh=1, nkv=1, F=32, layers=("conv",), float_dtype=np.float16)
    m = lfm.load(p)
    assert np.isfinite(m.forward([1, 2])).all()


@pytest.mark.reference
def test_conv_kernel_size_over_the_limit_is_refused(tmp_path):
    cfg_dir = tmp_path / "k"
    from tests.fixtures.hf_models import make_hf_model

    d = make_hf_model(cfg_dir, vocab_size=32, hidden_size=64, num_hidden_layers=2, layer_types=["conv", "full_attention"],
                      num_attention_heads=4, num_key_value_heads=2, intermediate_size=64, tokenizer=False)
    # the GGUF reader bounds l_cache at 64 (its own sanity range); lfm_model_validate names the limit for both
    p = write_gguf(tmp_path / "k65.gguf", K=65)
    with pytest.raises(ModelFormatError, match="l_cache"):
        lfm.load(p)
    cfg = json.loads((d / "config.json").read_text())
    cfg["conv_L_cache"] = 65
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises((ModelFormatError, UnsupportedModelError), match="conv_L_cache|conv_l_cache"):
        lfm.load(d)


def test_special_ids_outside_the_vocabulary_are_unknown(tmp_path):
    # GGUF metadata ids are not checked against the vocabulary by the reader: the model calls them unknown
    p = write_gguf(tmp_path / "ids.gguf", V=64, meta={"tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 64,
                                                       "tokenizer.ggml.padding_token_id": 1 << 30})
    c = lfm.load(p).config
    assert (c.bos_id, c.eos_id, c.pad_id) == (1, None, None)


# ---- every weight type computable in its role -----------------------------------------------

def _types():
    import gguf

    return gguf.GGMLQuantizationType


@pytest.mark.parametrize("type_name", ["Q8_1", "Q8_K"])
@pytest.mark.parametrize("tensor", ["blk.0.ffn_gate.weight", "blk.1.attn_q.weight", "blk.0.shortconv.in_proj.weight"])
def test_matmul_weight_without_kernel_is_refused(tmp_path, type_name, tensor):
    p = write_gguf(tmp_path / "m.gguf", H=256, F=256, raw={tensor: _types()[type_name]})
    with pytest.raises(UnsupportedModelError, match=rf"(?i)'{tensor}'.*{type_name.lower()}.*no matmul kernel"):
        lfm.load(p)


@pytest.mark.parametrize("type_name", ["Q8_1", "Q8_K"])
def test_untied_head_without_kernel_is_refused(tmp_path, type_name):
    p = write_gguf(tmp_path / "m.gguf", H=256, F=256, tied=False, raw={"output.weight": _types()[type_name]})
    with pytest.raises(UnsupportedModelError, match=rf"(?i)'output.weight'.*{type_name.lower()}.*no matmul kernel"):
        lfm.load(p)


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("type_name", ["Q8_1", "Q8_K"])
def test_embedding_without_row_decoder_is_refused(tmp_path, type_name, tied):
    # tied: the head is the same Q8_K bytes, which used to give uninitialized memory as logits
    p = write_gguf(tmp_path / "m.gguf", H=256, F=256, tied=tied, raw={"token_embd.weight": _types()[type_name]})
    with pytest.raises(UnsupportedModelError, match=rf"(?i)'token_embd.weight'.*{type_name.lower()}"):
        lfm.load(p)


def test_quantized_weights_with_kernels_still_load(tmp_path):
    p = write_gguf(tmp_path / "ok.gguf", H=256, F=256)
    assert np.isfinite(lfm.load(p).forward([1, 2, 3])).all()
    for q in ("q8_0", "q4_0", "q5_1"):  # quantize on load: validated again after the re-encode
        assert np.isfinite(lfm.load(p, quantize=q).forward([1, 2, 3])).all()


# ---- GGUF tensors at odd offsets ---------------------------------------------------------

def test_alignment_one_loads_and_matches_the_aligned_file(tmp_path):
    from liquidlfm.gguf import read_gguf

    kw = dict(V=33, H=64, nh=4, nkv=2, F=64, layers=("conv", "full_attention"))
    aligned = write_gguf(tmp_path / "a32.gguf", **kw)
    # general.alignment = 1: the data section starts right after the header; a name of the right
    # length puts it (and so every F32 tensor, all of whose sizes are multiples of 4) at an odd offset
    a1 = tmp_path / "a1.gguf"
    for pad in range(4):
        write_gguf(a1, alignment=1, name="lfm2 test" + "x" * pad, **kw)
        info = read_gguf(a1)
        if info.data_offset % 2 == 1:
            break
    assert info.alignment == 1 and info.data_offset % 2 == 1
    assert all(t.offset % 2 == 1 for t in info.tensors)  # offsets in the file
    ids = [1, 2, 3, 30, 7]
    for kv in ("f32", "f16"):
        got = lfm.load(a1, kv_cache=kv).forward(ids)
        want = lfm.load(aligned, kv_cache=kv).forward(ids)
        np.testing.assert_array_equal(got, want)
    for q in ("q8_0", "q4_0"):  # quantize on load reads the copies too
        np.testing.assert_array_equal(lfm.load(a1, quantize=q).forward(ids), lfm.load(aligned, quantize=q).forward(ids))
