"""What each Ray actor runs: a worker loads the model once and processes batches of records.

Workers are plain classes (no Ray import), so they run the same inside a Ray actor (map_batches
builds one per actor) and in a test or a single process. A batch is a dict of columns, as Ray Data's
"numpy" batch format gives it: ``i`` (record index) and ``text``; the result has ``i``, ``result``
(the output fields as a JSON object string, "" on error), ``error`` ("" when none), ``tokens``
(tokens of the record's result), ``t0``/``t1`` (when its batch ran) and ``cpu`` (its share of the
batch's CPU seconds).

Per-record failures (a piece that cannot fit the context, a text the translator rejects) become that
record's error; the other records of the batch are still translated together: the batch is split in
halves until the failing record is alone (the translator checks every piece before generating any, so
a failing half costs no generation). Anything else (out of memory, a crash) fails the batch, and Ray
retries it on a restarted actor.
"""
from __future__ import annotations

import json
import os
import time
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..errors import ContextFullError

__all__ = ["TranslateWorker", "RelatedWorkWorker", "load_worker_model", "translate_texts", "RECORD_ERRORS"]

# what a single record can cause and the job survives: reported on that record
RECORD_ERRORS = (ContextFullError, ValueError, UnicodeError)


def load_worker_model(model: Any, n_threads: Optional[int] = None, purpose: str = "translate"):
    """The model a worker uses: a loaded model object as is, or {"spec", "path"} from the driver.
    The driver resolved the spec to a local path once (liquidlfm.hub); on the driver's machine every
    actor loads that file (memory-mapped, so the actors of one machine share its pages). On another
    node the path may not exist: the spec is resolved there, downloading into that node's cache once."""
    if not isinstance(model, dict):
        return model
    from ..model import load

    path = model.get("path")
    if not path or not os.path.exists(path):
        from ..hub import resolve_model

        path = resolve_model(model.get("spec"), purpose=purpose)
    return load(path, n_threads=n_threads)


def _batch_column(batch: Dict[str, Any], name: str) -> list:
    col = batch[name]
    return col.tolist() if hasattr(col, "tolist") else list(col)


class _Worker:
    """Shared batch plumbing: __call__(batch) -> result columns, via process(texts)."""

    def __call__(self, batch: Dict[str, Any]) -> Dict[str, list]:
        idx = [int(i) for i in _batch_column(batch, "i")]
        texts = [str(t) for t in _batch_column(batch, "text")]
        t0, c0 = time.time(), time.process_time()
        results = self.process(texts)
        t1, cpu = time.time(), time.process_time() - c0
        return {
            "i": idx,
            "result": [json.dumps(r[0], ensure_ascii=False) if r[1] is None else "" for r in results],
            "error": [r[1] or "" for r in results],
            "tokens": [int(r[2]) for r in results],
            # when this batch ran (wall clock): the driver's work window, actor start-up excluded
            "t0": [t0] * len(idx),
            "t1": [t1] * len(idx),
            # CPU seconds of this actor's process (all its threads) for the batch, shared out per record:
            # what the batch cost in core-seconds, whatever else ran on the machine
            "cpu": [cpu / max(1, len(idx))] * len(idx),
        }

    def process(self, texts: List[str]) -> List[Tuple[Optional[dict], Optional[str], int]]:
        """(output fields, None, tokens) or (None, error, tokens) per text."""
        raise NotImplementedError


def _isolate(texts: Sequence[str], run_together: Callable[[List[str]], list],
             errors=RECORD_ERRORS) -> list:
    """run_together(texts) -> one result per text; where it raises one of `errors`, split the texts
    in halves until the failing text is alone and gets (None, message, 0)."""
    results: List[Any] = [None] * len(texts)

    def run(idx: List[int]) -> None:
        try:
            outs = run_together([texts[i] for i in idx])
        except errors as e:
            if len(idx) == 1:
                results[idx[0]] = (None, _message(e), 0)
                return
            mid = len(idx) // 2
            run(idx[:mid])
            run(idx[mid:])
            return
        for i, o in zip(idx, outs):
            results[i] = o

    if texts:
        run(list(range(len(texts))))
    return results


def _message(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


def translate_texts(translator, texts: Sequence[str], target: str, *, n_seq: Optional[int] = None,
                    **options) -> List[Tuple[Optional[dict], Optional[str], int]]:
    """Translate texts together through the translator's batch engine (Translator.iter_documents);
    per text: ({"translation": str[, "truncated": True]}, None, generated tokens) or (None, error, 0)."""
    from ..translate import TranslationTruncatedWarning

    def together(batch: List[str]):
        pieces: List[List[str]] = [[] for _ in batch]
        tokens = [0] * len(batch)
        truncated = [False] * len(batch)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", TranslationTruncatedWarning)
            seen = 0
            before = translator.stats["generated_tokens"]
            # memo: a piece repeated within the batch is translated once (greedy only; the translator decides)
            for d, piece in translator.iter_documents(batch, target, memo={}, n_seq=n_seq, **options):
                pieces[d].append(piece)
                now = translator.stats["generated_tokens"]
                tokens[d] += now - before  # a document's pieces are finished while it is being yielded
                before = now
                new = [w for w in caught[seen:] if issubclass(w.category, TranslationTruncatedWarning)]
                seen = len(caught)
                truncated[d] = truncated[d] or bool(new)
        out = []
        for d in range(len(batch)):
            fields: Dict[str, Any] = {"translation": "".join(pieces[d])}
            if truncated[d]:
                fields["truncated"] = True
            out.append((fields, None, tokens[d]))
        return out

    return _isolate(list(texts), together)


class TranslateWorker(_Worker):
    """Loads the model once; translates each batch of records together (see translate_texts).

    model: {"spec", "path"} from the driver, or a loaded model (tests, single process). options: the
    translation options as liquidlfm.translate takes them (source, formality, glossary, max_tokens,
    markdown, temperature, top_k, min_p, seed). n_seq: sequences decoded together."""

    def __init__(self, model, target: str, options: Dict[str, Any], *, n_seq: Optional[int] = None,
                 n_ctx: Optional[int] = None, n_threads: Optional[int] = None):
        from ..translate import Translator

        self.model = load_worker_model(model, n_threads, purpose="translate")
        self.translator = Translator(self.model, n_ctx=n_ctx)
        self.target = target
        self.options = dict(options)
        self.n_seq = n_seq

    def process(self, texts):
        return translate_texts(self.translator, texts, self.target, n_seq=self.n_seq, **self.options)


class RelatedWorkWorker(_Worker):
    """Loads the model once and indexes the corpus once; drafts a Related Work section per idea
    (liquidlfm.scholar.draft_related_work). papers: the corpus, loaded on the driver; model: as
    TranslateWorker's, or None to draft from the papers' metadata without a model."""

    def __init__(self, model, papers: list, options: Dict[str, Any], *, n_threads: Optional[int] = None):
        from ..scholar.retrieve import Index

        self.model = None if model is None else load_worker_model(model, n_threads, purpose="chat")
        if self.model is not None and isinstance(model, dict):
            try:
                self.model.name = model.get("spec") or model.get("path")
            except AttributeError:
                pass
        self.index = Index(papers)
        self.options = dict(options)

    def process(self, texts):
        from ..scholar import draft_related_work
        from ..scholar.corpus import CorpusError

        out = []
        for idea in texts:
            try:
                d = draft_related_work(idea, index=self.index, model=self.model, **self.options)
            except RECORD_ERRORS + (CorpusError,) as e:
                out.append((None, _message(e), 0))
                continue
            fields = {"related_work": d.text, "cited": d.cited, "bibtex": d.bibtex(),
                      "report": d.report.summary() if self.model is not None else d.provenance()}
            out.append((fields, None, 0))  # the scholar pipeline does not count its tokens
        return out
