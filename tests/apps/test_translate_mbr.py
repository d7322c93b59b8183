"""quality="mbr": chrF (checked against sacrebleu), the minimum-Bayes-risk choice on known strings, and
the mechanics on a random-weight LFM2 (the samples come from one submit_n batch, a seed makes the
choice reproducible, N=1 is plain sampling with that seed). Random weights: no quality is measured."""
import warnings

import pytest

import liquidlfm as lfm
from liquidlfm.translate import TranslationTruncatedWarning, Translator, chrf, mbr_select
from liquidlfm.translate.mbr import utility_matrix
from tests.fixtures.fake_lm import FakeModel

PAIRS = [("The cat sat on the mat.", "The cat is on the mat."), ("오늘 날씨가 좋네요.", "오늘은 날씨가 좋습니다."),
         ("a", "b"), ("abc", "abc"), ("hello world", "world hello"), ("", "x"), ("x", ""), ("ab", "abcdefgh"),
         ("  spaced   out  ", "spacedout"), ("Liquid AI builds LFMs", "리퀴드 AI는 LFM을 만든다")]


@pytest.mark.parametrize("hyp,ref", PAIRS)
def test_chrf_equals_sacrebleu(hyp, ref):
    sacrebleu = pytest.importorskip("sacrebleu")
    assert chrf(hyp, ref) == pytest.approx(sacrebleu.sentence_chrf(hyp, [ref]).score, abs=1e-9)
    assert sacrebleu.CHRF().sentence_score(hyp, [ref]).score == pytest.approx(chrf(hyp, ref), abs=1e-9)


def test_mbr_picks_the_consensus():
    cands = ["a dog ran far away", "the cat sat on the mat", "the cat sat on a mat", "the cat is on the mat",
             "zzz"]
    u = utility_matrix(cands)
    assert all(u[i][i] == 0.0 for i in range(len(cands)))
    assert u[1][2] == chrf(cands[1], cands[2]) and u[2][1] == chrf(cands[2], cands[1])
    means = [sum(row) / (len(cands) - 1) for row in u]
    best = max(range(len(cands)), key=lambda i: means[i])
    assert mbr_select(cands) == best == 1  # the cat sentences agree; "the ... the mat" agrees with both
    assert mbr_select(["zzz", "zzz"]) == 0  # ties: the first
    assert mbr_select(["only one"]) == 0
    assert mbr_select(["x y", "q", "x y"]) == 0
    with pytest.raises(ValueError, match="at least one"):
        mbr_select([])


def test_mbr_on_a_model_that_does_not_batch(shared_dir):
    """The scripted model (no batch engine) runs the N samples one by one with seeds seed..seed+N-1."""
    fake = FakeModel((shared_dir / "data" / "lfm2-tokenizer" / "chat_template.jinja").read_text())
    assert lfm.translate("Hello there. Bye.", "ko", model=fake, quality="mbr", n_samples=3, seed=1) == \
        "HELLO THERE. BYE."
    with pytest.raises(ValueError, match="quality must be 'plain' or 'mbr'"):
        lfm.translate("hi", "ko", model=fake, quality="best")
    with pytest.raises(ValueError, match="n_samples must be a positive int"):
        lfm.translate("hi", "ko", model=fake, quality="mbr", n_samples=0)


# ---- a random-weight LFM2 (built with transformers) ----

@pytest.fixture
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TranslationTruncatedWarning)
        yield


@pytest.mark.reference
def test_mbr_mechanics_on_random_weights(tiny_chat_model, quiet):
    model = tiny_chat_model
    assert model.supports_batch
    text = "The weather is nice today. It may rain tomorrow."
    kw = dict(model=model, max_tokens=6, temperature=1.0, min_p=0.0, repetition_penalty=1.0)
    a = lfm.translate(text, "ko", quality="mbr", n_samples=4, seed=7, **kw)
    assert a == lfm.translate(text, "ko", quality="mbr", n_samples=4, seed=7, **kw)  # reproducible
    # N=1 is plain sampling with that seed
    for seed in (0, 3):
        assert lfm.translate(text, "ko", quality="mbr", n_samples=1, seed=seed, **kw) == \
            lfm.translate(text, "ko", seed=seed, **kw)
    # the choice is the MBR argmax among the N samples the batch draws for the piece
    tr = Translator(model)
    piece = "The weather is nice today."
    ids, budget = tr._piece_prompt(piece, "ko", None, None, 6)
    with model.batch(n_seq=4, n_ctx=tr.n_ctx) as engine:
        reqs = engine.submit_n(ids, 4, max_tokens=budget, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0,
                               repetition_penalty=1.0, seed=2)
        samples = [model.tokenizer.decode(r.result().token_ids, skip_special_tokens=True).strip() for r in reqs]
    assert len(set(samples)) == 4 and mbr_select(samples) != 0  # a real choice, not the first sample
    chosen = "".join(tr.iter_translate(piece, "ko", markdown=False, quality="mbr", n_samples=4, max_tokens=6,
                                       temperature=1.0, seed=2))
    assert chosen == samples[mbr_select(samples)]
    tr.close()


@pytest.mark.reference
def test_mbr_default_sampling_is_the_published_one(tiny_chat_model, quiet):
    """quality="mbr" without sampling arguments samples as the KoEn project evaluated (temperature 0.3,
    min_p 0.15, repetition_penalty 1.05): equal to passing those values."""
    kw = dict(model=tiny_chat_model, max_tokens=5, quality="mbr", n_samples=3, seed=11)
    assert lfm.translate("Good morning.", "ko", **kw) == lfm.translate(
        "Good morning.", "ko", temperature=0.3, min_p=0.15, repetition_penalty=1.05, **kw)
