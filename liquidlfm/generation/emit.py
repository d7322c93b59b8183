"""From sampled tokens to Chunks: the one place that decides when a generation ends and what text each
token adds. Used by the single-sequence loop (api.GenerationMixin) and by the batch scheduler
(batch.BatchEngine), so a prompt gives the same text and finish reason on either path."""
from __future__ import annotations

import dataclasses
import time
from typing import Iterable, Optional, Sequence

from .results import Chunk, GenerationStats
from .stops import StopMatcher
from .streaming import StreamDecoder

__all__ = ["TokenEmitter"]


class TokenEmitter:
    """Turns one generation's sampled tokens into Chunks.

    Ends with "stop" on a stop token id (never emitted) or a stop string (its text never emitted),
    with "length" after max_tokens or when the context is full (the last token is emitted).
    """

    def __init__(self, tokenizer, stops: Sequence[str], stop_ids: Iterable[int], max_tokens: int,
                 stats: Optional[GenerationStats] = None):
        self.text_stream = StreamDecoder(tokenizer) if tokenizer is not None else None
        self.matcher = StopMatcher(stops)
        self.stop_ids = frozenset(stop_ids)
        self.max_tokens = max_tokens
        self.stats = stats if stats is not None else GenerationStats()
        self.n = 0
        self.finish: Optional[str] = None
        self.t_start = time.perf_counter()

    def start_decoding(self) -> None:
        """The prompt is in; generation time counts from here."""
        self.t_start = time.perf_counter()

    @property
    def wants_token(self) -> bool:
        """Whether another token should be sampled (False once finished or max_tokens reached)."""
        return self.finish is None and self.n < self.max_tokens

    def push(self, token: int, context_full: bool) -> Chunk:
        """The chunk for a sampled token. context_full: the token cannot be decoded after it (it is
        still emitted, and the generation ends with "length")."""
        if token in self.stop_ids:
            return self.end("stop")
        self.n += 1
        self.stats.generated_tokens = self.n
        piece = self.text_stream.feed(token) if self.text_stream is not None else ""
        out, hit = self.matcher.push(piece)
        finish = None
        if hit:
            finish = "stop"
        elif self.n >= self.max_tokens or context_full:
            finish = "length"
            out += self.matcher.push(self.text_stream.flush() if self.text_stream is not None else "")[0]
            out += self.matcher.flush()
        self.stats.generation_time = time.perf_counter() - self.t_start
        self.finish = finish
        return Chunk(out, [token], finish, dataclasses.replace(self.stats))

    def end(self, reason: str) -> Chunk:
        """The last chunk when generation ends without emitting a token (a stop token, max_tokens
        reached before sampling, or a cancellation): the held-back text, if it is not a stop string."""
        tail = ""
        if self.text_stream is not None:
            tail, hit = self.matcher.push(self.text_stream.flush())
            if not hit:
                tail += self.matcher.flush()
        self.stats.generation_time = time.perf_counter() - self.t_start
        self.finish = reason
        return Chunk(tail, [], reason, dataclasses.replace(self.stats))
