"""What an actor runs, without Ray: a batch of records in, one result per record out, bad records
isolated. On the scripted fake model (each piece upper-cased) the expected output is exact."""
import json

import numpy as np
import pytest

import liquidlfm
from liquidlfm.bulk.workers import TranslateWorker, translate_texts
from liquidlfm.translate import Translator
from tests.bulk.helpers import TEMPLATE_FILE, SerialFakeModel as FakeModel


@pytest.fixture(scope="module")
def template(shared_dir):
    return (shared_dir / TEMPLATE_FILE).read_text()


def batch(texts):
    return {"i": np.arange(10, 10 + len(texts)), "text": np.array(texts, dtype=object)}


def test_batch_in_results_out_same_as_translate(template):
    texts = ["Hello there. How are you?", "# Title\n\nA *markdown* document.\n", "Short."]
    w = TranslateWorker(FakeModel(template), "ko", {"markdown": True, "temperature": 0.0})
    out = w(batch(texts))
    assert out["i"] == [10, 11, 12] and out["error"] == ["", "", ""]
    got = [json.loads(r)["translation"] for r in out["result"]]
    assert got == liquidlfm.translate(texts, "ko", model=FakeModel(template))
    assert got[1] == "# TITLE\n\nA *MARKDOWN* DOCUMENT.\n"
    assert all(t > 0 for t in out["tokens"])


def test_bad_record_is_isolated_and_the_rest_still_translated(template):
    tr = Translator(FakeModel(template), n_ctx=160)
    long_word = "x" * 400  # no sentence, clause or word boundary: cannot be split to fit 160 tokens
    texts = ["One.", "Two.", long_word, "Four.", "Five, six.", long_word + "y"]
    res = translate_texts(tr, texts, "ko", temperature=0.0)
    assert [r[0]["translation"] if r[0] else None for r in res] == ["ONE.", "TWO.", None, "FOUR.", "FIVE, SIX.", None]
    assert res[2][1].startswith("ContextFullError: a single piece of 400 tokens cannot fit the 160-token context")
    assert res[5][1].startswith("ContextFullError: a single piece of 401 tokens")
    assert [r[2] for r in res][2] == 0


def test_truncated_records_are_flagged(template):
    tr = Translator(FakeModel(template))
    res = translate_texts(tr, ["A sentence that is long enough to be cut.", "Ok."], "ko", max_tokens=5, temperature=0.0)
    assert res[0][0] == {"translation": "A SEN", "truncated": True}
    assert res[1][0] == {"translation": "OK."}
    assert res[0][2] == 5


def test_repeated_pieces_in_a_batch_are_translated_once(template):
    m = FakeModel(template)
    tr = Translator(m)
    res = translate_texts(tr, ["Same.", "Same.", "Other."], "ko", temperature=0.0)
    assert [r[0]["translation"] for r in res] == ["SAME.", "SAME.", "OTHER."]
    once = FakeModel(template)
    translate_texts(Translator(once), ["Same.", "Other."], "ko", temperature=0.0)
    assert m.prefilled == once.prefilled  # "Same." generated once
    # every generated token is attributed to the record whose piece it belongs to, none twice
    assert sum(r[2] for r in res) == tr.stats["generated_tokens"] and res[0][2] > 0


def test_errors_that_are_not_about_one_record_fail_the_batch(template):
    class Broken(FakeModel):
        def session(self, n_ctx=None):
            raise MemoryError("no memory for a session")

    w = TranslateWorker(Broken(template), "ko", {"temperature": 0.0})
    with pytest.raises(MemoryError):  # Ray retries the batch on a restarted actor
        w(batch(["One.", "Two."]))


@pytest.mark.parametrize("source, target, purpose", [
    (None, "ko", "translate"),            # the KoEn fine-tune
    ("Korean", "en", "translate"),
    ("en", "ja", "translate-general"),    # the general model
])
def test_bulk_default_model_is_the_translators_for_the_pair(monkeypatch, source, target, purpose):
    from liquidlfm import hub
    from liquidlfm.bulk import _translation_model

    monkeypatch.delenv("LIQUIDLFM_MODEL", raising=False)
    monkeypatch.setattr(hub, "resolve_model", lambda spec=None, *, purpose="translate": f"{spec}|{purpose}")
    assert _translation_model(None, source, target) == f"None|{purpose}"
    assert _translation_model("/some/model.gguf", source, target) == "/some/model.gguf"
