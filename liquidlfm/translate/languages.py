"""The languages the translator knows: codes, FLORES-200 codes and names, and script/stop-word detection."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Dict, Optional

__all__ = ["Language", "LANGUAGES", "language", "detect_language", "has_hangul", "auto_target"]


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


def has_hangul(text: str) -> bool:
    """True if text has a character of the Hangul Syllables (U+AC00–D7AF), Hangul Jamo (U+1100–11FF) or
    Hangul Compatibility Jamo (U+3130–318F) blocks: the KoEn translator's direction rule."""
    return any(0xAC00 <= o <= 0xD7AF or 0x1100 <= o <= 0x11FF or 0x3130 <= o <= 0x318F for o in map(ord, text))


def auto_target(text: str) -> str:
    """The automatic Korean<->English direction (the rule of the KoEn model's own project): Hangul
    anywhere in text -> "en", else "ko"."""
    return "en" if has_hangul(text) else "ko"
