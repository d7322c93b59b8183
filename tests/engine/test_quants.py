"""Quantized block formats and kernels (csrc/kernels/quants, csrc/kernels/x86, csrc/kernels/arm) against the `gguf`
package's reference (gguf.quants) and against each other (the ISA kernels vs the scalar oracle). The SIMD checks run
on the kernel level in use (avx2, avxvnni or avx512 on x86; neon, dotprod or i8mm on arm64; LFM_KERNELS picks a
lower one; tests/engine/test_kernel_levels.py runs these checks again at every level this CPU has)."""
import os
import platform
import shutil
import subprocess
import sys

import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q
from gguf import quants as gq
from gguf.constants import GGML_QUANT_SIZES

from liquidlfm import UnsupportedModelError, _core
from liquidlfm.gguf import TYPE_IDS

WEIGHT_TYPES = [Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0, Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K]
# byte offsets of the fp16 scale fields inside each block
HALF_FIELDS = {
    Q.Q4_0: [0], Q.Q4_1: [0, 2], Q.Q5_0: [0], Q.Q5_1: [0, 2], Q.Q8_0: [0],
    Q.Q2_K: [80, 82], Q.Q3_K: [108], Q.Q4_K: [0, 2], Q.Q5_K: [0, 2], Q.Q6_K: [208],
}
VEC_DOT_TYPE = {Q.Q4_0: Q.Q8_0, Q.Q5_0: Q.Q8_0, Q.Q8_0: Q.Q8_0, Q.Q4_1: Q.Q8_1, Q.Q5_1: Q.Q8_1}


def random_blocks(qtype, n_blocks, rng, scale=0.02):
    """Random bytes with finite fp16 scales: every bit pattern of the quants is exercised."""
    bs, ts = GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n_blocks, ts), dtype=np.uint8)
    for off in HALF_FIELDS[qtype]:
        h = (rng.standard_normal(n_blocks) * scale).astype(np.float16)
        raw[:, off:off + 2] = h.view(np.uint8).reshape(n_blocks, 2)
    return raw


def python_argv():
    """This Python for a child process, importing the same liquidlfm (-P when this one runs with it). When the tests
    run emulated by qemu-user (tools/cross/run_aarch64.sh sets QEMU_LD_PREFIX), through the same emulator: qemu-user
    does not follow an exec into a foreign binary."""
    qemu = os.environ.get("QEMU_LD_PREFIX") and shutil.which(f"qemu-{platform.machine()}")
    return ([qemu] if qemu else []) + [sys.executable] + (["-P"] if sys.flags.safe_path else [])


def bits(a):
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def test_type_sizes_match_ggml():
    # the 32-block and K types use the block sizes of the `gguf` package (ggml's structs)
    # (Q8_K is an activation format: quantized here, never dequantized; see test_quantize_rejects_bad_input)
    for t in WEIGHT_TYPES + [Q.F32, Q.F16, Q.BF16]:
        bs, ts = GGML_QUANT_SIZES[t]
        assert len(_core._dequantize(int(t), bytes(ts), bs)) == bs, t.name
    for t in (Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0, Q.F16, Q.BF16, Q.F32, Q.Q8_K):
        bs, ts = GGML_QUANT_SIZES[t]
        assert len(_core._quantize(int(t), np.zeros(bs, np.float32))) == ts, t.name


# ---- the traits table (csrc/kernels/quants/type_traits.c through _core.type_traits()) ----

TRAITS = {t["id"]: t for t in _core.type_traits()}


def test_type_traits_have_every_gguf_type_with_ggml_sizes():
    missing = [q.name for q in Q if int(q) not in TRAITS]
    assert not missing, f"type ids the gguf package knows and the traits table does not: {missing}"
    for q in Q:
        t = TRAITS[int(q)]
        assert t["name"].lower() == q.name.lower()
        assert _core.type_info(int(q)) == (t["name"], t["block_elems"], t["block_bytes"])
        assert t["is_quantized"] == (t["block_elems"] > 1)
        if q == Q.Q8_1:
            # ggml's block_q8_1 is two halves and 32 quants (36 bytes, checked in quants.h); the gguf
            # package's table keeps the 40 of an older float layout
            assert (t["block_elems"], t["block_bytes"]) == (32, 36)
            continue
        assert (t["block_elems"], t["block_bytes"]) == GGML_QUANT_SIZES[q], q.name


def test_type_traits_quantizable_matches_the_quantizer():
    from liquidlfm.quantize import MAIN_TYPE, TYPES, _core_available

    for t in TRAITS.values():
        try:
            out = _core._quantize(t["id"], np.zeros(t["block_elems"], np.float32))
        except UnsupportedModelError:
            assert not t["quantizable"], t["name"]
        else:
            assert t["quantizable"] and len(out) == t["block_bytes"], t["name"]
    for name in {MAIN_TYPE[f] for f in TYPES} | {"q6_k", "q5_k", "q8_0"}:  # the converter's view of the same table
        try:
            _core.quantize(TYPE_IDS[name], np.zeros((1, 256), np.float32))
            works = True
        except UnsupportedModelError:
            works = False
        assert _core_available(name) == works, name
        assert works, name  # every file type the converter lists can be written


def test_type_traits_dequantizable_matches_the_decoder():
    for t in TRAITS.values():
        try:
            out = _core._dequantize(t["id"], bytes(t["block_bytes"]), t["block_elems"])
        except UnsupportedModelError:
            assert not t["dequantizable"], t["name"]
        else:
            assert t["dequantizable"] and len(out) == t["block_elems"], t["name"]


def test_every_type_with_a_matmul_round_trips_through_dequantize():
    runnable = [t for t in TRAITS.values() if t["matmul"]]
    # the matmul tests of this file cover exactly the block types that run here
    assert {t["id"] for t in runnable if t["is_quantized"]} == {int(q) for q in WEIGHT_TYPES}
    assert {t["name"] for t in runnable if not t["is_quantized"]} == {"f32", "f16", "bf16"}
    rng = np.random.default_rng(11)
    for t in runnable:
        q = Q(t["id"])
        assert t["dequantizable"], t["name"]
        vt = TRAITS[t["vec_dot_type"]]
        assert vt["quantizable"] and (vt["id"] == int(Q.F32) or vt["vec_dot_type"] == vt["id"]), t["name"]
        assert t["kernels"] and all(k["matmul"] for k in t["kernels"].values()), t["name"]  # at every level
        if t["is_quantized"]:
            blocks = random_blocks(q, 16, rng)
            got = _core._dequantize(t["id"], blocks.tobytes(), 16 * t["block_elems"])
            assert np.array_equal(bits(got), bits(gq.dequantize(blocks, q).reshape(-1))), t["name"]
        # dequantized values are on the grid: quantizing them again gives the same bytes. Not for
        # Q5_K / Q6_K: their least-squares scale search (llama.cpp's, whose bytes they give) refits the
        # grid values and may settle on another grid
        if t["quantizable"] and t["block_elems"] == 32:
            x = (rng.standard_normal(64 * t["block_elems"]) * 2).astype(np.float32)
            b = _core._quantize(t["id"], x)
            assert _core._quantize(t["id"], _core._dequantize(t["id"], b, len(x))) == b, t["name"]


@pytest.mark.parametrize("qtype", WEIGHT_TYPES, ids=lambda t: t.name)
def test_dequantize_bit_exact(qtype):
    rng = np.random.default_rng(int(qtype))
    bs, ts = GGML_QUANT_SIZES[qtype]
    for scale in (0.02, 3.0, 1e-6):  # normal, large and subnormal-ish halves
        blocks = random_blocks(qtype, 64, rng, scale)
        want = gq.dequantize(blocks, qtype).reshape(-1)
        got = _core._dequantize(int(qtype), blocks.tobytes(), 64 * bs)
        assert np.array_equal(bits(got), bits(want))


@pytest.mark.parametrize("qtype", [Q.F16, Q.BF16, Q.F32], ids=lambda t: t.name)
def test_float_types_round_trip_exact(qtype):
    rng = np.random.default_rng(5)
    x = np.concatenate([
        rng.standard_normal(4096).astype(np.float32),
        (rng.standard_normal(4096) * 1e-6).astype(np.float32),  # fp16 subnormals
        (rng.standard_normal(4096) * 1e5).astype(np.float32),  # fp16 overflow
        np.array([0.0, -0.0, 65504.0, 65519.99, 65520.0, 2.0**-24, 2.0**-25, 3 * 2.0**-26, np.inf, -np.inf],
                 np.float32),
        rng.integers(0, 2**32, 4096, dtype=np.uint64).astype(np.uint32).view(np.float32),  # any bits
    ])
    x = x[~np.isnan(x)]  # NaN payloads are not compared
    want = gq.quantize(x, qtype)
    got = _core._quantize(int(qtype), x)
    assert got == np.ascontiguousarray(want).tobytes()
    back = _core._dequantize(int(qtype), got, len(x))
    assert np.array_equal(bits(back), bits(gq.dequantize(np.frombuffer(got, np.uint8), qtype).reshape(-1)))


@pytest.mark.parametrize("qtype", [Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0], ids=lambda t: t.name)
def test_quantize_bit_exact(qtype):
    rng = np.random.default_rng(int(qtype) + 100)
    rows = [
        rng.standard_normal(32 * 64).astype(np.float32),
        (rng.standard_normal(32 * 64) * 1e-3).astype(np.float32),
        rng.uniform(-5, 5, 32 * 64).astype(np.float32),
        np.zeros(32 * 4, np.float32),
        np.full(32 * 4, 0.75, np.float32),
        np.tile(np.arange(32, dtype=np.float32) - 16, 4),
        (rng.standard_normal(32 * 64) * 1e-6).astype(np.float32),  # scales in fp16 subnormals
    ]
    for x in rows:
        want = gq.quantize(x.reshape(1, -1), qtype).tobytes()
        got = _core._quantize(int(qtype), x)
        assert got == want


K_QUANTS = [Q.Q4_K, Q.Q5_K, Q.Q6_K]


def k_quant_cases(rng, n_random=400):
    """(name, rows [r, 512]) of finite floats for the K-quant quantizers: two super-blocks per row, so
    each row also mixes two magnitudes. Beside plain random rows, what the scale search has special
    cases for: all-zero and constant (sub-)blocks, one sign only, sparse rows, values on a grid
    (ties), magnitudes from F32 denormals (scales round to zero in F16) to 1e19 (the squared sums
    overflow to inf), and single outliers."""
    n = 2 * 256

    def normal(r, scale=1.0):
        return (rng.standard_normal((r, n)) * scale).astype(np.float32)

    cases = [("random", normal(n_random)),
             ("heavy tails", rng.standard_t(2, (64, n)).astype(np.float32)),
             ("magnitudes", normal(128) * (10.0 ** rng.uniform(-44, 19, (128, 1))).astype(np.float32)),
             ("per-sub-block magnitudes",
              normal(64) * np.repeat(10.0 ** rng.uniform(-12, 12, (64, n // 16)), 16, axis=1).astype(np.float32)),
             ("all zero", np.zeros((2, n), np.float32)),
             ("negative zeros", np.full((1, n), -0.0, np.float32)),
             ("constant", np.repeat(rng.standard_normal((16, 1)).astype(np.float32), n, axis=1)),
             ("constant sub-blocks", np.repeat(normal(16, 3)[:, : n // 16], 16, axis=1)),
             ("zero sub-blocks", np.where(np.repeat(rng.random((32, n // 32)) < 0.5, 32, axis=1), 0, normal(32))),
             ("negative only", -np.abs(normal(32))), ("positive only", np.abs(normal(32))),
             ("sparse", np.where(rng.random((32, n)) < 0.02, normal(32), 0).astype(np.float32)),
             ("integers", rng.integers(-8, 9, (32, n)).astype(np.float32)),
             ("half steps", (rng.integers(-64, 65, (32, n)) / 2).astype(np.float32)),
             ("denormals", (normal(16) * np.float32(1e-39)).astype(np.float32)),
             ("tiny", normal(16, 1e-30)), ("scales in F16 subnormals", normal(16, 1e-6)),
             ("huge", normal(16, 1e19)), ("near max", normal(8, 3e37))]
    outliers = normal(32, 0.01)
    outliers[np.arange(32), rng.integers(0, n, 32)] = rng.choice([-1, 1], 32) * 10.0 ** rng.uniform(0, 30, 32)
    cases.append(("one outlier", outliers.astype(np.float32)))
    return cases


@pytest.mark.reference
@pytest.mark.parametrize("qtype", K_QUANTS, ids=lambda t: t.name)
def test_k_quantizer_bytes_equal_llama_cpp(qtype):
    """Q4_K / Q5_K / Q6_K rows against llama.cpp's own quantizer (the pinned llama-cpp-python's libggml, called as
    llama-quantize calls it): every byte, on every case, including the degenerate magnitudes."""
    from tests.fixtures.gguf_models import ggml_quantize_rows

    bs, ts = GGML_QUANT_SIZES[qtype]
    for name, x in k_quant_cases(np.random.default_rng(int(qtype))):
        assert np.isfinite(x).all(), name
        want = np.frombuffer(ggml_quantize_rows(int(qtype), x), np.uint8).reshape(len(x), -1)
        got = np.frombuffer(_core._quantize(int(qtype), x.reshape(-1)), np.uint8).reshape(len(x), -1)
        bad = [r for r in range(len(x)) if not np.array_equal(want[r], got[r])]
        assert not bad, f"{name}: {len(bad)} of {len(x)} rows differ, first {bad[0]}"
        # the writer's entry point (rows over threads) gives the same bytes
        assert np.array_equal(_core.quantize(int(qtype), x), got), name


@pytest.mark.parametrize("qtype", K_QUANTS, ids=lambda t: t.name)
def test_k_quantizer_reconstructs_within_its_grid(qtype):
    """Without llama.cpp at hand: a K-quant row dequantizes near its floats (the bound is a fraction of
    the super-block's range: 4, 5 or 6 bits of it with 6- or 8-bit sub-scales), all-zero blocks
    give zeros, and the quantizer is deterministic."""
    bs, ts = GGML_QUANT_SIZES[qtype]
    bits_ = {Q.Q4_K: 4, Q.Q5_K: 5, Q.Q6_K: 6}[qtype]
    rng = np.random.default_rng(7)
    scales = (10.0 ** rng.uniform(-3, 3, (64, 1))).astype(np.float32)  # F16 holds these scales as normals
    for name, x in [("random", (rng.standard_normal((64, 512)) * scales).astype(np.float32)),
                    ("heavy tails", rng.standard_t(2, (64, 512)).astype(np.float32)),
                    ("one sign", np.abs(rng.standard_normal((16, 512))).astype(np.float32))]:
        data = _core._quantize(int(qtype), x.reshape(-1))
        assert _core._quantize(int(qtype), x.reshape(-1)) == data
        y = np.asarray(_core._dequantize(int(qtype), data, x.size)).reshape(-1, bs)
        xb = x.reshape(-1, bs).astype(np.float64)
        span = xb.max(1) - np.minimum(xb.min(1), 0) if qtype != Q.Q6_K else 2 * np.abs(xb).max(1)
        rms = np.sqrt(np.mean((y - xb) ** 2, axis=1))
        ok = span > 0
        assert (rms[ok] <= span[ok] / 2 ** bits_).all(), (name, float((rms[ok] / span[ok]).max()))
    z = _core._quantize(int(qtype), np.zeros(bs, np.float32))
    assert np.array_equal(np.asarray(_core._dequantize(int(qtype), z, bs)), np.zeros(bs, np.float32))


def test_quantize_rejects_bad_input():
    with pytest.raises(ValueError, match="multiple"):
        _core._quantize(int(Q.Q4_0), np.zeros(33, np.float32))
    with pytest.raises(ValueError, match="unknown tensor type"):
        _core._quantize(99, np.zeros(32, np.float32))
    with pytest.raises(UnsupportedModelError, match="no quantizer for type q2_K"):
        _core._quantize(int(Q.Q2_K), np.zeros(256, np.float32))
    with pytest.raises(ValueError, match="multiple"):
        _core._quantize(int(Q.Q4_K), np.zeros(288, np.float32))
    with pytest.raises(ValueError, match="multiple"):
        _core._dequantize(int(Q.Q4_K), bytes(144), 255)
    with pytest.raises(ValueError, match="too short"):
        _core._dequantize(int(Q.Q4_K), bytes(143), 256)
    with pytest.raises(UnsupportedModelError, match="activation format"):
        _core._dequantize(int(Q.Q8_K), bytes(292), 256)


# ---- activation quantization ----

def parse_act(qtype, data, n):
    """(scales per element, int quants) of an activation row, decoded with numpy."""
    b = np.frombuffer(data, np.uint8)
    if qtype == Q.Q8_0:
        b = b.reshape(-1, 34)
        d = b[:, :2].copy().view(np.float16).astype(np.float32)
        q = b[:, 2:].view(np.int8).astype(np.int32)
        return np.repeat(d[:, 0], 32), q.reshape(-1), None
    if qtype == Q.Q8_1:
        b = b.reshape(-1, 36)
        d = b[:, :2].copy().view(np.float16).astype(np.float32)
        s = b[:, 2:4].copy().view(np.float16).astype(np.float32)
        q = b[:, 4:].view(np.int8).astype(np.int32)
        return np.repeat(d[:, 0], 32), q.reshape(-1), s[:, 0]
    b = b.reshape(-1, 292)
    d = b[:, :4].copy().view(np.float32)
    q = b[:, 4:260].view(np.int8).astype(np.int32)
    bsums = b[:, 260:].copy().view(np.int16)
    return np.repeat(d[:, 0], 256), q.reshape(-1), bsums


@pytest.mark.parametrize("qtype", [Q.Q8_0, Q.Q8_1, Q.Q8_K], ids=lambda t: t.name)
def test_activation_quantization(qtype):
    rng = np.random.default_rng(7)
    n = 1024
    x = (rng.standard_normal(n) * 3).astype(np.float32)
    x[256:512] = 0  # an all-zero block
    data = _core._quantize_act(int(qtype), x, ref=True)
    d, q, extra = parse_act(qtype, data, n)
    blk = 32 if qtype != Q.Q8_K else 256
    amax = np.abs(x.reshape(-1, blk)).max(axis=1)
    assert np.all(np.abs(q) <= 127)
    # q is round-to-nearest(x * 127 / amax): within half a step. Q8_K, like llama.cpp's, scales by
    # the signed largest element, -127/max, so its quants and scale have the opposite sign.
    with np.errstate(divide="ignore"):
        scale = 127 / np.repeat(amax, blk)
    if qtype == Q.Q8_K:
        rows = x.reshape(-1, blk)
        signed_max = rows[np.arange(len(rows)), np.abs(rows).argmax(axis=1)]
        with np.errstate(divide="ignore"):
            scale = -127 / np.repeat(signed_max, blk)
        nonzero = amax > 0
        assert np.all(q.reshape(-1, blk)[nonzero].min(axis=1) == -127)
    with np.errstate(divide="ignore", invalid="ignore"):
        exact = np.where(np.repeat(amax, blk) > 0, x * scale, 0)
    assert np.all(np.abs(q - exact) <= 0.5 + 1e-4)
    assert np.allclose(d * q, x, atol=np.repeat(amax, blk) / 127 * 0.51 + 1e-3)
    if qtype == Q.Q8_1:
        sums = q.reshape(-1, 32).sum(axis=1) * d.reshape(-1, 32)[:, 0]
        assert np.allclose(extra, sums, rtol=2e-3, atol=1e-3)
    if qtype == Q.Q8_K:
        assert np.array_equal(extra.reshape(-1), q.reshape(-1, 16).sum(axis=1))
    # the ISA kernels produce the same bytes
    assert _core._quantize_act(int(qtype), x, ref=False) == data


# ---- dot products ----

def dequant_act(qtype, data, n):
    d, q, _ = parse_act(qtype, data, n)
    return d.astype(np.float64) * q


def vec_dot_type(qtype):
    return VEC_DOT_TYPE.get(qtype, Q.Q8_K)


@pytest.mark.parametrize("qtype", WEIGHT_TYPES, ids=lambda t: t.name)
def test_matmul_matches_dequantized_dot(qtype):
    rng = np.random.default_rng(int(qtype) + 7)
    bs, ts = GGML_QUANT_SIZES[qtype]
    cols, rows, T = 512, 9, 3
    w = random_blocks(qtype, rows * cols // bs, rng)
    wf = gq.dequantize(w, qtype).reshape(rows, cols).astype(np.float64)
    x = rng.standard_normal((T, cols)).astype(np.float32)
    vt = vec_dot_type(qtype)
    xf = np.stack([dequant_act(vt, _core._quantize_act(int(vt), x[t], ref=True), cols) for t in range(T)])
    want = xf @ wf.T
    mag = np.abs(xf) @ np.abs(wf).T
    for ref in (True, False):
        got = _core._quant_matmul(int(qtype), w.tobytes(), rows, cols, x, ref=ref)
        assert got.shape == (T, rows)
        err = np.abs(got - want) / (mag + 1e-30)
        assert err.max() < 2e-5, (ref, err.max())
    # and near the float product (activation quantization error only)
    got = _core._quant_matmul(int(qtype), w.tobytes(), rows, cols, x)
    full = x.astype(np.float64) @ wf.T
    assert np.abs(got - full).max() < 0.02 * (np.abs(x) @ np.abs(wf).T).max()


@pytest.mark.parametrize("qtype", WEIGHT_TYPES, ids=lambda t: t.name)
def test_isa_kernels_match_scalar(qtype):
    rng = np.random.default_rng(int(qtype) + 11)
    bs, ts = GGML_QUANT_SIZES[qtype]
    for cols, rows, T in [(bs, 1, 1), (bs * 3, 5, 1), (1024, 13, 1), (1024, 8, 4), (512, 7, 7), (256 * 2, 16, 9)]:
        if cols % bs:
            continue
        w = random_blocks(qtype, rows * cols // bs, rng, scale=0.05)
        x = (rng.standard_normal((T, cols)) * 2).astype(np.float32)
        ref = _core._quant_matmul(int(qtype), w.tobytes(), rows, cols, x, ref=True)
        got = _core._quant_matmul(int(qtype), w.tobytes(), rows, cols, x, ref=False)
        wf = np.abs(gq.dequantize(w, qtype).reshape(rows, cols))
        mag = np.abs(x) @ wf.T
        assert np.all(np.abs(got - ref) <= 1e-5 * mag + 1e-6), (cols, rows, T)


SIMD_TYPES = [Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0, Q.Q4_K, Q.Q5_K, Q.Q6_K]
X8_TYPES = [Q.Q4_0, Q.Q8_0, Q.Q4_K, Q.Q5_K, Q.Q6_K]
# token counts: one-token decode, the 2/3/4-token tiles, Q4_K's 4-token GEMM groups with a rest,
# Q5_K/Q6_K's tiled order from 8 on
ORACLE_TOKENS = (1, 2, 3, 4, 5, 7, 8, 9, 13)


# the SIMD kernels each level has: (row-layout types, X8-layout types), each level's own build of them
LEVEL_KERNELS = {
    "avx2": (SIMD_TYPES, X8_TYPES),
    "avxvnni": (SIMD_TYPES, X8_TYPES),
    "avx512": (SIMD_TYPES, X8_TYPES),
    "avx512zmm": (SIMD_TYPES, X8_TYPES),
    "neon": (SIMD_TYPES, X8_TYPES),
    "dotprod": (SIMD_TYPES, X8_TYPES),
    "i8mm": (SIMD_TYPES, X8_TYPES),
}


def kernel_in_use(qtype, x8=False):
    """The level that wrote the kernel the level in use runs for qtype ("ref": the scalar one; None: no kernel in
    that layout)."""
    return TRAITS[int(qtype)]["kernels"][_core._quant_kernels()]["x8" if x8 else "matmul"]


def require_simd_kernels(qtype=None, x8=False):
    level = _core._quant_kernels()
    if level == "ref":
        pytest.skip("the scalar kernels are in use (LFM_KERNELS=ref, or a CPU without AVX2+FMA+F16C or NEON): "
                    "no SIMD kernel to check")
    if qtype is not None and kernel_in_use(qtype, x8) in (None, "ref"):
        pytest.skip(f"the {level} level has no {'X8 ' if x8 else ''}{qtype.name} kernel")


def test_simd_levels_have_their_kernels():
    """Every SIMD level this CPU has runs its own kernels for the types it covers (so the skips of the checks
    above only ever name a type a level does not cover)."""
    for level, (row_types, x8_types) in LEVEL_KERNELS.items():
        for qtype in row_types:
            if level in TRAITS[int(qtype)]["kernels"]:
                assert TRAITS[int(qtype)]["kernels"][level]["matmul"] == level, (level, qtype.name)
        for qtype in x8_types:
            if level in TRAITS[int(qtype)]["kernels"]:
                assert TRAITS[int(qtype)]["kernels"][level]["x8"] == level, (level, qtype.name)


@pytest.mark.parametrize("qtype,layout", [(t, "rows") for t in SIMD_TYPES] + [(t, "x8") for t in X8_TYPES],
                         ids=lambda v: getattr(v, "name", v))
def test_simd_kernels_bit_identical_to_order_oracle(qtype, layout):
    """Each SIMD kernel gives, bit for bit, the floats of a scalar oracle that follows its float order
    (quants_oracle.c: 8 lanes, fma where it fuses, its horizontal sum, its batch-size rules), for every
    row layout, token count and thread range that cuts 8-row groups. Identical bits is the contract
    (these orders are llama.cpp's), so any change to a kernel's rounding fails here."""
    x8 = layout == "x8"
    require_simd_kernels(qtype, x8)
    rng = np.random.default_rng(int(qtype) + 41)
    bs, ts = GGML_QUANT_SIZES[qtype]
    for rows, cols in [(8, 256), (16, 1024), (24, 256 * 5)]:
        w = random_blocks(qtype, rows * cols // bs, rng, scale=0.05).tobytes()
        for T in ORACLE_TOKENS:
            x = (rng.standard_normal((T, cols)) * 2).astype(np.float32)
            x[:, :7] *= 60  # int8 extremes in the first block
            want = _core._quant_matmul_oracle(int(qtype), w, rows, cols, x, x8=x8)
            got = _core._quant_matmul(int(qtype), w, rows, cols, x, x8=x8)
            assert np.array_equal(bits(got), bits(want)), (rows, cols, T, np.abs(got - want).max())
            if x8:
                for r0, r1 in [(3, rows - 2), (5, 7)]:
                    part = _core._quant_matmul(int(qtype), w, rows, cols, x, x8=True, r0=r0, r1=r1)
                    assert np.array_equal(bits(part[:, r0:r1]), bits(want[:, r0:r1])), (rows, cols, T, r0, r1)


@pytest.mark.parametrize("qtype", [Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0], ids=lambda t: t.name)
def test_simd_kernels_extreme_blocks_32(qtype):
    """Every quant at one end of its range (nibbles 0 or 15, fifth bits all 0 or all 1, int8 -128 or -1) against
    activations at +-127: the kernels' int16 and int32 partial sums at their largest, bit-identical to the order
    oracle in both layouts, for one token and for a token pair with an odd one."""
    require_simd_kernels(qtype)
    bs, ts = GGML_QUANT_SIZES[qtype]
    rows, cols = 16, 512
    for fill in (0x00, 0xFF, 0x80):
        raw = np.full((rows * cols // bs, ts), fill, np.uint8)
        for off in HALF_FIELDS[qtype]:
            raw[:, off:off + 2] = np.array([0.5], np.float16).view(np.uint8)
        w = raw.tobytes()
        for sign in (1.0, -1.0):
            x = np.full((3, cols), sign, np.float32)
            x[1, ::2] = -sign
            for x8 in (False, True) if has_x8(qtype) else (False,):
                for xt in (x[:1], x):
                    want = _core._quant_matmul_oracle(int(qtype), w, rows, cols, xt, x8=x8)
                    got = _core._quant_matmul(int(qtype), w, rows, cols, xt, x8=x8)
                    assert np.array_equal(bits(got), bits(want)), (fill, sign, x8, len(xt))


@pytest.mark.parametrize("qtype", [Q.Q2_K, Q.Q3_K], ids=lambda t: t.name)
def test_types_without_simd_kernel_run_the_scalar_oracle(qtype):
    """Q2_K / Q3_K have no SIMD kernel: the kernel set in use falls back to quants_ref.c exactly."""
    rng = np.random.default_rng(int(qtype) + 43)
    bs, ts = GGML_QUANT_SIZES[qtype]
    rows, cols = 9, 512
    w = random_blocks(qtype, rows * cols // bs, rng, scale=0.05).tobytes()
    for T in (1, 4, 9):
        x = rng.standard_normal((T, cols)).astype(np.float32)
        got = _core._quant_matmul(int(qtype), w, rows, cols, x)
        assert np.array_equal(bits(got), bits(_core._quant_matmul(int(qtype), w, rows, cols, x, ref=True)))
    with pytest.raises(UnsupportedModelError, match="oracle"):
        _core._quant_matmul_oracle(int(qtype), w, rows, cols, x)


def test_order_oracle_is_not_the_plain_sum():
    """The oracle's order is observable: on these inputs it differs from the plain scalar definition
    (quants_ref.c), so the bit-identity above is not a comparison of one code path with itself."""
    rng = np.random.default_rng(47)
    for qtype in SIMD_TYPES:
        bs, ts = GGML_QUANT_SIZES[qtype]
        rows, cols, T = 16, 1024, 9
        w = random_blocks(qtype, rows * cols // bs, rng, scale=0.05).tobytes()
        x = (rng.standard_normal((T, cols)) * 2).astype(np.float32)
        oracle = _core._quant_matmul_oracle(int(qtype), w, rows, cols, x)
        plain = _core._quant_matmul(int(qtype), w, rows, cols, x, ref=True)
        assert not np.array_equal(bits(oracle), bits(plain)), qtype.name


def simd_levels_present(feats):
    """The SIMD levels this CPU has, lowest first, and the chain each belongs to (type_traits.c)."""
    if feats["neon"]:
        chain = ["neon", "dotprod", "i8mm"]
        present = ["neon"] + (["dotprod"] if feats["dotprod"] else [])
        present += ["i8mm"] if feats["dotprod"] and feats["i8mm"] else []
    else:
        chain = ["avx2", "avxvnni", "avx512", "avx512zmm"]
        avx2 = feats["avx2"] and feats["fma"] and feats["f16c"]
        present = ["avx2"] if avx2 else []
        present += ["avxvnni"] if avx2 and feats["avxvnni"] else []
        avx512 = avx2 and all(feats[f] for f in ("avx512f", "avx512bw", "avx512vl", "avx512vnni"))
        present += ["avx512", "avx512zmm"] if avx512 else []
    return chain, present


def expected_level(feats, env):
    """The best level present, or with LFM_KERNELS naming a level the best present at or below it. Unforced,
    avx512zmm only where 512-bit operations run at full width (base/cpu.c)."""
    chain, present = simd_levels_present(feats)
    if env == "ref":
        return "ref"
    if env in chain:
        present = [lv for lv in present if chain.index(lv) <= chain.index(env)]
    elif not feats.get("avx512_full_width"):
        present = [lv for lv in present if lv != "avx512zmm"]
    return present[-1] if present else "ref"


def quant_kernels_with(env_value):
    env = dict(os.environ, LFM_KERNELS=env_value)
    out = subprocess.run([*python_argv(), "-c", "from liquidlfm import _core; print(_core._quant_kernels())"],
                         env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_kernel_choice_follows_cpu_and_env():
    feats = _core.cpu_features()
    assert _core._quant_kernels() == expected_level(feats, os.environ.get("LFM_KERNELS", ""))
    assert quant_kernels_with("ref") == "ref"
    for level in simd_levels_present(feats)[0]:  # each level name forces the best present at or below it
        assert quant_kernels_with(level) == expected_level(feats, level), level


def test_matmul_rejects_bad_input():
    w = bytes(18 * 4)
    with pytest.raises(ValueError, match="bad shape"):
        _core._quant_matmul(int(Q.Q4_0), w, 1, 33, np.zeros(33, np.float32))
    with pytest.raises(ValueError, match="weight buffer"):
        _core._quant_matmul(int(Q.Q4_0), w, 3, 64, np.zeros(64, np.float32))
    with pytest.raises(ValueError, match="no quantized matmul"):
        _core._quant_matmul(int(Q.F16), w, 1, 32, np.zeros(32, np.float32))



@pytest.mark.parametrize("qtype", [Q.Q4_0, Q.Q8_0], ids=lambda t: t.name)
def test_x8_32_blocks_many_rows_and_tokens_bit_identical_to_order_oracle(qtype):
    """The Q4_0 / Q8_0 X8 drivers past one tile: rows with an even and an odd number of 8-row groups
    (the 512-bit kernels take the groups in pairs, an odd last one through the 256-bit tiles), and
    token counts past a tile and past a chunk (Q4_0's 64 tokens, Q8_0's 256), bit for bit."""
    require_simd_kernels(qtype, True)
    rng = np.random.default_rng(int(qtype) + 53)
    bs, ts = GGML_QUANT_SIZES[qtype]
    for rows, cols in [(32, 256), (40, 128), (56, 96)]:
        w = random_blocks(qtype, rows * cols // bs, rng, scale=0.05).tobytes()
        for T in (11, 16, 17, 64, 65, 300):
            x = (rng.standard_normal((T, cols)) * 2).astype(np.float32)
            x[:, :7] *= 60  # int8 extremes in the first block
            want = _core._quant_matmul_oracle(int(qtype), w, rows, cols, x, x8=True)
            got = _core._quant_matmul(int(qtype), w, rows, cols, x, x8=True)
            assert np.array_equal(bits(got), bits(want)), (rows, cols, T, np.abs(got - want).max())
            r0, r1 = 3, rows - 5  # a thread's share that cuts the first and the last group
            part = _core._quant_matmul(int(qtype), w, rows, cols, x, x8=True, r0=r0, r1=r1)
            assert np.array_equal(bits(part[:, r0:r1]), bits(want[:, r0:r1])), (rows, cols, T, r0, r1)


# ---- repacked layouts ----

def has_x8(qtype):
    return kernel_in_use(qtype, x8=True) is not None


@pytest.mark.parametrize("qtype", [Q.Q4_0, Q.Q8_0], ids=lambda t: t.name)
def test_x8_layout_matches_rows_layout(qtype):
    if not has_x8(qtype):
        assert _core._quant_kernels() == "ref"
        pytest.skip("no X8 kernel on this CPU (scalar kernels)")
    rng = np.random.default_rng(3)
    rows, cols = 40, 1024
    ts = GGML_QUANT_SIZES[qtype][1]
    w = random_blocks(qtype, rows * cols // 32, rng, scale=0.05).tobytes()
    wf = np.abs(gq.dequantize(np.frombuffer(w, np.uint8).reshape(-1, ts), qtype).reshape(rows, cols))
    for T in (1, 2, 5, 9):
        x = rng.standard_normal((T, cols)).astype(np.float32)
        ref = _core._quant_matmul(int(qtype), w, rows, cols, x, ref=True)
        tol = 1e-5 * (np.abs(x) @ wf.T) + 1e-6
        # thread ranges that start and end inside 8-row groups take the unpacking path
        for r0, r1 in [(0, rows), (3, 37), (8, 16), (5, 7), (12, 12)]:
            got = _core._quant_matmul(int(qtype), w, rows, cols, x, x8=True, r0=r0, r1=r1)
            assert np.all(got[:, :r0] == 0) and np.all(got[:, r1:] == 0)
            assert np.all(np.abs(got[:, r0:r1] - ref[:, r0:r1]) <= tol[:, r0:r1]), (T, r0, r1)


X8_K_TYPES = [Q.Q4_K, Q.Q5_K, Q.Q6_K]


def require_k_x8(qtype):
    """Every SIMD level (avx2, avx512, neon, dotprod, i8mm) has the K-quant X8 kernels: only the scalar
    kernels may lack them."""
    if not has_x8(qtype):
        assert _core._quant_kernels() == "ref", f"no {qtype.name} X8 kernel at level {_core._quant_kernels()}"
        pytest.skip("no X8 kernel in the scalar kernels (LFM_KERNELS=ref, or no AVX2 / NEON)")


@pytest.mark.parametrize("qtype", X8_K_TYPES, ids=lambda t: t.name)
def test_x8_k_quants_bit_identical_to_rows_layout(qtype):
    """The K-quant X8 kernels are a re-ordering of the row kernels' integer work with the same float
    operations: their floats equal the row kernel's bit for bit, for every token count (decode and
    prefill tiles) and for thread ranges that cut 8-row groups; and both stay near the scalar oracle."""
    require_k_x8(qtype)
    rng = np.random.default_rng(int(qtype) + 29)
    ts = GGML_QUANT_SIZES[qtype][1]
    for rows, cols in [(8, 256), (16, 1024), (40, 512), (24, 256 * 33)]:
        w = random_blocks(qtype, rows * cols // 256, rng, scale=0.05).tobytes()
        wf = np.abs(gq.dequantize(np.frombuffer(w, np.uint8).reshape(-1, ts), qtype).reshape(rows, cols))
        for T in (1, 2, 3, 4, 5, 9):
            x = (rng.standard_normal((T, cols)) * 2).astype(np.float32)
            x[:, :7] *= 60  # large values: int8 extremes in the first block
            want = _core._quant_matmul(int(qtype), w, rows, cols, x)
            got = _core._quant_matmul(int(qtype), w, rows, cols, x, x8=True)
            assert np.array_equal(bits(got), bits(want)), (rows, cols, T)
            for r0, r1 in [(3, rows - 2), (5, 7), (8, 8), (1, rows)]:
                part = _core._quant_matmul(int(qtype), w, rows, cols, x, x8=True, r0=r0, r1=r1)
                assert np.array_equal(bits(part[:, r0:r1]), bits(want[:, r0:r1])), (rows, cols, T, r0, r1)
                assert np.all(part[:, :r0] == 0) and np.all(part[:, r1:] == 0)
            ref = _core._quant_matmul(int(qtype), w, rows, cols, x, ref=True)
            assert np.all(np.abs(got - ref) <= 1e-5 * (np.abs(x) @ wf.T) + 1e-6), (rows, cols, T)


@pytest.mark.parametrize("qtype", X8_K_TYPES, ids=lambda t: t.name)
def test_x8_k_quants_extreme_blocks(qtype):
    """All-max quants and scales (Q6_K: 63 with scale -128 / 127; Q4_K: 15, Q5_K: 31, with scale and min 63)
    against activations at +-127: the int16 pair sums and int32 lanes at their limits, bit-identical."""
    require_k_x8(qtype)
    bs, ts = GGML_QUANT_SIZES[qtype]
    rows, cols = 16, 512
    raw = np.full((rows * cols // bs, ts), 0xff, np.uint8)
    for off in HALF_FIELDS[qtype]:
        raw[:, off:off + 2] = np.array([0.5], np.float16).view(np.uint8)
    if qtype == Q.Q6_K:
        raw[::2, 192:208] = np.uint8(0x80)  # scale -128 on every other block
        raw[1::2, 192:208] = np.uint8(0x7f)
    w = raw.tobytes()
    for sign in (1.0, -1.0):
        x = np.full((3, cols), sign, np.float32)
        x[1, ::2] = -sign
        want = _core._quant_matmul(int(qtype), w, rows, cols, x)
        got = _core._quant_matmul(int(qtype), w, rows, cols, x, x8=True)
        assert np.array_equal(bits(got), bits(want))
        ref = _core._quant_matmul(int(qtype), w, rows, cols, x, ref=True)
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("qtype", [Q.Q4_K, Q.Q5_K, Q.Q6_K], ids=lambda t: t.name)
def test_k_quant_partial_tiles_bit_identical_to_order_oracle(qtype):
    """Odd row and token counts leave kernel tiles partly filled (the i8mm kernels pair rows and tokens
    for SMMLA and pad an odd one): the oracle's bits all the same, on both sides of Q4_K's 4-token
    groups and of Q5_K/Q6_K's 8-token switch."""
    require_simd_kernels()
    rng = np.random.default_rng(int(qtype) + 53)
    bs, ts = GGML_QUANT_SIZES[qtype]
    cols = 512
    for rows in (1, 3, 5, 7):
        w = random_blocks(qtype, rows * cols // bs, rng, scale=0.05).tobytes()
        for T in (1, 2, 3, 5, 6, 7, 9, 10, 11):
            x = (rng.standard_normal((T, cols)) * 2).astype(np.float32)
            want = _core._quant_matmul_oracle(int(qtype), w, rows, cols, x)
            got = _core._quant_matmul(int(qtype), w, rows, cols, x)
            assert np.array_equal(bits(got), bits(want)), (rows, T)


def test_x8_rejects_bad_shapes():
    """Only whole 8-row groups repack; such matrices stay in rows layout (a model loads them so)."""
    with pytest.raises(ValueError):
        _core._quant_matmul(int(Q.Q4_0), bytes(18 * 4), 4, 32, np.zeros(32, np.float32), x8=True)
    for qtype in X8_K_TYPES:
        ts = GGML_QUANT_SIZES[qtype][1]
        with pytest.raises(ValueError):
            _core._quant_matmul(int(qtype), bytes(ts * 13), 13, 256, np.zeros(256, np.float32), x8=True)
    with pytest.raises(ValueError):  # no X8 kernel for this type
        _core._quant_matmul(int(Q.Q5_0), bytes(22 * 8 * 8), 8, 256, np.zeros(256, np.float32), x8=True)


def test_profile_counts_matmuls():
    _core._profile_get(reset=True)
    assert _core._profile_get() == []


# ---- whole model: repacked weights and the profiler ----

MODEL_SHAPE = dict(vocab_size=320, hidden_size=128, n_layers=3, layer_types=["conv", "full_attention", "conv"],
                   heads=2, kv_heads=1, ff=256, max_position_embeddings=1024)


@pytest.fixture(scope="module")
def q_ggufs(tmp_path_factory):
    from tests.fixtures.gguf_models import hf_to_gguf, make_tiny_hf

    d = tmp_path_factory.mktemp("qmodel")
    hf = make_tiny_hf(d / "hf", dtype="float32", seed=3, **MODEL_SHAPE)
    return {t: hf_to_gguf(hf, d / f"m-{t}.gguf", t) for t in ("q4_0", "q8_0")}


LOGITS_SCRIPT = """
import sys, numpy as np, liquidlfm as lfm
m = lfm.load(sys.argv[1], n_threads=2)
np.save(sys.argv[2], np.array(m.forward(list(range(1, 40))), dtype=np.float32))
"""


@pytest.mark.reference
@pytest.mark.parametrize("qtype", ["q4_0", "q8_0"])
def test_repacked_model_matches_scalar_kernels(q_ggufs, qtype, tmp_path):
    """The model as loaded (X8-repacked weights + AVX2 kernels where the CPU has them) gives the
    logits of the scalar oracle (LFM_KERNELS=ref: ggml layout, scalar dot products) up to summation
    order, and for Q8_0 (whose X8 kernel keeps the row kernel's order) exactly the logits of the row
    layout (LFM_REPACK=0)."""
    out = {}
    for name, env in (("best", {}), ("ref", {"LFM_KERNELS": "ref"}), ("rows", {"LFM_REPACK": "0"})):
        f = tmp_path / f"{name}.npy"
        subprocess.run([*python_argv(), "-c", LOGITS_SCRIPT, str(q_ggufs[qtype]), str(f)], check=True,
                       env=dict(os.environ, **env), cwd=str(os.path.dirname(os.path.dirname(os.path.dirname(__file__)))))
        out[name] = np.load(f)
    # Bit-level differences upstream (the float kernels change too) can move an activation across a
    # rounding boundary of the 8-bit quantization. Measured on this model, relative to the logit
    # scale: Q4_0 max 1.5e-3, mean 1.2e-5; Q8_0 max 1.1e-7, mean 1.4e-8; top-1 identical for both.
    # The bounds: those, with 2x room (Q4_0) or at float precision (Q8_0).
    err = np.abs(out["best"] - out["ref"])
    scale = np.abs(out["ref"]).max()
    max_rel, mean_rel = {"q4_0": (3e-3, 3e-5), "q8_0": (1e-6, 1e-7)}[qtype]
    assert err.max() <= max_rel * scale, err.max() / scale
    assert err.mean() <= mean_rel * scale, err.mean() / scale
    assert (out["best"].argmax(-1) == out["ref"].argmax(-1)).all()
    if qtype == "q8_0":
        assert np.array_equal(bits(out["best"]), bits(out["rows"]))
    else:  # Q4_0's X8 kernel sums in llama.cpp's repacked order, unlike its row kernel
        assert not np.array_equal(bits(out["best"]), bits(out["rows"]))


# K-quant files as llama.cpp writes them: Q4_K_M / Q5_K_M (Q4_K / Q5_K + Q6_K matrices, Q6_K tied head) and Q6_K.
# Rows of 256 so every matrix can be a K-quant; a vocabulary of 324 rows (not a multiple of 8) keeps
# the tied head in rows layout next to repacked layer matrices.
K_MODEL_SHAPE = dict(hidden_size=256, n_layers=3, layer_types=["conv", "full_attention", "conv"], heads=4,
                     kv_heads=2, ff=512, max_position_embeddings=1024)


@pytest.fixture(scope="module")
def k_ggufs(tmp_path_factory):
    from tests.fixtures.gguf_models import hf_to_gguf, llama_quantize, make_tiny_hf

    d = tmp_path_factory.mktemp("kmodel")
    out = {}
    for vocab in (320, 324):
        hf = make_tiny_hf(d / f"hf-{vocab}", dtype="float32", seed=5, vocab_size=vocab, **K_MODEL_SHAPE)
        f32 = hf_to_gguf(hf, d / f"m-{vocab}-f32.gguf", "f32")
        for t in ("q4_k_m", "q5_k_m", "q6_k"):
            out[(t, vocab)] = llama_quantize(f32, d / f"m-{vocab}-{t}.gguf", t)
    return out


def run_logits(path, tmp_path, name, env):
    f = tmp_path / f"{name}.npy"
    subprocess.run([*python_argv(), "-c", LOGITS_SCRIPT, str(path), str(f)], check=True,
                   env=dict(os.environ, **env), cwd=str(os.path.dirname(os.path.dirname(os.path.dirname(__file__)))))
    return np.load(f)


@pytest.mark.reference
@pytest.mark.parametrize("vocab", [320, 324])
@pytest.mark.parametrize("qtype", ["q4_k_m", "q5_k_m", "q6_k"])
def test_repacked_k_model_logits_unchanged(k_ggufs, qtype, vocab, tmp_path):
    """A Q4_K_M / Q5_K_M / Q6_K GGUF loaded with X8-repacked K-quant matrices (and, for vocab 320, the tied
    Q6_K head, while tok_embd's rows are still looked up in ggml's layout) gives exactly the logits
    of the same kernels on the row layout (LFM_REPACK=0). (How close the AVX2 kernels are to the
    scalar oracle on a whole random model is test_gguf_model's subject; the kernels above.)"""
    from gguf import GGUFReader

    path = k_ggufs[(qtype, vocab)]
    types = {t.name: t.tensor_type for t in GGUFReader(str(path)).tensors}
    assert types["token_embd.weight"] == Q.Q6_K and "output.weight" not in types  # tied Q6_K head
    assert {types["blk.0.ffn_gate.weight"], types["blk.0.ffn_down.weight"]} <= set(X8_K_TYPES)
    x8 = run_logits(path, tmp_path, "x8", {})
    rows = run_logits(path, tmp_path, "rows", {"LFM_REPACK": "0"})
    assert np.array_equal(bits(x8), bits(rows))
    assert np.isfinite(x8).all() and np.abs(x8).max() > 0


@pytest.mark.reference
def test_profile_times_each_weight(q_ggufs):
    import liquidlfm as lfm

    m = lfm.load(str(q_ggufs["q4_0"]), n_threads=1)
    try:
        _core._profile_enable(True)
        _core._profile_get(reset=True)
        with m.session(n_ctx=64) as s:
            s.prefill([1, 2, 3])
            s.step(4)
        prof = {name: (calls, rows, sec) for name, calls, rows, sec in _core._profile_get(reset=True)}
    finally:
        _core._profile_enable(False)
        m.close()
    assert prof["blk.1.attn_q.weight"][:2] == (2, 4)  # prefill of 3 rows + one step
    assert prof["blk.0.shortconv.in_proj.weight"][:2] == (2, 4)
    assert all(sec >= 0 for _, _, sec in prof.values())
    assert _core._profile_get() == []
