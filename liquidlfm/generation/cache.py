"""The prefix cache of a session: which tokens the session holds (and the logits after the last one),
state snapshots at turn boundaries, and the busy flag that refuses concurrent use.

Every session owns one (Session.prefix_cache). A new prompt that extends the held tokens only prefills
the new ones. The conv state of LFM2 cannot be rewound, so a prompt that diverges from the held tokens
restores the longest snapshot that is a prefix of it (or starts over).
"""
from __future__ import annotations

import threading
from typing import List, Optional, Protocol, Sequence, runtime_checkable

import numpy as np

__all__ = ["PrefixCache", "CachedSession", "MAX_SNAPSHOTS", "PREFILL_CHUNK"]

MAX_SNAPSHOTS = 4
PREFILL_CHUNK = 512  # prompt tokens per engine call (Ctrl-C is checked between calls)


@runtime_checkable
class CachedSession(Protocol):
    """A decoding session as the generation layer uses it (liquidlfm.Session, or a test double)."""

    prefix_cache: "PrefixCache"

    @property
    def pos(self) -> int: ...

    @property
    def n_ctx(self) -> int: ...

    def prefill(self, ids: Sequence[int]) -> np.ndarray: ...

    def step(self, token: int) -> np.ndarray: ...

    def reset(self) -> None: ...

    def save(self) -> bytes: ...

    def load(self, blob) -> None: ...

    def close(self) -> None: ...


class PrefixCache:
    """Tracks the tokens decoded into one session and keeps snapshots of its state.

    native_ctx: the engine's context (liquidlfm._core.Ctx) when session is a liquidlfm.Session. Then the
    generation loop samples and decodes in one C call per token, and the session tells its last logits
    itself (Session.logits, also restored by load()); otherwise a copy of the last logits row is kept here."""

    def __init__(self, session: CachedSession, native_ctx=None):
        self.session = session
        self.native_ctx = native_ctx
        self.session_keeps_logits = native_ctx is not None
        self.tokens: List[int] = []
        self.logits: Optional[np.ndarray] = None  # None: ask the session (when it can tell)
        self.valid = True  # False when an interruption may have left session and tokens out of sync
        self.snapshots: List[tuple] = []  # (tokens tuple, blob, logits copy or None)
        self.pending: Optional[List[int]] = None  # tokens of the engine call in flight
        self._lock = threading.Lock()

    def acquire(self):
        if not self._lock.acquire(blocking=False):
            raise RuntimeError("session is in use by another thread (or by an unfinished stream)")

    def release(self):
        self._lock.release()

    # ---- all methods below run with the lock held ----

    def current_logits(self):
        if self.logits is not None:
            return self.logits
        return self.session.logits if self.session_keeps_logits and self.tokens else None

    def _resync(self):
        """After an interruption (KeyboardInterrupt between bytecodes around an engine call), tell
        from the session's position whether the call in flight happened, and keep what is known."""
        if self.valid:
            return
        pos = self.session.pos
        if pos == len(self.tokens):  # the call did not happen (or failed atomically)
            self.valid = True
        elif self.pending is not None and pos == len(self.tokens) + len(self.pending):
            self.tokens.extend(self.pending)  # it completed; only its logits copy was lost
            self.logits = None
            self.valid = self.session_keeps_logits
        self.pending = None

    def reset(self):
        """Back to an empty session (snapshots are kept)."""
        self.valid = False
        self.tokens = []  # first: if interrupted after the reset, pos 0 == len([]) resyncs correctly
        self.session.reset()
        self.logits = None
        self.valid = True

    def clear(self):
        """Forget the conversation: empty session, no snapshots."""
        self.snapshots = []
        self.reset()

    def restore(self, tokens: Sequence[int], blob, logits: Optional[np.ndarray]):
        """Load a saved state holding tokens into the session."""
        self.valid = False
        self.session.load(blob)  # atomic: on failure the session (and so self.tokens) is unchanged
        self.tokens = list(tokens)
        self.logits = logits
        self.valid = True

    def snapshot(self):
        """Remember the session's current state (at most MAX_SNAPSHOTS, oldest dropped)."""
        if not self.valid or not self.tokens:
            return
        key = tuple(self.tokens)
        logits = None if self.session_keeps_logits else self.logits
        if logits is None and not self.session_keeps_logits:
            return
        self.snapshots = [s for s in self.snapshots if s[0] != key]
        self.snapshots.append((key, self.session.save(), None if logits is None else logits.copy()))
        del self.snapshots[:-MAX_SNAPSHOTS]

    @staticmethod
    def _is_prefix(p: Sequence[int], ids: Sequence[int]) -> bool:
        return len(p) <= len(ids) and list(p) == list(ids[: len(p)])

    def _usable(self, toks, logits, ids):
        """A state holding toks can continue to ids if toks is a prefix of ids and either there is
        something left to prefill or its logits are known."""
        if not self._is_prefix(toks, ids):
            return False
        return len(toks) < len(ids) or logits is not None or (self.session_keeps_logits and len(toks) > 0)

    def prepare(self, ids: List[int]) -> int:
        """Bring the session to a state that is a prefix of ids; return how many tokens are reused.

        Candidates: the session's current state (when in sync: valid and at position len(tokens))
        and the snapshots; the longest usable one wins, else the session is reset."""
        self._resync()
        cur = -1
        if self.valid and self.session.pos == len(self.tokens) and self._usable(self.tokens, self.logits, ids):
            cur = len(self.tokens)
        snap = None
        for s in self.snapshots:
            if len(s[0]) > cur and self._usable(s[0], s[2], ids) and (snap is None or len(s[0]) > len(snap[0])):
                snap = s
        if snap is not None:
            self.restore(*snap)
        elif cur < 0:
            self.reset()
        return len(self.tokens)

    def prefill(self, ids: List[int]):
        """Decode ids (after prepare()); return the logits row for the next token."""
        new = ids[len(self.tokens):]
        if not new:
            return self.current_logits()
        # In chunks, so Ctrl-C is seen between chunks of a long prompt; what was prefilled stays
        # usable (the engine's result does not depend on the chunking).
        for i in range(0, len(new), PREFILL_CHUNK):
            part = new[i:i + PREFILL_CHUNK]
            self.valid, self.pending = False, part
            logits = self.session.prefill(part)
            self.logits = np.asarray(logits, dtype=np.float32).reshape(-1)[-np.shape(logits)[-1]:]
            self.tokens.extend(part)
            self.valid, self.pending = True, None
        return self.logits

    def step(self, tok: int):
        self.valid, self.pending = False, [tok]
        logits = self.session.step(tok)
        self.logits = np.asarray(logits, dtype=np.float32).reshape(-1)
        self.tokens.append(tok)
        self.valid, self.pending = True, None
        return self.logits

    def step_native(self, sampler, stop_list):
        """One C generate step (sample, accept, stop check, decode) on the engine's context.
        Returns (token, is_stop, context_full)."""
        from .. import _core as core

        self.valid = False
        pos0 = self.session.pos
        t, fin = core.generate_step(self.native_ctx, sampler, stop_list)
        if self.session.pos > pos0:
            self.tokens.append(t)
        self.logits = None  # now in the context
        self.valid = True
        return t, fin == core.FINISH_STOP, fin == core.FINISH_LENGTH
