"""Idea -> paper pairs built from a corpus, for measuring retrieval recall honestly.

For each sampled target paper we take the sentence of its abstract that states the contribution
("we propose ...", "this paper presents ..."; else the second sentence), delete every word that also
occurs in the paper's title (so the title cannot be matched verbatim), and use what remains as the
"idea". The target's indexed abstract has that sentence REMOVED (held_out=True), so retrieval has to
find the paper through the rest of its abstract — the idea's wording itself is not in the index.
"""
from __future__ import annotations

import random
import re
from dataclasses import replace

from .text import STOPWORDS, stem, words

_CONTRIB = re.compile(r"\b(we (propose|present|introduce|develop|design)|this (paper|work) "
                      r"(proposes|presents|introduces)|in this (paper|work))\b", re.I)


def sentences(text: str) -> list:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", text) if s.strip()]


def make_pairs(papers, n: int = 200, seed: int = 0, held_out: bool = True, min_words: int = 6):
    """Return (pairs, papers_for_index): pairs = [(idea, target_key)]."""
    rng = random.Random(seed)
    order = list(range(len(papers)))
    rng.shuffle(order)
    pairs, edited = [], {}
    for i in order:
        if len(pairs) >= n:
            break
        p = papers[i]
        sents = sentences(p.abstract)
        if len(sents) < 3:
            continue
        j = next((k for k, s in enumerate(sents) if _CONTRIB.search(s)), 1)
        title_stems = {stem(w) for w in words(p.title)}
        kept = [w for w in re.findall(r"[^\W_]+", sents[j]) if stem(w.lower()) not in title_stems]
        content = [w for w in kept if w.lower() not in STOPWORDS]
        if len(content) < min_words:
            continue
        pairs.append((" ".join(kept), p.key))
        if held_out:
            edited[i] = replace(p, abstract=" ".join(s for k, s in enumerate(sents) if k != j))
    out = [edited.get(i, p) for i, p in enumerate(papers)]
    return pairs, out
