"""Which model translates which language pair, with which prompt: the translator's model registry.

    entry = model_for("en", "ko")                 # the KoEn fine-tune (Korean <-> English)
    entry = model_for("en", "ja")                 # the general LFM2 model (every other pair)
    entry.spec("Q4_K_M")                          # "repo:file" for liquidlfm.hub.resolve_model
    prompt_format_for("/path/lfm2-1.2b-koen-mt-v8-rl-10k-merged-Q5_K_M.gguf")   # -> "koen"

Entries (why):

- ``koen-v8``: **gyung/lfm2-1.2b-koen-mt-v8-rl-10k-merged-GGUF**, the English<->Korean fine-tune of
  LFM2-1.2B from the community project the translator is modelled on (GitHub gyunggyung/LFM2-KoEn-Tuning;
  Liquid AI's cookbook example ``lfm2-english-to-korean`` uses it). Files per quant: Q8_0 (1.25 GB, the
  default, the project's recommendation), Q5_K_M (843 MB), Q4_K_M (731 MB). Published FLORES-200 devtest
  en->ko chrF / BLEU: merged model 34.61 / 13.21, Q8_0 34.39 / 12.93, Q5_K_M 34.08 / 12.78, Q4_K_M
  33.97 / 12.56 (base LFM2-1.2B: 27.23 chrF). Prompt format ``koen``: exactly the project's prompt (below).
- ``general``: **LiquidAI/LFM2-350M-GGUF**, ``LFM2-350M-Q4_0.gguf`` (~230 MB): the general instruct model
  for every other pair (LFM2's languages: en ko ja zh ar fr de es) and for ``fast=True`` / ``--fast`` on
  Korean<->English too (about 3.4x fewer parameters than the 1.2B). Prompt format ``liquid``: the style of
  Liquid's own translation model (LFM2-350M-ENJP-MT is prompted with ``Translate to Japanese.``).

Prompt formats (the system message; the user message is always the raw source text, through the model's
chat template; generation stops at ``<|im_end|>``):

- ``koen``: ``Translate the following text to Korean.`` / ``Translate the following text to English.``
- ``liquid``: ``Translate to Korean.`` (any target language's English name)

Glossary terms and a register (``formality``) are extra system lines after that first line, only when
asked, so the default prompt is the published one byte for byte.

A model given by path, repo id or loaded object gets the format of the registry entry whose repo or file
name it matches (so ``model="…/lfm2-1.2b-koen-mt-v8-rl-10k-merged-Q4_K_M.gguf"`` is prompted the KoEn way),
else ``liquid``; ``prompt_format=`` overrides.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, Optional, Tuple

__all__ = ["TranslationModelEntry", "REGISTRY", "PROMPT_FORMATS", "model_for", "prompt_format_for", "entry_for"]

PROMPT_FORMATS = {
    "koen": "Translate the following text to {language}.",
    "liquid": "Translate to {language}.",
}


@dataclass(frozen=True)
class TranslationModelEntry:
    name: str
    repo: str
    files: Dict[str, str]                  # quant -> file name in repo
    default_quant: str
    prompt_format: str                     # a key of PROMPT_FORMATS
    pairs: Optional[FrozenSet[Tuple[str, str]]]  # (source, target) codes; None = any pair
    published: Dict[str, Tuple[float, float]] = field(default_factory=dict)  # quant -> (chrF, BLEU) en->ko
    all_files_listed: bool = False         # True: a quant not in files does not exist in the repo

    def file(self, quant: Optional[str] = None) -> str:
        q = (quant or self.default_quant).upper()
        for k, v in self.files.items():
            if k.upper() == q:
                return v
        raise ValueError(f"{self.repo} has no {quant!r} file; quants: {', '.join(self.files)}")

    def spec(self, quant: Optional[str] = None) -> str:
        """The repo:file spec liquidlfm.hub.resolve_model takes. A quant this entry does not list is an
        error when all the repo's files are listed (the KoEn repo's three); otherwise the hub matches it
        against the repo's file list."""
        try:
            return f"{self.repo}:{self.file(quant)}"
        except ValueError:
            if self.all_files_listed:
                raise
            return f"{self.repo}:{quant}"


_KOEN_STEM = "lfm2-1.2b-koen-mt-v8-rl-10k-merged"
KOEN = TranslationModelEntry(
    name="koen-v8",
    repo=f"gyung/{_KOEN_STEM}-GGUF",
    files={q: f"{_KOEN_STEM}-{q}.gguf" for q in ("Q8_0", "Q5_K_M", "Q4_K_M")},
    default_quant="Q8_0",
    prompt_format="koen",
    pairs=frozenset({("en", "ko"), ("ko", "en")}),
    published={"merged (HF weights)": (34.61, 13.21), "Q8_0": (34.39, 12.93), "Q5_K_M": (34.08, 12.78),
               "Q4_K_M": (33.97, 12.56)},
    all_files_listed=True,
)
GENERAL = TranslationModelEntry(
    name="general",
    repo="LiquidAI/LFM2-350M-GGUF",
    files={q: f"LFM2-350M-{q}.gguf" for q in ("Q4_0", "Q4_K_M", "Q8_0")},
    default_quant="Q4_0",
    prompt_format="liquid",
    pairs=None,
)
REGISTRY: Dict[str, TranslationModelEntry] = {e.name: e for e in (KOEN, GENERAL)}
# the base model's published chrF on the same table (no GGUF of it is in the registry)
PUBLISHED_BASE_CHRF = 27.23


def model_for(source: Optional[str], target: Optional[str], *, fast: bool = False) -> TranslationModelEntry:
    """The registry entry for a pair. source None = detected per piece; target None = the automatic
    Korean<->English direction. Korean<->English (or either side unknown with the other Korean/English)
    -> koen-v8, unless fast; anything else -> general."""
    if fast:
        return GENERAL
    if target is None:
        return KOEN
    if source is None:
        return KOEN if target in ("ko", "en") else GENERAL
    return KOEN if (source, target) in KOEN.pairs else GENERAL


def entry_for(model) -> Optional[TranslationModelEntry]:
    """The registry entry a model path / repo spec / loaded model (its .path) belongs to, or None."""
    if model is None:
        return None
    path = getattr(model, "path", model)
    if not isinstance(path, (str, os.PathLike)):
        return None
    s = os.fspath(path).replace("\\", "/").lower()
    names = {s.rsplit("/", 1)[-1]}
    repo = s.split("@", 1)[0]
    if ":" in repo and not os.path.exists(s):  # "owner/name:FILE.gguf" or "owner/name:QUANT"
        repo, selector = repo.split(":", 1)
        names.add(selector)
    for e in REGISTRY.values():
        if repo == e.repo.lower() or names & {f.lower() for f in e.files.values()}:
            return e
    if _KOEN_STEM in s:  # another quant or a local copy of the same fine-tune
        return KOEN
    return None


def prompt_format_for(model) -> str:
    """The prompt format for a model (path, spec or loaded object): its registry entry's, else liquid."""
    e = entry_for(model)
    return e.prompt_format if e is not None else "liquid"
