"""Scholar's parsed steps under structured output: a liquidlfm model groups the papers, proposes
keyphrases and cites under a JSON schema / grammar (liquidlfm/generation/constrain.py), so even a
model writing noise gives answers that parse. RandomLM (seeded-noise logits, LFM2 test tokenizer,
tests/fixtures/random_lm.py) is a liquidlfm GenerationMixin model without the engine; the engine's
random-weight LFM2 runs the same in test_scholar_model.py (reference)."""
import json
import re
import sys

import numpy as np
import pytest

from liquidlfm.generation import Constraint
from liquidlfm.scholar import draft_related_work
from liquidlfm.scholar.draft import SYSTEM, code_themes, fit_paragraph, model_themes, paragraph_format, themes_schema
from liquidlfm.scholar.llm import PromptMeter, generate_text, json_max_tokens, supports_structured_output
from liquidlfm.scholar.verify import cited_keys
from liquidlfm.scholar.rerank import KEYPHRASES_MAX_BYTES, KEYPHRASES_SCHEMA, model_expansion_terms
from tests.apps.test_scholar_verify import IDEA, check_invariants, make_papers, shorts_of
from tests.fixtures.random_lm import RandomLM, make_random_lm
from tests.fixtures.scholar_fakes import ScriptedGenerator, TinyRandomLM


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    return make_random_lm(tmp_path_factory.mktemp("scholar_random_lm"))


def test_structured_output_is_used_only_where_it_works(lm, monkeypatch):
    assert supports_structured_output(lm)
    assert not supports_structured_output(TinyRandomLM(seed=0))  # generate()/chat() without response_format
    assert not supports_structured_output(ScriptedGenerator(paragraph="x"))
    monkeypatch.setitem(sys.modules, "llguidance", None)
    assert not supports_structured_output(lm)  # without the extra: free text, parsed leniently


@pytest.mark.parametrize("seed", range(4))
def test_noise_model_groups_every_paper_under_the_schema(lm, seed):
    """Noise in free text is an unusable grouping (code groups instead); under the schema it is a
    usable one: names that read as names, only the given keys, every paper placed."""
    noisy = RandomLM(lm.tokenizer, lm.chat_template, seed=seed)
    shorts = shorts_of(make_papers())
    themes = model_themes(noisy, IDEA, shorts, max_themes=3)
    assert themes, "the constrained grouping was unusable"
    placed = [k for t in themes for k in t.keys]
    assert sorted(placed) == sorted(shorts) and len(placed) == len(set(placed))
    for t in themes:
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9 ,&()'/-]{2,59}", t.name) or t.name == "Further related work"


def test_the_grouping_answer_always_completes_within_its_budget(lm):
    """themes_schema's byte bound holds: even the longest answers (one-byte tokens, never stopping
    early) complete within json_max_tokens(bound), so the JSON always parses."""
    keys = [f"P{i}" for i in range(1, 13)]
    for schema, bound in (themes_schema(keys, 3), (KEYPHRASES_SCHEMA, KEYPHRASES_MAX_BYTES)):
        rng = np.random.default_rng(0)
        for _ in range(10):
            c = Constraint.json_schema(lm.tokenizer, schema)
            bits, out = c.new_mask(), b""
            for _ in range(json_max_tokens(bound)):
                allowed = np.flatnonzero(np.unpackbits(c.fill_mask(bits).view(np.uint8),
                                                       bitorder="little")[:c.n_vocab])
                go_on = [int(t) for t in allowed if t not in c.stop_ids]
                if not go_on:
                    break
                shortest = min(len(lm.tokenizer.token_bytes(t)) for t in go_on)
                t = int(rng.choice([t for t in go_on if len(lm.tokenizer.token_bytes(t)) == shortest]))
                c.accept(t)
                out += lm.tokenizer.token_bytes(t)
            assert c.is_finished and len(out) <= bound, (len(out), bound)
            json.loads(out)


def test_noise_model_keyphrases_parse(lm):
    for seed in range(3):
        noisy = RandomLM(lm.tokenizer, lm.chat_template, seed=seed)
        terms = model_expansion_terms(noisy, IDEA)
        assert terms and all(isinstance(t, str) and t for t in terms)


@pytest.mark.parametrize("n_ctx", [None, 800])
def test_paragraph_citations_are_only_keys_its_prompt_showed(lm, n_ctx):
    """Under the paragraph grammar every bracket the model opens is a citation group of the keys its
    prompt showed (in 800 tokens only some of the theme's papers fit): the verifier has nothing to
    drop or repair."""
    shorts = shorts_of(make_papers())
    theme = code_themes(shorts, 2)[0]
    fitted, keys = fit_paragraph(PromptMeter(lm, n_ctx), IDEA, theme, shorts, max_tokens=150)
    shown = [keys[i] for i in fitted.kept]
    assert shown == re.findall(r"^\[(P\d+)\]", fitted.prompt, re.M)
    if n_ctx is not None:
        assert fitted.dropped, "the small context did not leave any paper out"
    cited_any = False
    for seed in range(6):
        raw = generate_text(lm, fitted.prompt, system=SYSTEM, max_tokens=150, seed=seed, n_ctx=n_ctx,
                            temperature=1.0, response_format=paragraph_format(shown))
        assert "\n" not in raw and "\\" not in raw
        groups = re.findall(r"\[([^\]]*)\]", raw)
        assert raw.count("[") == raw.count("]") == len(groups), raw
        for g in groups:
            assert all(k in shown for k in g.split(", ")), (g, shown)
        cited_any = cited_any or bool(groups)
    assert cited_any, "no citation in 6 noisy paragraphs"


def test_noise_model_full_draft_keeps_the_invariants(lm):
    d = draft_related_work(IDEA, papers=make_papers(), model=lm, top_k=6, max_tokens=60, n_candidates=6)
    check_invariants(d)
    assert d.themes_by == "model"
    assert not d.report.dropped and not d.report.repaired  # its brackets only ever held given keys


def test_noise_model_draft_in_a_small_context_cites_only_what_its_prompts_showed(lm):
    """Fitting and structured output together: in 600 tokens papers are left out of the grouping (its
    JSON answer's bound counted) and of a paragraph's prompt, and the grammar of each paragraph holds
    only the keys its prompt showed, so nothing is dropped."""
    d = draft_related_work(IDEA, papers=make_papers(), model=lm, top_k=6, max_tokens=60, n_candidates=6,
                           n_ctx=600)
    check_invariants(d)
    assert any(n.startswith("theme grouping:") and "left out" in n for n in d.notes), d.notes
    assert any(n.startswith("paragraph") and "left out" in n for n in d.notes), d.notes
    assert not d.report.dropped and not d.report.repaired
    for th in d.themes:
        assert set(cited_keys(th.text)) <= set(th.prompt_keys) <= set(th.keys)
