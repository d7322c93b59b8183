"""Shared pytest configuration. Fixture builders live in tests/fixtures/ (random-weight models,
tokenizers, GGUF files); the data in ../shared is read in place, never copied."""
import os
import signal
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LIQUIDLFM_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"../shared not found at {SHARED}; set LIQUIDLFM_SHARED to its path")
    return SHARED


@pytest.fixture
def sigint_raises_keyboard_interrupt():
    """Tests that send SIGINT rely on Python's default handler, which Python does not install when
    the suite is started with SIGINT ignored (as a background job is): set it for the test."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(scope="session")
def tiny_chat_dir(tmp_path_factory):
    """The 4-layer (conv, attention) x 2 random-weight model the CLI and translator tests run end to end."""
    from tests.fixtures.hf_models import make_tiny_chat_model

    return make_tiny_chat_model(tmp_path_factory.mktemp("tiny_chat") / "tiny")


@pytest.fixture(scope="module")
def tiny_chat_model(tiny_chat_dir):
    """tiny_chat_dir loaded, closed after the module."""
    import liquidlfm as lfm

    m = lfm.load(str(tiny_chat_dir))
    yield m
    m.close()
