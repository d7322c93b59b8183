"""Split text into translatable pieces and the markup around them, so that the document structure is
decided here and never by the model.

    segs = segment(markdown_text)
    assert rebuild(segs) == markdown_text                 # exact round trip (identity)
    out = rebuild(segs, lambda s: translate_one(s))       # only pieces with .translate=True change

A document is a list of `Segment(text, translate, kind)`. Concatenating every `text` gives back the
input byte for byte. Pieces with `translate=False` are markup the translator must keep verbatim:
blank lines, heading hashes, list markers and their indentation, table pipes and the delimiter row,
fenced and indented code blocks, inline code, link/image URLs, HTML tags, front matter, the whitespace
between sentences. Pieces with `translate=True` are single sentences (or table cells, link texts,
heading texts) with no leading/trailing whitespace and at least one letter.

Sentences are split after `. ! ? …` followed by whitespace (and after `。！？` directly), keeping
common abbreviations (Mr., Dr., e.g., U.S., single-letter initials ...) and never splitting before a
lower-case letter. This works for English and Korean (whose sentences end in `다.`, `요?` ...), and
reasonably for the other Latin-script languages.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterable, List, Optional, Union

__all__ = ["Segment", "segment", "segment_plain", "split_sentences", "rebuild"]


@dataclass(frozen=True)
class Segment:
    text: str
    translate: bool
    kind: str = "text"  # text | markup | code | space
    # where a translatable piece sits: text | cell (table cell) | heading | link (link / image text);
    # the translator makes each translation safe for its place (liquidlfm.translate.markup)
    where: str = "text"

    def __repr__(self) -> str:  # compact in test failure output
        w = f", {self.where}" if self.translate and self.where != "text" else ""
        return f"Segment({self.text!r}, {'T' if self.translate else '-'}, {self.kind}{w})"


# ---- sentence splitting ----

_ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "e.g", "i.e", "cf", "inc", "ltd",
    "co", "corp", "no", "nos", "fig", "figs", "eq", "eqs", "approx", "u.s", "u.k", "u.n", "e.u",
    "a.m", "p.m", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
    "gen", "gov", "sen", "rep", "rev", "lt", "col", "capt", "sgt", "vol", "pp", "ch", "sec", "al",
    "dept", "est", "ft", "jan", "ph.d", "m.d", "b.a", "m.a", "b.sc", "m.sc",
}

# end punctuation, then closing quotes/brackets, then the whitespace that separates sentences
_SENT_END = re.compile(r"([.!?…]+|[。！？]+)([\"'”’)\]」』»]*)(\s+|(?<=[。！？」』])(?=\S))")
_WORD_BEFORE = re.compile(r"([A-Za-z][A-Za-z.]*)$")


def _is_abbreviation(before: str) -> bool:
    m = _WORD_BEFORE.search(before)
    if not m:
        return False
    word = m.group(1).lower().rstrip(".")
    if word in _ABBREVIATIONS:
        return True
    if len(word) == 1 and word.isalpha():  # initials: "J. R. R. Tolkien"
        return True
    if re.fullmatch(r"(?:[a-z]\.)+[a-z]", word):  # U.S.A, e.g with dots inside
        return True
    return False


def split_sentences(text: str) -> List[str]:
    """Split a run of prose into sentences *including* the whitespace after each one, so
    ``"".join(split_sentences(t)) == t``."""
    out: List[str] = []
    start = 0
    for m in _SENT_END.finditer(text):
        end = m.end()
        punct_end = m.end(2)
        if end >= len(text):
            break
        nxt = text[end]
        if nxt.islower() and nxt.isascii():
            continue  # "e.g. this", "etc. and" — not a sentence boundary
        if m.group(1) == "." and _is_abbreviation(text[start : m.start(1)]):
            continue
        if m.group(1) == "." and m.start(1) > 0 and text[m.start(1) - 1].isdigit() and nxt.isdigit():
            continue  # "version 2. 3" is odd; keep numbers together
        out.append(text[start:end])
        start = end
        del punct_end
    if start < len(text):
        out.append(text[start:])
    return out


# ---- inline markdown ----

_INLINE = re.compile(
    r"""
    (?P<code>(?P<ticks>`+)[\s\S]*?(?P=ticks))                                   # `code`
  | (?P<link>(?P<bang>!?)\[(?P<ltext>(?:[^\[\]\\]|\\.|\[[^\[\]]*\])*)\]
        (?P<ltail>\((?:[^()\s]|\([^()]*\))*(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)|\[[^\[\]]*\]))  # [t](u) [t][r]
  | (?P<footnote>\[\^[^\]\s]+\])                                                 # [^1]
  | (?P<autolink><(?:https?|ftp|mailto):[^<>\s]+>)                               # <http://..>
  | (?P<url>(?:https?|ftp)://[^\s<>()\[\]]*[^\s<>()\[\].,;:!?'"])               # bare URL
  | (?P<html></?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>|<!--[\s\S]*?-->)          # inline HTML
  | (?P<escape>\\[\\`*_{}\[\]()#+\-.!|<>])                                       # keep \| etc. as text
    """,
    re.VERBOSE,
)


def _has_letter(s: str) -> bool:
    return any(ch.isalpha() for ch in s)


def _prose(text: str, out: List[Segment], where: str = "text") -> None:
    """Sentences of a prose run: translatable cores, whitespace kept verbatim."""
    for sent in split_sentences(text):
        core = sent.strip()
        if not core or not _has_letter(core):
            out.append(Segment(sent, False, "space" if not core else "markup"))
            continue
        i = sent.index(core)
        if i:
            out.append(Segment(sent[:i], False, "space"))
        out.append(Segment(core, True, "text", where))
        if i + len(core) < len(sent):
            out.append(Segment(sent[i + len(core) :], False, "space"))


def _inline(text: str, out: List[Segment], where: str = "text") -> None:
    """Inline markdown: code spans, URLs and HTML kept, link texts translated on their own."""
    pos = 0
    buf = ""  # prose accumulated (escapes stay inside prose)
    for m in _INLINE.finditer(text):
        if m.group("escape"):
            continue  # part of the surrounding prose
        buf = text[pos : m.start()]
        if buf:
            _prose(buf, out, where)
        if m.group("link"):
            lt = m.group("ltext")
            head = m.group("bang") + "["
            out.append(Segment(head, False, "markup"))
            if lt:
                _inline(lt, out, "link")
            out.append(Segment("]" + m.group("ltail"), False, "markup"))
        else:
            out.append(Segment(m.group(0), False, "code" if m.group("code") else "markup"))
        pos = m.end()
    if pos < len(text):
        _prose(text[pos:], out, where)


# ---- block markdown ----

_FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})")
_HEADING = re.compile(r"^( {0,3}#{1,6})([ \t]+|$)")
_HEADING_CLOSE = re.compile(r"([ \t]+#+[ \t]*|[ \t]+)$")
_HR = re.compile(r"^ {0,3}(?:(?:-[ \t]*){3,}|(?:\*[ \t]*){3,}|(?:_[ \t]*){3,}|=+[ \t]*)$")
_LIST = re.compile(r"^([ \t]*(?:>[ \t]?)*[ \t]*)([-*+]|\d{1,9}[.)])([ \t]+(?:\[[ xX]\][ \t]+)?|$)")
_QUOTE = re.compile(r"^([ \t]*(?:>[ \t]?)+)")
_TABLE_DELIM = re.compile(r"^[ \t]*\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")
_HTML_BLOCK = re.compile(r"^[ \t]*</?[A-Za-z][A-Za-z0-9-]*(?:[\s/>]|$)")
_LINK_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:[ \t]*\S")
_INDENTED = re.compile(r"^(?: {4}|\t)")


def _split_lines(text: str) -> List[str]:
    return text.splitlines(keepends=True)


def _eol(line: str):
    body = line.rstrip("\r\n")
    return body, line[len(body) :]


def _table_row(line: str, out: List[Segment]) -> None:
    body, eol = _eol(line)
    cells: List[str] = []
    cur = ""
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            cur += body[i : i + 2]
            i += 2
            continue
        if ch == "`":
            j = i
            while j < len(body) and body[j] == "`":
                j += 1
            ticks = body[i:j]
            k = body.find(ticks, j)
            if k >= 0:
                cur += body[i : k + len(ticks)]
                i = k + len(ticks)
                continue
        if ch == "|":
            cells.append(cur)
            cells.append("|")
            cur = ""
        else:
            cur += ch
        i += 1
    cells.append(cur)
    for c in cells:
        if c == "|":
            out.append(Segment("|", False, "markup"))
        elif c:
            _inline(c, out, "cell")
    if eol:
        out.append(Segment(eol, False, "space"))


def _is_table_start(lines: List[str], i: int) -> bool:
    return "|" in lines[i] and i + 1 < len(lines) and bool(_TABLE_DELIM.match(_eol(lines[i + 1])[0])) \
        and "-" in lines[i + 1]


def _starts_block(line: str) -> bool:
    body = _eol(line)[0]
    return bool(
        not body.strip()
        or _FENCE.match(body)
        or _HEADING.match(body)
        or _HR.match(body)
        or _LIST.match(body)
        or _QUOTE.match(body)
        or _HTML_BLOCK.match(body)
        or _LINK_DEF.match(body)
        or body.lstrip().startswith("|")
    )


def segment(text: str) -> List[Segment]:
    """Segment a (markdown or plain) document. ``rebuild(segment(t)) == t`` for every string."""
    if not isinstance(text, str):
        raise TypeError(f"segment() expects str, got {type(text).__name__}")
    out: List[Segment] = []
    lines = _split_lines(text)
    n = len(lines)
    i = 0
    prev_blank = True
    in_list = False
    # YAML front matter at the very top
    if n and _eol(lines[0])[0] == "---":
        j = 1
        while j < n and _eol(lines[j])[0] not in ("---", "..."):
            j += 1
        if j < n:
            out.append(Segment("".join(lines[: j + 1]), False, "code"))
            i = j + 1
    while i < n:
        line = lines[i]
        body, eol = _eol(line)
        # blank line
        if not body.strip():
            out.append(Segment(line, False, "space"))
            prev_blank = True
            i += 1
            continue
        # fenced code block: verbatim to the closing fence (or the end of the document)
        m = _FENCE.match(body)
        if m:
            fence = m.group(2)
            j = i + 1
            while j < n:
                b = _eol(lines[j])[0].strip()
                if b.startswith(fence[0] * len(fence)) and not b.strip(fence[0]):
                    break
                j += 1
            j = min(j, n - 1)
            out.append(Segment("".join(lines[i : j + 1]), False, "code"))
            i = j + 1
            prev_blank = in_list = False
            continue
        # indented code block (after a blank line, not inside a list)
        if prev_blank and not in_list and _INDENTED.match(body):
            j = i
            while j < n and (_INDENTED.match(lines[j]) or not lines[j].strip()):
                j += 1
            while j > i and not lines[j - 1].strip():
                j -= 1  # trailing blank lines are ordinary blank lines
            out.append(Segment("".join(lines[i:j]), False, "code"))
            i = j
            prev_blank = False
            continue
        # HTML comment / block, link definitions: verbatim
        if body.lstrip().startswith("<!--"):
            j = i
            while j < n and "-->" not in lines[j]:
                j += 1
            j = min(j, n - 1)
            out.append(Segment("".join(lines[i : j + 1]), False, "markup"))
            i = j + 1
            prev_blank = False
            continue
        if _HTML_BLOCK.match(body) or _LINK_DEF.match(body) or _HR.match(body):
            out.append(Segment(line, False, "markup"))
            i += 1
            prev_blank = in_list = False
            continue
        # table: header row + delimiter row + rows containing a pipe
        if _is_table_start(lines, i):
            _table_row(lines[i], out)
            out.append(Segment(lines[i + 1], False, "markup"))
            i += 2
            while i < n and "|" in lines[i] and lines[i].strip():
                _table_row(lines[i], out)
                i += 1
            prev_blank = in_list = False
            continue
        # heading: hashes and closing hashes kept, text translated
        m = _HEADING.match(body)
        if m:
            out.append(Segment(body[: m.end()], False, "markup"))
            rest = body[m.end() :]
            c = _HEADING_CLOSE.search(rest)
            tail = ""
            if c and rest[: c.start()].strip():
                rest, tail = rest[: c.start()], rest[c.start() :]
            _inline(rest, out, "heading")
            if tail or eol:
                out.append(Segment(tail + eol, False, "markup"))
            i += 1
            prev_blank = in_list = False
            continue
        # list item / block quote: the prefix is kept, the text (with lazy continuation lines) translated
        prefix = ""
        m = _LIST.match(body)
        if m:
            prefix = m.group(0)
            in_list = True
        else:
            q = _QUOTE.match(body)
            if q:
                prefix = q.group(0)
            else:
                ws = len(body) - len(body.lstrip())
                prefix = body[:ws]
                if prev_blank and ws == 0:
                    in_list = False
        if prefix:
            out.append(Segment(prefix, False, "markup"))
        run = line[len(prefix) :]
        i += 1
        while i < n and not _starts_block(lines[i]) and not _is_table_start(lines, i):
            run += lines[i]
            i += 1
        rbody, reol = _eol(run)
        _inline(rbody, out)
        if reol:
            out.append(Segment(reol, False, "space"))
        prev_blank = False
    return _merge(out)


def segment_plain(text: str) -> List[Segment]:
    """Segment plain text (no markdown): paragraphs and sentences only."""
    out: List[Segment] = []
    for para in re.split(r"(\n[ \t]*\n\s*)", text):
        if not para:
            continue
        if not para.strip():
            out.append(Segment(para, False, "space"))
        else:
            _prose(para, out)
    return _merge(out)


def _merge(segs: Iterable[Segment]) -> List[Segment]:
    """Drop empty pieces and merge neighbouring verbatim pieces (fewer, larger markup pieces)."""
    out: List[Segment] = []
    for s in segs:
        if not s.text:
            continue
        if out and not s.translate and not out[-1].translate and s.kind != "code" and out[-1].kind != "code":
            prev = out[-1]
            out[-1] = Segment(prev.text + s.text, False, "markup" if "markup" in (prev.kind, s.kind) else "space")
        else:
            out.append(s)
    return out


def rebuild(segments: Iterable[Segment],
            translate: Optional[Union[Callable[[str], str], Iterable[str]]] = None) -> str:
    """Concatenate segments, replacing each translatable piece by ``translate(text)`` (a callable) or by
    the next item of an iterable of translations (one per translatable piece, in order)."""
    segments = list(segments)
    if translate is None:
        return "".join(s.text for s in segments)
    if callable(translate):
        return "".join(translate(s.text) if s.translate else s.text for s in segments)
    it = iter(translate)
    parts = []
    for s in segments:
        if s.translate:
            try:
                parts.append(next(it))
            except StopIteration:
                raise ValueError("rebuild(): fewer translations than translatable segments") from None
        else:
            parts.append(s.text)
    for _ in it:
        raise ValueError("rebuild(): more translations than translatable segments")
    return "".join(parts)
