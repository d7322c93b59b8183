"""Markdown / LaTeX / BibTeX rendering of a verified draft, and atomic file output."""
from __future__ import annotations

import re
import unicodedata

from .._files import atomic_write_bytes
from .verify import CANON

# ---- LaTeX ----

_TEX_CHARS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
              "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
              "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}"}
_TEX_UNICODE = {"‘": "`", "’": "'", "“": "``", "”": "''", "–": "--", "—": "---", "…": r"\ldots{}",
                "«": "<<", "»": ">>", "\u00a0": "~", "ß": r"{\ss}", "ø": r"{\o}", "Ø": r"{\O}",
                "æ": r"{\ae}", "Æ": r"{\AE}", "œ": r"{\oe}", "Œ": r"{\OE}", "ł": r"{\l}", "Ł": r"{\L}",
                "ı": r"{\i}", "×": r"$\times$", "→": r"$\rightarrow$", "≤": r"$\leq$", "≥": r"$\geq$",
                "±": r"$\pm$", "°": r"$^\circ$", "•": r"$\bullet$", "′": "'", "″": "''", "‐": "-",
                "‑": "-", "−": "-"}
_ACCENT_MACRO = {"\u0301": "'", "\u0300": "`", "\u0302": "^", "\u0308": '"', "\u0303": "~",
                 "\u0304": "=", "\u0307": ".", "\u0306": "u", "\u030c": "v", "\u030b": "H",
                 "\u0327": "c", "\u030a": "r", "\u0323": "d"}   # OT1-safe (no \\k ogonek: T1 only)


def tex_escape(s: str) -> str:
    """Plain text -> LaTeX that pdflatex compiles with its default (utf8 + OT1) setup."""
    out = []
    for ch in s:
        if ch in _TEX_CHARS:
            out.append(_TEX_CHARS[ch])
        elif ord(ch) < 128:
            out.append(ch)
        elif ch in _TEX_UNICODE:
            out.append(_TEX_UNICODE[ch])
        else:
            d = unicodedata.normalize("NFD", ch)
            base, marks = d[0], d[1:]
            if ord(base) < 128 and base.isalpha() and marks and all(m in _ACCENT_MACRO for m in marks):
                r = base if base not in "ij" else "\\" + base
                for m in marks:
                    r = f"\\{_ACCENT_MACRO[m]}{{{r}}}"
                out.append("{" + r + "}")
            else:
                a = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
                out.append(tex_escape(a) if a else "?")
    return "".join(out)


def _split(text: str):
    """Canonical text -> [(is_cite, str or [keys])]."""
    pos, out = 0, []
    for m in CANON.finditer(text):
        if m.start() > pos:
            out.append((False, text[pos:m.start()]))
        out.append((True, m.group(1).split(", ")))
        pos = m.end()
    if pos < len(text):
        out.append((False, text[pos:]))
    return out


def to_latex(draft) -> str:
    lines = [f"% Related work drafted by liquidlfm.scholar for: {_comment(draft.idea)}",
             f"% {draft.provenance()}", r"\section*{Related Work}", ""]
    for th in draft.themes:
        body = []
        for is_cite, v in _split(th.text):
            if is_cite:
                body.append(r"~\cite{" + ",".join(draft.shorts[k].key for k in v) + "}")
            else:
                body.append(tex_escape(v))
        text = re.sub(r"\s+~\\cite", r"~\\cite", "".join(body)).strip()
        lines += [r"\paragraph{" + tex_escape(th.name) + ".}", text, ""]
    return "\n".join(lines).rstrip() + "\n"


def _comment(s: str) -> str:
    return " ".join(s.split())[:200]


# ---- Markdown ----

def _md_escape(s: str) -> str:
    return re.sub(r"([\\`*_<>\[\]])", r"\\\1", s)


def to_markdown(draft) -> str:
    lines = ["## Related Work", "", f"<!-- {draft.provenance()} -->", ""]
    for th in draft.themes:
        body = []
        for is_cite, v in _split(th.text):
            if is_cite:
                refs = []
                for k in v:
                    p = draft.shorts[k]
                    label = f"{p.short_authors()}, {p.year or 'n.d.'}"
                    refs.append(f"[{_md_escape(label)}](#ref-{p.key})")
                body.append("(" + "; ".join(refs) + ")")
            else:
                body.append(_md_escape(v))
        lines += [f"### {_md_escape(th.name)}", "", "".join(body).strip(), ""]
    lines += ["### References", ""]
    for p in draft.cited_papers():
        authors = ", ".join(p.authors) if p.authors else "Anonymous"
        venue = f" {p.venue}." if p.venue else ""
        url = f" <{p.url}>" if p.url else ""
        lines.append(f'- <a id="ref-{p.key}"></a>`{p.key}` {_md_escape(authors)} ({p.year or "n.d."}). '
                     f"{_md_escape(p.title)}.{_md_escape(venue)}{url}")
    return "\n".join(lines).rstrip() + "\n"


# ---- BibTeX ----

def _bib_value(s: str) -> str:
    return tex_escape(s)


def to_bibtex(papers) -> str:
    """A .bib with exactly these papers. Entries that came from a .bib keep their original fields."""
    import bibtexparser
    from bibtexparser.model import Entry, Field

    lib = bibtexparser.Library()
    for p in papers:
        if p.bib is not None:
            fields = [Field(k, v) for k, v in p.bib.items()]
            lib.add(Entry(p.entry_type or "misc", p.key, fields))
            continue
        fields = [Field("title", "{" + _bib_value(p.title) + "}")]
        if p.authors:
            fields.append(Field("author", " and ".join(_bib_value(a) for a in p.authors)))
        if p.year:
            fields.append(Field("year", str(p.year)))
        etype = "misc"
        if p.venue:
            etype = "inproceedings"
            fields.append(Field("booktitle", _bib_value(p.venue)))
        if p.url:
            fields.append(Field("url", p.url.replace("}", "%7D").replace("{", "%7B")))
        if p.id and p.id != p.url:
            fields.append(Field("note", _bib_value(f"id: {p.id}")))
        lib.add(Entry(etype, p.key, fields))
    if lib.failed_blocks:
        raise RuntimeError(f"could not build BibTeX entries: {lib.failed_blocks[0]}")
    return bibtexparser.write_string(lib)


# ---- files ----

def atomic_write(path, text: str) -> None:
    """Write text (UTF-8, newlines as given) to path atomically: the old file or the whole new one."""
    atomic_write_bytes(path, [text.encode("utf-8")])
