"""Exceptions raised by liquidlfm. The C core's statuses map onto these in csrc/py/module.c."""


class LiquidLFMError(Exception):
    """Base class for liquidlfm's own errors."""


class ModelFormatError(LiquidLFMError, ValueError):
    """A model file is corrupt, truncated or inconsistent (bad header, lying sizes, wrong shapes)."""


class UnsupportedModelError(LiquidLFMError, ValueError):
    """A well-formed model we do not run: an architecture other than LFM2, LFM2.5, LFM2-MoE and LFM3 (vision
    models included), an option of those none of their released models uses (conv_bias, attention_bias,
    scaled RoPE), an unknown tensor type."""


class ContextFullError(LiquidLFMError, RuntimeError):
    """The prompt (or prompt + generation) does not fit in the session's context."""


class Cancelled(LiquidLFMError, RuntimeError):
    """A long C call was stopped by its abort callback."""


class ModelNotFoundError(LiquidLFMError, FileNotFoundError):
    """No model could be found or downloaded; the message says how to get one."""
