"""Retrieval: BM25 (bm25s) over title+abstract with bigram keyphrases, query expansion
(keyphrases + pseudo-relevance feedback, or terms the model proposes), optional model reranking.

Scores are computed per query term (bm25s gives one vector per term) so a weighted, expanded query
is a weighted sum, and --explain can say exactly which terms made a paper match.
"""
from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

# ---- text analysis (lower-case, stop words, a light English stemmer, bigrams) ----

STOPWORDS = frozenset("""
a about above after again against all also although am among an and any are as at be because been before
being below between both but by can could did do does doing down during each either et etc few for from
further had has have having he her here hers him his how however i if in into is it its itself just may
me might more most much must my no nor not now of off on once only or other our ours out over own per
same she should since so some such than that the their theirs them themselves then there these they this
those through thus to too under until up upon us very via was we were what when where whether which while
who whom why will with within without would yet you your
paper papers propose proposes proposed present presents presented show shows shown demonstrate
demonstrates introduce introduces novel new approach approaches method methods work works study studies
result results use uses used using based well able first second one two three furthermore moreover
existing recent recently previous prior achieve achieves achieved significantly significant outperform
outperforms state art find finds found make makes often many several various different given
""".split())


def stem(w: str) -> str:
    """A deliberately light suffix stripper (plural, -ing, -ed, -ation/-ize families)."""
    if len(w) <= 3 or w.isdigit():
        return w
    for suf, rep in (("ational", "ate"), ("ization", "ize"), ("isation", "ize"), ("ations", "ate"),
                     ("ation", "ate"), ("ities", "ity"), ("iveness", "ive"), ("fulness", "ful"),
                     ("nesses", "ness")):
        if w.endswith(suf) and len(w) - len(suf) >= 3:
            w = w[: -len(suf)] + rep
            break
    if w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("sses"):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is", "ys")) and len(w) > 3:
        w = w[:-1]
    for suf in ("ing", "ed"):
        if w.endswith(suf) and len(w) - len(suf) >= 4:
            w = w[: -len(suf)]
            if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "lsz":
                w = w[:-1]
            break
    if w.endswith("e") and len(w) > 4:
        w = w[:-1]
    return w


_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list:
    text = unicodedata.normalize("NFKD", text.lower()).encode("ascii", "ignore").decode()
    return _WORD.findall(text)


def analyze(text: str, bigrams: bool = True) -> list:
    """Content-word stems in order, plus 'a_b' tokens for adjacent content words (keyphrases)."""
    toks, out, prev = words(text), [], None
    for w in toks:
        if w in STOPWORDS or len(w) < 2 or (w.isdigit() and len(w) != 4):
            prev = None
            continue
        s = stem(w)
        out.append(s)
        if bigrams and prev is not None:
            out.append(f"{prev}_{s}")
        prev = s
    return out


def keyphrases(text: str, n: int = 8) -> list:
    """Candidate keyphrases of a short text: maximal runs of content words, longest first."""
    runs, cur = [], []
    for w in words(text):
        if w in STOPWORDS or len(w) < 2:
            if cur:
                runs.append(cur)
            cur = []
        else:
            cur.append(w)
    if cur:
        runs.append(cur)
    phrases = [" ".join(r) for r in sorted(runs, key=len, reverse=True) if len(r) >= 2]
    return phrases[:n]


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
             feedback_weight: float = 0.2, progress: Optional[Callable] = None) -> Retrieval:
    """Find the papers most related to `idea`.

    expand: add expansion terms — from the model (`model` given: it proposes keyphrases, kept only if
    they occur in the corpus) or else pseudo-relevance feedback from the first-pass top documents.
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
            from .rerank import model_expansion_terms

            say("expanding the query with the model")
            terms = model_expansion_terms(model, idea)
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
