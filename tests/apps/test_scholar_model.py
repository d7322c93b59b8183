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


@pytest.fixture(scope="module")
def short_context_models(tmp_path_factory):
    """The tiny model trained (config) for 2048 and for 1024 positions: the context Scholar must fit."""
    out = {}
    for n_ctx in (2048, 1024):
        out[n_ctx] = make_hf_model(tmp_path_factory.mktemp("scholar_ctx") / f"ctx{n_ctx}", vocab_size=1024,
                                   hidden_size=64, num_hidden_layers=4, seed=0, max_position_embeddings=n_ctx)
    return out


@pytest.mark.parametrize("n_ctx", [2048, 1024])
def test_cli_fits_prompts_to_a_short_context(short_context_models, shared_dir, tmp_path, n_ctx):
    """A new user's first run with a 2048- / 1024-token model used to die with ContextFullError ("the prompt
    has 3484 tokens"); now abstracts are shortened, then the lowest-ranked papers left out of that
    paragraph's prompt, and a paper left out is not cited in that paragraph."""
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, "-m", "liquidlfm.scholar", "cross-lingual named entity recognition with "
                        "few labels", "--corpus", str(shared_dir / "data" / "papers" / "naacl2022.jsonl"),
                        "--model", str(short_context_models[n_ctx]), "--explain", "--out", "related.md"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, PYTHONPATH=str(repo), HF_HUB_OFFLINE="1"))
    assert r.returncode == 0, r.stderr
    assert f"to fit the model's {n_ctx}-token context" in r.stderr
    short_to_bib = {f"P{int(n)}": k for n, k in re.findall(r"^ *(\d+)\. \[([^\]]+)\]", r.stderr, re.M)}
    assert len(short_to_bib) == 12
    sections = (tmp_path / "related.md").read_text().split("\n### ")[1:-1]      # the themes, not References
    left_out = {int(i): m for i, m in re.findall(r"\[scholar .*\] paragraph (\d+) \(.*left out \(([^)]*)\)",
                                                 r.stderr)}
    if n_ctx == 1024:
        assert left_out, r.stderr
    for i, keys in left_out.items():
        cited = set(re.findall(r"\(#ref-([^)]+)\)", sections[i - 1]))
        assert cited and not cited & {short_to_bib[k] for k in keys.split(", ")}, (sections[i - 1], keys)


def test_real_engine_draft_cites_only_what_the_prompts_showed(short_context_models, shared_dir):
    import re

    from liquidlfm.scholar.verify import cited_keys

    m = lfm.load(str(short_context_models[1024]))
    sent = []
    chat = m.chat

    def recording_chat(messages, **kw):                 # what reached the engine, and that it fit
        batch = bool(messages) and isinstance(messages[0], list)  # the paragraphs: one batched call
        for conv in (messages if batch else [messages]):
            sent.append(conv[-1]["content"])
        out = chat(messages, **kw)
        for r in (out if batch else [out]):
            assert r.stats.prompt_tokens + kw["max_tokens"] <= kw["n_ctx"] == 1024
        return out

    m.chat = recording_chat
    try:
        papers = load_corpus(shared_dir / "data" / "papers" / "naacl2022.jsonl")
        d = draft_related_work("cross-lingual named entity recognition with few labels", papers=papers, model=m,
                               top_k=12)
    finally:
        m.close()
    check_invariants(d)
    assert any("left out" in n for n in d.notes)
    for th in d.themes:
        prompt = next(u for u in sent if f"Theme: {th.name}\n" in u)
        assert re.findall(r"^\[(P\d+)\]", prompt, re.M) == th.prompt_keys
        assert set(cited_keys(th.text)) <= set(th.prompt_keys)


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


def test_agent_search_and_cite_agent_format_on_the_real_engine(tiny, shared_dir):
    """Both of LFM-Scholar's modes through the real engine: the agent's conversation rendered by the
    real chat template with the tool listed, the draft prompt sent without it. Random weights call
    no tool, so the classic search takes over; the point is that the loop, the raw prompt and the
    verifier run end to end and every citation stays grounded."""
    from liquidlfm.scholar.agent import SEARCH_TOOL, agent_search

    papers = load_corpus(shared_dir / "data" / "papers" / "acl2021.jsonl")
    messages = []
    d = draft_related_work("unsupervised word alignment for machine translation", papers=papers, model=tiny,
                           top_k=5, n_candidates=6, max_tokens=30, search="agent", max_search_rounds=2,
                           prompt_format="cite-agent", progress=messages.append)
    check_invariants(d)
    assert d.prompt_format == "cite-agent" and any("agent search" in m for m in messages)
    out = agent_search(tiny, "word alignment", lambda q: papers[:3], max_rounds=2, max_tokens=16)
    assert 1 <= out.rounds <= 2 and out.messages[-1]["role"] in ("assistant", "tool")
    rendered = tiny.apply_chat_template(out.messages, tools=[SEARCH_TOOL])
    assert "<|tool_list_start|>" in rendered and '"search_paper"' in rendered
