"""Build liquidlfm._core from csrc/.

Every csrc/**/*.c goes into one extension module. Files named *_avx2.c, *_avx512.c and *_neon.c
hold kernels for one instruction set; they are compiled with that ISA's flags only, and the
running CPU picks among them at run time (csrc/base/cpu.c, csrc/kernels/), so the wheel never needs -march=native.

LIQUIDLFM_SANITIZE=1 builds with AddressSanitizer + UBSan (run Python with libasan preloaded).
LIQUIDLFM_DEBUG=1 builds with -O0 -g.
"""
import os
import platform
from pathlib import Path

import numpy
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).parent
MACHINE = platform.machine().lower()
IS_X86 = MACHINE in ("x86_64", "amd64", "i686", "i386")
IS_ARM64 = MACHINE in ("aarch64", "arm64")

ISA_FLAGS = {
    "_avx2.c": ["-mavx2", "-mfma", "-mf16c"] if IS_X86 else None,
    "_avx512.c": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512vnni", "-mavx2", "-mfma", "-mf16c"]
    if IS_X86
    else None,
    "_neon.c": ["-march=armv8.2-a+dotprod+fp16"] if IS_ARM64 else None,
}

SANITIZE = os.environ.get("LIQUIDLFM_SANITIZE") == "1"
DEBUG = os.environ.get("LIQUIDLFM_DEBUG") == "1" or SANITIZE

BASE_FLAGS = ["-std=c11", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter", "-pthread"]
BASE_FLAGS += ["-O1", "-g", "-fno-omit-frame-pointer"] if DEBUG else ["-O3"]
LINK_FLAGS = ["-pthread", "-lm"]
if SANITIZE:
    BASE_FLAGS += ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]
    LINK_FLAGS += ["-fsanitize=address,undefined"]


def isa_of(path):
    for suffix in ISA_FLAGS:
        if path.endswith(suffix):
            return suffix
    return None


def c_sources():
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / "csrc").rglob("*.c"))


class BuildExt(build_ext):
    """Compile ISA-specific files with their own flags and link them into the extension."""

    def build_extension(self, ext):
        isa_sources = [s for s in ext.sources if isa_of(s)]
        ext.sources = [s for s in ext.sources if not isa_of(s)]
        objects = []
        for src in isa_sources:
            flags = ISA_FLAGS[isa_of(src)]
            if flags is None:  # another architecture's kernels: not built here
                continue
            objects += self.compiler.compile(
                [src],
                output_dir=self.build_temp,
                include_dirs=ext.include_dirs,
                extra_postargs=BASE_FLAGS + flags,
                depends=ext.depends,
            )
        ext.extra_objects = list(ext.extra_objects or []) + objects
        # build_ext relinks only when a source or a dependency is newer than the module; the ISA
        # files are no longer in ext.sources, so list them there
        ext.depends = list(ext.depends) + isa_sources
        super().build_extension(ext)


core = Extension(
    "liquidlfm._core",
    sources=c_sources(),
    include_dirs=["csrc", numpy.get_include()],
    depends=[str(p.relative_to(ROOT)) for p in (ROOT / "csrc").rglob("*.h")],
    extra_compile_args=BASE_FLAGS,
    extra_link_args=LINK_FLAGS,
    define_macros=[("LFM_IS_X86", "1")] if IS_X86 else [("LFM_IS_ARM64", "1")] if IS_ARM64 else [],
)

setup(ext_modules=[core], cmdclass={"build_ext": BuildExt})
