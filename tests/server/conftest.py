"""Servers for tests/server, all on loopback.

- ThreadServer: the app on a DrainingServer in a thread of the test process, over a model object
  (the scripted model of scripted.py): fast, deterministic, and the test can reach its state
  (engine counters, drain) directly.
- ProcessServer: `python -m liquidlfm serve MODEL --port 0 ...` in a subprocess over a random-weight
  model with the LFM2 tokenizer and chat template (tests/fixtures): the real engine end to end,
  the command line, signals and the process's memory.
- openai_server: the server the OpenAI-client suite talks to. LIQUIDLFM_TEST_OPENAI_BASE_URL points
  it at any OpenAI-compatible server (with LIQUIDLFM_TEST_OPENAI_MODEL, LIQUIDLFM_TEST_OPENAI_API_KEY);
  tests that need to configure or inspect the server are skipped there.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
EXTERNAL_URL = os.environ.get("LIQUIDLFM_TEST_OPENAI_BASE_URL")


class ThreadServer:
    """build_server(model, **kw) run in a daemon thread; .url, .state (ServerState), .server."""

    def __init__(self, model, **kw):
        from liquidlfm.server import build_server

        kw.setdefault("model_name", "scripted")
        kw.setdefault("log_level", "warning")
        self.server, sock = build_server(model, port=0, **kw)
        self.state = self.server.state
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)

    @property
    def engine(self):
        return self.state.engine

    def client(self, **kw):
        return httpx.Client(base_url=self.url, timeout=kw.pop("timeout", 30), **kw)

    def stop(self):
        if self.thread.is_alive():
            self.server.handle_exit(signal.SIGTERM, None)
            self.server.handle_exit(signal.SIGTERM, None)  # second: do not wait for requests
            self.thread.join(30)
        assert not self.thread.is_alive(), "the test server did not stop"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class ProcessServer:
    """`python -m liquidlfm serve model_dir --port 0 *args`; .url, .proc, .log (its stderr)."""

    def __init__(self, model_dir, *args, log_path: Path, env=None):
        self.log_path = log_path
        self.log = open(log_path, "w+")
        e = dict(os.environ, PYTHONPATH=str(REPO), LIQUIDLFM_OFFLINE="1", **(env or {}))
        self.proc = subprocess.Popen([sys.executable, "-m", "liquidlfm", "serve", str(model_dir), "--port", "0",
                                      "--no-access-log", "--log-level", "warning", *map(str, args)],
                                     cwd=str(REPO), env=e, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        self.url = None
        while self.url is None:
            m = re.search(r"liquidlfm serve: (http://\S+)/v1", log_path.read_text())
            if m:
                self.url = m.group(1)
            elif self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server did not start:\n{log_path.read_text()}")
            else:
                time.sleep(0.05)

    def rss_kib(self, field="VmRSS") -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)

    def health(self) -> dict:
        return httpx.get(self.url + "/health", timeout=10).json()

    def stop(self, sig=signal.SIGTERM, timeout=30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def output(self) -> str:
        return self.log_path.read_text()


@pytest.fixture(scope="session")
def served_model_dir(tiny_chat_dir):
    """The random-weight model the real server runs: 4 layers, LFM2's special tokens and chat template."""
    return tiny_chat_dir


class OpenAIServer:
    def __init__(self, url, model, api_key, process=None):
        self.url, self.model, self.api_key, self.process = url, model, api_key, process

    @property
    def ours(self) -> bool:
        return self.process is not None

    def client(self, **kw):
        import openai

        return openai.OpenAI(base_url=self.url + "/v1", api_key=self.api_key, max_retries=0,
                             timeout=kw.pop("timeout", 60), **kw)

    def async_client(self, **kw):
        import openai

        return openai.AsyncOpenAI(base_url=self.url + "/v1", api_key=self.api_key, max_retries=0,
                                  timeout=kw.pop("timeout", 120), **kw)


@pytest.fixture(scope="session")
def openai_server(served_model_dir, tmp_path_factory):
    if EXTERNAL_URL:
        url = EXTERNAL_URL.rstrip("/").removesuffix("/v1")
        key = os.environ.get("LIQUIDLFM_TEST_OPENAI_API_KEY", "none")
        model = os.environ.get("LIQUIDLFM_TEST_OPENAI_MODEL")
        if model is None:
            model = httpx.get(url + "/v1/models", headers={"Authorization": f"Bearer {key}"}).json()["data"][0]["id"]
        yield OpenAIServer(url, model, key)
        return
    log = tmp_path_factory.mktemp("server") / "server.log"
    p = ProcessServer(served_model_dir, "--n-seq", 8, "--n-ctx", 512, "--max-queue", 128, "-t", 1,
                      "--model-name", "tiny-lfm2", log_path=log)
    try:
        yield OpenAIServer(p.url, "tiny-lfm2", "none", p)
    finally:
        code = p.stop()
        assert code == 0, f"server exit code {code}:\n{p.output()}"


@pytest.fixture
def ours(openai_server):
    """Tests that configure or inspect the server itself run only against ours."""
    if not openai_server.ours:
        pytest.skip("inspects liquidlfm's own server (LIQUIDLFM_TEST_OPENAI_BASE_URL points elsewhere)")
    return openai_server
