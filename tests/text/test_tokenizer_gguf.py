"""Tokenizer from GGUF metadata: same ids as from tokenizer.json, and identical to llama.cpp's own
tokenizer (llama-cpp-python, vocab_only) on a GGUF carrying the same vocabulary and merges with
pre "lfm2"."""
import json
import random

import pytest

import liquidlfm
from liquidlfm.tokenizer import Tokenizer
from tests.fixtures.gguf_models import write_metadata_gguf
from tests.fixtures.tokenizers import write_tokenizer_files, write_vocab_gguf
from tests.text.test_tokenizer import ADVERSARIAL, random_strings


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    return write_tokenizer_files(tmp_path_factory.mktemp("lfm2_tok_gguf"))


@pytest.mark.reference
@pytest.mark.parametrize("vocab_size", [300, 4096])
def test_llama_cpp_parity_other_vocab_sizes(tmp_path, vocab_size, texts):
    llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python (test extra) not installed")
    d = write_tokenizer_files(tmp_path, vocab_size=vocab_size)
    path = write_vocab_gguf(d, tmp_path / "v.gguf")
    llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    ours = Tokenizer.from_gguf(path)
    for t in texts:
        assert ours.encode(t) == llm.tokenize(t.encode("utf-8"), add_bos=True, special=True), t


@pytest.fixture(scope="module")
def gguf_path(tok_dir):
    return write_vocab_gguf(tok_dir, tok_dir / "vocab.gguf")


@pytest.fixture(scope="module")
def ours(gguf_path):
    return Tokenizer.from_gguf(gguf_path)


@pytest.fixture(scope="module")
def texts(shared_dir):
    with open(shared_dir / "data" / "text" / "parity.jsonl", encoding="utf-8") as f:
        recs = [json.loads(line)["text"] for line in f if line.strip()]
    return recs + ADVERSARIAL + random_strings(99, 500)


def test_from_gguf_same_as_tokenizer_json(ours, tok_dir, texts):
    ref = Tokenizer.from_dir(tok_dir)
    assert (ours.vocab_size, ours.bos_id, ours.eos_id, ours.pad_id) == (1024, 1, 7, 0)
    assert ours.add_bos_token and not ours.add_eos_token
    assert ours.special_ids == ref.special_ids
    for t in texts:
        assert ours.encode(t) == ref.encode(t)
        assert ours.encode(t, parse_special=False) == ref.encode(t, parse_special=False)


def _write_gguf(path, fields):
    write_metadata_gguf(path, fields)


def test_from_gguf_errors(tok_dir, tmp_path):
    from tests.fixtures.tokenizers import gguf_tokenizer_fields

    f = gguf_tokenizer_fields(tok_dir)
    f2 = dict(f, **{"tokenizer.ggml.pre": "gpt-2"})
    _write_gguf(tmp_path / "pre.gguf", f2)
    with pytest.raises(liquidlfm.UnsupportedModelError, match="tokenizer.ggml.pre is 'gpt-2'"):
        Tokenizer.from_gguf(tmp_path / "pre.gguf")
    f3 = dict(f, **{"tokenizer.ggml.model": "llama"})
    _write_gguf(tmp_path / "spm.gguf", f3)
    with pytest.raises(liquidlfm.UnsupportedModelError, match="'llama'"):
        Tokenizer.from_gguf(tmp_path / "spm.gguf")
    f4 = {k: v for k, v in f.items() if not k.startswith("tokenizer.")}
    f4["general.name"] = "no tokenizer"
    _write_gguf(tmp_path / "none.gguf", f4)
    with pytest.raises(liquidlfm.ModelFormatError, match="no tokenizer.ggml.model"):
        Tokenizer.from_gguf(tmp_path / "none.gguf")
    f5 = dict(f)
    f5["tokenizer.ggml.merges"] = f["tokenizer.ggml.merges"][:10] + ["Ġ zzzz"]
    _write_gguf(tmp_path / "merge.gguf", f5)
    with pytest.raises(liquidlfm.ModelFormatError, match="merge 10 'Ġ zzzz'"):
        Tokenizer.from_gguf(tmp_path / "merge.gguf")
    f6 = dict(f)
    f6["tokenizer.ggml.token_type"] = ["x"] * len(f["tokenizer.ggml.tokens"])
    _write_gguf(tmp_path / "types.gguf", f6)
    with pytest.raises(liquidlfm.ModelFormatError, match="token_type must be an array of int"):
        Tokenizer.from_gguf(tmp_path / "types.gguf")
    f7 = dict(f)
    f7["tokenizer.ggml.token_type"] = [1] * (len(f["tokenizer.ggml.tokens"]) - 1)
    _write_gguf(tmp_path / "ntypes.gguf", f7)
    with pytest.raises(liquidlfm.ModelFormatError, match="1023 token types for 1024 tokens"):
        Tokenizer.from_gguf(tmp_path / "ntypes.gguf")
    with pytest.raises(FileNotFoundError):
        Tokenizer.from_gguf(tmp_path / "missing.gguf")
    (tmp_path / "junk.gguf").write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 20)
    with pytest.raises(ValueError):  # ModelFormatError is a ValueError
        Tokenizer.from_gguf(tmp_path / "junk.gguf")


# ---- llama.cpp ----

@pytest.fixture(scope="module")
def llama(gguf_path):
    llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python (test extra) not installed")
    return llama_cpp.Llama(model_path=str(gguf_path), vocab_only=True, verbose=False)


def _llama_ids(llm, text, add_bos, special):
    return llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=special)


@pytest.mark.reference
def test_llama_cpp_parity_jsonl_and_adversarial(llama, ours, texts):
    diffs = []
    for t in texts:
        for add_bos, special in ((True, True), (False, False)):
            want = _llama_ids(llama, t, add_bos, special)
            got = ours.encode(t, add_special_tokens=add_bos, parse_special=special)
            if got != want:
                diffs.append((t[:60], add_bos, special, got[:20], want[:20]))
    assert not diffs, f"{len(diffs)} differences, first: {diffs[:3]}"


@pytest.mark.reference
def test_llama_cpp_parity_random_code_points(llama, ours):
    """Random BMP/astral text; code points whose class changed between Unicode versions could differ
    (llama.cpp's tables come from its own UCD), so this reports them explicitly."""
    rnd = random.Random(3)
    diffs = []
    for _ in range(300):
        s = "".join(chr(c) if not 0xD800 <= c <= 0xDFFF else " " for c in
                    (rnd.choice([rnd.randint(0x20, 0x7E), rnd.randint(0xA0, 0x2FFF), rnd.randint(0x3000, 0xFFFF),
                                 rnd.randint(0x10000, 0x2FFFF)]) for _ in range(rnd.randint(1, 40))))
        if ours.encode(s, parse_special=False) != _llama_ids(llama, s, True, False):
            diffs.append(s)
    assert not diffs, [ascii(d) for d in diffs[:5]]


@pytest.mark.reference
def test_llama_cpp_detokenize(llama, ours, texts):
    for t in texts[:300]:
        ids = ours.encode(t, add_special_tokens=False)
        assert llama.detokenize(ids, special=True) == ours.decode_bytes(ids)


@pytest.mark.reference
def test_model_gguf_from_hf_to_gguf(tmp_path, shared_dir):
    """A whole random model converted by the gguf fixture (hf_to_gguf): its tokenizer metadata, read by
    our C GGUF reader, gives the same ids as the HF folder's tokenizer.json, and lfm.load exposes it."""
    from tests.fixtures.gguf_models import hf_to_gguf, make_tiny_hf

    hf_dir = make_tiny_hf(tmp_path / "hf", vocab_size=512)
    out = hf_to_gguf(hf_dir, tmp_path / "m-f32.gguf", "f32")
    a, b = Tokenizer.from_gguf(out), Tokenizer.from_dir(hf_dir)
    assert (a.vocab_size, a.bos_id, a.eos_id, a.pad_id) == (b.vocab_size, b.bos_id, b.eos_id, b.pad_id)
    with open(shared_dir / "data" / "text" / "parity.jsonl", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f][::5] + ADVERSARIAL
    for t in texts:
        assert a.encode(t) == b.encode(t)
    model = liquidlfm.load(str(out))
    assert model.tokenizer is not None and model.tokenizer.encode("안녕 world") == b.encode("안녕 world")
