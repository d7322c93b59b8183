"""[AuthorYearKeyword] citation keys, the form LFM-Scholar's CiteAgent models were trained to cite.

A paper's key is its first author's family name, its year and the first content word of its title,
each capitalised, ASCII only: "Vaswani2017Attention" (no author: "Anon"; no year: "ND"). Keys are
deterministic (they depend only on the papers and their order) and unique: when two papers would
get the same key, the later one (in retrieval order) adds the next content word of its title
("Zhang2021WordAlignment"), and, if its title has none left, a number ("Zhang2021Word2").
"""
from __future__ import annotations

import re
from typing import Sequence

from .corpus import KEY_STOPWORDS, ascii_word, last_name


def _title_words(title: str) -> list:
    out = []
    for w in re.findall(r"[^\W_]+", title):
        a = ascii_word(w)
        if a and a not in KEY_STOPWORDS and not a.isdigit():
            out.append(a.capitalize())
    return out


def key_stem(paper) -> str:
    """Author + year, the part of a key that near-miss repair compares ("Vaswani2017")."""
    surname = ""
    if paper.authors and last_name(paper.authors[0]):
        surname = ascii_word(last_name(paper.authors[0]).split()[-1])
    return f"{(surname or 'anon').capitalize()}{paper.year or 'ND'}"


def author_year_keys(papers: Sequence) -> list:
    """One unique [AuthorYearKeyword] key per paper, in the papers' order (see the module docstring)."""
    keys, used = [], set()
    for p in papers:
        stem, words = key_stem(p), _title_words(p.title) or ["Paper"]
        key = stem + words[0]
        extra = 1
        while key.lower() in used and extra < len(words):
            key += words[extra]
            extra += 1
        base, n = key, 1
        while key.lower() in used:
            n += 1
            key = f"{base}{n}"
        used.add(key.lower())
        keys.append(key)
    return keys
