"""Everything that asks the model something: pointwise relevance reranking (yes/no logits), query
expansion terms, and a text-generation helper. Works with any object that has the liquidlfm Model API
(tokenizer.encode, session().prefill / forward for logits; chat / generate for text).
"""
from __future__ import annotations

import math
import re
from typing import Callable, Optional, Sequence

import numpy as np

from .retrieve import analyze

RERANK_INSTRUCTION = ("Decide whether a paper is relevant prior work for a research idea. "
                      "Answer with Yes or No only.")


def _abstract_snippet(text: str, max_words: int = 90) -> str:
    w = text.split()
    return " ".join(w[:max_words]) + (" …" if len(w) > max_words else "")


def _render_chat(model, user: str, system: Optional[str] = None) -> Optional[str]:
    """The chat-formatted prompt text, or None if the model has no chat template."""
    if getattr(model, "chat_template", None) and hasattr(model, "apply_chat_template"):
        msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
        return model.apply_chat_template(msgs, add_generation_prompt=True)
    return None


def generate_text(model, user: str, *, system: Optional[str] = None, max_tokens: int = 256,
                  temperature: float = 0.0, seed: Optional[int] = 0) -> str:
    """One completion from a model object (chat if it has a chat template, else plain generate),
    or from a plain callable generator(prompt, max_tokens=...) -> str."""
    if callable(model) and not hasattr(model, "generate"):
        return str(model(user if system is None else f"{system}\n\n{user}", max_tokens=max_tokens))
    kw = {"max_tokens": max_tokens, "temperature": temperature}
    if seed is not None:
        kw["seed"] = seed
    if getattr(model, "chat_template", None) and hasattr(model, "chat"):
        msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
        return model.chat(msgs, **kw)
    prompt = (system + "\n\n" if system else "") + user + "\n"
    if hasattr(model, "generate"):
        return model.generate(prompt, **kw)
    return greedy_generate(model, _render_chat(model, user, system) or prompt, max_tokens)


def greedy_generate(model, prompt: str, max_tokens: int) -> str:
    """Greedy decoding over model.session() for model objects without generate()/chat()
    (the engine's Model before the generation API lands). Stops at the tokenizer's EOS."""
    tok = model.tokenizer
    if tok is None or not hasattr(model, "session"):
        raise TypeError(f"{type(model).__name__} has neither generate()/chat() nor tokenizer + session()")
    ids = list(tok.encode(prompt, add_special_tokens=not prompt.startswith("<|startoftext|>")))
    eos = {i for i in (getattr(tok, "eos_id", None), getattr(getattr(model, "config", None), "eos_token_id", None))
           if isinstance(i, int)}
    out = []
    with model.session() as s:
        n_ctx = getattr(s, "n_ctx", None) or 1 << 30
        max_tokens = max(0, min(max_tokens, n_ctx - len(ids) - 1))
        if len(ids) >= n_ctx:
            ids = ids[-(n_ctx - 1):]
        logits = s.prefill(ids)
        for _ in range(max_tokens):
            t = int(np.argmax(logits))
            if t in eos:
                break
            out.append(t)
            logits = s.step(t)
    return tok.decode(out, skip_special_tokens=True)


def _first_ids(tok, words: Sequence[str]) -> list:
    ids = set()
    for w in words:
        try:
            enc = tok.encode(w, add_special_tokens=False)
        except TypeError:
            enc = tok.encode(w)
        if enc:
            ids.add(int(enc[0]))
    return sorted(ids)


class ModelReranker:
    """Pointwise relevance: P(Yes) / (P(Yes) + P(No)) for the first answer token, read from the
    model's logits after a short prompt (idea, paper title + abstract snippet, question).

    The prompts for one idea share a long prefix; if the model's sessions support save()/load(), the
    prefix is prefilled once and restored for each paper. Models without logits (only generate/chat)
    fall back to generating one short answer and scoring Yes=1, No=0, other=0.5.
    """

    def __init__(self, model, max_words: int = 90):
        self.model = model
        self.max_words = max_words
        self.logits_available = getattr(model, "tokenizer", None) is not None and (
            hasattr(model, "session") or hasattr(model, "forward"))

    def prompt(self, idea: str, paper) -> str:
        user = (f"Research idea: {idea.strip()}\n\n"
                f"Paper: {paper.title}\nAbstract: {_abstract_snippet(paper.abstract, self.max_words)}\n\n"
                f"Is this paper relevant prior work for the idea? Answer Yes or No.")
        chat = _render_chat(self.model, user, RERANK_INSTRUCTION)
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
        prompts = [self._encode(self.prompt(idea, p)) for p in papers]
        return [float(x) for x in self._scores(prompts, yes, no)]

    def _encode(self, text: str) -> list:
        tok = self.model.tokenizer
        try:
            return list(tok.encode(text, add_special_tokens=False))
        except TypeError:
            return list(tok.encode(text))

    def _scores(self, prompts, yes, no):
        model = self.model
        if hasattr(model, "session"):
            common = len(prompts[0])
            for p in prompts[1:]:
                n = 0
                while n < min(common, len(p)) and p[n] == prompts[0][n]:
                    n += 1
                common = n
            common = min(common, min(len(p) for p in prompts) - 1)
            with model.session() as s:
                blob = None
                if common > 8 and hasattr(s, "save") and hasattr(s, "load"):
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
        return [self._p_yes(np.asarray(model.forward(p), dtype=np.float64)[-1], yes, no) for p in prompts]

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
        user = (f"Research idea: {idea.strip()}\n\nPaper: {paper.title}\n"
                f"Abstract: {_abstract_snippet(paper.abstract, self.max_words)}\n\n"
                f"Is this paper relevant prior work for the idea? Answer Yes or No.")
        ans = generate_text(self.model, user, system=RERANK_INSTRUCTION, max_tokens=3).strip().lower()
        return 1.0 if ans.startswith("yes") else 0.0 if ans.startswith("no") else 0.5


def model_expansion_terms(model, idea: str, max_terms: int = 12) -> list:
    """Ask the model for search keyphrases; return their analysed terms (stems and bigrams).
    The caller keeps only those that occur in the corpus."""
    user = (f"Research idea: {idea.strip()}\n\nList up to 8 short search keyphrases (2-4 words each) "
            f"for finding related papers, one per line, nothing else.")
    text = generate_text(model, user, max_tokens=64)
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


def as_reranker(obj) -> Optional[Callable]:
    """A reranker callable from a model object or a callable; None stays None."""
    if obj is None or (callable(obj) and not hasattr(obj, "tokenizer") and not hasattr(obj, "generate")):
        return obj
    return ModelReranker(obj)
