"""Running the app under uvicorn, with a shutdown that drains instead of dropping.

SIGINT / SIGTERM (or DrainingServer.handle_exit from code) starts a drain: the listening socket
stays open and new requests get 503 (so a load balancer moves on), while requests in flight keep
running for up to shutdown_timeout seconds. Then what is left is cancelled (streams end with an
error event and [DONE], JSON requests with 503), uvicorn closes the connections and the app's
lifespan closes the engine. A second signal skips the wait: everything is cancelled at once.
"""
from __future__ import annotations

import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Callable, Optional, Union

import uvicorn

from .app import ServerSettings, create_app

__all__ = ["DrainingServer", "build_server", "serve", "default_model_name"]

log = logging.getLogger("liquidlfm.server")
# after the cancel at the drain deadline: time for streams to write their last event
_CANCEL_GRACE = 2.0


class DrainingServer(uvicorn.Server):
    """uvicorn.Server whose exit signal first drains the app (see module docstring)."""

    def __init__(self, config: uvicorn.Config, state, shutdown_timeout: float,
                 on_ready: Optional[Callable[[], None]] = None):
        super().__init__(config)
        self.state = state
        self.shutdown_timeout = shutdown_timeout
        self.on_ready = on_ready
        self.drain_deadline: Optional[float] = None
        self.cancelled_at: Optional[float] = None

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self.on_ready is not None:
            self.on_ready()

    def handle_exit(self, sig, frame) -> None:
        # runs in a signal handler: only set flags here; on_tick acts on them
        if self.drain_deadline is None:
            self.drain_deadline = time.monotonic() + self.shutdown_timeout
            self.state.begin_drain()
        else:  # a second signal: do not wait for the requests in flight
            self.drain_deadline = 0.0

    async def on_tick(self, counter: int) -> bool:
        if await super().on_tick(counter):
            return True
        if self.drain_deadline is None:
            return False
        now = time.monotonic()
        if not self.state.jobs:
            return True
        if now >= self.drain_deadline and self.cancelled_at is None:
            log.warning("shutdown: cancelling %d request(s) still running after %.0f s", len(self.state.jobs),
                        self.shutdown_timeout)
            self.state.cancel_all()
            self.cancelled_at = now
        return self.cancelled_at is not None and now >= self.cancelled_at + _CANCEL_GRACE


def default_model_name(model_arg: str) -> str:
    """The id clients use: a folder's or file's name without .gguf, or a Hub repo id as given."""
    p = Path(model_arg)
    if p.exists():
        p = p.resolve()
        return p.stem if p.suffix == ".gguf" else p.name
    return model_arg


def build_server(model, *, host: str = "127.0.0.1", port: int = 8000, api_key: Optional[str] = None,
                 n_seq: int = 8, n_ctx: Optional[int] = None, max_queue: int = 64,
                 max_request_bytes: int = 1 << 20, n_threads: Optional[int] = None,
                 model_name: Optional[str] = None, aliases=(), shutdown_timeout: float = 10.0,
                 log_level: str = "info", access_log: bool = True):
    """A DrainingServer for model (a loaded liquidlfm.Model) and its bound socket (port 0: any free
    port; read it from socket.getsockname()). Run it with server.run(sockets=[sock])."""
    if n_seq < 1 or max_queue < 0 or max_request_bytes < 1 or shutdown_timeout < 0:
        raise ValueError("n_seq and max_request_bytes must be positive, max_queue and shutdown_timeout >= 0")
    sock = _listen_socket(host, port)  # first: a port in use fails before any memory is committed
    try:
        engine = model.batch(n_seq=n_seq, n_ctx=n_ctx, n_threads=n_threads)
    except BaseException:
        sock.close()
        raise
    try:
        settings = ServerSettings(model_name=model_name or default_model_name(str(model.path)), aliases=tuple(aliases),
                                  api_key=api_key or None, max_queue=max_queue, max_request_bytes=max_request_bytes,
                                  shutdown_timeout=shutdown_timeout)
        app = create_app(model, engine, settings)
        config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=access_log,
                                timeout_graceful_shutdown=int(_CANCEL_GRACE) + 1, lifespan="on")
        server = DrainingServer(config, app.state.server, shutdown_timeout)
    except BaseException:
        engine.close()
        sock.close()
        raise
    return server, sock


def _listen_socket(host: str, port: int) -> socket.socket:
    """A bound socket (uvicorn listens on it); OSError naming the address when it is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise OSError(e.errno, f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.set_inheritable(True)
    return sock


def serve(model: Union[str, os.PathLike, "object"], *, quantize: Optional[str] = None, kv_cache: str = "f32",
          on_ready: Optional[Callable[[str], None]] = None, **kwargs) -> None:
    """Load model (path, .gguf or Hub id; or a loaded Model) and serve it until SIGINT / SIGTERM.
    Keyword arguments: as build_server. on_ready(url) is called once the server accepts requests."""
    import liquidlfm

    aliases, loaded = (), None
    if not isinstance(model, liquidlfm.Model):
        aliases = (os.fspath(model),)
        if not kwargs.get("model_name"):
            kwargs["model_name"] = default_model_name(os.fspath(model))
        model = loaded = liquidlfm.load(model, quantize=quantize, n_threads=kwargs.get("n_threads"), kv_cache=kv_cache)
    try:
        _run(model, aliases, on_ready, kwargs)
    finally:
        if loaded is not None:
            loaded.close()


def _run(model, aliases, on_ready, kwargs) -> None:
    server, sock = build_server(model, aliases=aliases, **kwargs)
    host, port = sock.getsockname()[:2]
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    state = server.state

    def ready():
        print(f"liquidlfm serve: {url}/v1 (model {state.settings.model_name!r}, n_seq {state.n_seq}, "
              f"n_ctx {state.n_ctx}, max_queue {state.settings.max_queue}"
              f"{', API key required' if state.settings.api_key else ''})", file=sys.stderr, flush=True)
        if on_ready is not None:
            on_ready(url)

    server.on_ready = ready
    server.run(sockets=[sock])
