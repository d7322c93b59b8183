"""LFM3 (transformers' Lfm3ForCausalLM) on the C engine, against transformers on random-weight checkpoints.

The configs differ in layer-kind order (conv / sliding / full, all-conv-but-one, attention first,
transformers' default pattern), GQA ratio (1, 2, 4), head_dim (given, not hidden / heads), window
(8 or 16: prompts run far past it), RoPE (the default per-kind pair and a custom proportional one),
the use_sandwich_norm / use_attention_gate flags and a tied or untied head. Measured errors are
collected in PARITY and printed as a table after the module (run with -s).

The bound is LFM2's (tests/engine/test_engine_parity.py, F32_BOUND 2.5e-5): the same kernels, the same
RoPE angle method; LFM3 adds only elementwise steps (a sigmoid gate, two RMSNorms per layer).

The sliding-window layers keep a ring of n_swa + n_batch - 1 positions when that is smaller than the
context (runtime/runtime.h): the ring tests pick n_ctx and n_batch so that it is, and run 70-token
prompts through windows of 8 and 16 token by token and in chunks.
"""
import json
import shutil

import numpy as np
import pytest

import liquidlfm as lfm
from liquidlfm import _core
from tests.fixtures.hf_models import (assert_greedy_matches_hf_generate, hf_cached_decode_logits, hf_logits,
                                      load_lfm3_hf_model, make_lfm3_hf_model)
from tests.fixtures.parity import F32_BOUND, check_full_forward_f32, print_parity_table, random_ids

pytestmark = pytest.mark.reference  # the checkpoints are transformers' own Lfm3ForCausalLM (and it is the reference)

C, S, A = "conv", "sliding_attention", "full_attention"

CONFIGS = {
    # name: make_lfm3_hf_model kwargs
    "h64_mixed_gqa2_w8": dict(vocab_size=320, hidden_size=64, num_hidden_layers=4, layer_types=[C, S, A, S],
                              num_attention_heads=4, num_key_value_heads=2, head_dim=16, intermediate_size=96,
                              sliding_window=8, tie_word_embeddings=True),
    "h96_all_conv_but_one_mha_w16": dict(vocab_size=300, hidden_size=96, num_hidden_layers=5, layer_types=[C, C, S, C, C],
                                         num_attention_heads=6, num_key_value_heads=6, head_dim=16, intermediate_size=160,
                                         sliding_window=16, tie_word_embeddings=False),
    "h128_gqa4_no_sandwich_no_gate": dict(vocab_size=512, hidden_size=128, num_hidden_layers=6, layer_types=[S, A, C, S, A, C],
                                          num_attention_heads=8, num_key_value_heads=2, head_dim=32, intermediate_size=256,
                                          sliding_window=8, use_sandwich_norm=False, use_attention_gate=False,
                                          tie_word_embeddings=True),
    "h64_full_first_hd32_rope": dict(vocab_size=288, hidden_size=64, num_hidden_layers=3, layer_types=[A, C, S],
                                     num_attention_heads=4, num_key_value_heads=2, head_dim=32, intermediate_size=128,
                                     sliding_window=16, tie_word_embeddings=False,
                                     rope_parameters={"full_attention": {"rope_type": "proportional", "rope_theta": 5e5,
                                                                         "partial_rotary_factor": 0.25},
                                                      "sliding_attention": {"rope_type": "default", "rope_theta": 2e4}}),
    "h64_default_pattern_gate_only": dict(vocab_size=300, hidden_size=64, num_hidden_layers=8, layer_types=None,
                                          num_attention_heads=4, num_key_value_heads=1, head_dim=16, intermediate_size=96,
                                          sliding_window=8, use_sandwich_norm=False, tie_word_embeddings=True),
}

PARITY = {}
LONG = 600  # tokens: past the first prefill chunk (n_batch 512 by default)


@pytest.fixture(scope="module", autouse=True)
def parity_table():
    """Print the numbers the tests below measured (visible with -s); asserts live in the tests."""
    yield
    print_parity_table(PARITY)


_ids = random_ids


def _layer_types(kw):
    n = kw["num_hidden_layers"]
    if kw["layer_types"] is not None:
        return kw["layer_types"]
    return [A if i % 4 == 2 else S if i % 4 == 0 and i > 0 else C for i in range(n)]  # Lfm3Config's default


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def made(request, tmp_path_factory):
    """A config's checkpoint and our model of it (no torch needed)."""
    name = request.param
    kw = CONFIGS[name]
    path = make_lfm3_hf_model(tmp_path_factory.mktemp(name), seed=sorted(CONFIGS).index(name), tokenizer=False, **kw)
    model = lfm.load(path)
    yield name, kw, path, model
    model.close()


@pytest.fixture(scope="module")
def case(made):
    name, kw, path, model = made
    return name, kw, path, load_lfm3_hf_model(path), model


# ---- config and weights ------------------------------------------------------------------------------


def test_config(made):
    _, kw, _, model = made
    c = model.config
    assert c.arch == "lfm3" and c.layer_types == _layer_types(kw)
    assert c.head_dim == kw["head_dim"] and c.conv_l_cache == 7 and c.sliding_window == kw["sliding_window"]
    assert c.sandwich_norm == kw.get("use_sandwich_norm", True) and c.attn_gate == kw.get("use_attention_gate", True)
    assert c.n_ff == kw["intermediate_size"] and c.tied_output == kw["tie_word_embeddings"]
    lines = model.describe()
    assert ("post_operator_norm" in lines) == c.sandwich_norm and ("gate_proj" in lines) == c.attn_gate


# ---- against transformers ----------------------------------------------------------------------------


@pytest.mark.parametrize("n", [70, LONG])
def test_full_forward_f32(case, n):
    name, kw, _, hf, model = case
    check_full_forward_f32(PARITY, "lfm3 parity", name, kw["vocab_size"], hf, model, n)


@pytest.mark.parametrize("n_batch", [1, 5, 16])
def test_ring_cache_matches_transformers(case, n_batch):
    """A sliding layer's ring (n_ctx 256, far more than window + n_batch) against transformers' mask, token
    by token (n_batch 1: each step its own forward) and in chunks shorter and longer than the window."""
    name, kw, _, hf, model = case
    ids = _ids(70, kw["vocab_size"], seed=5)
    ref = hf_logits(hf, ids)
    with model.session(n_ctx=256, n_batch=n_batch) as s:
        if n_batch == 1:
            got = np.stack([s.step(t) for t in ids])
        else:
            got = s.decode(ids, "all")
    err = float(np.abs(got - ref).max())
    PARITY[(name, f"ring_n_batch{n_batch}")] = err
    assert err <= F32_BOUND


def test_prefill_then_steps_match_transformers_cache(case):
    """prefill(prompt) then step() against transformers' own incremental decode (its sliding cache)."""
    name, kw, _, hf, model = case
    prompt, cont = _ids(23, kw["vocab_size"], seed=3), _ids(30, kw["vocab_size"], seed=4)
    ref = hf_cached_decode_logits(hf, prompt, cont)
    with model.session(n_ctx=128, n_batch=8) as s:
        got = [s.prefill(prompt)] + [s.step(t) for t in cont]
    err = float(np.abs(np.stack(got) - np.stack(ref)).max())
    PARITY[(name, "hf_cache_decode")] = err
    assert err <= F32_BOUND


def test_window_matters(case, tmp_path):
    """The same weights with a window wider than the prompt give other logits, by far more than the
    bound: the tests above do check which positions a sliding layer sees."""
    name, kw, path, hf, model = case
    ids = _ids(40, kw["vocab_size"], seed=6)
    wide = tmp_path / "wide"
    shutil.copytree(path, wide)
    cfg = json.loads((wide / "config.json").read_text())
    cfg["sliding_window"] = 4096
    (wide / "config.json").write_text(json.dumps(cfg))
    with lfm.load(wide) as m:
        diff = float(np.abs(m.forward(ids).astype(np.float64) - hf_logits(hf, ids)).max())
    assert diff > 100 * F32_BOUND


# ---- the engine against itself -----------------------------------------------------------------------


def test_decode_token_by_token_equals_full_forward(made):
    name, kw, _, model = made
    ids = _ids(61, kw["vocab_size"], seed=1)
    full = model.forward(ids)
    with model.session(n_ctx=256, n_batch=4) as s:  # a ring in every sliding layer
        rows = np.stack([s.step(t) for t in ids])
    err = float(np.abs(rows - full).max())
    PARITY[(name, "step_vs_full")] = err
    assert err <= 1e-5


def test_chunked_prefill_equals_unchunked(made):
    name, kw, _, model = made
    ids = _ids(67, kw["vocab_size"], seed=2)
    with model.session(n_ctx=256) as s1, model.session(n_ctx=256, n_batch=5) as s2:
        a = s1.decode(ids, "all")
        b = s2.decode(ids, "all")
        la, lb = s1.step(3), s2.step(3)
    PARITY[(name, "chunked_vs_unchunked")] = float(np.abs(a - b).max())
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
    np.testing.assert_allclose(la, lb, atol=1e-5, rtol=0)
    np.testing.assert_allclose(a, model.forward(ids), atol=1e-5, rtol=0)


def test_n_seq_each_sequence_as_if_alone(made):
    """Three sequences in one context (ring layout), chunks of several lengths interleaved, then greedy
    steps together: each sequence's rows are those of decoding it alone with the same chunks."""
    _, kw, _, model = made
    V = kw["vocab_size"]
    prompts = [_ids(n, V, seed=10 + n) for n in (45, 9, 30)]
    cuts = [(20, 25), (9,), (3, 27)]
    pieces = []
    for p, cut in zip(prompts, cuts):
        out, i = [], 0
        for k in cut:
            out.append(p[i:i + k])
            i += k
        pieces.append(out)
    ctx_kw = dict(n_ctx=128, n_batch=16)
    with _core.Ctx(model._core, n_seq=3, **ctx_kw) as c:
        for r in range(max(len(x) for x in pieces)):
            c.decode_seqs([(s, pieces[s][r], r == len(pieces[s]) - 1) for s in range(3) if r < len(pieces[s])])
        last = c.decode_seqs([(s, [4], True) for s in range(3)])
        for _ in range(12):
            last = c.decode_seqs([(s, [int(np.argmax(last[s]))], True) for s in range(3)])
        got = [np.array(x) for x in last]
    for s in range(3):
        with _core.Ctx(model._core, **ctx_kw) as a:
            for p in pieces[s]:
                a.decode(p, logits="none")
            want = a.decode([4])
            for _ in range(12):
                want = a.decode([int(np.argmax(want))])
        np.testing.assert_array_equal(got[s], want)  # F32: bit for bit (README, "Many sequences")


def test_seq_copy_then_diverge(made):
    _, kw, _, model = made
    V = kw["vocab_size"]
    prompt, tails = _ids(40, V, seed=20), [_ids(n, V, seed=21 + n) for n in (1, 7)]
    with _core.Ctx(model._core, n_ctx=128, n_batch=8, n_seq=2) as c:
        c.decode_seqs([(0, prompt, False)])
        c.seq_copy(0, 1)
        got = c.decode_seqs([(s, tails[s], True) for s in range(2)])
    for s in range(2):
        with _core.Ctx(model._core, n_ctx=128, n_batch=8) as a:
            a.decode(prompt, logits="none")
            np.testing.assert_array_equal(got[s], a.decode(tails[s]))


@pytest.mark.parametrize("kv_f16", [False, True])
def test_state_save_restore(made, kv_f16):
    """A blob carries the conv state (kernel 7) and each layer's visible KV rows; it moves between
    contexts of other n_ctx / n_batch (ring or not) and continues exactly."""
    _, kw, _, model = made
    V = kw["vocab_size"]
    prompt, cont = _ids(50, V, seed=30), _ids(15, V, seed=31)
    with _core.Ctx(model._core, n_ctx=256, n_batch=4, kv_f16=kv_f16) as a:
        a.decode(prompt, logits="none")
        blob = a.save()
        want = np.stack([a.decode([t]) for t in cont])
    for n_ctx, n_batch in ((256, 4), (128, 32), (80, 0)):
        with _core.Ctx(model._core, n_ctx=n_ctx, n_batch=n_batch, kv_f16=kv_f16) as b:
            b.load(blob)
            assert b.pos == len(prompt)
            got = np.stack([b.decode([t]) for t in cont])
        np.testing.assert_array_equal(got, want)


def test_state_blob_rejects_another_model_and_old_versions(made, tmp_path):
    _, kw, path, model = made
    with _core.Ctx(model._core, n_ctx=64) as a:
        a.decode(_ids(12, kw["vocab_size"]), logits="none")
        blob = bytearray(a.save())
    old = bytearray(blob)
    old[4:8] = (2).to_bytes(4, "little")
    with _core.Ctx(model._core, n_ctx=64) as b:
        with pytest.raises(lfm.ModelFormatError, match="version 2"):
            b.load(bytes(old))
    other = tmp_path / "other"
    shutil.copytree(path, other)
    cfg = json.loads((other / "config.json").read_text())
    cfg["sliding_window"] = cfg["sliding_window"] + 1
    (other / "config.json").write_text(json.dumps(cfg))
    with lfm.load(other) as m2, _core.Ctx(m2._core, n_ctx=64) as b:
        with pytest.raises(ValueError, match="another shape"):
            b.load(bytes(blob))


@pytest.mark.parametrize("ftype", ["q8_0", "q4_0"])
def test_quantize_on_load(made, ftype):
    """Every matrix requantized (g_proj by the q_proj rule, sandwich norms kept F32): close to F32, and
    the ring layout gives what the plain one gives, bit for bit."""
    name, kw, path, model = made
    ids = _ids(64, kw["vocab_size"], seed=7)
    ref = model.forward(ids)
    with lfm.load(path, quantize=ftype) as q:
        assert q.config.weight_type.lower() in (ftype, "q5_0", "f16")  # small rows fall back (ftype.c)
        out = q.forward(ids)
        with q.session(n_ctx=256, n_batch=4) as s:  # a ring in every sliding layer
            ring = np.stack([s.step(t) for t in ids])
        with q.session(n_ctx=64) as s:  # n_ctx rows: no ring
            plain = np.stack([s.step(t) for t in ids])
    err = float(np.abs(out - ref).max())
    PARITY[(name, f"quantize_on_load_{ftype}_vs_f32")] = err
    # random weights amplify rounding (an LFM2 model of this size measures 0.38 of a logit scale of 5 at
    # q8_0, top-1 83%; at q4_0 the error is of the logits' own size, so only q8_0 is bounded); the
    # bit-for-bit check of these weights is test_quantize_on_load_equals_gguf
    if ftype == "q8_0":
        assert err <= 0.15 * np.abs(ref).max()
        assert (out.argmax(-1) == ref.argmax(-1)).mean() >= 0.7
    # where a position's rows lie changes nothing (a step and a batch may differ: their attention sums in
    # another order, and int8 activations can round a last-bit difference to another step)
    np.testing.assert_array_equal(ring, plain)


LEVEL_CHILD = r"""
import sys, numpy as np, liquidlfm as lfm
path, out, ftype = sys.argv[1], sys.argv[2], sys.argv[3]
ids = [int(x) for x in np.random.RandomState(11).randint(0, 200, size=40)]
with lfm.load(path, quantize=None if ftype == "f32" else ftype) as m, m.session(n_ctx=128, n_batch=6) as s:
    np.save(out, np.concatenate([m.forward(ids), s.decode(ids, "all"), np.stack([s.step(t) for t in ids[:10]])]))
"""


def test_every_kernel_level(made, tmp_path):
    """The scalar reference and every SIMD level this CPU has (LFM_KERNELS, in a child each): F32 within
    rounding of each other, quantized weights bit for bit across the SIMD levels (kernels/ROUNDING.md)."""
    import os
    import subprocess
    import sys

    from tests.engine.test_quants import simd_levels_present

    name, kw, path, _ = made
    if name != "h64_mixed_gqa2_w8":
        pytest.skip("one config is enough: the levels run the same kernels for every LFM3 shape")
    levels = ["ref"] + simd_levels_present(_core.cpu_features())[1]
    got = {}
    for ftype in ("f32", "q8_0", "q4_k_m"):
        for level in levels:
            out = tmp_path / f"{ftype}-{level}.npy"
            subprocess.run([sys.executable, "-c", LEVEL_CHILD, str(path), str(out), ftype], check=True,
                           env=dict(os.environ, LFM_KERNELS=level), capture_output=True)
            got[ftype, level] = np.load(out)
    for level in levels[1:]:
        np.testing.assert_allclose(got["f32", level], got["f32", "ref"], atol=1e-5, rtol=0)
        for ftype in ("q8_0", "q4_k_m"):
            np.testing.assert_array_equal(got[ftype, level], got[ftype, levels[1]])


# ---- GGUF (arch "lfm3", liquidlfm's own: README, "GGUF for LFM3") --------------------------------


@pytest.mark.parametrize("ftype", ["f32", "q8_0", "q4_k_m"])
def test_gguf_round_trip(made, tmp_path, ftype):
    """liquidlfm quantize writes an lfm3 GGUF that the GGUF loader reads back into the same model: F32 gives
    the safetensors logits bit for bit, a quantized file those of quantize on load (the same type rule)."""
    from liquidlfm.gguf import read_gguf
    from liquidlfm.quantize import quantize_hf

    name, kw, path, model = made
    g = quantize_hf(path, tmp_path / f"m-{ftype}.gguf", ftype, progress=False)
    ids = _ids(48, kw["vocab_size"], seed=9)
    with lfm.load(str(g)) as f:
        c, want = f.config, model.config
        for k in ("arch", "layer_types", "head_dim", "sliding_window", "sandwich_norm", "attn_gate", "rope_pairs",
                  "rope_pairs_swa", "conv_l_cache", "tied_output", "n_ff"):
            assert getattr(c, k) == getattr(want, k), k
        assert c.rope_theta == want.rope_theta and (c.rope_theta_swa == want.rope_theta_swa or S not in c.layer_types)
        got = f.forward(ids)
    if ftype == "f32":
        np.testing.assert_array_equal(got, model.forward(ids))
    else:
        with lfm.load(path, quantize=ftype) as q:
            np.testing.assert_array_equal(got, q.forward(ids))
    info = read_gguf(g)
    meta = info.metadata
    assert meta["general.architecture"] == "lfm3"
    assert meta["lfm3.attention.key_length"] == kw["head_dim"]
    if S in _layer_types(kw):
        assert meta["lfm3.attention.sliding_window"] == kw["sliding_window"]
        assert [bool(x) for x in meta["lfm3.attention.sliding_window_pattern"]] == [t == S for t in _layer_types(kw)]
    names = {t.name for t in info.tensors}
    assert ("blk.0.post_attention_norm.weight" in names) == model.config.sandwich_norm
    assert ("blk.0.post_ffw_norm.weight" in names) == model.config.sandwich_norm
    first_attn = next(i for i, t in enumerate(_layer_types(kw)) if t != C)
    assert (f"blk.{first_attn}.attn_gate.weight" in names) == model.config.attn_gate


def _rewrite_gguf(src, dst, *, meta=None, drop_keys=(), drop_tensors=()):
    """Copy a GGUF with metadata values replaced (key -> value of the key's type), keys or tensors dropped."""
    import gguf

    r = gguf.GGUFReader(str(src))
    w = gguf.GGUFWriter(str(dst), "lfm3")
    for k, f in r.fields.items():
        if k.startswith("GGUF.") or k == "general.architecture" or k in drop_keys:
            continue
        v = (meta or {}).get(k, f.contents())
        if f.types[0] == gguf.GGUFValueType.ARRAY:
            w.add_key_value(k, v, f.types[0], sub_type=f.types[1])
        else:
            w.add_key_value(k, v, f.types[0])
    for t in r.tensors:
        if t.name not in drop_tensors:
            w.add_tensor(t.name, np.array(t.data), raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return dst


@pytest.fixture(scope="module")
def lfm3_gguf(tmp_path_factory):
    """An F32 lfm3 GGUF of layers conv, sliding, full, sliding (gate and sandwich norms on)."""
    from liquidlfm.quantize import quantize_hf

    d = tmp_path_factory.mktemp("lfm3_gguf")
    hf = make_lfm3_hf_model(d / "hf", layer_types=[C, S, A, S], tokenizer=False, seed=4)
    return quantize_hf(hf, d / "m.gguf", "f32", progress=False)


@pytest.mark.parametrize("edit, match", [
    (dict(meta={"lfm3.attention.sliding_window_pattern": [True, True, False, True]}), "layer 0, a short-conv layer"),
    (dict(drop_keys=("lfm3.attention.sliding_window",)), "missing metadata key 'lfm3.attention.sliding_window'"),
    (dict(drop_keys=("lfm3.rope.freq_base_swa",)), "lfm3.rope.freq_base_swa"),
    (dict(drop_keys=("lfm3.attention.key_length",)), "missing metadata key 'lfm3.attention.key_length'"),
    (dict(meta={"lfm3.rope.dimension_count": 7}), "must be even"),
    (dict(meta={"lfm3.rope.dimension_count": 18}), "lfm3.rope.dimension_count"),
    (dict(meta={"lfm3.attention.value_length": 8}), "key length 16 and value length 8 differ"),
    (dict(drop_tensors=("blk.3.attn_gate.weight",)), "missing tensor 'blk.3.attn_gate.weight'"),
    (dict(drop_tensors=("blk.1.attn_gate.weight",)), "unexpected tensor 'blk.2.attn_gate.weight'"),
    (dict(drop_tensors=("blk.0.post_attention_norm.weight",)), "unexpected tensor 'blk.0.post_ffw_norm.weight'"),
    (dict(drop_tensors=("blk.2.post_ffw_norm.weight",)), "missing tensor 'blk.2.post_ffw_norm.weight'"),
])
def test_gguf_errors_name_the_key_or_tensor(lfm3_gguf, tmp_path, edit, match):
    bad = _rewrite_gguf(lfm3_gguf, tmp_path / "bad.gguf", **edit)
    with pytest.raises((lfm.ModelFormatError, lfm.UnsupportedModelError), match=match):
        lfm.load(str(bad))


def test_gguf_without_sliding_layers_needs_no_window_keys(lfm3_gguf, tmp_path):
    """A pattern of all false turns the sliding layers into full ones (the window keys then unused)."""
    ok = _rewrite_gguf(lfm3_gguf, tmp_path / "full.gguf", meta={"lfm3.attention.sliding_window_pattern": [False] * 4},
                       drop_keys=("lfm3.attention.sliding_window", "lfm3.rope.freq_base_swa"))
    with lfm.load(str(ok)) as m:
        assert m.config.layer_types == [C, A, A, A]


# ---- greedy generation and the apps ------------------------------------------------------------------


@pytest.fixture(scope="module")
def gen_model_dir(tmp_path_factory):
    return make_lfm3_hf_model(tmp_path_factory.mktemp("lfm3_gen"), vocab_size=1024, hidden_size=64, num_hidden_layers=4,
                              layer_types=[C, S, A, S], num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                              intermediate_size=128, sliding_window=8, seed=3, tokenizer=True)


@pytest.mark.parametrize("prompt", ["Once upon a time", "안녕하세요, 오늘 날씨는", "def fibonacci(n):\n    "])
def test_greedy_matches_transformers_generate(gen_model_dir, prompt):
    with lfm.load(gen_model_dir) as model:
        assert_greedy_matches_hf_generate(load_lfm3_hf_model(gen_model_dir), model, prompt, 32)


def test_generate_chat_stream_run(gen_model_dir):
    """generate / chat / stream drive an LFM3 model through the public API (random weights: plumbing only;
    the tokenizer is the test fixture's, no LFM3 tokenizer.json exists here)."""
    with lfm.load(gen_model_dir) as model:
        assert "lfm3" in repr(model).lower() or model.config.arch == "lfm3"
        reply = model.chat([{"role": "user", "content": "Hi!"}], max_tokens=8, temperature=0)
        assert reply.finish_reason in ("stop", "length") and len(reply.token_ids) >= 1
        whole = model.generate("Once upon a time", max_tokens=10, temperature=0)
        chunks = list(model.stream("Once upon a time", max_tokens=10, temperature=0))
    assert "".join(ch.text for ch in chunks) == whole  # a str with .token_ids
    assert [t for ch in chunks for t in ch.token_ids] == whole.token_ids


# ---- config errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("edit, exc, match", [
    ({"attention_bias": True}, lfm.UnsupportedModelError, "attention_bias"),
    ({"conv_bias": True}, lfm.UnsupportedModelError, "conv_bias"),
    ({"sliding_window": None}, lfm.ModelFormatError, "sliding_window is null"),
    ({"rope_parameters": {"rope_type": "default", "rope_theta": 1e4}}, lfm.ModelFormatError, "keyed by attention kind"),
    ({"rope_parameters": {"full_attention": {"rope_type": "yarn", "rope_theta": 1e6},
                          "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}}},
     lfm.UnsupportedModelError, "yarn"),
    ({"rope_parameters": {"full_attention": {"rope_type": "proportional", "rope_theta": 1e6, "factor": 2.0},
                          "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}}},
     lfm.UnsupportedModelError, "unscaled"),
    ({"layer_types": ["conv", "linear_attention", "full_attention", "sliding_attention"]}, lfm.UnsupportedModelError,
     "linear_attention"),
    ({"use_attention_gate": False}, lfm.UnsupportedModelError, "unexpected tensor .*gate_proj"),
    ({"use_sandwich_norm": False}, lfm.UnsupportedModelError, "unexpected tensor .*post_"),
    ({"architectures": ["Lfm2ForCausalLM"]}, lfm.UnsupportedModelError, "expected Lfm3ForCausalLM"),
])
def test_bad_configs_are_refused(tmp_path_factory, edit, exc, match):
    base = tmp_path_factory.getbasetemp() / "lfm3_bad_base"
    if not base.exists():
        make_lfm3_hf_model(base, layer_types=[C, S, A, S], tokenizer=False)
    d = tmp_path_factory.mktemp("bad")
    shutil.copytree(base, d, dirs_exist_ok=True)
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(edit)
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(exc, match=match):
        lfm.load(d)
