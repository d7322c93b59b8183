"""liquidlfm: exact, fast on-device inference for Liquid AI's LFM2 / LFM2.5 models."""

from .errors import (
    Cancelled,
    ContextFullError,
    LiquidLFMError,
    ModelFormatError,
    ModelNotFoundError,
    UnsupportedModelError,
)
from . import _core
from .model import Model, ModelConfig, Session, load

__version__ = "0.1.0"

__all__ = [
    "Cancelled",
    "ContextFullError",
    "LiquidLFMError",
    "ModelFormatError",
    "ModelNotFoundError",
    "UnsupportedModelError",
]
