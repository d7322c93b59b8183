"""Paper corpora: BibTeX, JSON Lines, JSON, CSV files or a folder of them -> list[Paper].

Every error names the file and the line / record / byte offset at fault, because a related-work
draft built from a silently half-read corpus is worse than none.
"""
from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

FORMATS_HELP = (
    "BibTeX (.bib), JSON Lines (.jsonl, one paper per line), JSON (.json, a list of papers) or "
    "CSV (.csv with a header row), each paper with title, abstract, authors, year, venue and id/url; "
    "or a folder of such files"
)
SUFFIXES = {".bib": "bib", ".bibtex": "bib", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json",
            ".csv": "csv"}


class CorpusError(ValueError):
    """A corpus file is missing, empty, malformed or not UTF-8; the message says where."""


@dataclass
class Paper:
    """One paper. `key` is its BibTeX key (unique within a corpus); `bib` keeps a BibTeX source
    entry's raw fields so the output .bib reproduces the user's own entry."""

    key: str
    title: str
    abstract: str = ""
    authors: tuple = ()
    year: Optional[int] = None
    venue: str = ""
    url: str = ""
    id: str = ""
    source: str = ""
    entry_type: str = "article"
    bib: Optional[dict] = field(default=None, repr=False)

    def short_authors(self) -> str:
        names = [last_name(a) for a in self.authors]
        if not names:
            return "Anonymous"
        if len(names) == 1:
            return names[0]
        if len(names) == 2:
            return f"{names[0]} and {names[1]}"
        return f"{names[0]} et al."

    def to_dict(self) -> dict:
        return {"key": self.key, "title": self.title, "abstract": self.abstract,
                "authors": list(self.authors), "year": self.year, "venue": self.venue,
                "url": self.url, "id": self.id, "source": self.source, "entry_type": self.entry_type}


# ---- helpers ----

def last_name(author: str) -> str:
    """The family name of an author string ("Last, First" or "First Last")."""
    author = author.strip()
    if "," in author:
        return author.split(",", 1)[0].strip()
    parts = author.split()
    if not parts:
        return author
    # keep particles ("van Genabith") so the short form reads like a citation
    i = len(parts) - 1
    while i > 0 and parts[i - 1][:1].islower():
        i -= 1
    return " ".join(parts[i:])


def ascii_word(s: str) -> str:
    s = unicodedata.normalize("NFKD", s)
    return re.sub(r"[^a-z0-9]", "", s.encode("ascii", "ignore").decode().lower())


KEY_STOPWORDS = {"a", "an", "the", "on", "of", "in", "for", "to", "and", "with", "from", "towards",
             "toward", "is", "are", "via", "by", "at", "what", "how", "when", "do", "does", "can"}


def make_key(authors: Iterable[str], year: Optional[int], title: str) -> str:
    """zhang2021bidirectional — first author's surname, year, first content word of the title."""
    authors = list(authors)
    last = ascii_word(last_name(authors[0]).split()[-1]) if authors and last_name(authors[0]) else ""
    word = ""
    for w in re.findall(r"[^\W_]+", title):
        a = ascii_word(w)
        if a and a not in KEY_STOPWORDS:
            word = a
            break
    key = f"{last or 'anon'}{year or ''}{word}"
    return key or "paper"


_LATEX_ACCENTS = {"'": "\u0301", "`": "\u0300", "^": "\u0302", '"': "\u0308", "~": "\u0303",
                  "=": "\u0304", ".": "\u0307", "u": "\u0306", "v": "\u030c", "H": "\u030b",
                  "c": "\u0327", "k": "\u0328", "r": "\u030a"}
_LATEX_SYMBOLS = {r"\ss": "ß", r"\o": "ø", r"\O": "Ø", r"\ae": "æ", r"\AE": "Æ", r"\oe": "œ",
                  r"\l": "ł", r"\L": "Ł", r"\aa": "å", r"\AA": "Å", r"\i": "ı", r"\&": "&",
                  r"\%": "%", r"\$": "$", r"\#": "#", r"\_": "_", r"\textendash": "–",
                  r"\textemdash": "—", r"\ldots": "…"}


def latex_to_text(s: str) -> str:
    """Turn a BibTeX field value into plain text: accents, escaped symbols, braces, simple macros."""
    def accent(m):
        base = m.group(2)
        if base in (r"\i", r"{\i}"):
            base = "i"
        return unicodedata.normalize("NFC", base.strip("{}") + _LATEX_ACCENTS[m.group(1)])
    s = re.sub(r"\\([`'^\"~=.])\s*(\{\\i\}|\\i|\{[A-Za-z]\}|[A-Za-z])", accent, s)
    s = re.sub(r"\\([uvHckr])(?:\s+|(?=\{))(\{[A-Za-z]\}|[A-Za-z])", accent, s)
    s = re.sub(r"\\([uvHckr])\{([A-Za-z])\}", accent, s)
    for k in sorted(_LATEX_SYMBOLS, key=len, reverse=True):
        tail = r"(?![A-Za-z])(?:\{\}|\s)?" if k[1:].isalpha() else ""
        s = re.sub(re.escape(k) + tail, _LATEX_SYMBOLS[k].replace("\\", "\\\\"), s)
    s = re.sub(r"\\(?:emph|textit|textbf|textsc|texttt|mathrm|mbox|url)\s*", "", s)
    s = re.sub(r"\\[A-Za-z]+\s*", "", s)                 # any other macro name
    s = s.replace("{", "").replace("}", "").replace("~", " ").replace("--", "–")
    return re.sub(r"\s+", " ", s).strip()


def _split_authors(value) -> tuple:
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        out = []
        for a in value:
            if isinstance(a, dict):                     # Semantic Scholar style {"name": ...}
                a = a.get("name", "")
            a = str(a).strip()
            if a:
                out.append(a)
        return tuple(out)
    s = str(value).strip()
    if not s:
        return ()
    if ";" in s:
        parts = s.split(";")
    elif re.search(r"\sand\s", s):
        parts = re.split(r"\s+and\s+", s)
    else:
        parts = s.split(",")
    return tuple(p.strip() for p in parts if p.strip())


def _parse_year(value) -> Optional[int]:
    if value is None or value == "":
        return None
    if isinstance(value, int):
        return value
    m = re.search(r"\b(1[89]\d\d|2\d\d\d)\b", str(value))
    return int(m.group(1)) if m else None


def read_text(path: Path) -> str:
    """Read a corpus file as UTF-8 (BOM allowed) or raise CorpusError naming the byte offset."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CorpusError(f"corpus file not found: {path}") from None
    except IsADirectoryError:
        raise CorpusError(f"{path} is a directory") from None
    except OSError as e:
        raise CorpusError(f"cannot read corpus file {path}: {e.strerror or e}") from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise CorpusError(f"{path}: file is UTF-16 (byte-order mark at byte offset 0); "
                          f"save it as UTF-8, e.g. `iconv -f utf-16 -t utf-8 {path.name}`")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise CorpusError(
            f"{path}: not valid UTF-8 at byte offset {e.start} (line {line}, byte 0x{data[e.start]:02x}); "
            f"corpus files must be UTF-8 — convert it, e.g. `iconv -f latin1 -t utf-8 {path.name}`"
        ) from None


def paper_from_record(rec: dict, where: str, source: str) -> Paper:
    """A Paper from a JSON/CSV/API record (keys case-insensitive); CorpusError naming `where` if unusable."""
    if not isinstance(rec, dict):
        raise CorpusError(f"{where}: expected an object with title/abstract/authors/..., "
                          f"got {type(rec).__name__}")
    low = {str(k).strip().lower(): v for k, v in rec.items()}
    title = low.get("title")
    if not isinstance(title, str) or not title.strip():
        raise CorpusError(f"{where}: record has no title (fields present: {sorted(low)[:12]})")
    abstract = low.get("abstract") or low.get("summary") or ""
    authors = _split_authors(low.get("authors", low.get("author")))
    year = _parse_year(low.get("year", low.get("date", low.get("published"))))
    venue = str(low.get("venue") or low.get("journal") or low.get("booktitle") or "").strip()
    pid = str(low.get("id") or low.get("paperid") or low.get("doi") or "").strip()
    url = str(low.get("url") or "").strip()
    if not url and pid.startswith(("http://", "https://")):
        url = pid
    return Paper(key="", title=" ".join(title.split()), abstract=" ".join(str(abstract).split()),
                 authors=authors, year=year, venue=venue, url=url, id=pid, source=source)


# ---- per-format loaders ----

def load_jsonl(path: Path, text: Optional[str] = None) -> list:
    text = read_text(path) if text is None else text
    papers = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise CorpusError(f"{path}: line {n}: not valid JSON ({e.msg} at column {e.colno})") from None
        papers.append(paper_from_record(rec, f"{path}: line {n}", str(path)))
    return papers


def load_json(path: Path, text: Optional[str] = None) -> list:
    text = read_text(path) if text is None else text
    if not text.strip():
        return []
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise CorpusError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    if isinstance(data, dict):
        for k in ("papers", "data", "results", "entries"):
            if isinstance(data.get(k), list):
                data = data[k]
                break
        else:
            data = [data]
    if not isinstance(data, list):
        raise CorpusError(f"{path}: expected a JSON list of papers, got {type(data).__name__}")
    return [paper_from_record(r, f"{path}: record {i}", str(path)) for i, r in enumerate(data, 1)]


def load_csv(path: Path, text: Optional[str] = None) -> list:
    text = read_text(path) if text is None else text
    if not text.strip():
        return []
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
    except csv.Error as e:
        raise CorpusError(f"{path}: line 1: malformed CSV header ({e})") from None
    if "title" not in header:
        raise CorpusError(f"{path}: CSV header has no 'title' column (found: {', '.join(header)}); "
                          f"expected columns title, abstract, authors, year, venue, id/url")
    papers = []
    try:
        for row in reader:
            n = reader.line_num
            if None in row:
                raise CorpusError(f"{path}: line {n}: row has more fields than the header ({len(header)})")
            if not any((v or "").strip() for v in row.values()):
                continue
            papers.append(paper_from_record(row, f"{path}: line {n}", str(path)))
    except csv.Error as e:
        raise CorpusError(f"{path}: line {reader.line_num}: malformed CSV ({e})") from None
    return papers


def load_bib(path: Path, text: Optional[str] = None) -> list:
    import bibtexparser

    text = read_text(path) if text is None else text
    if not text.strip():
        return []
    lib = bibtexparser.parse_string(text)
    for b in lib.failed_blocks:
        first = (b.raw or "").strip().splitlines()[0][:80] if (b.raw or "").strip() else ""
        what = str(getattr(b, "error", "") or "") or type(getattr(b, "error", None)).__name__
        if type(b).__name__ == "DuplicateBlockKeyBlock":
            what = f"duplicate entry key '{getattr(b, 'key', '?')}'"
        raise CorpusError(f"{path}: line {b.start_line + 1}: malformed BibTeX entry ({what}): {first}")
    papers = []
    for e in lib.entries:
        f = {k.lower(): v.value for k, v in e.fields_dict.items()}
        where = f"{path}: line {e.start_line + 1} (entry '{e.key}')"
        raw_title = f.get("title")
        if not isinstance(raw_title, str) or not latex_to_text(raw_title):
            raise CorpusError(f"{where}: entry has no title")
        rec = {
            "title": latex_to_text(raw_title),
            "abstract": latex_to_text(f.get("abstract", "")) if isinstance(f.get("abstract"), str) else "",
            "authors": [latex_to_text(a) for a in re.split(r"\s+and\s+", str(f.get("author", "")).strip())
                        if a.strip()],
            "year": f.get("year", f.get("date")),
            "venue": latex_to_text(str(f.get("booktitle") or f.get("journal") or f.get("publisher") or "")),
            "url": str(f.get("url", "")),
            "id": str(f.get("doi", "") or f.get("eprint", "")),
        }
        p = paper_from_record(rec, where, str(path))
        p.key = e.key
        p.entry_type = e.entry_type.lower()
        p.bib = {k: v.value for k, v in e.fields_dict.items()}
        papers.append(p)
    return papers


_LOADERS = {"bib": load_bib, "jsonl": load_jsonl, "json": load_json, "csv": load_csv}


def load_file(path) -> list:
    path = Path(path)
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise CorpusError(f"{path}: unknown corpus format '{path.suffix}'; expected {FORMATS_HELP}")
    text = read_text(path)
    papers = _LOADERS[kind](path, text)
    if not papers:
        raise CorpusError(f"{path}: empty corpus (no papers found); expected {FORMATS_HELP}")
    return papers


def load_corpus(paths) -> list:
    """Load papers from one path or a list of paths (files or folders). Keys are made unique;
    exact duplicate titles (same normalised title and year) are kept once."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in SUFFIXES)
            if not found:
                raise CorpusError(f"{p}: folder has no corpus files; expected {FORMATS_HELP}")
            files.extend(found)
        elif not p.exists():
            raise CorpusError(f"corpus not found: {p}; pass --corpus FILE or FOLDER ({FORMATS_HELP})")
        else:
            files.append(p)
    papers = []
    for f in files:
        papers.extend(load_file(f))
    return finalize(papers)


def _norm_title(t: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", unicodedata.normalize("NFKD", t).lower()).strip()


def finalize(papers: list) -> list:
    """Dedupe by (title, year), give every paper a unique BibTeX key."""
    seen, out, used = set(), [], set()
    for p in papers:
        sig = (_norm_title(p.title), p.year)
        if sig in seen:
            continue
        seen.add(sig)
        base = p.key or make_key(p.authors, p.year, p.title)
        key, i = base, 1
        while key in used:
            i += 1
            key = f"{base}{chr(ord('a') + i - 1)}" if i <= 26 else f"{base}_{i}"
        used.add(key)
        p.key = key
        out.append(p)
    return out
