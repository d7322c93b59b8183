"""Other builds of liquidlfm give this build's logits bit for bit: the aarch64 build under qemu-user
at each ARM kernel level (neon, dotprod, i8mm; and the scalar kernels), the aarch64 build by clang,
and an x86 clang build.

The arm64 kernels follow the float order of the x86 AVX2 kernels (csrc/kernels/ROUNDING.md), and
every build compiles with -ffp-contract=off, so the logits of the same model and tokens are the
same floats everywhere. Each build runs tests/fixtures/logits_probe.py (prefill logits of every
position, then greedy decoding with an F32 and an F16 KV cache) on random-weight models of every
weight type with a matmul kernel.

The builds come from tools/cross/build_aarch64.sh (with CC=clang --target=aarch64-linux-gnu for
the clang one) and tools/cross/build_clang.sh (.ci/run makes all three); a build that is absent is skipped, saying how to make it, unless
LIQUIDLFM_REQUIRE_OTHER_BUILDS=1 (set by .ci/run), where it fails.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import liquidlfm
from liquidlfm import _core

REPO = Path(__file__).resolve().parents[2]
PROBE = REPO / "tests" / "fixtures" / "logits_probe.py"
AARCH64_PKG = Path(os.environ.get("LIQUIDLFM_AARCH64_PKG", REPO / "build" / "aarch64" / "pkg"))
# the same cross build by clang (the compiler of macOS and Android): its NEON code must round as gcc's
AARCH64_CLANG_PKG = Path(os.environ.get("LIQUIDLFM_AARCH64_CLANG_PKG", REPO / "build" / "aarch64-clang" / "pkg"))
CLANG_PKG = Path(os.environ.get("LIQUIDLFM_CLANG_PKG", REPO / "build" / "clang" / "pkg"))
ARM64_ROOT = Path(os.environ.get("LFM_ARM64_SYSROOT", "/opt/lfm-arm64/root"))
REQUIRED = os.environ.get("LIQUIDLFM_REQUIRE_OTHER_BUILDS") == "1"

pytestmark = pytest.mark.reference  # the models come from transformers (and llama.cpp for K-quants)

SHAPE = dict(vocab_size=324, hidden_size=256, n_layers=3, layer_types=["conv", "full_attention", "conv"], heads=4,
             kv_heads=2, ff=512, max_position_embeddings=1024)


def missing(what, how):
    if REQUIRED:
        pytest.fail(f"{what} (LIQUIDLFM_REQUIRE_OTHER_BUILDS=1): {how}")
    pytest.skip(f"{what}: {how}")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """One small model per weight type with a matmul kernel: the float GGUF types, the 32-block
    types (written by the gguf package), the K-quant mixes (llama.cpp's quantizer, when installed),
    and the safetensors folder itself."""
    from tests.fixtures.gguf_models import FLOAT_TYPES, GGUF_QUANT_TYPES, hf_to_gguf, llama_quantize, make_tiny_hf

    d = tmp_path_factory.mktemp("builds")
    hf = make_tiny_hf(d / "hf", dtype="float32", seed=11, **SHAPE)
    paths = {"safetensors": hf}
    for t in FLOAT_TYPES + GGUF_QUANT_TYPES:
        paths[t] = hf_to_gguf(hf, d / f"m-{t}.gguf", t)
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        if REQUIRED:
            pytest.fail("llama-cpp-python is missing: python tools/install_llama_reference.py")
    else:
        for t in ("q4_k_m", "q5_k_m", "q6_k"):
            paths[t] = llama_quantize(paths["f32"], d / f"m-{t}.gguf", t)
    return paths


def run_probe(cmd, models, out, env):
    names = list(models)
    subprocess.run(cmd + [str(PROBE), str(out)] + [str(models[n]) for n in names], check=True, cwd=str(out.parent),
                   env=env, timeout=1800)
    got = np.load(out)
    return names, got


def assert_same(ref, got, names, label):
    for i, name in enumerate(names):
        for key in ("prefill", "steps_f32", "steps_f16", "tokens_f32", "tokens_f16"):
            a, b = ref[f"{i}/{key}"], got[f"{i}/{key}"]
            assert a.shape == b.shape, (label, name, key)
            if a.dtype == np.float32:
                same = np.array_equal(a.view(np.uint32), b.view(np.uint32))
                assert same, (label, name, key, float(np.nanmax(np.abs(a - b))))
            else:
                assert np.array_equal(a, b), (label, name, key, a, b)


@pytest.fixture(scope="module")
def this_build(models, tmp_path_factory):
    """This build's results with its best kernels and with the scalar ones."""
    if not _core.cpu_features()["avx2"] or _core.kernels_default() == "ref":
        pytest.skip("this CPU runs the scalar kernels: no SIMD results to compare other builds' SIMD levels with")
    d = tmp_path_factory.mktemp("this")
    env = {k: v for k, v in os.environ.items() if k != "LFM_KERNELS"}
    env["PYTHONPATH"] = str(Path(liquidlfm.__file__).resolve().parents[1])  # the liquidlfm this test imported
    out = {}
    for label, extra in (("best", {}), ("ref", {"LFM_KERNELS": "ref"})):
        out[label] = run_probe([sys.executable], models, d / f"{label}.npz", dict(env, **extra))[1]
    return out


# (build, qemu CPU model, LFM_KERNELS, the level the build must then use)
ARM_RUNS = [
    ("gcc", "max", "neon", "neon"),
    ("gcc", "max", "dotprod", "dotprod"),
    ("gcc", "max", "i8mm", "i8mm"),
    ("gcc", "cortex-a76", "", "dotprod"),  # detected: dotprod without i8mm
    ("gcc", "cortex-a72", "", "neon"),     # detected: plain NEON
    ("gcc", "max", "ref", "ref"),
    ("clang", "max", "", "i8mm"),
    ("clang", "cortex-a72", "", "neon"),
]
ARM_PKGS = {"gcc": (AARCH64_PKG, "tools/cross/build_aarch64.sh (it makes the arm64 root too)"),
            "clang": (AARCH64_CLANG_PKG, 'CC="clang --target=aarch64-linux-gnu" tools/cross/build_aarch64.sh '
                      'build/aarch64-clang/pkg')}


@pytest.fixture(scope="module")
def arm_results(request, tmp_path_factory):
    """The probe under qemu for every run of ARM_RUNS, as many at once as there are cores (each
    qemu process is single-threaded emulation of the probe's 2 threads)."""
    from concurrent.futures import ThreadPoolExecutor

    qemu = shutil.which("qemu-aarch64")
    if not qemu:
        missing("no qemu-aarch64", "apt-get install qemu-user")
    if not (ARM64_ROOT / "usr/bin/python3.11").exists():
        missing(f"no arm64 root in {ARM64_ROOT}", "tools/cross/make_sysroot.sh")
    for pkg, how in ARM_PKGS.values():
        if not list(pkg.glob("liquidlfm/_core*aarch64*.so")):
            missing(f"no aarch64 build in {pkg}", how)
    models = request.getfixturevalue("models")  # built only once the builds are known to be there
    d = tmp_path_factory.mktemp("arm")
    base = {k: v for k, v in os.environ.items() if k not in ("LFM_KERNELS", "PYTHONPATH", "PYTHONHOME")}
    base.update(QEMU_LD_PREFIX=str(ARM64_ROOT), PYTHONDONTWRITEBYTECODE="1")

    def run(i):
        build, cpu, force, _ = ARM_RUNS[i]
        env = dict(base, QEMU_CPU=cpu, PYTHONPATH=f"{ARM_PKGS[build][0]}:{REPO / 'build' / 'aarch64' / 'site'}",
                   **({"LFM_KERNELS": force} if force else {}))
        return run_probe([qemu, str(ARM64_ROOT / "usr/bin/python3.11"), "-P"], models, d / f"arm{i}.npz", env)

    with ThreadPoolExecutor(max_workers=max(1, len(os.sched_getaffinity(0)))) as pool:
        return list(pool.map(run, range(len(ARM_RUNS))))


@pytest.mark.parametrize("run", range(len(ARM_RUNS)), ids=[f"{b}-{c}-{f or 'auto'}" for b, c, f, _ in ARM_RUNS])
def test_aarch64_build_gives_this_builds_logits(arm_results, this_build, run):
    build, cpu, _, level = ARM_RUNS[run]
    names, got = arm_results[run]
    assert list(got["kernels"]) == ["ref" if level == "ref" else "neon", level]
    assert_same(this_build["ref" if level == "ref" else "best"], got, names, f"aarch64 {build} {cpu} {level}")


def test_clang_build_gives_this_builds_logits(request, tmp_path):
    if not list(CLANG_PKG.glob("liquidlfm/_core*.so")):
        missing(f"no clang build in {CLANG_PKG}", "tools/cross/build_clang.sh")
    models, this_build = request.getfixturevalue("models"), request.getfixturevalue("this_build")
    env = {k: v for k, v in os.environ.items() if k != "LFM_KERNELS"}
    env["PYTHONPATH"] = str(CLANG_PKG)
    names, got = run_probe([sys.executable, "-P"], models, tmp_path / "clang.npz", env)
    assert_same(this_build["best"], got, names, "clang")
