"""Drafting: themes (model or code), one paragraph per theme written by the model over the abstracts
it is given, every citation verified (verify.py), rendered as Markdown / LaTeX + a .bib."""
from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .llm import abstract_snippet, generate_json, generate_text, supports_structured_output
from .retrieve import Retrieval
from .text import STOPWORDS, analyze, stem, words
from .verify import VerifyReport, cited_keys, verify_paragraph

SYSTEM = ("You are a careful research assistant writing the Related Work section of a paper. "
          "You only state what the given abstracts say and cite only the given paper keys.")


@dataclass
class Theme:
    name: str
    keys: list                      # short keys of the papers grouped here
    text: str = ""                  # canonical verified paragraph ("[P1, P3]" citations)
    raw: str = ""                   # what the model wrote (before verification)
    report: VerifyReport = field(default_factory=VerifyReport)


@dataclass
class RelatedWork:
    """A verified related-work draft. str(draft) / draft.text is the rendered output."""

    idea: str
    retrieval: Retrieval
    shorts: dict                    # "P1" -> Paper (the retrieved set)
    themes: list
    format: str = "markdown"
    model_name: str = ""            # "" = drafted without a model (metadata sentences)
    themes_by: str = "code"
    report: VerifyReport = field(default_factory=VerifyReport)

    # -- content --
    def cited_short_keys(self) -> list:
        out = []
        for th in self.themes:
            for k in cited_keys(th.text):
                if k not in out:
                    out.append(k)
        return out

    def cited_papers(self) -> list:
        return [self.shorts[k] for k in self.cited_short_keys()]

    @property
    def cited(self) -> list:
        """BibTeX keys of the cited papers, in first-citation order."""
        return [p.key for p in self.cited_papers()]

    @property
    def retrieved(self) -> list:
        return [h.paper for h in self.retrieval.hits]

    def provenance(self) -> str:
        how = (f"prose by model {self.model_name}; every citation checked against the retrieved papers"
               if self.model_name else
               "drafted WITHOUT a model: each sentence is built from the retrieved papers' metadata")
        return f"{len(self.retrieved)} papers retrieved, {len(self.cited)} cited; {how}"

    # -- renderings --
    def markdown(self) -> str:
        from .render import to_markdown
        return to_markdown(self)

    def latex(self) -> str:
        from .render import to_latex
        return to_latex(self)

    def bibtex(self) -> str:
        from .render import to_bibtex
        return to_bibtex(self.cited_papers())

    @property
    def text(self) -> str:
        return self.latex() if self.format == "latex" else self.markdown()

    def __str__(self) -> str:
        return self.text

    def explain(self) -> str:
        return self.retrieval.explain()

    def save(self, path, bib_path=None) -> tuple:
        """Write the draft (format from self.format) and the .bib next to it (same stem), each
        atomically. Returns (draft path, bib path)."""
        from .render import atomic_write
        path = Path(path)
        bib = Path(bib_path) if bib_path else path.with_suffix(".bib")
        if bib.resolve() == path.resolve():
            raise ValueError(f"the draft and its .bib would both be written to {path}")
        text, bibtext = self.text, self.bibtex()
        atomic_write(bib, bibtext)
        atomic_write(path, text)
        return path, bib


# ---- themes ----

def _surface_forms(texts):
    forms = {}
    for t in texts:
        for w in words(t):
            if w in STOPWORDS:
                continue
            s = stem(w)
            d = forms.setdefault(s, {})
            d[w] = d.get(w, 0) + 1
    return {s: max(d.items(), key=lambda kv: kv[1])[0] for s, d in forms.items()}


def code_themes(shorts: dict, max_themes: int = 3) -> list:
    """Group papers by TF-IDF cosine (average-link agglomerative), label each group by its top terms."""
    keys = list(shorts)
    if not keys:
        return []
    docs = [analyze(shorts[k].title) * 2 + analyze(shorts[k].abstract) for k in keys]
    vocab = sorted({t for d in docs for t in d})
    ix = {t: i for i, t in enumerate(vocab)}
    X = np.zeros((len(keys), len(vocab)))
    for i, d in enumerate(docs):
        for t in d:
            X[i, ix[t]] += 1
    df = (X > 0).sum(0)
    X = X * np.log((1 + len(keys)) / (1 + df) + 1)
    X /= np.linalg.norm(X, axis=1, keepdims=True) + 1e-12
    n_groups = 1 if len(keys) < 4 else min(max_themes, max(2, len(keys) // 4))
    groups = [[i] for i in range(len(keys))]
    sim = X @ X.T
    while len(groups) > n_groups:
        best, pair = -1.0, (0, 1)
        for a in range(len(groups)):
            for b in range(a + 1, len(groups)):
                s = float(sim[np.ix_(groups[a], groups[b])].mean())
                if s > best:
                    best, pair = s, (a, b)
        a, b = pair
        groups[a] += groups.pop(b)
    groups.sort(key=lambda g: min(g))
    forms = _surface_forms(shorts[k].title + " " + shorts[k].abstract for k in keys)
    themes, used_labels = [], set()
    for g in groups:
        w = X[g].sum(0)
        label = None
        for i in np.argsort(-w):
            t = vocab[i]
            if "_" in t and w[i] > 0:
                parts = t.split("_")
                lab = " ".join(forms.get(p, p) for p in parts)
                if lab not in used_labels:
                    label = lab
                    break
        if label is None:
            tops = [forms.get(vocab[i], vocab[i]) for i in np.argsort(-w)[:2] if w[i] > 0]
            label = " and ".join(tops) or "related work"
        used_labels.add(label)
        themes.append(Theme(name=label[:1].upper() + label[1:], keys=[keys[i] for i in sorted(g)]))
    return themes


THEME_NAME_MAX = 60
# a theme name: words of letters and digits with simple punctuation, starting with a letter
THEME_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9 ,&()'/-]{2,%d}$" % (THEME_NAME_MAX - 1)


def themes_schema(keys: list, max_themes: int) -> tuple:
    """(JSON schema of a grouping answer, the longest such answer in bytes). The answer names 2 to
    max_themes themes and gives every paper key the number of one of them, so each paper is placed
    exactly once and no other key can appear: {"themes": ["Name", "Name"], "papers": {"P1": 2, "P2": 1}}.
    One alternative per number of themes n, in which the papers' numbers go up to n."""
    def answer(n):
        return {"type": "object", "additionalProperties": False, "required": ["themes", "papers"], "properties": {
            "themes": {"type": "array", "items": {"type": "string", "pattern": THEME_NAME_PATTERN},
                       "minItems": n, "maxItems": n},
            "papers": {"type": "object", "additionalProperties": False, "required": list(keys),
                       "properties": {k: {"type": "integer", "minimum": 1, "maximum": n} for k in keys}}}}

    schema = {"anyOf": [answer(n) for n in range(min(2, max_themes), max_themes + 1)]}
    digits = len(str(max_themes))
    max_bytes = (len('{"themes": [], "papers": {}}') + max_themes * (THEME_NAME_MAX + len('"", '))
                 + sum(len(f'"{k}": , ') + digits for k in keys))
    return schema, max_bytes


def model_themes(model, idea: str, shorts: dict, max_themes: int = 3, max_tokens: int = 160) -> list:
    """Ask the model to group the papers; returns [] if its answer cannot be used. A liquidlfm model
    answers under a JSON schema (themes_schema: every given key exactly once, no other), so its
    answer always parses and places every paper; other generators answer in lines that
    parse_themes reads."""
    listing = "\n".join(f"[{k}] {p.title}" for k, p in shorts.items())
    task = (f"Research idea: {idea}\n\nPapers:\n{listing}\n\n"
            f"Group these papers into 2 to {max_themes} themes for a Related Work section. ")
    if supports_structured_output(model):
        schema, max_bytes = themes_schema(list(shorts), max_themes)
        example = ", ".join(f'"{k}": {i % 2 + 1}' for i, k in enumerate(list(shorts)[:3]))
        user = (task + 'Answer in JSON: the theme names, then the number of its theme for every paper, e.g. '
                f'{{"themes": ["First theme", "Second theme"], "papers": {{{example}, ...}}}}.')
        answer = generate_json(model, user, schema, max(max_tokens, max_bytes), system=SYSTEM)
        groups = []
        if answer:
            for i, name in enumerate(answer["themes"], 1):
                groups.append((name.strip(), [k for k in shorts if answer["papers"][k] == i]))
    else:
        user = (task + "Answer with one line per theme in the form\nTheme name: P1, P2\n"
                "Use every paper key exactly once and no other keys.")
        groups = parse_themes(generate_text(model, user, system=SYSTEM, max_tokens=max_tokens))
    themes, used = [], set()
    for name, ks in groups:
        ks = [k for k in ks if k in shorts and k not in used]
        used.update(ks)
        if ks:
            themes.append(Theme(name=name, keys=ks))
    if not themes or len(used) < max(1, len(shorts) // 2):
        return []
    rest = [k for k in shorts if k not in used]
    if rest:                                              # the model skipped some: place them by code
        themes.append(Theme(name="Further related work", keys=rest))
    return themes


_KEY = re.compile(r"\[?\bP\s*0*(\d{1,3})\b\]?", re.I)


def parse_themes(text: str) -> list:
    """[(theme name, [short keys])] from lines like "Name: P1, P2", "1. **Name**: [P1], [P3]",
    "Theme 2: Name (P4, P5)", "- Name - P1, P2". Lines without keys or without a name are skipped."""
    out = []
    for line in text.splitlines():
        keys = [f"P{int(n)}" for n in _KEY.findall(line)]
        if not keys:
            continue
        first = _KEY.search(line)
        name = line[:first.start()]
        name = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s*", "", name)                  # list markers
        name = re.sub(r"^\s*\**\s*theme\s*\d*\s*\**\s*[:.\-–]?\s*", "", name, flags=re.I)
        name = re.sub(r"[\s*:\-–(\[,]+$", "", name).strip(" *\"'_")
        if not re.search(r"[A-Za-z]{3}", name):
            continue
        out.append((name[:80], list(dict.fromkeys(keys))))
    return out


# ---- drafting ----

# One line of prose (TEXT: no brackets, backslashes, newlines or other control characters) and
# citation groups of known keys.
PARAGRAPH_GRAMMAR = r"""start: (TEXT | cite)+
cite: "[" key (", " key)* "]"
key: KEYS
TEXT: /[^\[\]\\\x00-\x1f\x7f]+/
"""


def paragraph_format(keys: list) -> dict:
    """response_format for a paragraph: prose on one line whose square brackets can only hold
    citation groups of the given keys ("[P1]", "[P2, P5]"), so every citation the model writes is one
    the verifier can keep."""
    alternatives = " | ".join(f'"{k}"' for k in sorted(keys))
    return {"type": "grammar", "grammar": PARAGRAPH_GRAMMAR.replace("KEYS", alternatives)}



def paragraph_prompt(idea: str, theme: Theme, shorts: dict, max_words: int = 110) -> str:
    listing = "\n\n".join(
        f"[{k}] {shorts[k].title} ({shorts[k].short_authors()}, {shorts[k].year or 'n.d.'})\n"
        f"Abstract: {abstract_snippet(shorts[k].abstract, max_words)}" for k in theme.keys)
    return (f"Research idea: {idea}\n\nTheme: {theme.name}\n\nPapers:\n{listing}\n\n"
            f"Write one paragraph (3 to 5 sentences) of the Related Work section about this theme. "
            f"Describe what these papers do, using only their abstracts above, and how they relate to "
            f"the research idea. Cite a paper by writing its key in square brackets, e.g. [{theme.keys[0]}]. "
            f"Cite only the keys listed above. Do not write a heading.")


def progress_callback(progress):
    """A msg -> None callback from progress: None/True prints timestamped lines to stderr, False is
    silent, a callable is used as is."""
    if progress is None or progress is True:
        t0 = time.time()
        return lambda msg: print(f"[scholar {time.time() - t0:5.1f}s] {msg}", file=sys.stderr, flush=True)
    if progress is False:
        return lambda msg: None
    return progress


def draft_from_retrieval(idea: str, retrieval: Retrieval, *, model=None, model_name: str = "",
                         format: str = "markdown", max_themes: int = 3, max_tokens: int = 300,
                         progress=None) -> RelatedWork:
    say = progress_callback(progress)
    shorts = {f"P{i}": h.paper for i, h in enumerate(retrieval.hits, 1)}
    if not shorts:
        raise ValueError("no papers were retrieved for this idea; nothing to draft from")
    themes, themes_by = [], "code"
    if model is not None:
        say("asking the model to group the papers into themes")
        themes = model_themes(model, idea, shorts, max_themes)
        themes_by = "model" if themes else "code (model's grouping was unusable)"
    if not themes:
        themes = code_themes(shorts, max_themes)
    total, seen = VerifyReport(), set()
    structured = model is not None and supports_structured_output(model)
    for i, th in enumerate(themes, 1):
        if model is not None:
            say(f"writing paragraph {i}/{len(themes)}: {th.name}")
            th.raw = generate_text(model, paragraph_prompt(idea, th, shorts), system=SYSTEM,
                                   max_tokens=max_tokens,
                                   response_format=paragraph_format(list(shorts)) if structured else None)
        else:
            th.raw = ""
        th.text, th.report = verify_paragraph(th.raw, shorts, th.keys, th.name, seen)
        total.merge(th.report)
    if model is not None:
        say(f"verified citations: {total.summary()}")
    return RelatedWork(idea=idea, retrieval=retrieval, shorts=shorts, themes=themes, format=format,
                       model_name=model_name if model is not None else "", themes_by=themes_by,
                       report=total)
