"""How Scholar talks to a language model: the Protocols it accepts and one text-completion helper.

A model is either a liquidlfm Model (or anything with the same generation API: GenerationModel) or a
plain callable generator(prompt, max_tokens=...) -> str (TextGenerator). Reranking reads logits and
also accepts a model with tokenizer + session() (SessionScorer) or tokenizer + forward() (ForwardScorer);
see rerank.py. Prompts are never truncated: one longer than the model's context raises
liquidlfm.ContextFullError.

Structured output: the steps whose answer is parsed (themes, keyphrases, citations in paragraphs)
constrain a liquidlfm model's output with response_format (a JSON schema or a grammar, see
liquidlfm/generation/constrain.py), so the answer always parses; other generators (plain callables,
test doubles) are asked in free text and parsed leniently, as before.
"""
from __future__ import annotations

import json
from typing import List, Optional, Protocol, Sequence, runtime_checkable

import numpy as np

__all__ = ["TextGenerator", "ChatPrompting", "GenerationModel", "ScoringTokenizer", "SessionScorer",
           "ForwardScorer", "generate_text", "generate_json", "supports_structured_output", "json_max_tokens",
           "render_chat", "abstract_snippet"]


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


def abstract_snippet(text: str, max_words: int = 90) -> str:
    """The first max_words words of an abstract (" …" when cut)."""
    w = text.split()
    return " ".join(w[:max_words]) + (" …" if len(w) > max_words else "")


def _messages(user: str, system: Optional[str]) -> list:
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]


def render_chat(model, user: str, system: Optional[str] = None) -> Optional[str]:
    """The chat-formatted prompt text, or None if the model has no chat template."""
    if isinstance(model, ChatPrompting) and model.chat_template:
        return model.apply_chat_template(_messages(user, system), add_generation_prompt=True)
    return None


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


def generate_text(model, user: str, *, system: Optional[str] = None, max_tokens: int = 256,
                  temperature: float = 0.0, seed: Optional[int] = 0, response_format: Optional[dict] = None) -> str:
    """One completion: model.chat (when it has a chat template) or model.generate for a
    GenerationModel, else a TextGenerator called as generator(prompt, max_tokens=...).
    response_format (only for models where supports_structured_output) constrains the answer.
    A prompt longer than the model's context raises liquidlfm.ContextFullError."""
    if isinstance(model, GenerationModel):
        kw = {"max_tokens": max_tokens, "temperature": temperature}
        if seed is not None:
            kw["seed"] = seed
        if response_format is not None:
            kw["response_format"] = response_format
        if model.chat_template:
            return str(model.chat(_messages(user, system), **kw))
        return str(model.generate((system + "\n\n" if system else "") + user + "\n", **kw))
    if isinstance(model, TextGenerator):
        return str(model(user if system is None else f"{system}\n\n{user}", max_tokens=max_tokens))
    raise TypeError(f"{type(model).__name__} is neither a model with generate()/chat() nor a callable "
                    "generator(prompt, max_tokens=...)")


def generate_json(model, user: str, schema: dict, max_bytes: int, *, system: Optional[str] = None,
                  temperature: float = 0.0, seed: Optional[int] = 0):
    """The model's answer as JSON valid under schema, generated under that schema (the caller checks
    supports_structured_output first). max_bytes: the longest answer the schema allows, so the
    answer always completes (json_max_tokens). Returns the parsed value, or None when the answer
    was cut anyway (the context filled up)."""
    text = generate_text(model, user, system=system, max_tokens=json_max_tokens(max_bytes), temperature=temperature,
                         seed=seed, response_format={"type": "json_schema",
                                                     "json_schema": {"name": "answer", "schema": schema,
                                                                     "strict": True}})
    try:
        return json.loads(text)
    except ValueError:
        return None
