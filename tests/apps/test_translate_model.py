"""The translator on a real (tiny, random-weight) LFM2 loaded by liquidlfm: prompts, structure, order,
streaming, prefix-state reuse and the command line. Random weights: the translations are meaningless;
only the plumbing and the exact structure are checked."""
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import liquidlfm as lfm
from liquidlfm.segment import segment
from liquidlfm.translate import TranslationTruncatedWarning, Translator, system_prompt

pytestmark = pytest.mark.reference  # models are built with transformers

REPO = Path(__file__).resolve().parents[2]

DOC = """# Getting started

Install the package. Then run the example!

- Fast on CPU.
- Small: `pip install liquidlfm`.

| Model | Size |
|-------|------|
| LFM2 | small |

```bash
python -m liquidlfm.translate --to ko "Hi"
```

See [the docs](https://example.com/docs) for more.
"""


@pytest.fixture(scope="module")
def model(tiny_chat_model):
    return tiny_chat_model


@pytest.fixture
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TranslationTruncatedWarning)  # random weights never say <|im_end|>
        yield


def test_prompt_matches_transformers_template(model, tiny_chat_dir):
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(tiny_chat_dir))
    t = Translator(model)
    for text, target in [("The weather is nice today.", "ko"), ("오늘 날씨가 좋네요.", "en"), ("def f(): pass", "ja")]:
        msgs = [{"role": "system", "content": system_prompt(target)}, {"role": "user", "content": text}]
        ref = hf.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        assert t.render(text, target) == ref
        ids, _ = t._prompt_ids(text, target, None, None)
        assert ids == hf.apply_chat_template(msgs, tokenize=True, add_generation_prompt=True, return_dict=False)
        assert ids.count(1) == 1 and ids[0] == 1


def test_structure_kept_around_model_output(model, quiet):
    segs = segment(DOC)
    chunks = list(lfm.translate(DOC, "ko", model=model, stream=True, max_tokens=6))
    assert len(chunks) == len(segs)
    for c, s in zip(chunks, segs):
        if not s.translate:
            assert c == s.text  # markup, code, URLs: byte-identical, in place
    out = "".join(chunks)
    assert out == lfm.translate(DOC, "ko", model=model, max_tokens=6)  # greedy: deterministic
    assert '```bash\npython -m liquidlfm.translate --to ko "Hi"\n```\n' in out
    assert "](https://example.com/docs)" in out and "|-------|------|" in out


def test_list_order_and_stream(model, quiet):
    items = ["First sentence.", "두 번째 문장입니다.", "Third one here."]
    singles = [lfm.translate(x, "ja", model=model, max_tokens=5) for x in items]
    assert lfm.translate(items, "ja", model=model, max_tokens=5) == singles
    assert list(lfm.translate(items, "ja", model=model, max_tokens=5, stream=True)) == singles


def test_prefix_state_reuse_is_exact(model):
    """Greedy output with the cached prompt-prefix state == a fresh full prefill of the same prompt."""
    import numpy as np

    t = Translator(model)
    texts = ["Hello there, friend.", "A second, different sentence.", "Hello there, friend."]
    for text in texts:
        got, finish = t.translate_piece(text, "ko", max_tokens=8)
        ids, _ = t._prompt_ids(text, "ko", None, None)
        with model.session(n_ctx=t.n_ctx) as s:
            logits = s.prefill(ids)
            out = []
            for _ in range(8):
                tok = int(np.argmax(logits))
                if tok in t.stop_ids:
                    break
                out.append(tok)
                logits = s.step(tok)
        assert got == model.tokenizer.decode(out, skip_special_tokens=True).strip()
    assert t.stats["segments"] == 3


def test_truncation_warned_and_context_error(model):
    with pytest.warns(TranslationTruncatedWarning):
        lfm.translate("One more sentence to translate.", "ko", model=model, max_tokens=2)
    with pytest.raises(lfm.ContextFullError):
        lfm.translate("word" * 400, "ko", model=model, n_ctx=64)


def _run_cli(args, tiny_chat_dir, stdin=None):
    env = dict(os.environ, LIQUIDLFM_MODEL=str(tiny_chat_dir), PYTHONPATH=str(REPO), LIQUIDLFM_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "liquidlfm.translate", *args], input=stdin, env=env,
                          capture_output=True, text=True, timeout=300)


def test_cli_text_and_stdin(tiny_chat_dir, tmp_path):
    r = _run_cli(["--to", "ko", "--max-tokens", "4", "The weather is nice today."], tiny_chat_dir)
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith("\n") and r.stdout.strip()
    r = _run_cli(["--to", "kor_Hang", "--max-tokens", "4"], tiny_chat_dir, stdin=DOC)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("# ")
    assert '```bash\npython -m liquidlfm.translate --to ko "Hi"\n```\n' in r.stdout
    assert "translating" in r.stderr and "seg" in r.stderr  # tqdm bar on stderr, not in the output
    assert "TranslationTruncatedWarning" in r.stderr  # random weights: never silent
    g = tmp_path / "g.tsv"
    g.write_text("package\t패키지\n", encoding="utf-8")
    src = tmp_path / "in.md"
    src.write_text(DOC, encoding="utf-8")
    out = tmp_path / "out.md"
    r = _run_cli(["--to", "ko", "--from", "en", "--formality", "polite", "--glossary", str(g), "-i", str(src),
                  "-o", str(out), "--max-tokens", "3", "--no-progress"], tiny_chat_dir)
    assert r.returncode == 0, r.stderr
    assert out.read_text(encoding="utf-8").startswith("# ") and "translating" not in r.stderr


def test_cli_errors(tiny_chat_dir, tmp_path):
    r = _run_cli(["--to", "xx", "hi"], tiny_chat_dir)
    assert r.returncode == 2 and "unknown language 'xx'" in r.stderr and "kor_Hang" in r.stderr
    r = _run_cli(["--to", "ko"], tiny_chat_dir, stdin="   \n")
    assert r.returncode == 2 and "empty input" in r.stderr
    r = _run_cli(["--to", "ko", "--model", str(tmp_path / "missing.gguf"), "hi"], tiny_chat_dir)
    assert r.returncode == 2 and "does not exist" in r.stderr
    r = _run_cli(["--list-languages"], tiny_chat_dir)
    assert r.returncode == 0 and "ko\tkor_Hang\tKorean" in r.stdout


def test_cli_auto_direction_quant_and_mbr(tiny_chat_dir, tmp_path):
    # no --to: the KoEn rule picks the direction (the output of random weights means nothing)
    r = _run_cli(["--max-tokens", "3", "The weather is nice today."], tiny_chat_dir)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip()
    # mbr with a seed: the same translation twice
    args = ["--to", "ko", "--max-tokens", "3", "--quality", "mbr", "--samples", "2", "--seed", "1", "Hello there."]
    r1, r2 = _run_cli(args, tiny_chat_dir), _run_cli(args, tiny_chat_dir)
    assert r1.returncode == 0 and r1.stdout == r2.stdout, r1.stderr
    # --quant picks a file of a repo: a local model has none
    r = _run_cli(["--model", str(tiny_chat_dir), "--quant", "Q4_K_M", "hi"], tiny_chat_dir)
    assert r.returncode == 2 and "not a repo id" in r.stderr
    r = _run_cli(["--input", str(tmp_path / "x.jsonl"), "--output", str(tmp_path / "out") + "/"], tiny_chat_dir)
    assert r.returncode == 2 and "bulk mode needs --to" in r.stderr
