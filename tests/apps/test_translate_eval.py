"""benchmarks/translate_eval.py's mechanics on random-weight GGUFs named like the KoEn files: the
published prompt, reproducible seeded sampling, greedy, MBR, the scores (sacrebleu's defaults), the
data readers and the message when FLORES-200 devtest is missing. No quality is measured here."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest

import liquidlfm as lfm

pytestmark = pytest.mark.reference  # the tiny model is built with transformers

REPO = Path(__file__).resolve().parents[2]
STEM = "lfm2-1.2b-koen-mt-v8-rl-10k-merged"


@pytest.fixture(scope="module")
def ev():
    spec = importlib.util.spec_from_file_location("translate_eval", REPO / "benchmarks" / "translate_eval.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def quant_files(tiny_chat_dir, tmp_path_factory):
    from liquidlfm.quantize import quantize_hf

    d = tmp_path_factory.mktemp("koen")
    return {q: quantize_hf(tiny_chat_dir, d / f"{STEM}-{q}.gguf", q.lower(), progress=False, name="tiny")
            for q in ("Q8_0", "Q4_K_M")}


@pytest.fixture
def flores(tmp_path):
    d = tmp_path / "flores200_dataset" / "devtest"
    d.mkdir(parents=True)
    (d / "eng_Latn.devtest").write_text("The weather is nice today.\nIt may rain tomorrow.\nHello.\n", encoding="utf-8")
    (d / "kor_Hang.devtest").write_text("오늘 날씨가 좋네요.\n내일은 비가 올지도 몰라요.\n안녕하세요.\n", encoding="utf-8")
    return d.parent


def test_scores_are_sacrebleu_defaults(ev):
    from sacrebleu.metrics import BLEU, CHRF

    hyps = ["오늘 날씨가 좋다.", "내일 비가 온다."]
    refs = ["오늘 날씨가 좋네요.", "내일은 비가 올지도 몰라요."]
    assert ev.scores(refs, refs) == pytest.approx((100.0, 100.0))
    assert ev.scores(hyps, refs) == (CHRF().corpus_score(hyps, [refs]).score, BLEU().corpus_score(hyps, [refs]).score)
    assert CHRF().word_order == 0 and BLEU().tokenizer.signature() == "13a"  # plain chrF, 13a


def test_data_readers_and_missing_devtest(ev, flores, tmp_path, monkeypatch):
    pairs, where = ev.load_pairs(str(flores))
    assert pairs[0] == {"en": "The weather is nice today.", "ko": "오늘 날씨가 좋네요."} and len(pairs) == 3
    assert "devtest" in where
    assert ev.load_pairs(str(flores / "devtest"))[0] == pairs
    monkeypatch.setenv("FLORES200_DIR", str(flores))
    assert ev.load_pairs()[0] == pairs
    dev, where = ev.load_pairs(data_set="dev")
    assert len(dev) == 997 and "not the published devtest" in where
    monkeypatch.delenv("FLORES200_DIR")
    monkeypatch.setattr(ev, "DEFAULT_FLORES", tmp_path / "nowhere")
    with pytest.raises(SystemExit) as ei:
        ev.load_pairs(str(tmp_path / "nowhere"))
    msg = str(ei.value)
    assert "FLORES200_DIR" in msg and "devtest/eng_Latn.devtest" in msg and "--data-set dev" in msg


def test_protocol_prompt_is_the_published_one(ev, quant_files):
    with lfm.load(str(quant_files["Q8_0"])) as m:
        assert ev.protocol_prompt(m, "Hello.", "ko") == (
            "<|startoftext|><|im_start|>system\nTranslate the following text to Korean.<|im_end|>\n"
            "<|im_start|>user\nHello.<|im_end|>\n<|im_start|>assistant\n")
        # greedy = argmax: the script's hypothesis is what the model generates greedily from that prompt
        hyps, _, _ = ev.translate_all(m, ["Hello."], "ko", "greedy", max_new_tokens=8)
        ids = m.tokenizer.encode(ev.protocol_prompt(m, "Hello.", "ko"), add_special_tokens=False)
        assert ids.count(1) == 1  # one BOS: the template's
        ref = m.generate(ids, max_tokens=8, temperature=0.0, top_k=0, top_p=1.0, min_p=0.0, repetition_penalty=1.0)
        assert hyps == [m.tokenizer.decode(ref.token_ids, skip_special_tokens=True).strip()]
        # seeded sampling is reproducible; another seed samples differently
        a = ev.translate_all(m, ["Hello.", "Bye."], "ko", "sampled", seed=3, max_new_tokens=8)[0]
        assert a == ev.translate_all(m, ["Hello.", "Bye."], "ko", "sampled", seed=3, max_new_tokens=8)[0]
        assert a != ev.translate_all(m, ["Hello.", "Bye."], "ko", "sampled", seed=4, max_new_tokens=8)[0]
        # mbr with one sample is the sampled decoding with the same seeds
        assert ev.translate_all(m, ["Hello."], "ko", "mbr", seed=5, mbr_samples=1, max_new_tokens=8)[0] == \
            ev.translate_all(m, ["Hello."], "ko", "sampled", seed=5, max_new_tokens=8)[0]


def test_run_prints_ours_beside_published(ev, quant_files, flores, tmp_path, capsys):
    out = tmp_path / "rows.json"
    args = ["--data", str(flores), "--limit", "2", "--n-seq", "2", "--json", str(out), "--decoding",
            "sampled,greedy,mbr", "--mbr-samples", "2"]
    for q in ("Q8_0", "Q4_K_M"):
        args += ["--model", str(quant_files[q])]
    assert ev.main(args + ["--random-weights"]) == 0
    text = capsys.readouterr().out
    assert "RANDOM WEIGHTS" in text and "### en → ko" in text and "### ko → en" in text
    assert f"| {STEM}-Q8_0.gguf | sampled | 2 | — | — | 34.39 | 12.93 |" in text
    assert f"| {STEM}-Q4_K_M.gguf | greedy | 2 | — | — | 33.97 | 12.56 |" in text
    assert "| (published) base LFM2-1.2B | sampled | 1012 | | | 27.23 |" in text
    rows = json.loads(out.read_text(encoding="utf-8"))["rows"]
    assert len(rows) == 2 * 2 * 3 and all(len(r["hypotheses"]) == 2 and "chrF" not in r for r in rows)
    # the same command again: the same hypotheses (seeded)
    assert ev.main(args + ["--random-weights"]) == 0
    assert [r["hypotheses"] for r in json.loads(out.read_text(encoding="utf-8"))["rows"]] == \
        [r["hypotheses"] for r in rows]
    # scored (the scores of random weights mean nothing; this checks they are sacrebleu's of the hypotheses)
    assert ev.main(args[:-2] + ["--model", str(quant_files["Q8_0"]), "--directions", "ko-en", "--decoding",
                                "greedy"]) == 0
    row = json.loads(out.read_text(encoding="utf-8"))["rows"][0]
    refs = ["The weather is nice today.", "It may rain tomorrow."]
    assert (row["chrF"], row["BLEU"]) == ev.scores(row["hypotheses"], refs) and row["published"] is None


def test_offline_without_the_model_says_how_to_get_it(ev, flores, tmp_path, monkeypatch):
    monkeypatch.setenv("LIQUIDLFM_OFFLINE", "1")
    monkeypatch.setenv("LIQUIDLFM_CACHE", str(tmp_path / "empty"))
    monkeypatch.delenv("LIQUIDLFM_MODEL", raising=False)
    with pytest.raises(SystemExit) as ei:
        ev.main(["--data", str(flores), "--quants", "Q5_K_M"])
    assert f"hf download gyung/{STEM}-GGUF {STEM}-Q5_K_M.gguf" in str(ei.value)
