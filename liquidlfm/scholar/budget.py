"""Fitting Scholar's prompts to the model's context.

Every prompt Scholar sends is measured in the model's own tokens and must leave room for the answer:
the prompt may take at most n_ctx - max_tokens - margin tokens (ContextBudget.limit). fit_prompt()
fits a prompt built over ranked references (papers shown with an abstract excerpt, or a title):
first every excerpt is shortened (whole sentences, or whole words when one sentence is already too
long), then the lowest-ranked references are left out. An answer whose bound grows with the
references shown (a JSON answer naming each of their keys) is counted for the references kept, so
leaving references out makes room in both the prompt and the answer. The caller learns which were kept
(FittedPrompt.kept, so the model may cite only those) and gets a line saying what was cut
(FittedPrompt.note). When even the smallest prompt does not fit, ContextFullError names the sizes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Callable, Generic, List, Optional, Sequence, TypeVar

from ..errors import ContextFullError

__all__ = ["ContextBudget", "FittedPrompt", "fit_prompt", "excerpt", "excerpt_lengths",
           "DEFAULT_MARGIN", "MIN_EXCERPT_WORDS"]

DEFAULT_MARGIN = 8          # tokens kept free besides the answer's, for a stop token and rounding
MIN_EXCERPT_WORDS = 20      # the shortest abstract excerpt before references are left out
_SHRINK = 0.7               # each excerpt length is this fraction of the previous one

P = TypeVar("P")


@dataclass(frozen=True)
class ContextBudget:
    """How many tokens a prompt may take: n_ctx - max_tokens (kept for the answer) - margin."""

    n_ctx: int
    max_tokens: int
    margin: int = DEFAULT_MARGIN

    def __post_init__(self):
        if self.n_ctx < 1:
            raise ValueError(f"n_ctx must be at least 1, got {self.n_ctx}")
        if self.max_tokens < 0 or self.margin < 0:
            raise ValueError(f"max_tokens and margin must be >= 0, got {self.max_tokens} and {self.margin}")

    @property
    def limit(self) -> int:
        return self.n_ctx - self.max_tokens - self.margin

    def describe(self) -> str:
        return (f"the model's context holds {self.n_ctx} tokens, {self.max_tokens} of them kept for the "
                f"answer and {self.margin} as margin, which leaves {max(self.limit, 0)} for the prompt")


# ---- excerpts ----

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def excerpt(text: str, max_words: int) -> str:
    """At most max_words words of text, whitespace normalised, " …" appended when cut.

    Whole sentences are kept; when they would leave less than half the allowed words (a first sentence
    longer than that), the text is cut after a whole word instead. Never cuts inside a word."""
    words = text.split()
    if len(words) <= max_words:
        return " ".join(words)
    if max_words <= 0:
        return "…"
    kept, n = [], 0
    for sentence in _SENTENCE_END.split(text.strip()):
        w = sentence.split()
        if n + len(w) > max_words:
            break
        kept.append(" ".join(w))
        n += len(w)
    if 2 * n < max_words:
        return " ".join(words[:max_words]) + " …"
    return " ".join(kept) + " …"


def excerpt_lengths(max_words: int, min_words: int) -> List[int]:
    """The excerpt lengths fit_prompt tries, longest first: max_words, then 70% of the previous one,
    down to min_words (e.g. 110, 77, 53, 37, 25, 20)."""
    if max_words < min_words:
        return [max_words]
    out = [max_words]
    while out[-1] > min_words:
        out.append(max(min_words, int(out[-1] * _SHRINK)))
    return out


# ---- fitting ----

@dataclass
class FittedPrompt(Generic[P]):
    """A prompt that fits its budget, and what was cut to make it fit."""

    prompt: P
    n_tokens: Optional[int]     # None: not measured (the model tells neither its tokenizer nor its context)
    kept: List[int]             # indices of the references in the prompt (into the texts given, in order)
    n_items: int                # references offered
    max_words: int              # excerpt length used
    shortened: int              # excerpts shorter than at the first (longest) length
    budget: Optional[ContextBudget] = None

    @property
    def dropped(self) -> int:
        return self.n_items - len(self.kept)

    def note(self, what: str, noun: str = "abstract excerpts", left_out: Sequence[str] = ()) -> str:
        """One line saying what was shortened or left out to fit (or "" when nothing was).
        left_out: labels of the references that were left out, named in the line."""
        parts = []
        if self.shortened:
            parts.append(f"{self.shortened} of {len(self.kept)} {noun} cut to {self.max_words} words")
        if self.dropped:
            names = f" ({', '.join(left_out)})" if left_out else ""
            parts.append(f"the {self.dropped} lowest-ranked of {self.n_items} left out{names}")
        if not parts or self.budget is None:
            return ""
        return (f"{what}: {', '.join(parts)} to fit the model's {self.budget.n_ctx}-token context "
                f"({self.n_tokens} prompt tokens + {self.budget.max_tokens} for the answer)")


def fit_prompt(build: Callable[[List[int], List[str]], P], texts: Sequence[str],
               count: Optional[Callable[[P], int]], budget: Optional[ContextBudget], *,
               max_words: int, min_words: int = MIN_EXCERPT_WORDS, min_items: int = 1,
               what: str = "the prompt", hint: str = "",
               answer_tokens: Optional[Callable[[int], int]] = None) -> FittedPrompt:
    """The prompt with the most references, then the longest excerpts, that fits the budget.

    texts: the text to excerpt for each reference, best-ranked first (the last ones are left out first).
    build(kept, excerpts) -> prompt: the prompt over the references kept (indices into texts, in
    order) with excerpts[j] the excerpt of texts[kept[j]]. count(prompt) -> its tokens.
    Excerpt lengths run from max_words down to min_words (excerpt_lengths); only when the shortest
    does not fit is a reference left out, never below min_items references.
    answer_tokens(n_keep): the answer's max_tokens when the prompt shows n_keep references, for an
    answer that grows with them (JSON naming every key shown); each number of references is then
    fitted with its own answer bound, so leaving a reference out also shrinks the answer (default:
    budget.max_tokens whatever is shown). FittedPrompt.budget is the budget of the references kept.
    With count or budget None (nothing to measure with), the prompt is built over every reference at
    max_words, unmeasured. Raises ContextFullError naming the sizes when nothing fits.
    """
    lengths = excerpt_lengths(max_words, min_words)
    n = len(texts)
    measured = {}

    def budget_for(n_keep: int) -> Optional[ContextBudget]:
        if answer_tokens is None or budget is None:
            return budget
        return replace(budget, max_tokens=answer_tokens(n_keep))

    def measure(n_keep: int, level: int):
        """(prompt, tokens) over the n_keep best references at lengths[level] (tokens None: unmeasured)."""
        key = (n_keep, level)
        if key not in measured:
            prompt = build(list(range(n_keep)), [excerpt(texts[i], lengths[level]) for i in range(n_keep)])
            measured[key] = (prompt, None if count is None or budget is None else count(prompt))
        return measured[key]

    def result(n_keep: int, level: int) -> FittedPrompt:
        shortened = sum(excerpt(texts[i], lengths[level]) != excerpt(texts[i], lengths[0]) for i in range(n_keep))
        prompt, n_tokens = measure(n_keep, level)
        return FittedPrompt(prompt, n_tokens, list(range(n_keep)), n, lengths[level], shortened, budget_for(n_keep))

    if count is None or budget is None:
        return result(n, 0)
    hint = hint or "use a model with a longer context, a shorter idea, or a smaller max_tokens"
    smallest = budget_for(min(min_items, n))
    if smallest.limit < 1:
        raise ContextFullError(f"{what}: {smallest.describe()}; {hint}")

    def fits(n_keep: int, level: int) -> bool:
        return measure(n_keep, level)[1] <= budget_for(n_keep).limit

    last = len(lengths) - 1
    if fits(n, 0):                                     # the usual case: everything fits as it is
        return result(n, 0)
    for n_keep in range(n, min(min_items, n) - 1, -1):
        if not fits(n_keep, last):                     # even the shortest excerpts: leave one out
            continue
        lo, hi = 0, last                               # bisect for the longest length that fits
        while lo < hi:                                 # (a prompt shrinks as its excerpts do)
            mid = (lo + hi) // 2
            if fits(n_keep, mid):
                hi = mid
            else:
                lo = mid + 1
        return result(n_keep, hi)
    n_keep = min(min_items, n)
    shown = (f" with {n_keep} reference{'s' if n_keep != 1 else ''} and {lengths[last]}-word excerpts"
             if n_keep else "")
    lead = f"even the smallest prompt{shown}" if n else "the prompt"
    raise ContextFullError(f"{what}: {lead} has {measure(n_keep, last)[1]} tokens, but {smallest.describe()}; "
                           f"{hint}")
