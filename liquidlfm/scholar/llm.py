"""How Scholar talks to a language model: the Protocols it accepts and one text-completion helper.

A model is either a liquidlfm Model (or anything with the same generation API: GenerationModel) or a
plain callable generator(prompt, max_tokens=...) -> str (TextGenerator). Reranking reads logits and
also accepts a model with tokenizer + session() (SessionScorer) or tokenizer + forward() (ForwardScorer);
see rerank.py. Prompts are never truncated: one longer than the model's context raises
liquidlfm.ContextFullError.
"""
from __future__ import annotations

from typing import List, Optional, Protocol, Sequence, runtime_checkable

import numpy as np

__all__ = ["TextGenerator", "ChatPrompting", "GenerationModel", "ScoringTokenizer", "SessionScorer",
           "ForwardScorer", "generate_text", "render_chat", "abstract_snippet"]


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


def generate_text(model, user: str, *, system: Optional[str] = None, max_tokens: int = 256,
                  temperature: float = 0.0, seed: Optional[int] = 0) -> str:
    """One completion: model.chat (when it has a chat template) or model.generate for a
    GenerationModel, else a TextGenerator called as generator(prompt, max_tokens=...).
    A prompt longer than the model's context raises liquidlfm.ContextFullError."""
    if isinstance(model, GenerationModel):
        kw = {"max_tokens": max_tokens, "temperature": temperature}
        if seed is not None:
            kw["seed"] = seed
        if model.chat_template:
            return str(model.chat(_messages(user, system), **kw))
        return str(model.generate((system + "\n\n" if system else "") + user + "\n", **kw))
    if isinstance(model, TextGenerator):
        return str(model(user if system is None else f"{system}\n\n{user}", max_tokens=max_tokens))
    raise TypeError(f"{type(model).__name__} is neither a model with generate()/chat() nor a callable "
                    "generator(prompt, max_tokens=...)")
