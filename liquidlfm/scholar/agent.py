"""Agent search: the model looks for papers itself, calling a search_paper(query=...) tool.

LFM-Scholar's agent mode, through LFM2's own tool calls: the chat template lists the tool, the model
answers with <|tool_call_start|>[search_paper(query="...")]<|tool_call_end|> (read by
liquidlfm.tool_calls, shared with the server), each call is run against the papers Scholar can
search (a corpus's BM25 index, or the online services) and its results go back as a tool message;
this repeats for up to MAX_ROUNDS rounds, or until the model answers without a call. The papers found
are the pool the usual retrieval (BM25 + reranking) then ranks for the idea, so an agent that finds
off-topic papers still has them ranked, and the verifier still allows only what was retrieved.

The calls are read from the reply's decoded text (the whole reply, after generation). When the reply
carries its token ids (a liquidlfm GenerationResult) and the tokenizer has <|tool_call_start|> as one
special token, a reply without that token holds no call, whatever its text spells: only the model's
own tool-call token starts a call, as the LFM2 reference says (the server splits streams the same way).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable, Optional

from ..tool_calls import TOOL_CALL_START, split_tool_calls
from .llm import ChatPrompting, GenerationModel, model_context

MAX_ROUNDS = 5
RESULTS_PER_QUERY = 5
ABSTRACT_CHARS = 300
REPLY_TOKENS = 160

SEARCH_TOOL = {
    "name": "search_paper",
    "description": ("Search for research papers. Returns up to 5 papers, each with its title, authors, year "
                    "and the beginning of its abstract."),
    "parameters": {"type": "object", "properties": {
        "query": {"type": "string", "description": "keywords or a short phrase describing the papers wanted"}},
        "required": ["query"]},
}

AGENT_SYSTEM = ("You are a research assistant collecting papers for the Related Work section of a paper. "
                "Call search_paper to look for papers on the research idea and on each of its parts, one "
                "topic per query, and refine later queries from what earlier ones found. When enough relevant "
                "papers have been found, reply with a one-line summary and call no tool.")


@dataclass
class AgentSearch:
    papers: list                                   # every paper found, in first-found order
    queries: list = field(default_factory=list)    # the queries run, in order
    rounds: int = 0                                # model replies generated
    notes: list = field(default_factory=list)      # calls that could not be run, and why the loop ended
    messages: list = field(default_factory=list)   # the whole conversation, tool results included


def _head(text: str, n: int = ABSTRACT_CHARS) -> str:
    t = " ".join((text or "").split())
    return t if len(t) <= n else t[:n].rstrip() + "…"


def agent_search(model, idea: str, search: Callable[[str], list], *, max_rounds: int = MAX_ROUNDS,
                 per_query: int = RESULTS_PER_QUERY, max_tokens: int = REPLY_TOKENS, n_ctx: Optional[int] = None,
                 progress: Optional[Callable] = None) -> AgentSearch:
    """Let model search through search(query) -> [Paper] for up to max_rounds replies (see the module
    docstring). model: a chat model taking tools= (a liquidlfm Model). A round whose conversation no
    longer fits n_ctx with the reply's max_tokens ends the search (said in notes)."""
    if not isinstance(model, GenerationModel) or not model.chat_template:
        raise ValueError("agent search needs a chat model that can call tools (a liquidlfm model with a chat "
                         "template); use search='classic' with this model")
    if not 1 <= max_rounds <= 20:
        raise ValueError(f"max_rounds must be between 1 and 20, got {max_rounds}")
    say = progress or (lambda m: None)
    n_ctx = model_context(model, n_ctx)
    tok = getattr(model, "tokenizer", None)
    measurable = n_ctx is not None and callable(getattr(tok, "encode", None)) and isinstance(model, ChatPrompting)
    out = AgentSearch(papers=[], messages=[{"role": "system", "content": AGENT_SYSTEM},
                                           {"role": "user", "content": f"Research idea: {idea}"}])
    seen = {}

    def note(msg):
        out.notes.append(msg)
        say(msg)

    def run(call) -> str:
        if call.name != SEARCH_TOOL["name"]:
            note(f"agent called an unknown tool {call.name!r}")
            return json.dumps({"error": f"unknown tool {call.name!r}; the only tool is search_paper(query=...)"})
        try:
            query = json.loads(call.arguments).get("query")
        except (ValueError, AttributeError):
            query = None
        if not isinstance(query, str) or not query.strip():
            note(f"agent called search_paper without a query ({call.arguments})")
            return json.dumps({"error": "search_paper needs query=\"...\" (a non-empty string)"})
        query = " ".join(query.split())
        out.queries.append(query)
        try:
            found = list(search(query))[:per_query]
        except Exception as e:                          # noqa: BLE001 - a failed search is told to the model
            note(f"search for {query!r} failed: {e}")
            return json.dumps({"error": f"the search failed: {e}"})
        fresh = 0
        for p in found:
            sig = (" ".join(p.title.lower().split()), p.year)
            if sig not in seen:
                seen[sig] = p
                out.papers.append(p)
                fresh += 1
        say(f"agent search {len(out.queries)}: {query!r}: {len(found)} papers ({fresh} new)")
        return json.dumps([{"title": p.title, "authors": p.short_authors(), "year": p.year,
                            "abstract": _head(p.abstract)} for p in found], ensure_ascii=False)

    start_id = None                                       # the <|tool_call_start|> token, when it is one
    if callable(getattr(tok, "encode", None)):
        marker = tok.encode(TOOL_CALL_START, add_special_tokens=False, parse_special=True)
        start_id = marker[0] if len(marker) == 1 else None
    kw = {"max_tokens": max_tokens, "temperature": 0.0, "seed": 0}
    if n_ctx is not None and callable(getattr(model, "session", None)):
        kw["n_ctx"] = n_ctx
    for _ in range(max_rounds):
        if measurable:
            prompt = model.apply_chat_template(out.messages, tools=[SEARCH_TOOL], add_generation_prompt=True)
            used = len(tok.encode(prompt, add_special_tokens=False, parse_special=True))
            if used + max_tokens > n_ctx:
                note(f"agent search stopped after {out.rounds} rounds: the conversation ({used} tokens) and a "
                     f"reply ({max_tokens}) no longer fit the context of {n_ctx}")
                break
        result = model.chat(out.messages, tools=[SEARCH_TOOL], **kw)
        reply = str(result)
        out.rounds += 1
        _, calls = split_tool_calls(reply)
        ids = getattr(result, "token_ids", None)
        if calls and start_id is not None and ids is not None and start_id not in list(ids):
            note("the reply spells a tool call in ordinary text, not with the tool-call token; not run")
            calls = []
        out.messages.append({"role": "assistant", "content": reply})
        if not calls:
            break
        for call in calls:
            out.messages.append({"role": "tool", "content": run(call)})
    else:
        note(f"agent search ended after its {max_rounds} rounds")
    return out
