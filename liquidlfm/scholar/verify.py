"""Citation verifier: every citation in model-written prose must name exactly one retrieved paper.

The model is shown papers under keys: short keys [P1]..[Pn], or [AuthorYearKeyword] keys (keys.py)
for the CiteAgent models (passed as `aliases`). Whatever it writes, verify_paragraph() finds every
citation-like token, in any form, and either resolves it to exactly one of the papers its prompt
showed or takes it out of the draft and reports it:
  - groups in any brackets: [P3], (P9), {P9}, <P8>, [p03], [Paper 3], [3], [P1; P2], \\cite{P3},
    [@key], (Zhang et al., 2021; Li and Fan, 2022), [Zhang et al. 2021];
  - bare keys in running text: P12, Paper 3, Ref. 4, @key, zhang2021word, Zhang2021Word;
  - author-year in the common styles: Zhang et al. (2021), Zhang et al. [2021], Zhang et al., 2021,
    Zhang et al. 2021, Zhang and Li (2021), Zhang, 2021, Zhang 2021, Zhang (2021a);
  - near misses are repaired: a key's spelling (case, zero padding), a BibTeX key, a misspelt key
    (edit-distance ratio >= 0.85, with no other key as close), a key with the right author and year but
    another title word, a title written inside brackets, an author-year that names one paper;
  - anything that names no shown paper is dropped (VerifyReport.dropped); anything that could name
    several (an author-year two papers share, a near miss equally close to two keys) is never
    guessed: it is taken out and flagged (VerifyReport.flagged, with the candidates);
  - a group loses only its bad items; a bad citation in running text ("P12 shows ...", "Smith et
    al. (2020) show ...") takes its sentence with it (the sentence is about a paper we do not have);
  - a final sweep looks for citation-like text once more in what is left of each sentence and removes
    a sentence where any remains, so no form the passes above miss can reach the draft.
It also adds a citation after an uncited verbatim or near-verbatim mention of a shown paper's title,
dedups (a key twice in one group or sentence is kept once; a sentence repeated verbatim is removed),
and gives a paragraph that ends up citing nothing a sentence built in code from its papers' metadata.
Output is canonical text whose only square brackets are citation groups "[P1, P4]" of short keys.
"""
from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Optional, Sequence

from .corpus import last_name

CANON = re.compile(r"\[(P\d+(?:, P\d+)*)\]")
_YEAR = r"(?:19|20)\d\d"
# a short key inside a group: "P3", "p03", "Paper 3", "ref 3", "#3", "3" (not a year)
_SHORT = re.compile(r"^(?:(?:p|paper|ref|reference)\.?\s*[-#]?\s*0*(\d{1,4})|#?\s*0*(?!(?:19|20)\d\d$)(\d{1,4}))$", re.I)
# groups hold no other group (\x00: a citation already placed, \x01: a sentence-removal mark)
_BRACKET = re.compile(r"\[([^\[\]\n\x00\x01]{1,200})\]")
_BRACE = re.compile(r"\{([^{}\n\x00\x01]{1,200})\}")
_ANGLE = re.compile(r"<([^<>\n\x00\x01]{1,200})>")
_PARENS = re.compile(r"\(([^()\n\x00\x01]{1,300})\)")
_CITE_CMD = re.compile(r"\\(?:[Cc]ite[tp]?|citealp|citealt|citeauthor|citeyear|parencite|textcite|autocite)\*?"
                       r"\s*(?:\[[^\]]*\]\s*)*\{([^}]*)\}")
_LEAD = re.compile(r"^\s*(?:(?:e\.g\.|i\.e\.|cf\.|see(?: also)?|also|and)\s*,?\s*)+", re.I)
# a family name: a capitalised word, after particles (_is_name rejects acronyms and common words).
# Bounded repeats keep matching linear on hostile text (a 3000-letter word, 2000 names in a row).
_NAME = r"(?:(?:van|von|de|der|den|da|di|le|la|du|del|dos)\s+){0,3}[A-Z][A-Za-zß-ÿ'’\-]{1,40}"
_NAMES = rf"{_NAME}(?:\s+et\s+al\.?|(?:,\s*{_NAME}){{0,6}},?\s+(?:and|&)\s+{_NAME})?"
_AY_ITEM = re.compile(rf"^(?P<names>{_NAMES}),?\s+\(?(?P<year>{_YEAR})[a-z]?\)?$")
_NARRATIVE = re.compile(rf"(?<![\w@])(?P<names>{_NAMES})\s*[(\[]\s*(?P<years>{_YEAR}[a-z]?"
                        rf"(?:\s*[,;]\s*{_YEAR}[a-z]?)*)\s*[)\]]")
# Bare tokens count wherever non-word characters delimit them ("P1-P12", "x/zhang2021word"); a year
# followed by "-2020" or ".5" is a range or a number, not a citation.
_BARE_AY = re.compile(rf"(?<![\w@])(?P<names>{_NAMES}),?\s+(?P<year>{_YEAR})[a-z]?(?!\w|[-–]\d|[.,]\d)")
_BARE_SHORT = re.compile(r"(?<![\w@#])(?:[Pp][-\s]?0*(\d{1,4})|(?:[Pp]apers?|[Rr]efs?\.?|[Rr]eferences?)\s*#?\s*0*(\d{1,4}))"
                         r"(?!\w|[.,]\d)")
# a key glued from letters and a year: zhang2021word, Zhang2021Word, Vaswani2017, @zhang2021
_KEYLIKE = re.compile(rf"(?<![\w@])@?([A-Za-z][A-Za-z'’]*{_YEAR}[a-z]?[A-Za-z0-9]*)(?!\w)")
# any other key-shaped token inside a group: no spaces, two digits in a row (DBLP:conf/acl/Zhang21)
_KEYISH = re.compile(r"^@?[A-Za-z][\w:./+'’-]*\d\d[\w:./+'’-]*$")
# brackets some models write in full width, and their ASCII forms
_WIDE_BRACKETS = str.maketrans("［］｛｝＜＞（）【】〔〕〈〉《》", "[]{}<>()[][]<><>")
_AT_KEY = re.compile(r"(?<![\w.])@([A-Za-z][\w:.]*\w)")
_KEY_PARTS = re.compile(rf"^([A-Za-z][A-Za-z'’\-]*?)({_YEAR})[a-z]?([A-Za-z]*)\d*$")
_SPECIAL = re.compile(r"<\|[^|>]{1,40}\|>|</?s>|\x00|[\x01-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]")
# capitalised words that precede a year in prose without naming an author ("Since 2019", "In May 2020")
_NOT_NAMES = set("""in since from during until till before after by as of on at for the this that these those
early late mid around circa through throughout between version released published year years spring summer
autumn fall winter january february march april may june july august september october november december
jan feb mar apr jun jul aug sep sept oct nov dec and or but also up to about over under beginning end vol
volume edition proceedings conference workshop challenge task competition shared benchmark dataset track
cup world season census report fiscal semeval neurips interspeech coling eccv iccv cvpr icml iclr acl emnlp
naacl eacl aacl lrec conll wmt iwslt tacl aaai ijcai kdd sigir icassp until within last next every each
windows office python java""".split())
_NEAR_MISS = 0.85          # difflib ratio for a misspelt key or title to be repaired
_TIE = 0.03                # another paper this close to the best near miss makes it ambiguous


@dataclass
class VerifyReport:
    kept: int = 0
    repaired: list = field(default_factory=list)      # (as written, key, why)
    dropped: list = field(default_factory=list)       # (as written, why): names no paper the prompt showed
    flagged: list = field(default_factory=list)       # (as written, candidate keys, why): could name several
    deduped: int = 0
    repeated_sentences: int = 0
    unsupported_sentences: int = 0                    # sentences naming a paper that was not retrieved
    mentions_added: list = field(default_factory=list)  # (title, key)
    fallback: bool = False

    def merge(self, other: "VerifyReport") -> "VerifyReport":
        self.kept += other.kept
        self.repaired += other.repaired
        self.dropped += other.dropped
        self.flagged += other.flagged
        self.deduped += other.deduped
        self.repeated_sentences += other.repeated_sentences
        self.unsupported_sentences += other.unsupported_sentences
        self.mentions_added += other.mentions_added
        self.fallback = self.fallback or other.fallback
        return self

    def summary(self) -> str:
        return (f"{self.kept} citations kept, {len(self.repaired)} repaired, {len(self.dropped)} dropped, "
                f"{len(self.flagged)} ambiguous flagged and removed, "
                f"{self.deduped} duplicates removed, {self.repeated_sentences} repeated sentences removed, "
                f"{self.unsupported_sentences} sentences naming unretrieved work removed, "
                f"{len(self.mentions_added)} title mentions cited"
                + (", fallback sentence added" if self.fallback else ""))

    def problems(self) -> list:
        """One line per citation taken out of the draft: dropped ones, then flagged ones."""
        return ([f"dropped {w!r}: {why}" for w, why in self.dropped]
                + [f"flagged {w!r}: {why} (could be {', '.join(c)})" for w, c, why in self.flagged])


def _norm(s: str) -> str:
    s = unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", " ", s).strip()


@dataclass
class Resolution:
    key: Optional[str]              # the short key, when the item names exactly one paper
    status: str                     # "ok", "repaired", "dropped" or "ambiguous"
    why: str = ""
    candidates: tuple = ()          # for "ambiguous": the short keys it could name


class KeyResolver:
    """Maps whatever the model wrote inside a citation to exactly one short key, or says why not.
    aliases: other keys the prompt showed ("Vaswani2017Attention" -> "P3")."""

    def __init__(self, shorts: dict, aliases: Optional[dict] = None):
        self.shorts = shorts                                   # "P3" -> Paper
        self.aliases = {a: k for a, k in (aliases or {}).items() if k in shorts}
        self.by_alias = {a.lower(): k for a, k in self.aliases.items()}
        self.by_bib = {p.key.lower(): k for k, p in shorts.items()}
        self.by_title = {_norm(p.title): k for k, p in shorts.items()}

    # -- keys --
    def _near_miss(self, low: str, table: dict):
        scored = {}
        for cand, k in table.items():
            r = difflib.SequenceMatcher(None, low, cand).ratio()
            if r >= _NEAR_MISS - _TIE:
                scored[k] = max(scored.get(k, 0.0), r)
        if not scored:
            return None
        best = max(scored.values())
        if best < _NEAR_MISS:
            return None
        return tuple(sorted((k for k, r in scored.items() if r >= best - _TIE), key=_short_order))

    def _same_author_year(self, raw: str):
        """Candidates for a glued key "Surname2021Word" by first author and year, narrowed by the word."""
        m = _KEY_PARTS.match(raw)
        if not m:
            return None
        surname, year, word = _norm(m.group(1)).replace(" ", ""), int(m.group(2)), m.group(3).lower()
        found = [k for k, p in self.shorts.items() if p.year == year and p.authors
                 and _norm(last_name(p.authors[0])).split()[-1:] == [surname]]
        if len(found) > 1 and word:
            narrowed = [k for k in found if any(w.startswith(word[:4]) for w in _norm(self.shorts[k].title).split())]
            found = narrowed or found
        return found

    def resolve(self, item: str) -> Resolution:
        raw = _LEAD.sub("", item.strip().strip("'\"`*").strip()).strip().lstrip("@").strip()
        if not raw:
            return Resolution(None, "dropped", "empty")
        m = _SHORT.match(raw)
        if m:
            k = f"P{int(m.group(1) or m.group(2))}"
            if k in self.shorts:
                return Resolution(k, "ok") if raw == k else Resolution(k, "repaired", f"spelling '{raw}'")
            return Resolution(None, "dropped", f"no paper {k} among the {len(self.shorts)} given")
        if raw in self.aliases:
            return Resolution(self.aliases[raw], "ok")
        low = raw.lower()
        if low in self.by_alias:
            return Resolution(self.by_alias[low], "repaired", f"key spelling '{raw}'")
        if low in self.by_bib:
            return Resolution(self.by_bib[low], "repaired", "BibTeX key")
        if " " not in raw:
            close = self._near_miss(low, {**self.by_bib, **self.by_alias})
            if close and len(close) == 1:
                return Resolution(close[0], "repaired", f"near-miss key '{raw}'")
            if close:
                return Resolution(None, "ambiguous", f"near-miss key '{raw}' as close to several papers", close)
            found = self._same_author_year(raw)
            if found is not None and len(found) == 1:
                return Resolution(found[0], "repaired", f"same author and year as key '{raw}'")
            if found:
                return Resolution(None, "ambiguous", "author and year match several papers", tuple(found))
        ay = _AY_ITEM.match(raw)
        if ay:
            return self.author_year_resolution(ay.group("names"), int(ay.group("year")))
        n = _norm(raw)
        if len(n.split()) >= 3:
            if n in self.by_title:
                return Resolution(self.by_title[n], "repaired", "title")
            close = self._near_miss(n, self.by_title)
            if close and len(close) == 1:
                return Resolution(close[0], "repaired", "near-miss title")
            if close:
                return Resolution(None, "ambiguous", "title as close to several papers", close)
        return Resolution(None, "dropped", "not a key of a retrieved paper")

    # -- author-year --
    def author_year_candidates(self, names: str, year: int) -> list:
        """Shown papers whose first author's family name and year match; a second name written
        ("Li and Fan") narrows them by the second author."""
        parts = [x.strip() for x in re.split(r"\s+et\s+al\.?|,|\s+(?:and|&)\s+", names) if x.strip()]
        if not parts:
            return []
        first = _norm(parts[0])
        found = [k for k, p in self.shorts.items() if p.year == year and p.authors
                 and _norm(last_name(p.authors[0])) in (first, first.split()[-1] if first else "")]
        if len(found) > 1 and len(parts) > 1:
            second = _norm(parts[1])
            narrowed = [k for k in found if len(self.shorts[k].authors) > 1
                        and _norm(last_name(self.shorts[k].authors[1])).split()[-1:] == second.split()[-1:]]
            found = narrowed or found
        return found

    def author_year_resolution(self, names: str, year: int) -> Resolution:
        found = self.author_year_candidates(names, year)
        if len(found) == 1:
            return Resolution(found[0], "repaired", "author-year")
        if found:
            return Resolution(None, "ambiguous", "author-year matches several retrieved papers", tuple(found))
        return Resolution(None, "dropped", "author-year matches no retrieved paper")

    def author_year(self, surname: str, year: int) -> Optional[str]:
        """The one shown paper by this first author in this year, else None (none, or several)."""
        found = self.author_year_candidates(surname, year)
        return found[0] if len(found) == 1 else None


def _short_order(k: str):
    return int(k[1:]) if k[1:].isdigit() else 1 << 30


def _is_name(names: str) -> bool:
    """Whether the names of an author-year match name people: the first family name has a lower-case
    letter (not an acronym: "BERT (2019)") and is not a word that precedes years in prose."""
    words = [w for w in re.split(r"\s+", names.strip()) if w[:1].isupper()]
    first = words[0] if words else ""
    return bool(re.search(r"[a-zß-ÿ]", first)) and first.lower().strip("'’-") not in _NOT_NAMES


def _citation_item(x: str) -> bool:
    """Whether one item of a group looks like a citation (a key, a key-shaped token or an author-year)."""
    x = _LEAD.sub("", x.strip().strip("'\"`*")).strip()
    if not x:
        return False
    if _SHORT.match(x) or _AT_KEY.fullmatch(x) or _KEYLIKE.fullmatch(x) or _KEYISH.match(x):
        return True
    ay = _AY_ITEM.match(x)
    return bool(ay and _is_name(ay.group("names")))


def _group_items(content: str) -> list:
    items = [x for x in re.split(r"[;,]|\s+and\s+", content) if x.strip()]
    if re.search(_YEAR, content) and not any(_SHORT.match(x.strip()) for x in items):
        items = [x for x in content.split(";") if x.strip()]     # "Zhang et al., 2021; Li and Fan, 2022"
    return items


def _looks_like_citation(content: str) -> bool:
    items = [x.strip() for x in re.split(r"[,;]|\band\b", content) if x.strip()]
    return bool(items) and any(_SHORT.match(x) or re.match(r"^@?[A-Za-z][\w:-]*\d{2,4}[\w:-]*$", x)
                               or re.search(_YEAR, x) for x in items)


def find_citation_like(text: str) -> list:
    """Every span of text that reads like a citation in a form verify_paragraph knows (keys in any
    brackets or bare, author-years, \\\\cite commands, @keys), as written; words that precede a year in
    ordinary prose ("Since 2019") are not. Used by the final sweep and by scrub_citations."""
    found = []
    for rx in (_CITE_CMD, _NARRATIVE, _BARE_AY):
        for m in rx.finditer(text):
            if rx is _CITE_CMD or _is_name(m.group("names")):
                found.append(m.group(0))
    for rx in (_BARE_SHORT, _KEYLIKE, _AT_KEY):
        found += [m.group(0) for m in rx.finditer(text)]
    for rx in (_BRACKET, _BRACE, _ANGLE):
        found += [m.group(0) for m in rx.finditer(text) if _looks_like_citation(m.group(1))]
    return found


def scrub_citations(text: str) -> tuple:
    """(text without any citation-like span, the spans removed): for text that must cite nothing,
    like a theme's name."""
    removed = find_citation_like(text)
    for r in removed:
        text = text.replace(r, " ")
    return re.sub(r"\s+", " ", re.sub(r"\(\s*\)|\[\s*\]", " ", text)).strip(" ,;:-"), removed


def clean_model_text(text: str, headings: Optional[list] = None) -> str:
    """The model's text on one line, without special tokens, control characters and heading lines
    (headings are Scholar's to write; they are appended to `headings` when a list is given)."""
    text = _SPECIAL.sub("", text or "").translate(_WIDE_BRACKETS)
    lines = []
    for line in text.splitlines():
        s = line.strip()
        if re.match(r"^#{1,6}\s", s) or re.match(r"^(\*\*)?related work(\*\*)?:?$", s, re.I):
            if headings is not None:
                headings.append(s)
            continue
        lines.append(s)
    return re.sub(r"\s+", " ", " ".join(lines)).strip()


def verify_paragraph(text: str, shorts: dict, theme_keys: Sequence[str] = (),
                     theme_name: str = "", seen_sentences: Optional[set] = None,
                     aliases: Optional[dict] = None) -> tuple:
    """-> (canonical text, VerifyReport). shorts: "P1" -> Paper for every paper the text may cite (the
    drafter passes the papers the paragraph's prompt showed; any other key is dropped). aliases: the
    other keys the prompt showed them under ("Vaswani2017Attention" -> "P1"), when it did.
    seen_sentences: normalised sentences of earlier paragraphs (updated), so a sentence the model
    repeats across paragraphs is kept once."""
    rep = VerifyReport()
    res = KeyResolver(shorts, aliases)
    slots = []                                            # keys per placeholder
    KILL = "\x01"                                         # marks a sentence that cites what we lack

    def put(keys):
        slots.append(keys)
        return f" \x00{len(slots) - 1}\x00"

    def record(written: str, r: Resolution, unplaced: str = "") -> Optional[str]:
        """Reports r; unplaced: what happens to the text when r names no single paper."""
        written, why = written.strip(), r.why + (f"; {unplaced}" if unplaced and r.key is None else "")
        if r.status == "ok":
            rep.kept += 1
        elif r.status == "repaired":
            rep.repaired.append((written, r.key, why))
        elif r.status == "ambiguous":
            rep.flagged.append((written, r.candidates, why))
        else:
            rep.dropped.append((written, why))
        return r.key

    def resolve_items(items):
        keys = []
        for it in items:
            k = record(_LEAD.sub("", it.strip()) or it, res.resolve(it))
            if k is not None:
                keys.append(k)
        return keys

    headings = []
    text = clean_model_text(text, headings)
    for h in headings:
        rep.dropped += [(x, "in a heading line the model wrote (Scholar writes the headings); removed")
                        for x in find_citation_like(h)]
    text = _CITE_CMD.sub(lambda m: put(resolve_items(m.group(1).split(","))), text)

    def narrative(m):                                     # "Zhang et al. (2021) show ...", "Li [2022]"
        if not _is_name(m.group("names")):
            return m.group(0)
        years = re.findall(_YEAR, m.group("years"))
        keys = []
        for y in years:
            k = record(m.group(0), res.author_year_resolution(m.group("names"), int(y)), "sentence removed")
            if k is None:
                return KILL
            keys.append(k)
        return m.group("names") + put(keys)

    text = _NARRATIVE.sub(narrative, text)

    def bracket(m):                                       # "[P1, P4]", "[Zhang et al., 2021]", "[a title]"
        content = m.group(1)
        items = _group_items(content)
        if items and all(_citation_item(x) for x in items):
            return put(resolve_items(items))
        if len(_norm(content).split()) >= 3 and res.resolve(content).status in ("ok", "repaired", "ambiguous"):
            return put(resolve_items([content]))
        return "(" + content + ")"                        # prose in brackets (bare passes look inside)

    text = _BRACKET.sub(bracket, text)

    def group(m):                                         # "(P9)", "{P9}", "<P8>", "(Zhang et al., 2021; Li, 2022)"
        items = _group_items(m.group(1))
        if not items or not all(_citation_item(x) for x in items):
            return m.group(0)                             # prose in parentheses (bare passes look inside)
        return put(resolve_items(items))

    for rx in (_BRACE, _ANGLE, _PARENS):
        text = rx.sub(group, text)

    def bare_author_year(m):                              # "Zhang et al., 2021 show", "Zhang 2021"
        if not _is_name(m.group("names")):
            return m.group(0)
        k = record(m.group(0), res.author_year_resolution(m.group("names"), int(m.group("year"))),
                   "sentence removed")
        return m.group("names") + put([k]) if k is not None else KILL

    text = _BARE_AY.sub(bare_author_year, text)

    def bare_key(m):                                      # "P12 shows", "as zhang2021word found"
        k = record(m.group(0), res.resolve(m.group(0)), "sentence removed")
        return put([k]) if k is not None else KILL

    text = _BARE_SHORT.sub(bare_key, text)
    text = _AT_KEY.sub(bare_key, text)
    text = _KEYLIKE.sub(bare_key, text)
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
        if KILL in s:
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
        s = re.sub(r"\(\s*(?:(?:e\.g\.|i\.e\.|cf\.|see(?: also)?|and)\s*[,;]?\s*)*[,;]?\s*\)", "", s, flags=re.I)
        # a removed citation can leave "see and." / "by ,." behind
        if removed:
            s = re.sub(r"(?:\s*(?:,|\band\b|\bor\b|\bsee\b|\bby\b|\bin\b))+\s*([.;:!?])$", r"\1", s, flags=re.I)
        # merge adjacent groups "[P1] [P2]" -> "[P1, P2]"
        while True:
            s2 = re.sub(r"\[(P\d+(?:, P\d+)*)\]\s*\[(P\d+(?:, P\d+)*)\]", r"[\1, \2]", s)
            if s2 == s:
                break
            s = s2
        leftover = find_citation_like(CANON.sub(" ", s))
        if leftover:                                      # a form the passes above did not place
            rep.dropped += [(x, "citation in a form the verifier could not place; sentence removed")
                            for x in leftover]
            rep.unsupported_sentences += 1
            continue
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
