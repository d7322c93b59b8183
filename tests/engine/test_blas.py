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
