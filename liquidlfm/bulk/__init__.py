"""Bulk jobs on Ray: translate a corpus, or draft related work for many ideas, on one machine or a cluster.

    from liquidlfm import bulk
    r = bulk.translate("corpus.jsonl", "ko", "out/", model="LiquidAI/LFM2-350M-GGUF")
    print(r)                          # done: 40 records in out (40 ok, 0 errors); ... records/s, tokens/s
    for row in bulk.read_output("out/"): print(row["id"], row.get("translation") or row["error"])

    python -m liquidlfm.translate --to ko --input corpus.jsonl --output out/ [--ray ADDRESS] [--actors N]

Input (``source``): JSONL (one object per line, id and text fields named by id_field/text_field),
Parquet (same columns; needs pyarrow), a plain text file (one record per line, id = line number), a
folder of .md/.markdown/.txt documents (one record per file, id = relative path, markdown kept as the
translator keeps it), a list of such paths, or a list of {"id", "text"} dicts.

Output (``out``, a folder): ``part-00000.jsonl``... with one line per record in input order,
``{"id": ..., "translation": ...}`` (``"truncated": true`` when a piece stopped at max_tokens) or
``{"id": ..., "error": "..."}`` for a record that could not be translated (invalid UTF-8, empty, a
piece too long for the context), and ``manifest.json`` (inputs, options, model, each shard's
records, ids digest and counts, status, runs). Shards and manifest are written atomically; rerunning
the same job resumes after a crash or Ctrl-C, redoing only unfinished shards. A different input,
options or model in the same folder is an error (ResumeMismatchError) unless overwrite=True.

Ray: ``ray_address=None`` starts a local Ray on this machine (all cores) and stops it at the end; an
address ("auto", "host:6379", "ray://host:10001") joins a running cluster, where liquidlfm must be
installed on every node; an already initialized Ray is used as it is. Ray Data streams the records
through ``actors`` actors (default 1), each with ``cpus_per_actor`` CPUs (default: the cluster's
CPUs / actors) used as its model's threads. Each actor loads the model once: the driver resolves it to
a local file once (liquidlfm.hub) and every actor on that machine maps the same file; a node without
it resolves the same model into its own cache. A batch of ``batch_size`` records (default 4 x n_seq)
is translated together through the batched generation path, ``n_seq`` sequences decoded in one
forward pass per step (liquidlfm.BatchEngine). An actor that dies is restarted and its batch retried
(``max_restarts``, ``max_task_retries``); every id is written exactly once.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Dict, Optional

from .records import BulkInputError, read_records
from .runner import DEFAULT_MAX_RESTARTS, DEFAULT_MAX_TASK_RETRIES, BulkResult, init_ray
from .store import MANIFEST, BulkError, ResumeMismatchError, read_output
from .workers import RelatedWorkWorker, TranslateWorker

__all__ = ["translate", "related_work", "read_output", "init_ray", "BulkResult", "BulkError", "BulkInputError",
           "ResumeMismatchError", "TranslateWorker", "RelatedWorkWorker", "DEFAULT_N_SEQ", "MANIFEST"]

DEFAULT_N_SEQ = 8

# the options of liquidlfm.translate that change the output (checked when a job resumes)
TRANSLATE_OPTIONS = ("source", "formality", "glossary", "max_tokens", "markdown", "temperature", "top_k", "min_p",
                     "seed")
RELATED_WORK_OPTIONS = ("top_k", "format", "expand", "rerank", "n_candidates", "max_themes", "max_tokens")


def _model_info(model, purpose: str) -> Dict[str, Any]:
    """{"spec", "path", "bytes"}: the model resolved once here, on the driver."""
    from ..hub import resolve_model

    if model is not None and not isinstance(model, (str, os.PathLike)):
        path = getattr(model, "path", None)
        if path is None:
            raise TypeError("model must be a path, a Hub repo id, or a model loaded by liquidlfm.load "
                            f"(each Ray actor loads its own copy), got {type(model).__name__}")
        model = os.fspath(path)
    spec = None if model is None else os.fspath(model)
    path = os.path.abspath(resolve_model(spec, purpose=purpose))
    p = Path(path)
    size = (sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size)
    return {"spec": spec, "path": path, "bytes": size}


def _translation_model(model, source: Optional[str], target: str):
    """The model a bulk translation uses: the one given, else the one liquidlfm.translate would take for
    the pair ($LIQUIDLFM_MODEL, else the registry's: the KoEn fine-tune for Korean<->English, a general
    model for other pairs), resolved to a local path by the translator's own resolver."""
    if model is not None:
        return model
    from ..translate import resolve_translation_model

    return resolve_translation_model(None, source=source, target=target)


def _pick_options(options: Dict[str, Any], allowed, what: str) -> Dict[str, Any]:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(f"{what}() got unexpected options: {', '.join(unknown)} (allowed: {', '.join(allowed)})")
    return dict(options)


def _check_translate_options(target: str, o: Dict[str, Any]) -> None:
    """The checks lfm.translate makes, here on the driver, so a bad option fails before Ray starts."""
    from ..translate import language

    language(target)
    if o.get("source") is not None:
        language(o["source"])
    if o.get("formality") not in (None, "polite", "casual"):
        raise ValueError(f"formality must be 'polite', 'casual' or None, got {o['formality']!r}")
    g = o.get("glossary")
    if g is not None and not (isinstance(g, dict) and all(isinstance(k, str) and isinstance(v, str)
                                                          for k, v in g.items())):
        raise TypeError("glossary must be a dict of str -> str")
    mt = o.get("max_tokens")
    if mt is not None and (isinstance(mt, bool) or not isinstance(mt, int) or mt < 1):
        raise ValueError(f"max_tokens must be a positive int, got {mt!r}")


def _source_records(source, id_field, text_field, format):
    from .records import describe_inputs

    if isinstance(source, (list, tuple)) and source and all(isinstance(s, str) for s in source) \
            and not all(os.path.exists(s) for s in source):
        raise TypeError("source is a list of strings that are not all existing paths; pass a list of "
                        "{'id': ..., 'text': ...} dicts to translate texts, or paths to files")
    records, digest = read_records(source, id_field=id_field, text_field=text_field, format=format)
    return records, digest, describe_inputs(source)


def translate(source, target_lang: str, out, /, *, model=None, ray_address: Optional[str] = None,
              actors: Optional[int] = None, cpus_per_actor: Optional[float] = None, batch_size: Optional[int] = None,
              n_seq: Optional[int] = None, n_ctx: Optional[int] = None, shard_size: Optional[int] = None,
              id_field: str = "id", text_field: str = "text", format: Optional[str] = None, overwrite: bool = False,
              progress: bool = True, max_restarts: int = DEFAULT_MAX_RESTARTS,
              max_task_retries: int = DEFAULT_MAX_TASK_RETRIES, ray_init_args: Optional[Dict[str, Any]] = None,
              _worker_class=None, **options) -> BulkResult:
    """Translate every record of ``source`` into ``target_lang``, writing shards to the folder ``out``
    (see the module docstring for input, output, resuming and Ray). source, target_lang and out are
    positional: the keyword ``source=`` is the source language, as in lfm.translate.

    model: None (LIQUIDLFM_MODEL / cache / default download, as lfm.translate), a path or a Hub repo id
    (or a loaded Model: its file is used). options: as lfm.translate takes them — source, formality,
    glossary, max_tokens, markdown, temperature, top_k, min_p, seed. n_ctx: the translator's context
    per sequence. n_seq (default 8): sequences decoded together per actor; batch_size: records per
    batch handed to an actor (default 4 x n_seq); neither changes the output, so a job may resume
    with other values. shard_size: records per output file (default: the folder's job's when
    resuming, else 1000). progress: a tqdm bar
    (records/s, ETA) on stderr and Ray Data's progress bars. Returns a BulkResult; raises
    BulkInputError (unreadable input, duplicate ids) or ValueError/TypeError (bad options) before
    starting, ResumeMismatchError, or BulkError when the job fails (finished shards are kept)."""
    opts = _pick_options(options, TRANSLATE_OPTIONS, "translate")
    opts.setdefault("markdown", True)
    opts.setdefault("temperature", 0.0)
    _check_translate_options(target_lang, opts)
    from ..translate import language

    target = language(target_lang).code
    n_seq = n_seq or DEFAULT_N_SEQ
    from .runner import _positive, run_job

    _positive("n_seq", n_seq)
    _positive("n_ctx", n_ctx)
    batch_size = batch_size or max(32, 4 * n_seq)
    records, digest, inputs = _source_records(source, id_field, text_field, format)
    minfo = _model_info(_translation_model(model, opts.get("source"), target), "translate")
    worker_model = {"spec": minfo["spec"], "path": minfo["path"]}
    identity = dict(opts, target=target, n_ctx=n_ctx)

    def worker_kwargs(n_threads: int) -> Dict[str, Any]:
        return {"model": worker_model, "target": target, "options": opts, "n_seq": n_seq, "n_ctx": n_ctx,
                "n_threads": n_threads}

    return run_job(task="translate", records=records, records_sha256=digest, inputs=inputs, out=out,
                   model_info={"path": minfo["path"], "bytes": minfo["bytes"]}, options=identity,
                   worker_class=_worker_class or TranslateWorker, worker_kwargs=worker_kwargs,
                   ray_address=ray_address, actors=actors, cpus_per_actor=cpus_per_actor, batch_size=batch_size,
                   shard_size=shard_size, overwrite=overwrite, progress=progress,
                   run_info={"model_spec": minfo["spec"], "n_seq": n_seq, "batch_size": batch_size,
                             "ray_address": ray_address},
                   max_restarts=max_restarts, max_task_retries=max_task_retries, ray_init_args=ray_init_args,
                   input_info={"id_field": id_field, "text_field": text_field, "format": format})


def related_work(ideas, out, *, model=None, corpus, ray_address: Optional[str] = None, actors: Optional[int] = None,
                 cpus_per_actor: Optional[float] = None, batch_size: int = 4, shard_size: Optional[int] = None,
                 id_field: str = "id", text_field: str = "text", format_input: Optional[str] = None,
                 overwrite: bool = False, progress: bool = True, max_restarts: int = DEFAULT_MAX_RESTARTS,
                 max_task_retries: int = DEFAULT_MAX_TASK_RETRIES, ray_init_args: Optional[Dict[str, Any]] = None,
                 _worker_class=None, **options) -> BulkResult:
    """Draft a Related Work section (liquidlfm.scholar.draft_related_work) for every idea, citing only
    papers of ``corpus``, writing shards to the folder ``out`` like translate() does.

    ideas: a list of idea strings (ids 0, 1, ...), or records as translate's source takes them (a
    JSONL/Parquet/text file, a folder, a list of paths as pathlib.Path, or a list of {"id", "text"}
    dicts). corpus: .bib/.jsonl/.json/.csv files or folders, loaded and checked once here; each actor
    indexes it once. model: None drafts from the papers' metadata without a model (as
    draft_related_work), else a path or Hub repo id loaded once per actor. options: as
    draft_related_work takes them — top_k, format ("markdown"/"latex"), expand, rerank, n_candidates,
    max_themes, max_tokens. Each output line: {"id", "related_work" (the draft), "cited" (BibTeX keys),
    "bibtex" (the cited entries), "report"} or {"id", "error"}. Online search is not available in
    bulk (one shared corpus)."""
    opts = _pick_options(options, RELATED_WORK_OPTIONS, "related_work")
    if opts.get("format", "markdown") not in ("markdown", "latex"):
        raise ValueError(f"format must be 'markdown' or 'latex', got {opts['format']!r}")
    from ..scholar.corpus import load_corpus
    from .records import describe_inputs, records_from_texts
    from .runner import run_job

    if corpus is None:
        raise BulkInputError("related_work needs a corpus (.bib/.jsonl/.json/.csv files or folders)")
    if isinstance(ideas, (list, tuple)) and ideas and all(isinstance(s, str) for s in ideas):
        ideas = records_from_texts(ideas)
    records, digest = read_records(ideas, id_field=id_field, text_field=text_field, format=format_input)
    inputs = describe_inputs(ideas)
    papers = load_corpus(corpus)
    corpus_digest = hashlib.sha256(json.dumps([p.to_dict() for p in papers], sort_keys=True,
                                              ensure_ascii=False).encode("utf-8")).hexdigest()
    if model is None:
        minfo, worker_model = None, None
    else:
        minfo = _model_info(model, "chat")
        worker_model = {"spec": minfo["spec"], "path": minfo["path"]}
    identity = dict(opts, corpus_sha256=corpus_digest, corpus_papers=len(papers))

    def worker_kwargs(n_threads: int) -> Dict[str, Any]:
        return {"model": worker_model, "papers": papers, "options": opts, "n_threads": n_threads}

    return run_job(task="related_work", records=records, records_sha256=digest, inputs=inputs, out=out,
                   model_info=None if minfo is None else {"path": minfo["path"], "bytes": minfo["bytes"]},
                   options=identity, worker_class=_worker_class or RelatedWorkWorker, worker_kwargs=worker_kwargs,
                   ray_address=ray_address, actors=actors, cpus_per_actor=cpus_per_actor, batch_size=batch_size,
                   shard_size=shard_size, overwrite=overwrite, progress=progress,
                   run_info={"model_spec": None if minfo is None else minfo["spec"], "batch_size": batch_size,
                             "ray_address": ray_address},
                   max_restarts=max_restarts, max_task_retries=max_task_retries, ray_init_args=ray_init_args,
                   default_shard_size=100,
                   input_info={"id_field": id_field, "text_field": text_field, "format": format_input,
                               "corpus": [str(Path(c).resolve()) for c in
                                          ([corpus] if isinstance(corpus, (str, os.PathLike)) else corpus)]})
