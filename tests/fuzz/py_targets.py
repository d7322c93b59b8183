"""Coverage-guided fuzzing of the Python-level entry points with atheris (libFuzzer for Python):

    python tests/fuzz/py_targets.py tokenizer_json CORPUS_DIR [libFuzzer flags]
    python tests/fuzz/py_targets.py gguf_vocab CORPUS_DIR ...
    python tests/fuzz/py_targets.py chat_template CORPUS_DIR ...

tokenizer_json: the input parsed as JSON, then Tokenizer.from_tokenizer_json + encode/decode; the
  only exceptions allowed are liquidlfm's (ModelFormatError / UnsupportedModelError), at load or at
  encode (a vocabulary without a token for some byte).
gguf_vocab: the input as a GGUF file, Tokenizer.from_gguf + encode/decode; same rule.
chat_template: the input is a template source, NUL, a message text; render a conversation. A template may fail
  with any exception, but must not hang (libFuzzer's -timeout) or exhaust memory (-rss_limit_mb).
Seeds: make_seeds.py writes py_tokenizer_json/, py_gguf_vocab/ and py_chat_template/.
"""
import json
import os
import sys
import tempfile
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

with atheris.instrument_imports():
    import jinja2  # noqa: F401 - imported lazily by chat_template; instrument it too
    import jinja2.ext  # noqa: F401
    import jinja2.sandbox  # noqa: F401
    from liquidlfm.chat_template import ChatTemplate
    from liquidlfm.errors import LiquidLFMError
    from liquidlfm.tokenizer import Tokenizer

TEXTS = ["Hello world! 123", "<|im_start|>user\nhi<|im_end|>", "naïve 日本語 🙂\n\n  x", ""]
TMP = Path(tempfile.mkdtemp(prefix="lfm_pyfuzz_"))


def _exercise(tok):
    """Encode and decode; a vocabulary that cannot encode some text (no token for a byte) may say so
    with a liquidlfm error at that point, like any other bad input."""
    try:
        for text in TEXTS:
            ids = tok.encode(text)
            assert all(0 <= i < len(tok) for i in ids), ids
            tok.decode(ids)
            tok.decode(ids, skip_special_tokens=True)
    except LiquidLFMError:
        pass
    finally:
        tok.close()


def tokenizer_json(data: bytes):
    try:
        obj = json.loads(data.decode("utf-8", "surrogatepass"))
    except (ValueError, RecursionError):
        return
    try:
        tok = Tokenizer.from_tokenizer_json(obj) if isinstance(obj, dict) else None
    except LiquidLFMError:
        return
    if tok is not None:
        _exercise(tok)


def gguf_vocab(data: bytes):
    path = TMP / "v.gguf"
    path.write_bytes(data)
    try:
        tok = Tokenizer.from_gguf(path)
    except LiquidLFMError:
        return
    _exercise(tok)


def chat_template(data: bytes):
    source, _, content = data.decode("utf-8", "replace").partition("\0")
    msgs = [{"role": "system", "content": content[:8]}, {"role": "user", "content": content},
            {"role": "assistant", "content": content[::-1]}]
    try:
        ChatTemplate(source or None).render(msgs, add_generation_prompt=len(data) % 2 == 0)
    except Exception:  # noqa: BLE001 - a stranger's template may fail any way; hangs and OOM are the bugs
        pass


TARGETS = {"tokenizer_json": tokenizer_json, "gguf_vocab": gguf_vocab, "chat_template": chat_template}

if __name__ == "__main__":
    name = sys.argv.pop(1)
    atheris.Setup(sys.argv, TARGETS[name])
    atheris.Fuzz()
