"""Sampling parameters: the defaults (the model's generation_config, else Liquid's recommendation for
LFM2), validation of the user's values, and the engine's Sampler built from them."""
from __future__ import annotations

import dataclasses
import os
from typing import Dict, Optional, Sequence

import numpy as np

__all__ = ["SamplingParams", "resolve_sampling", "make_sampler", "resolve_max_tokens", "RECOMMENDED_SAMPLING",
           "DEFAULT_MAX_TOKENS", "SAMPLING_ARGS"]

# Liquid's recommended sampling for LFM2 (model cards; docs/architecture.md §8).
RECOMMENDED_SAMPLING = {"temperature": 0.3, "min_p": 0.15, "repetition_penalty": 1.05}
DEFAULT_MAX_TOKENS = 512
# the keyword arguments of generate/stream/chat that are sampling parameters
SAMPLING_ARGS = ("temperature", "top_k", "top_p", "min_p", "repetition_penalty", "presence_penalty",
                 "frequency_penalty", "penalty_last_n", "logit_bias", "seed")


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


def _number(name, v, kind=float):
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
        temperature=_number("temperature", p.get("temperature", 1.0)),
        top_k=_number("top_k", p.get("top_k", 0), int),
        top_p=_number("top_p", p.get("top_p", 1.0)),
        min_p=_number("min_p", p.get("min_p", 0.0)),
        repetition_penalty=_number("repetition_penalty", p.get("repetition_penalty", 1.0)),
        presence_penalty=_number("presence_penalty", p.get("presence_penalty", 0.0)),
        frequency_penalty=_number("frequency_penalty", p.get("frequency_penalty", 0.0)),
        penalty_last_n=_number("penalty_last_n", p.get("penalty_last_n", -1), int),
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


def resolve_max_tokens(max_tokens, generation_config: Optional[dict]) -> int:
    """max_tokens, else the generation_config's max_new_tokens, else DEFAULT_MAX_TOKENS; checked."""
    if max_tokens is None:
        max_tokens = (generation_config or {}).get("max_new_tokens") or DEFAULT_MAX_TOKENS
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, (int, np.integer)):
        raise TypeError(f"max_tokens must be an int, got {type(max_tokens).__name__}")
    if max_tokens < 0:
        raise ValueError(f"max_tokens must be >= 0, got {max_tokens}")
    return int(max_tokens)


def make_sampler(n_vocab: int, sp: SamplingParams, ban: Sequence[int] = ()):
    """The engine's Sampler for sp; ids in ban get a -inf bias. Raises ValueError for bad values."""
    from .._core import Sampler

    seed = sp.seed
    if seed is None:
        seed = int.from_bytes(os.urandom(8), "little")
    bias = {int(k): float(v) for k, v in (sp.logit_bias or {}).items()}
    for t in ban:
        bias.setdefault(int(t), float("-inf"))
    return Sampler(
        n_vocab, temperature=sp.temperature, top_k=sp.top_k, top_p=sp.top_p, min_p=sp.min_p,
        repetition_penalty=sp.repetition_penalty, presence_penalty=sp.presence_penalty,
        frequency_penalty=sp.frequency_penalty, penalty_last_n=sp.penalty_last_n, seed=seed,
        logit_bias=bias or None,
    )
