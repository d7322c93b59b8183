"""The `liquidlfm` command (also `python -m liquidlfm`): one set of subcommands.

    liquidlfm translate --to ko "The weather is nice today."     # = python -m liquidlfm.translate
    liquidlfm scholar "idea" --corpus refs.bib                   # = python -m liquidlfm.scholar
    liquidlfm quantize HF_DIR out.gguf --type q4_k_m            # = python -m liquidlfm.quantize
    liquidlfm download [REPO[:FILE]] [--purpose chat]            # = python -m liquidlfm.hub download
    liquidlfm serve MODEL [--port 8000] [--n-seq 8]              # = python -m liquidlfm.server
    liquidlfm generate -m MODEL "Once upon a time" [--max-tokens 128] [--temperature 0.3] ...
    liquidlfm chat -m MODEL [--system "You are ..."]

translate, scholar, quantize, download and serve run those modules' own command lines (same options, same
exit codes); `liquidlfm SUBCOMMAND --help` shows them. The installed command imports the installed
package, so it also works from a source checkout's root directory.

MODEL is a Hugging Face folder, a .gguf file or a Hub repo id. `generate` reads the prompt from
stdin when it is "-" or missing. `chat` is interactive and streams the reply; it also works with
stdin not a terminal (one user message per line). In chat, /reset starts a new conversation and
/exit (or end of input) quits. Ctrl-C stops the current reply (chat) or exits (generate).
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional


def _add_model_args(p: argparse.ArgumentParser):
    p.add_argument("-m", "--model", required=True, help="HF folder, .gguf file or Hub repo id")
    p.add_argument("--n-ctx", type=int, default=None, help="context length of the session (default: model's, max 32768)")
    p.add_argument("-t", "--threads", type=int, default=None, help="CPU threads (default: all cores)")
    p.add_argument("--quantize", default=None, help="requantize weights on load: a llama.cpp file type (e.g. q4_k_m, q8_0)")
    p.add_argument("--blas", choices=["auto", "on", "off"], default=None,
                   help="OpenBLAS for float (F32/F16/BF16) weights: auto = large prefill batches (default: "
                        "LFM_BLAS, else auto), on = every batch, off = never")


def _add_sampling_args(p: argparse.ArgumentParser):
    g = p.add_argument_group("sampling (defaults: the model's generation_config, else T=0.3 min_p=0.15 rep=1.05)")
    g.add_argument("-n", "--max-tokens", type=int, default=None, help="tokens to generate (default 512)")
    g.add_argument("--temperature", "--temp", type=float, default=None, help="0 = greedy")
    g.add_argument("--top-k", type=int, default=None)
    g.add_argument("--top-p", type=float, default=None)
    g.add_argument("--min-p", type=float, default=None)
    g.add_argument("--repetition-penalty", type=float, default=None)
    g.add_argument("--presence-penalty", type=float, default=None)
    g.add_argument("--frequency-penalty", type=float, default=None)
    g.add_argument("--penalty-last-n", type=int, default=None, help="penalty window (default: all tokens)")
    g.add_argument("--seed", type=int, default=None, help="seed for reproducible sampling")
    g.add_argument("--stop", action="append", default=None, help="stop string (repeatable)")
    p.add_argument("--stats", action="store_true", help="print token counts and speeds to stderr")


PROG = "liquidlfm"

# subcommands that are other modules' command lines: name -> (module, leading arguments, help)
DELEGATED = {
    "translate": ("liquidlfm.translate.__main__", [], "translate text or a markdown file (structure kept)"),
    "scholar": ("liquidlfm.scholar.__main__", [], "draft a Related Work section with verified citations"),
    "quantize": ("liquidlfm.quantize", [], "convert a Hugging Face LFM2 folder into a (quantized) GGUF file"),
    "download": ("liquidlfm.hub", ["download"], "download a model into the cache and print its path"),
    "serve": ("liquidlfm.server.__main__", [], "serve a model over an OpenAI-compatible HTTP API"),
}


def run_delegated(name: str, argv: List[str]) -> int:
    """Run subcommand name's module command line with argv (its own parser, help and exit codes)."""
    import importlib

    module, lead, _ = DELEGATED[name]
    run = importlib.import_module(module).main
    if name == "quantize":  # its parser names itself python -m liquidlfm.quantize
        return run(lead + argv)
    return run(lead + argv, prog=PROG if lead else f"{PROG} {name}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Run Liquid AI LFM2 models.",
                                     epilog=f"Run '{PROG} SUBCOMMAND --help' for a subcommand's options.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(
        list(DELEGATED) + ["generate", "chat"]) + "}")
    for name, (_, _, help) in DELEGATED.items():  # listed here, parsed by their own modules
        d = sub.add_parser(name, help=help, add_help=False)
        d.add_argument("args", nargs=argparse.REMAINDER)
    g = sub.add_parser("generate", help="complete a prompt")
    _add_model_args(g)
    _add_sampling_args(g)
    g.add_argument("--chat", action="store_true", help="wrap the prompt as one user message (chat template)")
    g.add_argument("--system", default=None, help="system prompt (with --chat)")
    g.add_argument("prompt", nargs="?", default="-", help='prompt text; "-" or missing reads stdin')
    c = sub.add_parser("chat", help="interactive chat")
    _add_model_args(c)
    _add_sampling_args(c)
    c.add_argument("--system", default=None, help="system prompt")
    return parser


def _sampling(args) -> dict:
    kw = {}
    for name in ("temperature", "top_k", "top_p", "min_p", "repetition_penalty", "presence_penalty",
                 "frequency_penalty", "penalty_last_n", "seed", "stop"):
        v = getattr(args, name)
        if v is not None:
            kw[name] = v
    return kw


def load_model(args):
    import liquidlfm

    return liquidlfm.load(args.model, quantize=args.quantize, n_threads=args.threads, blas=args.blas)


def _print_stats(stats, finish, model, out=sys.stderr):
    import liquidlfm

    blas = model.blas  # OpenBLAS's config string: its first two words are the name and version
    print(
        f"\n[{finish}] prompt {stats.prompt_tokens} tok ({stats.reused_tokens} cached, {stats.prompt_tps:.1f} tok/s), "
        f"generated {stats.generated_tokens} tok ({stats.generation_tps:.1f} tok/s), "
        f"kernels {liquidlfm.kernel_level} (float {liquidlfm.float_kernels}), "
        f"blas {' '.join(blas.split()[:2]) + ' (' + model.blas_mode + ')' if blas else 'off'}",
        file=out, flush=True,
    )


def _stream_out(chunks, out) -> tuple:
    finish, stats = None, None
    for c in chunks:
        if c.text:
            out.write(c.text)
            out.flush()
        finish, stats = c.finish_reason, c.stats
    return finish, stats


def cmd_generate(args, out=sys.stdout) -> int:
    prompt = args.prompt
    if prompt == "-":
        prompt = sys.stdin.read()
    model = load_model(args)
    kw = _sampling(args)
    if args.chat:
        msgs = ([{"role": "system", "content": args.system}] if args.system else []) + [
            {"role": "user", "content": prompt}]
        chunks = model.chat(msgs, stream=True, max_tokens=args.max_tokens, n_ctx=args.n_ctx, **kw)
    else:
        chunks = model.stream(prompt, args.max_tokens, n_ctx=args.n_ctx, **kw)
    finish, stats = _stream_out(chunks, out)
    out.write("\n")
    out.flush()
    if args.stats and stats is not None:
        _print_stats(stats, finish, model)
    return 0


def cmd_chat(args, out=sys.stdout) -> int:
    model = load_model(args)
    kw = _sampling(args)
    interactive = sys.stdin.isatty()
    history: List[dict] = [{"role": "system", "content": args.system}] if args.system else []
    base = list(history)
    if interactive:
        print("Chat with the model. /reset starts over, /exit quits, Ctrl-C stops a reply.", file=sys.stderr)
    while True:
        try:
            if interactive:
                line = input("> ")
            else:
                line = sys.stdin.readline()
                if not line:
                    break
                line = line.rstrip("\n")
        except EOFError:
            break
        except KeyboardInterrupt:
            print(file=sys.stderr)
            break
        text = line.strip()
        if not text:
            continue
        if text in ("/exit", "/quit"):
            break
        if text == "/reset":
            history = list(base)
            model.reset_session()
            if interactive:
                print("(new conversation)", file=sys.stderr)
            continue
        history.append({"role": "user", "content": line})
        parts = []
        finish, stats = None, None
        try:
            for c in model.chat(history, stream=True, max_tokens=args.max_tokens, n_ctx=args.n_ctx, **kw):
                if c.text:
                    parts.append(c.text)
                    out.write(c.text)
                    out.flush()
                finish, stats = c.finish_reason, c.stats
        except KeyboardInterrupt:
            finish = "interrupted"
        out.write("\n")
        out.flush()
        history.append({"role": "assistant", "content": "".join(parts)})
        if args.stats and stats is not None:
            _print_stats(stats, finish, model)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DELEGATED:
        return run_delegated(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    try:
        if args.command == "generate":
            return cmd_generate(args)
        return cmd_chat(args)
    except KeyboardInterrupt:
        sys.stdout.write("\n")
        sys.stdout.flush()
        return 130
    except (FileNotFoundError, ValueError, RuntimeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
