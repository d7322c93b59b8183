"""LFM-Scholar with the real engine on a tiny random-weight LFM2 (tests/fixtures/hf_models.py): the
reranker reads real logits (prefix-cached through Session.save/load, checked against forward()), and a
full draft keeps every citation grounded. Random weights: nothing here measures quality."""
import numpy as np
import pytest

import liquidlfm as lfm
from liquidlfm.scholar import Paper, draft_related_work, load_corpus
from liquidlfm.scholar.rerank import ModelReranker
from tests.fixtures.hf_models import make_hf_model
from tests.apps.test_scholar_verify import check_invariants

pytestmark = pytest.mark.reference  # models are built with transformers


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = make_hf_model(tmp_path_factory.mktemp("scholar") / "tiny", vocab_size=1024, hidden_size=64,
                         num_hidden_layers=4, seed=0)
    m = lfm.load(str(path))
    yield m
    m.close()


def test_reranker_prefix_cache_matches_forward(tiny):
    papers = [Paper(key=f"k{i}", title=t, abstract=a) for i, (t, a) in enumerate([
        ("Word alignment with transformers", "We align words with attention."),
        ("Dialogue state tracking", "Few-shot dialogue state tracking with prompts."),
        ("Quantized inference", "Integer kernels for small language models on CPUs."),
    ])]
    rr = ModelReranker(tiny)
    cached = rr("alignment of words for translation", papers)

    class ForwardOnly:                      # the same model seen through forward() only
        tokenizer, chat_template = tiny.tokenizer, tiny.chat_template
        forward = staticmethod(tiny.forward)

        def apply_chat_template(self, *a, **k):
            return tiny.apply_chat_template(*a, **k)

    if not hasattr(tiny, "apply_chat_template"):
        del ForwardOnly.apply_chat_template
    plain = ModelReranker(ForwardOnly())("alignment of words for translation", papers)
    assert np.allclose(cached, plain, atol=1e-4), (cached, plain)
    assert all(0 < s < 1 for s in cached)


def test_full_draft_with_random_weight_lfm2(tiny, shared_dir):
    papers = load_corpus(shared_dir / "data" / "papers" / "acl2021.jsonl")
    d = draft_related_work("unsupervised word alignment for machine translation", papers=papers, model=tiny,
                           top_k=6, n_candidates=8, max_tokens=40)
    assert d.retrieval.reranked
    check_invariants(d)


def test_cli_with_random_weight_model_latex_compiles(tiny, shared_dir, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from tests.apps.test_scholar_output import bib_keys, compile_fragment

    repo = Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, "-m", "liquidlfm.scholar", "cross-lingual named entity recognition",
                        "--corpus", str(shared_dir / "data" / "papers" / "naacl2022.jsonl"), "--top-k", "5",
                        "--candidates", "6", "--max-tokens", "48", "--model", str(tiny.path),
                        "--format", "latex", "--out", "related.tex", "--explain"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, PYTHONPATH=str(repo), HF_HUB_OFFLINE="1"))
    assert r.returncode == 0, r.stderr
    assert "rerank" in r.stderr and "verified citations" in r.stderr
    tex = (tmp_path / "related.tex").read_text()
    cited = {k for line in tex.splitlines() for k in
             __import__("re").findall(r"\\cite\{([^}]*)\}", line) for k in k.split(",")}
    assert cited == set(bib_keys(tmp_path / "related.bib")) and cited
    compile_fragment(tmp_path, "related.tex", "related.bib")


def test_engine_model_answers_parse_under_structured_output(tiny, shared_dir):
    """The random-weight engine model writes noise, yet its grouping (JSON schema: every key once),
    its keyphrases (JSON schema) and its citations (paragraph grammar) all parse: the themes are the
    model's, and no bracket it wrote had to be dropped or repaired."""
    from liquidlfm.scholar.draft import model_themes
    from liquidlfm.scholar.rerank import model_expansion_terms

    papers = load_corpus(shared_dir / "data" / "papers" / "acl2021.jsonl")[:7]
    shorts = {f"P{i}": p for i, p in enumerate(papers, 1)}
    themes = model_themes(tiny, "unsupervised word alignment", shorts, max_themes=3)
    assert themes and sorted(k for t in themes for k in t.keys) == sorted(shorts)
    assert model_expansion_terms(tiny, "unsupervised word alignment")
    d = draft_related_work("unsupervised word alignment for machine translation", papers=papers, model=tiny,
                           top_k=6, n_candidates=7, max_tokens=60)
    check_invariants(d)
    assert d.themes_by == "model" and not d.report.dropped and not d.report.repaired
