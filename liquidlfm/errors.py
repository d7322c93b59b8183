"""Exceptions raised by liquidlfm. The C core's statuses map onto these in csrc/py/module.c."""


class LiquidLFMError(Exception):
    """Base class for liquidlfm's own errors."""


class ModelFormatError(LiquidLFMError, ValueError):
    """A model file is corrupt, truncated or inconsistent (bad header, lying sizes, wrong shapes)."""


class UnsupportedModelError(LiquidLFMError, ValueError):
    """A well-formed model we do not run: another architecture, MoE, vision, an unknown tensor type."""


class ContextFullError(LiquidLFMError, RuntimeError):
    """The prompt (or prompt + generation) does not fit in the session's context."""


class Cancelled(LiquidLFMError, RuntimeError):
    """A long C call was stopped by its abort callback."""


class ModelNotFoundError(LiquidLFMError, FileNotFoundError):
    """No model could be found or downloaded; the message says how to get one."""
