"""draft_related_work(): corpus/online search -> retrieval -> themes + prose -> verified draft."""
from __future__ import annotations

import os
from typing import Optional

from .corpus import FORMATS_HELP, CorpusError, finalize, load_corpus
from .draft import RelatedWork, draft_from_retrieval, progress_callback
from .llm import model_context
from .models import PROMPT_FORMATS, lookup, prompt_format_for
from .rerank import ModelReranker
from .retrieve import Index, retrieve

DEFAULT_MODEL = "LiquidAI/LFM2.5-1.2B-Instruct"
SEARCH_MODES = ("classic", "agent")

NO_CORPUS_HELP = (f"pass --corpus FILE (or a folder): {FORMATS_HELP}. Example: "
                  f'python -m liquidlfm.scholar "your idea" --corpus refs.bib')


class NoCorpusError(CorpusError):
    """No corpus was given and online search is not possible."""


def _offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes")
               for v in ("LIQUIDLFM_OFFLINE", "HF_HUB_OFFLINE"))


def load_model(spec=None, *, progress=None):
    """A model object from a Scholar model name (models.MODELS: "cite-agent-2.6b", ...) / path / HF
    repo id / None (LIQUIDLFM_MODEL, else DEFAULT_MODEL), resolved like the translator does
    (liquidlfm.hub.resolve_model(purpose="chat")). Objects pass through."""
    if spec is not None and not isinstance(spec, (str, os.PathLike)):
        return spec
    say = progress or (lambda m: None)
    from ..hub import resolve_model
    from ..model import load

    known = lookup(spec)
    if known is not None:
        say(f"model {known.name}: {known.repo}, {known.filename}")
    path = resolve_model(known.spec if known is not None else None if spec is None else str(spec), purpose="chat")
    say(f"loading model {path}")
    model = load(str(path))
    try:
        model.name = str(spec) if spec is not None else os.environ.get("LIQUIDLFM_MODEL") or str(path)
    except AttributeError:
        pass
    return model


def gather_papers(idea: str, corpus=None, *, papers=None, arxiv: bool = False, semantic_scholar: bool = False,
                  openalex: bool = False, cache_dir=None, online_limit: int = 40, progress=None) -> list:
    """The papers to search: the corpus files, given papers, and online results: the services asked
    for (arxiv / semantic_scholar / openalex), pooled; or, when neither a corpus nor papers nor a
    service is given, LFM-Scholar's chain: Semantic Scholar, falling back to OpenAlex, then arXiv.
    Raises NoCorpusError with what to pass when that leaves nothing."""
    say = progress or (lambda m: None)
    pool = list(papers or [])
    if corpus is not None:
        say(f"loading corpus {corpus}")
        pool += load_corpus(corpus)
    asked = arxiv or semantic_scholar or openalex
    if asked or (corpus is None and papers is None):
        from .online import OnlineSearchError, search_online
        if _offline():
            if not pool:
                raise NoCorpusError("no corpus given and online search is disabled "
                                    f"(LIQUIDLFM_OFFLINE/HF_HUB_OFFLINE); {NO_CORPUS_HELP}")
            say("offline: skipping online search")
        else:
            try:
                if asked:
                    pool += search_online(idea, arxiv=arxiv, semantic_scholar=semantic_scholar, openalex=openalex,
                                          limit=online_limit, cache_dir=cache_dir, log=say)
                else:
                    pool += search_online(idea, arxiv=True, semantic_scholar=True, openalex=True, fallback=True,
                                          limit=online_limit, cache_dir=cache_dir, log=say)
            except OnlineSearchError as e:
                if not pool:
                    raise NoCorpusError(f"no corpus given and online search failed ({e}); "
                                        f"{NO_CORPUS_HELP}") from None
                say(f"online search failed, using the corpus only: {e}")
    if not pool:
        raise NoCorpusError(f"no papers to search; {NO_CORPUS_HELP}")
    return finalize(pool)


def draft_related_work(idea: str, corpus=None, *, papers=None, model=None, top_k: int = 12,
                       format: str = "markdown", arxiv: bool = False, semantic_scholar: bool = False,
                       openalex: bool = False,
                       expand: bool = True, rerank: bool = True, reranker=None, n_candidates: int = 30,
                       max_themes: int = 3, max_tokens: int = 300, n_ctx: Optional[int] = None, cache_dir=None,
                       index: Optional[Index] = None, online_limit: int = 40, search: str = "classic",
                       max_search_rounds: int = 5, prompt_format: str = "auto", progress=False) -> RelatedWork:
    """Draft a Related Work section for `idea`.

    corpus: path(s) to .bib/.jsonl/.json/.csv files or folders; papers: a list of Paper instead;
    arxiv / semantic_scholar / openalex: also search these online, pooled (with neither corpus nor papers
    nor a service: Semantic Scholar, falling back to OpenAlex, then arXiv; see gather_papers).
    model: None (BM25 only; each paragraph built from metadata), a path / repo id, or a model object
    with the liquidlfm Model API (or any callable generator(prompt, max_tokens=...) -> str).
    reranker: callable (idea, papers) -> relevance scores in [0, 1]; default: the model's yes/no logits.
    max_tokens: the answer budget of each paragraph. n_ctx: the context the model runs in (default: its
    trained context, at most 32768; a plain generator may tell its own as .n_ctx). Every prompt is
    measured with the model's tokenizer and fitted to n_ctx minus the answer's tokens: abstract
    excerpts are shortened, then the lowest-ranked papers left out of that prompt (and not citable
    there), each cut reported through progress and in RelatedWork.notes; ContextFullError names the
    sizes when even one paper with a short excerpt does not fit.
    search: "classic" (the corpus / online results for the idea, ranked by BM25 + expansion + reranking)
    or "agent" (the model calls search_paper(query=...) for up to max_search_rounds rounds, over the
    corpus when one is given, else online; what it finds is then ranked the classic way; agent.py).
    prompt_format: how the prose is asked for: "chat", "cite-agent" (the CiteAgent models' format,
    models.py), or "auto": "cite-agent" for a CiteAgent model (by name), else "chat".
    Returns a RelatedWork (markdown(), latex(), bibtex(), save(path), explain(), cited, report).
    """
    if format not in ("markdown", "latex"):
        raise ValueError(f"format must be 'markdown' or 'latex', got {format!r}")
    if not isinstance(idea, str) or not idea.strip():
        raise ValueError("the idea is empty; describe the research idea in a sentence or two")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if n_ctx is not None and (isinstance(n_ctx, bool) or not isinstance(n_ctx, int) or n_ctx < 1):
        raise ValueError(f"n_ctx must be a positive int or None, got {n_ctx!r}")
    if search not in SEARCH_MODES:
        raise ValueError(f"search must be one of {', '.join(SEARCH_MODES)}, got {search!r}")
    if prompt_format not in ("auto",) + PROMPT_FORMATS:
        raise ValueError(f"prompt_format must be one of auto, {', '.join(PROMPT_FORMATS)}, got {prompt_format!r}")
    if search == "agent" and model is None:
        raise ValueError("search='agent' needs a model to do the searching; pass model=... or use search='classic'")
    say = progress_callback(progress)
    asked_online = arxiv or semantic_scholar or openalex
    agent_online = search == "agent" and index is None and corpus is None and papers is None and not asked_online
    if agent_online:
        if _offline():
            raise NoCorpusError("no corpus given and online search is disabled (LIQUIDLFM_OFFLINE/HF_HUB_OFFLINE), "
                                f"so the agent has nothing to search; {NO_CORPUS_HELP}")
    elif index is None:                                   # corpus problems surface before a model loads
        pool = gather_papers(idea, corpus, papers=papers, arxiv=arxiv, semantic_scholar=semantic_scholar,
                             openalex=openalex,
                             cache_dir=cache_dir, online_limit=online_limit, progress=say)
        say(f"indexing {len(pool)} papers")
        index = Index(pool)
    model_name = ""
    if isinstance(model, (str, os.PathLike)):
        model_name = str(model)
        model = load_model(model, progress=say)
    elif model is not None:
        model_name = str(getattr(model, "name", None) or getattr(model, "path", None) or type(model).__name__)
    if model is not None:
        n_ctx = model_context(model, n_ctx)               # one context for every step's prompts
    if prompt_format == "auto":
        prompt_format = prompt_format_for(model_name) if model is not None else "chat"
    if search == "agent":
        index = _agent_pool(idea, model, index, max_search_rounds, n_ctx, cache_dir, online_limit, say)
    say(f"retrieving the top {top_k} papers")
    if rerank and reranker is None and model is not None:
        reranker = ModelReranker(model, n_ctx=n_ctx, progress=say)
    r = retrieve(idea, index=index, top_k=top_k, expand=expand, model=model,
                 reranker=reranker if rerank else None, n_candidates=n_candidates, n_ctx=n_ctx, progress=say)
    return draft_from_retrieval(idea, r, model=model, model_name=model_name, format=format,
                                max_themes=max_themes, max_tokens=max_tokens, n_ctx=n_ctx,
                                prompt_format=prompt_format, progress=say)


def _agent_pool(idea, model, index, max_rounds, n_ctx, cache_dir, online_limit, say) -> Index:
    """The index of the papers the model's searches found (agent.py): over index when there is one,
    else online (Semantic Scholar, falling back to OpenAlex, then arXiv). When the agent finds nothing
    (it never called the tool, or every search failed), the classic search's papers are used instead."""
    from .agent import RESULTS_PER_QUERY, agent_search
    from .online import search_online

    if index is not None:
        def search(query):
            return [h.paper for h in retrieve(query, index=index, top_k=RESULTS_PER_QUERY, expand=False).hits]
    else:
        def search(query):
            return search_online(query, arxiv=True, semantic_scholar=True, openalex=True, fallback=True,
                                 limit=2 * RESULTS_PER_QUERY, cache_dir=cache_dir, log=say)
    say(f"agent search: the model searches for papers (at most {max_rounds} rounds)")
    found = agent_search(model, idea, search, max_rounds=max_rounds, n_ctx=n_ctx, progress=say)
    if found.papers:
        say(f"agent search: {len(found.papers)} papers from {len(found.queries)} queries in {found.rounds} rounds")
        return Index(finalize([_copy(p) for p in found.papers]))
    say(f"agent search found no papers ({found.rounds} rounds, {len(found.queries)} queries); "
        "using the classic search instead")
    return index if index is not None else Index(gather_papers(idea, cache_dir=cache_dir, online_limit=online_limit,
                                                               progress=say))


def _copy(paper):
    from dataclasses import replace
    return replace(paper)
