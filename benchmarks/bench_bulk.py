"""Throughput of bulk translation on Ray (liquidlfm.bulk) by actors x sequences per actor.

    python benchmarks/bench_bulk.py                          # 1, 2 actors x 1, 4, 8, 16 sequences, 96 records
    python benchmarks/bench_bulk.py --actors 1 --n-seq 8 --records 32 --json out.json
    python benchmarks/bench_bulk.py --price-core-hour 0.05   # cost per million generated tokens at this price

The model is a random-weight LFM2-350M-shaped checkpoint (real shapes, weights from
benchmarks/bench_engine.py's writer) with the tests' stand-in BPE tokenizer (8192 trained tokens on the
shared text, padded to LFM2's 65536 ids with tokens no text produces; the real LFM2 tokenizer.json is
not on this machine, so prompts are somewhat longer in tokens than with it) and LFM2's chat template,
converted to a Q4_0 GGUF (the default translation model's type) by liquidlfm.quantize, all cached in
--model-dir.
Random weights: the translations are noise; only speed is measured. Greedy decoding; each record is
one FLORES dev sentence (../shared/data/en-ko/dev.tsv, read in place), and every record generates up to
--max-tokens tokens (a random model rarely stops on its own, so nearly all of them).

Per configuration: one bulk.translate job into a fresh folder on one local Ray (started once, not timed).
"wall" is the whole job (actors start, each loads the model, records run); "work" is the window from the
first batch's start to the last batch's end on the actors (liquidlfm.bulk's BulkResult.work_seconds), the
steady-state figure a long job approaches. "CPU" is the actors' own CPU time for their batches (all
threads; BulkResult.cpu_seconds): tokens per CPU-second is throughput per core, which other load on a
shared machine lowers much less than the wall-clock figures. tokens = tokens of the translations
(generated tokens, including each stop token). Cost per million tokens, at --price-core-hour: "wall"
= all cores for the work window (cores x price / (tokens/s x 3600)), "CPU" = the core-seconds the
actors used (price / (tokens per CPU-second x 3600)).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build_model(model_dir: Path, quant: str) -> Path:
    """The random-weight LFM2-350M-shaped chat model as a GGUF (built once, then reused)."""
    gguf = model_dir / f"lfm2-350m-random-{quant}-v65536.gguf"
    if gguf.is_file():
        return gguf
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_engine import make_model

    from liquidlfm.quantize import quantize_hf
    from tests.fixtures.tokenizers import write_tokenizer_files

    hf = model_dir / "hf-350m"
    make_model(hf, "350M", "bf16")
    write_tokenizer_files(hf, vocab_size=TRAINED_VOCAB)
    pad_vocab(hf / "tokenizer.json", VOCAB)
    quantize_hf(hf, gguf, quant, progress=False)
    return gguf


TRAINED_VOCAB = 8192  # what BPE training on the shared text reaches
VOCAB = 65536         # LFM2's vocabulary, all of it defined by the real tokenizer


def pad_vocab(path: Path, size: int) -> None:
    """Fill the stand-in tokenizer's vocabulary up to LFM2's 65536 ids with normal tokens no text
    produces ("zz" + six digits: the pre-tokenizer always splits letters from digits). Without them
    ids 8192..65535 would be undefined, and every request would carry a 57k-entry ban list that the
    real tokenizer (65536 defined ids) never needs."""
    data = json.loads(path.read_text(encoding="utf-8"))
    vocab = data["model"]["vocab"]
    added = {t["id"] for t in data.get("added_tokens", [])}
    n = len(set(vocab.values()) | added)
    for i in range(n, size):
        vocab[f"zz{i:06d}"] = i
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def sentences(n: int):
    shared = Path(os.environ.get("LIQUIDLFM_SHARED", ROOT.parent / "shared"))
    if not (shared / "data").is_dir():
        shared = next(p / "shared" for p in ROOT.parents if (p / "shared" / "data").is_dir())
    lines = (shared / "data" / "en-ko" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]
    if n > len(lines):
        raise SystemExit(f"--records {n}: the dev split has {len(lines)} sentences")
    return [{"id": int(l.split("\t")[0]), "text": l.split("\t")[1]} for l in lines[:n]]


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--n-seq", type=int, nargs="+", default=[1, 4, 8, 16])
    ap.add_argument("--records", type=int, default=96)
    ap.add_argument("--max-tokens", type=int, default=48, help="per record (default 48)")
    ap.add_argument("--cpus", type=int, default=os.cpu_count(), help="CPUs Ray may use (default: all)")
    ap.add_argument("--quant", default="q4_0")
    ap.add_argument("--model-dir", type=Path, default=Path(tempfile.gettempdir()) / "liquidlfm-bench-bulk")
    ap.add_argument("--price-core-hour", type=float, default=0.05,
                    help="USD per core-hour for the cost column (default 0.05: see README, Scaling)")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    a = ap.parse_args(argv)

    import liquidlfm
    from liquidlfm import bulk

    a.model_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    gguf = build_model(a.model_dir, a.quant)
    print(f"model {gguf} ({gguf.stat().st_size / 2**20:.0f} MiB, built/reused in {time.perf_counter() - t0:.0f} s)",
          file=sys.stderr)
    records = sentences(a.records)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    started = bulk.init_ray(None, num_cpus=a.cpus, include_dashboard=False, log_to_driver=False)
    rows = []
    try:
        for actors in a.actors:
            for n_seq in a.n_seq:
                out = Path(tempfile.mkdtemp(prefix="bench-bulk-"))
                try:
                    # two batches per actor at least, so every actor has work and the tail is short
                    batch = max(1, min(4 * n_seq, a.records // (2 * actors)))
                    r = bulk.translate(records, "ko", out, model=str(gguf), actors=actors, n_seq=n_seq,
                                       batch_size=batch, shard_size=batch, max_tokens=a.max_tokens, progress=False)
                finally:
                    shutil.rmtree(out, ignore_errors=True)
                cores = a.cpus
                work_tps, cpu_tps = r.work_tokens_per_s, r.tokens_per_cpu_s
                row = dict(actors=actors, threads_per_actor=max(1, a.cpus // actors), n_seq=n_seq, batch_size=batch,
                           records=r.records_run, tokens=r.generated_tokens, wall_s=round(r.seconds, 2),
                           work_s=round(r.work_seconds, 2),
                           records_per_s=round(r.records_run / r.work_seconds, 3) if r.work_seconds else None,
                           cpu_s=round(r.cpu_seconds, 2), tokens_per_s=round(work_tps, 1),
                           tokens_per_cpu_s=round(cpu_tps, 1), wall_tokens_per_s=round(r.tokens_per_s, 1),
                           usd_per_m_tokens=round(cores * a.price_core_hour / (work_tps * 3600) * 1e6, 3)
                           if work_tps else None,
                           usd_per_m_tokens_cpu=round(a.price_core_hour / (cpu_tps * 3600) * 1e6, 3)
                           if cpu_tps else None)
                rows.append(row)
                print(json.dumps(row), file=sys.stderr)
    finally:
        if started:
            import ray

            ray.shutdown()

    print(f"\n{cpu_model()}, {a.cpus} cores; liquidlfm {commit}, kernels {getattr(liquidlfm, 'kernel_level', '?')}; "
          f"random-weight LFM2-350M shape, {a.quant.upper()} GGUF; {a.records} records (FLORES dev, en->ko), "
          f"greedy, max_tokens {a.max_tokens}; ${a.price_core_hour}/core-hour\n")
    print("| actors | threads/actor | seqs/actor | records/s | tokens/s | tokens/CPU-s | tokens/s incl. start-up "
          "| $/M tokens (wall) | $/M tokens (CPU) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['actors']} | {r['threads_per_actor']} | {r['n_seq']} | {r['records_per_s']} | "
              f"{r['tokens_per_s']} | {r['tokens_per_cpu_s']} | {r['wall_tokens_per_s']} | {r['usd_per_m_tokens']} | "
              f"{r['usd_per_m_tokens_cpu']} |")
    if a.json:
        a.json.write_text(json.dumps({"cpu": cpu_model(), "cores": a.cpus, "commit": commit, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
