"""Corrupt safetensors checkpoints through lfm.load: truncation, lying header length, mutated
header bytes. Each is a clear exception, never a crash (run under ASan by tests/sanitize/run.sh)."""
import random
import shutil
import struct

import pytest

import liquidlfm as lfm
from liquidlfm import ModelFormatError, UnsupportedModelError

pytestmark = pytest.mark.reference  # models are built with transformers


@pytest.fixture(scope="module")
def tiny_hf(tmp_path_factory):
    from tests.fixtures.gguf_models import make_tiny_hf

    return make_tiny_hf(tmp_path_factory.mktemp("st") / "hf", vocab_size=320, hidden_size=64, n_layers=2,
                        layer_types=["conv", "full_attention"], heads=4, kv_heads=2, ff=96, tokenizer=False)


def _copy(src, dst, blob):
    shutil.copytree(src, dst)
    (dst / "model.safetensors").write_bytes(blob)
    return dst


def test_safetensors_truncated_and_lying(tiny_hf, tmp_path):
    blob = (tiny_hf / "model.safetensors").read_bytes()
    assert lfm.load(str(tiny_hf)).forward([1, 2]).shape == (2, 320)
    (n,) = struct.unpack("<Q", blob[:8])
    rng = random.Random(3)
    cuts = sorted({0, 4, 8, 9, 8 + n // 2, 8 + n, len(blob) - 1} | {rng.randrange(len(blob)) for _ in range(12)})
    for i, cut in enumerate(cuts):
        d = _copy(tiny_hf, tmp_path / f"t{i}", blob[:cut])
        with pytest.raises(ModelFormatError):
            lfm.load(str(d))
    for j, lie in enumerate((2**64 - 1, 2**63, len(blob), n + 1, 0)):
        d = _copy(tiny_hf, tmp_path / f"l{j}", struct.pack("<Q", lie) + blob[8:])
        with pytest.raises(ModelFormatError):
            lfm.load(str(d))


def test_safetensors_header_mutation_fuzz(tiny_hf, tmp_path):
    blob = (tiny_hf / "model.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    rng = random.Random(11)
    d = _copy(tiny_hf, tmp_path / "fz", blob)
    failures = 0
    for _ in range(120):
        b = bytearray(blob)
        for _ in range(rng.randint(1, 3)):
            b[8 + rng.randrange(n)] = rng.choice(b'0123456789"{}[],:eE-+. xFBI')
        (d / "model.safetensors").write_bytes(bytes(b))
        try:
            lfm.load(str(d)).forward([1])
        except (ModelFormatError, UnsupportedModelError):
            failures += 1
    assert failures > 0
