"""generate / stream / chat / apply_chat_template: the methods that make a loaded Model a text generator.

The host class (liquidlfm.Model, or a test double) provides what GenerationHost describes: config
(n_vocab, eos_id), tokenizer (or None), chat_template (str or None), generation_config (dict) and
session(n_ctx=None) -> a session with a prefix_cache (see cache.CachedSession).
"""
from __future__ import annotations

import threading
import time
from typing import Iterable, Iterator, List, Optional, Protocol, Union, runtime_checkable

import numpy as np

from ..errors import ContextFullError
from .cache import CachedSession
from .constrain import STOP_TOKEN_TEXTS, mask_words
from .emit import TokenEmitter
from .params import SAMPLING_ARGS, make_sampler, resolve_max_tokens, resolve_sampling
from .results import Chunk, GenerationStats, collect
from .session_file import load_session, save_session
from .stops import normalize_stop

__all__ = ["GenerationMixin", "GenerationHost", "GenerationTokenizer", "STOP_TOKEN_TEXTS"]

TOKEN_TYPE_UNUSED = 5  # lfm_token_kind LFM_TOKEN_UNUSED (GGUF "[PAD<i>]" fillers)


# ---- what the host provides ----

@runtime_checkable
class GenerationTokenizer(Protocol):
    """The tokenizer calls generation makes (liquidlfm.Tokenizer has them all)."""

    bos_id: Optional[int]
    eos_id: Optional[int]
    pad_id: Optional[int]

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str, add_special_tokens: bool = True, parse_special: bool = True) -> List[int]: ...

    def decode_bytes(self, ids: Union[int, Iterable[int]], skip_special_tokens: bool = False) -> bytes: ...

    def token_type(self, token_id: int) -> int: ...


class ModelShape(Protocol):
    n_vocab: int
    eos_id: Optional[int]


@runtime_checkable
class GenerationHost(Protocol):
    config: ModelShape
    tokenizer: Optional[GenerationTokenizer]
    chat_template: Optional[str]
    generation_config: dict

    def session(self, n_ctx: Optional[int] = None) -> CachedSession: ...


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


def _is_prompt_list(prompt) -> bool:
    """A list of prompts (strs or token-id lists), as opposed to one prompt given as token ids."""
    if not isinstance(prompt, (list, tuple)) or not prompt:
        return False
    return all(isinstance(p, str) or (isinstance(p, (list, tuple, np.ndarray)) and not isinstance(p, bool))
               for p in prompt)


def _is_conversation_list(messages) -> bool:
    return isinstance(messages, (list, tuple)) and bool(messages) and all(isinstance(m, (list, tuple)) for m in messages)


class GenerationMixin:
    """Methods that turn a loaded Model into a text generator (the host is a GenerationHost)."""

    # ---- plumbing ----

    def _gen_thread_session(self, n_ctx=None) -> CachedSession:
        """This thread's default session for this model (created on first use)."""
        d = self.__dict__.setdefault("_lfm_thread_sessions", threading.local())
        s = getattr(d, "session", None)
        if s is None or (n_ctx is not None and s.n_ctx != n_ctx):
            if s is not None:
                s.close()
            s = self.session(n_ctx=n_ctx)
            d.session = s
        return s

    def _gen_tokenizer(self) -> GenerationTokenizer:
        if self.tokenizer is None:
            raise ValueError("this model has no tokenizer; pass the prompt as a list of token ids")
        return self.tokenizer

    @property
    def stop_token_ids(self) -> List[int]:
        """Token ids that always end generation (never returned): eos (config, generation_config,
        tokenizer) and the tokenizer's <|im_end|> / <|endoftext|>. stop_token_ids= adds more per call."""
        cached = self.__dict__.get("_lfm_stop_ids")
        if cached is not None:
            return list(cached)
        ids = set()
        eos = self.config.eos_id
        if eos is not None and eos >= 0:
            ids.add(int(eos))
        gc_eos = (self.generation_config or {}).get("eos_token_id")
        if isinstance(gc_eos, int):
            ids.add(gc_eos)
        elif isinstance(gc_eos, (list, tuple)):
            ids.update(int(x) for x in gc_eos if isinstance(x, int))
        tok = self.tokenizer
        if tok is not None:
            if tok.eos_id is not None and tok.eos_id >= 0:
                ids.add(int(tok.eos_id))
            for text in STOP_TOKEN_TEXTS:
                enc = tok.encode(text, add_special_tokens=False, parse_special=True)
                if len(enc) == 1:
                    ids.add(int(enc[0]))
        n_vocab = self.config.n_vocab
        out = sorted(i for i in ids if 0 <= i < n_vocab)
        self.__dict__["_lfm_stop_ids"] = out
        return list(out)

    def _gen_banned_ids(self) -> List[int]:
        """Ids never sampled: embedding rows the tokenizer does not define (vocabulary padding) and
        tokens the tokenizer marks UNUSED (GGUF "[PAD<i>]" fillers)."""
        cached = self.__dict__.get("_lfm_banned_ids")
        if cached is not None:
            return cached
        tok = self.tokenizer
        if tok is None:
            return []
        n_vocab = self.config.n_vocab
        n_tok = tok.vocab_size
        banned = list(range(max(n_tok, 0), n_vocab))
        banned += [i for i in range(min(n_tok, n_vocab)) if tok.token_type(i) == TOKEN_TYPE_UNUSED]
        self.__dict__["_lfm_banned_ids"] = banned
        return banned

    def _gen_encode(self, prompt, chat: bool) -> List[int]:
        n_vocab = self.config.n_vocab
        if isinstance(prompt, str):
            ids = self._gen_tokenizer().encode(prompt, add_special_tokens=not chat, parse_special=True)
            return _as_id_list(ids, n_vocab)
        if isinstance(prompt, (bytes, bytearray)):
            raise TypeError("prompt must be a str or a list of token ids, not bytes")
        return _as_id_list(prompt, n_vocab)

    def _gen_special_tokens(self) -> Optional[dict]:
        """{"bos_token": ..., "eos_token": ..., "pad_token": ...}: the template variables."""
        tok = self.tokenizer
        if tok is None:
            return None
        out = {}
        for name, i in (("bos_token", tok.bos_id), ("eos_token", tok.eos_id), ("pad_token", tok.pad_id)):
            if i is not None and i >= 0:
                try:
                    out[name] = tok.decode_bytes([i]).decode("utf-8")
                except UnicodeDecodeError:
                    pass
        return out or None

    # ---- public API ----

    def apply_chat_template(self, messages, tools=None, add_generation_prompt: bool = True, **kwargs) -> str:
        """Render messages with the model's chat template (or the built-in LFM2 one); see
        liquidlfm.chat_template. Extra keyword arguments become template variables."""
        from ..chat_template import ChatTemplate

        key = self.chat_template
        cached = self.__dict__.get("_lfm_chat_template")
        if cached is None or cached[0] != key:
            cached = (key, ChatTemplate(key, self._gen_special_tokens()))
            self.__dict__["_lfm_chat_template"] = cached
        return cached[1].render(messages, tools=tools, add_generation_prompt=add_generation_prompt, **kwargs)

    def stream(self, prompt, max_tokens: Optional[int] = None, *, temperature=None, top_k=None, top_p=None,
               min_p=None, repetition_penalty=None, presence_penalty=None, frequency_penalty=None,
               penalty_last_n=None, logit_bias=None, stop=None, seed=None, stop_token_ids=None,
               session=None, n_ctx=None, cache_prefix=None, response_format=None,
               constraint=None) -> Iterator[Chunk]:
        """Generate from prompt (str, or a list of token ids used as is), yielding Chunks.

        max_tokens: tokens to generate (default: generation_config max_new_tokens, else 512).
        stop: a string or list of strings; generation ends before the first match, which is not
        returned. stop_token_ids: extra token ids that end generation. session: a Session to run in
        (default: this thread's session for the model, reused across calls).
        cache_prefix: a leading part of the prompt (text, or token ids) whose state is kept in the
        session's prefix cache, so later prompts starting with it (a shared system prompt) do not
        prefill it again; ignored when the prompt does not start with it.
        response_format: structured output, OpenAI-style ({"type": "json_object"}, {"type": "json_schema",
        "json_schema": {"name": ..., "schema": {...}}}) or {"type": "regex", "pattern": ...} /
        {"type": "grammar", "grammar": <Lark>}; the output then follows it and, once complete, ends
        (finish_reason "stop"); max_tokens can still cut it ("length"). constraint: a
        liquidlfm.generation.Constraint instead (started from its initial state). Both need
        llguidance (pip install "liquidlfm[structured]"); a bad schema / regex / grammar raises
        ValueError here.
        Raises ContextFullError when the prompt does not fit in the session's context.
        """
        ids = self._gen_encode(prompt, chat=False)
        prefix = self._gen_encode(cache_prefix, chat=False) if cache_prefix is not None else None
        return self._gen_run(ids, max_tokens, stop, stop_token_ids, session, n_ctx, False, prefix,
                             dict(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
                                  repetition_penalty=repetition_penalty, presence_penalty=presence_penalty,
                                  frequency_penalty=frequency_penalty, penalty_last_n=penalty_last_n,
                                  logit_bias=logit_bias, seed=seed),
                             self._gen_constraint(response_format, constraint))

    def generate(self, prompt, max_tokens: Optional[int] = None, **kwargs):
        """Like stream(), but returns the whole text (a str carrying .token_ids, .finish_reason, .stats).

        prompt may also be a list of prompts (strs, or lists of token ids): they are generated
        together, up to n_seq (default 8) at a time in one forward pass per step (batch.BatchEngine),
        and a list of GenerationResults comes back in prompt order. n_seq= and n_ctx= (positions per
        sequence) size that batch; session= and cache_prefix= do not apply to it."""
        if _is_prompt_list(prompt):
            return self._gen_many(list(prompt), max_tokens, kwargs)
        return collect(self.stream(prompt, max_tokens, **kwargs))

    @property
    def supports_batch(self) -> bool:
        """Whether this host runs many sequences in one native context (batch(), lists of prompts
        decoded together); a host without one (a test double) generates a list one prompt at a time."""
        return callable(getattr(self, "_native_ctx", None))

    def _gen_many(self, prompts, max_tokens, kwargs):
        from .batch import generate_many

        for k in ("session", "cache_prefix"):
            if kwargs.get(k) is not None:
                raise TypeError(f"{k}= does not apply to a list of prompts")
            kwargs.pop(k, None)
        if not self.supports_batch:
            kwargs.pop("n_seq", None)
            return [collect(self.stream(p, max_tokens, **kwargs)) for p in prompts]
        return generate_many(self, prompts, max_tokens=max_tokens, **kwargs)

    def batch(self, n_seq: int = 8, n_ctx: Optional[int] = None, **kwargs):
        """A BatchEngine over this model: up to n_seq generations decoded together (see
        liquidlfm.generation.batch). Keyword arguments: n_batch, n_threads, kv_cache, max_queue."""
        from .batch import BatchEngine

        return BatchEngine(self, n_seq=n_seq, n_ctx=n_ctx, **kwargs)

    def chat(self, messages, tools=None, stream: bool = False, max_tokens: Optional[int] = None, *,
             template_kwargs: Optional[dict] = None, **kwargs):
        """Reply to a conversation (list of {"role", "content"} dicts, optional tools list).

        The prompt is rendered with apply_chat_template and tokenized without adding special tokens
        (the template writes <|startoftext|>). Returns the reply (GenerationResult), or an iterator
        of Chunks with stream=True. The session keeps the conversation: the next call with the same
        history plus new messages only prefills the new tokens. Keyword arguments: as stream().
        A list of conversations is answered together, as generate() does for a list of prompts.
        """
        if _is_conversation_list(messages):
            if stream:
                raise ValueError("stream=True takes one conversation, not a list")
            ids = [self._gen_encode(self.apply_chat_template(m, tools=tools, add_generation_prompt=True,
                                                             **(template_kwargs or {})), chat=True)
                   for m in messages]
            return self._gen_many(ids, max_tokens, kwargs)
        prompt = self.apply_chat_template(messages, tools=tools, add_generation_prompt=True,
                                          **(template_kwargs or {}))
        ids = self._gen_encode(prompt, chat=True)
        sampling = {k: kwargs.pop(k) for k in list(kwargs) if k in SAMPLING_ARGS}
        stop = kwargs.pop("stop", None)
        stop_token_ids = kwargs.pop("stop_token_ids", None)
        session = kwargs.pop("session", None)
        n_ctx = kwargs.pop("n_ctx", None)
        cache_prefix = kwargs.pop("cache_prefix", None)
        constraint = self._gen_constraint(kwargs.pop("response_format", None), kwargs.pop("constraint", None))
        if kwargs:
            raise TypeError(f"chat() got unexpected keyword arguments: {', '.join(sorted(kwargs))}")
        prefix = self._gen_encode(cache_prefix, chat=True) if cache_prefix is not None else None
        it = self._gen_run(ids, max_tokens, stop, stop_token_ids, session, n_ctx, True, prefix, sampling, constraint)
        return it if stream else collect(it)

    # ---- the loop ----

    def _gen_constraint(self, response_format, constraint):
        """The Constraint for response_format= / constraint= (None without either); raises
        ValueError / TypeError at the call for a bad format, schema or constraint."""
        if response_format is None and constraint is None:
            return None
        from .constrain import Constraint

        if response_format is not None and constraint is not None:
            raise ValueError("pass response_format= or constraint=, not both")
        n_vocab = self.config.n_vocab
        if constraint is not None:
            if not isinstance(constraint, Constraint):
                raise TypeError(f"constraint must be a liquidlfm.generation.Constraint, got "
                                f"{type(constraint).__name__}")
            return constraint
        tok = self.tokenizer
        if tok is None:
            raise ValueError("response_format needs the model's tokenizer; this model has none")
        return Constraint.from_response_format(tok, response_format, stop_ids=self.stop_token_ids,
                                               n_vocab=max(n_vocab, tok.vocab_size))

    def _gen_run(self, ids, max_tokens, stop, stop_token_ids, session, n_ctx, snapshots, prefix, sampling,
                 constraint=None):
        """Validate everything eagerly (errors surface at the call, not at the first next()), then
        return the generator."""
        gc = dict(self.generation_config or {})
        max_tokens = resolve_max_tokens(max_tokens, gc)
        stops = normalize_stop(stop)
        if stops:
            self._gen_tokenizer()
        n_vocab = self.config.n_vocab
        stop_ids = set(self.stop_token_ids)
        if stop_token_ids is not None:
            stop_ids.update(_as_id_list(stop_token_ids, n_vocab))
        if not ids:
            raise ValueError("the prompt is empty")
        if prefix is not None and (len(prefix) >= len(ids) or ids[:len(prefix)] != prefix):
            prefix = None  # not a (proper) prefix of this prompt: nothing to keep
        sp = resolve_sampling(gc, **sampling)
        sampler = make_sampler(n_vocab, sp, self._gen_banned_ids())  # raises ValueError for bad values
        if session is None:
            session = self._gen_thread_session(n_ctx)
        if len(ids) > session.n_ctx:
            sampler.close()
            raise ContextFullError(
                f"the prompt has {len(ids)} tokens but the session's context holds {session.n_ctx}; "
                f"use a larger n_ctx or a shorter prompt")
        return self._gen_loop(ids, max_tokens, stops, stop_ids, session, snapshots, prefix, sampler, self.tokenizer,
                              constraint)

    def _gen_loop(self, ids, max_tokens, stops, stop_ids, session: CachedSession, snapshots, prefix, sampler, tok,
                  constraint=None):
        cache = session.prefix_cache
        cache.acquire()
        if constraint is not None:
            try:
                constraint._claim()
            except BaseException:
                sampler.close()
                cache.release()
                raise
        try:
            stats = GenerationStats(prompt_tokens=len(ids))
            t0 = time.perf_counter()
            reused = cache.prepare(ids)
            if prefix is not None and reused < len(prefix):
                cache.prefill(prefix)
                cache.snapshot()
            logits = cache.prefill(ids)
            stats.reused_tokens = reused
            stats.prefilled_tokens = len(ids) - reused
            stats.prompt_time = time.perf_counter() - t0
            if snapshots:
                cache.snapshot()
            sampler.accept(ids)

            emitter = TokenEmitter(tok, stops, stop_ids, max_tokens, stats)
            n_ctx = session.n_ctx
            native = cache.native_ctx is not None
            stop_list = sorted(stop_ids)
            if constraint is not None:
                # the sampler gives every token outside the grammar -inf before anything else; the
                # mask may be longer than the model's vocabulary (a tokenizer larger than the model)
                constraint.reset()
                n_words = mask_words(self.config.n_vocab)
                allowed = np.zeros(max(n_words, constraint.n_words), dtype=np.uint32)
                allowed_view = allowed[:n_words]
            emitter.start_decoding()
            while emitter.wants_token:
                if constraint is not None:
                    constraint.fill_mask(allowed)
                    sampler.set_allowed(allowed_view)
                if native:
                    t, is_stop, full = cache.step_native(sampler, stop_list)
                else:
                    t = sampler.sample(logits)
                    sampler.accept(t)
                    is_stop = t in stop_ids
                    full = False
                    if not is_stop:
                        if len(cache.tokens) >= n_ctx:
                            full = True  # the token is returned but cannot be decoded
                        else:
                            logits = cache.step(t)
                            full = len(cache.tokens) >= n_ctx
                if constraint is not None:
                    constraint.accept(t)
                chunk = emitter.push(t, full)
                yield chunk
                if chunk.finish_reason is not None:
                    return
            yield emitter.end("length")  # max_tokens reached before a token was sampled
        finally:
            if constraint is not None:
                constraint._release()
            sampler.close()
            cache.release()

    # ---- session helpers ----

    def save_session(self, path, session=None):
        """Save this thread's session (or the given one) to path atomically; see save_session()."""
        save_session(session if session is not None else self._gen_thread_session(), path)

    def load_session(self, path, session=None):
        """Load a state file written by save_session into this thread's session (or the given one)."""
        load_session(session if session is not None else self._gen_thread_session(), path)

    def reset_session(self, session=None):
        """Forget this thread's conversation (or the given session's): position 0, no snapshots."""
        s = session if session is not None else self._gen_thread_session()
        cache = s.prefix_cache
        cache.acquire()
        try:
            cache.clear()
        finally:
            cache.release()
