"""liquidlfm: exact, fast on-device inference for Liquid AI's LFM2 / LFM2.5 models."""

from .errors import (
    Cancelled,
    ContextFullError,
    LiquidLFMError,
    ModelFormatError,
    ModelNotFoundError,
    UnsupportedModelError,
)


def _import_core():
    """The C extension, or an ImportError that says where liquidlfm was imported from and what to run."""
    try:
        from . import _core
    except ImportError as e:
        import importlib.machinery
        import os

        here = os.path.dirname(os.path.abspath(__file__))
        built = [f for f in os.listdir(here) if f.startswith("_core") and
                 f.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))]
        if built:
            raise ImportError(f"liquidlfm's C extension in {here} ({', '.join(built)}) could not be loaded: {e}. "
                              "Rebuild it: pip install . (or python setup.py build_ext --inplace)") from e
        raise ImportError(
            f"liquidlfm's C extension (liquidlfm._core) is not built: Python is importing liquidlfm from the "
            f"source folder {here}, which has none (from a checkout's root directory the source folder comes "
            f"first on sys.path). Either install it (pip install .) and run from another directory or with "
            f"the installed command (liquidlfm translate ...), or build it in place with "
            f"python setup.py build_ext --inplace") from None
    return _core


_core = _import_core()  # fail at import, with what to do, not at first use
from .model import Model, ModelConfig, Session, load
from .tokenizer import StreamDecoder, Tokenizer
from .generation import Chunk, Constraint, GenerationResult, GenerationStats, load_session, save_session
from .generation.batch import BatchEngine, Request
from .translate import translate  # the function; its package stays importable as liquidlfm.translate

__version__ = "0.1.0"

# The kernels this process runs (fixed at import from the CPU and LFM_KERNELS): the quantized
# level ("avx2", "neon", "dotprod", "i8mm"; "ref" = scalar) and the float one ("avx2", "neon", "ref").
kernel_level: str = _core._quant_kernels()
float_kernels: str = _core.kernels_default()


def __getattr__(name):
    # `liquidlfm.blas`: the OpenBLAS float prefill uses ("OpenBLAS 0.3.x ... SkylakeX ..."), or None
    # (LFM_BLAS=0, LFM_KERNELS=ref, or scipy-openblas32 missing). Looked up when asked: reading it
    # loads the library, which a process running only quantized models never needs.
    if name == "blas":
        from . import _blas

        return None if _core.cpu_features()["force_ref"] else _blas.info()
    raise AttributeError(f"module 'liquidlfm' has no attribute {name!r}")


__all__ = [
    "load",
    "translate",
    "Model",
    "ModelConfig",
    "Session",
    "Tokenizer",
    "StreamDecoder",
    "Chunk",
    "Constraint",
    "GenerationResult",
    "GenerationStats",
    "BatchEngine",
    "Request",
    "save_session",
    "load_session",
    "Cancelled",
    "ContextFullError",
    "LiquidLFMError",
    "ModelFormatError",
    "ModelNotFoundError",
    "UnsupportedModelError",
]
