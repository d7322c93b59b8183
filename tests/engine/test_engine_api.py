"""liquidlfm.load / Model / Session surface: side files, Hub ids, config, abort, repr."""
import sys
import types

import numpy as np
import pytest

import liquidlfm as lfm
from tests.fixtures.hf_models import make_hf_model

pytestmark = pytest.mark.reference  # models are built with transformers


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    return make_hf_model(tmp_path_factory.mktemp("api"), vocab_size=512, hidden_size=64, num_hidden_layers=3,
                         layer_types=["conv", "full_attention", "conv"], num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=96, tokenizer=True, seed=2)


@pytest.fixture(scope="module")
def model(path):
    with lfm.load(path) as m:
        yield m


def test_config(model):
    c = model.config
    assert isinstance(c, lfm.ModelConfig)
    assert (c.n_vocab, c.n_embd, c.n_layer, c.n_head, c.n_head_kv, c.head_dim, c.n_ff) == (512, 64, 3, 4, 2, 16, 96)
    assert c.layer_types == ["conv", "full_attention", "conv"] and c.n_layer_attn == 1 and c.n_layer_conv == 2
    assert (c.bos_id, c.eos_id, c.pad_id) == (1, 7, 0)
    assert c.tied_output and c.conv_l_cache == 3 and c.rope_theta == 1e6 and c.n_ctx_train == 4096
    assert c.weight_type == "f32"


def test_side_files(model):
    assert model.tokenizer is not None
    ids = model.tokenizer.encode("hello world")
    assert ids and max(ids) < model.config.n_vocab
    assert model.forward(ids).shape == (len(ids), 512)
    assert isinstance(model.chat_template, str) and "im_start" in model.chat_template
    assert model.generation_config.get("eos_token_id") == 7


def test_chat_template_from_tokenizer_config(path, tmp_path):
    import json
    import shutil

    d = tmp_path / "m"
    shutil.copytree(path, d)
    (d / "chat_template.jinja").unlink()
    tc = json.loads((d / "tokenizer_config.json").read_text())
    tc["chat_template"] = "{{ bos_token }}X"
    (d / "tokenizer_config.json").write_text(json.dumps(tc))
    (d / "generation_config.json").unlink()
    with lfm.load(d) as m:
        assert m.chat_template == "{{ bos_token }}X"
        assert m.generation_config == {}


def test_no_tokenizer_files(tmp_path):
    p = make_hf_model(tmp_path / "bare", vocab_size=512, hidden_size=32, num_hidden_layers=1, layer_types=["conv"],
                      intermediate_size=64, tokenizer=False)
    (p / "generation_config.json").unlink()
    with lfm.load(p) as m:
        assert m.tokenizer is None and m.chat_template is None and m.generation_config == {}


def test_repo_id_goes_to_hub(monkeypatch, path):
    calls = []
    fake = types.ModuleType("liquidlfm.hub")

    def resolve_model(repo_id, **kw):
        calls.append(repo_id)
        return path

    fake.resolve_model = resolve_model
    monkeypatch.setitem(sys.modules, "liquidlfm.hub", fake)
    monkeypatch.setattr(lfm, "hub", fake, raising=False)
    with lfm.load("LiquidAI/LFM2-350M") as m:
        assert m.config.n_embd == 64
    with lfm.load("LiquidAI/LFM2-350M-GGUF:Q4_0"):
        pass
    assert calls == ["LiquidAI/LFM2-350M", "LiquidAI/LFM2-350M-GGUF:Q4_0"]


def test_missing_local_path_is_not_a_repo_id(tmp_path):
    with pytest.raises(FileNotFoundError):
        lfm.load(tmp_path / "a" / "b" / "c")
    with pytest.raises(FileNotFoundError):
        lfm.load("./org/name")


def test_abort_callback_cancels_and_resets(model):
    ids = list(range(2, 40))
    with model.session(n_ctx=64) as s:
        want = s.prefill(ids)
        s.reset()
        s.step(3)
        s._ctx._set_abort_after(2)  # stop after the 3rd layer check
        with pytest.raises(lfm.Cancelled, match="aborted"):
            s.prefill(ids)
        assert s.pos == 0  # an aborted decode resets the session
        s._ctx._set_abort_after(-1)
        np.testing.assert_array_equal(s.prefill(ids), want)


def test_session_properties(model):
    with model.session(n_ctx=16, n_batch=4, n_threads=1) as s:
        assert (s.pos, s.n_ctx, s.n_threads) == (0, 16, 1)
        assert s.logits is None
        a = s.prefill([1, 2, 3])
        np.testing.assert_array_equal(s.logits, a)
        assert a.flags.writeable and a.flags.owndata  # step/prefill results are copies
        all_rows = s.decode([4, 5], "all")
        assert all_rows.shape == (2, 512)
        assert s.decode([6], "none") is None and s.logits is None
        assert "pos=6" in repr(s)
    assert "closed" in repr(s)


def test_describe_and_repr(model):
    d = model.describe()
    assert "model.embed_tokens.weight f32 [512, 64]" in d
    assert "model.layers.1.self_attn.q_proj.weight f32 [64, 64]" in d
    assert "3 layers" in repr(model)


def test_f16_kv_cache_session(model):
    """kv_cache="f16": close to the F32 cache, its own save/restore exact, blobs not mixed."""
    import liquidlfm as lfm

    ids = [1, 5, 9, 3, 7, 2, 8]
    with model.session(n_ctx=32) as a, model.session(n_ctx=32, kv_cache="f16") as b:
        la, lb = a.prefill(ids), b.prefill(ids)
        assert np.abs(la - lb).max() < 0.05 * max(1.0, np.abs(la).max())
        blob = b.save()
        assert len(blob) < len(a.save())  # half the bytes per cached value
        with pytest.raises((ValueError, lfm.LiquidLFMError), match="F16 KV cache"):
            a.load(blob)
        nxt = b.step(4)
        with model.session(n_ctx=32, kv_cache="f16") as c:
            c.load(blob)
            np.testing.assert_array_equal(c.step(4), nxt)
    with pytest.raises(ValueError, match="kv_cache"):
        model.session(kv_cache="q8")
