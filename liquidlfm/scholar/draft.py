"""Drafting: themes (model or code), one paragraph per theme written by the model over the abstracts
it is given, every citation verified (verify.py), rendered as Markdown / LaTeX + a .bib.

Every prompt is fitted to the model's context (budget.py): abstract excerpts are shortened, then the
lowest-ranked papers left out, and a paragraph may cite only the papers its prompt showed. A liquidlfm
model answers under structured output: the grouping as JSON under a schema over the keys its prompt
listed, a paragraph under a grammar whose brackets hold only the keys its prompt showed."""
from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .keys import author_year_keys
from .llm import PromptMeter, json_max_tokens, supports_structured_output, without_chat_template
from .retrieve import Retrieval
from .text import STOPWORDS, analyze, stem, words
from .verify import VerifyReport, cited_keys, find_citation_like, scrub_citations, verify_paragraph

SYSTEM = ("You are a careful research assistant writing the Related Work section of a paper. "
          "You only state what the given abstracts say and cite only the given paper keys.")


@dataclass
class Theme:
    name: str
    keys: list                      # short keys of the papers grouped here
    prompt_keys: list = field(default_factory=list)  # what it may cite: the keys its prompt showed (no model: keys)
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
    notes: list = field(default_factory=list)  # what was shortened or left out to fit the context
    prompt_format: str = "chat"     # how the prose was asked for: "chat" or "cite-agent" (models.py)
    citeagent_keys: dict = field(default_factory=dict)  # "P1" -> its [AuthorYearKeyword] key (cite-agent format)

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
        fmt = " (CiteAgent prompt format)" if self.prompt_format == "cite-agent" else ""
        how = (f"prose by model {self.model_name}{fmt}; every citation checked against the papers its prompt showed"
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
        return "\n".join([self.retrieval.explain()] + self.notes)

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


TITLE_WORDS = 40        # a title in the theme-grouping prompt, before fitting shortens it
MIN_TITLE_WORDS = 8
ABSTRACT_WORDS = 110    # an abstract excerpt in a paragraph prompt, before fitting shortens it

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


def model_themes(model, idea: str, shorts: dict, max_themes: int = 3, max_tokens: int = 160, *,
                 n_ctx=None, progress=None) -> list:
    """Ask the model to group the papers; returns [] if its answer cannot be used.
    The prompt lists the papers' titles, fitted to the context n_ctx (see llm.model_context):
    titles shortened, then the lowest-ranked papers left out (progress(msg) hears which); those
    join the papers the model did not place, in a last theme.
    A liquidlfm model answers under a JSON schema over the listed keys (themes_schema: every one
    exactly once, no other), so its answer always parses and places every listed paper; other
    generators answer in lines that parse_themes reads, within max_tokens."""
    keys = list(shorts)
    meter = PromptMeter(model, n_ctx)
    structured = supports_structured_output(model)

    def build(kept, titles):
        listing = "\n".join(f"[{keys[i]}] {t}" for i, t in zip(kept, titles))
        task = (f"Research idea: {idea}\n\nPapers:\n{listing}\n\n"
                f"Group these papers into 2 to {max_themes} themes for a Related Work section. ")
        if structured:
            example = ", ".join(f'"{keys[i]}": {j % 2 + 1}' for j, i in enumerate(kept[:3]))
            return (task + 'Answer in JSON: the theme names, then the number of its theme for every paper, e.g. '
                    f'{{"themes": ["First theme", "Second theme"], "papers": {{{example}, ...}}}}.')
        return (task + "Answer with one line per theme in the form\nTheme name: P1, P2\n"
                "Use every paper key exactly once and no other keys.")

    if structured:
        # The JSON answer names every listed key, so its bound (themes_schema's bytes, one token
        # each at worst) grows with the papers listed, and can be most of a small context. Fit it as
        # part of the budget, per number of papers listed: leaving the lowest-ranked papers out of the
        # prompt also leaves them out of the schema's required keys and shrinks the answer, until
        # prompt + answer fit n_ctx. Those papers then go to the last theme, like unplaced ones.
        def answer_tokens(n_listed):
            return json_max_tokens(themes_schema(keys[:n_listed], max_themes)[1])
        answer_budget = answer_tokens(len(keys))
    else:
        answer_tokens, answer_budget = None, max_tokens
    fitted = meter.fit(build, [shorts[k].title for k in keys], system=SYSTEM, max_tokens=answer_budget,
                       max_words=TITLE_WORDS, min_words=MIN_TITLE_WORDS, what="theme grouping",
                       answer_tokens=answer_tokens)
    listed = [keys[i] for i in fitted.kept]
    note = fitted.note("theme grouping", noun="titles", left_out=keys[len(listed):])
    if note and progress is not None:
        progress(note)
    if structured:
        schema, max_bytes = themes_schema(listed, max_themes)
        answer = meter.generate_json(fitted, schema, max_bytes, system=SYSTEM)
        groups = [(name.strip(), [k for k in listed if answer["papers"][k] == i])
                  for i, name in enumerate(answer["themes"], 1)] if answer else []
    else:
        groups = parse_themes(meter.generate(fitted, system=SYSTEM, max_tokens=max_tokens))
    themes, used = [], set()
    for name, ks in groups:
        ks = [k for k in ks if k in listed and k not in used]
        used.update(ks)
        if ks:
            themes.append(Theme(name=name, keys=ks))
    if not themes or len(used) < max(1, len(listed) // 2):
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
    the verifier can keep. The drafter passes the keys the paragraph's prompt showed (Theme.prompt_keys)."""
    alternatives = " | ".join(f'"{k}"' for k in sorted(keys))
    return {"type": "grammar", "grammar": PARAGRAPH_GRAMMAR.replace("KEYS", alternatives)}


def paragraph_prompt(idea: str, theme_name: str, keys: list, shorts: dict, excerpts: list) -> str:
    """The prompt for one theme's paragraph over the papers `keys`, excerpts[i] being the abstract
    excerpt shown for keys[i]."""
    listing = "\n\n".join(
        f"[{k}] {shorts[k].title} ({shorts[k].short_authors()}, {shorts[k].year or 'n.d.'})\n"
        f"Abstract: {ex}" for k, ex in zip(keys, excerpts))
    return (f"Research idea: {idea}\n\nTheme: {theme_name}\n\nPapers:\n{listing}\n\n"
            f"Write one paragraph (3 to 5 sentences) of the Related Work section about this theme. "
            f"Describe what these papers do, using only their abstracts above, and how they relate to "
            f"the research idea. Cite a paper by writing its key in square brackets, e.g. [{keys[0]}]. "
            f"Cite only the keys listed above. Do not write a heading.")


def fit_paragraph(meter: PromptMeter, idea: str, theme: Theme, shorts: dict, max_tokens: int, what: str = ""):
    """The theme's paragraph prompt fitted to the context -> (FittedPrompt, the theme's keys best-ranked
    first). The prompt shows keys[i] for i in fitted.kept (the first ones); the rest were left out."""
    rank = {k: i for i, k in enumerate(shorts)}
    keys = sorted(theme.keys, key=rank.__getitem__)
    fitted = meter.fit(lambda kept, ex: paragraph_prompt(idea, theme.name, [keys[i] for i in kept], shorts, ex),
                       [shorts[k].abstract for k in keys], system=SYSTEM, max_tokens=max_tokens,
                       max_words=ABSTRACT_WORDS, what=what or f"the paragraph on {theme.name!r}")
    return fitted, keys


# ---- drafting in the CiteAgent models' format ----

CITE_AGENT_EXCERPT_CHARS = 300     # the abstract head each reference shows
CITE_AGENT_MAX_WORDS = 80          # words of that head fitting starts from (300 characters are fewer)


def abstract_head(text: str, n_chars: int = CITE_AGENT_EXCERPT_CHARS) -> str:
    """The first n_chars characters of an abstract (whitespace normalised), "…" appended when cut."""
    t = " ".join(text.split())
    return t if len(t) <= n_chars else t[:n_chars].rstrip() + "…"


def cite_agent_prompt(idea: str, themes: list, keys: list, aliases: dict, shorts: dict, excerpts: list) -> str:
    """The whole Related Work asked for in one instruction/response prompt (the CiteAgent models'
    training format, our wording): the themes with their papers' keys, then every reference shown
    under its [AuthorYearKeyword] key (aliases: short key -> that key) with its abstract's head
    (excerpts[i] for keys[i]). Papers not in keys were left out to fit and are not listed."""
    shown = set(keys)
    theme_lines = "\n".join(
        f"- {th.name}: " + ", ".join(f"[{aliases[k]}]" for k in th.keys if k in shown)
        for th in themes if any(k in shown for k in th.keys))
    refs = "\n\n".join(f"[{aliases[k]}] {shorts[k].title} ({shorts[k].short_authors()}, {shorts[k].year or 'n.d.'})\n"
                        f"{ex}" for k, ex in zip(keys, excerpts))
    return ("### Instruction:\n"
            "Write the Related Work section of a paper on the research idea below. Give each theme its own "
            "paragraph, in the order listed, and begin each paragraph with a line holding '### ' and the "
            "theme's name. Say only what the references' text below supports, and back each statement with "
            f"the keys of the references it comes from, in square brackets, like [{aliases[keys[0]]}]. "
            "Use no key that is not listed under References.\n\n"
            f"Research idea: {idea}\n\nThemes:\n{theme_lines}\n\nReferences:\n{refs}\n\n### Response:")


_SECTION_HEADING = re.compile(r"^\s*(?:#{1,6}\s*(.+?)\s*#*|\*\*(.+?)\*\*:?|(?:theme\s*\d*\s*[:.]\s*)(.+))\s*$", re.I)


def split_sections(text: str, names: list) -> list:
    """The model's Related Work cut into one text per theme (names, in order): a heading line that
    names a theme (closest name, difflib ratio >= 0.6) starts its text; other headings, and text
    before any heading, take the next theme not yet written. Text past the last theme joins it. A
    heading holding a citation stays in its text, so the verifier reports that citation.
    A prompt the model goes on to continue ("### Instruction:") ends the answer there."""
    import difflib

    text = re.split(r"^\s*#{1,6}\s*(?:instruction|input|response)\s*:", text or "", flags=re.I | re.M)[0]
    out = [[] for _ in names]
    written, current = set(), None

    def next_free():
        free = [i for i in range(len(names)) if i not in written]
        return free[0] if free else (len(names) - 1 if names else None)

    for line in text.splitlines():
        m = _SECTION_HEADING.match(line)
        if m and len(line) < 120:
            title = next(g for g in m.groups() if g)
            scores = [(difflib.SequenceMatcher(None, title.lower(), n.lower()).ratio(), i) for i, n in enumerate(names)
                      if i not in written]
            best = max(scores) if scores else (0.0, None)
            current = best[1] if best[0] >= 0.6 else next_free()
            if current is not None:
                written.add(current)
                if find_citation_like(line):              # the verifier reports what a heading cited
                    out[current].append(line)
            continue
        if not line.strip():
            continue
        if current is None:
            current = next_free()
            if current is None:
                break
            written.add(current)
        out[current].append(line)
    return ["\n".join(x) for x in out]


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
                         n_ctx=None, prompt_format: str = "chat", progress=None) -> RelatedWork:
    """Themes, one paragraph per theme, each verified. n_ctx: the context every prompt is fitted to
    (see llm.model_context); each paragraph may cite only the papers its prompt showed.
    prompt_format "chat": one chat prompt per theme (batched), papers under [P1]..[Pn] keys;
    "cite-agent": the whole section in one instruction/response prompt with [AuthorYearKeyword] keys
    (cite_agent_prompt), cut into the themes' paragraphs by its headings (split_sections)."""
    if prompt_format not in ("chat", "cite-agent"):
        raise ValueError(f"prompt_format must be 'chat' or 'cite-agent', got {prompt_format!r}")
    say = progress_callback(progress)
    shorts = {f"P{i}": h.paper for i, h in enumerate(retrieval.hits, 1)}
    if not shorts:
        raise ValueError("no papers were retrieved for this idea; nothing to draft from")
    notes = []

    def note(msg):
        notes.append(msg)
        say(msg)

    meter = PromptMeter(model, n_ctx) if model is not None else None
    themes, themes_by = [], "code"
    if model is not None:
        say("asking the model to group the papers into themes")
        themes = model_themes(model, idea, shorts, max_themes, n_ctx=meter.n_ctx, progress=note)
        themes_by = "model" if themes else "code (model's grouping was unusable)"
    if not themes:
        themes = code_themes(shorts, max_themes)
    for th in themes:                                     # a theme's name cites nothing
        name, removed = scrub_citations(th.name)
        if removed:
            note(f"theme name {th.name!r}: citation-like text {removed} removed")
            th.name = name[:1].upper() + name[1:] if len(name) >= 3 else "Further related work"
    aliases = {}                                          # "P1" -> "Zhang2021Word" (cite-agent keys)
    if model is None:
        for th in themes:
            th.prompt_keys, th.raw = list(th.keys), ""
    elif prompt_format == "cite-agent":
        aliases = dict(zip(shorts, author_year_keys(list(shorts.values()))))
        raw_meter = PromptMeter(without_chat_template(model), meter.n_ctx)
        keys = list(shorts)                               # best-ranked first
        budget = max_tokens * len(themes)
        f = raw_meter.fit(lambda kept, ex: cite_agent_prompt(idea, themes, [keys[i] for i in kept], aliases, shorts, ex),
                          [abstract_head(shorts[k].abstract) for k in keys], max_tokens=budget,
                          max_words=CITE_AGENT_MAX_WORDS, what="the Related Work prompt (CiteAgent format)")
        shown = [keys[i] for i in f.kept]
        msg = f.note("the Related Work prompt", left_out=keys[len(shown):])
        if msg:
            note(msg + ("; those left out cannot be cited" if f.dropped else ""))
        say(f"writing the Related Work in one answer (CiteAgent format, {len(themes)} themes)")
        sections = split_sections(raw_meter.generate(f, max_tokens=budget), [th.name for th in themes])
        for th, text in zip(themes, sections):
            th.prompt_keys, th.raw = list(shown), text
    else:
        # first fit every paragraph's prompt (what it shows is what it may cite), then write them
        fitted = []
        for i, th in enumerate(themes, 1):
            f, keys = fit_paragraph(meter, idea, th, shorts, max_tokens, what=f"paragraph {i} ({th.name})")
            th.prompt_keys = [keys[j] for j in f.kept]
            msg = f.note(f"paragraph {i} ({th.name})", left_out=keys[len(f.kept):])
            if msg:
                note(msg + ("; those left out cannot be cited there" if f.dropped else ""))
            fitted.append(f)
        structured = supports_structured_output(model)
        say(f"writing {len(themes)} paragraph(s) together: " + "; ".join(th.name for th in themes))
        formats = [paragraph_format(th.prompt_keys) if structured else None for th in themes]
        for th, raw in zip(themes, meter.generate_many(fitted, system=SYSTEM, max_tokens=max_tokens,
                                                       response_formats=formats)):
            th.raw = raw
    total, seen = VerifyReport(), set()
    for th in themes:
        citable = {k: shorts[k] for k in th.prompt_keys}
        own = [k for k in th.keys if k in citable] or th.prompt_keys     # what a fallback sentence cites
        th.text, th.report = verify_paragraph(th.raw, citable, own, th.name, seen,
                                              aliases={aliases[k]: k for k in citable if k in aliases})
        total.merge(th.report)
    if model is not None:
        say(f"verified citations: {total.summary()}")
    return RelatedWork(idea=idea, retrieval=retrieval, shorts=shorts, themes=themes, format=format,
                       model_name=model_name if model is not None else "", themes_by=themes_by,
                       report=total, notes=notes, prompt_format=prompt_format if model is not None else "chat",
                       citeagent_keys=aliases)
