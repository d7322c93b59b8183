"""English <-> Korean translation quality and speed: liquidlfm's translator vs llama.cpp with a plain prompt.

    python benchmarks/translate_eval.py MODEL [--limit 50] [--directions en-ko,ko-en] [--no-baseline]

MODEL: a .gguf file (both engines run it), an HF folder (liquidlfm only), or a Hub repo id.
Data: FLORES-200 dev (../shared/data/en-ko/dev.tsv, 997 pairs; read in place; --data to override).

Per direction it prints a markdown table, one row per engine:
    engine | prompt | sentences | chrF | BLEU | sentences/s | prompt tok/s | gen tok/s
- liquidlfm: lfm.translate(...) — chat template + "Translate to Korean." system prompt, greedy,
  one sentence per request (what the library does).
- llama.cpp (llama-cpp-python): the same GGUF with a plain one-line completion prompt
  ("Translate from English to Korean: <src>\\nKorean:"), greedy, stop at a newline, the same max_tokens.
BLEU uses sacrebleu's "13a" tokenizer for English targets and "char" for Korean (no Korean word
tokenizer is installed; character BLEU is not comparable to published ko BLEU). chrF is chrF2 (default).

Random weights (a model whose GGUF general.name / folder name contains "random", or --random-weights):
scores are meaningless, so only the speed columns are printed, with a banner saying so.
Speed: same process, same threads; the machine is shared, so compare ratios within one run.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

NAMES = {"en": "English", "ko": "Korean"}


def find_data(explicit=None) -> Path:
    if explicit:
        return Path(explicit)
    cands = []
    if os.environ.get("LIQUIDLFM_SHARED"):
        cands.append(Path(os.environ["LIQUIDLFM_SHARED"]))
    cands += [p / "shared" for p in REPO.parents]
    for c in cands:
        f = c / "data" / "en-ko" / "dev.tsv"
        if f.is_file():
            return f
    raise SystemExit("dev.tsv not found: pass --data or set LIQUIDLFM_SHARED")


def read_pairs(path: Path, limit=None):
    pairs = []
    with open(path, encoding="utf-8") as f:
        header = next(f).rstrip("\n").split("\t")
        ie, ik = header.index("en"), header.index("ko")
        for line in f:
            cols = line.rstrip("\n").split("\t")
            pairs.append({"en": cols[ie], "ko": cols[ik]})
            if limit and len(pairs) >= limit:
                break
    return pairs


def is_random(path: str, flag: bool) -> bool:
    if flag:
        return True
    p = Path(path)
    if "random" in str(p).lower():
        return True
    if p.is_file() and p.suffix == ".gguf":
        try:
            import gguf

            r = gguf.GGUFReader(str(p))
            f = r.fields.get("general.name")
            if f is not None and "random" in f.contents().lower():
                return True
        except Exception:
            pass
    if p.is_dir() and (p / "RANDOM_WEIGHTS").exists():
        return True
    return False


def scores(hyps, refs, target):
    import sacrebleu

    chrf = sacrebleu.corpus_chrf(hyps, [refs]).score
    bleu = sacrebleu.corpus_bleu(hyps, [refs], tokenize="char" if target == "ko" else "13a").score
    return chrf, bleu


def run_liquidlfm(model_path, pairs, src, tgt, max_tokens, n_threads):
    import liquidlfm as lfm
    from liquidlfm.translate import Translator, TranslationTruncatedWarning

    model = lfm.load(model_path, n_threads=n_threads) if n_threads else lfm.load(model_path)
    tr = Translator(model)
    hyps = []
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TranslationTruncatedWarning)
        for p in pairs:
            hyps.append("".join(tr.iter_translate(p[src], tgt, source=src, markdown=False, max_tokens=max_tokens)))
    dt = time.perf_counter() - t0
    st = dict(tr.stats)
    tr.close()
    model.close()
    return hyps, dt, st


def run_llama(model_path, pairs, src, tgt, max_tokens, n_threads):
    import llama_cpp

    llm = llama_cpp.Llama(model_path=model_path, n_ctx=4096, n_threads=n_threads or os.cpu_count(),
                          n_batch=512, verbose=False, seed=0)
    hyps = []
    n_prompt = n_gen = 0
    t0 = time.perf_counter()
    for p in pairs:
        prompt = f"Translate from {NAMES[src]} to {NAMES[tgt]}: {p[src]}\n{NAMES[tgt]}:"
        budget = max_tokens or 3 * len(llm.tokenize(p[src].encode(), add_bos=False)) + 20
        r = llm.create_completion(prompt, max_tokens=budget, temperature=0.0, top_k=1, stop=["\n"])
        hyps.append(r["choices"][0]["text"].strip())
        n_prompt += r["usage"]["prompt_tokens"]
        n_gen += r["usage"]["completion_tokens"]
    dt = time.perf_counter() - t0
    llm.close() if hasattr(llm, "close") else None
    return hyps, dt, {"segments": len(pairs), "prompt_tokens": n_prompt, "generated_tokens": n_gen}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--limit", type=int, default=50, help="sentences per direction (default 50; 0 = all 997)")
    ap.add_argument("--directions", default="en-ko,ko-en")
    ap.add_argument("--data", help="path to dev.tsv")
    ap.add_argument("--max-tokens", type=int, help="per sentence (default: 3 x source tokens + 20)")
    ap.add_argument("--threads", type=int, help="threads for both engines (default: all cores)")
    ap.add_argument("--no-baseline", action="store_true", help="skip llama-cpp-python")
    ap.add_argument("--random-weights", action="store_true", help="the model is untrained: report speed only")
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args(argv)

    from liquidlfm.hub import resolve_model

    path = resolve_model(a.model)
    random_w = is_random(path, a.random_weights)
    pairs = read_pairs(find_data(a.data), a.limit or None)
    gguf_file = path.endswith(".gguf")
    baseline = not a.no_baseline and gguf_file
    print(f"model: {path}\nsentences per direction: {len(pairs)} (FLORES-200 dev)\nthreads: {a.threads or os.cpu_count()}")
    if random_w:
        print("\n**RANDOM WEIGHTS: translation scores are meaningless; only speed columns are reported.**")
    if not gguf_file and not a.no_baseline:
        print("(baseline skipped: llama.cpp needs a .gguf file)")
    results = []
    for d in a.directions.split(","):
        src, tgt = d.strip().split("-")
        refs = [p[tgt] for p in pairs]
        rows = []
        engines = [("liquidlfm", "chat template + 'Translate to %s.'" % NAMES[tgt], run_liquidlfm)]
        if baseline:
            engines.append(("llama.cpp", "plain one-line", run_llama))
        for name, prompt, fn in engines:
            hyps, dt, st = fn(path, pairs, src, tgt, a.max_tokens, a.threads)
            row = {"direction": d, "engine": name, "prompt": prompt, "sentences": len(hyps),
                   "sent_per_s": len(hyps) / dt, "prompt_tok": st["prompt_tokens"],
                   "gen_tok": st["generated_tokens"], "seconds": dt,
                   "tok_per_s": (st["prompt_tokens"] + st["generated_tokens"]) / dt,
                   "gen_tok_per_s": st["generated_tokens"] / dt}
            if not random_w:
                row["chrF"], row["BLEU"] = scores(hyps, refs, tgt)
            row["sample"] = hyps[0][:80] if not random_w else None
            rows.append(row)
        print(f"\n### {src} → {tgt}\n")
        if random_w:
            print("| engine | prompt | sentences | sentences/s | tokens/s (prompt+gen) | gen tokens | gen tok/s |")
            print("|---|---|---|---|---|---|---|")
            for r in rows:
                print(f"| {r['engine']} | {r['prompt']} | {r['sentences']} | {r['sent_per_s']:.2f} | "
                      f"{r['tok_per_s']:.1f} | {r['gen_tok']} | {r['gen_tok_per_s']:.1f} |")
        else:
            print("| engine | prompt | sentences | chrF | BLEU | sentences/s | tokens/s (prompt+gen) | gen tok/s |")
            print("|---|---|---|---|---|---|---|---|")
            for r in rows:
                print(f"| {r['engine']} | {r['prompt']} | {r['sentences']} | {r['chrF']:.1f} | {r['BLEU']:.1f} | "
                      f"{r['sent_per_s']:.2f} | {r['tok_per_s']:.1f} | {r['gen_tok_per_s']:.1f} |")
        results += rows
    if a.json:
        Path(a.json).write_text(json.dumps({"model": path, "random_weights": random_w, "rows": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
