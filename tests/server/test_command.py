"""`liquidlfm serve` / `python -m liquidlfm serve` / `python -m liquidlfm.server`: the command line."""
import os
import socket
import subprocess
import sys

from tests.server.conftest import REPO


def run(args, timeout=60):
    env = dict(os.environ, PYTHONPATH=str(REPO), LIQUIDLFM_OFFLINE="1")
    return subprocess.run([sys.executable, *args], cwd=str(REPO), env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_help_lists_the_options():
    for args in (["-m", "liquidlfm", "serve", "--help"], ["-m", "liquidlfm.server", "--help"]):
        r = run(args)
        assert r.returncode == 0
        for opt in ("--host", "--port", "--api-key", "--n-seq", "--n-ctx", "--max-queue", "--max-request-bytes",
                    "--model-name", "--threads", "--shutdown-timeout"):
            assert opt in r.stdout, opt
    assert "serve" in run(["-m", "liquidlfm", "--help"]).stdout


def test_bad_arguments():
    r = run(["-m", "liquidlfm", "serve", "m.gguf", "--n-seq", "0"])
    assert r.returncode == 2 and "--n-seq: must be a positive integer" in r.stderr
    r = run(["-m", "liquidlfm", "serve"])
    assert r.returncode == 2 and "MODEL" in r.stderr


def test_missing_model(tmp_path):
    r = run(["-m", "liquidlfm", "serve", str(tmp_path / "nothing.gguf")])
    assert r.returncode == 1 and r.stderr.startswith("error: ") and "nothing.gguf" in r.stderr


def test_port_in_use(served_model_dir):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        r = run(["-m", "liquidlfm", "serve", str(served_model_dir), "--port", str(s.getsockname()[1])])
    assert r.returncode == 1 and "address already in use" in (r.stderr + r.stdout).lower()
