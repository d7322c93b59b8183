"""Build liquidlfm._core from csrc/.

Every csrc/**/*.c goes into one extension module. Files named *_avx2.c, *_avxvnni.c, *_avx512.c, *_neon.c,
*_neon_dotprod.c and *_neon_i8mm.c hold kernels for one instruction set; they are compiled with that
ISA's flags only, and the running CPU picks among them at run time (csrc/base/cpu.c,
csrc/kernels/), so the wheel never needs -march=native.

The ISA files are chosen by the *target* architecture, not the build machine's: the compiler's own
`-dumpmachine` (so CC=aarch64-linux-gnu-gcc cross-compiles the arm64 kernels), or ARCHFLAGS on macOS
("-arch arm64 -arch x86_64": universal2, each ISA flag then passed with clang's -Xarch_<arch> and
every ISA file compiling to nothing on the other architecture).

Every file is compiled with -ffp-contract=off: the kernels fuse multiply-adds exactly where they
mean to (fmaf, intrinsics), and a compiler contracting a*b+c on its own (clang does by default)
would change the rounding the parity tests pin down.

LIQUIDLFM_SANITIZE=1 builds with AddressSanitizer + UBSan (run Python with libasan preloaded).
LIQUIDLFM_DEBUG=1 builds with -O0 -g.
LIQUIDLFM_PYTHON_INCLUDE / LIQUIDLFM_NUMPY_INCLUDE: the target's Python and NumPy headers, when
cross-compiling (tools/cross/build_aarch64.sh).
"""
import os
import platform
import re
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).parent

X86, ARM64 = "x86_64", "arm64"
ISA_FLAGS = {  # suffix -> (architecture, flags)
    "_avx2.c": (X86, ["-mavx2", "-mfma", "-mf16c"]),
    "_avxvnni.c": (X86, ["-mavxvnni", "-mavx2", "-mfma", "-mf16c"]),
    "_avx512.c": (X86, ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512vnni", "-mavx2", "-mfma", "-mf16c"]),
    "_avx512zmm.c": (X86, ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512vnni", "-mavx2", "-mfma", "-mf16c"]),
    "_neon.c": (ARM64, ["-march=armv8-a"]),
    "_neon_dotprod.c": (ARM64, ["-march=armv8.2-a+dotprod"]),
    "_neon_i8mm.c": (ARM64, ["-march=armv8.2-a+dotprod+i8mm"]),
}


def normalize_arch(name):
    name = name.lower()
    if name in ("x86_64", "amd64", "x86_64h", "i686", "i386", "x86"):
        return X86
    if name in ("aarch64", "arm64", "arm64e", "armv8"):
        return ARM64
    return name


def target_arches():
    """The architectures the compiler builds for: ARCHFLAGS' -arch list (macOS), else the
    compiler's -dumpmachine triple, else this machine."""
    arches = re.findall(r"-arch\s+(\S+)", os.environ.get("ARCHFLAGS", ""))
    if arches:
        return sorted({normalize_arch(a) for a in arches})
    cc = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    try:
        triple = subprocess.run(cc + ["-dumpmachine"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        triple = ""
    return [normalize_arch(triple.split("-")[0] if triple else platform.machine())]


ARCHES = target_arches()

SANITIZE = os.environ.get("LIQUIDLFM_SANITIZE") == "1"
DEBUG = os.environ.get("LIQUIDLFM_DEBUG") == "1" or SANITIZE

BASE_FLAGS = ["-std=c11", "-fvisibility=hidden", "-ffp-contract=off", "-Wall", "-Wextra", "-Wno-unused-parameter",
              "-pthread"]
BASE_FLAGS += ["-O1", "-g", "-fno-omit-frame-pointer"] if DEBUG else ["-O3"]
LINK_FLAGS = ["-pthread", "-lm"]
if sys.platform.startswith("linux"):
    LINK_FLAGS.append("-ldl")  # dlopen (base/os.c: OpenBLAS at run time) is in libdl before glibc 2.34
if SANITIZE:
    BASE_FLAGS += ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]
    LINK_FLAGS += ["-fsanitize=address,undefined"]


def isa_of(path):
    # the longest matching suffix: "_neon_dotprod.c" is not a "_neon.c" file
    matches = [suffix for suffix in ISA_FLAGS if path.endswith(suffix)]
    return max(matches, key=len) if matches else None


def isa_flags(suffix):
    """The flags for one ISA file, or None when no target architecture has that ISA."""
    arch, flags = ISA_FLAGS[suffix]
    if arch not in ARCHES:
        return None
    if len(ARCHES) == 1:
        return flags
    return [f for flag in flags for f in (f"-Xarch_{arch}", flag)]


def c_sources():
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / "csrc").rglob("*.c"))


def include_dirs():
    import numpy

    dirs = ["csrc"]
    # a cross build's target headers come before the build machine's (setuptools appends those)
    if os.environ.get("LIQUIDLFM_PYTHON_INCLUDE"):
        dirs += os.environ["LIQUIDLFM_PYTHON_INCLUDE"].split(os.pathsep)
    dirs.append(os.environ.get("LIQUIDLFM_NUMPY_INCLUDE") or numpy.get_include())
    return dirs


class BuildExt(build_ext):
    """Compile ISA-specific files with their own flags and link them into the extension."""

    def build_extension(self, ext):
        isa_sources = [s for s in ext.sources if isa_of(s)]
        ext.sources = [s for s in ext.sources if not isa_of(s)]
        objects = []
        for src in isa_sources:
            flags = isa_flags(isa_of(src))
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
    include_dirs=include_dirs(),
    depends=[str(p.relative_to(ROOT)) for p in (ROOT / "csrc").rglob("*.h")],
    extra_compile_args=BASE_FLAGS,
    extra_link_args=LINK_FLAGS,
)

setup(ext_modules=[core], cmdclass={"build_ext": BuildExt})
