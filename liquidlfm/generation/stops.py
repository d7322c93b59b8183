"""Stop strings: matched across token boundaries, never emitted; the first to complete wins."""
from __future__ import annotations

from typing import List, Sequence

__all__ = ["StopMatcher", "normalize_stop"]


def normalize_stop(stop) -> List[str]:
    """None, a string or a list of strings -> the non-empty stop strings (TypeError otherwise)."""
    if stop is None:
        return []
    if isinstance(stop, str):
        stops = [stop]
    else:
        stops = list(stop)
        if not all(isinstance(s, str) for s in stops):
            raise TypeError("stop must be a string or a list of strings")
    return [s for s in stops if s]


class StopMatcher:
    """Holds back the tail of the text that could be the start of a stop string."""

    def __init__(self, stops: Sequence[str]):
        self.stops = [s for s in stops if s]
        self.pending = ""

    def push(self, text: str):
        """Add text; return (text safe to emit, True if a stop string was hit)."""
        if not self.stops:
            return text, False
        self.pending += text
        # the stop string that completes first wins (ties: the one starting first), which makes the
        # result independent of how the text arrives in pieces
        best = None
        for s in self.stops:
            i = self.pending.find(s)
            if i >= 0 and (best is None or (i + len(s), i) < best):
                best = (i + len(s), i)
        if best is not None:
            out = self.pending[:best[1]]
            self.pending = ""
            return out, True
        hold = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(self.pending)), hold, -1):
                if self.pending.endswith(s[:k]):
                    hold = k
                    break
        out = self.pending[: len(self.pending) - hold]
        self.pending = self.pending[len(self.pending) - hold:]
        return out, False

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out
