"""Continuous batching: many generations sharing one forward pass per step.

Decode is memory-bound: every step reads all the weights whether it serves one sequence or eight. A
BatchEngine keeps up to n_seq sequences in one native context (each with its own conv state and KV
rows) and runs every step as one forward pass over all of them: one new token per decoding sequence
plus prompt chunks of sequences still prefilling. Requests join when a sequence is free and leave
when they finish, between steps.

    engine = model.batch(n_seq=8)
    reqs = [engine.submit(model.tokenizer.encode(p), max_tokens=64, temperature=0) for p in prompts]
    texts = [r.result() for r in reqs]        # steps the engine on this thread while waiting
    engine.close()

or with a background thread stepping the engine (what the server does):

    engine.start()
    for chunk in engine.submit(ids, max_tokens=64):     # from any thread
        print(chunk.text, end="")

Each request's tokens and text are those Model.generate gives for the same prompt and sampling
parameters; logits can differ from a sequence run alone by the kernels' batch-size rounding (see
tests/engine/test_batch_decode.py), so a sampled (temperature > 0) generation matches when the
sampling distribution is the same.
"""
from __future__ import annotations

import collections
import dataclasses
import itertools
import queue
import threading
import time
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from ..errors import ContextFullError
from .constrain import mask_words
from .emit import TokenEmitter
from .params import SAMPLING_ARGS, make_sampler, resolve_max_tokens, resolve_sampling
from .results import Chunk, GenerationResult, GenerationStats
from .stops import normalize_stop

__all__ = ["BatchEngine", "Request", "EngineClosed"]

DEFAULT_N_SEQ = 8


class EngineClosed(RuntimeError):
    """The engine was closed: no new requests; requests still running were cancelled."""


_END = object()  # queue marker after an exception


class Request:
    """One generation in a BatchEngine. Iterate it for Chunks (as Model.stream yields), or call
    result() for the whole GenerationResult; cancel() ends it ("cancelled") and frees its sequence."""

    _ids = itertools.count(1)

    def __init__(self, engine: "BatchEngine", ids: List[int], emitter: TokenEmitter, sampler, constraint,
                 on_chunk: Optional[Callable[[Chunk], None]]):
        self.id = next(Request._ids)
        self.engine = engine
        self.prompt_ids = ids
        self.emitter = emitter
        self.sampler = sampler
        self.constraint = constraint
        self.on_chunk = on_chunk
        self.finish_reason: Optional[str] = None
        self.token_ids: List[int] = []
        self._parts: List[str] = []
        self._chunks: "queue.Queue" = queue.Queue()
        self._done = threading.Event()
        self._error: Optional[BaseException] = None
        self._cancel = False
        # scheduling state, owned by the engine
        self.seq: Optional[int] = None
        self.fed = 0                 # prompt tokens decoded into the sequence
        self.next_token: Optional[int] = None
        self.leader: Optional["Request"] = None  # shares the leader's prefilled prompt (n > 1)
        self.followers: List["Request"] = []
        self.t_submit = time.perf_counter()

    # ---- consumer side ----

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def stats(self) -> GenerationStats:
        return self.emitter.stats

    def __iter__(self):
        while True:
            if self.engine._thread is None:  # no background thread: drive the engine from here
                while self._chunks.empty():
                    self.engine._step_for(self)
            item = self._chunks.get()
            if item is _END:
                raise self._error
            yield item
            if item.finish_reason is not None:
                return

    def result(self, timeout: Optional[float] = None) -> GenerationResult:
        """The whole text; waits for the end (stepping the engine itself when no thread runs it)."""
        if self.engine._thread is None:
            while not self._done.is_set():
                self.engine._step_for(self, until_done=True)
        elif not self._done.wait(timeout):
            raise TimeoutError(f"request {self.id} did not finish within {timeout} s")
        if self._error is not None:
            raise self._error
        return GenerationResult("".join(self._parts), list(self.token_ids), self.finish_reason,
                                dataclasses.replace(self.emitter.stats))

    def cancel(self) -> None:
        """End this request at the next step (finish_reason "cancelled"); frees its sequence."""
        self.engine._cancel(self)

    # ---- engine side ----

    def _emit(self, chunk: Chunk) -> None:
        self._parts.append(chunk.text)
        self.token_ids.extend(chunk.token_ids)
        if chunk.finish_reason is not None:
            self.finish_reason = chunk.finish_reason
        self._chunks.put(chunk)
        if self.on_chunk is not None:
            try:
                self.on_chunk(chunk)
            except Exception:  # a consumer's callback must not take the engine down
                pass
        if chunk.finish_reason is not None:
            self._done.set()

    def _drop(self) -> None:
        """Free what the request holds (its sampler; its constraint for another generation)."""
        if self.sampler is not None:
            self.sampler.close()
            self.sampler = None
        if self.constraint is not None and not getattr(self, "_constraint_released", False):
            self._constraint_released = True
            self.constraint._release()

    def _fail(self, exc: BaseException) -> None:
        self._error = exc
        self.finish_reason = "error"
        self._chunks.put(_END)
        if self.on_chunk is not None:
            try:
                self.on_chunk(None)
            except Exception:
                pass
        self._done.set()

    def __repr__(self) -> str:
        state = self.finish_reason or ("running" if self.seq is not None else "queued")
        return f"<liquidlfm.Request {self.id} {state} prompt={len(self.prompt_ids)} generated={len(self.token_ids)}>"


class BatchEngine:
    """Up to n_seq generations decoded together, one forward pass per step (see module docstring).

    n_ctx: positions per sequence (None: the model's default session size); n_batch: the most tokens
    one step runs (decode tokens first, then prompt chunks); max_queue: requests waiting for a free
    sequence before submit() raises queue.Full (None: unbounded). Thread-safe: submit, cancel and
    iteration may come from any thread.
    """

    def __init__(self, model, *, n_seq: int = DEFAULT_N_SEQ, n_ctx: Optional[int] = None,
                 n_batch: Optional[int] = None, n_threads: Optional[int] = None, kv_cache: Optional[str] = None,
                 max_queue: Optional[int] = None):
        for name, v in (("n_seq", n_seq), ("n_ctx", n_ctx), ("n_batch", n_batch), ("n_threads", n_threads),
                        ("max_queue", max_queue)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0):
                raise ValueError(f"{name} must be a positive int or None, got {v!r}")
        self.model = model
        self._ctx = model._native_ctx(n_ctx=n_ctx, n_batch=n_batch, n_threads=n_threads, kv_cache=kv_cache,
                                      n_seq=int(n_seq))
        self.n_seq = self._ctx.n_seq
        self.n_ctx = self._ctx.n_ctx
        self.n_batch = self._ctx.n_batch
        self.max_queue = max_queue
        self._cv = threading.Condition()
        self._step_lock = threading.Lock()  # one step at a time (engine thread, or callers driving it)
        self._free: List[int] = list(range(self.n_seq))
        self._queue: "collections.deque[Request]" = collections.deque()
        self._running: Dict[int, Request] = {}  # seq -> request
        self._cancelled: List[Request] = []
        self._thread: Optional[threading.Thread] = None
        self._closing = False
        self._closed = False
        self.steps = 0
        self.tokens_decoded = 0

    # ---- submitting ----

    def submit(self, prompt, *, max_tokens: Optional[int] = None, stop=None, stop_token_ids=None,
               response_format=None, constraint=None, on_chunk: Optional[Callable[[Chunk], None]] = None,
               **sampling) -> Request:
        """Queue one generation of prompt (token ids, or text encoded as Model.generate does).
        Keyword arguments as Model.stream (sampling parameters, stop, stop_token_ids, max_tokens,
        response_format, constraint).
        Raises at once for bad arguments, a prompt longer than n_ctx (ContextFullError), a full
        queue (queue.Full) or a closed engine (EngineClosed)."""
        return self.submit_n(prompt, 1, max_tokens=max_tokens, stop=stop, stop_token_ids=stop_token_ids,
                             response_format=response_format, constraint=constraint, on_chunk=on_chunk,
                             **sampling)[0]

    def submit_n(self, prompt, n: int, *, max_tokens: Optional[int] = None, stop=None, stop_token_ids=None,
                 response_format=None, constraint=None, on_chunk: Optional[Callable[[Chunk], None]] = None,
                 **sampling) -> List[Request]:
        """n generations of one prompt (OpenAI's n): the prompt is prefilled once and its state copied
        to the other sequences. With a seed, generation i samples with seed + i. response_format (as
        Model.generate) applies to each generation; constraint: one Constraint (copied for each of the
        n, so the caller's stays unused) or a list of n. on_chunk(chunk) is called on the engine's thread
        (with None if the request fails); a list of n callables gives each generation its own, so a
        consumer knows which of the n a chunk belongs to."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        if n > self.n_seq:
            raise ValueError(f"n={n} generations of one prompt need {n} sequences; this engine has {self.n_seq}")
        unknown = set(sampling) - set(SAMPLING_ARGS)
        if unknown:
            raise TypeError(f"submit() got unexpected keyword arguments: {', '.join(sorted(unknown))}")
        m = self.model
        if isinstance(constraint, (list, tuple)):
            if response_format is not None:
                raise ValueError("pass response_format= or constraint=, not both")
            constraints = [m._gen_constraint(None, c) for c in constraint]
        else:
            one = m._gen_constraint(response_format, constraint)  # raises for a bad format, at the call
            constraints = [None if one is None else one.copy() for _ in range(n)]
        callbacks = list(on_chunk) if isinstance(on_chunk, (list, tuple)) else [on_chunk] * n
        if len(callbacks) != n:
            raise ValueError(f"on_chunk: a callable or a list of n={n} callables, got a list of {len(callbacks)}")
        if len(constraints) != n:
            raise ValueError(f"constraint: one Constraint or a list of n={n}, got a list of {len(constraints)}")
        ids = m._gen_encode(prompt, chat=False)
        if not ids:
            raise ValueError("the prompt is empty")
        if len(ids) > self.n_ctx:
            raise ContextFullError(f"the prompt has {len(ids)} tokens but the engine's context holds {self.n_ctx} "
                                   f"per sequence; use a larger n_ctx or a shorter prompt")
        gc = dict(m.generation_config or {})
        max_tokens = resolve_max_tokens(max_tokens, gc)
        stops = normalize_stop(stop)
        if stops:
            m._gen_tokenizer()
        stop_ids = set(m.stop_token_ids)
        if stop_token_ids is not None:
            from .api import _as_id_list
            stop_ids.update(_as_id_list(stop_token_ids, m.config.n_vocab))
        sp = resolve_sampling(gc, **sampling)
        reqs = []
        try:
            for i in range(n):
                spi = sp if sp.seed is None or i == 0 else dataclasses.replace(sp, seed=int(sp.seed) + i)
                sampler = make_sampler(m.config.n_vocab, spi, m._gen_banned_ids())
                em = TokenEmitter(m.tokenizer, stops, stop_ids, max_tokens, GenerationStats(prompt_tokens=len(ids)))
                reqs.append(Request(self, ids, em, sampler, constraints[i], callbacks[i]))
        except BaseException:
            for r in reqs:
                r.sampler.close()
            raise
        claimed = []
        try:
            for r in reqs:
                if r.constraint is not None:
                    r.constraint._claim()  # one generation at a time per Constraint (copy() for more)
                    claimed.append(r.constraint)
                    r.constraint.reset()
        except BaseException:
            for c in claimed:
                c._release()
            for r in reqs:
                r.sampler.close()
            raise
        for r in reqs[1:]:
            r.leader = reqs[0]
        reqs[0].followers = reqs[1:]
        with self._cv:
            if self._closing or self._closed:
                for r in reqs:
                    r._drop()
                raise EngineClosed("the engine is closed")
            if self.max_queue is not None and len(self._queue) + n > self.max_queue:
                for r in reqs:
                    r._drop()
                raise queue.Full(f"{len(self._queue)} requests are already waiting (max_queue={self.max_queue})")
            self._queue.extend(reqs)
            self._cv.notify_all()
        return reqs

    # ---- state ----

    @property
    def n_active(self) -> int:
        """Requests holding a sequence."""
        with self._cv:
            return len(self._running)

    @property
    def n_queued(self) -> int:
        with self._cv:
            return len(self._queue)

    @property
    def closed(self) -> bool:
        return self._closed

    def _cancel(self, r: Request) -> None:
        with self._cv:
            if r.done or r in self._cancelled:
                return
            self._cancelled.append(r)
            self._cv.notify_all()
        if self._thread is None and not self._step_lock.locked():
            self._step_for(None)

    # ---- stepping ----

    def _admit(self) -> None:
        """Move waiting requests onto free sequences (a group of n only when n sequences are free,
        so its prompt is prefilled once). Called with _cv held."""
        while self._queue:
            r = self._queue[0]
            need = 1 + len(r.followers)
            if len(self._free) < need:
                break
            for q in [r] + r.followers:
                self._queue.popleft()
                q.seq = self._free.pop(0)
                self._ctx.seq_reset(q.seq)
                self._running[q.seq] = q

    def _release(self, r: Request) -> None:
        """r is finished: its sequence goes back to the pool. Called with _cv held."""
        if r.seq is not None and self._running.get(r.seq) is r:
            del self._running[r.seq]
            self._free.append(r.seq)
            self._free.sort()
        r.seq = None
        r._drop()
        for f in r.followers:  # a follower still waiting for this prompt prefills its own
            if f.leader is r:
                f.leader = None
        r.followers = []

    def _apply_cancellations(self) -> None:
        with self._cv:
            cancelled, self._cancelled = self._cancelled, []
            for r in cancelled:
                if r.done:
                    continue
                if r in self._queue:
                    self._queue.remove(r)
                    for f in r.followers:
                        f.leader = None
                self._release(r)
                r._emit(r.emitter.end("cancelled"))

    def step(self) -> bool:
        """One forward pass over every running sequence; returns False when there was nothing to do."""
        with self._step_lock:
            return self._step()

    def _step_for(self, waiting: Optional[Request], until_done: bool = False) -> None:
        """Step on behalf of a caller waiting for `waiting` (no background thread): for its next chunk
        (an iterating caller, which drains the chunks), or until_done (result(), which does not)."""
        with self._step_lock:
            if waiting is not None and (waiting.done or (not until_done and not waiting._chunks.empty())):
                return
            if not self._step() and waiting is not None and not waiting.done:
                raise RuntimeError(f"request {waiting.id} cannot make progress (engine closed?)")

    def _step(self) -> bool:
        self._apply_cancellations()
        with self._cv:
            self._admit()
            running = sorted(self._running.values(), key=lambda r: r.id)
        if not running:
            return False
        # decode tokens first (one each), then prompt chunks in arrival order with what is left
        chunks, owners, budget = [], [], self.n_batch
        for r in running:
            if r.next_token is not None:
                chunks.append((r.seq, [r.next_token], True))
                owners.append((r, 1, False))
                budget -= 1
        for r in running:
            if r.next_token is None and r.leader is None and r.fed < len(r.prompt_ids) and budget > 0:
                take = min(len(r.prompt_ids) - r.fed, budget)
                last = r.fed + take == len(r.prompt_ids)
                chunks.append((r.seq, r.prompt_ids[r.fed:r.fed + take], last))
                owners.append((r, take, True))
                budget -= take
        if not chunks:  # only followers whose leader has not finished its prompt: cannot happen
            raise RuntimeError("batch scheduler stalled")
        try:
            logits = self._ctx.decode_seqs(chunks)
        except BaseException as e:
            # the context reset the sequences of this call: those requests cannot continue
            with self._cv:
                for r, _, _ in owners:
                    for q in [r] + list(r.followers):
                        self._release(q)
                        q._fail(e)
            raise
        self.steps += 1
        self.tokens_decoded += sum(n for _, n, _ in owners)
        row = 0
        for (r, n, is_prompt), (_, _, want) in zip(owners, chunks):
            if is_prompt:
                r.fed += n
            else:
                r.next_token = None
            if not want:
                continue
            row_logits = logits[row]
            row += 1
            group = [r] + list(r.followers)
            try:
                if is_prompt:
                    self._prompt_done(r, row_logits)
                else:
                    self._sample(r, row_logits)
            except Exception as e:  # sampling or detokenizing failed: that request ends, the rest go on
                with self._cv:
                    for q in group:
                        if not q.done:
                            self._release(q)
                            q._fail(e)
        return True

    def _prompt_done(self, r: Request, logits: np.ndarray) -> None:
        now = time.perf_counter()
        group = [r] + [f for f in r.followers if f.leader is r]
        for q in group:
            if q is not r:
                self._ctx.seq_copy(r.seq, q.seq)
                q.fed = len(q.prompt_ids)
                q.leader = None
                q.emitter.stats.reused_tokens = len(q.prompt_ids)
                q.emitter.stats.prefilled_tokens = 0
            else:
                q.emitter.stats.prefilled_tokens = len(q.prompt_ids)
            q.emitter.stats.prompt_time = now - q.t_submit
            q.sampler.accept(q.prompt_ids)
            q.emitter.start_decoding()
        r.followers = []
        for q in group:
            self._sample(q, logits)

    def _sample(self, r: Request, logits: np.ndarray) -> None:
        em = r.emitter
        if not em.wants_token:
            with self._cv:
                self._release(r)
            r._emit(em.end("length"))
            return
        if r.constraint is not None:
            # as the single-sequence loop: tokens outside the grammar get -inf in the sampler; the
            # mask may be longer than the model's vocabulary (a tokenizer larger than the model)
            n_words = mask_words(self.model.config.n_vocab)
            bits = np.zeros(max(n_words, r.constraint.n_words), dtype=np.uint32)
            r.constraint.fill_mask(bits)
            r.sampler.set_allowed(bits[:n_words])
        t = int(r.sampler.sample(logits))
        r.sampler.accept(t)
        if r.constraint is not None:
            r.constraint.accept(t)
        # as the single-sequence loop: t is returned, and the generation ends when no token after it fits
        chunk = em.push(t, context_full=self._ctx.seq_pos(r.seq) + 1 >= self.n_ctx)
        if chunk.finish_reason is not None:
            with self._cv:
                self._release(r)
        else:
            r.next_token = t
        r._emit(chunk)

    # ---- running ----

    def run(self) -> None:
        """Step until every submitted request has finished (on this thread)."""
        while self.step():
            pass

    def start(self) -> "BatchEngine":
        """Step in a background thread from now on (idle while there is nothing to do)."""
        with self._cv:
            if self._closed or self._closing:
                raise EngineClosed("the engine is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="liquidlfm-batch", daemon=True)
                self._thread.start()
        return self

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._closing and not self._queue and not self._running and not self._cancelled:
                    self._cv.wait()
                if self._closing and not self._queue and not self._running and not self._cancelled:
                    return
            try:
                self.step()
            except BaseException:  # the failed requests got the error; keep serving the others
                continue

    def close(self, cancel: bool = True, timeout: Optional[float] = None) -> None:
        """Stop taking requests; cancel the running and waiting ones (cancel=True) or let them finish
        (waits up to timeout seconds, then cancels what is left); free the native context."""
        with self._cv:
            if self._closed:
                return
            self._closing = True
            if cancel:
                self._cancelled.extend(r for r in list(self._queue) + list(self._running.values())
                                       if r not in self._cancelled)
            self._cv.notify_all()
        th = self._thread
        if th is not None:
            th.join(timeout)
            if th.is_alive():
                with self._cv:
                    self._cancelled.extend(r for r in list(self._queue) + list(self._running.values())
                                           if r not in self._cancelled)
                    self._cv.notify_all()
                th.join()
        else:
            if not cancel:
                self.run()
            self._apply_cancellations()
        with self._cv:
            self._closed = True
            leftover = list(self._queue) + list(self._running.values())
            self._queue.clear()
        for r in leftover:
            if not r.done:
                r._fail(EngineClosed("the engine was closed"))
        self._ctx.close()

    def __enter__(self) -> "BatchEngine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<liquidlfm.BatchEngine n_seq={self.n_seq} n_ctx={self.n_ctx} running={len(self._running)} "
                f"queued={len(self._queue)}{' closed' if self._closed else ''}>")


def generate_many(model, prompts: Sequence, *, n_seq: Optional[int] = None, n_ctx: Optional[int] = None,
                  **kwargs) -> List[GenerationResult]:
    """Model.generate on a list: every prompt through one BatchEngine, results in prompt order."""
    prompts = list(prompts)
    if not prompts:
        return []
    per_prompt = {}
    for k in ("response_format", "constraint"):  # one for all prompts, or a list with one per prompt
        v = kwargs.pop(k, None)
        if isinstance(v, (list, tuple)):
            if len(v) != len(prompts):
                raise ValueError(f"{k}: {len(v)} given for {len(prompts)} prompts")
            per_prompt[k] = list(v)
        else:
            per_prompt[k] = [v] * len(prompts)
    n_seq = n_seq or min(len(prompts), DEFAULT_N_SEQ)
    with BatchEngine(model, n_seq=n_seq, n_ctx=n_ctx) as engine:
        reqs = [engine.submit(p, response_format=rf, constraint=None if c is None else c.copy(), **kwargs)
                for p, rf, c in zip(prompts, per_prompt["response_format"], per_prompt["constraint"])]
        engine.run()
        return [r.result() for r in reqs]
