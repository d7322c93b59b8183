"""The OpenAI-compatible HTTP API over a BatchEngine: routes, limits, streaming, cancellation.

    from liquidlfm.server import create_app, ServerSettings
    app = create_app(model, engine, ServerSettings(model_name="LFM2-350M"))   # an ASGI app (FastAPI)

Requests become engine requests (liquidlfm.generation.batch): one per choice (`n`) and prompt, the
n choices of a prompt submitted together so the engine prefills it once. The engine thread hands
each chunk to the event loop (on_chunk -> loop.call_soon_threadsafe), where it is written to the
client as it comes (SSE) or gathered (JSON).

Limits, checked in this order: shutting down (503), API key (401), body size (413), JSON and
parameters (400), model name (404), context length (400, context_length_exceeded), room in the
engine's queue (429: the sequences admitted — running plus waiting — may not pass n_seq +
max_queue). A client that goes away (disconnect noticed by a task listening on the connection)
cancels its engine requests, which frees their sequences at the engine's next step.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import json
import logging
import queue as queue_mod
import re
import secrets
import time
from functools import partial
from typing import Any, Dict, List, Optional, Sequence, Set

import anyio
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from ..errors import ContextFullError
from .errors import APIError, bad_request, context_length_exceeded
from .protocol import (ChatRequest, CompletionRequest, message_text, prompt_list, reject_unsupported,
                       sampling_kwargs, stop_list, validate_request)
from .tools import TOOL_CALL_END, TOOL_CALL_START, ToolCallSplitter, format_tool_calls, tool_call_grammar

__all__ = ["ServerSettings", "ServerState", "create_app"]

log = logging.getLogger("liquidlfm.server")


@dataclasses.dataclass
class ServerSettings:
    """model_name: the id clients pass as `model` (aliases: other accepted ids, e.g. the path given
    on the command line); api_key: required as `Authorization: Bearer KEY` on /v1/* when set;
    max_queue: sequences that may wait for a free engine sequence (beyond the n_seq running) before
    requests get 429; max_request_bytes: largest request body (413 above); shutdown_timeout:
    seconds in-flight requests get to finish after SIGINT/SIGTERM before they are cancelled."""

    model_name: str
    aliases: Sequence[str] = ()
    api_key: Optional[str] = None
    max_queue: int = 64
    max_request_bytes: int = 1 << 20
    shutdown_timeout: float = 10.0


class ServerState:
    """What the routes share: the model and engine, admission counters, the jobs in flight, and
    whether the server is draining for shutdown."""

    def __init__(self, model, engine, settings: ServerSettings):
        self.model, self.engine, self.settings = model, engine, settings
        self.tokenizer = model.tokenizer
        if self.tokenizer is None:
            raise ValueError("the model has no tokenizer; the server needs one to read prompts")
        self.n_vocab = model.config.n_vocab
        self.n_seq = engine.n_seq
        self.n_ctx = engine.n_ctx
        self.capacity = engine.n_seq + settings.max_queue
        self.created = int(time.time())
        self.names = {settings.model_name, *settings.aliases}
        self.admitted = 0                 # sequences of admitted jobs (running or waiting in the engine)
        self.jobs: Set["_Job"] = set()
        self.draining = False
        self.tool_ids = self._single_ids(TOOL_CALL_START, TOOL_CALL_END)
        # a template that renders assistant tool_calls itself gets them; LFM2's shipped one ignores
        # the field, so the calls are written into the content as the model wrote them
        self.template_renders_tool_calls = "tool_calls" in (model.chat_template or "")

    def _single_ids(self, *texts) -> Optional[tuple]:
        ids = []
        for t in texts:
            enc = self.tokenizer.encode(t, add_special_tokens=False, parse_special=True)
            if len(enc) != 1:
                return None
            ids.append(enc[0])
        return tuple(ids)

    def begin_drain(self) -> None:
        self.draining = True

    def cancel_all(self) -> None:
        for job in list(self.jobs):
            job.cancel(reason="shutdown")

    def health(self) -> dict:
        return {"status": "ok", "model": self.settings.model_name, "n_seq": self.n_seq, "n_ctx": self.n_ctx,
                "active": self.engine.n_active, "queued": self.engine.n_queued, "requests": len(self.jobs),
                "sequences_admitted": self.admitted, "max_queue": self.settings.max_queue,
                "steps": self.engine.steps, "tokens_decoded": self.engine.tokens_decoded}


# ---- jobs: the engine requests of one HTTP request ----

class _Job:
    """The engine requests of one HTTP request, seen from the event loop as (choice index, chunk)
    events; chunk None means the engine failed that request (its result() raises the error)."""

    def __init__(self, state: ServerState, n_sequences: int):
        self.state = state
        self.loop = asyncio.get_running_loop()
        self.events: asyncio.Queue = asyncio.Queue()
        self.requests: list = []
        self.n_sequences = n_sequences
        self.open = 0
        self.cancel_reason: Optional[str] = None

    def _post(self, index: int, chunk) -> None:  # engine thread
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, (index, chunk))
        except RuntimeError:  # the event loop is closed: nobody is listening any more
            pass

    def submit(self, ids: List[int], n: int, **kw) -> None:
        first = len(self.requests)
        callbacks = [partial(self._post, first + i) for i in range(n)]
        try:
            reqs = self.state.engine.submit_n(ids, n, on_chunk=callbacks, **kw)
        except ContextFullError as e:
            raise bad_request(str(e), code="context_length_exceeded") from None
        except queue_mod.Full:
            raise APIError(429, "The server's queue is full; retry later.", code="queue_full",
                           headers={"Retry-After": "1"}) from None
        except (ValueError, TypeError) as e:
            raise bad_request(str(e)) from None
        except RuntimeError as e:  # EngineClosed
            raise APIError(503, f"The server is shutting down ({e}).", code="shutting_down") from None
        self.requests.extend(reqs)
        self.open += n

    async def next_event(self):
        """The next (index, chunk); after each request's last chunk (or failure) that request is closed."""
        index, chunk = await self.events.get()
        if chunk is None or chunk.finish_reason is not None:
            self.open -= 1
        return index, chunk

    def error_of(self, index: int) -> BaseException:
        try:
            self.requests[index].result(timeout=0)
        except BaseException as e:  # the request's own failure
            return e
        return RuntimeError("generation failed")

    def cancel(self, reason: str = "client") -> None:
        if self.cancel_reason is None:
            self.cancel_reason = reason
        for r in self.requests:
            r.cancel()


class _Admission:
    """A job's place in the server: counts its sequences from admission to release()."""

    def __init__(self, state: ServerState, n_sequences: int):
        self.state, self.n = state, n_sequences
        self.job: Optional[_Job] = None

    def __enter__(self) -> _Job:
        s = self.state
        if s.draining:
            raise APIError(503, "The server is shutting down.", code="shutting_down")
        if s.admitted + self.n > s.capacity:
            raise APIError(429, f"The server is busy: {s.admitted} sequences are running or waiting "
                                f"(limit {s.capacity} = {s.n_seq} running + {s.settings.max_queue} queued); "
                                f"retry later.", code="queue_full", headers={"Retry-After": "1"})
        s.admitted += self.n
        self.job = _Job(s, self.n)
        s.jobs.add(self.job)
        return self.job

    def release(self) -> None:
        """Idempotent: the stream's body and the response both call it, whichever ends first."""
        job, self.job = self.job, None
        if job is None:
            return
        job.cancel()  # no-op for finished requests; frees the sequences of abandoned ones
        self.state.jobs.discard(job)
        self.state.admitted -= self.n

    def __exit__(self, *exc) -> None:
        self.release()


# ---- what a request asks for ----

@dataclasses.dataclass
class _Plan:
    """A validated request, ready to submit: prompts (token ids), per-prompt max_tokens, the engine
    keyword arguments, and what shapes the answer."""

    kind: str                                   # "chat" | "completion"
    prompts: List[List[int]]
    max_tokens: List[int]
    n: int
    engine_kw: Dict[str, Any]
    stream: bool
    include_usage: bool
    echo: List[str] = dataclasses.field(default_factory=list)   # completions: prompt texts to prepend
    tools: bool = False                         # parse LFM2 tool calls out of the reply
    parallel_tool_calls: bool = True
    constraint: Any = None                      # a Constraint every choice of every prompt follows


def _max_tokens(state: ServerState, n_prompt: int, asked: Optional[int], param: str) -> int:
    """OpenAI's rule: prompt + max_tokens must fit in the context; unset, max_tokens is what is left."""
    if n_prompt >= state.n_ctx:
        raise context_length_exceeded(state.n_ctx, n_prompt, None, param)
    if asked is None:
        return state.n_ctx - n_prompt
    if n_prompt + asked > state.n_ctx:
        raise context_length_exceeded(state.n_ctx, n_prompt, asked, param)
    return asked


def _check_n(state: ServerState, n: int, n_prompts: int = 1) -> None:
    if n > state.n_seq:
        raise bad_request(f"Invalid value for 'n': at most {state.n_seq} (the server's parallel sequences), got {n}.",
                          "n", "invalid_value")
    if n * n_prompts > state.capacity:
        raise bad_request(f"{n_prompts} prompts x n={n} need {n * n_prompts} sequences; this server admits at most "
                          f"{state.capacity} at once.", "prompt", "invalid_value")


def _chat_messages(state: ServerState, req: ChatRequest) -> List[dict]:
    out = []
    for i, m in enumerate(req.messages):
        where = f"messages[{i}].content"
        text = message_text(m.content, where, allow_null=m.role == "assistant" and bool(m.tool_calls))
        msg: Dict[str, Any] = {"role": "system" if m.role == "developer" else m.role, "content": text}
        if m.name is not None:
            msg["name"] = m.name
        if m.tool_call_id is not None:
            msg["tool_call_id"] = m.tool_call_id
        if m.role == "assistant" and m.tool_calls:
            calls = [c.model_dump() for c in m.tool_calls]
            if state.template_renders_tool_calls:
                rendered = []
                for j, c in enumerate(calls):
                    try:
                        args = json.loads(c["function"]["arguments"] or "{}")
                    except ValueError:
                        raise bad_request("Invalid value for 'arguments': not valid JSON.",
                                          f"messages[{i}].tool_calls[{j}].function.arguments", "invalid_value") from None
                    rendered.append({"id": c["id"], "type": "function",
                                     "function": {"name": c["function"]["name"], "arguments": args}})
                msg["tool_calls"] = rendered
            else:
                try:
                    msg["content"] = format_tool_calls(calls) + text
                except ValueError as e:
                    raise bad_request(f"Invalid value in 'messages[{i}]': {e}.", f"messages[{i}].tool_calls",
                                      "invalid_value") from None
        out.append(msg)
    return out


def _tool_choice(req: ChatRequest):
    """-> "none" | "auto" | "required" | a function name."""
    tc = req.tool_choice
    if tc is None:
        return "auto" if req.tools else "none"
    if isinstance(tc, str) and tc in ("none", "auto", "required"):
        choice = tc
    elif (isinstance(tc, dict) and tc.get("type") == "function" and isinstance(tc.get("function"), dict)
          and isinstance(tc["function"].get("name"), str)):
        choice = tc["function"]["name"]
    else:
        raise bad_request("Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or "
                          "{\"type\": \"function\", \"function\": {\"name\": ...}}.", "tool_choice", "invalid_value")
    if choice != "none" and not req.tools:
        raise bad_request("Invalid value for 'tool_choice': tool_choice needs 'tools'.", "tool_choice",
                          "invalid_value")
    if choice not in ("none", "auto", "required") and choice not in [t.function.name for t in req.tools]:
        raise bad_request(f"Invalid value for 'tool_choice': no tool named {choice!r} in 'tools'.", "tool_choice",
                          "invalid_value")
    return choice


def _encode(state: ServerState, text: str, bos: bool) -> List[int]:
    return list(state.tokenizer.encode(text, add_special_tokens=bos, parse_special=True))


def _constraint(state: ServerState, build, param: str):
    """A Constraint from build(tokenizer, **kw); 400 naming param when the grammar or schema is bad
    or llguidance is not installed."""
    try:
        return build(state.tokenizer, stop_ids=state.model.stop_token_ids,
                     n_vocab=max(state.n_vocab, state.tokenizer.vocab_size))
    except ImportError as e:
        raise bad_request(f"Structured output is not available on this server: {e}", param,
                          "unsupported_parameter") from None
    except (ValueError, TypeError) as e:
        raise bad_request(f"Invalid value for '{param}': {e}", param, "invalid_value") from None


def _response_format(state: ServerState, response_format: Optional[dict]):
    """The Constraint of OpenAI's response_format (json_object, json_schema; liquidlfm's regex and
    grammar too), or None for text."""
    if response_format is None:
        return None
    from ..generation.constrain import Constraint

    return _constraint(state, lambda tok, **kw: Constraint.from_response_format(tok, response_format, **kw),
                       "response_format")


def plan_chat(state: ServerState, req: ChatRequest) -> _Plan:
    """Render, tokenize and check a chat request (runs in a worker thread: templates, tokenizing and
    grammar compilation are CPU work)."""
    reject_unsupported(req)
    _check_n(state, req.n)
    messages = _chat_messages(state, req)
    choice = _tool_choice(req)
    tools = [t.function.model_dump(exclude_none=True) for t in req.tools] if req.tools else None
    if tools and choice != "none" and state.tool_ids is None:
        raise bad_request("This model's tokenizer has no <|tool_call_start|>/<|tool_call_end|> tokens; it cannot "
                          "call tools.", "tools", "invalid_value")
    try:
        text = state.model.apply_chat_template(messages, tools=tools, add_generation_prompt=True)
    except (TypeError, ValueError) as e:
        raise bad_request(f"The conversation could not be rendered with the model's chat template: {e}",
                          "messages") from None
    except Exception as e:  # jinja2.TemplateError from the template's raise_exception(...)
        if type(e).__module__.startswith("jinja2"):
            raise bad_request(f"The model's chat template rejected the conversation: {e}", "messages") from None
        raise
    ids = _encode(state, text, bos=False)
    kw = sampling_kwargs(req, state.n_vocab)
    asked = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    max_tokens = _max_tokens(state, len(ids), asked, "messages")
    kw["stop"] = stop_list(req.stop) or None
    parallel = req.parallel_tool_calls is not False
    constraint = _response_format(state, req.response_format)
    if tools and choice not in ("none", "auto"):
        # required / a named function: the whole reply is a call list, held to the tools' schemas
        if constraint is not None:
            raise bad_request("response_format and a forced tool call (tool_choice) cannot both shape the reply.",
                              "tool_choice", "invalid_value")
        from ..generation.constrain import Constraint

        chosen = tools if choice == "required" else [t for t in tools if t["name"] == choice]
        start_id, end_id = state.tool_ids
        try:
            grammar = tool_call_grammar(chosen, start_id, end_id, parallel)
        except ValueError as e:
            raise bad_request(f"Invalid value for 'tools': {e}.", "tools", "invalid_value") from None
        constraint = _constraint(state, lambda tok, **kw: Constraint.grammar(tok, grammar, **kw), "tools")
    elif tools and choice == "none":  # the model sees the tools but may not call them
        bias = dict(kw.get("logit_bias") or {})
        bias[state.tool_ids[0]] = float("-inf")
        kw["logit_bias"] = bias
    return _Plan("chat", [ids], [max_tokens], req.n, kw, req.stream,
                 bool(req.stream_options and req.stream_options.include_usage),
                 tools=bool(tools) and choice != "none", parallel_tool_calls=parallel, constraint=constraint)


def plan_completion(state: ServerState, req: CompletionRequest) -> _Plan:
    reject_unsupported(req)
    prompts = prompt_list(req.prompt)
    _check_n(state, req.n, len(prompts))
    all_ids, max_tokens, echo = [], [], []
    for p in prompts:
        if isinstance(p, str):
            ids = _encode(state, p, bos=True)
            text = p
        else:
            bad = [t for t in p if not 0 <= t < state.n_vocab]
            if bad:
                raise bad_request(f"Invalid value for 'prompt': token id {bad[0]} is not in [0, {state.n_vocab}).",
                                  "prompt", "invalid_value")
            ids = list(p)
            text = state.tokenizer.decode(ids) if req.echo else ""
        if not ids:
            raise bad_request("Invalid value for 'prompt': the prompt is empty.", "prompt", "invalid_value")
        all_ids.append(ids)
        max_tokens.append(_max_tokens(state, len(ids), req.max_tokens, "prompt"))
        echo.append(text if req.echo else "")
    kw = sampling_kwargs(req, state.n_vocab)
    kw["stop"] = stop_list(req.stop) or None
    return _Plan("completion", all_ids, max_tokens, req.n, kw, req.stream,
                 bool(req.stream_options and req.stream_options.include_usage), echo=echo,
                 constraint=_response_format(state, req.response_format))


# ---- answering ----

class _Choice:
    """One choice's output as it is generated: content text, tool calls, finish reason, token count."""

    def __init__(self, state: ServerState, plan: _Plan, index: int):
        self.index = index
        self.plan = plan
        self.splitter = None
        self.calls = []
        self.finish: Optional[str] = None
        self.completion_tokens = 0
        self.content: List[str] = []
        if plan.tools:
            start_id, end_id = state.tool_ids
            self.splitter = ToolCallSplitter(start_id, end_id, lambda ids: state.tokenizer.decode(ids))

    def feed(self, chunk):
        """-> (new content text, new tool calls) of one chunk; sets finish at the last one."""
        text, calls = chunk.text, []
        if self.splitter is not None:
            text, calls = self.splitter.feed(chunk.text, chunk.token_ids)
        if chunk.finish_reason is not None:
            if self.splitter is not None:
                text += self.splitter.finish()
            self.completion_tokens = chunk.stats.generated_tokens
        if calls and not self.plan.parallel_tool_calls:
            calls = calls[:max(0, 1 - len(self.calls))]
        self.calls.extend(calls)
        self.content.append(text)
        if chunk.finish_reason is not None:
            self.finish = chunk.finish_reason
            if self.calls and self.finish == "stop":
                self.finish = "tool_calls"
        return text, calls


def _completion_id(kind: str) -> str:
    return ("chatcmpl-" if kind == "chat" else "cmpl-") + secrets.token_hex(12)


def _usage(plan: _Plan, choices: List[_Choice]) -> dict:
    prompt = sum(len(p) for p in plan.prompts)
    completion = sum(c.completion_tokens for c in choices)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _choices(state: ServerState, plan: _Plan) -> List[_Choice]:
    return [_Choice(state, plan, i) for i in range(len(plan.prompts) * plan.n)]


def _submit_all(job: _Job, plan: _Plan) -> None:
    for ids, mt in zip(plan.prompts, plan.max_tokens):
        # the engine gives each generation its own copy of the constraint
        job.submit(ids, plan.n, max_tokens=mt, constraint=plan.constraint, **plan.engine_kw)


def _engine_error(job: _Job, index: int) -> APIError:
    e = job.error_of(index)
    log.error("generation failed: %s: %s", type(e).__name__, e)
    return APIError(500, f"The generation failed: {type(e).__name__}: {e}", code="internal_error")


def _cancelled_error(job: _Job) -> APIError:
    if job.cancel_reason == "shutdown":
        return APIError(503, "The server is shutting down; the generation was cancelled.", code="shutting_down")
    return APIError(500, "The generation was cancelled.", code="cancelled")


async def _wait_disconnect(request: Request) -> None:
    """Returns when the client has gone away (the request body is already read)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def _run_json(request: Request, state: ServerState, plan: _Plan, job: _Job, model: str) -> Response:
    choices = _choices(state, plan)
    watcher = asyncio.ensure_future(_wait_disconnect(request))
    try:
        while job.open:
            getter = asyncio.ensure_future(job.next_event())
            done, _ = await asyncio.wait({getter, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:  # the client left: nobody will read the answer
                getter.cancel()
                job.cancel()
                return Response(status_code=499)
            index, chunk = getter.result()
            if chunk is None:
                job.cancel()
                raise _engine_error(job, index)
            choices[index].feed(chunk)
            if chunk.finish_reason == "cancelled":
                job.cancel()
                raise _cancelled_error(job)
    finally:
        watcher.cancel()
    created = int(time.time())
    if plan.kind == "chat":
        out = []
        for c in choices:
            content = "".join(c.content)
            message: Dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
            if c.calls:
                message["tool_calls"] = [t.as_openai() for t in c.calls]
                if not content.strip():
                    message["content"] = None
            out.append({"index": c.index, "message": message, "logprobs": None, "finish_reason": c.finish})
        body = {"id": _completion_id("chat"), "object": "chat.completion", "created": created, "model": model,
                "choices": out, "usage": _usage(plan, choices)}
    else:
        out = [{"text": plan.echo[c.index // plan.n] + "".join(c.content), "index": c.index, "logprobs": None,
                "finish_reason": c.finish} for c in choices]
        body = {"id": _completion_id("completion"), "object": "text_completion", "created": created, "model": model,
                "choices": out, "usage": _usage(plan, choices)}
    return JSONResponse(body)


def _sse(obj) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


async def _stream_events(state: ServerState, plan: _Plan, job: _Job, admission: _Admission, model: str):
    """The SSE body. Closing it (client gone, or shutdown) cancels the job's engine requests."""
    try:
        choices = _choices(state, plan)
        cid, created = _completion_id(plan.kind), int(time.time())
        usage_field = {"usage": None} if plan.include_usage else {}
        if plan.kind == "chat":
            obj = "chat.completion.chunk"

            def frame(choice_list):
                return _sse({"id": cid, "object": obj, "created": created, "model": model, "choices": choice_list,
                             **usage_field})

            for c in choices:
                yield frame([{"index": c.index, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                              "finish_reason": None}])
        else:
            obj = "text_completion"

            def frame(choice_list):
                return _sse({"id": cid, "object": obj, "created": created, "model": model, "choices": choice_list,
                             **usage_field})

            for c in choices:
                if plan.echo[c.index // plan.n]:
                    yield frame([{"text": plan.echo[c.index // plan.n], "index": c.index, "logprobs": None,
                                  "finish_reason": None}])
        while job.open:
            index, chunk = await job.next_event()
            if chunk is None:
                job.cancel()
                yield _sse(_engine_error(job, index).body())
                yield b"data: [DONE]\n\n"
                return
            c = choices[index]
            text, calls = c.feed(chunk)
            if chunk.finish_reason == "cancelled":
                job.cancel()
                yield _sse(_cancelled_error(job).body())
                yield b"data: [DONE]\n\n"
                return
            if plan.kind == "chat":
                if text:
                    yield frame([{"index": index, "delta": {"content": text}, "logprobs": None, "finish_reason": None}])
                if calls:
                    first = len(c.calls) - len(calls)
                    yield frame([{"index": index, "delta": {"tool_calls": [t.as_openai(first + k) for k, t in
                                                                           enumerate(calls)]},
                                  "logprobs": None, "finish_reason": None}])
                if c.finish is not None:
                    yield frame([{"index": index, "delta": {}, "logprobs": None, "finish_reason": c.finish}])
            elif text or c.finish is not None:
                yield frame([{"text": text, "index": index, "logprobs": None, "finish_reason": c.finish}])
        if plan.include_usage:
            yield _sse({"id": cid, "object": obj, "created": created, "model": model, "choices": [],
                        "usage": _usage(plan, choices)})
        yield b"data: [DONE]\n\n"
    finally:
        admission.release()


class _EventStream(StreamingResponse):
    """An SSE response that always listens for the client's disconnect while streaming (Starlette
    does so only for ASGI < 2.4) and then stops the body, whose finally cancels the engine requests:
    a request still waiting in the engine's queue produces nothing to write, so a failed write
    alone would never notice."""

    media_type = "text/event-stream"

    def __init__(self, content, on_close, **kw):
        super().__init__(content, **kw)
        self.on_close = on_close

    async def __call__(self, scope, receive, send) -> None:
        try:
            async with anyio.create_task_group() as tg:
                async def stream_then_stop():
                    try:
                        await self.stream_response(send)
                    except OSError:
                        pass
                    tg.cancel_scope.cancel()

                tg.start_soon(stream_then_stop)
                await self.listen_for_disconnect(receive)
                tg.cancel_scope.cancel()
        finally:
            # the body's own finally does this too, but a body cancelled before its first step
            # never runs it
            self.on_close()


async def _answer(request: Request, state: ServerState, plan: _Plan, model: str) -> Response:
    admission = _Admission(state, len(plan.prompts) * plan.n)
    job = admission.__enter__()
    try:
        _submit_all(job, plan)
        if plan.stream:
            body = _stream_events(state, plan, job, admission, model)
            response = _EventStream(body, admission.release,
                                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
            admission = None  # the response releases it when the stream ends
            return response
        return await _run_json(request, state, plan, job, model)
    finally:
        if admission is not None:
            admission.release()


# ---- the request pipeline ----

async def _read_json(request: Request, limit: int):
    """The body as JSON: 413 past limit bytes (declared or counted), 400 if it is not JSON."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise APIError(413, f"The request body is {declared} bytes; this server takes at most {limit}.",
                       code="request_too_large")
    buf = bytearray()
    try:
        async for part in request.stream():
            buf += part
            if len(buf) > limit:
                raise APIError(413, f"The request body is larger than {limit} bytes, this server's limit.",
                               code="request_too_large")
    except ClientDisconnect:
        raise APIError(400, "The client disconnected while sending the request.") from None
    try:
        return json.loads(buf)
    except (ValueError, RecursionError):
        raise bad_request("We could not parse the JSON body of your request. The body must be a JSON object.",
                          code="invalid_json") from None


def _check_model(state: ServerState, body) -> str:
    if isinstance(body, dict) and isinstance(body.get("model"), str) and body["model"] not in state.names:
        raise APIError(404, f"The model `{body['model']}` does not exist or you do not have access to it.",
                       param="model", code="model_not_found")
    return state.settings.model_name


class _Gate:
    """ASGI middleware in front of every route: 503 while draining, 401 without the API key."""

    def __init__(self, app, state: ServerState):
        self.app, self.state = app, state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        s = self.state
        if s.draining:
            return await APIError(503, "The server is shutting down.", code="shutting_down").response()(
                scope, receive, send)
        key = s.settings.api_key
        if key and scope["path"].startswith("/v1"):
            auth = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            m = re.match(r"(?i)bearer\s+(.+)", auth.strip())
            if m is None or not hmac.compare_digest(m.group(1).strip().encode(), key.encode()):
                msg = ("You didn't provide an API key. Provide it as 'Authorization: Bearer YOUR_KEY'."
                       if m is None else "Incorrect API key provided.")
                return await APIError(401, msg, code="invalid_api_key",
                                      headers={"WWW-Authenticate": "Bearer"}).response()(scope, receive, send)
        return await self.app(scope, receive, send)


def create_app(model, engine, settings: ServerSettings) -> FastAPI:
    """The ASGI app serving model through engine (a BatchEngine, started and closed by the app's
    lifespan). app.state.server is the ServerState (drain, cancel, counters)."""
    state = ServerState(model, engine, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        engine.start()
        try:
            yield
        finally:
            state.begin_drain()
            state.cancel_all()
            await run_in_threadpool(engine.close)

    app = FastAPI(title="liquidlfm", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.server = state

    @app.exception_handler(APIError)
    async def _api_error(request, exc: APIError):
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, exc: StarletteHTTPException):
        if exc.status_code == 404:
            msg = f"Invalid URL ({request.method} {request.url.path})"
        elif exc.status_code == 405:
            msg = f"Method {request.method} is not allowed for {request.url.path}"
        else:
            msg = str(exc.detail)
        return APIError(exc.status_code, msg, headers=getattr(exc, "headers", None)).response()

    @app.exception_handler(Exception)
    async def _internal_error(request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return APIError(500, f"Internal server error: {type(exc).__name__}", code="internal_error").response()

    @app.get("/health")
    async def health():
        return state.health()

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [_model_card(state)]}

    @app.get("/v1/models/{model_id:path}")
    async def model_info(model_id: str):
        if model_id not in state.names:
            raise APIError(404, f"The model `{model_id}` does not exist or you do not have access to it.",
                           param="model", code="model_not_found")
        return _model_card(state)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        body = await _read_json(request, settings.max_request_bytes)
        req = validate_request(ChatRequest, body)
        name = _check_model(state, body)
        plan = await run_in_threadpool(plan_chat, state, req)
        return await _answer(request, state, plan, name)

    @app.post("/v1/completions")
    async def completions(request: Request):
        body = await _read_json(request, settings.max_request_bytes)
        req = validate_request(CompletionRequest, body)
        name = _check_model(state, body)
        plan = await run_in_threadpool(plan_completion, state, req)
        return await _answer(request, state, plan, name)

    app.add_middleware(_Gate, state=state)
    return app


def _model_card(state: ServerState) -> dict:
    return {"id": state.settings.model_name, "object": "model", "created": state.created, "owned_by": "liquidlfm",
            "max_model_len": state.n_ctx}
