"""Translate text and markdown documents with an LFM2 model.

    import liquidlfm as lfm
    lfm.translate("The weather is nice today.")                 # Hangul? -> English, else -> Korean
    lfm.translate("오늘 날씨가 좋네요.")                          # -> English
    lfm.translate("The weather is nice today.", "ko")           # an explicit target
    lfm.translate(["first sentence", "second"], "ko")            # a list: same order back
    lfm.translate(markdown_document, "ko")                      # structure kept (liquidlfm.segment)
    lfm.translate(text, "ko", quant="Q4_K_M")                   # a smaller file of the default model
    lfm.translate(text, "ko", quality="mbr", seed=0)            # 8 samples per piece, the MBR one kept
    for piece in lfm.translate(doc, "ko", stream=True): ...     # "".join(pieces) == the translation
    liquidlfm translate "text"                                  # or: python -m liquidlfm.translate
    liquidlfm translate --to ko < README.md > README.ko.md

Which model (liquidlfm.translate.models, the registry): Korean<->English defaults to the KoEn fine-tune
of LFM2-1.2B, gyung/lfm2-1.2b-koen-mt-v8-rl-10k-merged-GGUF (Q8_0; quant= picks Q5_K_M / Q4_K_M), with
exactly its project's prompt: system ``Translate the following text to Korean.`` (or ``... English.``),
user the raw text, LFM2's chat template, stop at ``<|im_end|>``. Other pairs, and ``fast=True``, use the
general LiquidAI/LFM2-350M-GGUF (Q4_0) with the prompt ``Translate to Japanese.`` (the style of Liquid's
own LFM2-350M-ENJP-MT). Direction: ``target=None`` translates each text (each list item, or the whole
document) into English if it contains Hangul (U+AC00–D7AF, U+1100–11FF, U+3130–318F) and into Korean
otherwise, the KoEn project's rule; a document mixing both should name its target.

How: the text is cut by :mod:`liquidlfm.segment` into sentences (and table cells, link texts, headings)
with the markup between them kept verbatim; each piece is translated on its own with the model's chat
template and the system prompt above, plus one line for the register (``formality``) and one for glossary
terms that occur in the piece, only when asked (so the default prompt is the published one byte for
byte). The pieces run through the model's batched generation (``Model.batch``, up to 8 pieces decoded
together), greedy by default (``temperature=0``). Pieces already in the target language (by
script/stop-word detection) are kept as they are. Every translation is made safe for its place before
it is put back (liquidlfm.translate.markup): no model reply can add a table cell, a heading, a list item
or end a link early.

Nothing is truncated silently: each piece's whole prompt (system prompt with the register and glossary
lines, chat template, the piece) must leave room in the context for a translation as long as the piece
(+8 tokens; ``max_tokens`` is capped to that room). A piece too long for that is split at clause, then word
boundaries, never inside a glossary term, so each part carries the lines of its own terms (a huge
glossary thus splits the text, it is never trimmed); a part that still does not fit raises
:class:`liquidlfm.ContextFullError` saying whether its glossary lines, the prompt around it or the text
is too big. A translation that hits ``max_tokens`` (default: derived from the piece's length) emits
:class:`TranslationTruncatedWarning`.

Modules: languages (codes, detection, the direction rule), models (the registry), prompts (system prompt,
glossary), markup (a translation made safe for its place), mbr (chrF and minimum-Bayes-risk selection),
translator (Translator and the TranslationModel protocol it needs), __main__ (the command line).
``liquidlfm.translate`` the attribute is the function below (``import liquidlfm as lfm; lfm.translate(...)``).
"""
from __future__ import annotations

import os
import threading
from typing import Dict, Optional, Sequence, Tuple, Union

from ..segment import segment, segment_plain
from .languages import LANGUAGES, Language, auto_target, detect_language, has_hangul, language
from .mbr import chrf, mbr_select
from .models import REGISTRY, TranslationModelEntry, model_for, prompt_format_for
from .prompts import load_glossary, system_prompt
from .translator import TranslationModel, TranslationTruncatedWarning, Translator

__all__ = ["translate", "Translator", "TranslationModel", "LANGUAGES", "Language", "language", "detect_language",
           "system_prompt", "TranslationTruncatedWarning", "load_glossary", "count_pieces", "auto_target",
           "has_hangul", "REGISTRY", "TranslationModelEntry", "model_for", "prompt_format_for", "chrf",
           "mbr_select", "resolve_translation_model"]


# ---- models and translators reused across translate() calls ----

_MODELS: Dict[str, TranslationModel] = {}  # resolved path -> loaded model
_TRANSLATORS: Dict[Tuple[int, Optional[int], Optional[str]], Tuple[TranslationModel, Translator]] = {}
_LOCK = threading.Lock()


def resolve_translation_model(model=None, *, source: Optional[str] = None, target: Optional[str] = None,
                              quant: Optional[str] = None, fast: bool = False) -> str:
    """The local path of the model translate() would use (downloaded once if needed): model (a path or
    repo id; quant adds a quant selector to a bare repo id), else $LIQUIDLFM_MODEL, else the registry's
    model for the pair (models.model_for) in quant (default: the entry's), from the cache or the Hub."""
    from ..hub import parse_spec, resolve_model

    if model is not None:
        spec = os.fspath(model)
        try:
            repo, selector, revision = (None, None, None) if os.path.exists(spec) else parse_spec(spec)
        except ValueError:
            repo = selector = revision = None
        if quant is not None:
            if repo is None:
                raise ValueError(f"quant={quant!r} picks a file of a Hub repo, but model={spec!r} is not a repo "
                                 "id; pass the file itself")
            if selector is not None:
                raise ValueError(f"model={spec!r} already names a file; pass quant= or a file, not both")
        if repo is not None and selector is None:
            # a registry repo without a file: its default (or the asked) quant; another repo: the quant asked
            entry = next((e for e in REGISTRY.values() if e.repo.lower() == repo.lower()), None)
            if entry is not None:
                spec = entry.spec(quant)
            elif quant is not None:
                spec = f"{repo}:{quant}"
            spec += f"@{revision}" if revision else ""
        return resolve_model(spec)
    src = language(source).code if source is not None else None
    tgt = language(target).code if target is not None else None
    entry = model_for(src, tgt, fast=fast)
    purpose = "translate" if entry.name == "koen-v8" else "translate-general"
    if quant is None or os.environ.get("LIQUIDLFM_MODEL", "").strip():
        return resolve_model(None, purpose=purpose)
    return resolve_model(entry.spec(quant))


def _get_model(spec, **choice) -> TranslationModel:
    """A loaded model for spec (None / path / repo id / model object); loaded once per resolved path."""
    if spec is not None and not isinstance(spec, (str, os.PathLike)):
        if choice.get("quant") is not None:
            raise ValueError("quant= picks a file to load; model= is already a loaded model")
        return spec  # already a model object
    path = resolve_translation_model(spec, **choice)
    with _LOCK:
        m = _MODELS.get(path)
        if m is None:
            from ..model import load

            m = load(path)
            _MODELS[path] = m
    return m


def _translator_for(model, n_ctx=None, prompt_format=None, **choice) -> Translator:
    """The Translator translate() uses for this model, n_ctx and prompt format (kept, so its prefix cache
    is reused). The entry holds the model itself, so the id in its key cannot be reused by another
    object."""
    m = _get_model(model, **choice)
    key = (id(m), n_ctx, prompt_format)
    with _LOCK:
        entry = _TRANSLATORS.get(key)
        if entry is None or entry[0] is not m:
            entry = (m, Translator(m, n_ctx=n_ctx, prompt_format=prompt_format))
            _TRANSLATORS[key] = entry
    return entry[1]


def count_pieces(text: str, markdown: bool = True) -> int:
    """How many pieces of ``text`` would be sent to the model (for progress bars)."""
    return sum(s.translate for s in (segment(text) if markdown else segment_plain(text)))


# the KoEn project's published sampling (its FLORES evaluation), used by quality="mbr" unless overridden
PUBLISHED_SAMPLING = dict(temperature=0.3, min_p=0.15, repetition_penalty=1.05)


def translate(text: Union[str, Sequence[str]], target: Optional[str] = None, *, model=None,
              source: Optional[str] = None, formality: Optional[str] = None,
              glossary: Optional[Dict[str, str]] = None, max_tokens: Optional[int] = None, stream: bool = False,
              markdown: bool = True, n_ctx: Optional[int] = None, temperature: Optional[float] = None,
              top_k: int = 0, min_p: Optional[float] = None, repetition_penalty: Optional[float] = None,
              seed: Optional[int] = None, progress=None, batch: bool = True, quant: Optional[str] = None,
              fast: bool = False, prompt_format: Optional[str] = None, quality: str = "plain",
              n_samples: int = 8):
    """Translate ``text`` (a string or a list of strings) into ``target``.

    target: a code ("ko"), FLORES code ("kor_Hang") or name ("Korean"); unknown → ValueError listing
        the valid ones. None: Korean<->English by the KoEn rule, per string (Hangul → "en", else "ko").
        source: same forms, or None to detect per piece (pieces already in the target language are kept).
    model: None (LIQUIDLFM_MODEL, else the registry's model for the pair — the KoEn fine-tune for
        Korean<->English, LFM2-350M otherwise or with fast=True — from the cache or downloaded once, see
        liquidlfm.translate.models and liquidlfm.hub), a path, a repo id, or a loaded model; loaded once
        per resolved path and reused across calls. quant: the file of the default (or a given repo)
        model: "Q8_0" (default), "Q5_K_M", "Q4_K_M". prompt_format: "koen" or "liquid" (default: the
        registry's for the model, by its repo or file name; "liquid" for an unknown model).
    formality: None, "polite" or "casual". glossary: {"source term": "translation"}.
    max_tokens: per piece; default 3 × the piece's tokens + 20.
    quality: "plain" (greedy unless temperature > 0) or "mbr": n_samples samples per piece drawn in one
        batch, the one with the highest expected chrF against the others kept (minimum-Bayes-risk);
        its sampling defaults to the KoEn project's published settings (temperature 0.3, min_p 0.15,
        repetition_penalty 1.05); with a seed the choice is reproducible.
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
    if target is not None:
        language(target)
    if source is not None:
        language(source)
    if quality not in ("plain", "mbr"):
        raise ValueError(f"quality must be 'plain' or 'mbr', got {quality!r}")
    if quality == "mbr":
        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive int, got {n_samples!r}")
        defaults = PUBLISHED_SAMPLING
    else:
        defaults = dict(temperature=0.0, min_p=0.0, repetition_penalty=1.0)
    temperature = defaults["temperature"] if temperature is None else temperature
    min_p = defaults["min_p"] if min_p is None else min_p
    repetition_penalty = defaults["repetition_penalty"] if repetition_penalty is None else repetition_penalty
    if formality not in (None, "polite", "casual"):
        raise ValueError(f"formality must be 'polite', 'casual' or None, got {formality!r}")
    if glossary is not None and not (isinstance(glossary, dict)
                                     and all(isinstance(k, str) and isinstance(v, str) for k, v in glossary.items())):
        raise TypeError("glossary must be a dict of str -> str")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise ValueError(f"max_tokens must be a positive int, got {max_tokens!r}")
    tr = _translator_for(model, n_ctx, prompt_format, source=source, target=target, quant=quant, fast=fast)
    kw = dict(source=source, formality=formality, glossary=glossary, max_tokens=max_tokens, markdown=markdown,
              temperature=temperature, top_k=top_k, min_p=min_p, repetition_penalty=repetition_penalty, seed=seed,
              progress=progress, memo={} if batch else None, quality=quality, n_samples=n_samples)
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
