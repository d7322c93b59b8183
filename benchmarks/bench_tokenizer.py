"""Tokenizer encode throughput (MB/s of UTF-8 input): liquidlfm vs HF `tokenizers` (and llama.cpp via
llama-cpp-python when it is installed), on ../shared/data/text/parity.jsonl, same tokenizer.

    python benchmarks/bench_tokenizer.py [--vocab-size 4096] [--repeat 5] [--json]

The tokenizer is the LFM2-like fixture (tests/fixtures/tokenizers.py) trained on the shared text: the
real 65 536-entry LFM2 tokenizer.json is not available on this machine. Larger vocabularies mean
longer merges per word, so absolute numbers differ from the real tokenizer; the ratios in one run are
what to compare. Each cell is the best of --repeat runs (the machine is shared and noisy).
Modes: "records" = one encode call per record (725 calls, call overhead included), "file" = one call
on all records joined by newlines. HF runs single-threaded (RAYON_NUM_THREADS=1; encode() is
single-threaded anyway).
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAYON_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.tokenizers import SHARED, write_tokenizer_files  # noqa: E402


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vocab-size", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="also print the results as JSON")
    args = ap.parse_args()

    from liquidlfm.tokenizer import Tokenizer
    from tokenizers import Tokenizer as HFTokenizer

    texts = [json.loads(line)["text"] for line in open(SHARED / "data" / "text" / "parity.jsonl", encoding="utf-8")]
    whole = "\n".join(texts)
    n_bytes = len(whole.encode("utf-8"))
    rec_bytes = sum(len(t.encode("utf-8")) for t in texts)

    tmp = Path(tempfile.mkdtemp(prefix="bench_tok_"))
    write_tokenizer_files(tmp, vocab_size=args.vocab_size)
    ours = Tokenizer.from_dir(tmp)
    hf = HFTokenizer.from_file(str(tmp / "tokenizer.json"))
    assert ours.encode(whole) == hf.encode(whole).ids, "ids differ from HF; benchmark meaningless"

    engines = {
        "liquidlfm": (lambda t: ours.encode(t)),
        "hf tokenizers": (lambda t: hf.encode(t).ids),
    }
    try:
        import llama_cpp  # noqa: F401
        from tests.fixtures.tokenizers import write_vocab_gguf

        gguf_path = tmp / "vocab.gguf"
        write_vocab_gguf(tmp, gguf_path)
        llm = llama_cpp.Llama(model_path=str(gguf_path), vocab_only=True, verbose=False)
        engines["llama.cpp"] = lambda t: llm.tokenize(t.encode("utf-8"), add_bos=True, special=True)
    except Exception as e:  # not installed / not built here
        print(f"(llama.cpp not measured: {type(e).__name__}: {e})")

    rows = []
    for name, enc in engines.items():
        t_rec = best_of(lambda: [enc(t) for t in texts], args.repeat)
        t_file = best_of(lambda: enc(whole), args.repeat)
        rows.append({"engine": name, "records_MBps": rec_bytes / t_rec / 1e6, "file_MBps": n_bytes / t_file / 1e6})

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    print(f"cpu: {platform.processor() or platform.machine()}  commit: {commit}  text: parity.jsonl "
          f"({len(texts)} records, {n_bytes / 1e6:.2f} MB)  vocab: {ours.vocab_size}  best of {args.repeat}")
    print()
    print("| engine        | records MB/s | file MB/s | vs HF (file) |")
    print("|---------------|-------------:|----------:|-------------:|")
    hf_file = next(r["file_MBps"] for r in rows if r["engine"] == "hf tokenizers")
    for r in rows:
        print(f"| {r['engine']:<13} | {r['records_MBps']:12.2f} | {r['file_MBps']:9.2f} | {r['file_MBps'] / hf_file:11.2f}x |")
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
