"""The tensor table (csrc/model/tensors.c, _core.tensor_table()) is the one list of LFM2 weights:
it covers what transformers' Lfm2ForCausalLM and Lfm2MoeForCausalLM have, names tensors like
llama.cpp's converter, and the Python quantizer, the GGUF loader and the safetensors loader built on
it accept and reject the same checkpoints, with errors that name the tensor."""
import json
import re
import shutil
import struct

import numpy as np
import pytest

import liquidlfm as lfm
from liquidlfm import ModelFormatError, UnsupportedModelError
from liquidlfm.gguf import read_gguf
from liquidlfm.quantize import layer_scopes, quantize_hf, tensor_table
from tests.fixtures.hf_models import make_hf_model, make_moe_hf_model

LAYER_TYPES = ["conv", "full_attention", "conv"]
SHAPE = dict(vocab_size=320, hidden_size=64, num_hidden_layers=3, layer_types=LAYER_TYPES, num_attention_heads=4,
             num_key_value_heads=2, intermediate_size=96, tokenizer=False, seed=3)
DIMS = {"V": 320, "H": 64, "3H": 192, "F": 96, "nh*hd": 64, "nkv*hd": 32, "hd": 16, "K": 3}


def expected(layer_types, *, head=True, moe=None, dims=DIMS):
    """{HF name: (GGUF name, PyTorch shape, row)} of every tensor the table gives these layers. moe:
    the MoE part of the config (n_expert, n_layer_dense, expert_bias) for an LFM2-MoE model; an expert
    stack's HF name is its pattern with "*" for the expert, its shape the stack's."""
    cfg = dict(layer_types=layer_types, n_layer=len(layer_types), **(moe or {}), moe=moe is not None)
    out = {}
    for layer in [-1] + list(range(len(layer_types))):
        for row in tensor_table():
            if row["scope"] not in layer_scopes(cfg, layer) or (row["role"] == "head" and not head):
                continue
            hf = (row["hf"].replace("experts.%d", "experts.*") % layer) if layer >= 0 else row["hf"]
            gg = row["gguf"] % layer if layer >= 0 else row["gguf"]
            out[hf] = (gg, tuple(dims[d] for d in row["shape"]), row)
    return out


def test_table_rows():
    rows = tensor_table()
    assert len({r["id"] for r in rows}) == len(rows)
    for r in rows:
        assert r["scope"] in ("global", "layer", "conv", "attn", "ffn", "moe", "moe_bias", "attn_gate", "sandwich")
        assert ("%d" in r["gguf"]) == ("%d" in r["hf"]) == ("%d" in r["hf_lfm3"]) == (r["scope"] != "global"), r
        # an expert stack (3-D) has one HF tensor per expert: a second %d
        assert r["hf"].count("%d") == (2 if len(r["ne"]) == 3 else r["scope"] != "global"), r
        assert r["shape"] == tuple(reversed(r["ne"]))
        assert r["is_matmul"] == (r["role"] in ("matrix", "head", "router"))
        assert r["want_f32"] == (r["role"] in ("norm", "conv_kernel", "bias")) == (len(r["ne"]) == 1 or r["role"] == "conv_kernel")
    # the final norm: HF embedding_norm only (transformers and llama.cpp's converter know no
    # model.norm for LFM2); GGUF token_embd_norm, or ollama's output_norm
    (fn,) = [r for r in rows if r["id"] == "output_norm"]
    assert (fn["hf"], fn["gguf"], fn["gguf_alias"]) == ("model.embedding_norm.weight", "token_embd_norm.weight",
                                                        "output_norm.weight")
    assert not any(r["hf"] == "model.norm.weight" for r in rows)


@pytest.mark.reference
@pytest.mark.parametrize("tie", [True, False])
def test_table_covers_transformers_state_dict(tie):
    """Every parameter of transformers' Lfm2ForCausalLM is one row, with the row's shape."""
    import torch
    from transformers import Lfm2Config, Lfm2ForCausalLM

    cfg = Lfm2Config(vocab_size=DIMS["V"], hidden_size=DIMS["H"], num_hidden_layers=len(LAYER_TYPES),
                     num_attention_heads=4, num_key_value_heads=2, intermediate_size=DIMS["F"],
                     block_ff_dim=DIMS["F"], block_auto_adjust_ff_dim=False, layer_types=LAYER_TYPES,
                     tie_word_embeddings=tie)
    torch.manual_seed(0)
    sd = Lfm2ForCausalLM(cfg).state_dict()
    want = expected(LAYER_TYPES)
    assert set(sd) == set(want)
    for name, t in sd.items():
        shape = want[name][1]
        if want[name][2]["role"] == "conv_kernel":
            shape = (shape[0], 1, shape[1])
        assert tuple(t.shape) == shape, name


def test_gguf_names_match_llama_cpp():
    """Each row's GGUF name is what llama.cpp's converter (the gguf package's name map) gives its HF name."""
    import gguf

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LFM2, len(LAYER_TYPES))
    for hf, (gg, _, _) in expected(LAYER_TYPES).items():
        assert names.get_name(hf, try_suffixes=(".weight",)) == gg, hf
    assert names.get_name("model.norm.weight", try_suffixes=(".weight",)) is None


# ---- round trip: HF -> our quantizer -> GGUF -> load ----


def describe(model):
    """{name: (type, [rows, cols])} from Model.describe()."""
    out = {}
    for line in model.describe().splitlines():
        name, typ, shape = line.split(" ", 2)
        out[name] = (typ, shape)
    return out


@pytest.mark.reference
@pytest.mark.parametrize("tie", [True, False])
def test_quantizer_and_loaders_agree(tmp_path, tie):
    hf = make_hf_model(tmp_path / "hf", tie_word_embeddings=tie, **SHAPE)
    gguf_path = quantize_hf(hf, tmp_path / "m.gguf", "f32", progress=False)
    want = expected(LAYER_TYPES, head=not tie)

    info = read_gguf(gguf_path)
    assert [t.name for t in info.tensors] == [g for g, _, _ in want.values()]  # the table's order
    for hf_name, (gg, shape, row) in want.items():
        t = info.tensor(gg)
        assert t.shape == shape and t.type_name == "f32", hf_name

    with lfm.load(hf) as a, lfm.load(gguf_path) as b:
        da, db = describe(a), describe(b)
        assert set(da) == set(want)
        assert {want[n][0]: v for n, v in da.items()} == db
        ids = [1, 5, 9, 3, 7, 2]
        np.testing.assert_allclose(b.forward(ids), a.forward(ids), rtol=0, atol=1e-5)


# ---- the quantizer rejects what the safetensors loader rejects, naming the tensor ----


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return make_hf_model(tmp_path_factory.mktemp("good"), **SHAPE)


def read_st(path):
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def write_st(path, header, data):
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + data)


def rename(h, old, new):
    h[new] = h.pop(old)


def conv_transposed(h):
    h["model.layers.0.conv.conv.weight"]["shape"] = [3, 1, 64]


BROKEN = {
    # transformers' name for the final norm is model.embedding_norm; model.norm is not an alias
    "model_norm": (lambda h: rename(h, "model.embedding_norm.weight", "model.norm.weight"),
                   ModelFormatError, "missing tensor 'model.embedding_norm.weight'"),
    "missing": (lambda h: h.pop("model.layers.1.self_attn.q_layernorm.weight"),
                ModelFormatError, "missing tensor 'model.layers.1.self_attn.q_layernorm.weight'"),
    "misshaped": (conv_transposed, ModelFormatError,
                  "tensor 'model.layers.0.conv.conv.weight': expected shape [64, 1, 3], got [3, 1, 64]"),
    "unexpected": (lambda h: h.__setitem__("model.vision_tower.w.weight", dict(h["model.embedding_norm.weight"])),
                   UnsupportedModelError, "unexpected tensor 'model.vision_tower.w.weight'"),
    "lm_head_untied_missing": (None, ModelFormatError, "missing tensor 'lm_head.weight'"),
}


@pytest.mark.reference
@pytest.mark.parametrize("case", list(BROKEN))
def test_quantizer_rejects_like_loader(good, tmp_path, case):
    edit, exc, msg = BROKEN[case]
    d = tmp_path / "m"
    shutil.copytree(good, d)
    if edit is None:  # config unties the head, but the file has no lm_head.weight
        cfg = json.loads((d / "config.json").read_text())
        cfg["tie_word_embeddings"] = False
        (d / "config.json").write_text(json.dumps(cfg))
    else:
        h, data = read_st(d / "model.safetensors")
        edit(h)
        write_st(d / "model.safetensors", h, data)
    with pytest.raises(exc, match=re.escape(msg)):
        lfm.load(d)
    with pytest.raises(exc, match=re.escape(msg)):
        quantize_hf(d, tmp_path / "out.gguf", "q8_0", progress=False)
    assert not (tmp_path / "out.gguf").exists()


@pytest.mark.reference
def test_tied_head_saved_anyway_is_dropped(good, tmp_path):
    """A tied checkpoint that also saved lm_head.weight: both sides use the embedding."""
    d = tmp_path / "m"
    shutil.copytree(good, d)
    h, data = read_st(d / "model.safetensors")
    h["lm_head.weight"] = dict(h["model.embed_tokens.weight"])
    write_st(d / "model.safetensors", h, data)
    path = quantize_hf(d, tmp_path / "m.gguf", "f32", progress=False)
    assert "output.weight" not in [t.name for t in read_gguf(path).tensors]
    with lfm.load(d) as a, lfm.load(path) as b:
        ids = [1, 2, 3]
        np.testing.assert_allclose(b.forward(ids), a.forward(ids), rtol=0, atol=1e-5)
