"""python -m liquidlfm.server MODEL (also: liquidlfm serve MODEL, python -m liquidlfm serve MODEL)."""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional


def _positive(v: str) -> int:
    n = int(v)
    if n <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {v}")
    return n


def _non_negative(v: str) -> int:
    n = int(v)
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return n


def build_parser(prog: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog=prog,
        description="Serve a model over an OpenAI-compatible HTTP API (/v1/chat/completions, /v1/completions, "
                    "/v1/models, /health), with up to --n-seq generations decoded together.",
        epilog=f"Example:\n  {prog} LiquidAI/LFM2-350M-GGUF --port 8000\n"
               "  curl http://127.0.0.1:8000/v1/chat/completions -H 'Content-Type: application/json' \\\n"
               "       -d '{\"model\": \"LFM2-350M-GGUF\", \"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}'\n"
               "SIGINT/SIGTERM drains: new requests get 503, running ones get --shutdown-timeout seconds.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", metavar="MODEL", help="HF folder, .gguf file or Hub repo id")
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    ap.add_argument("--port", type=_non_negative, default=8000, help="port (default 8000; 0: any free port)")
    ap.add_argument("--api-key", default=os.environ.get("LIQUIDLFM_API_KEY"),
                    help="require 'Authorization: Bearer KEY' on /v1/* (default: $LIQUIDLFM_API_KEY, else none)")
    ap.add_argument("--model-name", default=None,
                    help="the model id clients send and /v1/models lists (default: the folder or file name, or "
                         "the repo id)")
    ap.add_argument("--n-seq", type=_positive, default=8,
                    help="sequences decoded together: concurrent generations (default 8)")
    ap.add_argument("--n-ctx", type=_positive, default=None,
                    help="context positions per sequence (default: the model's, at most 32768)")
    ap.add_argument("--max-queue", type=_non_negative, default=64,
                    help="sequences that may wait for a free one before requests get 429 (default 64)")
    ap.add_argument("--max-request-bytes", type=_positive, default=1 << 20,
                    help="largest request body; larger ones get 413 (default 1048576)")
    ap.add_argument("--shutdown-timeout", type=float, default=10.0,
                    help="seconds running requests get to finish on SIGINT/SIGTERM before they are cancelled "
                         "(default 10)")
    ap.add_argument("-t", "--threads", type=_positive, default=None, help="CPU threads (default: all cores)")
    ap.add_argument("--quantize", default=None,
                    help="requantize weights on load: a llama.cpp file type (e.g. q4_k_m, q8_0)")
    ap.add_argument("--kv-cache", choices=["f32", "f16"], default="f32", help="KV cache precision (default f32)")
    ap.add_argument("--log-level", choices=["critical", "error", "warning", "info", "debug"], default="info")
    ap.add_argument("--no-access-log", action="store_true", help="do not log one line per request")
    return ap


def main(argv: Optional[List[str]] = None, prog: str = "python -m liquidlfm.server") -> int:
    a = build_parser(prog).parse_args(argv)
    try:
        from .runner import serve
    except ImportError as e:  # fastapi / uvicorn not installed
        print(f"error: the server needs the 'server' extra ({e}); install it with: pip install 'liquidlfm[server]'",
              file=sys.stderr)
        return 1
    try:
        serve(a.model, host=a.host, port=a.port, api_key=a.api_key, model_name=a.model_name, n_seq=a.n_seq,
              n_ctx=a.n_ctx, max_queue=a.max_queue, max_request_bytes=a.max_request_bytes,
              shutdown_timeout=a.shutdown_timeout, n_threads=a.threads, quantize=a.quantize, kv_cache=a.kv_cache,
              log_level=a.log_level, access_log=not a.no_access_log)
    except KeyboardInterrupt:
        return 130
    except (FileNotFoundError, ValueError, RuntimeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
