"""UTF-8-safe streaming of token text: the one incremental detokenizer, used by generation and
exported as liquidlfm.StreamDecoder (Tokenizer.stream_decoder())."""
from __future__ import annotations

import codecs
from typing import Iterable, Protocol, Union

__all__ = ["StreamDecoder", "BytesTokenizer"]


class BytesTokenizer(Protocol):
    """What StreamDecoder needs from a tokenizer."""

    def decode_bytes(self, ids: Union[int, Iterable[int]], skip_special_tokens: bool = False) -> bytes: ...


class StreamDecoder:
    """Incremental detokenizer: feed ids as they are generated, get text that never ends inside a
    UTF-8 character (the bytes of an incomplete character wait for the next ids). The chunks joined,
    plus flush(), equal tokenizer.decode(all ids)."""

    def __init__(self, tokenizer: BytesTokenizer, skip_special_tokens: bool = False):
        self._tok = tokenizer
        self._skip = skip_special_tokens
        self._dec = codecs.getincrementaldecoder("utf-8")("replace")

    def feed(self, ids: Union[int, Iterable[int]]) -> str:
        """Text completed by these ids ('' while a character is still incomplete)."""
        return self._dec.decode(self._tok.decode_bytes(ids, self._skip), final=False)

    def flush(self) -> str:
        """End of stream: pending bytes of an incomplete character become U+FFFD."""
        out = self._dec.decode(b"", final=True)
        self._dec.reset()
        return out

    @property
    def pending(self) -> bytes:
        """Bytes held back because they may start a character."""
        return self._dec.getstate()[0]
