"""The translator's system prompt (prompt format, target language, register, glossary terms) and glossary
files."""
from __future__ import annotations

import json
from typing import Dict, Optional

from .languages import language
from .models import PROMPT_FORMATS

__all__ = ["system_prompt", "glossary_for", "load_glossary"]


_FORMALITY = {
    "ko": {"polite": "Use polite Korean (존댓말, -요/-습니다 endings).", "casual": "Use casual Korean (반말)."},
    "ja": {"polite": "Use polite Japanese (です/ます).", "casual": "Use casual Japanese (だ/である)."},
}


def system_prompt(target: str, *, formality: Optional[str] = None,
                  glossary: Optional[Dict[str, str]] = None, prompt_format: str = "liquid") -> str:
    """The system message: the format's first line (``liquid``: ``Translate to Korean.``; ``koen``:
    ``Translate the following text to Korean.``, see liquidlfm.translate.models), then a register line
    and glossary lines only when asked."""
    lang = language(target)
    if prompt_format not in PROMPT_FORMATS:
        raise ValueError(f"prompt_format must be one of {', '.join(PROMPT_FORMATS)}, got {prompt_format!r}")
    lines = [PROMPT_FORMATS[prompt_format].format(language=lang.name)]
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


def glossary_for(text: str, glossary: Optional[Dict[str, str]]) -> Optional[Dict[str, str]]:
    """The glossary entries whose term occurs in text (case-insensitive), or None."""
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
