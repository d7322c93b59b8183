"""liquidlfm: exact, fast on-device inference for Liquid AI's LFM2 / LFM2.5 models."""

from .errors import (
    Cancelled,
    ContextFullError,
    LiquidLFMError,
    ModelFormatError,
    ModelNotFoundError,
    UnsupportedModelError,
)
from . import _core  # noqa: F401  (the C extension: fail at import, not first use)
from .model import Model, ModelConfig, Session, load
from .tokenizer import StreamDecoder, Tokenizer
from .generation import Chunk, GenerationResult, GenerationStats, load_session, save_session

__version__ = "0.1.0"


def __getattr__(name):  # lazy, so `python -m liquidlfm.translate` runs without a runpy warning
    if name == "translate":  # the module is callable: lfm.translate(text, "ko")
        import importlib

        return importlib.import_module(__name__ + ".translate")
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
    "GenerationResult",
    "GenerationStats",
    "save_session",
    "load_session",
    "Cancelled",
    "ContextFullError",
    "LiquidLFMError",
    "ModelFormatError",
    "ModelNotFoundError",
    "UnsupportedModelError",
]
