"""Translate text and markdown documents with an LFM2 model.

    import liquidlfm as lfm
    lfm.translate("The weather is nice today.", "ko")           # source language detected
    lfm.translate(["first sentence", "second"], "ko")            # a list: same order back
    lfm.translate(markdown_document, "ko")                      # structure kept (liquidlfm.segment)
    for piece in lfm.translate(doc, "ko", stream=True): ...     # "".join(pieces) == the translation
    python -m liquidlfm.translate --to ko "text"
    python -m liquidlfm.translate --to ko < README.md > README.ko.md

How: the text is cut by :mod:`liquidlfm.segment` into sentences (and table cells, link texts, headings)
with the markup between them kept verbatim; each piece is translated on its own with the model's chat
template and a system prompt in the style of Liquid's translation model (LFM2-350M-ENJP-MT is prompted
with the system message ``Translate to Japanese.``): ``Translate to Korean.``, plus one line for the
register (``formality``) and one for glossary terms that occur in the piece. Decoding is greedy by default
(``temperature=0``). The prompt prefix up to the user message is prefilled once and its state reused
for every piece. Pieces already in the target language (by script/stop-word detection) are kept as they
are.

Nothing is truncated silently: a piece too long for the context is split at clause boundaries, and one
that still does not fit raises :class:`liquidlfm.ContextFullError`; a translation that hits
``max_tokens`` (default: derived from the piece's length) emits :class:`TranslationTruncatedWarning`.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
import types
import unicodedata
import warnings
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from .errors import ContextFullError
from .segment import segment, segment_plain

__all__ = ["translate", "Translator", "LANGUAGES", "language", "detect_language", "system_prompt",
           "TranslationTruncatedWarning", "load_glossary"]


class TranslationTruncatedWarning(UserWarning):
    """A translated piece stopped at max_tokens before the model ended it (it may be cut short)."""


# ---- languages ----

@dataclass(frozen=True)
class Language:
    code: str          # ISO 639-1
    flores: str        # FLORES-200 / NLLB code
    name: str          # English name, used in the prompt
    native: str
    official: bool     # listed in LFM2's model card


LANGUAGES: Dict[str, Language] = {l.code: l for l in [
    Language("en", "eng_Latn", "English", "English", True),
    Language("ko", "kor_Hang", "Korean", "한국어", True),
    Language("ja", "jpn_Jpan", "Japanese", "日本語", True),
    Language("zh", "zho_Hans", "Chinese", "中文", True),
    Language("ar", "arb_Arab", "Arabic", "العربية", True),
    Language("fr", "fra_Latn", "French", "Français", True),
    Language("de", "deu_Latn", "German", "Deutsch", True),
    Language("es", "spa_Latn", "Spanish", "Español", True),
    # not in LFM2's card; accepted because the model handles it to some degree (quality unknown)
    Language("pt", "por_Latn", "Portuguese", "Português", False),
]}
_ALIASES = {"eng": "en", "kor": "ko", "jpn": "ja", "zho": "zh", "chi": "zh", "zh-cn": "zh", "zh-hans": "zh",
            "zh_cn": "zh", "ara": "ar", "fra": "fr", "fre": "fr", "deu": "de", "ger": "de", "spa": "es",
            "por": "pt", "pt-br": "pt", "ko-kr": "ko", "en-us": "en", "en-gb": "en", "ja-jp": "ja",
            "korean": "ko", "english": "en", "japanese": "ja", "chinese": "zh", "mandarin": "zh"}


def language(name: str) -> Language:
    """Look up a language by code (ko), FLORES code (kor_Hang), English or native name (Korean, 한국어)."""
    if isinstance(name, Language):
        return name
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"language must be a non-empty string, got {name!r}")
    key = name.strip()
    low = key.lower()
    if low in LANGUAGES:
        return LANGUAGES[low]
    if low in _ALIASES:
        return LANGUAGES[_ALIASES[low]]
    for lang in LANGUAGES.values():
        if low in (lang.flores.lower(), lang.name.lower(), lang.native.lower()):
            return lang
    valid = ", ".join(f"{l.code} ({l.flores}, {l.name})" for l in LANGUAGES.values())
    raise ValueError(f"unknown language {name!r}; valid languages: {valid}")


_STOPWORDS = {
    "en": {"the", "and", "is", "are", "of", "to", "in", "that", "it", "with", "for", "this", "was", "be", "on"},
    "fr": {"le", "la", "les", "et", "est", "des", "une", "un", "du", "que", "dans", "pour", "pas", "sur", "au"},
    "de": {"der", "die", "das", "und", "ist", "nicht", "ein", "eine", "mit", "den", "zu", "von", "sich", "auf"},
    "es": {"el", "la", "los", "las", "y", "es", "que", "de", "en", "un", "una", "por", "con", "para", "del"},
    "pt": {"o", "a", "os", "as", "e", "é", "que", "de", "em", "um", "uma", "para", "com", "não", "do", "da"},
}


def detect_language(text: str) -> Optional[str]:
    """Best guess of ``text``'s language code from its scripts (Hangul, kana, Han, Arabic, Latin) and, for
    Latin script, stop words. None if the text has no letters."""
    counts = {"hangul": 0, "kana": 0, "han": 0, "arabic": 0, "latin": 0, "other": 0}
    for ch in text:
        if not ch.isalpha():
            continue
        o = ord(ch)
        if 0xAC00 <= o <= 0xD7A3 or 0x1100 <= o <= 0x11FF or 0x3130 <= o <= 0x318F:
            counts["hangul"] += 1
        elif 0x3040 <= o <= 0x30FF or 0x31F0 <= o <= 0x31FF:
            counts["kana"] += 1
        elif 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0xF900 <= o <= 0xFAFF:
            counts["han"] += 1
        elif 0x0600 <= o <= 0x06FF or 0x0750 <= o <= 0x077F or 0xFB50 <= o <= 0xFDFF:
            counts["arabic"] += 1
        elif "LATIN" in unicodedata.name(ch, ""):
            counts["latin"] += 1
        else:
            counts["other"] += 1
    total = sum(counts.values())
    if total == 0:
        return None
    if counts["hangul"] >= 0.3 * total:
        return "ko"
    if counts["kana"] >= 0.1 * total:
        return "ja"
    if counts["han"] >= 0.3 * total:
        return "zh"
    if counts["arabic"] >= 0.3 * total:
        return "ar"
    if counts["latin"] >= 0.5 * total:
        words = re.findall(r"[^\W\d_]+", text.lower())
        scores = {k: sum(w in sw for w in words) for k, sw in _STOPWORDS.items()}
        best = max(scores, key=lambda k: (scores[k], k == "en"))
        return best if scores[best] > 0 else "en"
    return None


# ---- prompts ----

_FORMALITY = {
    "ko": {"polite": "Use polite Korean (존댓말, -요/-습니다 endings).", "casual": "Use casual Korean (반말)."},
    "ja": {"polite": "Use polite Japanese (です/ます).", "casual": "Use casual Japanese (だ/である)."},
}


def system_prompt(target: str, *, formality: Optional[str] = None,
                  glossary: Optional[Dict[str, str]] = None) -> str:
    """The system message: ``Translate to Korean.`` (+ register line) (+ glossary lines)."""
    lang = language(target)
    lines = [f"Translate to {lang.name}."]
    if formality is not None:
        if formality not in ("polite", "casual"):
            raise ValueError(f"formality must be 'polite', 'casual' or None, got {formality!r}")
        default = {"polite": f"Use a polite, formal register in {lang.name}.",
                   "casual": f"Use a casual, informal register in {lang.name}."}[formality]
        lines.append(_FORMALITY.get(lang.code, {}).get(formality, default))
    if glossary:
        lines.append("Use these translations for the following terms:")
        lines += [f"{k} = {v}" for k, v in glossary.items()]
    return "\n".join(lines)


def _glossary_for(text: str, glossary: Optional[Dict[str, str]]) -> Optional[Dict[str, str]]:
    if not glossary:
        return None
    low = text.lower()
    hit = {k: v for k, v in glossary.items() if k.lower() in low}
    return hit or None


def load_glossary(path: str) -> Dict[str, str]:
    """A glossary file: JSON object {"source term": "translation"}, or lines ``term<TAB>translation``
    (also ``term = translation`` / ``term -> translation``); ``#`` starts a comment line."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if path.endswith(".json") or text.lstrip().startswith("{"):
        data = json.loads(text)
        if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
            raise ValueError(f"{path}: a JSON glossary must be an object of strings")
        return data
    out: Dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        for sep in ("\t", "->", "→", "="):
            if sep in line:
                k, v = line.split(sep, 1)
                break
        else:
            raise ValueError(f"{path}:{n}: expected 'term<TAB>translation', got {line!r}")
        if not k.strip() or not v.strip():
            raise ValueError(f"{path}:{n}: empty term or translation")
        out[k.strip()] = v.strip()
    return out


def _render_template(template: str, messages, add_generation_prompt=True, bos="<|startoftext|>",
                     eos="<|im_end|>") -> str:
    """Render a chat template the way transformers does (sandboxed jinja2, trim/lstrip blocks)."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    from jinja2.ext import loopcontrols

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])

    def raise_exception(msg):
        raise ValueError(msg)

    env.filters["tojson"] = lambda x, indent=None, **kw: json.dumps(x, ensure_ascii=False, indent=indent)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(messages=messages, add_generation_prompt=add_generation_prompt,
                                            bos_token=bos, eos_token=eos, tools=None)


# ---- the translator ----

_MODELS: Dict[str, object] = {}
_MODELS_LOCK = threading.Lock()


def _get_model(spec) -> object:
    """A loaded model for spec (None / path / repo id / Model); loaded once per resolved path."""
    if spec is not None and not isinstance(spec, (str, os.PathLike)):
        return spec  # already a model object
    from .hub import resolve_model

    path = resolve_model(None if spec is None else os.fspath(spec), purpose="translate")
    with _MODELS_LOCK:
        m = _MODELS.get(path)
        if m is None:
            from .model import load

            m = load(path)
            _MODELS[path] = m
    return m


_CLAUSE = re.compile(r"(?<=[,;:，；：、])\s+|(?<=[,;:，；：、])")


class Translator:
    """Translate with one model. Keeps the prefilled prompt prefix state per system prompt, so every
    piece only prefills its own tokens. Not thread-safe (one session); create one per thread."""

    def __init__(self, model=None, *, n_ctx: Optional[int] = None):
        self.model = _get_model(model)
        tok = getattr(self.model, "tokenizer", None)
        if tok is None:
            raise ValueError("the model has no tokenizer; translation needs a model with a tokenizer")
        self.tokenizer = tok
        template = getattr(self.model, "chat_template", None)
        if not template:
            raise ValueError("the model has no chat template; translation needs an instruction-tuned LFM2")
        self.template = template
        cfg = getattr(self.model, "config", None)
        n_train = getattr(cfg, "n_ctx_train", None) or 32768
        self.n_ctx = int(n_ctx or min(n_train, 4096))
        self._session = None
        self._prefix: Dict[str, Tuple[List[int], object]] = {}
        self.stop_ids = self._stop_ids()
        self.stats = {"segments": 0, "prompt_tokens": 0, "generated_tokens": 0}

    # -- prompts --
    def render(self, text: str, target: str, *, formality=None, glossary=None) -> str:
        """The exact prompt string for one piece (the chat template applied to system + user)."""
        msgs = [{"role": "system", "content": system_prompt(target, formality=formality, glossary=glossary)},
                {"role": "user", "content": text}]
        apply = getattr(self.model, "apply_chat_template", None)
        if callable(apply):
            try:
                return apply(msgs, add_generation_prompt=True)
            except NotImplementedError:
                pass
        return _render_template(self.template, msgs)

    def _stop_ids(self) -> set:
        ids = set()
        for obj, attr in ((self.tokenizer, "eos_id"), (getattr(self.model, "config", None), "eos_token_id")):
            v = getattr(obj, attr, None) if obj is not None else None
            if isinstance(v, int):
                ids.add(v)
            elif isinstance(v, (list, tuple)):
                ids.update(int(x) for x in v)
        gc = getattr(self.model, "generation_config", None) or {}
        v = gc.get("eos_token_id") if isinstance(gc, dict) else None
        if isinstance(v, int):
            ids.add(v)
        elif isinstance(v, list):
            ids.update(v)
        for s in ("<|im_end|>", "<|endoftext|>"):
            try:
                t = self.tokenizer.encode(s, add_special_tokens=False, parse_special=True)
            except TypeError:
                t = self.tokenizer.encode(s, add_special_tokens=False)
            if len(t) == 1:
                ids.add(t[0])
        if not ids:
            raise ValueError("cannot tell the model's end-of-turn token (no eos id and no <|im_end|>)")
        return ids

    def _encode(self, s: str) -> List[int]:
        try:
            return list(self.tokenizer.encode(s, add_special_tokens=False, parse_special=True))
        except TypeError:
            return list(self.tokenizer.encode(s, add_special_tokens=False))

    def _sess(self):
        if self._session is None:
            self._session = self.model.session(n_ctx=self.n_ctx)
        return self._session

    def close(self):
        if self._session is not None:
            self._session.close()
            self._session = None
        self._prefix.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- one piece --
    def _prompt_ids(self, text, target, formality, glossary) -> Tuple[List[int], str]:
        prompt = self.render(text, target, formality=formality, glossary=glossary)
        return self._encode(prompt), prompt

    def _prefill(self, ids: List[int], sysmsg_key: str, prefix_text: Optional[str]):
        """Prefill ids into the session, reusing the cached state of the common prefix when it matches."""
        s = self._sess()
        cached = self._prefix.get(sysmsg_key)
        if cached is None and prefix_text is not None:
            pids = self._encode(prefix_text)
            if len(pids) < len(ids) and ids[: len(pids)] == pids:
                s.reset()
                s.prefill(pids)
                cached = (pids, s.save())
                if len(self._prefix) > 16:
                    self._prefix.clear()
                self._prefix[sysmsg_key] = cached
        if cached is not None and len(cached[0]) < len(ids) and ids[: len(cached[0])] == cached[0]:
            s.load(cached[1])
            return s.prefill(ids[len(cached[0]):])
        s.reset()
        return s.prefill(ids)

    def translate_piece(self, text: str, target: str, *, formality=None, glossary=None,
                        max_tokens: Optional[int] = None, temperature: float = 0.0, top_k: int = 0,
                        min_p: float = 0.0, seed: Optional[int] = None) -> Tuple[str, str]:
        """Translate one piece (no segmentation). Returns (translation, finish_reason: "stop"|"length")."""
        gl = _glossary_for(text, glossary)
        ids, prompt = self._prompt_ids(text, target, formality, gl)
        n_src = len(self._encode(text))
        budget = int(max_tokens) if max_tokens is not None else 3 * n_src + 20
        room = self.n_ctx - len(ids)
        if room < min(budget, n_src + 8):
            raise ContextFullError(
                f"a piece of {n_src} tokens needs a {len(ids)}-token prompt and room to answer, "
                f"but the context holds {self.n_ctx} tokens; pass a larger n_ctx or shorter text")
        budget = min(budget, room)
        # the rendered prompt up to the user's text is the same for every piece with this system prompt
        marker = "\x00LFM_SPLIT\x00"
        full_marked = self.render(marker, target, formality=formality, glossary=gl)
        prefix_text = full_marked.split(marker)[0] if marker in full_marked else None
        key = json.dumps([target, formality, gl], ensure_ascii=False)
        logits = self._prefill(ids, key, prefix_text)
        rng = np.random.default_rng(seed)
        out: List[int] = []
        finish = "length"
        s = self._sess()
        for i in range(budget):
            tok = _pick(np.asarray(logits), temperature, top_k, min_p, rng)
            if tok in self.stop_ids:
                finish = "stop"
                break
            out.append(tok)
            if i + 1 == budget:
                break
            logits = s.step(tok)
        self.stats["segments"] += 1
        self.stats["prompt_tokens"] += len(ids)
        self.stats["generated_tokens"] += len(out) + (1 if finish == "stop" else 0)
        text_out = self.tokenizer.decode(out, skip_special_tokens=True)
        return text_out.strip(), finish

    def _fit(self, text: str, target, formality, glossary) -> List[str]:
        """Split a piece at clause boundaries until each part fits in the context with room to answer."""
        ids, _ = self._prompt_ids(text, target, formality, _glossary_for(text, glossary))
        n_src = len(self._encode(text))
        if len(ids) + n_src + 8 <= self.n_ctx:
            return [text]
        parts = [p for p in _CLAUSE.split(text) if p.strip()]
        if len(parts) < 2:
            words = text.split(" ")
            if len(words) < 2:
                raise ContextFullError(
                    f"a single piece of {n_src} tokens cannot fit the {self.n_ctx}-token context "
                    f"(prompt {len(ids)} tokens) and has no sentence, clause or word boundary to split at")
            parts = words
        mid = len(parts) // 2
        joiner = " " if " " in text else ""
        a, b = joiner.join(parts[:mid]), joiner.join(parts[mid:])
        return self._fit(a, target, formality, glossary) + self._fit(b, target, formality, glossary)

    # -- documents --
    def iter_translate(self, text: str, target: str, *, source=None, formality=None, glossary=None,
                       max_tokens=None, markdown=True, progress=None, memo=None, **gen) -> Iterator[str]:
        """Yield the translated document piece by piece (markup verbatim, translations in between).
        memo: a dict shared across calls to translate repeated pieces once (greedy decoding only)."""
        tgt = language(target)
        segs = segment(text) if markdown else segment_plain(text)
        src_fixed = language(source).code if source is not None else None
        joiner = "" if tgt.code in ("ja", "zh") else " "
        for seg in segs:
            if not seg.translate:
                yield seg.text
                continue
            piece = re.sub(r"[ \t]*\n[ \t]*", " ", seg.text)
            src = src_fixed or detect_language(piece)
            key = (piece, tgt.code, formality, json.dumps(_glossary_for(piece, glossary), ensure_ascii=False),
                   max_tokens)
            greedy = not gen.get("temperature")
            if src == tgt.code:
                out = seg.text  # already in the target language
            elif memo is not None and greedy and key in memo:
                out = memo[key]
            else:
                outs = []
                for part in self._fit(piece, tgt.code, formality, glossary):
                    o, finish = self.translate_piece(part, tgt.code, formality=formality, glossary=glossary,
                                                     max_tokens=max_tokens, **gen)
                    if finish == "length":
                        warnings.warn(TranslationTruncatedWarning(
                            f"translation of {part[:40]!r}... stopped at the max_tokens limit; it may be "
                            "incomplete (pass a larger max_tokens)"), stacklevel=3)
                    outs.append(o)
                out = joiner.join(outs)
                if memo is not None and greedy:
                    memo[key] = out
            if progress is not None:
                progress.update(1)
            yield out


def _pick(logits: np.ndarray, temperature: float, top_k: int, min_p: float, rng) -> int:
    if temperature is None or temperature <= 0:
        return int(np.argmax(logits))
    x = logits.astype(np.float64) / float(temperature)
    if top_k and top_k > 0 and top_k < x.size:
        kth = np.partition(x, -top_k)[-top_k]
        x = np.where(x >= kth, x, -np.inf)
    p = np.exp(x - np.max(x))
    p /= p.sum()
    if min_p and min_p > 0:
        p = np.where(p >= min_p * p.max(), p, 0.0)
        p /= p.sum()
    return int(rng.choice(p.size, p=p))


_TRANSLATORS: Dict[int, Translator] = {}


def _translator_for(model, n_ctx=None) -> Translator:
    m = _get_model(model)
    key = (id(m), n_ctx)
    t = _TRANSLATORS.get(key)
    if t is None:
        t = Translator(m, n_ctx=n_ctx)
        _TRANSLATORS[key] = t
    return t


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
        items) only once (greedy decoding only). The engine decodes one sequence at a time; list items
        share the prefilled prompt-prefix state.
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
        return ("".join(tr.iter_translate(t, target, **kw)) for t in items)
    outs = ["".join(tr.iter_translate(t, target, **kw)) for t in items]
    return outs[0] if single else outs


# ---- command line ----

def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m liquidlfm.translate",
        description="Translate text or a markdown file with an LFM2 model (markdown structure is kept).",
        epilog="Examples:\n  python -m liquidlfm.translate --to ko \"The weather is nice today.\"\n"
               "  python -m liquidlfm.translate --to ko < README.md > README.ko.md",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("text", nargs="*", help="text to translate (default: read stdin)")
    ap.add_argument("--to", "-t", dest="target", help="target language (ko, kor_Hang, Korean, ...)")
    ap.add_argument("--from", "-f", dest="source", help="source language (default: detected)")
    ap.add_argument("--model", "-m", help="model path or Hugging Face repo id (default: LIQUIDLFM_MODEL / cache / "
                                          "LiquidAI/LFM2-350M-GGUF)")
    ap.add_argument("--formality", choices=["polite", "casual"])
    ap.add_argument("--glossary", help="glossary file: JSON object or 'term<TAB>translation' lines")
    ap.add_argument("--input", "-i", help="read this file instead of stdin")
    ap.add_argument("--output", "-o", help="write here instead of stdout")
    ap.add_argument("--plain", action="store_true", help="plain text: no markdown handling")
    ap.add_argument("--max-tokens", type=int, help="limit per piece (default: from the piece's length)")
    ap.add_argument("--n-ctx", type=int, help="context size (default: min(model's, 4096))")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    ap.add_argument("--list-languages", action="store_true", help="print the supported languages and exit")
    a = ap.parse_args(argv)
    if a.list_languages:
        for l in LANGUAGES.values():
            print(f"{l.code}\t{l.flores}\t{l.name}\t{l.native}" + ("" if l.official else "\t(not in LFM2's card)"))
        return 0
    if not a.target:
        ap.error("the following arguments are required: --to")
    from .errors import ModelNotFoundError

    try:
        language(a.target)
        if a.source:
            language(a.source)
        glossary = load_glossary(a.glossary) if a.glossary else None
        from_file = not a.text
        if a.text:
            text = " ".join(a.text)
        elif a.input:
            with open(a.input, encoding="utf-8") as f:
                text = f.read()
        else:
            text = sys.stdin.read()
        if not text.strip():
            raise ValueError("nothing to translate (empty input)")
        out = open(a.output, "w", encoding="utf-8") if a.output else sys.stdout
        bar = None
        try:
            if from_file and not a.no_progress:
                from tqdm import tqdm

                bar = tqdm(total=count_pieces(text, not a.plain), unit="seg", desc="translating",
                           file=sys.stderr, dynamic_ncols=True)
            with warnings.catch_warnings():
                warnings.simplefilter("default", TranslationTruncatedWarning)
                for chunk in translate(text, a.target, model=a.model, source=a.source, formality=a.formality,
                                       glossary=glossary, max_tokens=a.max_tokens, stream=True,
                                       markdown=not a.plain, n_ctx=a.n_ctx, progress=bar):
                    out.write(chunk)
                    out.flush()
            if a.text:
                out.write("\n")
        finally:
            if bar is not None:
                bar.close()
            if a.output:
                out.close()
    except (ValueError, TypeError, OSError, ContextFullError, ModelNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


class _CallableModule(types.ModuleType):
    """``liquidlfm.translate`` is both this module and the function: ``lfm.translate(text, "ko")``."""

    def __call__(self, *args, **kwargs):
        return translate(*args, **kwargs)


if __name__ == "__main__":
    sys.exit(main())
else:
    sys.modules[__name__].__class__ = _CallableModule
