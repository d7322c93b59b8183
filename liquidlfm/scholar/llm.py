"""How Scholar talks to a language model: the Protocols it accepts and one text-completion helper.

A model is either a liquidlfm Model (or anything with the same generation API: GenerationModel) or a
plain callable generator(prompt, max_tokens=...) -> str (TextGenerator). Reranking reads logits and
also accepts a model with tokenizer + session() (SessionScorer) or tokenizer + forward() (ForwardScorer);
see rerank.py. Prompts are never truncated by the engine: PromptMeter measures each one as it will be
sent and fits it to the context (budget.py), and one that cannot fit raises liquidlfm.ContextFullError.

Structured output: the steps whose answer is parsed (themes, keyphrases, citations in paragraphs)
constrain a liquidlfm model's output with response_format (a JSON schema or a grammar, see
liquidlfm/generation/constrain.py), so the answer always parses; other generators (plain callables,
test doubles) are asked in free text and parsed leniently. A JSON answer's token bound
(json_max_tokens) is the max_tokens its prompt is fitted with, like any other answer's.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from typing import Callable, List, Optional, Protocol, Sequence, runtime_checkable

import numpy as np

from .budget import DEFAULT_MARGIN, MIN_EXCERPT_WORDS, ContextBudget, FittedPrompt, fit_prompt

__all__ = ["TextGenerator", "ChatPrompting", "GenerationModel", "ScoringTokenizer", "SessionScorer",
           "ForwardScorer", "generate_text", "generate_json", "supports_structured_output", "json_max_tokens",
           "json_schema_format", "render_chat", "model_context", "open_session", "PromptMeter", "generate_texts",
           "without_chat_template"]


@runtime_checkable
class TextGenerator(Protocol):
    """Any callable generator: generator(prompt, max_tokens=...) -> str."""

    def __call__(self, prompt: str, max_tokens: int = ...) -> str: ...


@runtime_checkable
class ChatPrompting(Protocol):
    """A model that can render its chat template (chat_template None: a base model)."""

    chat_template: Optional[str]

    def apply_chat_template(self, messages, tools=None, add_generation_prompt: bool = True, **kwargs) -> str: ...


@runtime_checkable
class GenerationModel(Protocol):
    """liquidlfm.Model's generation API, as Scholar uses it."""

    chat_template: Optional[str]

    def generate(self, prompt, max_tokens: Optional[int] = None, **kwargs) -> str: ...

    def chat(self, messages, tools=None, stream: bool = False, max_tokens: Optional[int] = None, **kwargs): ...


class ScoringTokenizer(Protocol):
    def encode(self, text: str, add_special_tokens: bool = True, parse_special: bool = True) -> List[int]: ...


class ScoringSession(Protocol):
    n_ctx: int

    def prefill(self, ids: Sequence[int]) -> np.ndarray: ...

    def reset(self) -> None: ...

    def save(self) -> bytes: ...

    def load(self, blob) -> None: ...

    def __enter__(self) -> "ScoringSession": ...

    def __exit__(self, *exc) -> None: ...


@runtime_checkable
class SessionScorer(Protocol):
    """Logits through a decoding session (liquidlfm.Model)."""

    tokenizer: Optional[ScoringTokenizer]

    def session(self, n_ctx: Optional[int] = None) -> ScoringSession: ...


@runtime_checkable
class ForwardScorer(Protocol):
    """Logits of a whole sequence at once: forward(ids) -> [len(ids), n_vocab]."""

    tokenizer: Optional[ScoringTokenizer]

    def forward(self, ids: Sequence[int]) -> np.ndarray: ...


def model_context(model, n_ctx: Optional[int] = None) -> Optional[int]:
    """The context (in tokens) Scholar's prompts to model run in: n_ctx when given; else the int
    attribute model.n_ctx (how a plain generator tells its context); else the size of a session the
    model opens by default (liquidlfm: min(n_ctx_train, 32768)); else None (unknown: not fitted)."""
    if n_ctx is not None:
        if isinstance(n_ctx, bool) or not isinstance(n_ctx, (int, np.integer)) or n_ctx < 1:
            raise ValueError(f"n_ctx must be a positive int or None, got {n_ctx!r}")
        return int(n_ctx)
    declared = getattr(model, "n_ctx", None)
    if isinstance(declared, (int, np.integer)) and not isinstance(declared, bool) and declared > 0:
        return int(declared)
    if isinstance(model, SessionScorer):
        with open_session(model) as s:
            return int(s.n_ctx)
    return None


@contextmanager
def open_session(model, n_ctx: Optional[int] = None):
    """model.session(n_ctx), closed on exit (sessions that are not context managers too)."""
    s = model.session() if n_ctx is None else model.session(n_ctx=n_ctx)
    try:
        yield s
    finally:
        close = getattr(s, "close", None)
        if close is not None:
            close()


class _WithoutChatTemplate:
    """A GenerationModel whose prompts are sent as written (model.generate, special tokens added),
    never through its chat template: for prompts in a model's own training format (the CiteAgent
    models' instruction/response prompt). Everything else is the wrapped model's."""

    chat_template = None

    def __init__(self, model):
        self._model = model

    def __getattr__(self, name):
        return getattr(self._model, name)

    def generate(self, prompt, max_tokens: Optional[int] = None, **kwargs) -> str:
        return self._model.generate(prompt, max_tokens=max_tokens, **kwargs)

    def chat(self, messages, tools=None, stream: bool = False, max_tokens: Optional[int] = None, **kwargs):
        raise TypeError("this view of the model sends prompts as written; use generate()")


def without_chat_template(model):
    """model, seen as a GenerationModel without a chat template (generate_text then sends a prompt
    as written, plus a newline); a model without one, or a plain generator, is returned as is."""
    if isinstance(model, GenerationModel) and model.chat_template:
        return _WithoutChatTemplate(model)
    return model


def _messages(user: str, system: Optional[str]) -> list:
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]


def render_chat(model, user: str, system: Optional[str] = None) -> Optional[str]:
    """The chat-formatted prompt text, or None if the model has no chat template."""
    if isinstance(model, ChatPrompting) and model.chat_template:
        return model.apply_chat_template(_messages(user, system), add_generation_prompt=True)
    return None


def _plain_prompt(model, user: str, system: Optional[str]) -> str:
    """The text generate_text sends a model without a chat template."""
    if isinstance(model, GenerationModel):
        return (system + "\n\n" if system else "") + user + "\n"
    return user if system is None else f"{system}\n\n{user}"


def _runs_in_session(model) -> bool:
    """Whether model.generate / model.chat take n_ctx= (a liquidlfm Model, or a test double of one)."""
    return isinstance(model, GenerationModel) and callable(getattr(model, "session", None))


def supports_structured_output(model) -> bool:
    """Whether model takes response_format=: a liquidlfm generation model with a tokenizer, and
    llguidance installed (pip install "liquidlfm[structured]"; the scholar extra has it)."""
    from ..generation import GenerationMixin

    if not isinstance(model, GenerationMixin) or getattr(model, "tokenizer", None) is None:
        return False
    try:
        import llguidance  # noqa: F401
    except ImportError:
        return False
    return True


def json_max_tokens(max_bytes: int) -> int:
    """max_tokens that lets a constrained answer of at most max_bytes bytes always complete: every
    token the mask allows is at least one byte, and the stop token follows a complete answer."""
    return max_bytes + 1


def json_schema_format(schema: dict) -> dict:
    """The response_format that constrains an answer to JSON valid under schema."""
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}


def generate_text(model, user: str, *, system: Optional[str] = None, max_tokens: int = 256,
                  temperature: float = 0.0, seed: Optional[int] = 0, n_ctx: Optional[int] = None,
                  response_format: Optional[dict] = None) -> str:
    """One completion: model.chat (when it has a chat template) or model.generate for a
    GenerationModel, else a TextGenerator called as generator(prompt, max_tokens=...).
    n_ctx: the context to run in (a model with sessions is given it; see model_context).
    response_format (only for models where supports_structured_output) constrains the answer.
    A prompt longer than the model's context raises liquidlfm.ContextFullError; fit it first
    (PromptMeter.fit)."""
    if isinstance(model, GenerationModel):
        kw = {"max_tokens": max_tokens, "temperature": temperature}
        if seed is not None:
            kw["seed"] = seed
        if n_ctx is not None and _runs_in_session(model):
            kw["n_ctx"] = n_ctx
        if response_format is not None:
            kw["response_format"] = response_format
        if model.chat_template:
            return str(model.chat(_messages(user, system), **kw))
        return str(model.generate(_plain_prompt(model, user, system), **kw))
    if isinstance(model, TextGenerator):
        return str(model(_plain_prompt(model, user, system), max_tokens=max_tokens))
    raise TypeError(f"{type(model).__name__} is neither a model with generate()/chat() nor a callable "
                    "generator(prompt, max_tokens=...)")


def generate_texts(model, users: Sequence[str], *, system: Optional[str] = None, max_tokens: int = 256,
                   temperature: float = 0.0, seed: Optional[int] = 0, n_ctx: Optional[int] = None,
                   response_formats: Optional[Sequence[Optional[dict]]] = None) -> List[str]:
    """generate_text for several prompts (response_formats: one per prompt, or None). A liquidlfm
    Model generates them together (one batch: Model.generate / Model.chat on a list); anything else
    runs them one after another."""
    users = list(users)
    formats = list(response_formats) if response_formats is not None else [None] * len(users)
    if len(formats) != len(users):
        raise ValueError(f"{len(users)} prompts but {len(formats)} response formats")
    if len(users) > 1 and isinstance(model, GenerationModel) and getattr(model, "supports_batch", False):
        kw = {"max_tokens": max_tokens, "temperature": temperature}
        if seed is not None:
            kw["seed"] = seed
        if n_ctx is not None:
            kw["n_ctx"] = n_ctx
        if any(f is not None for f in formats):
            kw["response_format"] = formats
        if model.chat_template:
            return [str(r) for r in model.chat([_messages(u, system) for u in users], **kw)]
        return [str(r) for r in model.generate([_plain_prompt(model, u, system) for u in users], **kw)]
    return [generate_text(model, u, system=system, max_tokens=max_tokens, temperature=temperature, seed=seed,
                          n_ctx=n_ctx, response_format=f) for u, f in zip(users, formats)]


def generate_json(model, user: str, schema: dict, max_bytes: int, *, system: Optional[str] = None,
                  temperature: float = 0.0, seed: Optional[int] = 0, n_ctx: Optional[int] = None):
    """The model's answer as JSON valid under schema, generated under that schema (the caller checks
    supports_structured_output first). max_bytes: the longest answer the schema allows, so the
    answer always completes within json_max_tokens(max_bytes), which the prompt must leave room for
    (PromptMeter.fit with that max_tokens; PromptMeter.generate_json runs it in the fitted n_ctx).
    Returns the parsed value, or None when the answer was cut anyway (the context filled up)."""
    text = generate_text(model, user, system=system, max_tokens=json_max_tokens(max_bytes), temperature=temperature,
                         seed=seed, n_ctx=n_ctx, response_format=json_schema_format(schema))
    try:
        return json.loads(text)
    except ValueError:
        return None


class PromptMeter:
    """Measures a prompt in the model's tokens exactly as generate_text() sends it, and fits prompts to
    the model's context (n_ctx: see model_context). A model that tells neither its tokenizer nor its
    context (a plain generator without .tokenizer / .n_ctx) cannot be measured: its prompts are sent
    as built."""

    def __init__(self, model, n_ctx: Optional[int] = None):
        self.model = model
        self.n_ctx = model_context(model, n_ctx)
        tok = getattr(model, "tokenizer", None)
        self.tokenizer = tok if callable(getattr(tok, "encode", None)) else None
        self.chat = isinstance(model, GenerationModel) and bool(model.chat_template)

    @property
    def measurable(self) -> bool:
        return (self.n_ctx is not None and self.tokenizer is not None
                and (not self.chat or isinstance(self.model, ChatPrompting)))

    def count(self, user: str, system: Optional[str] = None) -> int:
        """Tokens of the prompt generate_text(model, user, system=system) sends."""
        if not self.measurable:
            raise ValueError(f"cannot measure prompts for {type(self.model).__name__}: it tells no tokenizer "
                             "or no context size")
        tok = self.tokenizer
        if self.chat:       # as GenerationMixin.chat: the rendered template, no special tokens added
            return len(tok.encode(render_chat(self.model, user, system), add_special_tokens=False,
                                  parse_special=True))
        text = _plain_prompt(self.model, user, system)
        if isinstance(self.model, GenerationModel):   # as GenerationMixin.generate: special tokens added
            return len(tok.encode(text, add_special_tokens=True, parse_special=True))
        return len(tok.encode(text))

    def budget(self, max_tokens: int, margin: int = DEFAULT_MARGIN) -> Optional[ContextBudget]:
        return ContextBudget(self.n_ctx, max_tokens, margin) if self.measurable else None

    def fit(self, build: Callable[[List[int], List[str]], str], texts: Sequence[str] = (), *,
            system: Optional[str] = None, max_tokens: int, max_words: int = 0,
            min_words: int = MIN_EXCERPT_WORDS, min_items: int = 1, what: str = "the prompt",
            answer_tokens: Optional[Callable[[int], int]] = None) -> FittedPrompt:
        """budget.fit_prompt for a user prompt sent with this system prompt and max_tokens.
        answer_tokens(n): the answer's max_tokens when the prompt shows n references, for an answer
        whose bound grows with them (a JSON schema over their keys); max_tokens is then its value
        for all of them."""
        count = (lambda user: self.count(user, system)) if self.measurable else None
        return fit_prompt(build, texts, count, self.budget(max_tokens), max_words=max_words,
                          min_words=min_words, min_items=min_items, what=what, answer_tokens=answer_tokens)

    def generate(self, fitted: FittedPrompt, *, system: Optional[str] = None, max_tokens: int,
                 response_format: Optional[dict] = None) -> str:
        """generate_text over a fitted prompt, in the context it was fitted to."""
        return generate_text(self.model, fitted.prompt, system=system, max_tokens=max_tokens, n_ctx=self.n_ctx,
                             response_format=response_format)

    def generate_many(self, fitted: Sequence[FittedPrompt], *, system: Optional[str] = None, max_tokens: int,
                      response_formats: Optional[Sequence[Optional[dict]]] = None) -> List[str]:
        """generate_texts over fitted prompts (together, when the model batches), in their context."""
        return generate_texts(self.model, [f.prompt for f in fitted], system=system, max_tokens=max_tokens,
                              n_ctx=self.n_ctx, response_formats=response_formats)

    def generate_json(self, fitted: FittedPrompt, schema: dict, max_bytes: int, *, system: Optional[str] = None):
        """generate_json over a fitted prompt (fitted with max_tokens json_max_tokens(max_bytes)), in the
        context it was fitted to."""
        return generate_json(self.model, fitted.prompt, schema, max_bytes, system=system, n_ctx=self.n_ctx)
