"""The apps on the rest of the LFM family: the translator, chat and LFM-Scholar drive an LFM2-MoE and an
LFM3 model through the same public API as an LFM2 one (random weights with the test tokenizer, so only
the plumbing is checked: every request ends, and Scholar's citations stay grounded)."""
import warnings

import pytest

import liquidlfm as lfm
from liquidlfm.scholar import draft_related_work, load_corpus
from liquidlfm.translate import TranslationTruncatedWarning
from tests.apps.test_scholar_verify import check_invariants
from tests.fixtures.hf_models import make_lfm3_hf_model, make_moe_hf_model

pytestmark = pytest.mark.reference  # models are built with transformers

C, A, S = "conv", "full_attention", "sliding_attention"


@pytest.fixture(scope="module", params=["lfm2moe", "lfm3"])
def family_model(request, tmp_path_factory):
    dest = tmp_path_factory.mktemp(request.param)
    if request.param == "lfm2moe":
        path = make_moe_hf_model(dest, vocab_size=1024, hidden_size=64, num_hidden_layers=4, layer_types=[C, A, C, A],
                                 num_experts=4, num_experts_per_tok=2, num_dense_layers=1, seed=7, tokenizer=True)
    else:
        path = make_lfm3_hf_model(dest, vocab_size=1024, hidden_size=64, num_hidden_layers=4,
                                  layer_types=[C, S, A, S], sliding_window=8, seed=7, tokenizer=True)
    model = lfm.load(str(path))
    yield request.param, model
    model.close()


def test_chat_and_translator(family_model):
    arch, model = family_model
    assert (model.config.n_expert, model.config.arch) == ((4, "lfm2") if arch == "lfm2moe" else (0, "lfm3"))
    reply = model.chat([{"role": "user", "content": "Hi!"}], max_tokens=8, temperature=0)
    assert reply.finish_reason in ("stop", "length") and len(reply.token_ids) >= 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TranslationTruncatedWarning)  # random weights never say <|im_end|>
        one = lfm.translate("The weather is nice today.", "ko", model=model, max_tokens=6)
        many = list(lfm.translate(["The weather is nice today.", "오늘 날씨가 좋네요."], model=model, max_tokens=6))
    assert isinstance(one, str) and many[0] == one and isinstance(many[1], str)


def test_scholar_draft_stays_grounded(family_model, shared_dir):
    _, model = family_model
    papers = load_corpus(shared_dir / "data" / "papers" / "acl2021.jsonl")
    d = draft_related_work("unsupervised word alignment for machine translation", papers=papers, model=model,
                           top_k=6, n_candidates=8, max_tokens=40)
    check_invariants(d)
