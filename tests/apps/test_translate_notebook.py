"""notebooks/translate.ipynb runs top to bottom (nbclient). Offline with an empty cache it builds a tiny
random-weight LFM2 itself and says so; it never touches the network here.

Beyond running, the notebook's results are checked as values: a cell appended to the executed copy
dumps them as JSON, and the test recomputes them in this process from the same model file (greedy
decoding: the translations are deterministic)."""
import os
from pathlib import Path

import pytest

import liquidlfm as lfm
from liquidlfm.segment import rebuild, segment
from tests.fixtures.notebooks import MARK, run_notebook

pytestmark = pytest.mark.reference  # the notebook builds its model with transformers

REPO = Path(__file__).resolve().parents[2]
DUMP = f"""
import json as _json
print({MARK!r} + _json.dumps(dict(
    random=RANDOM_WEIGHTS, model_path=str(MODEL_PATH), max_tokens=MAX, doc=doc,
    segments=[[s.translate, s.text] for s in segs], out=out, pieces=pieces,
    cli_exit=r.returncode, cli_stdout=r.stdout, stats=dict(st),
)))
"""


def test_translate_notebook_executes(tmp_path, monkeypatch, shared_dir):
    monkeypatch.setenv("LIQUIDLFM_OFFLINE", "1")
    monkeypatch.setenv("LIQUIDLFM_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LIQUIDLFM_MODEL", raising=False)
    monkeypatch.setenv("LIQUIDLFM_SHARED", str(shared_dir))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    outputs, res = run_notebook("translate.ipynb", DUMP)
    text = "\n".join("".join(o) for o in outputs)
    assert "RANDOM WEIGHTS: outputs below are meaningless" in text
    assert "joined == non-streamed: True" in text
    assert "unknown language 'klingon'" in text
    assert "<|im_start|>system\\nTranslate to Korean.<|im_end|>" in text
    assert "<|im_start|>system\\nTranslate the following text to Korean.<|im_end|>" in text  # the KoEn prompt
    assert "same with the same seed: True" in text

    # offline with an empty cache: the notebook's own random model, in our tmp dir
    assert res["random"] is True and res["max_tokens"] == 12
    assert Path(res["model_path"]).is_relative_to(tmp_path)
    # the markdown document splits into translatable prose and verbatim markup, losslessly
    doc = res["doc"]
    segs = segment(doc)
    assert res["segments"] == [[s.translate, s.text] for s in segs]
    assert rebuild(segs) == doc
    kinds = {text: tr for tr, text in res["segments"]}
    assert kinds["```bash\npython -m liquidlfm.translate --to ko < README.md > README.ko.md\n```\n"] is False
    assert kinds["`pip install liquidlfm`"] is False and kinds["](https://docs.liquid.ai) "] is False
    assert kinds["Install the package."] is True and kinds["the documentation"] is True
    # streamed pieces join to the non-streamed text; markup passes through untouched
    assert "".join(res["pieces"]) == res["out"]
    for tr, t in res["segments"]:
        if not tr and t.strip():
            assert t in res["out"], t
    # the same translation recomputed here, and by the CLI in the notebook
    with lfm.load(res["model_path"]) as model:
        assert lfm.translate(doc, "ko", model=model, max_tokens=12) == res["out"]
    assert res["cli_exit"] == 0 and res["cli_stdout"].rstrip("\n") == res["out"].rstrip("\n")
    # the stats cell counts what it translated
    st = res["stats"]
    assert st["segments"] == sum(tr for tr, _ in res["segments"])
    assert st["prompt_tokens"] > 0 and 0 < st["generated_tokens"] <= 12 * st["segments"]
