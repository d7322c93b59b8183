"""`python -m liquidlfm generate|chat` via subprocess, with the fake engine of test_generation_fake
(the real-model CLI run is in test_generation.py)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.signals import restore_default_sigint

REPO = Path(__file__).resolve().parents[2]

RUNNER = (
    "import sys; sys.path.insert(0, {repo!r});"
    "from tests.engine.test_generation_fake import FakeModel;"
    "import liquidlfm.__main__ as cli;"
    "m = FakeModel(); m.step_delay = float({delay!r});"
    "cli.load_model = lambda args: m;"
    "sys.exit(cli.main(sys.argv[1:]))"
)


def run_cli(args, stdin="", delay=0.0, timeout=60):
    code = RUNNER.format(repo=str(REPO), delay=delay)
    return subprocess.run([sys.executable, "-c", code, *args], input=stdin, capture_output=True, text=True,
                          timeout=timeout, cwd=str(REPO))


def test_generate_prints_the_same_text_as_the_api():
    from tests.engine.test_generation_fake import FakeModel

    want = FakeModel().generate("Hello", max_tokens=12, temperature=0)
    r = run_cli(["generate", "-m", "fake", "-n", "12", "--temperature", "0", "Hello"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == want + "\n"


def test_generate_reads_stdin_and_prints_stats():
    r = run_cli(["generate", "-m", "fake", "-n", "5", "--seed", "1", "--stats"], stdin="from stdin")
    assert r.returncode == 0, r.stderr
    assert "generated 5 tok" in r.stderr and "prompt 11 tok" in r.stderr


def test_chat_with_piped_stdin():
    from tests.engine.test_generation_fake import FakeModel

    m = FakeModel()
    first = m.chat([{"role": "user", "content": "hi"}], max_tokens=6, temperature=0)
    r = run_cli(["chat", "-m", "fake", "-n", "6", "--temperature", "0"], stdin="hi\nagain\n/reset\nhi\n/exit\nnever\n")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    assert lines[0] == first
    assert lines[2] == first  # after /reset the conversation starts over
    assert len(lines) == 4 and lines[3] == ""


def test_bad_flag_values_exit_cleanly():
    r = run_cli(["generate", "-m", "fake", "--top-p", "3", "x"])
    assert r.returncode == 1 and "top_p" in r.stderr and "Traceback" not in r.stderr
    r = run_cli(["generate", "-m", "fake", "--top-k", "abc", "x"])
    assert r.returncode == 2  # argparse


@pytest.mark.skipif(os.name != "posix", reason="SIGINT delivery")
def test_ctrl_c_exits_cleanly():
    code = RUNNER.format(repo=str(REPO), delay=0.01)
    p = subprocess.Popen([sys.executable, "-c", code, "generate", "-m", "fake", "-n", "100000", "go"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(REPO),
                         preexec_fn=restore_default_sigint)
    # wait until it is generating
    first = p.stdout.read(1)
    assert first
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 130
    assert "Traceback" not in err


@pytest.mark.skipif(os.name != "posix", reason="SIGINT delivery")
def test_ctrl_c_in_chat_stops_the_reply_only():
    code = RUNNER.format(repo=str(REPO), delay=0.01)
    p = subprocess.Popen([sys.executable, "-c", code, "chat", "-m", "fake", "-n", "100000"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         cwd=str(REPO), preexec_fn=restore_default_sigint)
    p.stdin.write("tell me everything\n")
    p.stdin.flush()
    assert p.stdout.read(1)
    p.send_signal(signal.SIGINT)
    time.sleep(0.3)
    p.stdin.write("/exit\n")
    p.stdin.flush()
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert "Traceback" not in err
