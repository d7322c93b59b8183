"""The C engine against transformers' Lfm2ForCausalLM on random-weight checkpoints.

Every config differs in hidden size, head count, GQA ratio, layer pattern and tied/untied head.
Measured errors are collected in PARITY and printed as a table after the module (run with -s).

The bound is what is measured, with a little room: on this machine the largest F32 error is 1.87e-5
(h256_mqa_untied, 600 tokens; logit scale 8.2), the others 4e-6..1.4e-5. A real bug is larger: a
QK-norm epsilon hard-coded to 1e-6 instead of the config's 1e-5 (7.8e-5 in the issue's mutation
check) fails test_full_forward_f32 and the HF-cache test for h64_gqa2_tied and h96_mha_attn_first.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import liquidlfm as lfm
from tests.fixtures.hf_models import hf_cached_decode_logits, hf_logits, load_hf_model, make_hf_model
from tests.fixtures.parity import F32_BOUND, print_parity_table, random_ids

pytestmark = pytest.mark.reference  # transformers computes the expected logits

A, C = "full_attention", "conv"

CONFIGS = {
    # name: make_hf_model kwargs
    "h64_gqa2_tied": dict(vocab_size=256, hidden_size=64, num_hidden_layers=4, layer_types=[C, A, C, A],
                          num_attention_heads=4, num_key_value_heads=2, intermediate_size=128, tie_word_embeddings=True),
    "h128_gqa4_untied_autoff": dict(vocab_size=512, hidden_size=128, num_hidden_layers=6, layer_types=[C, C, A, C, C, A],
                                    num_attention_heads=8, num_key_value_heads=2, intermediate_size=400,
                                    block_auto_adjust_ff_dim=True, block_multiple_of=32, tie_word_embeddings=False),
    "h96_mha_attn_first": dict(vocab_size=300, hidden_size=96, num_hidden_layers=3, layer_types=[A, A, C],
                               num_attention_heads=6, num_key_value_heads=6, intermediate_size=160, tie_word_embeddings=True),
    "h256_mqa_untied": dict(vocab_size=2048, hidden_size=256, num_hidden_layers=5, layer_types=[C, C, A, C, A],
                            num_attention_heads=4, num_key_value_heads=1, intermediate_size=512, tie_word_embeddings=False),
    # LFM2-2.6B's layout at a small width: 30 layers, attention at 2,5,9,13,17,21,24,27, GQA 4, and the
    # FFN width taken as written (its config has block_auto_adjust_ff_dim false, the other sizes true)
    "lfm2_2p6b_layout": dict(vocab_size=512, hidden_size=128, num_hidden_layers=30,
                             layer_types=[A if i in (2, 5, 9, 13, 17, 21, 24, 27) else C for i in range(30)],
                             num_attention_heads=8, num_key_value_heads=2, intermediate_size=672,
                             block_auto_adjust_ff_dim=False, tie_word_embeddings=True),
    "h64_all_conv": dict(vocab_size=200, hidden_size=64, num_hidden_layers=3, layer_types=[C, C, C],
                         num_attention_heads=4, num_key_value_heads=4, intermediate_size=96, tie_word_embeddings=True),
}

PARITY = {}
# 30 layers accumulate more F32 rounding than the bound allows *in transformers itself*: on the 2.6B
# layout its own F32 logits are 5.2e-5 from the same model computed in float64, ours 2.5e-5. So deep
# configs are held to the float64 truth instead: within F32_BOUND of it, or at least as close as
# transformers' F32 is.
DEEP = {"lfm2_2p6b_layout"}
LONG = 600  # tokens: past the first prefill chunk (n_batch 512 by default)


@pytest.fixture(scope="module", autouse=True)
def parity_table():
    """Print the numbers the tests below measured (visible with -s); asserts live in the tests."""
    yield
    print_parity_table(PARITY)


_ids = random_ids


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def case(request, tmp_path_factory):
    name = request.param
    kw = CONFIGS[name]
    path = make_hf_model(tmp_path_factory.mktemp(name), seed=sorted(CONFIGS).index(name), tokenizer=False, **kw)
    hf = load_hf_model(path)
    model = lfm.load(path)
    yield name, kw, path, hf, model
    model.close()


@pytest.fixture(scope="module")
def hf_float64(case):
    """The same transformers model computing in float64 (DEEP configs only)."""
    import copy

    name, _, _, hf, _ = case
    return copy.deepcopy(hf).double() if name in DEEP else None


def _check_against(name, what, got, ref32, ref64):
    """Record and assert |got - transformers F32|, or for DEEP configs |got - float64| within
    max(F32_BOUND, |transformers F32 - float64|)."""
    err = float(np.abs(got.astype(np.float64) - ref32).max())
    PARITY[(name, what)] = err
    if ref64 is None:
        assert err <= F32_BOUND
        return
    ours, theirs = float(np.abs(got - ref64).max()), float(np.abs(ref32 - ref64).max())
    PARITY[(name, what + " vs f64")] = ours
    PARITY[(name, what + " transformers f32 vs f64")] = theirs
    assert ours <= max(F32_BOUND, theirs)


@pytest.mark.parametrize("n", [37, LONG])
def test_full_forward_f32(case, hf_float64, n):
    name, kw, path, hf, model = case
    ids = _ids(n, kw["vocab_size"])
    ref = hf_logits(hf, ids)
    out = model.forward(ids)
    assert out.shape == (len(ids), kw["vocab_size"]) and out.dtype == np.float32
    print(f"\n[parity] {name} F32 {n} tokens max|liquidlfm - transformers| = "
          f"{float(np.abs(out.astype(np.float64) - ref).max()):.3g} (logit scale {np.abs(ref).max():.3g})")
    _check_against(name, f"f32_{n}", out, ref, None if hf_float64 is None else hf_logits(hf_float64, ids))
    assert (out.argmax(-1) == ref.argmax(-1)).mean() == 1.0
    assert model.config.n_ff == hf.model.layers[0].feed_forward.w1.weight.shape[0]


def test_forward_is_readonly_zero_copy_view(case):
    _, kw, _, _, model = case
    out = model.forward([1, 2, 3])
    assert not out.flags.writeable and not out.flags.owndata and out.base is not None
    again = model.forward([4, 5])
    assert out.shape[0] == 3 and again.shape[0] == 2  # the first result is not overwritten
    np.testing.assert_array_equal(out, model.forward([1, 2, 3]))


def test_decode_token_by_token_equals_full_forward(case):
    name, kw, _, _, model = case
    ids = _ids(29, kw["vocab_size"], seed=1)
    full = model.forward(ids)
    with model.session(n_ctx=64) as s:
        rows = np.stack([s.step(t) for t in ids])
        assert s.pos == len(ids)
    err = float(np.abs(rows - full).max())
    PARITY[(name, "step_vs_full")] = err
    assert err <= 1e-5


def test_chunked_prefill_equals_unchunked(case):
    _, kw, _, _, model = case
    ids = _ids(23, kw["vocab_size"], seed=2)
    with model.session(n_ctx=64) as s1, model.session(n_ctx=64, n_batch=5) as s2:
        a = s1.decode(ids, "all")
        b = s2.decode(ids, "all")
        la, lb = s1.step(3), s2.step(3)
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
    np.testing.assert_allclose(la, lb, atol=1e-5, rtol=0)
    np.testing.assert_allclose(a, model.forward(ids), atol=1e-5, rtol=0)


def test_prefill_then_steps_match_transformers_cache(case, hf_float64):
    """prefill(prompt) then step() against transformers' own incremental decode (its cache)."""
    name, kw, _, hf, model = case
    prompt, cont = _ids(11, kw["vocab_size"], seed=3), _ids(6, kw["vocab_size"], seed=4)
    ref = hf_cached_decode_logits(hf, prompt, cont)
    with model.session(n_ctx=32) as s:
        got = [s.prefill(prompt)] + [s.step(t) for t in cont]
    ref64 = None if hf_float64 is None else hf_cached_decode_logits(hf_float64, prompt, cont)
    _check_against(name, "hf_cache_decode", np.stack(got), ref, ref64)


def test_session_save_restore_continues_exactly(case):
    _, kw, _, _, model = case
    V = kw["vocab_size"]
    prompt, cont = _ids(13, V, seed=5), _ids(7, V, seed=6)
    with model.session(n_ctx=40) as s:
        s.prefill(prompt)
        blob = s.save()
        assert isinstance(blob, bytes)
        last_before = s.logits
        straight = [s.step(t) for t in cont]
        pos_straight = s.pos
    with model.session(n_ctx=40) as r:
        r.step(5)  # some unrelated state that load() must replace
        r.load(blob)
        assert r.pos == len(prompt)
        np.testing.assert_array_equal(r.logits, last_before)
        resumed = [r.step(t) for t in cont]
        assert r.pos == pos_straight
    np.testing.assert_array_equal(np.stack(straight), np.stack(resumed))


def test_reset_starts_over(case):
    _, kw, _, _, model = case
    ids = _ids(9, kw["vocab_size"], seed=7)
    with model.session(n_ctx=32) as s:
        a = s.prefill(ids)
        s.step(1)
        s.reset()
        assert s.pos == 0
        np.testing.assert_array_equal(a, s.prefill(ids))


def test_two_threads_equal_one(case):
    _, kw, _, _, model = case
    ids = _ids(17, kw["vocab_size"], seed=8)
    with model.session(n_ctx=32, n_threads=1) as s1, model.session(n_ctx=32, n_threads=2) as s2:
        assert s2.n_threads == 2
        np.testing.assert_array_equal(s1.decode(ids, "all"), s2.decode(ids, "all"))


# ---- dtypes, sharding, old-style configs ----


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_checkpoints(tmp_path, dtype):
    """Our F32 compute on 16-bit weights vs transformers on the same weights upcast to F32 (exact
    expectation), and vs transformers computing natively in that dtype (reported only)."""
    import torch
    from transformers import Lfm2ForCausalLM

    kw = CONFIGS["h128_gqa4_untied_autoff"]
    path = make_hf_model(tmp_path / dtype, dtype=dtype, seed=11, tokenizer=False, **kw)
    ids = _ids(31, kw["vocab_size"], seed=9)
    ref32 = hf_logits(load_hf_model(path), ids)
    native = Lfm2ForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype)).eval()
    with torch.no_grad():
        ref16 = native(torch.tensor([ids]), use_cache=False).logits[0].double().numpy()
    with lfm.load(path) as model:
        assert model.config.weight_type == {"bfloat16": "bf16", "float16": "f16"}[dtype]
        out = model.forward(ids).astype(np.float64)
    err32, err16 = float(np.abs(out - ref32).max()), float(np.abs(out - ref16).max())
    PARITY[("h128_gqa4_untied_autoff", dtype)] = err32
    PARITY[("h128_gqa4_untied_autoff", dtype + "_vs_native_hf")] = err16
    print(f"\n[parity] {dtype}: vs HF-F32-on-same-weights {err32:.3g}; vs HF computing in {dtype} {err16:.3g}")
    assert err32 <= F32_BOUND


def test_sharded_checkpoint_equals_single(tmp_path):
    kw = CONFIGS["h64_gqa2_tied"]
    single = make_hf_model(tmp_path / "single", seed=3, tokenizer=False, **kw)
    sharded = make_hf_model(tmp_path / "sharded", seed=3, tokenizer=False, max_shard_size="40KB", **kw)
    assert (sharded / "model.safetensors.index.json").is_file()
    assert len(list(sharded.glob("model-*.safetensors"))) > 1
    ids = _ids(12, kw["vocab_size"])
    with lfm.load(single) as a, lfm.load(sharded) as b:
        np.testing.assert_array_equal(a.forward(ids), b.forward(ids))


def test_old_style_config_keys(tmp_path):
    kw = CONFIGS["h128_gqa4_untied_autoff"]
    new = make_hf_model(tmp_path / "new", seed=4, tokenizer=False, **kw)
    old = make_hf_model(tmp_path / "old", seed=4, tokenizer=False, old_style_keys=True, **kw)
    import json

    cfg = json.loads((old / "config.json").read_text())
    assert "block_dim" in cfg and "full_attn_idxs" in cfg and "layer_types" not in cfg and "hidden_size" not in cfg
    ids = _ids(10, kw["vocab_size"])
    with lfm.load(new) as a, lfm.load(old) as b:
        assert a.config == b.config
        np.testing.assert_array_equal(a.forward(ids), b.forward(ids))


def test_single_safetensors_file_path(tmp_path):
    kw = CONFIGS["h64_gqa2_tied"]
    path = make_hf_model(tmp_path / "m", seed=5, tokenizer=False, **kw)
    with lfm.load(path) as a, lfm.load(path / "model.safetensors") as b:
        np.testing.assert_array_equal(a.forward([1, 2, 3]), b.forward([1, 2, 3]))


def test_reference_kernels_match_transformers(tmp_path):
    """LFM_KERNELS=ref (scalar path) in a fresh process: same parity bound."""
    kw = CONFIGS["h128_gqa4_untied_autoff"]
    path = make_hf_model(tmp_path / "m", seed=6, tokenizer=False, **kw)
    ids = _ids(21, kw["vocab_size"])
    np.save(tmp_path / "ref.npy", hf_logits(load_hf_model(path), ids))
    code = textwrap.dedent(f"""
        import numpy as np, liquidlfm as lfm
        assert lfm._core.kernels_default() == "ref"
        m = lfm.load({str(path)!r})
        out = m.forward({ids!r})
        with m.session() as s:
            steps = np.stack([s.step(t) for t in {ids!r}])
        ref = np.load({str(tmp_path / 'ref.npy')!r})
        print(np.abs(out - ref).max(), np.abs(steps - ref).max())
    """)
    env = dict(os.environ, LFM_KERNELS="ref")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=os.getcwd())
    assert res.returncode == 0, res.stderr
    e_full, e_step = map(float, res.stdout.split())
    PARITY[("h128_gqa4_untied_autoff", "f32_ref_kernels")] = e_full
    assert e_full <= F32_BOUND and e_step <= F32_BOUND
