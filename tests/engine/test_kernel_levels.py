"""Every x86 kernel level this CPU has, not only the best one.

The kernel tests (test_kernels.py, test_quants.py, test_nonfinite.py) check the level in use against the
scalar oracles. A CPU with AVX-512 would otherwise never run its AVX2 kernels in the suite, and one with
AVX-VNNI never its AVX-VNNI ones, so each level below the best is forced with LFM_KERNELS in a child
pytest here, and every level's matmuls are compared with each other bit for bit (the VNNI levels fuse
integer steps but must give the AVX2 level's floats, which are llama.cpp's: kernels/ROUNDING.md).
A level this CPU lacks is skipped, naming the missing features. arm64 levels are run under qemu by
tools/cross/test_aarch64.sh."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q
from gguf.constants import GGML_QUANT_SIZES

from liquidlfm import _core

from .test_quants import ORACLE_TOKENS, SIMD_TYPES, X8_TYPES, python_argv, random_blocks, simd_levels_present

REPO = Path(__file__).resolve().parents[2]
X86_LEVELS = ["avx2", "avxvnni", "avx512", "avx512zmm"]
NEEDS = {"avx2": ("avx2", "fma", "f16c"), "avxvnni": ("avx2", "fma", "f16c", "avxvnni"),
         "avx512": ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512vnni"),
         "avx512zmm": ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512vnni")}
KERNEL_TESTS = ["tests/engine/test_kernels.py", "tests/engine/test_quants.py", "tests/engine/test_nonfinite.py"]

FEATS = _core.cpu_features()
pytestmark = pytest.mark.skipif(FEATS["neon"], reason="x86 levels; arm64's are tested under qemu")


def require_level(level):
    if os.environ.get("LFM_KERNELS"):
        pytest.skip(f"LFM_KERNELS={os.environ['LFM_KERNELS']} is set for this run: the levels are forced here")
    missing = [f for f in NEEDS[level] if not FEATS[f]]
    if missing:
        pytest.skip(f"this CPU lacks {', '.join(missing)}: no {level} level to test")
    assert level in simd_levels_present(FEATS)[1]


def run_child(code, level):
    env = dict(os.environ, LFM_KERNELS=level)
    return subprocess.run([*python_argv(), "-c", code], env=env, capture_output=True, check=True, cwd=REPO).stdout


@pytest.mark.parametrize("level", X86_LEVELS)
def test_kernel_suite_at_level(level):
    """The kernel tests pass with the level forced (the level in use is the suite's own run, so it is skipped)."""
    require_level(level)
    if level == _core._quant_kernels():
        pytest.skip(f"{level} is the level in use: the kernel tests of the main run cover it")
    env = dict(os.environ, LFM_KERNELS=level)
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not reference",
                        *KERNEL_TESTS], env=env, cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert " passed" in r.stdout.splitlines()[-1], r.stdout[-2000:]


# the matmul every level runs, printed as raw float bits so the parent compares them exactly
_MATMULS = """
import sys, numpy as np
from liquidlfm import _core
from gguf.constants import GGML_QUANT_SIZES
from tests.engine.test_quants import random_blocks
types, tokens = {types!r}, {tokens!r}
assert _core._quant_kernels() == {level!r}, _core._quant_kernels()
rng = np.random.default_rng(7)
out = []
for qt in types:
    bs, ts = GGML_QUANT_SIZES[qt]
    rows, cols = 24, 512
    w = random_blocks(qt, rows * cols // bs, rng, scale=0.05).tobytes()
    for T in tokens:
        x = (rng.standard_normal((T, cols)) * 2).astype(np.float32)
        for x8 in (False, True) if qt in {x8_types!r} else (False,):
            out.append(_core._quant_matmul(qt, w, rows, cols, x, x8=x8).view(np.uint32).ravel())
sys.stdout.buffer.write(np.concatenate(out).tobytes())
"""


def assert_levels_agree(child_code):
    """child_code(level) -> the program whose printed float bits every level this CPU has must agree on."""
    if os.environ.get("LFM_KERNELS"):
        pytest.skip(f"LFM_KERNELS={os.environ['LFM_KERNELS']} is set for this run: the levels are forced here")
    present = simd_levels_present(FEATS)[1]
    if len(present) < 2:
        pytest.skip(f"this CPU has only {present or 'no SIMD level'}: nothing to compare")
    results = {level: np.frombuffer(run_child(child_code(level), level), dtype=np.uint32) for level in present}
    first = present[0]
    for level in present[1:]:
        assert results[level].size == results[first].size > 0
        diff = np.flatnonzero(results[level] != results[first])
        assert diff.size == 0, f"{level} differs from {first} at {diff.size} of {results[first].size} outputs"


def test_levels_give_the_same_bits():
    """Every level this CPU has: the same matmul floats, every type, layout and token count."""
    assert_levels_agree(lambda level: _MATMULS.format(types=[int(t) for t in SIMD_TYPES], tokens=list(ORACLE_TOKENS),
                                                      level=level, x8_types={int(t) for t in X8_TYPES}))


# the K-quant X8 kernels over the shapes the 512-bit tiles (avx512zmm) split differently: pairs of 8-row
# groups with an odd one left (24, 40 rows) or not (16, 32, 48), rows long enough that the tokens run in
# several chunks (80 blocks: 11 tokens a chunk), and token counts on both sides of Q4_K's 4-token groups
# and Q5_K/Q6_K's 8-token switch
_X8_K_MATMULS = """
import sys, numpy as np
from liquidlfm import _core
from tests.engine.test_quants import random_blocks
types, tokens = {types!r}, {tokens!r}
assert _core._quant_kernels() == {level!r}, _core._quant_kernels()
rng = np.random.default_rng(17)
out = []
for qt in types:
    for rows, cols in [(16, 512), (24, 256 * 80), (32, 768), (40, 256 * 80), (48, 256 * 80)]:
        w = random_blocks(qt, rows * cols // 256, rng, scale=0.05).tobytes()
        for T in tokens:
            x = (rng.standard_normal((T, cols)) * 2).astype(np.float32)
            out.append(_core._quant_matmul(qt, w, rows, cols, x, x8=True).view(np.uint32).ravel())
sys.stdout.buffer.write(np.concatenate(out).tobytes())
"""


def test_levels_give_the_same_bits_x8_k_shapes():
    """Every level this CPU has: the same K-quant X8 matmul floats over group pairs, odd groups and token chunks."""
    types = [int(t) for t in (Q.Q4_K, Q.Q5_K, Q.Q6_K)]
    tokens = list(range(1, 14)) + [16, 17, 24]
    assert_levels_agree(lambda level: _X8_K_MATMULS.format(types=types, tokens=tokens, level=level))
