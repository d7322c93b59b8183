"""Translate text and markdown documents with an LFM2 model.

    import liquidlfm as lfm
    lfm.translate("The weather is nice today.", "ko")           # source language detected
    lfm.translate(["first sentence", "second"], "ko")            # a list: same order back
    lfm.translate(markdown_document, "ko")                      # structure kept (liquidlfm.segment)
    for piece in lfm.translate(doc, "ko", stream=True): ...     # "".join(pieces) == the translation
    liquidlfm translate --to ko "text"                          # or: python -m liquidlfm.translate
    liquidlfm translate --to ko < README.md > README.ko.md

How: the text is cut by :mod:`liquidlfm.segment` into sentences (and table cells, link texts, headings)
with the markup between them kept verbatim; each piece is translated on its own with the model's chat
template and a system prompt in the style of Liquid's translation model (LFM2-350M-ENJP-MT is prompted
with the system message ``Translate to Japanese.``): ``Translate to Korean.``, plus one line for the
register (``formality``) and one for glossary terms that occur in the piece. The pieces run through the model's
batched generation (``Model.batch``, up to 8 pieces decoded together), greedy by default
(``temperature=0``). Pieces already in the target language (by script/stop-word detection) are kept as
they are.

Nothing is truncated silently: each piece's whole prompt (system prompt with the register and glossary
lines, chat template, the piece) must leave room in the context for a translation as long as the piece
(+8 tokens; ``max_tokens`` is capped to that room). A piece too long for that is split at clause, then word
boundaries, never inside a glossary term, so each part carries the lines of its own terms (a huge
glossary thus splits the text, it is never trimmed); a part that still does not fit raises
:class:`liquidlfm.ContextFullError` saying whether its glossary lines, the prompt around it or the text
is too big. A translation that hits ``max_tokens`` (default: derived from the piece's length) emits
:class:`TranslationTruncatedWarning`.

Modules: languages (codes, detection), prompts (system prompt, glossary), translator (Translator and the
TranslationModel protocol it needs), __main__ (the command line). ``liquidlfm.translate`` the attribute is
the function below (``import liquidlfm as lfm; lfm.translate(...)``).
"""
from __future__ import annotations

import os
import threading
from typing import Dict, Optional, Sequence, Tuple, Union

from ..segment import segment, segment_plain
from .languages import LANGUAGES, Language, detect_language, language
from .prompts import load_glossary, system_prompt
from .translator import TranslationModel, TranslationTruncatedWarning, Translator

__all__ = ["translate", "Translator", "TranslationModel", "LANGUAGES", "Language", "language", "detect_language",
           "system_prompt", "TranslationTruncatedWarning", "load_glossary", "count_pieces"]


# ---- models and translators reused across translate() calls ----

_MODELS: Dict[str, TranslationModel] = {}  # resolved path -> loaded model
_TRANSLATORS: Dict[Tuple[int, Optional[int]], Tuple[TranslationModel, Translator]] = {}
_LOCK = threading.Lock()


def _get_model(spec) -> TranslationModel:
    """A loaded model for spec (None / path / repo id / model object); loaded once per resolved path."""
    if spec is not None and not isinstance(spec, (str, os.PathLike)):
        return spec  # already a model object
    from ..hub import resolve_model

    path = resolve_model(None if spec is None else os.fspath(spec), purpose="translate")
    with _LOCK:
        m = _MODELS.get(path)
        if m is None:
            from ..model import load

            m = load(path)
            _MODELS[path] = m
    return m


def _translator_for(model, n_ctx=None) -> Translator:
    """The Translator translate() uses for this model and n_ctx (kept, so its prefix cache is reused).
    The entry holds the model itself, so the id in its key cannot be reused by another object."""
    m = _get_model(model)
    key = (id(m), n_ctx)
    with _LOCK:
        entry = _TRANSLATORS.get(key)
        if entry is None or entry[0] is not m:
            entry = (m, Translator(m, n_ctx=n_ctx))
            _TRANSLATORS[key] = entry
    return entry[1]


def count_pieces(text: str, markdown: bool = True) -> int:
    """How many pieces of ``text`` would be sent to the model (for progress bars)."""
    return sum(s.translate for s in (segment(text) if markdown else segment_plain(text)))


def translate(text: Union[str, Sequence[str]], target: str, *, model=None, source: Optional[str] = None,
              formality: Optional[str] = None, glossary: Optional[Dict[str, str]] = None,
              max_tokens: Optional[int] = None, stream: bool = False, markdown: bool = True,
              n_ctx: Optional[int] = None, temperature: float = 0.0, top_k: int = 0, min_p: float = 0.0,
              seed: Optional[int] = None, progress=None, batch: bool = True):
    """Translate ``text`` (a string or a list of strings) into ``target``.

    target: a code ("ko"), FLORES code ("kor_Hang") or name ("Korean"); unknown → ValueError listing
        the valid ones. source: same forms, or None to detect per piece (pieces already in the target
        language are kept). model: None (LIQUIDLFM_MODEL / cache / default download, see liquidlfm.hub),
        a path, a repo id, or a loaded model; loaded once per resolved path and reused across calls.
    formality: None, "polite" or "casual". glossary: {"source term": "translation"}.
    max_tokens: per piece; default 3 × the piece's tokens + 20. Greedy unless temperature > 0.
    markdown: keep markdown structure (default) or treat the text as plain paragraphs.
    batch: translate a piece that occurs several times in the call (within a document or across list
        items) only once (greedy decoding only). Every piece of every item is translated in batches:
        up to 8 pieces decoded together, one forward pass per step (liquidlfm.BatchEngine).
    stream: for a string, an iterator of str chunks whose concatenation is the translation (each
        translated piece as soon as it is done); for a list, an iterator of the items' translations in
        order. Empty input → ValueError.
    """
    if isinstance(text, str):
        items, single = [text], True
    elif isinstance(text, (list, tuple)):
        items, single = list(text), False
        if not items:
            raise ValueError("translate() got an empty list")
        for i, t in enumerate(items):
            if not isinstance(t, str):
                raise TypeError(f"translate() list item {i} is {type(t).__name__}, expected str")
    else:
        raise TypeError(f"translate() expects a str or a list of str, got {type(text).__name__}")
    for i, t in enumerate(items):
        if not t.strip():
            raise ValueError("translate() got empty text" + ("" if single else f" (list item {i})"))
    language(target)
    if source is not None:
        language(source)
    if formality not in (None, "polite", "casual"):
        raise ValueError(f"formality must be 'polite', 'casual' or None, got {formality!r}")
    if glossary is not None and not (isinstance(glossary, dict)
                                     and all(isinstance(k, str) and isinstance(v, str) for k, v in glossary.items())):
        raise TypeError("glossary must be a dict of str -> str")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise ValueError(f"max_tokens must be a positive int, got {max_tokens!r}")
    tr = _translator_for(model, n_ctx)
    kw = dict(source=source, formality=formality, glossary=glossary, max_tokens=max_tokens, markdown=markdown,
              temperature=temperature, top_k=top_k, min_p=min_p, seed=seed, progress=progress,
              memo={} if batch else None)
    if stream:
        if single:
            return tr.iter_translate(items[0], target, **kw)
        return _stream_items(tr.iter_documents(items, target, **kw), len(items))
    outs = [[] for _ in items]
    for d, piece in tr.iter_documents(items, target, **kw):
        outs[d].append(piece)
    outs = ["".join(o) for o in outs]
    return outs[0] if single else outs


def _stream_items(pieces, n):
    """Each document's translation as soon as its last piece is done, in order."""
    cur, buf = 0, []
    for d, piece in pieces:
        while d > cur:
            yield "".join(buf)
            cur, buf = cur + 1, []
        buf.append(piece)
    while cur < n:
        yield "".join(buf)
        cur, buf = cur + 1, []
