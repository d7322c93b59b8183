"""What generation returns: Chunk (one piece of a stream), GenerationResult (the whole text, a str),
GenerationStats (counts and speeds)."""
from __future__ import annotations

import dataclasses
from typing import Iterator, List, Optional

__all__ = ["GenerationStats", "Chunk", "GenerationResult", "collect"]


@dataclasses.dataclass
class GenerationStats:
    """Counts and speeds of one generation.

    prompt_tokens: tokens in the prompt; prefilled_tokens: how many of them were actually run (the
    rest, reused_tokens, came from the session's prefix cache); generated_tokens: tokens sampled (a stop
    token is not counted); prompt_tps / generation_tps: tokens per second of the prefill and of the decode loop.
    """

    prompt_tokens: int = 0
    prefilled_tokens: int = 0
    reused_tokens: int = 0
    generated_tokens: int = 0
    prompt_time: float = 0.0
    generation_time: float = 0.0

    @property
    def prompt_tps(self) -> float:
        return self.prefilled_tokens / self.prompt_time if self.prompt_time > 0 else 0.0

    @property
    def generation_tps(self) -> float:
        return self.generated_tokens / self.generation_time if self.generation_time > 0 else 0.0

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["prompt_tps"] = self.prompt_tps
        d["generation_tps"] = self.generation_tps
        return d


@dataclasses.dataclass
class Chunk:
    """One piece of a stream: text (may be "" while a possible stop string is held back), the token
    ids sampled for it, finish_reason (None until the last chunk, then "stop" or "length") and the
    running stats."""

    text: str
    token_ids: List[int]
    finish_reason: Optional[str]
    stats: GenerationStats


class GenerationResult(str):
    """The generated text (a str) with .token_ids, .finish_reason and .stats attached."""

    token_ids: List[int]
    finish_reason: Optional[str]
    stats: GenerationStats

    def __new__(cls, text, token_ids, finish_reason, stats):
        self = super().__new__(cls, text)
        self.token_ids = token_ids
        self.finish_reason = finish_reason
        self.stats = stats
        return self


def collect(chunks: Iterator[Chunk]) -> GenerationResult:
    """Join a stream of Chunks into one GenerationResult."""
    parts, ids = [], []
    finish, stats = None, GenerationStats()
    for c in chunks:
        parts.append(c.text)
        ids.extend(c.token_ids)
        finish, stats = c.finish_reason, c.stats
    return GenerationResult("".join(parts), ids, finish, stats)
