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

