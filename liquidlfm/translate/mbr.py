"""Minimum-Bayes-risk (MBR) selection among sampled translations, with chrF as the utility.

    i = mbr_select(["cand a", "cand b", "cand c"])      # the candidate the others agree with most

``quality="mbr"`` in the translator draws N samples of a piece in one batch (BatchEngine.submit_n: the
prompt is prefilled once, sample i uses seed + i) and keeps the one with the highest expected chrF
against the others: U[i][j] = chrF(hypothesis=c_i, reference=c_j), score_i = mean of U[i][j] over
j != i, the argmax wins (the lowest index among ties, so a single sample is chosen as is).

chrF here is sentence-level chrF as sacrebleu's ``CHRF()`` defaults compute it (Popović 2015: character
n-grams of orders 1..6, whitespace removed, precision and recall averaged over the orders both strings
are long enough for, then F with beta = 2),
written here so the mode needs no extra package; tests/apps/test_translate_mbr.py checks it against
sacrebleu's sentence_chrf.
"""
from __future__ import annotations

from collections import Counter
from typing import List, Sequence

__all__ = ["chrf", "utility_matrix", "mbr_select"]

CHAR_ORDER = 6
BETA = 2.0


def _ngrams(text: str, n: int) -> Counter:
    return Counter(text[i:i + n] for i in range(len(text) - n + 1))


def chrf(hypothesis: str, reference: str) -> float:
    """Sentence chrF (0..100) of hypothesis against one reference."""
    hyp = "".join(hypothesis.split())
    ref = "".join(reference.split())
    prec = rec = 0.0
    orders = 0
    for n in range(1, CHAR_ORDER + 1):
        h, r = _ngrams(hyp, n), _ngrams(ref, n)
        nh, nr = sum(h.values()), sum(r.values())
        if nh == 0 or nr == 0:
            continue  # an order the strings are too short for does not count
        orders += 1
        match = sum((h & r).values())
        prec += match / nh
        rec += match / nr
    if not orders:
        return 0.0
    prec, rec = prec / orders, rec / orders
    b2 = BETA * BETA
    return 100.0 * (1 + b2) * prec * rec / (b2 * prec + rec) if prec + rec else 0.0


def utility_matrix(candidates: Sequence[str]) -> List[List[float]]:
    """U[i][j] = chrF(candidates[i] against candidates[j]); the diagonal is 0 (a candidate is not its
    own evidence)."""
    n = len(candidates)
    return [[0.0 if i == j else chrf(candidates[i], candidates[j]) for j in range(n)] for i in range(n)]


def mbr_select(candidates: Sequence[str]) -> int:
    """The index of the candidate with the highest mean chrF against the others (the first among ties)."""
    if not candidates:
        raise ValueError("mbr_select() needs at least one candidate")
    n = len(candidates)
    if n == 1:
        return 0
    u = utility_matrix(candidates)
    scores = [sum(row) / (n - 1) for row in u]
    return max(range(n), key=lambda i: (scores[i], -i))
