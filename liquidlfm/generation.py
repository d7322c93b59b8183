"""Text generation on top of the engine: generate / stream / chat / apply_chat_template.

    model = liquidlfm.load("LiquidAI/LFM2-350M")
    text = model.generate("Once upon a time", max_tokens=64, seed=0)      # a str (GenerationResult)
    for chunk in model.stream("Once upon a time", max_tokens=64):
        print(chunk.text, end="")                                          # + chunk.token_ids,
                                                                           #   .finish_reason, .stats
    reply = model.chat([{"role": "user", "content": "Hi"}])

Sampling defaults come from the model's generation_config (temperature, top_k, top_p, min_p,
repetition_penalty, do_sample, max_new_tokens), else Liquid's recommended values for LFM2
(temperature 0.3, min_p 0.15, repetition_penalty 1.05). temperature=0 is greedy.

Generation stops on the model's control tokens by id (eos, <|im_end|>, <|endoftext|>; never printed),
on user stop strings (matched across token boundaries and never printed; the first to complete wins),
after max_tokens, or when the context is full (finish_reason "length"). A prompt that does not fit raises ContextFullError;
nothing is ever truncated silently.

Sessions: every thread gets its own session per model (so one model can serve several threads);
pass session= to use your own. The tokens held by a session are remembered, so a new prompt that
extends them (the next chat turn) only prefills the new tokens. The conv state of LFM2 cannot be
rewound, so chat() also keeps state snapshots at turn boundaries and restores the longest one that is
a prefix of the new prompt. A session used by two threads at once raises RuntimeError. Ctrl-C
(KeyboardInterrupt) is raised between tokens and leaves the session consistent.
"""
from __future__ import annotations

import codecs
import dataclasses
import json
import os
import struct
import threading
import time
import weakref
from typing import Any, Dict, Iterator, List, Optional, Sequence

import numpy as np

from ._files import atomic_write_bytes
from .errors import ContextFullError

__all__ = [
    "GenerationMixin",
    "GenerationStats",
    "Chunk",
    "GenerationResult",
    "SamplingParams",
    "save_session",
    "load_session",
    "RECOMMENDED_SAMPLING",
    "DEFAULT_MAX_TOKENS",
]

# Liquid's recommended sampling for LFM2 (model cards; reference §8).
RECOMMENDED_SAMPLING = {"temperature": 0.3, "min_p": 0.15, "repetition_penalty": 1.05}
DEFAULT_MAX_TOKENS = 512
# Control tokens that end a turn, looked up by text in the tokenizer.
STOP_TOKEN_TEXTS = ("<|im_end|>", "<|endoftext|>")
MAX_SNAPSHOTS = 4
PREFILL_CHUNK = 512  # prompt tokens per engine call (Ctrl-C is checked between calls)


# ---- results ----

@dataclasses.dataclass
class GenerationStats:
    """Counts and speeds of one generation.

    prompt_tokens: tokens in the prompt; prefilled_tokens: how many of them were actually run (the
    rest came from the session's cached prefix); generated_tokens: tokens sampled (a stop token is
    not counted); prompt_tps / generation_tps: tokens per second of the prefill and of the decode loop.
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


# ---- sampling parameters ----

@dataclasses.dataclass
class SamplingParams:
    temperature: float = 0.3
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    penalty_last_n: int = -1
    seed: Optional[int] = None
    logit_bias: Optional[Dict[int, float]] = None


def _num(name, v, kind=float):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(v).__name__}")
    if kind is int:
        if isinstance(v, (float, np.floating)) and not float(v).is_integer():
            raise TypeError(f"{name} must be an int, got {v!r}")
        return int(v)
    return float(v)


def resolve_sampling(generation_config: Optional[dict], **given) -> SamplingParams:
    """Explicit arguments (not None) > the model's generation_config > Liquid's recommendation."""
    gc = dict(generation_config or {})
    p = {}
    explicit = {k: v for k, v in given.items() if v is not None}
    has_gc = any(k in gc for k in ("temperature", "top_k", "top_p", "min_p", "repetition_penalty"))
    base = {} if has_gc else dict(RECOMMENDED_SAMPLING)
    for k in ("temperature", "top_k", "top_p", "min_p", "repetition_penalty"):
        if k in gc and gc[k] is not None:
            base[k] = gc[k]
    if gc.get("do_sample") is False and "temperature" not in explicit:
        base["temperature"] = 0.0
    p.update(base)
    p.update(explicit)
    out = SamplingParams(
        temperature=_num("temperature", p.get("temperature", 1.0)),
        top_k=_num("top_k", p.get("top_k", 0), int),
        top_p=_num("top_p", p.get("top_p", 1.0)),
        min_p=_num("min_p", p.get("min_p", 0.0)),
        repetition_penalty=_num("repetition_penalty", p.get("repetition_penalty", 1.0)),
        presence_penalty=_num("presence_penalty", p.get("presence_penalty", 0.0)),
        frequency_penalty=_num("frequency_penalty", p.get("frequency_penalty", 0.0)),
        penalty_last_n=_num("penalty_last_n", p.get("penalty_last_n", -1), int),
        seed=p.get("seed"),
        logit_bias=p.get("logit_bias"),
    )
    if out.top_k is not None and out.top_k < 0:
        raise ValueError(f"top_k must be >= 0 (0 = off), got {out.top_k}")
    if out.seed is not None and (isinstance(out.seed, bool) or not isinstance(out.seed, (int, np.integer))):
        raise TypeError(f"seed must be an int or None, got {type(out.seed).__name__}")
    if out.logit_bias is not None and not isinstance(out.logit_bias, dict):
        raise TypeError("logit_bias must be a dict {token_id: bias}")
    return out


def _make_sampler(n_vocab: int, sp: SamplingParams, ban: Sequence[int] = ()):
    from ._core import Sampler

    seed = sp.seed
    if seed is None:
        seed = int.from_bytes(os.urandom(8), "little")
    bias = dict(sp.logit_bias or {})
    if bias:
        bias = {int(k): float(v) for k, v in bias.items()}
    for t in ban:
        bias.setdefault(int(t), float("-inf"))
    return Sampler(
        n_vocab, temperature=sp.temperature, top_k=sp.top_k, top_p=sp.top_p, min_p=sp.min_p,
        repetition_penalty=sp.repetition_penalty, presence_penalty=sp.presence_penalty,
        frequency_penalty=sp.frequency_penalty, penalty_last_n=sp.penalty_last_n, seed=seed,
        logit_bias=bias or None,
    )


# ---- text assembly: UTF-8-safe decoding and stop strings ----

class _TextStream:
    """Token ids -> text pieces that never split a UTF-8 character (incomplete bytes are held)."""

    def __init__(self, tokenizer):
        self._tok = tokenizer
        self._dec = None
        make = getattr(tokenizer, "stream_decoder", None) or getattr(tokenizer, "StreamDecoder", None)
        if callable(make):
            try:
                self._dec = make()
            except TypeError:
                self._dec = None
        if self._dec is not None and not callable(getattr(self._dec, "feed", None)):
            self._dec = None
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, token_id: int) -> str:
        if self._dec is not None:
            return self._dec.feed(token_id)
        return self._utf8.decode(self._tok.token_bytes(token_id), final=False)

    def flush(self) -> str:
        if self._dec is not None:
            fl = getattr(self._dec, "flush", None) or getattr(self._dec, "finish", None)
            return fl() if callable(fl) else ""
        return self._utf8.decode(b"", final=True)


class _StopMatcher:
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


# ---- session cache: which tokens a session holds, plus snapshots ----

class _SessionState:
    """Tracks the tokens decoded into one session (and the logits after the last one), keeps state
    snapshots at turn boundaries, and refuses concurrent use.

    Sessions of the engine keep their last logits themselves (Session.logits, also inside a saved
    state); for other session objects a copy is kept here."""

    def __init__(self, session):
        self.session = session
        self.tokens: List[int] = []
        self.logits: Optional[np.ndarray] = None  # None: ask the session (when it can tell)
        self.valid = True  # False when an interruption may have left session and tokens out of sync
        self.snapshots: List[tuple] = []  # (tokens tuple, blob, logits copy or None)
        self.pending: Optional[List[int]] = None  # tokens of the engine call in flight
        self.session_has_logits = isinstance(getattr(type(session), "logits", None), property)
        self._lock = threading.Lock()

    def acquire(self):
        if not self._lock.acquire(blocking=False):
            raise RuntimeError("session is in use by another thread (or by an unfinished stream)")

    def release(self):
        self._lock.release()

    # all methods below run with the lock held

    def current_logits(self):
        if self.logits is not None:
            return self.logits
        return self.session.logits if self.session_has_logits and self.tokens else None

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
            self.valid = self.session_has_logits
        self.pending = None

    def _reset(self):
        self.valid = False
        self.tokens = []  # first: if interrupted after the reset, pos 0 == len([]) resyncs correctly
        self.session.reset()
        self.logits = None
        self.valid = True

    def _restore(self, snap):
        toks, blob, logits = snap
        self.valid = False
        self.tokens = []
        self.session.load(blob)
        self.tokens = list(toks)
        self.logits = logits
        self.valid = True

    def snapshot(self):
        if not self.valid or not self.tokens:
            return
        key = tuple(self.tokens)
        logits = None if self.session_has_logits else self.logits
        if logits is None and not self.session_has_logits:
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
        return len(toks) < len(ids) or logits is not None or (self.session_has_logits and len(toks) > 0)

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
            self._restore(snap)
        elif cur < 0:
            self._reset()
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
            self.logits = np.asarray(logits, dtype=np.float32).reshape(-1)[-_n_vocab_of(logits):]
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

    def step_native(self, core, ctx, sampler, stop_list):
        """One C generate step (sample, accept, stop check, decode) on the engine's context.
        Returns (token, is_stop, context_full)."""
        self.valid = False
        pos0 = self.session.pos
        t, fin = core.generate_step(ctx, sampler, stop_list)
        if self.session.pos > pos0:
            self.tokens.append(t)
        self.logits = None  # now in the context
        self.valid = True
        return t, fin == core.FINISH_STOP, fin == core.FINISH_LENGTH


def _n_vocab_of(logits) -> int:
    shape = np.shape(logits)
    return shape[-1]


_STATES: "weakref.WeakKeyDictionary[Any, _SessionState]" = weakref.WeakKeyDictionary()
_STATES_LOCK = threading.Lock()


def _state_for(session) -> _SessionState:
    with _STATES_LOCK:
        st = None
        try:
            st = _STATES.get(session)
        except TypeError:  # not weak-referenceable: keep the state on the object
            st = getattr(session, "_lfm_generation_state", None)
        if st is None:
            st = _SessionState(session)
            try:
                _STATES[session] = st
            except TypeError:
                session._lfm_generation_state = st
        return st


# ---- state files ----

_STATE_MAGIC = b"LFMSESS1"


def save_session(session, path):
    """Write a session's whole state (the engine's blob + the tokens it holds + its last logits)
    to path atomically (temporary file, fsync, rename)."""
    st = _state_for(session)
    st.acquire()
    try:
        if not st.valid:
            raise RuntimeError("session state is inconsistent after an interruption; reset it before saving")
        blob = bytes(session.save())
        cur = st.current_logits()
        logits = np.asarray(cur, dtype=np.float32).tobytes() if cur is not None else b""
        meta = json.dumps({"tokens": st.tokens, "n_logits": 0 if cur is None else int(np.size(cur))}).encode()
        atomic_write_bytes(path, [_STATE_MAGIC, struct.pack("<QQQ", len(meta), len(blob), len(logits)), meta, blob,
                             logits])
    finally:
        st.release()


def load_session(session, path):
    """Restore a state written by save_session into session (the engine checks the model shape).
    On any error the session is unchanged."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 32 or data[:8] != _STATE_MAGIC:
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
    st = _state_for(session)
    st.acquire()
    try:
        session.load(blob)
        st.tokens = tokens
        st.logits = logits
        st.valid = True
    finally:
        st.release()


# ---- the mixin ----

def _as_id_list(ids, n_vocab) -> List[int]:
    if isinstance(ids, np.ndarray):
        if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
            raise TypeError("prompt token array must be 1-D integers")
        ids = ids.tolist()
    out = []
    for t in ids:
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)):
            raise TypeError(f"prompt token ids must be ints, got {type(t).__name__}")
        t = int(t)
        if not 0 <= t < n_vocab:
            raise ValueError(f"prompt token id {t} out of range [0, {n_vocab})")
        out.append(t)
    return out


class GenerationMixin:
    """Methods that turn a loaded Model into a text generator.

    The host class provides: config (n_vocab, eos_id), tokenizer (or None), chat_template (str or
    None), generation_config (dict) and session(n_ctx=None) -> Session with prefill / step / reset /
    save / load / pos / n_ctx.
    """

    # -- plumbing --

    def _gen_thread_session(self, n_ctx=None):
        """This thread's default session for this model (created on first use)."""
        d = self.__dict__.setdefault("_lfm_thread_sessions", threading.local())
        s = getattr(d, "session", None)
        if s is None or (n_ctx is not None and s.n_ctx != n_ctx):
            if s is not None:
                close = getattr(s, "close", None)
                if callable(close):
                    close()
            s = self.session(n_ctx=n_ctx)
            d.session = s
        return s

    def _gen_n_vocab(self) -> int:
        cfg = self.config
        return int(cfg["n_vocab"] if isinstance(cfg, dict) else cfg.n_vocab)

    def _gen_tokenizer(self):
        tok = getattr(self, "tokenizer", None)
        if tok is None:
            raise ValueError("this model has no tokenizer; pass the prompt as a list of token ids")
        return tok

    def _gen_stop_ids(self) -> List[int]:
        cached = self.__dict__.get("_lfm_stop_ids")
        if cached is not None:
            return list(cached)
        ids = set()
        cfg = self.config
        eos = cfg.get("eos_id") if isinstance(cfg, dict) else getattr(cfg, "eos_id", None)
        if eos is not None and eos >= 0:
            ids.add(int(eos))
        gc_eos = (self.generation_config or {}).get("eos_token_id")
        if isinstance(gc_eos, int):
            ids.add(gc_eos)
        elif isinstance(gc_eos, (list, tuple)):
            ids.update(int(x) for x in gc_eos if isinstance(x, int))
        tok = getattr(self, "tokenizer", None)
        if tok is not None:
            teos = getattr(tok, "eos_id", None)
            if isinstance(teos, int) and teos >= 0:
                ids.add(teos)
            for text in STOP_TOKEN_TEXTS:
                try:
                    enc = tok.encode(text, add_special_tokens=False, parse_special=True)
                except Exception:
                    continue
                if len(enc) == 1:
                    ids.add(int(enc[0]))
        n_vocab = self._gen_n_vocab()
        out = sorted(i for i in ids if 0 <= i < n_vocab)
        self.__dict__["_lfm_stop_ids"] = out
        return list(out)

    def _gen_banned_ids(self) -> List[int]:
        """Ids never sampled: embedding rows the tokenizer does not define (vocabulary padding) and
        tokens the tokenizer marks UNUSED (GGUF "[PAD<i>]" fillers)."""
        cached = self.__dict__.get("_lfm_banned_ids")
        if cached is not None:
            return cached
        tok = getattr(self, "tokenizer", None)
        if tok is None:
            return []
        n_vocab = self._gen_n_vocab()
        n_tok = None
        for attr in ("n_tokens", "vocab_size"):
            v = getattr(tok, attr, None)
            if isinstance(v, int):
                n_tok = v
                break
        if n_tok is None:
            try:
                n_tok = len(tok)
            except TypeError:
                n_tok = n_vocab
        banned = list(range(max(n_tok, 0), n_vocab))
        token_type = getattr(tok, "token_type", None)
        if callable(token_type):
            unused = 5  # lfm_token_kind LFM_TOKEN_UNUSED
            banned += [i for i in range(min(n_tok, n_vocab)) if token_type(i) == unused]
        self.__dict__["_lfm_banned_ids"] = banned
        return banned

    def _gen_encode(self, prompt, chat: bool) -> List[int]:
        n_vocab = self._gen_n_vocab()
        if isinstance(prompt, str):
            tok = self._gen_tokenizer()
            ids = tok.encode(prompt, add_special_tokens=not chat, parse_special=True)
            return _as_id_list(ids, n_vocab)
        if isinstance(prompt, (bytes, bytearray)):
            raise TypeError("prompt must be a str or a list of token ids, not bytes")
        return _as_id_list(prompt, n_vocab)

    # -- public API --

    def apply_chat_template(self, messages, tools=None, add_generation_prompt: bool = True, **kwargs) -> str:
        """Render messages with the model's chat template (or the built-in LFM2 one); see
        liquidlfm.chat_template. Extra keyword arguments become template variables."""
        from .chat_template import ChatTemplate

        key = getattr(self, "chat_template", None)
        cached = self.__dict__.get("_lfm_chat_template")
        if cached is None or cached[0] != key:
            cached = (key, ChatTemplate(key, self._gen_special_tokens()))
            self.__dict__["_lfm_chat_template"] = cached
        return cached[1].render(messages, tools=tools, add_generation_prompt=add_generation_prompt, **kwargs)

    def _gen_special_tokens(self) -> Optional[dict]:
        tok = getattr(self, "tokenizer", None)
        special = getattr(tok, "special_tokens", None) if tok is not None else None
        if isinstance(special, dict) and special:
            return special
        if tok is None:
            return None
        out = {}
        for name, attr in (("bos_token", "bos_id"), ("eos_token", "eos_id"), ("pad_token", "pad_id")):
            i = getattr(tok, attr, None)
            if isinstance(i, int) and i >= 0:
                try:
                    out[name] = tok.token_bytes(i).decode("utf-8")
                except Exception:
                    pass
        return out or None

    def stream(self, prompt, max_tokens: Optional[int] = None, *, temperature=None, top_k=None, top_p=None,
               min_p=None, repetition_penalty=None, presence_penalty=None, frequency_penalty=None,
               penalty_last_n=None, logit_bias=None, stop=None, seed=None, stop_token_ids=None,
               session=None, n_ctx=None) -> Iterator[Chunk]:
        """Generate from prompt (str, or a list of token ids used as is), yielding Chunks.

        max_tokens: tokens to generate (default: generation_config max_new_tokens, else 512).
        stop: a string or list of strings; generation ends before the first match, which is not
        returned. stop_token_ids: extra token ids that end generation. session: a Session to run in
        (default: this thread's session for the model, reused across calls).
        Raises ContextFullError when the prompt does not fit in the session's context.
        """
        ids = self._gen_encode(prompt, chat=False)
        return self._gen_run(ids, max_tokens, stop, stop_token_ids, session, n_ctx, False,
                             dict(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
                                  repetition_penalty=repetition_penalty, presence_penalty=presence_penalty,
                                  frequency_penalty=frequency_penalty, penalty_last_n=penalty_last_n,
                                  logit_bias=logit_bias, seed=seed))

    def generate(self, prompt, max_tokens: Optional[int] = None, **kwargs) -> GenerationResult:
        """Like stream(), but returns the whole text (a str carrying .token_ids, .finish_reason, .stats)."""
        return _collect(self.stream(prompt, max_tokens, **kwargs))

    def chat(self, messages, tools=None, stream: bool = False, max_tokens: Optional[int] = None, *,
             template_kwargs: Optional[dict] = None, **kwargs):
        """Reply to a conversation (list of {"role", "content"} dicts, optional tools list).

        The prompt is rendered with apply_chat_template and tokenized without adding special tokens
        (the template writes <|startoftext|>). Returns the reply (GenerationResult), or an iterator
        of Chunks with stream=True. The session keeps the conversation: the next call with the same
        history plus new messages only prefills the new tokens.
        """
        prompt = self.apply_chat_template(messages, tools=tools, add_generation_prompt=True,
                                          **(template_kwargs or {}))
        ids = self._gen_encode(prompt, chat=True)
        sampling = {k: kwargs.pop(k) for k in list(kwargs) if k in (
            "temperature", "top_k", "top_p", "min_p", "repetition_penalty", "presence_penalty",
            "frequency_penalty", "penalty_last_n", "logit_bias", "seed")}
        stop = kwargs.pop("stop", None)
        stop_token_ids = kwargs.pop("stop_token_ids", None)
        session = kwargs.pop("session", None)
        n_ctx = kwargs.pop("n_ctx", None)
        if kwargs:
            raise TypeError(f"chat() got unexpected keyword arguments: {', '.join(sorted(kwargs))}")
        it = self._gen_run(ids, max_tokens, stop, stop_token_ids, session, n_ctx, True, sampling)
        return it if stream else _collect(it)

    # -- the loop --

    def _gen_run(self, ids, max_tokens, stop, stop_token_ids, session, n_ctx, snapshots, sampling):
        """Validate everything eagerly (errors surface at the call, not at the first next()), then
        return the generator."""
        gc = dict(self.generation_config or {})
        if max_tokens is None:
            max_tokens = gc.get("max_new_tokens") or DEFAULT_MAX_TOKENS
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, (int, np.integer)):
            raise TypeError(f"max_tokens must be an int, got {type(max_tokens).__name__}")
        max_tokens = int(max_tokens)
        if max_tokens < 0:
            raise ValueError(f"max_tokens must be >= 0, got {max_tokens}")
        if stop is None:
            stops = []
        elif isinstance(stop, str):
            stops = [stop]
        else:
            stops = list(stop)
            if not all(isinstance(s, str) for s in stops):
                raise TypeError("stop must be a string or a list of strings")
        stops = [s for s in stops if s]
        if stops:
            self._gen_tokenizer()
        n_vocab = self._gen_n_vocab()
        stop_ids = set(self._gen_stop_ids())
        if stop_token_ids is not None:
            stop_ids.update(_as_id_list(stop_token_ids, n_vocab))
        if not ids:
            raise ValueError("the prompt is empty")
        sp = resolve_sampling(gc, **sampling)
        sampler = _make_sampler(n_vocab, sp, self._gen_banned_ids())  # raises ValueError for bad values
        if session is None:
            session = self._gen_thread_session(n_ctx)
        if len(ids) > session.n_ctx:
            sampler.close()
            raise ContextFullError(
                f"the prompt has {len(ids)} tokens but the session's context holds {session.n_ctx}; "
                f"use a larger n_ctx or a shorter prompt")
        tok = getattr(self, "tokenizer", None)
        return self._gen_loop(ids, max_tokens, stops, stop_ids, session, snapshots, sampler, tok)

    def _gen_loop(self, ids, max_tokens, stops, stop_ids, session, snapshots, sampler, tok):
        state = _state_for(session)
        state.acquire()
        try:
            stats = GenerationStats(prompt_tokens=len(ids))
            t0 = time.perf_counter()
            reused = state.prepare(ids)
            logits = state.prefill(ids)
            stats.reused_tokens = reused
            stats.prefilled_tokens = len(ids) - reused
            stats.prompt_time = time.perf_counter() - t0
            if snapshots:
                state.snapshot()
            sampler.accept(ids)

            text_stream = _TextStream(tok) if tok is not None else None
            matcher = _StopMatcher(stops)
            n_ctx = session.n_ctx
            from . import _core

            ctx = getattr(session, "_ctx", None)
            native = isinstance(ctx, _core.Ctx)
            stop_list = sorted(stop_ids)
            finish = None
            t1 = time.perf_counter()
            n = 0
            while finish is None:
                if n >= max_tokens:
                    finish = "length"
                    break
                if native:
                    t, is_stop, full = state.step_native(_core, ctx, sampler, stop_list)
                else:
                    t = sampler.sample(logits)
                    sampler.accept(t)
                    is_stop = t in stop_ids
                    full = False
                    if not is_stop:
                        if len(state.tokens) >= n_ctx:
                            full = True  # the token is returned but cannot be decoded
                        else:
                            logits = state.step(t)
                            full = len(state.tokens) >= n_ctx
                if is_stop:
                    finish = "stop"
                    break
                n += 1
                stats.generated_tokens = n
                piece = text_stream.feed(t) if text_stream is not None else ""
                out, hit = matcher.push(piece)
                if hit:
                    finish = "stop"
                elif n >= max_tokens or full:
                    finish = "length"
                stats.generation_time = time.perf_counter() - t1
                if finish is None:
                    yield Chunk(out, [t], None, dataclasses.replace(stats))
                else:
                    if finish == "length":
                        out += matcher.push(text_stream.flush() if text_stream is not None else "")[0]
                        out += matcher.flush()
                    yield Chunk(out, [t], finish, dataclasses.replace(stats))
                    return
            # ended without emitting the last token (stop token, or max_tokens == 0)
            tail = ""
            if text_stream is not None:
                tail, hit = matcher.push(text_stream.flush())
                if not hit:
                    tail += matcher.flush()
            stats.generation_time = time.perf_counter() - t1
            yield Chunk(tail, [], finish, dataclasses.replace(stats))
        finally:
            sampler.close()
            state.release()

    # -- session helpers --

    def save_session(self, path, session=None):
        """Save this thread's session (or the given one) to path atomically; see save_session()."""
        save_session(session if session is not None else self._gen_thread_session(), path)

    def load_session(self, path, session=None):
        """Load a state file written by save_session into this thread's session (or the given one)."""
        load_session(session if session is not None else self._gen_thread_session(), path)

    def reset_session(self, session=None):
        """Forget this thread's conversation (or the given session's): position 0, no snapshots."""
        s = session if session is not None else self._gen_thread_session()
        st = _state_for(s)
        st.acquire()
        try:
            st.snapshots = []
            st._reset()
        finally:
            st.release()


def _collect(chunks: Iterator[Chunk]) -> GenerationResult:
    parts, ids = [], []
    finish, stats = None, GenerationStats()
    for c in chunks:
        parts.append(c.text)
        ids.extend(c.token_ids)
        finish, stats = c.finish_reason, c.stats
    return GenerationResult("".join(parts), ids, finish, stats)
