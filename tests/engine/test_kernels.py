"""Every kernel set (ref, and avx2 or neon when the CPU has it) against NumPy, and each ISA set
against ref, on random shapes including ragged tails (sizes not a multiple of the vector width)."""
import platform

import numpy as np
import pytest

from liquidlfm import _core

SETS = _core.kernel_sets()
ISA = [s for s in SETS if s != "ref"]


def K(impl, name, *args):
    return _core._kernel(impl, name, *args)


def test_ref_is_always_available():
    assert "ref" in SETS
    assert _core.kernels_default() in SETS


def test_avx2_present_on_this_machine_if_cpu_has_it():
    f = _core.cpu_features()
    if not (f["avx2"] and f["fma"] and f["f16c"]):
        pytest.skip("this CPU lacks AVX2/FMA/F16C: no AVX2 kernel set to expect")
    assert "avx2" in SETS


def test_neon_present_on_arm64():
    if platform.machine().lower() not in ("aarch64", "arm64"):
        pytest.skip(f"not an arm64 machine ({platform.machine()}): no NEON kernel set to expect")
    f = _core.cpu_features()
    assert f["neon"]  # ASIMD is mandatory in AArch64
    assert "neon" in SETS and "avx2" not in SETS
    # the float table is "neon" at every ARM level (neon, dotprod, i8mm); ref only when forced
    assert _core.kernels_default() == ("ref" if f["force_ref"] else "neon")


def to_bf16_bits(x):
    """Round-to-nearest-even float32 → bfloat16 bit patterns (uint16)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


def bf16_bits_to_f32(b):
    return (b.astype(np.uint32) << 16).view(np.float32)


SHAPES = [(1, 1, 1), (1, 7, 8), (3, 5, 17), (2, 13, 64), (5, 9, 100), (7, 33, 257), (64, 8, 40)]  # (T, R, K)


@pytest.mark.parametrize("impl", SETS)
@pytest.mark.parametrize("wtype", ["f32", "f16", "bf16"])
@pytest.mark.parametrize("T,R,Kd", SHAPES)
def test_gemm_vs_numpy(impl, wtype, T, R, Kd):
    rng = np.random.default_rng(T * 1000 + R * 10 + Kd)
    W = rng.standard_normal((R, Kd)).astype(np.float32)
    X = rng.standard_normal((T, Kd)).astype(np.float32)
    if wtype == "f32":
        Wk, Wf = W, W
    elif wtype == "f16":
        Wk = W.astype(np.float16).view(np.uint16)
        Wf = W.astype(np.float16).astype(np.float32)
    else:
        Wk = to_bf16_bits(W)
        Wf = bf16_bits_to_f32(Wk)
    want = X.astype(np.float64) @ Wf.astype(np.float64).T
    got = K(impl, f"gemm_{wtype}", Wk, X, 0, R)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * np.sqrt(Kd) * max(1.0, np.abs(want).max()))
    # a sub-range of rows only writes those rows
    if R > 2:
        part = K(impl, f"gemm_{wtype}", Wk, X, 1, R - 1)
        np.testing.assert_array_equal(part[:, 0], 0)
        np.testing.assert_array_equal(part[:, -1], 0)
        np.testing.assert_allclose(part[:, 1:-1], got[:, 1:-1], rtol=0, atol=1e-5 * np.sqrt(Kd))


@pytest.mark.parametrize("impl", ISA)
@pytest.mark.parametrize("wtype", ["f32", "f16", "bf16"])
def test_gemm_isa_vs_ref(impl, wtype):
    rng = np.random.default_rng(7)
    for T, R, Kd in SHAPES + [(17, 61, 1024)]:
        W = rng.standard_normal((R, Kd)).astype(np.float32)
        X = rng.standard_normal((T, Kd)).astype(np.float32)
        Wk = W if wtype == "f32" else (W.astype(np.float16).view(np.uint16) if wtype == "f16" else to_bf16_bits(W))
        a = K("ref", f"gemm_{wtype}", Wk, X, 0, R)
        b = K(impl, f"gemm_{wtype}", Wk, X, 0, R)
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-5 * np.sqrt(Kd) * max(1.0, np.abs(a).max()))


def test_gemm_prefill_rows_equal_single_token_rows():
    """Blocked prefill and one-token decode must give identical rows (decode == full forward)."""
    rng = np.random.default_rng(3)
    for impl in SETS:
        for wtype in ["f32", "bf16"]:
            W = rng.standard_normal((37, 200)).astype(np.float32)
            Wk = W if wtype == "f32" else to_bf16_bits(W)
            X = rng.standard_normal((9, 200)).astype(np.float32)
            full = K(impl, f"gemm_{wtype}", Wk, X, 0, 37)
            rows = np.concatenate([K(impl, f"gemm_{wtype}", Wk, X[t:t + 1], 0, 37) for t in range(9)])
            np.testing.assert_array_equal(full, rows)


@pytest.mark.parametrize("impl", SETS)
@pytest.mark.parametrize("n", [1, 7, 16, 64, 100, 2048])
def test_rmsnorm(impl, n):
    rng = np.random.default_rng(n)
    x = rng.standard_normal(n).astype(np.float32) * 3
    w = (1 + 0.1 * rng.standard_normal(n)).astype(np.float32)
    x64 = x.astype(np.float64)
    want = w * (x64 / np.sqrt(np.mean(x64 * x64) + 1e-5))
    got = K(impl, "rmsnorm", x, w, 1e-5)
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-6)
    np.testing.assert_allclose(got, K("ref", "rmsnorm", x, w, 1e-5), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("impl", SETS)
@pytest.mark.parametrize("hd", [2, 8, 16, 64, 80, 128])
def test_rope_neox(impl, hd):
    rng = np.random.default_rng(hd)
    x = rng.standard_normal(hd).astype(np.float32)
    half = hd // 2
    ang = 37 * (1e6 ** (-np.arange(half) * 2 / hd))
    cs = np.concatenate([np.cos(ang), np.sin(ang)]).astype(np.float32)
    a, b = x[:half].astype(np.float64), x[half:].astype(np.float64)
    c, s = cs[:half].astype(np.float64), cs[half:].astype(np.float64)
    want = np.concatenate([a * c - b * s, b * c + a * s])
    got = K(impl, "rope", x, cs)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(got, K("ref", "rope", x, cs))


@pytest.mark.parametrize("impl", SETS)
@pytest.mark.parametrize("n", [1, 5, 8, 33, 1000])
def test_softmax(impl, n):
    x = (np.random.default_rng(n).standard_normal(n) * 10).astype(np.float32)
    e = np.exp(x.astype(np.float64) - x.max())
    got = K(impl, "softmax", x)
    np.testing.assert_allclose(got, e / e.sum(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got, K("ref", "softmax", x), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("impl", SETS)
@pytest.mark.parametrize("n", [1, 9, 64, 301])
def test_elementwise(impl, n):
    rng = np.random.default_rng(n)
    a = (rng.standard_normal(n) * 4).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    np.testing.assert_allclose(K(impl, "silu_mul", a, b), a64 / (1 + np.exp(-a64)) * b64, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(K(impl, "mul", a, b), a * b)
    np.testing.assert_array_equal(K(impl, "add", a, b), a + b)
    for f in ("silu_mul", "mul", "add"):
        np.testing.assert_allclose(K(impl, f, a, b), K("ref", f, a, b), rtol=1e-6, atol=1e-7)


def conv_numpy(v, w, state):
    """Depthwise causal conv over concat(state, v); last tap = current token (docs/architecture.md §2.2)."""
    Kk = w.shape[1]
    seq = np.concatenate([state, v]).astype(np.float64)
    T = v.shape[0]
    out = np.stack([(w.T.astype(np.float64) * seq[t:t + Kk]).sum(0) for t in range(T)])
    return out, seq[-(Kk - 1):] if Kk > 1 else state


def test_conv_worked_example():
    """docs/architecture.md §2.2: w = (1, 10, 100), v = (1, 2, 3) → z = (100, 210, 321)."""
    for impl in SETS:
        v = np.array([[1.0], [2.0], [3.0]], np.float32)
        w = np.array([[1.0, 10.0, 100.0]], np.float32)
        out, st = K(impl, "conv", v, w, np.zeros((2, 1), np.float32))
        np.testing.assert_array_equal(out[:, 0], [100, 210, 321])
        np.testing.assert_array_equal(st[:, 0], [2, 3])


@pytest.mark.parametrize("impl", SETS)
@pytest.mark.parametrize("T,H,Kk", [(1, 8, 3), (2, 5, 3), (5, 64, 3), (9, 100, 3), (4, 24, 4), (3, 16, 1)])
def test_conv_vs_numpy_and_chunking(impl, T, H, Kk):
    rng = np.random.default_rng(T * 100 + H)
    v = rng.standard_normal((T, H)).astype(np.float32)
    w = rng.standard_normal((H, Kk)).astype(np.float32)
    st0 = rng.standard_normal((Kk - 1, H)).astype(np.float32)
    out, st = K(impl, "conv", v, w, st0)
    want, want_st = conv_numpy(v, w, st0)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(st, want_st.astype(np.float32))
    # token by token with the rolling state gives the same outputs
    s = st0
    rows = []
    for t in range(T):
        o, s = K(impl, "conv", v[t:t + 1], w, s)
        rows.append(o)
    np.testing.assert_array_equal(np.concatenate(rows), out)
    np.testing.assert_array_equal(s, st)
    np.testing.assert_array_equal(out, K("ref", "conv", v, w, st0)[0])


@pytest.mark.parametrize("impl", SETS)
@pytest.mark.parametrize("n,hd,ld", [(1, 8, 8), (5, 16, 32), (33, 64, 128), (200, 64, 64), (7, 12, 24)])
def test_attention_head(impl, n, hd, ld):
    rng = np.random.default_rng(n + hd)
    q = rng.standard_normal(hd).astype(np.float32)
    Kc = rng.standard_normal((n, ld)).astype(np.float32)
    Vc = rng.standard_normal((n, ld)).astype(np.float32)
    scale = 1 / np.sqrt(hd)
    s = Kc[:, :hd].astype(np.float64) @ q.astype(np.float64) * scale
    p = np.exp(s - s.max())
    p /= p.sum()
    want = p @ Vc[:, :hd].astype(np.float64)
    for name in ("attn", "attn1"):  # attn1: the one-token-batch summation order
        got = K(impl, name, q, Kc, Vc, float(scale))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got, K("ref", "attn", q, Kc, Vc, float(scale)), rtol=1e-5, atol=1e-6)
    # F16 cache: K, V, q and the weights rounded to F16, as llama.cpp's default cache does
    h = lambda a: a.astype(np.float16).astype(np.float64)  # noqa: E731
    s16 = h(Kc[:, :hd]) @ h(q) * scale
    p16 = np.exp(s16 - s16.max())
    p16 /= p16.sum()
    want16 = h(p16) @ h(Vc[:, :hd])
    for name in ("attn_f16", "attn1_f16"):
        got = K(impl, name, q, Kc, Vc, float(scale))
        np.testing.assert_allclose(got, want16, rtol=2e-3, atol=2e-3 * max(1.0, np.abs(want16).max()))
        np.testing.assert_allclose(got, K("ref", "attn_f16", q, Kc, Vc, float(scale)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("impl", SETS)
def test_half_conversions(impl):
    bits = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    f16 = K(impl, "f16_to_f32", bits)
    want = bits.view(np.float16).astype(np.float32)
    finite = np.isfinite(want)
    np.testing.assert_array_equal(f16[finite], want[finite])
    assert np.array_equal(np.isnan(f16), np.isnan(want)) and np.array_equal(np.isinf(f16), np.isinf(want))
    bf = K(impl, "bf16_to_f32", bits)
    wbf = bf16_bits_to_f32(bits)
    ok = ~np.isnan(wbf)
    np.testing.assert_array_equal(bf[ok], wbf[ok])
    assert np.isnan(bf[~ok]).all()


def test_unknown_kernel_and_set():
    with pytest.raises(ValueError):
        K("ref", "nope", np.zeros(3, np.float32))
    with pytest.raises(ValueError):
        K("sse9", "softmax", np.zeros(3, np.float32))


# ---- the SIMD kernels, bit for bit against a scalar oracle of the AVX2 float order ----
#
# csrc/kernels/x86/float_avx2.c reproduces llama.cpp's rounding (exp polynomial, softmax sums, attention orders):
# identical bits is the contract, so the tests above (tolerances against ref.c) would let a changed
# rounding through. "avx2_order" (csrc/kernels/kernels_oracle.c) is scalar C following each AVX2
# kernel's order: fmaf where it fuses, its horizontal-sum trees, its tails. csrc/kernels/arm/float_neon.c
# repeats that order on arm64 (so an arm64 machine gives the x86 logits): the same oracle, the same bits.
# Every test below runs once per SIMD float set and skips, naming what is missing, where it is absent.

SIMD = pytest.mark.parametrize("simd", ["avx2", "neon"])
SIMD_NEEDS = {"avx2": "an x86-64 CPU with AVX2, FMA and F16C", "neon": "an arm64 CPU/build"}


def require_simd(simd):
    if simd not in SETS:
        pytest.skip(f"no {simd.upper()} kernel set on this CPU/build (needs {SIMD_NEEDS[simd]}): "
                    f"nothing to check against the oracle")


def assert_same_bits(a, b, what):
    a, b = np.ascontiguousarray(a, np.float32), np.ascontiguousarray(b, np.float32)
    assert a.shape == b.shape, what
    assert np.array_equal(a.view(np.uint32), b.view(np.uint32)), (what, float(np.nanmax(np.abs(a - b))))


@SIMD
@pytest.mark.parametrize("wtype", ["f32", "f16", "bf16"])
def test_simd_gemm_bits_equal_order_oracle(simd, wtype):
    """Every tile shape (4x3, 4x2, 4x1; 1x1 for the rows after the last group of 4 from r0), token
    chunking, and ragged K."""
    require_simd(simd)
    rng = np.random.default_rng(11)
    for T, R, Kd in SHAPES + [(17, 61, 1024), (70, 9, 1500), (4, 6, 24)]:
        W = rng.standard_normal((R, Kd)).astype(np.float32)
        X = rng.standard_normal((T, Kd)).astype(np.float32)
        Wk = W if wtype == "f32" else (W.astype(np.float16).view(np.uint16) if wtype == "f16" else to_bf16_bits(W))
        for r0, r1 in {(0, R), (1, R), (min(2, R), max(min(2, R), R - 1))}:
            assert_same_bits(K(simd, f"gemm_{wtype}", Wk, X, r0, r1), K("avx2_order", f"gemm_{wtype}", Wk, X, r0, r1),
                             (T, R, Kd, r0, r1))


# inputs that reach every branch of exp8: normal range, |n| > 126 (two-factor scaling), |n| > 192
# (overflow / underflow), and the libm tail
EXP_EDGES = np.array([0.0, -0.0, 1e-30, -1e-30, 87.0, 88.7, 89.0, -87.3, -88.0, -100.0, -103.9, -104.0, -133.0, -150.0,
                      90.0, 134.0, 150.0, -1000.0, 1000.0, np.inf, -np.inf], np.float32)


@SIMD
@pytest.mark.parametrize("n", [1, 5, 8, 9, 33, 1000])
def test_simd_softmax_bits_equal_order_oracle(simd, n):
    require_simd(simd)
    rng = np.random.default_rng(n)
    for scale in (1.0, 10.0, 60.0):
        x = (rng.standard_normal(n) * scale).astype(np.float32)
        assert_same_bits(K(simd, "softmax", x), K("avx2_order", "softmax", x), (n, scale))


@SIMD
@pytest.mark.parametrize("n", [1, 8, 9, 64, 301])
def test_simd_silu_mul_bits_equal_order_oracle(simd, n):
    require_simd(simd)
    rng = np.random.default_rng(n + 1)
    g = (rng.standard_normal(n) * 4).astype(np.float32)
    g[: min(n, len(EXP_EDGES))] = EXP_EDGES[: min(n, len(EXP_EDGES))]
    g[len(EXP_EDGES):: 3] *= 40
    up = rng.standard_normal(n).astype(np.float32)
    assert_same_bits(K(simd, "silu_mul", g, up), K("avx2_order", "silu_mul", g, up), n)


@SIMD
def test_simd_exp_edges_through_softmax_and_silu(simd):
    """exp8's special branches, each value in every lane position of a full 8-wide chunk."""
    require_simd(simd)
    for v in EXP_EDGES:
        for lane in range(8):
            g = np.full(8, -1.5, np.float32)
            g[lane] = v
            up = np.ones(8, np.float32)
            assert_same_bits(K(simd, "silu_mul", g, up), K("avx2_order", "silu_mul", g, up), (v, lane))
            if np.isfinite(v):
                s = np.zeros(8, np.float32)
                s[lane] = -abs(v)
                assert_same_bits(K(simd, "softmax", s), K("avx2_order", "softmax", s), (v, lane))


@SIMD
@pytest.mark.parametrize("name", ["attn", "attn1", "attn_f16", "attn1_f16"])
def test_simd_attention_bits_equal_order_oracle(simd, name):
    """Batch and one-token orders, F32 and F16 caches (dot_steps32 / dot_steps8, pv_batch / pv_one),
    head sizes with and without a tail of the 8- and 32-wide steps, position counts around 8 and 32."""
    require_simd(simd)
    rng = np.random.default_rng(len(name))
    for n, hd, ld in [(1, 8, 8), (5, 16, 32), (33, 64, 128), (200, 64, 64), (7, 12, 24), (70, 40, 40), (31, 80, 80),
                      (64, 128, 256), (9, 36, 36)]:
        q = rng.standard_normal(hd).astype(np.float32)
        Kc = rng.standard_normal((n, ld)).astype(np.float32)
        Vc = rng.standard_normal((n, ld)).astype(np.float32)
        scale = float(1 / np.sqrt(hd))
        assert_same_bits(K(simd, name, q, Kc, Vc, scale), K("avx2_order", name, q, Kc, Vc, scale), (n, hd, ld))


@SIMD
@pytest.mark.parametrize("n", [1, 8, 31, 32, 33, 100, 2048])
def test_simd_dot_f32_bits_equal_order_oracle(simd, n):
    """dot_f32 (the MoE router's one-token product): ggml_vec_dot_f32's four accumulators over steps
    of 32, and the scalar tail, as the order oracle has them; ref.c's plain sum within rounding."""
    require_simd(simd)
    rng = np.random.default_rng(n + 11)
    x = rng.standard_normal(n).astype(np.float32)
    y = rng.standard_normal(n).astype(np.float32)
    got = K(simd, "dot_f32", x, y)
    assert np.float32(got).tobytes() == np.float32(K("avx2_order", "dot_f32", x, y)).tobytes(), n
    exact = float(np.dot(x.astype(np.float64), y.astype(np.float64)))
    assert abs(got - exact) <= 1e-5 * np.sqrt(n) * (1 + abs(exact))
    assert abs(K("ref", "dot_f32", x, y) - exact) <= 1e-5 * np.sqrt(n) * (1 + abs(exact))


@SIMD
@pytest.mark.parametrize("n", [1, 7, 16, 100, 2048])
def test_simd_orders_shared_with_ref_are_bit_identical(simd, n):
    """rmsnorm, rope, conv, mul, add: the AVX2 order is ref.c's, so the bits are ref.c's."""
    require_simd(simd)
    rng = np.random.default_rng(n + 3)
    x = (rng.standard_normal(n) * 3).astype(np.float32)
    w = (1 + 0.1 * rng.standard_normal(n)).astype(np.float32)
    assert_same_bits(K(simd, "rmsnorm", x, w, 1e-5), K("ref", "rmsnorm", x, w, 1e-5), n)
    for f in ("mul", "add"):
        assert_same_bits(K(simd, f, x, w), K("ref", f, x, w), (f, n))
    if n % 2 == 0:
        cs = rng.standard_normal(n).astype(np.float32)
        assert_same_bits(K(simd, "rope", x, cs), K("ref", "rope", x, cs), n)
    H = n if n >= 8 else 8
    v = rng.standard_normal((5, H)).astype(np.float32)
    cw = rng.standard_normal((H, 3)).astype(np.float32)
    st = rng.standard_normal((2, H)).astype(np.float32)
    a, b = K(simd, "conv", v, cw, st), K("ref", "conv", v, cw, st)
    assert_same_bits(a[0], b[0], n)
    assert_same_bits(a[1], b[1], n)


@SIMD
def test_simd_half_conversions_bits_equal_ref(simd):
    """F16 and BF16 to float are exact: every bit pattern but NaN gives ref.c's bits (a NaN stays a
    NaN: test_half_conversions; hardware may quieten a signalling one)."""
    require_simd(simd)
    bits = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    for f in ("f16_to_f32", "bf16_to_f32"):
        a, b = K(simd, f, bits), K("ref", f, bits)
        ok = ~np.isnan(b)
        assert np.isnan(a[~ok]).all(), f
        assert_same_bits(a[ok], b[ok], f)


def test_order_oracle_differs_from_plain_ref():
    """The oracle's orders are observable: they differ from ref.c's plain sums on these inputs, so
    the identities above do not compare one code path with itself."""
    rng = np.random.default_rng(5)
    W = rng.standard_normal((8, 1000)).astype(np.float32)
    X = rng.standard_normal((3, 1000)).astype(np.float32)
    assert not np.array_equal(K("avx2_order", "gemm_f32", W, X, 0, 8), K("ref", "gemm_f32", W, X, 0, 8))
    x = (rng.standard_normal(1000) * 10).astype(np.float32)
    assert not np.array_equal(K("avx2_order", "softmax", x), K("ref", "softmax", x))
    q = rng.standard_normal(64).astype(np.float32)
    Kc = rng.standard_normal((100, 64)).astype(np.float32)
    a1 = K("avx2_order", "attn1", q, Kc, Kc, 0.125)
    assert not np.array_equal(a1, K("avx2_order", "attn", q, Kc, Kc, 0.125))
    assert not np.array_equal(a1, K("ref", "attn", q, Kc, Kc, 0.125))


def test_kernel_level_is_visible_in_python():
    """The level in use, as the C API reports it (lfm_kernel_level / lfm_float_kernels)."""
    import liquidlfm

    assert liquidlfm.kernel_level == _core._quant_kernels()
    assert liquidlfm.float_kernels == _core.kernels_default() in SETS
