"""arm64 speed *proxy* without arm64 hardware: guest instructions executed per decoded token and per
prompt token under qemu-user, for liquidlfm's aarch64 build next to llama.cpp's, on the same GGUF files.

    python benchmarks/bench_arm_proxy.py --llama-bench i8mm=/path/to/aarch64/llama-bench
    python benchmarks/bench_arm_proxy.py --types q4_0 --levels dotprod i8mm \\
        --llama-bench dotprod=/x/build-dotprod/bin/llama-bench i8mm=/x/build-i8mm/bin/llama-bench
    python benchmarks/bench_arm_proxy.py --engines liquidlfm       # ours only, no llama.cpp needed

This is an instruction count, not a speed: qemu's wall time says nothing about an ARM core, and the
count weighs every instruction the same (an SDOT, a SMMLA, a scalar add and a cache-missing load are one
each), with no memory-bandwidth or latency effects. Use it to compare code paths, never as tokens/s.

How it counts: QEMU's TCG plugin tests/plugin/bb.c (inline mode) adds each executed translation block's
instruction count to one counter, over the whole process (tools/cross/build_qemu_insn_plugin.sh builds it
for the installed qemu-user). Per-token numbers come from differencing runs of the same process that
differ only in the work asked for, so loading, repacking, start-up and the fixed cost of a call cancel:
    A = prompt of pp_lo tokens, then tg_lo decode steps      (default 1, 2)
    B = prompt of pp_hi tokens, then tg_lo decode steps      (default 65, 2)  -> prefill (B - A) / (pp_hi - pp_lo)
    C = prompt of pp_lo tokens, then tg_hi decode steps      (default 1, 10)  -> decode  (C - A) / (tg_hi - tg_lo)
so "prefill" is the per-token cost of a 64-token prompt beyond a 1-token one (the last position's
logits, computed once per call either way, cancel), and "decode" the cost of one more step at the
start of a context. The prompt is processed in one call (one llama_decode batch), each decode step is
one token with the last position's logits, 1 thread on both sides (llama-bench -t 1 -r 1 --no-warmup
-pg PP,TG; ours: Session.decode of the prompt, then Session.step), so a repeated run gives the same
count to within a few thousand instructions (under 0.01% of a per-token number).

Levels: ours is forced with LFM_KERNELS=neon|dotprod|i8mm (the kernel names the engine reports are
printed), on a qemu CPU that has exactly that level's features (cortex-a72: ARMv8.0 NEON; cortex-a76:
+dotprod; max: +i8mm). llama.cpp selects its kernels at compile time, so it needs one aarch64 build per
level (GGML_NATIVE=OFF, GGML_CPU_ARM_ARCH=armv8-a / armv8.2-a+dotprod / armv8.2-a+dotprod+i8mm, its CPU
repack as it ships), passed as --llama-bench LEVEL=PATH; a level without one shows '-'. The binary must
be static or linked against the arm64 sysroot's libraries (qemu runs it with -L SYSROOT).

The model files are the random-weight GGUFs at real shapes that bench_gguf.py writes and quantizes with
llama.cpp (llama-cpp-python on this host), cached in --cache-dir.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LEVELS = ("neon", "dotprod", "i8mm")
# the qemu CPU whose features are exactly those of a level (qemu 7.2 has no named i8mm core without SVE;
# "max" adds SVE, which neither engine is built for)
QEMU_CPU = {"neon": "cortex-a72", "dotprod": "cortex-a76", "i8mm": "max"}
DEFAULT_PLUGIN = Path("/opt/lfm-tools/qemu-src/libbb.so")


# ---- the worker: runs under qemu on the aarch64 Python, imports only the stdlib and liquidlfm ----

def _tokens(n, V, seed):
    """n token ids in [300, V) from a small LCG (numpy's generator would cost different instructions per n)."""
    out, x = [], seed
    for _ in range(n):
        x = (x * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        out.append(300 + (x >> 33) % (V - 300))
    return out


def worker(path, pp, tg):
    import liquidlfm as lfm
    from liquidlfm import _core

    model = lfm.load(path, n_threads=1)
    V = model.config.n_vocab
    with model.session(n_ctx=pp + tg + 16, n_threads=1) as s:
        s.decode(_tokens(pp, V, 1), "last")
        for tok in _tokens(tg, V, 2):
            s.step(tok)
    kernels = _core._quant_kernels()
    if hasattr(_core, "kernels_default"):  # the float kernel set, where the engine names it
        kernels += "/" + _core.kernels_default()
    print(json.dumps({"kernels": kernels}))


# ---- the host side ----

def count_instructions(argv, *, plugin, sysroot, cpu, env, timeout):
    """Run argv (an aarch64 program) under qemu-aarch64 with the counting plugin; return (insns, stdout)."""
    with tempfile.TemporaryDirectory(prefix="arm-proxy-") as tmp:
        log = Path(tmp) / "plugin.log"
        cmd = ["qemu-aarch64", "-cpu", cpu, "-L", str(sysroot), "-plugin", f"{plugin},inline=on",
               "-d", "plugin", "-D", str(log)] + [str(a) for a in argv]
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
        if p.returncode != 0:
            tail = (p.stderr.strip().splitlines() or ["(no stderr)"])[-3:]
            raise RuntimeError(f"exit {p.returncode}: {' | '.join(tail)}\n  command: {' '.join(cmd)}")
        m = re.search(r"insns: (\d+)", log.read_text() if log.exists() else "")
        if not m:
            raise RuntimeError(f"the plugin wrote no count to {log}; command: {' '.join(cmd)}")
        return int(m.group(1)), p.stdout


def ours_runner(args, level):
    env = dict(os.environ, LFM_KERNELS=level, PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1",
               OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(str(p) for p in (args.pkg, args.site)))
    env.pop("QEMU_CPU", None)
    env.pop("QEMU_LD_PREFIX", None)
    py = args.sysroot / "usr/bin/python3.11"

    def run(path, pp, tg):
        argv = [py, "-P", Path(__file__).resolve(), "--worker", path, pp, tg]
        n, out = count_instructions(argv, plugin=args.plugin, sysroot=args.sysroot, cpu=QEMU_CPU[level],
                                    env=env, timeout=args.timeout)
        return n, json.loads(out.strip().splitlines()[-1])["kernels"]

    return run


def llama_runner(args, level, binary):
    env = dict(os.environ, OMP_NUM_THREADS="1")

    def run(path, pp, tg):
        argv = [binary, "-m", path, "-t", 1, "-r", 1, "--no-warmup", "-pg", f"{pp},{tg}", "-p", 0, "-n", 0,
                "-o", "jsonl"]
        n, _ = count_instructions(argv, plugin=args.plugin, sysroot=args.sysroot, cpu=QEMU_CPU[level], env=env,
                                  timeout=args.timeout)
        return n, None

    return run


def run_all(jobs, tasks):
    """tasks: {key: thunk}; run them on `jobs` threads (each thunk waits on its own qemu process)."""
    from concurrent.futures import ThreadPoolExecutor

    def guarded(key, thunk):
        try:
            got = thunk()
            print(f"# {key}: {got[0]} instructions", file=sys.stderr, flush=True)
            return got
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            print(f"# {key}: {e}", file=sys.stderr, flush=True)
            return e

    with ThreadPoolExecutor(max(1, jobs)) as ex:
        futures = {k: ex.submit(guarded, k, t) for k, t in tasks.items()}
        return {k: f.result() for k, f in futures.items()}


def check_tools(args):
    problems = []
    if not shutil.which("qemu-aarch64"):
        problems.append("no qemu-aarch64 on PATH: apt-get install qemu-user")
    if not args.plugin.is_file():
        problems.append(f"no QEMU instruction-count plugin at {args.plugin}: build it with "
                        f"tools/cross/build_qemu_insn_plugin.sh (it prints the path), or pass --plugin PATH")
    if not (args.sysroot / "usr/bin/python3.11").exists():
        problems.append(f"no arm64 sysroot at {args.sysroot}: tools/cross/make_sysroot.sh, or --sysroot")
    if "liquidlfm" in args.engines and not list((args.pkg / "liquidlfm").glob("_core*aarch64*.so")):
        problems.append(f"no aarch64 liquidlfm package in {args.pkg}: tools/cross/build_aarch64.sh [OUT], or --pkg OUT")
    if problems:
        sys.exit("bench_arm_proxy.py: cannot run:\n  " + "\n  ".join(problems))


def parse_llama(specs):
    out = {}
    for spec in specs or []:
        level, sep, path = spec.partition("=")
        if not sep or level not in LEVELS:
            sys.exit(f"--llama-bench takes LEVEL=PATH with LEVEL one of {', '.join(LEVELS)}; got {spec!r}")
        p = Path(path)
        if not (p.is_file() and os.access(p, os.X_OK)):
            sys.exit(f"--llama-bench {spec}: {p} is not an executable file")
        out[level] = p.resolve()
    return out


def _fmt(x):
    return f"{x / 1e6:.1f}M" if x is not None else "-"


def main():
    if sys.argv[1:2] == ["--worker"]:  # under qemu: --worker MODEL PP TG
        worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["350M"], help="shapes from bench_gguf.py (350M, 1.2B)")
    ap.add_argument("--types", nargs="+", default=["q4_0", "q8_0", "q4_k_m"])
    ap.add_argument("--levels", nargs="+", default=list(LEVELS), choices=LEVELS)
    ap.add_argument("--engines", nargs="+", default=["liquidlfm", "llama.cpp"], choices=["liquidlfm", "llama.cpp"])
    ap.add_argument("--llama-bench", nargs="*", metavar="LEVEL=PATH",
                    help="an aarch64 llama-bench built for that ISA level (see the docstring)")
    ap.add_argument("--pp", nargs=2, type=int, default=[1, 65], metavar=("LO", "HI"), help="prompt lengths")
    ap.add_argument("--tg", nargs=2, type=int, default=[2, 10], metavar=("LO", "HI"), help="decode steps")
    ap.add_argument("--plugin", type=Path, default=Path(os.environ.get("LFM_QEMU_INSN_PLUGIN", DEFAULT_PLUGIN)))
    ap.add_argument("--sysroot", type=Path, default=Path(os.environ.get("LFM_ARM64_SYSROOT", "/opt/lfm-arm64/root")))
    ap.add_argument("--pkg", type=Path, default=Path(os.environ.get("LFM_ARM64_PKG", REPO / "build/aarch64/pkg")),
                    help="the aarch64 liquidlfm package tree (tools/cross/build_aarch64.sh OUT)")
    ap.add_argument("--ours-label", help="what the package was built from, for the header (e.g. 'main 2916184')")
    ap.add_argument("--site", type=Path, default=REPO / "build/aarch64/site")
    ap.add_argument("--cache-dir", type=Path, default=Path(os.environ.get("LIQUIDLFM_BENCH_CACHE",
                                                                          "/tmp/liquidlfm-bench-gguf")))
    ap.add_argument("--jobs", type=int, default=1, help="qemu runs at once (the counts do not depend on it)")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per qemu run")
    ap.add_argument("--json", type=Path, help="also write the raw counts here")
    args = ap.parse_args()
    if args.pp[1] <= args.pp[0] or args.tg[1] <= args.tg[0]:
        sys.exit("--pp and --tg take LO HI with HI > LO")

    args.pkg, args.site, args.sysroot = args.pkg.resolve(), args.site.resolve(), args.sysroot.resolve()
    check_tools(args)
    llama = parse_llama(args.llama_bench) if "llama.cpp" in args.engines else {}
    if "llama.cpp" in args.engines:
        for level in args.levels:
            if level not in llama:
                print(f"# no llama-bench for level {level} (pass --llama-bench {level}=PATH to an aarch64 build "
                      f"for that level): its llama.cpp cells stay '-'", file=sys.stderr)

    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_gguf import SHAPES, TYPES, model_file

    commit = args.ours_label or subprocess.run(["git", "-C", str(args.pkg), "rev-parse", "--short", "HEAD"],
                                               capture_output=True, text=True).stdout.strip() or "unlabelled"
    print(f"# instruction-count proxy under qemu-user (not a speed); liquidlfm {commit} (package {args.pkg}); "
          f"1 thread; prefill = (prompt {args.pp[1]} - prompt {args.pp[0]}) / {args.pp[1] - args.pp[0]}, one batch each; "
          f"decode = (steps {args.tg[1]} - steps {args.tg[0]}) / {args.tg[1] - args.tg[0]} after a {args.pp[0]}-token prompt", file=sys.stderr)
    rows, tasks = [], {}
    for key in args.models:
        for qt in args.types:
            path = model_file(args.cache_dir, key, qt, os.cpu_count() or 1)
            for level in args.levels:
                row = {"model": SHAPES[key]["name"], "type": TYPES[qt], "level": level, "cpu": QEMU_CPU[level]}
                rows.append(row)
                runners = []
                if "liquidlfm" in args.engines:
                    runners.append(("ours", ours_runner(args, level)))
                if level in llama:
                    runners.append(("llama", llama_runner(args, level, llama[level])))
                for name, run in runners:
                    for tag, pp, tg in (("A", args.pp[0], args.tg[0]), ("B", args.pp[1], args.tg[0]),
                                        ("C", args.pp[0], args.tg[1])):
                        tasks[(len(rows) - 1, name, tag)] = (lambda run=run, path=path, pp=pp, tg=tg: run(path, pp, tg))
    done = run_all(args.jobs, tasks)
    for i, row in enumerate(rows):
        for name in ("ours", "llama"):
            got = {tag: done.get((i, name, tag)) for tag in "ABC"}
            if got["A"] is None:
                continue
            errors = [str(v) for v in got.values() if isinstance(v, Exception)]
            if errors:
                row[name] = {"error": errors[0]}
                continue
            (a, info), (b, _), (c, _) = got["A"], got["B"], got["C"]
            row[name] = {"decode": (c - a) / (args.tg[1] - args.tg[0]), "prefill": (b - a) / (args.pp[1] - args.pp[0]),
                         "raw": [a, b, c]}
            if info:
                row["kernels"] = info
        print(f"# {json.dumps(row)}", file=sys.stderr, flush=True)

    print("| model | type | level (qemu cpu) | ours kernels (quant/float) | decode: ours instr/token | llama.cpp instr/token | "
          "llama/ours | prefill: ours instr/token | llama.cpp instr/token | llama/ours |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        o, l = r.get("ours", {}), r.get("llama", {})
        cells = []
        for k in ("decode", "prefill"):
            a, b = o.get(k), l.get(k)
            cells += [_fmt(a), _fmt(b), f"{b / a:.2f}" if a and b else "-"]
        print(f"| {r['model']} | {r['type']} | {r['level']} ({r['cpu']}) | {r.get('kernels', '-')} | "
              + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps({"commit": commit, "pp": args.pp, "tg": args.tg, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
