"""python -m liquidlfm.translate --to ko "text" (also: liquidlfm translate ...)."""
from __future__ import annotations

import argparse
import sys
import warnings
from typing import List, Optional

from ..errors import ContextFullError, ModelNotFoundError
from . import LANGUAGES, TranslationTruncatedWarning, count_pieces, language, load_glossary, translate


def main(argv: Optional[List[str]] = None, prog: str = "python -m liquidlfm.translate") -> int:
    ap = argparse.ArgumentParser(
        prog=prog,
        description="Translate text or a markdown file with an LFM2 model (markdown structure is kept).",
        epilog=f"Examples:\n  {prog} --to ko \"The weather is nice today.\"\n"
               f"  {prog} --to ko < README.md > README.ko.md",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("text", nargs="*", help="text to translate (default: read stdin)")
    ap.add_argument("--to", "-t", dest="target", help="target language (ko, kor_Hang, Korean, ...)")
    ap.add_argument("--from", "-f", dest="source", help="source language (default: detected)")
    ap.add_argument("--model", "-m", help="model path or Hugging Face repo id (default: LIQUIDLFM_MODEL / cache / "
                                          "LiquidAI/LFM2-350M-GGUF)")
    ap.add_argument("--formality", choices=["polite", "casual"])
    ap.add_argument("--glossary", help="glossary file: JSON object or 'term<TAB>translation' lines")
    ap.add_argument("--input", "-i", help="read this file instead of stdin")
    ap.add_argument("--output", "-o", help="write here instead of stdout")
    ap.add_argument("--plain", action="store_true", help="plain text: no markdown handling")
    ap.add_argument("--max-tokens", type=int, help="limit per piece (default: from the piece's length)")
    ap.add_argument("--n-ctx", type=int, help="context size (default: min(model's, 4096))")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    ap.add_argument("--list-languages", action="store_true", help="print the supported languages and exit")
    a = ap.parse_args(argv)
    if a.list_languages:
        for l in LANGUAGES.values():
            print(f"{l.code}\t{l.flores}\t{l.name}\t{l.native}" + ("" if l.official else "\t(not in LFM2's card)"))
        return 0
    if not a.target:
        ap.error("the following arguments are required: --to")
    try:
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
                                       markdown=not a.plain, n_ctx=a.n_ctx, progress=bar):
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


if __name__ == "__main__":
    sys.exit(main())
