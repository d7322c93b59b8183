"""The one rule for NaN and +-inf (csrc/kernels/ROUNDING.md, "Non-finite values"), kernel by kernel and
at every kernel level this CPU has: kernels and activation quantizers are memory-safe and deterministic
on any float input; a non-finite activation block quantizes to a NaN scale with zero quants (the same
bytes at every level), so the NaN reaches the logits; the forward pass does not check values; the
sampler refuses a row it cannot sample from with a ValueError.

Non-finite values are put at the first, a middle and the last element, and whole rows are NaN (the
case that made the AVX2 Q8_K quantizer's search run off its buffer). Run once under ASan/UBSan:
`bash tests/sanitize/run.sh tests/engine/test_nonfinite.py`."""
import math

import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q
from gguf.constants import GGML_QUANT_SIZES

from liquidlfm import _core
from tests.engine.test_quants import HALF_FIELDS, WEIGHT_TYPES, X8_TYPES, random_blocks

SETS = _core.kernel_sets()  # float kernels: "ref" and, when the CPU has it, "avx2"
ACT_LEVELS = [True, False]  # _quantize_act / _quant_matmul: ref=True, or the level this CPU runs
BAD = [math.nan, math.inf, -math.inf]
ACT_TYPES = [Q.Q8_0, Q.Q8_1, Q.Q8_K]
ACT_SIZES = {Q.Q8_0: (32, 34), Q.Q8_1: (32, 36), Q.Q8_K: (256, 292)}  # (elements, bytes) per block, as ggml


def positions(n):
    return [0, n // 2 + (3 if n > 8 else 0), n - 1]


def bits(a):
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def level_id(ref):
    return "ref" if ref else "cpu"


# ---- activation quantizers ----

def act_blocks(qtype, data):
    """Split an activation row's bytes into blocks; decode (scale, quants, sums) of each."""
    bs, ts = ACT_SIZES[qtype]
    b = np.frombuffer(data, np.uint8).reshape(-1, ts)
    if qtype == Q.Q8_0:
        return b, b[:, :2].copy().view(np.float16)[:, 0].astype(np.float32), b[:, 2:].view(np.int8), None
    if qtype == Q.Q8_1:
        return (b, b[:, :2].copy().view(np.float16)[:, 0].astype(np.float32), b[:, 4:].view(np.int8),
                b[:, 2:4].copy().view(np.float16)[:, 0].astype(np.float32))
    return b, b[:, :4].copy().view(np.float32)[:, 0], b[:, 4:260].view(np.int8), b[:, 260:].copy().view(np.int16)


def assert_nonfinite_block(qtype, data, i):
    _, d, q, extra = act_blocks(qtype, data)
    assert np.isnan(d[i]), (qtype.name, i, d[i])
    assert not q[i].any(), (qtype.name, i)
    if qtype == Q.Q8_1:
        assert np.isnan(extra[i])
    if qtype == Q.Q8_K:
        assert not extra[i].any()


@pytest.mark.parametrize("bad", BAD, ids=str)
@pytest.mark.parametrize("qtype", ACT_TYPES, ids=lambda t: t.name)
def test_activation_block_with_a_nonfinite_value_is_nan(qtype, bad):
    bs = ACT_SIZES[qtype][0]
    n = 4 * bs
    x = (np.random.default_rng(1).standard_normal(n) * 3).astype(np.float32)
    clean = {ref: _core._quantize_act(int(qtype), x, ref=ref) for ref in ACT_LEVELS}
    for pos in positions(n) + [bs - 1, bs, 2 * bs - 8]:
        y = x.copy()
        y[pos] = bad
        got = {ref: _core._quantize_act(int(qtype), y, ref=ref) for ref in ACT_LEVELS}
        assert got[True] == got[False], (pos, "ref and the CPU's level give different bytes")
        blk = pos // bs
        assert_nonfinite_block(qtype, got[True], blk)
        # the other blocks are the bytes of the finite row
        ours, want = act_blocks(qtype, got[True])[0], act_blocks(qtype, clean[True])[0]
        others = [i for i in range(4) if i != blk]
        assert np.array_equal(ours[others], want[others]), pos


@pytest.mark.parametrize("ref", ACT_LEVELS, ids=level_id)
@pytest.mark.parametrize("qtype", ACT_TYPES, ids=lambda t: t.name)
@pytest.mark.parametrize("fill", BAD, ids=str)
def test_activation_row_all_nonfinite(qtype, ref, fill):
    """A row of one block and a row of three, all NaN (or inf): before, the AVX2 Q8_K quantizer
    searched past the end of the row for an element equal to the NaN maximum."""
    bs = ACT_SIZES[qtype][0]
    for nb in (1, 3):
        x = np.full(nb * bs, fill, np.float32)
        data = _core._quantize_act(int(qtype), x, ref=ref)
        for i in range(nb):
            assert_nonfinite_block(qtype, data, i)


@pytest.mark.parametrize("qtype", ACT_TYPES, ids=lambda t: t.name)
def test_activation_block_whose_scale_overflows(qtype):
    """Finite but tiny (denormal) blocks: 127/amax overflows to inf. The scalar level converted
    x * inf to int (undefined; in Q8_K also an int overflow in the sums); it now stores the AVX2
    level's bytes, and the block adds exactly 0 to a dot product."""
    bs = ACT_SIZES[qtype][0]
    x = np.random.default_rng(4).standard_normal(3 * bs).astype(np.float32)
    tiny = np.zeros(bs, np.float32)
    tiny[[0, bs // 2, bs - 1]] = [1e-40, -3e-39, 2e-45]
    x[bs:2 * bs] = tiny
    data = {ref: _core._quantize_act(int(qtype), x, ref=ref) for ref in ACT_LEVELS}
    assert data[True] == data[False]
    _, d, q, _ = act_blocks(qtype, data[True])
    assert d[1] == 0


# ---- quantized matmuls: a non-finite token gives a NaN row, the others are unchanged ----

def matmul_variants(qtype, rows):
    v = [dict(ref=True), dict()]
    if qtype in X8_TYPES and rows % 8 == 0:
        v.append(dict(x8=True))
    return v


@pytest.mark.parametrize("bad", BAD, ids=str)
@pytest.mark.parametrize("qtype", WEIGHT_TYPES, ids=lambda t: t.name)
def test_matmul_with_nonfinite_activation(qtype, bad):
    rng = np.random.default_rng(int(qtype))
    bs = GGML_QUANT_SIZES[qtype][0]
    cols, rows = 512, 16
    w = random_blocks(qtype, rows * cols // bs, rng, scale=0.05).tobytes()
    for T in (1, 3, 9):  # one-token, small tiles, the tiled K-quant paths from 8 tokens on
        x = rng.standard_normal((T, cols)).astype(np.float32)
        t_bad = T // 2
        for pos in positions(cols):
            y = x.copy()
            y[t_bad, pos] = bad
            for kw in matmul_variants(qtype, rows):
                clean = _core._quant_matmul(int(qtype), w, rows, cols, x, **kw)
                got = _core._quant_matmul(int(qtype), w, rows, cols, y, **kw)
                assert np.isnan(got[t_bad]).all(), (T, pos, kw)
                keep = [t for t in range(T) if t != t_bad]
                assert np.array_equal(bits(got[keep]), bits(clean[keep])), (T, pos, kw)


@pytest.mark.parametrize("qtype", WEIGHT_TYPES, ids=lambda t: t.name)
def test_matmul_with_nan_weight_scale(qtype):
    """A weight block whose fp16 scale is NaN (a corrupt or hostile file) gives NaN in its row only."""
    rng = np.random.default_rng(int(qtype) + 1)
    bs, ts = GGML_QUANT_SIZES[qtype]
    cols, rows, T = 512, 16, 3
    w = random_blocks(qtype, rows * cols // bs, rng, scale=0.05)
    x = rng.standard_normal((T, cols)).astype(np.float32)
    bad_row = 5
    wb = w.copy()
    blk = bad_row * (cols // bs) + 1
    wb[blk, HALF_FIELDS[qtype][0]:HALF_FIELDS[qtype][0] + 2] = np.array([np.nan], np.float16).view(np.uint8)
    for kw in matmul_variants(qtype, rows):
        clean = _core._quant_matmul(int(qtype), w.tobytes(), rows, cols, x, **kw)
        got = _core._quant_matmul(int(qtype), wb.tobytes(), rows, cols, x, **kw)
        assert np.isnan(got[:, bad_row]).all(), kw
        keep = [r for r in range(rows) if r != bad_row]
        assert np.array_equal(bits(got[:, keep]), bits(clean[:, keep])), kw


# ---- weight quantizers (requantizing a float checkpoint) ----

@pytest.mark.parametrize("bad", BAD, ids=str)
@pytest.mark.parametrize("qtype", [Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0, Q.Q4_K, Q.Q5_K, Q.Q6_K],
                         ids=lambda t: t.name)
def test_weight_block_with_a_nonfinite_value_dequantizes_to_nan(qtype, bad):
    bs, ts = GGML_QUANT_SIZES[qtype]
    n = 4 * bs
    x = np.random.default_rng(2).standard_normal(n).astype(np.float32)
    clean = np.frombuffer(_core._quantize(int(qtype), x), np.uint8).reshape(-1, ts)
    for pos in positions(n):
        y = x.copy()
        y[pos] = bad
        got = np.frombuffer(_core._quantize(int(qtype), y), np.uint8).reshape(-1, ts)
        blk = pos // bs
        deq = np.asarray(_core._dequantize(int(qtype), got.tobytes(), n)).reshape(-1, bs)
        assert np.isnan(deq[blk]).all(), pos
        others = [i for i in range(4) if i != blk]
        assert np.array_equal(got[others], clean[others]), pos
    deq = np.asarray(_core._dequantize(int(qtype), _core._quantize(int(qtype), np.full(n, np.nan, np.float32)), n))
    assert np.isnan(deq).all()
    tiny = np.full(n, 1e-40, np.float32)  # denormals: 1/d overflows; still a defined block
    tiny[::3] = -2e-41
    assert np.isfinite(np.asarray(_core._dequantize(int(qtype), _core._quantize(int(qtype), tiny), n))).all()


# ---- float kernels ----

def K(impl, name, *args):
    return _core._kernel(impl, name, *args)


@pytest.mark.parametrize("impl", SETS)
@pytest.mark.parametrize("n", [5, 37, 64])
def test_softmax_nonfinite(impl, n):
    x = (np.random.default_rng(n).standard_normal(n) * 4).astype(np.float32)
    for pos in positions(n):
        for bad in (math.nan, math.inf):  # undefined: every probability is NaN
            y = x.copy()
            y[pos] = bad
            assert np.isnan(K(impl, "softmax", y)).all(), (pos, bad)
        y = x.copy()
        y[pos] = -math.inf  # a masked score: probability exactly 0, the rest a distribution
        got = K(impl, "softmax", y)
        assert got[pos] == 0 and np.isfinite(got).all() and abs(got.sum() - 1) < 1e-5
        keep = np.arange(n) != pos
        np.testing.assert_allclose(got[keep], K("ref", "softmax", x[keep]), rtol=1e-6, atol=1e-8)
    assert np.isnan(K(impl, "softmax", np.full(n, np.nan, np.float32))).all()
    assert np.isnan(K(impl, "softmax", np.full(n, -np.inf, np.float32))).all()  # nothing to normalise


@pytest.mark.parametrize("impl", SETS)
@pytest.mark.parametrize("n", [5, 37, 256])
def test_rmsnorm_nonfinite(impl, n):
    rng = np.random.default_rng(n)
    x = rng.standard_normal(n).astype(np.float32)
    w = (1 + 0.1 * rng.standard_normal(n)).astype(np.float32)
    for pos in positions(n):
        y = x.copy()
        y[pos] = math.nan
        assert np.isnan(K(impl, "rmsnorm", y, w, 1e-5)).all(), pos  # a NaN spreads to the whole row
        for bad in (math.inf, -math.inf):
            y[pos] = bad
            got = K(impl, "rmsnorm", y, w, 1e-5)
            assert np.isnan(got[pos]) and not np.isnan(np.delete(got, pos)).any(), (pos, bad)  # x·0, inf·0
    assert np.isnan(K(impl, "rmsnorm", np.full(n, np.nan, np.float32), w, 1e-5)).all()
    wn = w.copy()
    wn[0] = math.nan  # a NaN weight: its element only
    got = K(impl, "rmsnorm", x, wn, 1e-5)
    assert np.isnan(got[0]) and np.isfinite(got[1:]).all()


@pytest.mark.parametrize("impl", SETS)
@pytest.mark.parametrize("n", [5, 37, 64])
def test_silu_mul_nonfinite_is_elementwise(impl, n):
    rng = np.random.default_rng(n)
    g = (rng.standard_normal(n) * 3).astype(np.float32)
    up = rng.standard_normal(n).astype(np.float32)
    clean = K(impl, "silu_mul", g, up)
    for pos in positions(n):
        for bad in BAD:
            for which in (0, 1):
                a, b = g.copy(), up.copy()
                (a if which == 0 else b)[pos] = bad
                got = K(impl, "silu_mul", a, b)
                keep = np.arange(n) != pos
                assert np.array_equal(bits(got[keep]), bits(clean[keep])), (pos, bad, which)
                want = K("ref", "silu_mul", a, b)[pos]  # same special value as the scalar level
                assert (np.isnan(got[pos]) and np.isnan(want)) or got[pos] == want, (pos, bad, which, got[pos], want)
    assert np.isnan(K(impl, "silu_mul", np.full(n, np.nan, np.float32), up)).all()


@pytest.mark.parametrize("impl", SETS)
@pytest.mark.parametrize("name", ["attn", "attn1", "attn_f16", "attn1_f16"])
def test_attention_nonfinite(impl, name):
    rng = np.random.default_rng(3)
    n, hd = 37, 64
    q = rng.standard_normal(hd).astype(np.float32)
    Kc = rng.standard_normal((n, hd)).astype(np.float32)
    Vc = rng.standard_normal((n, hd)).astype(np.float32)
    scale = 1 / math.sqrt(hd)
    for pos in positions(hd):
        qq = q.copy()
        qq[pos] = math.nan
        assert np.isnan(K(impl, name, qq, Kc, Vc, scale)).all(), ("q", pos)
    for j in positions(n):
        kk = Kc.copy()
        kk[j, 5] = math.nan  # one score is NaN: the softmax, and so every output, is NaN
        assert np.isnan(K(impl, name, q, kk, Vc, scale)).all(), ("k", j)
        vv = Vc.copy()
        vv[j, 7] = math.nan  # a value: only its output dimension
        got = K(impl, name, q, Kc, vv, scale)
        assert np.isnan(got[7]) and np.isfinite(np.delete(got, 7)).all(), ("v", j)
    assert np.isnan(K(impl, name, np.full(hd, np.nan, np.float32), Kc, Vc, scale)).all()
    assert np.isnan(K(impl, name, q, np.full((n, hd), np.nan, np.float32), Vc, scale)).all()


# ---- a K-quant model with a NaN in a token embedding row ----

@pytest.fixture(scope="module")
def nan_embedding_gguf(tmp_path_factory):
    """llama.cpp's Q4_K_M of a random model with rows of 256 (so every matrix is a K-quant and runs
    through the Q8_K activation quantizer), then token BAD's embedding block given a NaN scale (its
    Q6_K row is one block: the whole row becomes NaN; RMSNorm would spread one NaN as far)."""
    from gguf import GGUFReader

    from tests.fixtures.gguf_models import hf_to_gguf, llama_quantize, make_tiny_hf

    d = tmp_path_factory.mktemp("nan_embd")
    hf = make_tiny_hf(d / "hf", dtype="float32", seed=5, vocab_size=320, hidden_size=256, n_layers=3,
                      layer_types=["conv", "full_attention", "conv"], heads=4, kv_heads=2, ff=512,
                      max_position_embeddings=1024)
    f32 = hf_to_gguf(hf, d / "f32.gguf", "f32")
    path = llama_quantize(f32, d / "q4_k_m.gguf", "q4_k_m")
    t = next(t for t in GGUFReader(str(path)).tensors if t.name == "token_embd.weight")
    assert t.tensor_type == Q.Q6_K and int(t.shape[0]) == 256
    bs, ts = GGML_QUANT_SIZES[Q.Q6_K]
    raw = bytearray(path.read_bytes())
    off = int(t.data_offset) + BAD_TOKEN * ts + 208  # Q6_K's fp16 d
    raw[off:off + 2] = np.array([np.nan], np.float16).tobytes()
    bad = d / "q4_k_m-nan.gguf"
    bad.write_bytes(bytes(raw))
    return bad


BAD_TOKEN = 7


@pytest.mark.reference
@pytest.mark.parametrize("kernels", ["default", "ref"])
def test_k_quant_model_with_nan_embedding(nan_embedding_gguf, kernels, monkeypatch):
    """Forward of the NaN token gives NaN logits (no crash, at both levels); generate() ends in a
    ValueError from the sampler, never a token (the head is tied, so that NaN row is also a NaN
    logit after any prompt); other tokens' logits are unaffected."""
    import subprocess
    import sys

    code = f"""
import math, numpy as np, liquidlfm as lfm
m = lfm.load({str(nan_embedding_gguf)!r}, n_threads=1)
lg = np.asarray(m.forward([1, {BAD_TOKEN}]))
assert np.isnan(lg[-1]).all(), lg[-1][:4]
# other tokens: finite, but for the tied head's NaN row ({BAD_TOKEN}), whose logit is NaN everywhere
ok = np.asarray(m.forward([1, 2, 3]))
assert np.isnan(ok[:, {BAD_TOKEN}]).all() and np.isfinite(np.delete(ok, {BAD_TOKEN}, axis=1)).all()
for prompt in ([1, {BAD_TOKEN}], [1, 2, 3]):
    for kw in (dict(temperature=0), dict(temperature=0.8, top_k=5, seed=1), dict(temperature=1.0, top_p=0.9, seed=2)):
        try:
            r = m.generate(prompt, max_tokens=4, **kw)
        except ValueError as e:
            assert "is nan" in str(e), e
        else:
            raise AssertionError(("a token from NaN logits", prompt, kw, list(r.token_ids)))
print("OK")
"""
    env = dict(__import__("os").environ)
    if kernels == "ref":
        env["LFM_KERNELS"] = "ref"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600,
                       cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]))
    assert p.returncode == 0 and "OK" in p.stdout, (p.returncode, p.stdout[-2000:], p.stderr[-4000:])
