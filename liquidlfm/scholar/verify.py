"""Citation verifier: every citation in model-written prose must name a retrieved paper.

The model is shown papers under short keys [P1]..[Pn]. Whatever it writes, verify_paragraph():
  - keeps citations of valid short keys, in any spelling ([P3], [p03], [Paper 3], [3], \\cite{P3});
  - repairs near misses: a BibTeX key or a slightly misspelt one, a title inside brackets, an
    author-year citation "(Zhang et al., 2021)" that matches a retrieved paper;
  - drops citations it cannot resolve (invented keys [P99], unknown authors) — never guesses wildly;
    a sentence that names unretrieved work in running text ("Smith et al. (2020) show ...") is removed;
  - adds a citation after an uncited verbatim or near-verbatim mention of a retrieved paper's title;
  - dedups: a key twice in one group or one sentence is kept once; a sentence repeated verbatim
    (small models loop) is removed;
  - a paragraph that ends up citing nothing gets a sentence built in code from the retrieved metadata
    of its papers, so the draft never contains an unsupported paragraph.
Output is canonical text whose only brackets are citation groups "[P1, P4]".
"""
from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Optional, Sequence

from .corpus import last_name

CANON = re.compile(r"\[(P\d+(?:, P\d+)*)\]")
_SHORT = re.compile(r"^(?:p|paper|ref|reference)?\s*#?\s*0*(\d{1,4})$", re.I)
_BRACKET = re.compile(r"\[([^\[\]\n]{1,200})\]")
_CITE_CMD = re.compile(r"\\(?:cite[tp]?|citealp|citeauthor)\*?\s*(?:\[[^\]]*\]\s*)*\{([^}]*)\}")
_PAREN = re.compile(r"\(((?:e\.g\.,?|see|cf\.|i\.e\.,?)?\s*[A-Z][^()]{0,200}?(?:19|20)\d\d[a-z]?)\)")
_AY_ITEM = re.compile(r"^(?:e\.g\.,?|see|cf\.|i\.e\.,?)?\s*([A-Z][^\d;]{0,60}?),?\s+((?:19|20)\d\d)[a-z]?$")
_NARRATIVE = re.compile(r"\b([A-Z][\w'’\-]+)((?:\s+et\s+al\.?)|(?:\s+(?:and|&)\s+[A-Z][\w'’\-]+))?"
                        r"\s*\(((?:19|20)\d\d)[a-z]?\)")
_SPECIAL = re.compile(r"<\|[^|>]{1,40}\|>|</?s>|\x00|[\x01-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]")


@dataclass
class VerifyReport:
    kept: int = 0
    repaired: list = field(default_factory=list)      # (as written, key, why)
    dropped: list = field(default_factory=list)       # (as written, why)
    deduped: int = 0
    repeated_sentences: int = 0
    unsupported_sentences: int = 0                    # sentences naming a paper that was not retrieved
    mentions_added: list = field(default_factory=list)  # (title, key)
    fallback: bool = False

    def merge(self, other: "VerifyReport") -> "VerifyReport":
        self.kept += other.kept
        self.repaired += other.repaired
        self.dropped += other.dropped
        self.deduped += other.deduped
        self.repeated_sentences += other.repeated_sentences
        self.unsupported_sentences += other.unsupported_sentences
        self.mentions_added += other.mentions_added
        self.fallback = self.fallback or other.fallback
        return self

    def summary(self) -> str:
        return (f"{self.kept} citations kept, {len(self.repaired)} repaired, {len(self.dropped)} dropped, "
                f"{self.deduped} duplicates removed, {self.repeated_sentences} repeated sentences removed, "
                f"{self.unsupported_sentences} sentences naming unretrieved work removed, "
                f"{len(self.mentions_added)} title mentions cited"
                + (", fallback sentence added" if self.fallback else ""))


def _norm(s: str) -> str:
    s = unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", " ", s).strip()


class KeyResolver:
    """Maps whatever the model wrote inside a citation to a short key, or None."""

    def __init__(self, shorts: dict):
        self.shorts = shorts                                   # "P3" -> Paper
        self.by_bib = {p.key.lower(): k for k, p in shorts.items()}
        self.by_title = {_norm(p.title): k for k, p in shorts.items()}

    def resolve(self, item: str):
        """-> (short key or None, how) with how in {'ok', 'repaired: ...', 'dropped: ...'}"""
        raw = item.strip().strip("'\"`*").strip()
        if not raw:
            return None, "dropped: empty"
        m = _SHORT.match(raw)
        if m:
            k = f"P{int(m.group(1))}"
            if k in self.shorts:
                return k, "ok" if raw == k else f"repaired: spelling '{raw}'"
            return None, f"dropped: no paper {k} among the {len(self.shorts)} given"
        low = raw.lower()
        if low in self.by_bib:
            return self.by_bib[low], "repaired: BibTeX key"
        close = difflib.get_close_matches(low, list(self.by_bib), n=1, cutoff=0.85)
        if close:
            return self.by_bib[close[0]], f"repaired: near-miss key '{raw}'"
        n = _norm(raw)
        if len(n.split()) >= 3:
            if n in self.by_title:
                return self.by_title[n], "repaired: title"
            close = difflib.get_close_matches(n, list(self.by_title), n=1, cutoff=0.85)
            if close:
                return self.by_title[close[0]], "repaired: near-miss title"
        ay = re.match(r"^([A-Z][^\d,]*?)(?:\s+et al\.?|\s+(?:and|&)\s+[^\d,]+)?,?\s+((?:19|20)\d\d)[a-z]?$", raw)
        if ay:
            k = self.author_year(ay.group(1), int(ay.group(2)))
            if k:
                return k, "repaired: author-year"
            return None, "dropped: author-year matches no retrieved paper"
        return None, "dropped: not a key of a retrieved paper"

    def author_year(self, surname: str, year: int) -> Optional[str]:
        s = _norm(surname)
        found = [k for k, p in self.shorts.items()
                 if p.year == year and p.authors and _norm(last_name(p.authors[0])) in (s, s.split()[-1] if s else "")]
        return found[0] if len(found) == 1 else None


def _looks_like_citation(content: str) -> bool:
    items = [x.strip() for x in re.split(r"[,;]|\band\b", content) if x.strip()]
    return bool(items) and any(_SHORT.match(x) or re.match(r"^[A-Za-z][\w:-]*\d{2,4}[\w:-]*$", x)
                               or re.search(r"(19|20)\d\d", x) for x in items)


def clean_model_text(text: str) -> str:
    text = _SPECIAL.sub("", text or "")
    lines = []
    for line in text.splitlines():
        s = line.strip()
        if re.match(r"^#{1,6}\s", s) or re.match(r"^(\*\*)?related work(\*\*)?:?$", s, re.I):
            continue                                     # headings are ours to write
        lines.append(s)
    return re.sub(r"\s+", " ", " ".join(lines)).strip()


def verify_paragraph(text: str, shorts: dict, theme_keys: Sequence[str] = (),
                     theme_name: str = "", seen_sentences: Optional[set] = None) -> tuple:
    """-> (canonical text, VerifyReport). shorts: "P1" -> Paper for every paper the text may cite (the
    drafter passes the papers the paragraph's prompt showed; any other key is dropped).
    seen_sentences: normalised sentences of earlier paragraphs (updated), so a sentence the model
    repeats across paragraphs is kept once."""
    rep = VerifyReport()
    res = KeyResolver(shorts)
    slots = []                                            # keys per placeholder

    def put(keys):
        slots.append(keys)
        return f" \x00{len(slots) - 1}\x00"

    def resolve_items(items):
        keys = []
        for it in items:
            k, how = res.resolve(it)
            if k is None:
                rep.dropped.append((it.strip(), how.split(": ", 1)[1]))
                continue
            if how == "ok":
                rep.kept += 1
            else:
                rep.repaired.append((it.strip(), k, how.split(": ", 1)[1]))
            keys.append(k)
        return keys

    text = clean_model_text(text)
    text = _CITE_CMD.sub(lambda m: put(resolve_items(m.group(1).split(","))), text)

    def bracket(m):
        content = m.group(1)
        if not _looks_like_citation(content) and not (
                len(_norm(content).split()) >= 3 and res.resolve(content)[0] is not None):
            return "(" + content + ")"
        items = [x for x in re.split(r"[;,]|\s+and\s+", content) if x.strip()]
        if re.search(r"(19|20)\d\d", content) and not any(_SHORT.match(x.strip()) for x in items):
            items = [x for x in re.split(r";", content) if x.strip()]   # "[Zhang et al., 2021; ...]"
        return put(resolve_items(items))

    text = _BRACKET.sub(bracket, text)

    def paren(m):                                         # "(Zhang et al., 2021; Li and Fan, 2022)"
        items = [x.strip() for x in m.group(1).split(";") if x.strip()]
        parsed = [_AY_ITEM.match(x) for x in items]
        if not all(parsed):
            return m.group(0)                             # prose in parentheses, not a citation
        keys = []
        for x, ay in zip(items, parsed):
            k = res.author_year(re.split(r"\s+(?:et al|and|&)\b", ay.group(1))[0].strip(), int(ay.group(2)))
            if k:
                rep.repaired.append((x, k, "author-year"))
                keys.append(k)
            else:
                rep.dropped.append((x, "author-year matches no retrieved paper"))
        return put(keys)

    text = _PAREN.sub(paren, text)

    def narrative(m):                                     # "Zhang et al. (2021) show ..."
        k = res.author_year(m.group(1), int(m.group(3)))
        if k:
            rep.repaired.append((m.group(0), k, "author-year"))
            return m.group(1) + (m.group(2) or "") + put([k])
        rep.dropped.append((m.group(0), "names no retrieved paper; sentence removed"))
        return "\x01"

    text = _NARRATIVE.sub(narrative, text)
    text = text.replace("[", "(").replace("]", ")")

    # uncited mentions of a retrieved title -> cite it right after the mention
    for k, p in shorts.items():
        t = _norm(p.title)
        if len(t.split()) < 4:
            continue
        cited_here = any(k in s for s in slots)
        if cited_here:
            continue
        pos = _find_title(text, p.title)
        if pos is not None:
            text = text[:pos] + put([k]) + text[pos:]
            rep.mentions_added.append((p.title, k))

    # sentences: dedupe keys within a sentence, drop verbatim-repeated sentences
    sents = re.split(r"(?<=[.!?])\s+(?=[A-Z\x00\x01\"“(])", text)
    out = []
    seen_sent = seen_sentences if seen_sentences is not None else set()
    for s in sents:
        if "\x01" in s:
            rep.unsupported_sentences += 1
            continue
        sig = _norm(re.sub(r"\x00\d+\x00", "", s))
        if sig and sig in seen_sent and len(sig.split()) >= 4:
            rep.repeated_sentences += 1
            continue
        seen_sent.add(sig)
        used, removed = set(), []

        def canon(m):
            keys = []
            for k in slots[int(m.group(1))]:
                if k in used:
                    rep.deduped += 1
                    continue
                used.add(k)
                keys.append(k)
            if not keys:
                removed.append(m.group(0))
            return f"[{', '.join(keys)}]" if keys else ""

        s = re.sub(r"\x00(\d+)\x00", canon, s)
        s = re.sub(r"\s+([.,;:!?])", r"\1", re.sub(r"\s{2,}", " ", s)).strip()
        s = re.sub(r"\(\s*\)", "", s)
        # a removed citation can leave "see and." / "by ,." behind
        if removed:
            s = re.sub(r"(?:\s*(?:,|\band\b|\bor\b|\bsee\b|\bby\b|\bin\b))+\s*([.;:!?])$", r"\1", s, flags=re.I)
        # merge adjacent groups "[P1] [P2]" -> "[P1, P2]"
        while True:
            s2 = re.sub(r"\[(P\d+(?:, P\d+)*)\]\s*\[(P\d+(?:, P\d+)*)\]", r"[\1, \2]", s)
            if s2 == s:
                break
            s = s2
        if len(re.findall(r"\w+", CANON.sub("", s))) >= 2 or CANON.search(s):
            out.append(s)
    text = " ".join(out).strip()
    if not CANON.search(text):
        rep.fallback = True
        fb = grounded_sentence([k for k in theme_keys if k in shorts] or list(shorts)[:3], shorts, theme_name)
        text = (text + " " + fb).strip() if text else fb
    return text, rep


def _find_title(text: str, title: str) -> Optional[int]:
    """End offset (in text) of a verbatim or near-verbatim mention of title, else None."""
    low = text.lower()
    i = low.find(title.lower())
    if i >= 0:
        return i + len(title)
    tw = _norm(title).split()
    toks = [(m.start(), m.end(), _norm(m.group(0))) for m in re.finditer(r"\S+", text)]
    n = len(tw)
    for j in range(0, max(0, len(toks) - n + 1)):
        window = " ".join(t[2] for t in toks[j:j + n])
        if window and difflib.SequenceMatcher(None, window, " ".join(tw)).ratio() >= 0.9:
            return toks[j + n - 1][1]
    return None


def grounded_sentence(keys: Sequence[str], shorts: dict, theme_name: str = "") -> str:
    """Sentences built only from retrieved metadata (authors, year, title), each paper cited."""
    return " ".join(f"{shorts[k].short_authors()} ({shorts[k].year or 'n.d.'}) "
                    f"{'presents' if len(shorts[k].authors) == 1 else 'present'} "
                    f"“{shorts[k].title.rstrip('.')}” [{k}]." for k in keys)


def cited_keys(text: str) -> list:
    """Short keys cited in canonical text, in first-citation order."""
    out = []
    for m in CANON.finditer(text):
        for k in m.group(1).split(", "):
            if k not in out:
                out.append(k)
    return out
