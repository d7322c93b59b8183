"""OpenBLAS for float prefill (csrc/runtime/blas.c, liquidlfm/_blas.py): its matmul against ours
and NumPy, the LFM_BLAS / blas= switch, and a clean fallback when the library cannot be loaded.

OpenBLAS comes from the scipy-openblas32 package, a test dependency: the tests that need it fail,
not skip, without it (a skip would hide a missing install step)."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import liquidlfm as lfm
from liquidlfm import _blas, _core

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module", autouse=True)
def openblas():
    path = _blas.library_path()
    assert path is not None, "scipy-openblas32 is a test dependency: pip install -e '.[test]'"
    return _core.blas_load(path)


def run_python(code, **env):
    """Run code in a fresh interpreter (the library loads once per process) from the repo root."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("LFM_BLAS", "LFM_KERNELS")}
    full_env.update(env)
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full_env, capture_output=True, text=True,
                         cwd=REPO, timeout=300)
    assert res.returncode == 0, res.stderr
    return res.stdout


def to_bf16_bits(x):
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def weights(R, K, wtype, rng):
    """(what the engine takes, the same values as float32)."""
    W = rng.standard_normal((R, K)).astype(np.float32)
    if wtype == "f32":
        return W, W
    if wtype == "f16":
        h = W.astype(np.float16)
        return h.view(np.uint16), h.astype(np.float32)
    b = to_bf16_bits(W)
    return b, (b.astype(np.uint32) << 16).view(np.float32)


# (T, R, K): single rows and tokens, sizes off every vector width and block size, and several blocks
SHAPES = [(1, 1, 1), (2, 3, 5), (7, 33, 257), (64, 129, 100), (65, 300, 64), (100, 513, 129), (17, 1030, 48)]


def test_info_names_openblas(openblas):
    assert openblas.startswith("OpenBLAS") and _core.blas_info() == openblas


@pytest.mark.parametrize("wtype", ["f32", "f16", "bf16"])
@pytest.mark.parametrize("T,R,K", SHAPES)
def test_blas_matmul_vs_ours_and_numpy(wtype, T, R, K):
    rng = np.random.default_rng(T * 7919 + R * 31 + K)
    Wk, Wf = weights(R, K, wtype, rng)
    X = rng.standard_normal((T, K)).astype(np.float32)
    want = X.astype(np.float64) @ Wf.astype(np.float64).T
    ours, _, _, used_ours = _core._float_matmul(Wk, X, wtype, n_threads=2, blas="off")
    blas, _, _, used_blas = _core._float_matmul(Wk, X, wtype, n_threads=2, blas="on")
    assert not used_ours and used_blas
    tol = 2e-5 * np.sqrt(K) * max(1.0, np.abs(want).max())
    np.testing.assert_allclose(blas, want, rtol=0, atol=tol)
    np.testing.assert_allclose(blas, ours, rtol=0, atol=tol)


@pytest.mark.parametrize("wtype", ["f32", "bf16"])
def test_blas_result_does_not_depend_on_thread_count(wtype):
    """Fixed blocks of rows, one sgemm call each: the same calls whatever the pool size."""
    rng = np.random.default_rng(5)
    Wk, _ = weights(1100, 96, wtype, rng)
    X = rng.standard_normal((70, 96)).astype(np.float32)
    one = _core._float_matmul(Wk, X, wtype, n_threads=1, blas="on")[0]
    for n in (2, 3, 5):
        np.testing.assert_array_equal(_core._float_matmul(Wk, X, wtype, n_threads=n, blas="on")[0], one)


@pytest.mark.parametrize("wtype,large", [("f32", True), ("bf16", True), ("f16", False)])
def test_auto_uses_blas_for_large_batches_only(wtype, large):
    """auto: OpenBLAS for F32 and BF16 prefill-sized batches, never for one-token steps; F16 stays
    on our GEMM, which measured as fast (csrc/runtime/blas.c)."""
    rng = np.random.default_rng(1)
    W, _ = weights(256, 256, wtype, rng)
    used = {T: _core._float_matmul(W, rng.standard_normal((T, 256)).astype(np.float32), wtype, blas="auto")[3]
            for T in (1, 2, 512)}
    assert used == {1: False, 2: False, 512: large}


def test_bad_arguments():
    W = np.zeros((4, 8), np.float32)
    with pytest.raises(ValueError, match="blas must be"):
        _core._float_matmul(W, np.zeros((2, 8), np.float32), "f32", blas="yes")
    with pytest.raises(ValueError, match="blas must be"):
        _core.blas_mode("always")
    with pytest.raises(ValueError, match=r"W is \[4, 8\] and X \[2, 7\]"):
        _core._float_matmul(W, np.zeros((2, 7), np.float32), "f32", blas="on")
    with pytest.raises(TypeError, match="blas must be"):
        _blas.resolve(1)
    assert (_blas.resolve(True), _blas.resolve(False), _blas.resolve("auto")) == ("on", "off", "auto")


# ---- the switch: LFM_BLAS, blas=, LFM_KERNELS=ref ----

@pytest.fixture(scope="module")
def f32_model(tmp_path_factory):
    from tests.fixtures.hf_models import make_hf_model

    return make_hf_model(tmp_path_factory.mktemp("blas_f32"), vocab_size=300, hidden_size=96, num_hidden_layers=3,
                         layer_types=["conv", "full_attention", "conv"], num_attention_heads=4, num_key_value_heads=2,
                         intermediate_size=160, seed=21, tokenizer=False)


SWITCH = """
    import numpy as np, liquidlfm as lfm
    m = lfm.load({path!r})
    with m.session(n_ctx=128) as s:
        print(lfm.blas is not None, m.blas_mode, m.blas is not None, s.blas)
"""


@pytest.mark.reference  # the model is built with transformers
@pytest.mark.parametrize("env,expected", [
    ({}, "True auto True auto"),
    ({"LFM_BLAS": "auto"}, "True auto True auto"),
    ({"LFM_BLAS": "1"}, "True on True on"),
    ({"LFM_BLAS": "0"}, "False off False None"),
    ({"LFM_BLAS": "1", "LFM_KERNELS": "ref"}, "False on False None"),  # the scalar reference never uses it
])
def test_env_switch(f32_model, env, expected):
    assert run_python(SWITCH.format(path=str(f32_model)), **env).split() == expected.split()


@pytest.mark.reference
def test_argument_overrides_env(f32_model):
    code = """
        import liquidlfm as lfm
        m = lfm.load({path!r}, blas="auto")
        a = m.session(n_ctx=64)
        b = m.session(n_ctx=64, blas=False)
        c = m.session(n_ctx=64, blas="on")
        print(m.blas_mode, a.blas, b.blas, c.blas)
    """
    assert run_python(code.format(path=str(f32_model)), LFM_BLAS="0").split() == ["auto", "auto", "None", "on"]


@pytest.mark.reference
def test_bad_env_value_is_a_clear_error(f32_model):
    code = """
        import liquidlfm as lfm
        try:
            lfm.load({path!r})
        except ValueError as e:
            print("ValueError:", e)
    """
    out = run_python(code.format(path=str(f32_model)), LFM_BLAS="yes")
    assert "ValueError:" in out and "LFM_BLAS='yes'" in out


@pytest.mark.reference
def test_quantized_model_does_not_use_blas(f32_model):
    with lfm.load(f32_model, quantize="q8_0", blas="on") as m, m.session(n_ctx=16) as s:
        assert m.blas is None and s.blas is None


@pytest.mark.reference
@pytest.mark.parametrize("ftype,auto", [("f32", None), ("bf16", "auto"), ("f16", None)])
def test_gguf_f32_stays_on_our_gemm_under_auto(f32_model, tmp_path, ftype, auto):
    """An F32 GGUF's logits equal llama.cpp's bit for bit with our GEMM (test_gguf_model.py), so auto
    keeps its matrices off OpenBLAS; BF16 GGUFs have no such parity and use it; blas='on' forces it."""
    from tests.fixtures.gguf_models import hf_to_gguf

    g = hf_to_gguf(f32_model, tmp_path / f"m-{ftype}.gguf", ftype)
    with lfm.load(g) as m, m.session(n_ctx=16) as s, m.session(n_ctx=16, blas="on") as on:
        assert m.blas_mode == "auto" and s.blas == auto and on.blas == "on"
        assert (m.blas is not None) == (auto is not None)


@pytest.mark.reference
def test_model_blas_on_off_auto_agree(f32_model):
    """Whole forward passes: OpenBLAS on every batch, never, and from the measured batch size, within
    float rounding of each other (the transformers bound is checked by test_engine_parity.py, and
    with blas='on' below)."""
    ids = [int(x) for x in np.random.default_rng(3).integers(0, 300, 200)]
    out = {}
    for mode in ("on", "off", "auto"):
        with lfm.load(f32_model, blas=mode) as m:
            out[mode] = np.array(m.forward(ids))
            with m.session(n_ctx=256, n_threads=1) as s1, m.session(n_ctx=256, n_threads=2) as s2:
                # equal for 1 and 2 threads with OpenBLAS too
                np.testing.assert_array_equal(s1.decode(ids, "all"), s2.decode(ids, "all"))
    np.testing.assert_allclose(out["on"], out["off"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(out["auto"], out["off"], rtol=0, atol=1e-5)
    assert not np.array_equal(out["on"], out["off"])  # OpenBLAS did run


@pytest.mark.reference
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_blas_on_matches_transformers(tmp_path, dtype):
    """Every matmul on OpenBLAS (prefill and one-token steps) against transformers with the parity
    suite's bound (test_engine_parity.F32_BOUND), for F32 and 16-bit checkpoints."""
    from tests.engine.test_engine_parity import CONFIGS, F32_BOUND
    from tests.fixtures.hf_models import hf_logits, load_hf_model, make_hf_model

    kw = CONFIGS["h128_gqa4_untied_autoff"]
    path = make_hf_model(tmp_path / dtype, dtype=dtype, seed=12, tokenizer=False, **kw)
    ids = [int(x) for x in np.random.default_rng(4).integers(0, kw["vocab_size"], 90)]
    ref = hf_logits(load_hf_model(path), ids)  # F32 compute on the checkpoint's values
    with lfm.load(path, blas="on") as m:
        assert m.blas is not None
        full = np.array(m.forward(ids), dtype=np.float64)
        with m.session(n_ctx=128) as s:
            assert s.blas == "on"
            steps = np.stack([s.step(t) for t in ids[:20]]).astype(np.float64)
    assert np.abs(full - ref).max() <= F32_BOUND
    assert np.abs(steps - ref[:20]).max() <= F32_BOUND


# ---- without the library ----

def test_load_failures_leave_the_engine_without_blas(tmp_path):
    code = """
        import liquidlfm as lfm
        from liquidlfm import _core
        for path in ({missing!r}, {not_blas!r}):
            try:
                _core.blas_load(path)
            except OSError as e:
                print("OSError:", e)
        print(_core.blas_info())
    """
    not_blas = tmp_path / "libnotblas.so"
    not_blas.write_bytes(b"\x7fELF not really")
    out = run_python(code.format(missing=str(tmp_path / "none.so"), not_blas=str(not_blas)))
    lines = out.splitlines()
    assert lines[0].startswith("OSError: cannot load") and "none.so" in lines[0]
    assert lines[1].startswith("OSError: cannot load") and "libnotblas.so" in lines[1]
    assert lines[2] == "None"


def test_library_without_openblas_symbols_is_refused():
    import ctypes.util

    libm = ctypes.util.find_library("m")
    code = """
        from liquidlfm import _core
        try:
            _core.blas_load({lib!r})
        except OSError as e:
            print("OSError:", e)
        print(_core.blas_info())
    """
    out = run_python(code.format(lib=libm)).splitlines()
    assert "is not the scipy-openblas32 library" in out[0] and out[1] == "None"


MISSING = """
    import sys, warnings
    sys.modules["scipy_openblas32"] = None  # import scipy_openblas32 -> ImportError, as if not installed
    warnings.simplefilter("error")          # falling back must not even warn
    import numpy as np, liquidlfm as lfm
    m = lfm.load({path!r})
    with m.session(n_ctx=128) as s:
        logits = s.prefill(list(range(100)))
        print(lfm.blas, m.blas, s.blas, m.blas_mode, bool(np.isfinite(logits).all()))
    try:
        lfm.load({path!r}, blas="on")
    except ImportError as e:
        print("ImportError:", e)
"""


@pytest.mark.reference
def test_missing_package_falls_back_cleanly(f32_model):
    out = run_python(MISSING.format(path=str(f32_model))).splitlines()
    assert out[0].split() == ["None", "None", "None", "auto", "True"]
    assert out[1].startswith("ImportError: blas='on' needs OpenBLAS") and "scipy-openblas32" in out[1]


@pytest.mark.reference
def test_broken_package_warns_and_falls_back(f32_model, tmp_path):
    """scipy_openblas32 importable but its library unusable: one RuntimeWarning, then our kernels."""
    fake = tmp_path / "fake" / "scipy_openblas32"
    (fake / "lib").mkdir(parents=True)
    (fake / "lib" / "libscipy_openblas.so").write_bytes(b"not a library")
    (fake / "__init__.py").write_text(
        "import os\n"
        "def get_lib_dir():\n    return os.path.join(os.path.dirname(__file__), 'lib')\n"
        "def get_library(fullname=False):\n    return 'libscipy_openblas.so' if fullname else 'scipy_openblas'\n")
    code = """
        import sys, warnings
        sys.path.insert(0, {fake!r})
        import liquidlfm as lfm
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            m = lfm.load({path!r})
            m2 = lfm.load({path!r})
        print(len(w), w[0].category.__name__, m.blas, m.forward([1, 2, 3]).shape)
    """
    out = run_python(code.format(fake=str(fake.parent), path=str(f32_model))).split()
    assert out == ["1", "RuntimeWarning", "None", "(3,", "300)"]
