"""Text analysis for retrieval and theme labels: lower-case ASCII words, stop words, a light English
stemmer, bigram keyphrases."""
from __future__ import annotations

import re
import unicodedata

__all__ = ["STOPWORDS", "stem", "words", "analyze", "keyphrases"]

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
