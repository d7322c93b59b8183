"""Bad input to the engine: every case is a clear Python exception, never a crash or a hang."""
import errno
import json
import os
import random
import shutil
import struct

import numpy as np
import pytest

import liquidlfm as lfm
import liquidlfm.gguf
from liquidlfm import ContextFullError, ModelFormatError, UnsupportedModelError
from tests.fixtures.hf_models import make_hf_model

pytestmark = pytest.mark.reference  # models are built with transformers


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A valid tiny checkpoint (copied by tests that damage it)."""
    return make_hf_model(tmp_path_factory.mktemp("good"), vocab_size=128, hidden_size=64, num_hidden_layers=2,
                         layer_types=["conv", "full_attention"], num_attention_heads=4, num_key_value_heads=2,
                         intermediate_size=96, tokenizer=False, seed=1)


@pytest.fixture
def copy(good, tmp_path):
    dst = tmp_path / "m"
    shutil.copytree(good, dst)
    return dst


@pytest.fixture(scope="module")
def model(good):
    m = lfm.load(good)
    yield m
    m.close()


# ---- helpers to rewrite safetensors headers ----


def read_st(path):
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def write_st(path, header, data, raw_header=None):
    h = raw_header if raw_header is not None else json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + data)


def edit_config(path, **changes):
    cfg = json.loads((path / "config.json").read_text())
    for k, v in changes.items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    (path / "config.json").write_text(json.dumps(cfg))


# ---- files and folders ----


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        lfm.load(tmp_path / "nope")


def test_io_errors_carry_errno(tmp_path):
    # the exception class comes from the errno the C side recorded, not from the message's wording
    with pytest.raises(FileNotFoundError) as ei:
        lfm.load(tmp_path / "nope")
    assert ei.value.errno == errno.ENOENT
    with pytest.raises(FileNotFoundError) as ei:
        liquidlfm.gguf.read_gguf(tmp_path / "nope.gguf")
    assert ei.value.errno == errno.ENOENT and "nope.gguf" in str(ei.value)
    with pytest.raises(IsADirectoryError) as ei:
        liquidlfm.gguf.read_gguf(tmp_path)
    assert ei.value.errno == errno.EISDIR


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may read any file")
def test_unreadable_file_is_permission_error(tmp_path):
    p = tmp_path / "locked.gguf"
    p.write_bytes(b"GGUF")
    p.chmod(0)
    with pytest.raises(PermissionError) as ei:
        liquidlfm.gguf.read_gguf(p)
    assert ei.value.errno == errno.EACCES


def test_folder_without_config(copy):
    (copy / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="config.json"):
        lfm.load(copy)


def test_folder_without_weights(copy):
    (copy / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        lfm.load(copy)


def test_corrupt_safetensors(copy):
    (copy / "model.safetensors").write_bytes(bytes(random.Random(0).randrange(256) for _ in range(4096)))
    with pytest.raises(ModelFormatError, match="header length"):
        lfm.load(copy)


def test_tiny_file(copy):
    (copy / "model.safetensors").write_bytes(b"abc")
    with pytest.raises(ModelFormatError, match="too short"):
        lfm.load(copy)


def test_truncated_safetensors(copy):
    p = copy / "model.safetensors"
    raw = p.read_bytes()
    p.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ModelFormatError, match="truncated"):
        lfm.load(copy)


def test_header_length_lies(copy):
    p = copy / "model.safetensors"
    raw = p.read_bytes()
    p.write_bytes(struct.pack("<Q", len(raw) * 10) + raw[8:])
    with pytest.raises(ModelFormatError, match="header length"):
        lfm.load(copy)


def test_header_not_json(copy):
    p = copy / "model.safetensors"
    _, data = read_st(p)
    write_st(p, None, data, raw_header=b'{"a": [1, 2,, 3]}')
    with pytest.raises(ModelFormatError, match="invalid JSON"):
        lfm.load(copy)


def test_offsets_past_end(copy):
    p = copy / "model.safetensors"
    h, data = read_st(p)
    name = "model.embed_tokens.weight"
    b, e = h[name]["data_offsets"]
    h[name]["data_offsets"] = [b + len(data), e + len(data)]
    write_st(p, h, data)
    with pytest.raises(ModelFormatError, match="run past"):
        lfm.load(copy)


def test_offsets_disagree_with_shape(copy):
    p = copy / "model.safetensors"
    h, data = read_st(p)
    name = "model.embedding_norm.weight"
    b, e = h[name]["data_offsets"]
    h[name]["data_offsets"] = [b, e - 4]
    write_st(p, h, data)
    with pytest.raises(ModelFormatError, match="bytes between data_offsets"):
        lfm.load(copy)


def test_huge_shape_overflow(copy):
    p = copy / "model.safetensors"
    h, data = read_st(p)
    h["model.embedding_norm.weight"]["shape"] = [2**40, 2**40]
    write_st(p, h, data)
    with pytest.raises(ModelFormatError, match="overflow|bytes between"):
        lfm.load(copy)


def test_wrong_shape(copy):
    p = copy / "model.safetensors"
    h, data = read_st(p)
    h["model.layers.0.conv.conv.weight"]["shape"] = [3, 1, 64]
    write_st(p, h, data)
    with pytest.raises(ModelFormatError, match=r"conv.conv.weight.*expected shape \[64, 1, 3\], got \[3, 1, 64\]"):
        lfm.load(copy)


def test_unknown_dtype(copy):
    p = copy / "model.safetensors"
    h, data = read_st(p)
    h["model.embedding_norm.weight"]["dtype"] = "F33"
    write_st(p, h, data)
    with pytest.raises(ModelFormatError, match="unknown dtype"):
        lfm.load(copy)


def test_valid_but_unsupported_dtype(copy):
    p = copy / "model.safetensors"
    h, data = read_st(p)
    t = h["model.embedding_norm.weight"]
    t["dtype"] = "I32"  # same 4-byte size, so the header stays consistent
    write_st(p, h, data)
    with pytest.raises(UnsupportedModelError, match="dtype I32"):
        lfm.load(copy)


def test_missing_tensor(copy):
    p = copy / "model.safetensors"
    h, data = read_st(p)
    del h["model.layers.1.self_attn.q_layernorm.weight"]
    write_st(p, h, data)
    with pytest.raises(ModelFormatError, match="missing tensor 'model.layers.1.self_attn.q_layernorm.weight'"):
        lfm.load(copy)


def test_unexpected_tensor(copy):
    p = copy / "model.safetensors"
    h, data = read_st(p)
    h["model.vision_tower.patch_embed.weight"] = dict(h["model.embedding_norm.weight"])
    write_st(p, h, data)
    with pytest.raises(UnsupportedModelError, match="unexpected tensor 'model.vision_tower"):
        lfm.load(copy)


def test_header_fuzz_never_crashes(good, tmp_path):
    """Random byte mutations of the header: only our exceptions, never a crash."""
    raw = (good / "model.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    rng = random.Random(1234)
    d = tmp_path / "fz"
    shutil.copytree(good, d)
    outcomes = set()
    for _ in range(150):
        b = bytearray(raw[: 8 + n])
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(8, len(b))] = rng.randrange(256)
        (d / "model.safetensors").write_bytes(bytes(b) + raw[8 + n:])
        try:
            lfm.load(d).close()
            outcomes.add("ok")
        except (ModelFormatError, UnsupportedModelError, FileNotFoundError) as e:
            outcomes.add(type(e).__name__)
    assert "ModelFormatError" in outcomes


# ---- sharded index ----


def test_index_names_missing_shard(good, tmp_path):
    d = make_hf_model(tmp_path / "sh", vocab_size=128, hidden_size=64, num_hidden_layers=2,
                      layer_types=["conv", "full_attention"], intermediate_size=96, tokenizer=False,
                      max_shard_size="30KB")
    shards = sorted(d.glob("model-*.safetensors"))
    assert len(shards) > 1
    shards[-1].unlink()
    with pytest.raises(FileNotFoundError):
        lfm.load(d)


def test_index_path_traversal(good, tmp_path):
    d = tmp_path / "sh"
    shutil.copytree(good, d)
    h, _ = read_st(d / "model.safetensors")
    wm = {k: "model.safetensors" for k in h if k != "__metadata__"}
    wm["model.embed_tokens.weight"] = "../../etc/passwd"
    (d / "model.safetensors.index.json").write_text(json.dumps({"weight_map": wm}))
    with pytest.raises(ModelFormatError, match="file name in the same folder"):
        lfm.load(d)


# ---- config.json ----


@pytest.mark.parametrize("field", ["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                   "num_key_value_heads", "intermediate_size", "layer_types"])
def test_missing_config_field(copy, field):
    edit_config(copy, **{field: None})
    with pytest.raises(ModelFormatError, match=f"missing required field.*\"{field}\""):
        lfm.load(copy)


def test_config_not_json(copy):
    (copy / "config.json").write_text('{"vocab_size": 128,')
    with pytest.raises(ModelFormatError, match="config.json: invalid JSON"):
        lfm.load(copy)


def test_config_bad_types(copy):
    edit_config(copy, hidden_size="64")
    with pytest.raises(ModelFormatError, match='"hidden_size" must be an integer'):
        lfm.load(copy)


def test_config_bad_layer_type(copy):
    edit_config(copy, layer_types=["conv", "sliding_attention"])
    with pytest.raises(UnsupportedModelError, match="sliding_attention"):
        lfm.load(copy)


def test_config_heads_not_divisible(copy):
    edit_config(copy, num_key_value_heads=3)
    with pytest.raises(ModelFormatError, match="multiple of num_key_value_heads"):
        lfm.load(copy)


def test_config_ffn_width_disagrees_with_tensors(copy):
    edit_config(copy, intermediate_size=200)
    with pytest.raises(ModelFormatError, match="FFN width"):
        lfm.load(copy)


def test_moe_config_on_a_dense_architecture(copy):
    """model_type lfm2_moe is LFM2-MoE (tests/engine/test_moe.py), but not with a dense architecture."""
    edit_config(copy, model_type="lfm2_moe", num_experts=32, num_experts_per_tok=4, moe_intermediate_size=64)
    with pytest.raises(UnsupportedModelError, match='"Lfm2ForCausalLM" is not supported .expected Lfm2MoeForCausalLM'):
        lfm.load(copy)


@pytest.mark.parametrize("field", ["num_experts", "num_experts_per_tok", "moe_intermediate_size"])
def test_moe_config_missing_field(copy, field):
    moe = dict(num_experts=32, num_experts_per_tok=4, moe_intermediate_size=64)
    moe[field] = None
    edit_config(copy, model_type="lfm2_moe", architectures=["Lfm2MoeForCausalLM"], **moe)
    with pytest.raises(ModelFormatError, match=f'missing required field "{field}"'):
        lfm.load(copy)


def test_moe_config_more_experts_per_token_than_experts(copy):
    edit_config(copy, model_type="lfm2_moe", architectures=["Lfm2MoeForCausalLM"], num_experts=4, num_experts_per_tok=5,
                moe_intermediate_size=64)
    with pytest.raises(ModelFormatError, match="num_experts_per_tok 5 is larger than num_experts 4"):
        lfm.load(copy)


def test_moe_keys_without_model_type(copy):
    edit_config(copy, num_experts=32)
    with pytest.raises(UnsupportedModelError, match='"num_experts" marks a mixture-of-experts model, but model_type is not'):
        lfm.load(copy)


def test_vision_config(copy):
    edit_config(copy, model_type="lfm2_vl", vision_config={"hidden_size": 64})
    with pytest.raises(UnsupportedModelError, match="vision-language"):
        lfm.load(copy)


def test_other_architecture(copy):
    edit_config(copy, model_type="llama")
    with pytest.raises(UnsupportedModelError, match='"llama"'):
        lfm.load(copy)


def test_rope_scaling_unsupported(copy):
    edit_config(copy, rope_parameters={"rope_type": "yarn", "rope_theta": 1e6, "factor": 4.0})
    with pytest.raises(UnsupportedModelError, match="yarn"):
        lfm.load(copy)


# ---- tokens and calls ----


@pytest.mark.parametrize("ids", [[], np.array([], dtype=np.int64)])
def test_empty_token_list(model, ids):
    with pytest.raises(ValueError, match="empty token list"):
        model.forward(ids)
    with model.session(n_ctx=8) as s:
        with pytest.raises(ValueError, match="empty token list"):
            s.prefill(ids)


@pytest.mark.parametrize("bad", [128, 10**6, -1, 2**40, 2**70])
def test_token_out_of_range(model, bad):
    with pytest.raises(ValueError, match="out of range"):
        model.forward([1, bad])
    with model.session(n_ctx=8) as s:
        with pytest.raises(ValueError, match="out of range"):
            s.step(bad)
        assert s.pos == 0


@pytest.mark.parametrize("bad", ["abc", [1.5, 2], [[1, 2]], None])
def test_token_wrong_type(model, bad):
    with pytest.raises((TypeError, ValueError)):
        model.forward(bad)


def test_step_takes_an_int(model):
    with model.session(n_ctx=8) as s:
        with pytest.raises(TypeError):
            s.step([1])
        with pytest.raises(TypeError):
            s.step(1.0)


def test_context_full_changes_nothing(model):
    with model.session(n_ctx=8) as s:
        s.prefill([1, 2, 3, 4, 5])
        before = s.logits
        with pytest.raises(ContextFullError, match="context full"):
            s.prefill([1, 2, 3, 4])
        assert s.pos == 5
        np.testing.assert_array_equal(s.logits, before)
        s.prefill([1, 2, 3])
        with pytest.raises(ContextFullError):
            s.step(1)


def test_bad_session_args(model):
    for kw in (dict(n_ctx=0), dict(n_ctx=-5), dict(n_batch=0), dict(n_threads=-1), dict(n_ctx="8")):
        with pytest.raises(ValueError):
            model.session(**kw)


def test_bad_logits_mode(model):
    with model.session(n_ctx=8) as s:
        with pytest.raises(ValueError, match="logits must be"):
            s.decode([1], "first")


# ---- closed objects ----


def test_closed_model(good):
    m = lfm.load(good)
    m.close()
    assert m.closed
    with pytest.raises(ValueError, match="model is closed"):
        m.forward([1])
    with pytest.raises(ValueError, match="model is closed"):
        m.session()
    with pytest.raises(ValueError, match="model is closed"):
        m.describe()
    m.close()  # idempotent


def test_closed_session(model):
    s = model.session(n_ctx=8)
    s.step(1)
    s.close()
    for call in (lambda: s.step(1), lambda: s.prefill([1]), lambda: s.save(), lambda: s.reset(), lambda: s.pos):
        with pytest.raises(ValueError, match="session is closed"):
            call()
    s.close()


def test_session_of_closed_model(good):
    m = lfm.load(good)
    s = m.session(n_ctx=8)
    s.step(1)
    m.close()
    with pytest.raises(ValueError, match="model is closed"):
        s.step(2)
    s.close()  # frees the deferred model


def test_with_blocks_close(good):
    with lfm.load(good) as m:
        with m.session(n_ctx=4) as s:
            s.step(1)
        assert s.closed
    assert m.closed


def test_forward_result_outlives_model(good):
    m = lfm.load(good)
    out = m.forward([1, 2, 3])
    m.close()
    del m
    assert np.isfinite(out).all() and out.shape == (3, 128)


# ---- state blobs ----


def test_state_blob_errors(model, tmp_path):
    with model.session(n_ctx=16) as s:
        s.prefill([1, 2, 3])
        blob = s.save()
        with pytest.raises(ModelFormatError, match="too short"):
            s.load(b"xx")
        with pytest.raises(ModelFormatError, match="bad magic"):
            s.load(b"\0" * len(blob))
        with pytest.raises(ModelFormatError, match="truncated"):
            s.load(blob[:-4])
        bad = bytearray(blob)
        bad[-1] ^= 0xFF
        with pytest.raises(ModelFormatError, match="checksum"):
            s.load(bytes(bad))
        assert s.pos == 3
    with model.session(n_ctx=2) as small:
        with pytest.raises(ContextFullError):
            small.load(blob)
    other = make_hf_model(tmp_path / "other", vocab_size=128, hidden_size=32, num_hidden_layers=2,
                          layer_types=["conv", "full_attention"], intermediate_size=64, tokenizer=False)
    with lfm.load(other) as m2, m2.session(n_ctx=16) as s2:
        with pytest.raises(ValueError, match="another shape"):
            s2.load(blob)


@pytest.mark.parametrize("qtype, error, match", [
    ("q2_K", lfm.UnsupportedModelError, "no quantizer for llama.cpp's file type 'q2_K'"),
    ("iq2_xxs", lfm.UnsupportedModelError, "no quantizer"), ("q3_k_m", lfm.UnsupportedModelError, "no quantizer"),
    ("q8_1", ValueError, "unknown file type 'q8_1'"), ("q8_K", ValueError, "unknown file type"),
    ("f16", ValueError, "not a quantized file type"), ("bf16", ValueError, "not a quantized file type"),
])
def test_quantize_on_load_takes_a_quantized_file_type(good, qtype, error, match):
    # llama.cpp's file types whose types we cannot write are named as such; the activation formats
    # (Q8_1, Q8_K) are no file type at all; the float ones are not a quantization
    with pytest.raises(error, match=match) as e:
        lfm.load(good, quantize=qtype)
    if error is ValueError and "unknown" in match:
        assert "q4_k_m" in str(e.value)  # the message lists what is accepted
