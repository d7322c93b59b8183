"""python -m liquidlfm.scholar "idea" [--corpus refs.bib] [--format latex --out related.tex] ...

The draft goes to stdout (or --out, written atomically, with the .bib of exactly the cited papers next
to it); progress and --explain go to stderr.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import ContextFullError
from .api import DEFAULT_MODEL, SEARCH_MODES, NoCorpusError, draft_related_work, gather_papers, load_model
from .corpus import FORMATS_HELP, CorpusError
from .draft import progress_callback
from .models import PROMPT_FORMATS, names_help
from .online import OnlineSearchError


def build_parser(prog: str = "python -m liquidlfm.scholar") -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog=prog,
        description="Draft a Related Work section for a research idea, citing only papers it retrieved.")
    ap.add_argument("idea", help="the research idea, in a sentence or two")
    ap.add_argument("--corpus", action="append", metavar="PATH",
                    help=f"papers to search (repeatable): {FORMATS_HELP}")
    ap.add_argument("--arxiv", action="store_true", help="also search arXiv (cached on disk)")
    ap.add_argument("--semantic-scholar", action="store_true", help="also search Semantic Scholar (cached)")
    ap.add_argument("--openalex", action="store_true",
                    help="also search OpenAlex (cached). With no --corpus and no service flag, Semantic Scholar "
                         "is searched, falling back to OpenAlex, then arXiv")
    ap.add_argument("--top-k", type=int, default=12, help="papers to retrieve and draft from (default 12)")
    ap.add_argument("--format", choices=("markdown", "latex"),
                    help="output format (default: from --out's suffix, else markdown)")
    ap.add_argument("--out", metavar="FILE", help="write the draft here (atomically) and FILE's stem + .bib")
    ap.add_argument("--bib", metavar="FILE", help="where to write the .bib (default: next to --out)")
    ap.add_argument("--model", metavar="NAME_OR_PATH",
                    help=f"a Scholar model name: {names_help()}; or a model path (HF folder or .gguf) or Hugging "
                         f"Face repo id, resolved like the translator's (default: $LIQUIDLFM_MODEL, else "
                         f"{DEFAULT_MODEL}, downloaded once)")
    ap.add_argument("--search", choices=SEARCH_MODES, default="classic",
                    help="classic: search the corpus / online services for the idea; agent: the model calls a "
                         "search_paper tool (up to --search-rounds rounds) over the corpus, or online without one; "
                         "either way the papers found are ranked by BM25 + reranking (default classic)")
    ap.add_argument("--search-rounds", type=int, default=5, metavar="N", help="agent search rounds (default 5)")
    ap.add_argument("--prompt-format", choices=("auto",) + PROMPT_FORMATS, default="auto",
                    help="how the prose is asked for: chat (one chat prompt per theme, [P1] keys) or cite-agent "
                         "(the CiteAgent models' instruction/response prompt, [AuthorYearKeyword] keys); "
                         "auto: cite-agent for a CiteAgent model (default auto)")
    ap.add_argument("--no-model", action="store_true",
                    help="no model: BM25 retrieval only; paragraphs are built from the papers' metadata")
    ap.add_argument("--no-rerank", action="store_true", help="do not rerank with the model")
    ap.add_argument("--no-expand", action="store_true", help="no query expansion")
    ap.add_argument("--candidates", type=int, default=30, help="BM25 candidates to rerank (default 30)")
    ap.add_argument("--themes", type=int, default=3, help="at most this many themes (default 3)")
    ap.add_argument("--max-tokens", type=int, default=300, help="token budget per paragraph")
    ap.add_argument("--n-ctx", type=int, metavar="N",
                    help="context length to run the model with (default: the model's, at most 32768); every "
                         "prompt is fitted to it: abstract excerpts shortened, then the lowest-ranked papers "
                         "left out (said on stderr)")
    ap.add_argument("--explain", action="store_true",
                    help="show why each paper was picked (matched terms, BM25 and rerank scores) on stderr")
    ap.add_argument("--cache-dir", metavar="DIR", help="on-disk cache for online search")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    return ap


def main(argv=None, prog: str = "python -m liquidlfm.scholar") -> int:
    args = build_parser(prog).parse_args(argv)
    fmt = args.format
    if fmt is None:
        fmt = "latex" if args.out and Path(args.out).suffix.lower() in (".tex", ".latex") else "markdown"
    if args.top_k < 1:
        print("error: --top-k must be at least 1", file=sys.stderr)
        return 2
    if args.n_ctx is not None and args.n_ctx < 1:
        print("error: --n-ctx must be at least 1", file=sys.stderr)
        return 2
    if not 1 <= args.search_rounds <= 20:
        print("error: --search-rounds must be between 1 and 20", file=sys.stderr)
        return 2
    if args.search == "agent" and args.no_model:
        print("error: --search agent needs a model (the model does the searching); drop --no-model", file=sys.stderr)
        return 2
    progress = False if args.quiet else None
    say = progress_callback(progress)
    agent_online = (args.search == "agent" and not args.corpus
                    and not (args.arxiv or args.semantic_scholar or args.openalex))
    try:                                                    # corpus first: its errors name what to pass
        papers = None if agent_online else gather_papers(
            args.idea, args.corpus, arxiv=args.arxiv, semantic_scholar=args.semantic_scholar,
            openalex=args.openalex, cache_dir=args.cache_dir, progress=say)
    except NoCorpusError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (CorpusError, OnlineSearchError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    model = None
    if not args.no_model:
        try:
            model = load_model(args.model, progress=say)
        except Exception as e:                                  # noqa: BLE001 - any load failure
            print(f"error: could not load the model {args.model or DEFAULT_MODEL!r}: {e}\n"
                  f"Pass --model PATH (a model folder or .gguf), set LIQUIDLFM_MODEL, or use --no-model "
                  f"to draft from the papers' metadata without a model.", file=sys.stderr)
            return 2
    try:
        draft = draft_related_work(
            args.idea, papers=papers, model=model, top_k=args.top_k, format=fmt,
            expand=not args.no_expand, rerank=not args.no_rerank,
            n_candidates=args.candidates, max_themes=args.themes, max_tokens=args.max_tokens, n_ctx=args.n_ctx,
            cache_dir=args.cache_dir, search=args.search, max_search_rounds=args.search_rounds,
            prompt_format=args.prompt_format, progress=say)
    except NoCorpusError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (CorpusError, OnlineSearchError, ValueError, ContextFullError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.explain:
        print(draft.explain(), file=sys.stderr)
    if args.out:
        path, bib = draft.save(args.out, args.bib)
        say(f"wrote {path} and {bib} ({len(draft.cited)} cited papers)")
    else:
        sys.stdout.write(draft.text)
        if args.bib:
            from .render import atomic_write
            atomic_write(args.bib, draft.bibtex())
            say(f"wrote {args.bib}")
    say(draft.report.summary() if model is not None else draft.provenance())
    for line in draft.report.problems():
        say(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
