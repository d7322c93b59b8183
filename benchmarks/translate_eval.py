"""Korean<->English translation quality by the KoEn project's published protocol, per GGUF quant.

    python benchmarks/translate_eval.py                                  # the 3 KoEn quants, FLORES-200 devtest
    python benchmarks/translate_eval.py --quants Q4_K_M --limit 100      # one quant, the first 100 sentences
    python benchmarks/translate_eval.py --model path/to/file.gguf        # any local model (repeatable)
    python benchmarks/translate_eval.py --data-set dev                   # FLORES-200 dev from ../shared instead
    python benchmarks/translate_eval.py --decoding sampled,greedy,mbr    # + minimum-Bayes-risk (--mbr-samples 8)

The protocol (gyunggyung/LFM2-KoEn-Tuning's FLORES-200 evaluation, reproduced):
- data: FLORES-200 **devtest** (1,012 sentences), eng_Latn <-> kor_Hang; en->ko and ko->en;
- prompt: LFM2's chat template with the system message ``Translate the following text to Korean.`` (or
  ``... English.``) and the raw source sentence as the user message (exactly what liquidlfm.translate
  sends the KoEn model; no segmentation here: the sentence goes whole, as in the project);
- generation: stop at ``<|im_end|>``, at most 256 new tokens; "sampled" = temperature 0.3, min_p 0.15,
  repetition_penalty 1.05 (the published settings; the project did not fix a seed, here sentence i
  samples with seed + i, --seed, so a run is reproducible); "greedy" = argmax; "mbr" = N = --mbr-samples
  samples per sentence with the sampled settings (seeds seed + i*N ... seed + i*N + N-1), the
  minimum-Bayes-risk one kept (liquidlfm.translate.mbr);
- metrics: sacrebleu ``CHRF()`` with its defaults (plain chrF, not chrF++) and ``BLEU()`` (13a
  tokenizer), corpus level, one reference.

It prints, per direction, one row per model x decoding: our chrF / BLEU beside the published numbers
(en->ko: v8 merged 34.61 / 13.21, Q8_0 34.39 / 12.93, Q5_K_M 34.08 / 12.78, Q4_K_M 33.97 / 12.56;
base LFM2-1.2B 27.23 chrF; nothing was published for ko->en) and sentences/s.

Data: FLORES-200 cannot be shipped with liquidlfm (CC BY-SA 4.0, and devtest is held out here). Put the
official dataset's devtest files where --data points (default: $FLORES200_DIR, else
benchmarks/data/flores200_dataset): a folder holding ``devtest/eng_Latn.devtest`` and
``devtest/kor_Hang.devtest`` (the layout of flores200_dataset.tar.gz), or those two files directly, or a
TSV with ``en`` and ``ko`` columns. ``--data-set dev`` reads FLORES-200 dev (997 pairs) from
``<LIQUIDLFM_SHARED>/data/en-ko/dev.tsv`` and ``--data-set ntrex`` NTREX-128 (1,997 pairs) beside it:
other sentences, so not comparable with the published devtest numbers.

Random weights (a model whose file / folder name or GGUF general.name contains "random", or
--random-weights): scores are meaningless and are not printed; only speed is.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from liquidlfm.translate.models import KOEN, PUBLISHED_BASE_CHRF  # noqa: E402  (after the sys.path line)

PUBLISHED = KOEN.published  # en->ko, FLORES-200 devtest: quant -> (chrF, BLEU); PUBLISHED_BASE_CHRF: LFM2-1.2B
SAMPLED = dict(temperature=0.3, min_p=0.15, repetition_penalty=1.05, top_k=0, top_p=1.0)
GREEDY = dict(temperature=0.0, repetition_penalty=1.0, top_k=0, top_p=1.0, min_p=0.0)
MAX_NEW_TOKENS = 256
DEFAULT_FLORES = REPO / "benchmarks" / "data" / "flores200_dataset"

WHERE_TO_PUT = f"""FLORES-200 devtest not found.
Download the official FLORES-200 dataset (flores200_dataset.tar.gz, linked from
https://github.com/facebookresearch/flores/tree/main/flores200 ; licence CC BY-SA 4.0), unpack it and
either
    export FLORES200_DIR=/path/to/flores200_dataset
or place it at
    {DEFAULT_FLORES}
(the files used: devtest/eng_Latn.devtest and devtest/kor_Hang.devtest), or pass --data PATH (that folder,
or a TSV with en and ko columns). For a run without devtest: --data-set dev (FLORES-200 dev from
../shared/data/en-ko; not comparable with the published numbers)."""


# ---- data ----

def _shared() -> Path:
    if os.environ.get("LIQUIDLFM_SHARED"):
        return Path(os.environ["LIQUIDLFM_SHARED"])
    for p in REPO.parents:
        if (p / "shared" / "data").is_dir():
            return p / "shared"
    raise SystemExit("../shared not found: set LIQUIDLFM_SHARED")


def read_tsv(path: Path):
    """Pairs from a TSV whose header has en and ko columns (split on TAB, no quoting)."""
    with open(path, encoding="utf-8") as f:
        header = next(f).rstrip("\n").split("\t")
        if "en" not in header or "ko" not in header:
            raise SystemExit(f"{path}: the header needs 'en' and 'ko' columns, got {header}")
        ie, ik = header.index("en"), header.index("ko")
        return [{"en": c[ie], "ko": c[ik]} for c in (line.rstrip("\n").split("\t") for line in f) if len(c) > ik]


def read_flores(folder: Path):
    """Pairs from FLORES-200 devtest files: folder/devtest/eng_Latn.devtest or folder/eng_Latn.devtest."""
    for d in (folder / "devtest", folder):
        en, ko = d / "eng_Latn.devtest", d / "kor_Hang.devtest"
        if en.is_file() and ko.is_file():
            e = en.read_text(encoding="utf-8").splitlines()
            k = ko.read_text(encoding="utf-8").splitlines()
            if len(e) != len(k):
                raise SystemExit(f"{en} has {len(e)} lines but {ko} has {len(k)}: not aligned")
            return [{"en": a, "ko": b} for a, b in zip(e, k)]
    return None


def load_pairs(data=None, data_set="devtest"):
    """(pairs, description). data_set devtest (FLORES-200 devtest from --data / $FLORES200_DIR / the
    default folder), dev or ntrex (from ../shared)."""
    if data_set == "dev":
        p = _shared() / "data" / "en-ko" / "dev.tsv"
        return read_tsv(p), f"FLORES-200 dev ({p}; not the published devtest)"
    if data_set == "ntrex":
        p = _shared() / "data" / "en-ko" / "ntrex128.tsv"
        return read_tsv(p), f"NTREX-128 en-ko ({p}; not the published devtest)"
    path = Path(data or os.environ.get("FLORES200_DIR") or DEFAULT_FLORES).expanduser()
    if path.is_file():
        return read_tsv(path), f"{path}"
    pairs = read_flores(path) if path.is_dir() else None
    if pairs is None:
        raise SystemExit(WHERE_TO_PUT)
    return pairs, f"FLORES-200 devtest ({path})"


# ---- models ----

def is_random(path: str, flag: bool) -> bool:
    if flag or "random" in str(path).lower():
        return True
    p = Path(path)
    if p.is_file() and p.suffix == ".gguf":
        from liquidlfm.gguf import read_metadata

        try:
            return "random" in str(read_metadata(p).get("general.name", "")).lower()
        except Exception:
            return False
    return p.is_dir() and (p / "RANDOM_WEIGHTS").exists()


def resolve_models(models, quants):
    """[(label, path)]: the given model paths / repo ids, else the KoEn repo's files for quants."""
    from liquidlfm.translate import resolve_translation_model

    if models:
        return [(Path(m).name if os.path.exists(m) else m, resolve_translation_model(m)) for m in models]
    return [(q, resolve_translation_model(KOEN.repo, quant=q)) for q in quants]


def published_for(label: str, path: str):
    """The published en->ko (chrF, BLEU) for this model's quant, or None."""
    from liquidlfm.translate.models import entry_for

    if entry_for(path) is None or entry_for(path).name != "koen-v8":
        return None
    for q, v in PUBLISHED.items():
        if q.lower() in Path(path).name.lower() or q == label:
            return v
    return None


# ---- translating by the protocol ----

def protocol_prompt(model, text: str, target: str) -> str:
    """The published prompt: system 'Translate the following text to <Language>.', user the raw text."""
    from liquidlfm.translate import Translator

    return Translator(model, prompt_format="koen").render(text, target)


def translate_all(model, sources, target, decoding, *, seed=0, n_seq=8, mbr_samples=8, max_new_tokens=MAX_NEW_TOKENS):
    """(hypotheses, seconds, generated tokens): every source through the model's batch engine."""
    from liquidlfm.translate import Translator, mbr_select

    tr = Translator(model, prompt_format="koen")
    n_draw = mbr_samples if decoding == "mbr" else 1
    sampling = GREEDY if decoding == "greedy" else SAMPLED
    prompts = [tr._encode(tr.render(s, target)) for s in sources]
    tok = model.tokenizer
    hyps, n_gen = [], 0
    t0 = time.perf_counter()
    with model.batch(n_seq=max(n_seq, n_draw), n_ctx=min(tr.n_ctx, max(map(len, prompts)) + max_new_tokens)) as engine:
        pending = []
        for i, ids in enumerate(prompts):
            s = None if decoding == "greedy" else seed + i * n_draw
            pending.append(engine.submit_n(ids, n_draw, max_tokens=max_new_tokens, seed=s, **sampling))
        for reqs in pending:
            outs = [r.result() for r in reqs]
            n_gen += sum(len(o.token_ids) for o in outs)
            cands = [tok.decode(o.token_ids, skip_special_tokens=True).strip() for o in outs]
            hyps.append(cands[mbr_select(cands)])
    return hyps, time.perf_counter() - t0, n_gen


def scores(hyps, refs):
    """Corpus chrF and BLEU with sacrebleu's defaults: CHRF() (plain chrF) and BLEU() (13a)."""
    try:
        from sacrebleu.metrics import BLEU, CHRF
    except ImportError:
        raise SystemExit("scoring needs sacrebleu: pip install 'liquidlfm[eval]'") from None
    return CHRF().corpus_score(hyps, [refs]).score, BLEU().corpus_score(hyps, [refs]).score


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quants", default="Q8_0,Q5_K_M,Q4_K_M", help="KoEn GGUF quants (default: all three)")
    ap.add_argument("--model", action="append", help="a model path or repo id instead (repeatable)")
    ap.add_argument("--data", help="FLORES-200 folder, devtest files' folder, or an en/ko TSV")
    ap.add_argument("--data-set", choices=["devtest", "dev", "ntrex"], default="devtest")
    ap.add_argument("--directions", default="en-ko,ko-en")
    ap.add_argument("--decoding", default="sampled,greedy", help="sampled, greedy and/or mbr (comma-separated)")
    ap.add_argument("--mbr-samples", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0, help="sentence i samples with seed + i (mbr: seed + i*N + k; "
                                                        "default 0)")
    ap.add_argument("--limit", type=int, help="only the first N sentences")
    ap.add_argument("--n-seq", type=int, default=8, help="sentences decoded together (default 8)")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--random-weights", action="store_true", help="the model is untrained: report speed only")
    ap.add_argument("--json", help="also write every row (and the hypotheses) here")
    a = ap.parse_args(argv)
    decodings = [d.strip() for d in a.decoding.split(",") if d.strip()]
    bad = [d for d in decodings if d not in ("sampled", "greedy", "mbr")]
    if bad:
        ap.error(f"--decoding: unknown {', '.join(bad)} (sampled, greedy, mbr)")
    directions = [tuple(d.strip().split("-")) for d in a.directions.split(",")]
    if any(d not in (("en", "ko"), ("ko", "en")) for d in directions):
        ap.error("--directions: en-ko and/or ko-en")

    import liquidlfm as lfm

    pairs, where = load_pairs(a.data, a.data_set)
    if a.limit:
        pairs = pairs[:a.limit]
    try:
        models = resolve_models(a.model, [q.strip() for q in a.quants.split(",") if q.strip()])
    except (lfm.ModelNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    print(f"data: {where}, {len(pairs)} sentences per direction\nprotocol: LFM2 chat template, system "
          f"'Translate the following text to <Korean|English>.', user = the source; max {MAX_NEW_TOKENS} new "
          f"tokens; sampled = temperature 0.3, min_p 0.15, repetition_penalty 1.05, seeds from {a.seed}; "
          f"chrF = sacrebleu CHRF(), BLEU = sacrebleu BLEU() (13a)")
    rows = []
    for label, path in models:
        random_w = is_random(path, a.random_weights)
        model = lfm.load(path, n_threads=a.threads) if a.threads else lfm.load(path)
        try:
            for src, tgt in directions:
                refs = [p[tgt] for p in pairs]
                for dec in decodings:
                    hyps, dt, n_gen = translate_all(model, [p[src] for p in pairs], tgt, dec, seed=a.seed,
                                                    n_seq=a.n_seq, mbr_samples=a.mbr_samples)
                    row = {"model": label, "path": path, "direction": f"{src}-{tgt}", "decoding": dec,
                           "sentences": len(hyps), "seconds": dt, "sent_per_s": len(hyps) / dt,
                           "gen_tok_per_s": n_gen / dt, "random_weights": random_w,
                           "published": published_for(label, path) if (src, tgt) == ("en", "ko") else None,
                           "hypotheses": hyps}
                    if not random_w:
                        row["chrF"], row["BLEU"] = scores(hyps, refs)
                    rows.append(row)
        finally:
            model.close()
    for src, tgt in directions:
        d = f"{src}-{tgt}"
        print(f"\n### {src} → {tgt}\n")
        if any(r["random_weights"] for r in rows):
            print("**RANDOM WEIGHTS: translation scores would be meaningless and are not printed.**\n")
        print("| model | decoding | sentences | chrF | BLEU | published chrF | published BLEU | sentences/s | gen tok/s |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in (r for r in rows if r["direction"] == d):
            ours = ("—", "—") if r["random_weights"] else (f"{r['chrF']:.2f}", f"{r['BLEU']:.2f}")
            pub = r["published"] or ("—", "—")
            print(f"| {r['model']} | {r['decoding']} | {r['sentences']} | {ours[0]} | {ours[1]} | {pub[0]} | "
                  f"{pub[1]} | {r['sent_per_s']:.2f} | {r['gen_tok_per_s']:.1f} |")
        if d == "en-ko":
            merged = PUBLISHED["merged (HF weights)"]
            print(f"| (published) KoEn v8 merged, HF weights | sampled | 1012 | | | {merged[0]} | {merged[1]} | | |")
            print(f"| (published) base LFM2-1.2B | sampled | 1012 | | | {PUBLISHED_BASE_CHRF} | | | |")
    if a.json:
        Path(a.json).write_text(json.dumps({"data": where, "rows": rows}, ensure_ascii=False, indent=1),
                                encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
