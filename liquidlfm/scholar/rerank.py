"""Asking the model about papers: pointwise relevance reranking (yes/no logits) and query expansion
terms. The model is one of the Protocols of llm.py (a liquidlfm Model satisfies them all)."""
from __future__ import annotations

import math
import re
from typing import Sequence

import numpy as np

from ..errors import ContextFullError
from .llm import (ForwardScorer, SessionScorer, abstract_snippet, generate_json, generate_text, render_chat,
                  supports_structured_output)
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
    model's logits after a short prompt (idea, paper title + abstract snippet, question).

    A SessionScorer (liquidlfm.Model) prefills the prefix the prompts of one idea share once and
    restores its state (Session.save/load) for each paper; a ForwardScorer runs each prompt whole.
    Models without logits (a GenerationModel or a plain generator) generate one short answer instead,
    scored Yes=1, No=0, other=0.5. A prompt longer than the session's context raises ContextFullError.
    """

    def __init__(self, model, max_words: int = 90):
        self.model = model
        self.max_words = max_words
        self.logits_available = (isinstance(model, (SessionScorer, ForwardScorer))
                                 and model.tokenizer is not None)

    def _question(self, idea: str, paper) -> str:
        return (f"Research idea: {idea.strip()}\n\n"
                f"Paper: {paper.title}\nAbstract: {abstract_snippet(paper.abstract, self.max_words)}\n\n"
                f"Is this paper relevant prior work for the idea? Answer Yes or No.")

    def prompt(self, idea: str, paper) -> str:
        user = self._question(idea, paper)
        chat = render_chat(self.model, user, RERANK_INSTRUCTION)
        return chat if chat is not None else f"{RERANK_INSTRUCTION}\n\n{user}\nAnswer:"

    def __call__(self, idea: str, papers: Sequence) -> list:
        if not papers:
            return []
        if not self.logits_available:
            return [self._by_generation(idea, p) for p in papers]
        tok = self.model.tokenizer
        yes = _first_ids(tok, ["Yes", " Yes", "yes", " yes"])
        no = _first_ids(tok, ["No", " No", "no", " no"])
        both = set(yes) & set(no)                   # e.g. a shared leading-space byte
        yes, no = [i for i in yes if i not in both], [i for i in no if i not in both]
        if not yes or not no:
            raise ValueError("the model's tokenizer cannot tell 'Yes' from 'No'; cannot rerank")
        prompts = [list(tok.encode(self.prompt(idea, p), add_special_tokens=False)) for p in papers]
        return [float(x) for x in self._scores(prompts, papers, yes, no)]

    def _scores(self, prompts, papers, yes, no):
        model = self.model
        if not isinstance(model, SessionScorer):
            return [self._p_yes(np.asarray(model.forward(p), dtype=np.float64)[-1], yes, no) for p in prompts]
        common = len(prompts[0])
        for p in prompts[1:]:
            n = 0
            while n < min(common, len(p)) and p[n] == prompts[0][n]:
                n += 1
            common = n
        common = min(common, min(len(p) for p in prompts) - 1)
        with model.session() as s:
            for p, paper in zip(prompts, papers):
                if len(p) > s.n_ctx:
                    raise ContextFullError(
                        f"the rerank prompt for {paper.title[:60]!r} has {len(p)} tokens but the model's "
                        f"context holds {s.n_ctx}; rerank with a shorter abstract snippet (max_words) or "
                        f"without the model")
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

    def _by_generation(self, idea, paper) -> float:
        ans = generate_text(self.model, self._question(idea, paper), system=RERANK_INSTRUCTION,
                            max_tokens=3).strip().lower()
        return 1.0 if ans.startswith("yes") else 0.0 if ans.startswith("no") else 0.5


KEYPHRASES_MAX, KEYPHRASE_MAX = 8, 40
KEYPHRASES_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["keyphrases"],
    "properties": {"keyphrases": {"type": "array", "minItems": 1, "maxItems": KEYPHRASES_MAX, "items": {
        "type": "string", "pattern": r"^[A-Za-z][A-Za-z0-9 -]{1,%d}$" % (KEYPHRASE_MAX - 1)}}}}
# '{"keyphrases": [' + '"<phrase>", ' per phrase + ']}'
KEYPHRASES_MAX_BYTES = len('{"keyphrases": []}') + KEYPHRASES_MAX * (KEYPHRASE_MAX + 4)


def model_expansion_terms(model, idea: str, max_terms: int = 12) -> list:
    """Ask the model for search keyphrases; return their analysed terms (stems and bigrams).
    The caller keeps only those that occur in the corpus. A liquidlfm model answers under a JSON
    schema (a list of short phrases), other generators one phrase per line."""
    ask = (f"Research idea: {idea.strip()}\n\nList up to {KEYPHRASES_MAX} short search keyphrases (2-4 words "
           f"each) for finding related papers")
    if supports_structured_output(model):
        answer = generate_json(model, ask + ', as JSON: {"keyphrases": ["...", "..."]}.', KEYPHRASES_SCHEMA,
                               KEYPHRASES_MAX_BYTES)
        text = "\n".join(answer["keyphrases"]) if answer else ""
    else:
        text = generate_text(model, ask + ", one per line, nothing else.", max_tokens=64)
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

