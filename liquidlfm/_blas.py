"""OpenBLAS for float prefill: find the scipy-openblas32 wheel's library and load it into the engine.

The engine does not link OpenBLAS (csrc/runtime/blas.c loads it at run time), so liquidlfm installs
and runs without it; this module finds the library of the installed scipy-openblas32 wheel and hands
its path to the engine once per process, the first time a model is loaded with blas not "off".
Without the wheel, or if loading fails, every matmul runs on the engine's own kernels.
"""
from __future__ import annotations

import os
import warnings
from typing import Optional, Union

from . import _core

PACKAGE = "scipy_openblas32"  # its library: symbols prefixed scipy_, 32-bit integers (what blas.c resolves)

_attempted = False
_error: Optional[str] = None  # why loading failed, for blas=True's exception


def library_path() -> Optional[str]:
    """The shared library of the installed scipy-openblas32 wheel, or None if it is not installed."""
    try:
        import scipy_openblas32 as sob
    except ImportError:
        return None
    lib_dir = sob.get_lib_dir()
    try:
        name = sob.get_library(fullname=True)  # libscipy_openblas.so / .dylib
    except (OSError, IndexError):
        return None
    path = os.path.join(lib_dir, name)
    return path if os.path.isfile(path) else None


def _load() -> Optional[str]:
    """Load the library into the engine (once); its info string, or None."""
    global _attempted, _error
    if _core.blas_info() is not None or _attempted:
        return _core.blas_info()
    _attempted = True
    path = library_path()
    if path is None:
        _error = f"{PACKAGE} is not installed (pip install scipy-openblas32, or liquidlfm[blas])"
        return None
    try:
        return _core.blas_load(path)
    except OSError as e:
        # installed but unusable (a broken or foreign wheel): say so once, then run without it
        _error = str(e)
        warnings.warn(f"liquidlfm: OpenBLAS not used, float prefill runs on liquidlfm's own kernels: {e}",
                      RuntimeWarning, stacklevel=3)
        return None


def resolve(blas: Union[None, bool, str]) -> str:
    """A load()/session() blas argument -> "auto", "on" or "off". None: the LFM_BLAS environment
    variable ("0", "1", "auto"; unset is "auto"). ValueError for anything else."""
    if blas is True:
        return "on"
    if blas is False:
        return "off"
    if blas is not None and not isinstance(blas, str):
        raise TypeError(f"blas must be None, a bool or 'auto' / 'on' / 'off', got {type(blas).__name__}")
    return _core.blas_mode(blas)


def prepare(blas: Union[None, bool, str]) -> str:
    """Resolve blas and load OpenBLAS unless it is "off". "on" without a usable library raises
    ImportError (asked for explicitly); "auto" falls back to the engine's kernels silently."""
    mode = resolve(blas)
    if mode != "off" and _load() is None and mode == "on":
        raise ImportError(f"blas='on' needs OpenBLAS, which is not available: {_error}")
    return mode


def info() -> Optional[str]:
    """The OpenBLAS float prefill would use (loading it if LFM_BLAS allows), or None."""
    if resolve(None) == "off":
        return None
    return _load()
