"""Retrieval: BM25 (bm25s) over title+abstract with bigram keyphrases, query expansion
(keyphrases + pseudo-relevance feedback, or terms the model proposes), optional model reranking.

Scores are computed per query term (bm25s gives one vector per term) so a weighted, expanded query
is a weighted sum, and --explain can say exactly which terms made a paper match.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

from .rerank import model_expansion_terms
from .text import analyze


# ---- results ----

@dataclass
class Hit:
    paper: object
    bm25: float
    score: float
    rank: int = 0
    rerank: Optional[float] = None
    matched: dict = field(default_factory=dict)      # term -> contribution to bm25 (weighted)

    @property
    def key(self):
        return self.paper.key


@dataclass
class Retrieval:
    idea: str
    hits: list
    query: dict                   # term -> weight (original)
    expansion: dict               # term -> weight (added)
    expansion_source: str         # "keyphrases+feedback", "model", "none"
    reranked: bool = False
    rerank_note: str = ""

    def explain(self) -> str:
        lines = [f"query terms: {', '.join(_pretty(t) for t in self.query)}"]
        if self.expansion:
            lines.append(f"expansion ({self.expansion_source}): "
                         + ", ".join(f"{_pretty(t)}×{w:.2f}" for t, w in self.expansion.items()))
        if self.rerank_note:
            lines.append(self.rerank_note)
        for h in self.hits:
            terms = sorted(h.matched.items(), key=lambda kv: -kv[1])
            tstr = ", ".join(f"{_pretty(t)}{'*' if t in self.expansion else ''} {v:.2f}" for t, v in terms[:8])
            rr = f"  rerank {h.rerank:.3f}" if h.rerank is not None else ""
            lines.append(f"{h.rank:2d}. [{h.paper.key}] {h.paper.title} ({h.paper.year or 'n.d.'})\n"
                         f"    BM25 {h.bm25:.2f}{rr}  final {h.score:.3f}  matched: {tstr or '-'}")
        if self.expansion:
            lines.append("(* = expansion term)")
        return "\n".join(lines)


def _pretty(t: str) -> str:
    return t.replace("_", " ")


# ---- the index ----

class Index:
    """BM25 index over papers (title counted twice, abstract once, venue once)."""

    def __init__(self, papers: Sequence, k1: float = 1.2, b: float = 0.75):
        import bm25s

        if not papers:
            raise ValueError("cannot index an empty list of papers")
        self.papers = list(papers)
        docs = [analyze(p.title) * 2 + analyze(p.abstract) + analyze(p.venue, bigrams=False)
                for p in self.papers]
        docs = [d if d else ["_empty_"] for d in docs]
        self.docs = docs
        self.bm25 = bm25s.BM25(k1=k1, b=b)
        self.bm25.index(docs, show_progress=False)
        self.vocab = self.bm25.vocab_dict
        n = len(docs)
        df = {}
        for d in docs:
            for t in set(d):
                df[t] = df.get(t, 0) + 1
        self.idf = {t: math.log(1 + (n - c + 0.5) / (c + 0.5)) for t, c in df.items()}

    def term_scores(self, term: str) -> Optional[np.ndarray]:
        tid = self.vocab.get(term)
        if tid is None:
            return None
        return np.asarray(self.bm25.get_scores_from_ids([tid]), dtype=np.float64)

    def score(self, weights: dict) -> tuple:
        """Weighted BM25: sum_t w_t * bm25(t, d). Returns (scores, {term: per-doc vector})."""
        total = np.zeros(len(self.papers))
        per = {}
        for t, w in weights.items():
            v = self.term_scores(t)
            if v is None or w == 0:
                continue
            per[t] = w * v
            total += per[t]
        return total, per

    def feedback_terms(self, doc_ids, exclude, n_terms: int = 10) -> dict:
        """Pseudo-relevance feedback: terms frequent in the top documents and rare in the corpus."""
        acc = {}
        for rank, d in enumerate(doc_ids):
            toks = self.docs[d]
            tf = {}
            for t in toks:
                tf[t] = tf.get(t, 0) + 1
            for t, c in tf.items():
                if t in exclude or t == "_empty_":
                    continue
                acc[t] = acc.get(t, 0.0) + (c / len(toks)) * self.idf.get(t, 0.0) / (1 + 0.3 * rank)
        best = sorted(acc.items(), key=lambda kv: -kv[1])[:n_terms]
        if not best:
            return {}
        top = best[0][1]
        return {t: v / top for t, v in best}


# ---- retrieval ----

def query_weights(idea: str, bigram_weight: float = 0.25) -> dict:
    w = {}
    for t in analyze(idea):
        w[t] = w.get(t, 0.0) + (bigram_weight if "_" in t else 1.0)
    return w


def retrieve(idea: str, papers=None, *, index: Optional[Index] = None, top_k: int = 12,
             expand: bool = True, model=None, reranker=None, n_candidates: int = 30,
             rerank_weight: float = 0.5, feedback_docs: int = 3, feedback_terms: int = 10,
             feedback_weight: float = 0.2, n_ctx: Optional[int] = None,
             progress: Optional[Callable] = None) -> Retrieval:
    """Find the papers most related to `idea`.

    expand: add expansion terms — from the model (`model` given: it proposes keyphrases, kept only if
    they occur in the corpus) or else pseudo-relevance feedback from the first-pass top documents;
    n_ctx: the context the model's expansion prompt is fitted to (see llm.model_context).
    reranker: a callable (idea, [Paper]) -> [float relevance in 0..1], e.g. rerank.ModelReranker(model)
    (pointwise yes/no over the model's logits); None = BM25 order.
    Final score of a candidate = (1 - rerank_weight) * BM25/max(BM25) + rerank_weight * relevance.
    """
    if not idea or not idea.strip():
        raise ValueError("the idea is empty; describe the research idea in a sentence or two")
    if index is None:
        if not papers:
            raise ValueError("no papers to search")
        index = Index(papers)
    say = progress or (lambda msg: None)
    q = query_weights(idea)
    if not any(t in index.vocab for t in q):
        say("none of the idea's words occur in the corpus; results are arbitrary")
    scores, per = index.score(q)
    expansion, source = {}, "none"
    if expand:
        if model is not None:
            say("expanding the query with the model")
            terms = model_expansion_terms(model, idea, n_ctx=n_ctx)
            expansion = {t: 0.4 for t in terms if t in index.vocab and t not in q}
            source = "model"
        if not expansion:
            first = np.argsort(-scores, kind="stable")[:feedback_docs]
            first = [int(d) for d in first if scores[d] > 0]
            fb = index.feedback_terms(first, exclude=set(q), n_terms=feedback_terms)
            expansion = {t: feedback_weight * v for t, v in fb.items()}
            source = "keyphrases+feedback" if source == "none" else source + "+feedback"
        if expansion:
            s2, per2 = index.score(expansion)
            scores = scores + s2
            per.update(per2)
    n_cand = max(top_k, n_candidates if reranker is not None else top_k)
    order = [int(d) for d in np.argsort(-scores, kind="stable")[:n_cand] if scores[d] > 0]
    hits = []
    for d in order:
        matched = {t: float(v[d]) for t, v in per.items() if v[d] > 0}
        hits.append(Hit(paper=index.papers[d], bm25=float(scores[d]), score=float(scores[d]), matched=matched))
    reranked, note = False, ""
    if hits and reranker is not None:
        say(f"reranking {len(hits)} candidates with the model")
        rel = list(reranker(idea, [h.paper for h in hits]))
        if len(rel) != len(hits):
            raise ValueError(f"reranker returned {len(rel)} scores for {len(hits)} papers")
        top = max(h.bm25 for h in hits) or 1.0
        for h, r in zip(hits, rel):
            h.rerank = float(r)
            h.score = (1 - rerank_weight) * h.bm25 / top + rerank_weight * float(r)
        hits.sort(key=lambda h: -h.score)
        reranked = True
        note = (f"reranked top {len(hits)} BM25 candidates: final = {1 - rerank_weight:.2f}·BM25/max "
                f"+ {rerank_weight:.2f}·relevance")
    hits = hits[:top_k]
    for i, h in enumerate(hits, 1):
        h.rank = i
    return Retrieval(idea=idea, hits=hits, query=q, expansion=expansion, expansion_source=source,
                     reranked=reranked, rerank_note=note)


def recall_at_k(pairs, index: Index, k: int = 10, **kw) -> float:
    """Fraction of (idea, target_key) pairs whose target is in the top k."""
    if not pairs:
        raise ValueError("no pairs")
    found = 0
    for idea, key in pairs:
        r = retrieve(idea, index=index, top_k=k, **kw)
        found += any(h.paper.key == key for h in r.hits)
    return found / len(pairs)
