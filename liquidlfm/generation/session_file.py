"""The session state file: the engine's state blob + the tokens the session holds + its last logits,
written atomically, so a conversation can continue in another process."""
from __future__ import annotations

import json
import struct

import numpy as np

from .._files import atomic_write_bytes
from .cache import CachedSession

__all__ = ["save_session", "load_session"]

MAGIC = b"LFMSESS1"
# layout: MAGIC, <QQQ> sizes of (meta JSON, state blob, float32 logits), then the three parts


def save_session(session: CachedSession, path):
    """Write a session's whole state (the engine's blob + the tokens it holds + its last logits)
    to path atomically (temporary file, fsync, rename)."""
    cache = session.prefix_cache
    cache.acquire()
    try:
        if not cache.valid:
            raise RuntimeError("session state is inconsistent after an interruption; reset it before saving")
        blob = bytes(session.save())
        cur = cache.current_logits()
        logits = np.asarray(cur, dtype=np.float32).tobytes() if cur is not None else b""
        meta = json.dumps({"tokens": cache.tokens, "n_logits": 0 if cur is None else int(np.size(cur))}).encode()
        atomic_write_bytes(path, [MAGIC, struct.pack("<QQQ", len(meta), len(blob), len(logits)), meta, blob, logits])
    finally:
        cache.release()


def load_session(session: CachedSession, path):
    """Restore a state written by save_session into session (the engine checks the model shape).
    On any error the session is unchanged."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 32 or data[:8] != MAGIC:
        raise ValueError(f"{path}: not a liquidlfm session state file")
    n_meta, n_blob, n_logits = struct.unpack("<QQQ", data[8:32])
    if 32 + n_meta + n_blob + n_logits != len(data):
        raise ValueError(f"{path}: truncated or corrupt session state file")
    try:
        meta = json.loads(data[32:32 + n_meta])
        tokens = [int(t) for t in meta["tokens"]]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: corrupt session state metadata ({e})") from None
    blob = data[32 + n_meta:32 + n_meta + n_blob]
    logits = np.frombuffer(data[32 + n_meta + n_blob:], dtype=np.float32).copy() if n_logits else None
    cache = session.prefix_cache
    cache.acquire()
    try:
        cache.restore(tokens, blob, logits)
    finally:
        cache.release()
