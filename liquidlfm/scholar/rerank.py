"""Asking the model about papers: pointwise relevance reranking (yes/no logits) and query expansion
terms. The model is one of the Protocols of llm.py (a liquidlfm Model satisfies them all)."""
from __future__ import annotations

import math
import re
from typing import Optional, Sequence

import numpy as np

from .budget import ContextBudget, excerpt, fit_prompt
from .llm import (ForwardScorer, PromptMeter, SessionScorer, json_max_tokens, model_context, open_session,
                  render_chat, supports_structured_output)
from .text import analyze

RERANK_INSTRUCTION = ("Decide whether a paper is relevant prior work for a research idea. "
                      "Answer with Yes or No only.")


def _first_ids(tok, words: Sequence[str]) -> list:
    ids = set()
    for w in words:
        enc = tok.encode(w, add_special_tokens=False)
        if enc:
            ids.add(int(enc[0]))
    return sorted(ids)


class ModelReranker:
    """Pointwise relevance: P(Yes) / (P(Yes) + P(No)) for the first answer token, read from the
    model's logits after a short prompt (idea, paper title + abstract excerpt, question).

    A SessionScorer (liquidlfm.Model) prefills the prefix the prompts of one idea share once and
    restores its state (Session.save/load) for each paper; a ForwardScorer runs each prompt whole.
    Models without logits (a GenerationModel or a plain generator) generate one short answer instead,
    scored Yes=1, No=0, other=0.5.
    Each prompt is fitted to the context (n_ctx: see llm.model_context; a SessionScorer's is its
    session's): a paper's abstract excerpt is shortened until it fits, and ContextFullError is raised
    when even the shortest does not. progress(msg) hears how many excerpts were shortened.
    """

    def __init__(self, model, max_words: int = 90, *, n_ctx: Optional[int] = None, progress=None):
        self.model = model
        self.max_words = max_words
        self.n_ctx = n_ctx
        self.progress = progress
        self.logits_available = (isinstance(model, (SessionScorer, ForwardScorer))
                                 and model.tokenizer is not None)

    def _question(self, idea: str, paper, abstract: str) -> str:
        return (f"Research idea: {idea.strip()}\n\n"
                f"Paper: {paper.title}\nAbstract: {abstract}\n\n"
                f"Is this paper relevant prior work for the idea? Answer Yes or No.")

    def _render(self, user: str) -> str:
        chat = render_chat(self.model, user, RERANK_INSTRUCTION)
        return chat if chat is not None else f"{RERANK_INSTRUCTION}\n\n{user}\nAnswer:"

    def prompt(self, idea: str, paper, max_words: Optional[int] = None) -> str:
        """The prompt for one paper, its abstract excerpt at most max_words (default self.max_words) words."""
        words = self.max_words if max_words is None else max_words
        return self._render(self._question(idea, paper, excerpt(paper.abstract, words)))

    def __call__(self, idea: str, papers: Sequence) -> list:
        if not papers:
            return []
        if not self.logits_available:
            return self._by_generation(idea, papers)
        tok = self.model.tokenizer
        yes = _first_ids(tok, ["Yes", " Yes", "yes", " yes"])
        no = _first_ids(tok, ["No", " No", "no", " no"])
        both = set(yes) & set(no)                   # e.g. a shared leading-space byte
        yes, no = [i for i in yes if i not in both], [i for i in no if i not in both]
        if not yes or not no:
            raise ValueError("the model's tokenizer cannot tell 'Yes' from 'No'; cannot rerank")
        model = self.model
        if not isinstance(model, SessionScorer):
            prompts = self._fitted_ids(idea, papers, model_context(model, self.n_ctx))
            return [float(self._p_yes(np.asarray(model.forward(p), dtype=np.float64)[-1], yes, no))
                    for p in prompts]
        with open_session(model, self.n_ctx) as s:
            prompts = self._fitted_ids(idea, papers, s.n_ctx)
            return [float(x) for x in self._session_scores(s, prompts, yes, no)]

    def _fitted_ids(self, idea: str, papers: Sequence, n_ctx: Optional[int]) -> list:
        """Each paper's prompt as token ids, its excerpt shortened until the prompt and the one token
        whose logits are read fit n_ctx (None: not fitted)."""
        tok = self.model.tokenizer
        budget = ContextBudget(n_ctx, max_tokens=1, margin=0) if n_ctx is not None else None
        out, shortened = [], 0
        for paper in papers:
            fitted = fit_prompt(
                lambda kept, ex, paper=paper: list(tok.encode(self._render(self._question(
                    idea, paper, ex[0])), add_special_tokens=False)),
                [paper.abstract], len, budget, max_words=self.max_words,
                what=f"the rerank prompt for {paper.title[:60]!r}", hint=_RERANK_HINT)
            shortened += fitted.shortened
            out.append(fitted.prompt)
        self._tell_shortened(shortened, len(papers), n_ctx)
        return out

    def _tell_shortened(self, shortened: int, n: int, n_ctx) -> None:
        if shortened and self.progress is not None:
            self.progress(f"rerank: {shortened} of {n} abstract excerpts shortened to fit the model's "
                          f"{n_ctx}-token context")

    def _session_scores(self, s, prompts, yes, no):
        common = len(prompts[0])
        for p in prompts[1:]:
            n = 0
            while n < min(common, len(p)) and p[n] == prompts[0][n]:
                n += 1
            common = n
        common = min(common, min(len(p) for p in prompts) - 1)
        blob = None
        if common > 8:
            s.prefill(prompts[0][:common])
            blob = s.save()
        out = []
        for p in prompts:
            if blob is not None:
                s.load(blob)
                logits = s.prefill(p[common:])
            else:
                s.reset()
                logits = s.prefill(p)
            out.append(self._p_yes(np.asarray(logits, dtype=np.float64).reshape(-1), yes, no))
        return out

    @staticmethod
    def _p_yes(logits: np.ndarray, yes, no) -> float:
        def lse(ids):
            v = logits[ids]
            m = float(np.max(v))
            return m + math.log(float(np.sum(np.exp(v - m))))
        a, b = lse(yes), lse(no)
        m = max(a, b)
        return math.exp(a - m) / (math.exp(a - m) + math.exp(b - m))

    def _by_generation(self, idea: str, papers: Sequence) -> list:
        meter = PromptMeter(self.model, self.n_ctx)
        scores, shortened = [], 0
        for paper in papers:
            fitted = meter.fit(lambda kept, ex, paper=paper: self._question(idea, paper, ex[0]),
                               [paper.abstract], system=RERANK_INSTRUCTION, max_tokens=3,
                               max_words=self.max_words, what=f"the rerank prompt for {paper.title[:60]!r}")
            shortened += fitted.shortened
            ans = meter.generate(fitted, system=RERANK_INSTRUCTION, max_tokens=3).strip().lower()
            scores.append(1.0 if ans.startswith("yes") else 0.0 if ans.startswith("no") else 0.5)
        self._tell_shortened(shortened, len(papers), meter.n_ctx)
        return scores


_RERANK_HINT = "rerank with a model with a longer context, a shorter idea, or without the model (--no-rerank)"


KEYPHRASES_MAX, KEYPHRASE_MAX = 8, 40
KEYPHRASES_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["keyphrases"],
    "properties": {"keyphrases": {"type": "array", "minItems": 1, "maxItems": KEYPHRASES_MAX, "items": {
        "type": "string", "pattern": r"^[A-Za-z][A-Za-z0-9 -]{1,%d}$" % (KEYPHRASE_MAX - 1)}}}}
# '{"keyphrases": [' + '"<phrase>", ' per phrase + ']}'
KEYPHRASES_MAX_BYTES = len('{"keyphrases": []}') + KEYPHRASES_MAX * (KEYPHRASE_MAX + 4)
EXPANSION_MAX_TOKENS = 64   # the free-text answer: up to 8 short lines


def model_expansion_terms(model, idea: str, max_terms: int = 12, *, n_ctx: Optional[int] = None) -> list:
    """Ask the model for search keyphrases; return their analysed terms (stems and bigrams).
    The caller keeps only those that occur in the corpus. A liquidlfm model answers under a JSON
    schema (a list of short phrases), other generators one phrase per line. n_ctx: see
    llm.model_context; an idea too long for it (with the answer's tokens) raises ContextFullError."""
    ask = (f"Research idea: {idea.strip()}\n\nList up to {KEYPHRASES_MAX} short search keyphrases (2-4 words "
           f"each) for finding related papers")
    meter = PromptMeter(model, n_ctx)
    if supports_structured_output(model):
        user = ask + ', as JSON: {"keyphrases": ["...", "..."]}.'
        fitted = meter.fit(lambda kept, ex: user, max_tokens=json_max_tokens(KEYPHRASES_MAX_BYTES),
                           what="query expansion")
        answer = meter.generate_json(fitted, KEYPHRASES_SCHEMA, KEYPHRASES_MAX_BYTES)
        text = "\n".join(answer["keyphrases"]) if answer else ""
    else:
        user = ask + ", one per line, nothing else."
        fitted = meter.fit(lambda kept, ex: user, max_tokens=EXPANSION_MAX_TOKENS, what="query expansion")
        text = meter.generate(fitted, max_tokens=EXPANSION_MAX_TOKENS)
    terms, seen = [], set(analyze(idea))
    for line in re.split(r"[\n,;]", text):
        line = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s*", "", line).strip()
        if not line or len(line) > 80:
            continue
        for t in analyze(line):
            if t not in seen:
                seen.add(t)
                terms.append(t)
    return terms[:max_terms]
