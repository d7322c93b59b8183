"""LFM-Scholar: related-work drafts with real, verifiable citations.

    from liquidlfm.scholar import draft_related_work
    draft = draft_related_work("idea ...", corpus="refs.bib", model="LiquidAI/LFM2.5-1.2B-Instruct")
    print(draft.markdown()); draft.save("related.tex")   # + related.bib

Retrieval and citation bookkeeping are code (BM25 + expansion + optional model reranking); the model
groups papers into themes and writes prose over their abstracts; verify.py checks every citation.
A liquidlfm model answers the parsed steps under structured output (themes and keyphrases as JSON
under a schema, paragraphs under a grammar whose brackets hold only the keys the paragraph's prompt
showed), so its answers always parse. Every prompt, with its answer's bound, is fitted to the
model's context (budget.py).

LFM-Scholar's own ways are here too (README "LFM-Scholar"): its CiteAgent models by name
(model="cite-agent-2.6b", models.py) drafting from their instruction/response prompt with
[AuthorYearKeyword] keys, and search="agent", where the model calls a search_paper tool (agent.py).
Online search: Semantic Scholar, OpenAlex and arXiv (online.py).
"""
from .api import DEFAULT_MODEL, NoCorpusError, draft_related_work, gather_papers, load_model
from .corpus import CorpusError, Paper, load_corpus
from .draft import RelatedWork, Theme
from .online import OnlineSearchError, search_online
from .retrieve import Index, Retrieval, retrieve
from .verify import VerifyReport, verify_paragraph

__all__ = ["draft_related_work", "gather_papers", "load_model", "load_corpus", "retrieve", "search_online",
           "verify_paragraph", "Index", "Paper", "RelatedWork", "Retrieval", "Theme", "VerifyReport",
           "CorpusError", "NoCorpusError", "OnlineSearchError", "DEFAULT_MODEL"]
