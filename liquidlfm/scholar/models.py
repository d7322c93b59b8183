"""The models Scholar knows by name, and how each is prompted to draft.

    --model lfm2.5-1.2b-instruct   LiquidAI/LFM2.5-1.2B-Instruct-GGUF, LFM2.5-1.2B-Instruct-Q4_K_M.gguf (default)
    --model cite-agent-2.6b        gyung/LFM-CiteAgent-2.6B-GGUF, LFM2-2.6B-Exp.Q4_K_M.gguf
    --model cite-agent-1.2b        gyung/LFM2.5-CiteAgent-1.2B-v1-GGUF, LFM2.5-1.2B-Instruct.Q4_K_M.gguf

The CiteAgent models are LFM-Scholar's (github.com/gyunggyung/LFM-Scholar) fine-tunes: an LFM2-2.6B
(LFM-Scholar's own default) and an LFM2.5-1.2B-Instruct. They were trained to draft from an
instruction/response prompt (not the chat template) that lists the references under
[AuthorYearKeyword] keys, so with them the drafting step uses that format (draft.cite_agent_prompt)
and those keys (keys.py); every other step (reranking, theme grouping, agent search) uses the chat
template, as with any LFM2 instruct model.

Why the default stays LFM2.5-1.2B-Instruct: every structured step (themes as JSON under a schema,
paragraphs under a citation grammar, yes/no reranking) is prompted through the chat template, which an
instruct model follows; it is a ~0.7 GB download against ~1.6 GB for the 2.6B, whose decoding reads
about twice the weight bytes per token (so runs at about half the speed on a memory-bound CPU); and no CiteAgent weights were reachable where this was built, so nothing here measures
whether they draft better. Users coming from LFM-Scholar get its default with --model cite-agent-2.6b.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Optional

PROMPT_FORMATS = ("chat", "cite-agent")


@dataclass(frozen=True)
class ScholarModel:
    name: str
    repo: str
    filename: str
    prompt_format: str              # "chat" or "cite-agent" (see the module docstring)
    about: str

    @property
    def spec(self) -> str:
        """The hub spec (liquidlfm.hub.resolve_model) of exactly this file."""
        return f"{self.repo}:{self.filename}"


MODELS = {m.name: m for m in [
    ScholarModel("lfm2.5-1.2b-instruct", "LiquidAI/LFM2.5-1.2B-Instruct-GGUF", "LFM2.5-1.2B-Instruct-Q4_K_M.gguf",
                 "chat", "Liquid AI's instruct model; Scholar's default"),
    ScholarModel("cite-agent-2.6b", "gyung/LFM-CiteAgent-2.6B-GGUF", "LFM2-2.6B-Exp.Q4_K_M.gguf",
                 "cite-agent", "LFM-Scholar's default: an LFM2-2.6B fine-tune for cited related work"),
    ScholarModel("cite-agent-1.2b", "gyung/LFM2.5-CiteAgent-1.2B-v1-GGUF", "LFM2.5-1.2B-Instruct.Q4_K_M.gguf",
                 "cite-agent", "LFM-Scholar's LFM2.5-1.2B-Instruct fine-tune"),
]}
DEFAULT_MODEL_NAME = "lfm2.5-1.2b-instruct"
_CITE_AGENT = re.compile(r"cite[-_ ]?agent", re.I)


def lookup(spec) -> Optional[ScholarModel]:
    """The known model named spec (case-insensitive), else None."""
    return MODELS.get(str(spec).strip().lower()) if isinstance(spec, (str, os.PathLike)) else None


def names_help() -> str:
    return ", ".join(f"{m.name} ({m.repo})" for m in MODELS.values())


def prompt_format_for(name: str) -> str:
    """"cite-agent" for a CiteAgent model (by its Scholar name, its repo, or a path or name holding
    "CiteAgent"), else "chat"."""
    m = lookup(name)
    if m is not None:
        return m.prompt_format
    return "cite-agent" if _CITE_AGENT.search(str(name or "")) else "chat"
