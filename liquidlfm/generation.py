"""Text generation on top of the C generate loop: generate / stream / chat (filled by the API work)."""


class GenerationMixin:
    """Methods that turn a loaded Model into a text generator."""
