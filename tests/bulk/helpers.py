"""Workers and inputs for the bulk tests. Ray actors import this module (the repo root is on their
PYTHONPATH: liquidlfm.bulk.init_ray puts the checkout there, and the Ray fixture exports it)."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from liquidlfm.bulk import TranslateWorker
from tests.fixtures.fake_lm import FakeModel

REPO = Path(__file__).resolve().parents[2]
TEMPLATE_FILE = Path("data") / "lfm2-tokenizer" / "chat_template.jinja"


def en_sentences(shared_dir, n: int):
    """The first n English sentences of the FLORES dev split (read in place)."""
    lines = (Path(shared_dir) / "data" / "en-ko" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:n + 1]
    return [(int(line.split("\t")[0]), line.split("\t")[1]) for line in lines]


def write_jsonl(path, records) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return Path(path)


class SerialFakeModel(FakeModel):
    """The fake model without a batch engine (it has no native context): the translator runs its
    pieces one by one through the fake session."""
    batch = None


class FakeTranslateWorker(TranslateWorker):
    """TranslateWorker over the scripted fake model (tests/fixtures/fake_lm.py): each piece comes back
    upper-cased, so the expected output is known exactly. The driver's model path is ignored. Set the
    class attributes with fake_worker(): template (the chat template text), delay (seconds per batch,
    to give a test time to interfere), crash_marker (a file: the first actor to claim it dies)."""

    template = ""
    delay = 0.0
    crash_marker = None

    def __init__(self, model, target, options, **kwargs):
        super().__init__(SerialFakeModel(self.template), target, options, **kwargs)

    def __call__(self, batch):
        if self.crash_marker:
            try:  # exactly one actor claims the marker (rename is atomic) and dies mid-batch
                os.rename(self.crash_marker, self.crash_marker + ".claimed")
            except FileNotFoundError:
                pass
            else:
                os._exit(1)
        if self.delay:
            time.sleep(self.delay)
        return super().__call__(batch)


def fake_worker(template: str, **attrs):
    """A FakeTranslateWorker subclass with these settings (built here, so Ray pickles it by value)."""
    return type("FakeWorker", (FakeTranslateWorker,), dict(template=template, **attrs))
