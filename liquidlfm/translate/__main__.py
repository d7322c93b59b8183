"""python -m liquidlfm.translate --to ko "text" (also: liquidlfm translate ...).

Bulk mode (liquidlfm.bulk, on Ray): --input a JSONL / Parquet file or a folder of documents (or any
file with --bulk, or --output a folder), --output a folder of shards + manifest.json:

    python -m liquidlfm.translate --to ko --input corpus.jsonl --output out/ [--ray ADDRESS] [--actors N]
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import List, Optional

from ..errors import ContextFullError, ModelNotFoundError
from . import LANGUAGES, TranslationTruncatedWarning, count_pieces, language, load_glossary, translate


def main(argv: Optional[List[str]] = None, prog: str = "python -m liquidlfm.translate") -> int:
    ap = argparse.ArgumentParser(
        prog=prog,
        description="Translate text or a markdown file with an LFM2 model (markdown structure is kept).",
        epilog=f"Examples:\n  {prog} \"The weather is nice today.\"      (Hangul -> English, else -> Korean)\n"
               f"  {prog} --to ko \"The weather is nice today.\"\n"
               f"  {prog} --quant Q4_K_M --quality mbr --seed 0 \"The weather is nice today.\"\n"
               f"  {prog} --to ko < README.md > README.ko.md\n"
               f"  {prog} --to ko --input corpus.jsonl --output out/ --actors 2   (bulk, on Ray)\n\n"
               "Bulk mode: --input a .jsonl/.parquet file or a folder of .md/.txt documents (or any file with\n"
               "--bulk: one record per line), or --output a folder (ending in /). The output folder gets\n"
               "part-NNNNN.jsonl shards ({\"id\", \"translation\"} or {\"id\", \"error\"} per record, in input\n"
               "order) and manifest.json; rerunning the same command resumes an interrupted job.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("text", nargs="*", help="text to translate (default: read stdin)")
    ap.add_argument("--to", "-t", dest="target", help="target language (ko, kor_Hang, Korean, ...; default: English "
                                                      "if the text has Hangul, else Korean)")
    ap.add_argument("--from", "-f", dest="source", help="source language (default: detected)")
    ap.add_argument("--model", "-m", help="model path or Hugging Face repo id (default: LIQUIDLFM_MODEL, else for "
                                          "Korean<->English gyung/lfm2-1.2b-koen-mt-v8-rl-10k-merged-GGUF (Q8_0), "
                                          "for other pairs LiquidAI/LFM2-350M-GGUF (Q4_0))")
    ap.add_argument("--quant", help="file of the default (or --model repo) model: Q8_0 (default), Q5_K_M, Q4_K_M")
    ap.add_argument("--fast", action="store_true", help="the small general model (LFM2-350M) for every pair")
    ap.add_argument("--prompt-format", choices=["koen", "liquid"],
                    help="system prompt style (default: the model's, from the registry; 'liquid' for others)")
    ap.add_argument("--quality", choices=["plain", "mbr"], default="plain",
                    help="mbr: --samples samples per piece, the minimum-Bayes-risk (expected chrF) one kept")
    ap.add_argument("--samples", type=int, default=8, help="samples per piece with --quality mbr (default 8)")
    ap.add_argument("--seed", type=int, help="sampling seed (--quality mbr): the same seed, the same translation")
    ap.add_argument("--formality", choices=["polite", "casual"])
    ap.add_argument("--glossary", help="glossary file: JSON object or 'term<TAB>translation' lines")
    ap.add_argument("--input", "-i", help="read this file instead of stdin (bulk: a .jsonl/.parquet/text file or "
                                          "a folder of documents)")
    ap.add_argument("--output", "-o", help="write here instead of stdout (bulk: a folder)")
    ap.add_argument("--plain", action="store_true", help="plain text: no markdown handling")
    ap.add_argument("--max-tokens", type=int, help="limit per piece (default: from the piece's length)")
    ap.add_argument("--n-ctx", type=int, help="context size (default: min(model's, 4096))")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    ap.add_argument("--list-languages", action="store_true", help="print the supported languages and exit")
    b = ap.add_argument_group("bulk mode (liquidlfm.bulk on Ray)")
    b.add_argument("--bulk", action="store_true", help="bulk mode for any --input (a text file: one record per line)")
    b.add_argument("--ray", metavar="ADDRESS", help="join this Ray cluster (\"auto\", host:6379, ray://host:10001); "
                                                     "default: start a local Ray on this machine")
    b.add_argument("--actors", type=int, help="model copies (Ray actors) translating in parallel (default 1)")
    b.add_argument("--cpus-per-actor", type=float, help="CPUs (model threads) per actor (default: all / actors)")
    b.add_argument("--batch-size", type=int, help="records per batch given to an actor (default 4 x n-seq)")
    b.add_argument("--n-seq", type=int, help="sequences an actor decodes together (default 8)")
    b.add_argument("--shard-size", type=int, help="records per output shard (default 1000)")
    b.add_argument("--id-field", default="id", help="JSONL/Parquet id field (default id)")
    b.add_argument("--text-field", default="text", help="JSONL/Parquet text field (default text)")
    b.add_argument("--format", choices=["jsonl", "parquet", "text", "folder"],
                   help="input format (default: from the suffix; a folder is read as documents)")
    b.add_argument("--overwrite", action="store_true",
                   help="start over in an output folder that holds another job (default: resume the same job)")
    a = ap.parse_args(argv)
    if a.list_languages:
        for l in LANGUAGES.values():
            print(f"{l.code}\t{l.flores}\t{l.name}\t{l.native}" + ("" if l.official else "\t(not in LFM2's card)"))
        return 0
    bulk_only = [f"--{n.replace('_', '-')}" for n in ("ray", "actors", "cpus_per_actor", "batch_size", "n_seq",
                                                      "shard_size")
                 if getattr(a, n) is not None] + (["--overwrite"] if a.overwrite else [])
    if _bulk_mode(a):
        if a.text:
            ap.error("bulk mode reads --input; do not also give text")
        if not a.output:
            ap.error("bulk mode needs --output FOLDER")
        if not a.target:
            ap.error("bulk mode needs --to (the automatic direction is decided per text, not per job)")
        single = [f for f, v in (("--quant", a.quant), ("--fast", a.fast), ("--prompt-format", a.prompt_format),
                                 ("--quality mbr", a.quality == "mbr"), ("--seed", a.seed is not None)) if v]
        if single:
            ap.error(f"{', '.join(single)}: not available in bulk mode; pass --model (a path or repo:file)")
        return _run_bulk(a)
    if bulk_only:
        ap.error(f"{', '.join(bulk_only)}: bulk options; give --input a .jsonl/.parquet file or a folder, an --output "
                 "folder ending in /, or --bulk")
    try:
        if a.target:
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
                                       markdown=not a.plain, n_ctx=a.n_ctx, progress=bar, quant=a.quant,
                                       fast=a.fast, prompt_format=a.prompt_format, quality=a.quality,
                                       n_samples=a.samples, seed=a.seed):
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


def _bulk_mode(a) -> bool:
    if a.bulk or a.format:
        return True
    if not a.input:
        return False
    from ..bulk.records import input_format

    if input_format(a.input) in ("jsonl", "parquet", "folder"):
        return True
    return bool(a.output) and (a.output.endswith(("/", "\\")) or Path(a.output).is_dir())


def _run_bulk(a) -> int:
    """liquidlfm.bulk.translate with the command line's options; the summary on stderr."""
    try:
        from .. import bulk
    except ImportError as e:
        print(f"error: bulk mode needs Ray: pip install 'liquidlfm[bulk]' ({e})", file=sys.stderr)
        return 2
    if not a.input:
        print("error: bulk mode needs --input (a .jsonl/.parquet/text file or a folder)", file=sys.stderr)
        return 2
    try:
        glossary = load_glossary(a.glossary) if a.glossary else None
        options = dict(source=a.source, formality=a.formality, glossary=glossary, max_tokens=a.max_tokens,
                       markdown=not a.plain)
        result = bulk.translate(a.input, a.target, a.output, model=a.model, ray_address=a.ray, actors=a.actors,
                                cpus_per_actor=a.cpus_per_actor, batch_size=a.batch_size, n_seq=a.n_seq,
                                n_ctx=a.n_ctx, shard_size=a.shard_size, id_field=a.id_field,
                                text_field=a.text_field, format=a.format, overwrite=a.overwrite,
                                progress=not a.no_progress, **options)
    except KeyboardInterrupt:
        print(f"interrupted: the finished shards are kept in {a.output}; run the same command again to resume",
              file=sys.stderr)
        return 130
    except (bulk.BulkInputError, bulk.BulkError, ValueError, TypeError, OSError, ModelNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2 if isinstance(e, (bulk.BulkInputError, ValueError, TypeError)) else 1
    print(result.summary(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
