"""Make a model's translation safe for its place in a markdown document, so no reply can change the
document's structure.

The segmenter (liquidlfm.segment) keeps every piece of markup verbatim, but a translation is model
output and lands between that markup as it is: ``X | Y`` splits a table cell, a blank line followed by
``# Z`` ends a list and starts a heading, ``]`` ends a link's text early, a backtick pairs with one of the
document's code spans. ``fit_to_place`` rewrites a translation so that it is inline text of the same
kind as the source piece:

- everywhere: line breaks become one space (the source piece was one line of running text: the
  translator joins wrapped lines before sending it); in a table cell every ``|`` is escaped (``\\|``,
  GFM's way); elsewhere every ``|``, escaped or not, becomes ``&#124;`` (a line with any pipe, even
  ``\\|``, above a ``---`` setext underline reads as a table header in GFM parsers such as markdown-it;
  the entity has no pipe);
  a trailing backslash is doubled (it would escape the markup that follows, e.g. a link's closing ``]``);
- backticks, ``<`` and ``[`` ``]`` are escaped unless the source piece had them itself (then they are the
  source's own markup, carried over): the model cannot open code spans, raw HTML or links of its own;
- link or image text: ``[`` and ``]`` are escaped whenever they are unbalanced, so the text cannot end
  early;
- at the start of a line or of a list item / block quote (``line_start``): a leading ``#`` (heading),
  ``>`` (quote), ``-`` ``+`` ``*`` + space (list item), ``1.`` / ``1)`` + space (ordered list), a
  thematic break or setext underline (``---``, ``***``, ``___``, ``===``), a code fence, ``<`` (HTML block)
  or ``[`` (link definition) is backslash-escaped;
- heading text: a trailing ``#`` run (which markdown would read as the closing sequence) is escaped;
- an empty (or blank) reply keeps the source piece: nothing would remove a paragraph or turn a setext
  heading's underline into a thematic break.

A backslash before ASCII punctuation renders as the character alone (and ``&#124;`` as ``|``), so
escaping never changes what a reader sees; it only stops the character from acting as markup.
Already-escaped characters are left as they are.
"""
from __future__ import annotations

import re

__all__ = ["fit_to_place", "starts_line"]

_BREAKS = re.compile(r"[ \t]*(?:\r\n|\r|\n)\s*")
_ASCII_PUNCT = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
# what the line holds before a piece when the piece starts a block: indentation, quote markers, list
# markers (with a task box)
_CONTAINER_PREFIX = re.compile(r"^[ \t]*(?:(?:>[ \t]?)|(?:(?:[-*+]|\d{1,9}[.)])(?:[ \t]+(?:\[[ xX]\][ \t]+)?|$)))*"
                               r"[ \t]*$")
_LEADING = re.compile(
    r"""^(?:
        (?P<hash>\#{1,6})(?=[ \t]|$)                 # ATX heading
      | (?P<quote>>)                                 # block quote
      | (?P<bullet>[-+*])(?=[ \t]|$)                 # bullet list item
      | \d{1,9}(?P<ordered>[.)])(?=[ \t]|$)          # ordered list item
      | (?P<brk>[-*_=])(?=[-*_=\ \t]*$)              # thematic break / setext underline
      | (?P<fence>`{3,}|~{3,})                        # code fence
      | (?P<lt><)                                    # HTML block
      | (?P<bracket>\[)                              # link reference definition
    )""", re.VERBOSE)


def starts_line(line_before: str) -> bool:
    """True if a piece placed after ``line_before`` (the document's current line up to the piece) begins
    a block's text: only indentation, quote markers and list markers precede it."""
    return bool(_CONTAINER_PREFIX.match(line_before))


PIPE = "&#124;"


def _escape(text: str, chars: set, pipe: str) -> str:
    """Backslash-escape the characters in chars, leaving existing escapes (a backslash before ASCII
    punctuation) as they are; every pipe, escaped or not, becomes ``pipe``."""
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in _ASCII_PUNCT:
            out.append(pipe if text[i + 1] == "|" else text[i:i + 2])
            i += 2
            continue
        out.append(pipe if ch == "|" else "\\" + ch if ch in chars else ch)
        i += 1
    return "".join(out)


def _unescaped(text: str, ch: str) -> int:
    """How many times ch occurs in text not escaped by a backslash."""
    n, i = 0, 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in _ASCII_PUNCT:
            i += 2
            continue
        n += text[i] == ch
        i += 1
    return n


def _balanced_brackets(text: str) -> bool:
    depth, i = 0, 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in _ASCII_PUNCT:
            i += 2
            continue
        depth += {"[": 1, "]": -1}.get(text[i], 0)
        if depth < 0:
            return False
        i += 1
    return depth == 0


def fit_to_place(translation: str, source: str, *, where: str = "text", line_start: bool = False) -> str:
    """``translation`` rewritten so it is inline text for the place of ``source`` (see the module
    docstring). where: "text", "cell", "heading" or "link" (Segment.where)."""
    if where not in ("text", "cell", "heading", "link"):
        raise ValueError(f"where must be 'text', 'cell', 'heading' or 'link', got {where!r}")
    t = _BREAKS.sub(" ", translation).strip()
    if not t:
        return source  # an empty reply would leave an empty paragraph / setext line: keep the source
    chars = set()
    for ch in "`<":
        if not _unescaped(source, ch):
            chars.add(ch)
    if not (_unescaped(source, "[") or _unescaped(source, "]")) or (where == "link" and not _balanced_brackets(t)):
        chars |= {"[", "]"}
    t = _escape(t, chars, "\\|" if where == "cell" else PIPE)
    # a lone trailing backslash would escape the markup after the piece
    tail = len(t) - len(t.rstrip("\\"))
    if tail % 2:
        t += "\\"
    if line_start:
        m = _LEADING.match(t)
        if m:
            k = next(g for g, v in m.groupdict().items() if v is not None)
            at = m.start("ordered") if k == "ordered" else 0
            if not (at < len(t) and t[at - 1:at] == "\\"):
                t = t[:at] + "\\" + t[at:]
    if where == "heading":
        m = re.search(r"([ \t])(#+)[ \t]*$", t)
        if m:
            t = t[:m.start(2)] + "\\" + t[m.start(2):]
        elif re.fullmatch(r"#+", t):
            t = "\\" + t
    return t
