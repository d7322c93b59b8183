"""Scholar fits every prompt to the model's context (liquidlfm/scholar/budget.py): excerpts shortened
first, then the lowest-ranked references left out, which the paragraph may then not cite; a clear
ContextFullError when not even one short reference fits. Under structured output a JSON answer's
bound is part of the budget: the grouping leaves papers out of its prompt and its schema until prompt
and answer fit.

Models here: the scripted chat fake of tests/fixtures/fake_lm.py (byte-level tokens, so a prompt
takes about four times the tokens LFM2's tokenizer would give it; its session refuses to hold more
than n_ctx tokens, like the engine) over the real paper corpus. It is a liquidlfm GenerationMixin
model, so with llguidance installed it answers under structured output; the free_text fixture hides
llguidance to run the free-text prompts. The real engine on a random-weight model runs the same
through the CLI in test_scholar_model.py."""
import re
import sys

import pytest
from hypothesis import given, settings, strategies as st

import liquidlfm
from liquidlfm.scholar import __main__ as scholar_cli
from liquidlfm.scholar import draft_related_work, load_corpus
from liquidlfm.scholar.budget import ContextBudget, excerpt, excerpt_lengths, fit_prompt
from liquidlfm.scholar.draft import SYSTEM, Theme, fit_paragraph, themes_schema
from liquidlfm.scholar.llm import PromptMeter, generate_text, json_max_tokens
from liquidlfm.scholar.rerank import KEYPHRASES_MAX_BYTES, ModelReranker, model_expansion_terms
from liquidlfm.scholar.verify import cited_keys
from tests.fixtures.fake_lm import FakeModel, FakeSession
from tests.fixtures.scholar_fakes import ByteTokenizer, ScriptedGenerator

IDEA = "unsupervised word alignment for neural machine translation"


@pytest.fixture(scope="module")
def template(shared_dir):
    return (shared_dir / "data" / "lfm2-tokenizer" / "chat_template.jinja").read_text()


@pytest.fixture(scope="module")
def papers(shared_dir):
    return load_corpus(shared_dir / "data" / "papers" / "acl2021.jsonl")


@pytest.fixture
def free_text(monkeypatch):
    """Without llguidance a liquidlfm model is asked in free text (parsed leniently)."""
    monkeypatch.setitem(sys.modules, "llguidance", None)


class CitingFake(FakeModel):
    """The chat fake with a context of n_ctx tokens that answers every prompt by citing P1..P12,
    shown or not, and records the user messages it answered."""

    def __init__(self, template, n_ctx):
        super().__init__(template, transform=self.answer)
        self.n_ctx = n_ctx
        self.seen = set()

    def answer(self, user):
        self.seen.add(user)
        return "These works [" + ", ".join(f"P{i}" for i in range(1, 13)) + "] matter."

    def session(self, n_ctx=None):
        return FakeSession(self, n_ctx or self.n_ctx)


class RecordingFake(CitingFake):
    """CitingFake that records every chat call: (user message, keyword arguments, prompt tokens)."""

    def __init__(self, template, n_ctx):
        super().__init__(template, n_ctx)
        self.calls = []

    def chat(self, messages, **kw):
        out = super().chat(messages, **kw)
        self.calls.append((messages[-1]["content"], kw, out.stats.prompt_tokens))
        return out


def word_count(prompt):
    return len(prompt.split())


def listing_prompt(kept, excerpts):
    return "Idea: an idea\n" + "\n".join(f"[R{i}] {e}" for i, e in zip(kept, excerpts))


ABSTRACTS = [" ".join(f"w{i}x{j}." if j % 10 == 9 else f"w{i}x{j}" for j in range(100)) for i in range(6)]


# ---- excerpts ----

def test_excerpt_keeps_whole_sentences_then_whole_words():
    text = "First sentence has five words. Second one is here too. Third."
    assert excerpt(text, 100) == text
    assert excerpt(text, 10) == "First sentence has five words. Second one is here too. …"
    assert excerpt(text, 8) == "First sentence has five words. …"
    assert excerpt("one two three four five six seven eight nine ten.", 4) == "one two three four …"
    assert excerpt("  spaced\n\tout   text  ", 10) == "spaced out text"
    assert excerpt("anything at all", 0) == "…"
    assert excerpt_lengths(110, 20) == [110, 77, 53, 37, 25, 20]
    assert excerpt_lengths(10, 20) == [10]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Zs", "Cc", "Zl", "Zp", "Cs")),
                        min_size=1, max_size=8), max_size=60),
       st.integers(min_value=1, max_value=70))
def test_excerpt_is_a_prefix_of_whole_words(words, max_words):
    text = " ".join(words)
    out = excerpt(text, max_words)
    cut = out != text               # not out.endswith(" …"): the text's own last word may be "…"
    assert not cut or out.endswith(" …")
    kept = (out[:-2] if cut else out).split()
    assert kept == words[:len(kept)] and len(kept) <= max_words   # never a part of a word (nor a code point)
    assert cut == (len(words) > max_words)
    assert 2 * len(kept) >= min(max_words, len(words)) or len(kept) == max_words


# ---- fit_prompt ----

def test_fit_prompt_keeps_everything_that_fits():
    full = fit_prompt(listing_prompt, ABSTRACTS, word_count, ContextBudget(10_000, 100), max_words=110)
    assert full.kept == list(range(6)) and full.shortened == 0 and full.dropped == 0
    assert full.note("x") == "" and full.n_tokens == word_count(full.prompt)


def test_fit_prompt_shortens_excerpts_before_leaving_references_out():
    # 6 references of 100 words in 10-word sentences: at 53 words each they take 3 + 6 * 52 = 315
    # words, at 37 (30 words of whole sentences) 3 + 6 * 32 = 195
    f = fit_prompt(listing_prompt, ABSTRACTS, word_count, ContextBudget(300, 60, margin=0), max_words=110)
    assert f.kept == list(range(6)) and f.max_words == 37 and f.shortened == 6 and f.n_tokens == 195
    note = f.note("the step")
    assert note.startswith("the step: 6 of 6 abstract excerpts cut to 37 words") and "left out" not in note
    # 120 words leave room for 5 references at 20 words (3 + 5 * 22 = 113), not 6: the lowest-ranked goes
    f = fit_prompt(listing_prompt, ABSTRACTS, word_count, ContextBudget(200, 80, margin=0), max_words=110)
    assert f.kept == [0, 1, 2, 3, 4] and f.dropped == 1 and f.n_tokens <= 120
    assert "the 1 lowest-ranked of 6 left out (R5)" in f.note("s", left_out=["R5"])


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=30, max_value=800), st.integers(min_value=0, max_value=6))
def test_fit_prompt_is_the_largest_prompt_that_fits(limit, n):
    texts = ABSTRACTS[:n]
    budget = ContextBudget(limit, 0, margin=0)
    lengths = excerpt_lengths(110, 20)
    try:
        f = fit_prompt(listing_prompt, texts, word_count, budget, max_words=110)
    except liquidlfm.ContextFullError as e:
        smallest = listing_prompt(list(range(min(1, n))), [excerpt(t, 20) for t in texts[:1]])
        assert word_count(smallest) > limit and f"has {word_count(smallest)} tokens" in str(e)
        return
    assert f.n_tokens == word_count(f.prompt) <= limit and f.kept == list(range(len(f.kept)))
    if f.dropped:   # one more reference would not fit even at the shortest excerpts
        more = len(f.kept) + 1
        assert word_count(listing_prompt(list(range(more)), [excerpt(t, 20) for t in texts[:more]])) > limit
    i = lengths.index(f.max_words)
    if i > 0:       # the next longer excerpt length would not fit
        longer = [excerpt(texts[k], lengths[i - 1]) for k in f.kept]
        assert word_count(listing_prompt(f.kept, longer)) > limit


def test_fit_prompt_counts_an_answer_that_grows_with_the_references():
    # an answer of 10 tokens a reference kept, plus 10 (JSON naming each key shown); a reference at 37
    # words takes 32 prompt words, at 25 or 20 words 22 (whole 10-word sentences), the prompt's head 3
    grow = lambda n: 10 * n + 10
    # 300 - 8 margin: all 6 at 37 words, 3 + 6 * 32 + 70 = 265 (at 53 words: 3 + 6 * 52 > 292)
    f = fit_prompt(listing_prompt, ABSTRACTS, word_count, ContextBudget(300, grow(6)), max_words=110,
                   answer_tokens=grow)
    assert f.kept == list(range(6)) and f.max_words == 37 and f.budget.max_tokens == 70
    # 160 - 8: 5 references take 3 + 5 * 22 + 60 = 173, 4 take 3 + 4 * 22 + 50 = 141; kept with the
    # answer bound of the 4, where the bound of all 6 (70) would leave room for only 3
    f = fit_prompt(listing_prompt, ABSTRACTS, word_count, ContextBudget(160, grow(6)), max_words=110,
                   answer_tokens=grow)
    assert f.kept == [0, 1, 2, 3] and f.budget.max_tokens == 50 and f.n_tokens == 91
    assert "(91 prompt tokens + 50 for the answer)" in f.note("s", left_out=["R4", "R5"])
    fixed = fit_prompt(listing_prompt, ABSTRACTS, word_count, ContextBudget(160, grow(6)), max_words=110)
    assert fixed.kept == [0, 1, 2] and fixed.budget.max_tokens == 70
    # even one reference at 20 words (25) with its answer (20) does not fit 40 - 8
    with pytest.raises(liquidlfm.ContextFullError, match="has 25 tokens, but the model's context holds 40 tokens, "
                                                         "20 of them kept for the answer"):
        fit_prompt(listing_prompt, ABSTRACTS, word_count, ContextBudget(40, grow(6)), max_words=110,
                   answer_tokens=grow)


def test_fit_prompt_errors_name_the_sizes():
    with pytest.raises(liquidlfm.ContextFullError) as e:
        fit_prompt(listing_prompt, ABSTRACTS, word_count, ContextBudget(40, 10), max_words=110, what="drafting")
    msg = str(e.value)
    assert msg.startswith("drafting: even the smallest prompt with 1 reference and 20-word excerpts has 25 tokens")
    assert "context holds 40 tokens, 10 of them kept for the answer and 8 as margin, which leaves 22" in msg
    with pytest.raises(liquidlfm.ContextFullError, match="holds 300 tokens, 300 of them kept for the answer"):
        fit_prompt(listing_prompt, ABSTRACTS, word_count, ContextBudget(300, 300), max_words=110)
    with pytest.raises(liquidlfm.ContextFullError, match="^expansion: the prompt has 4 tokens"):
        fit_prompt(lambda kept, ex: "one two three four", [], word_count, ContextBudget(5, 2, margin=0), max_words=0,
                   what="expansion")
    unmeasured = fit_prompt(listing_prompt, ABSTRACTS, None, None, max_words=50)   # nothing to measure with
    assert unmeasured.kept == list(range(6)) and unmeasured.n_tokens is None and unmeasured.max_words == 50


# ---- measuring prompts as the model receives them ----

@pytest.mark.parametrize("chat", [True, False])
def test_meter_counts_the_tokens_the_model_is_given(template, chat):
    for system in (SYSTEM, None):
        model = FakeModel(template if chat else None)
        meter = PromptMeter(model)
        assert meter.n_ctx == 4096 and meter.measurable
        user = "Research idea: 한국어 and emoji 🙂 <|im_start|> too"
        generate_text(model, user, system=system, max_tokens=1, n_ctx=meter.n_ctx)
        assert meter.count(user, system) == sum(model.prefilled)


def test_meter_of_plain_generators():
    gen = ScriptedGenerator()
    assert not PromptMeter(gen).measurable and PromptMeter(gen).budget(10) is None
    gen.tokenizer, gen.n_ctx = ByteTokenizer(), 500          # a generator that tells both
    meter = PromptMeter(gen)
    assert meter.measurable and meter.n_ctx == 500 and meter.count("abc", "sys") == 1 + len("sys\n\nabc")
    assert PromptMeter(gen, n_ctx=64).n_ctx == 64
    with pytest.raises(ValueError, match="n_ctx must be a positive int"):
        PromptMeter(gen, n_ctx=0)


# ---- every LLM step of Scholar ----

def test_reranker_shortens_each_abstract_to_fit(template, papers):
    model, said = CitingFake(template, 700), []
    scores = ModelReranker(model, progress=said.append)(IDEA, papers[:8])
    assert len(scores) == 8 and all(0.0 <= s <= 1.0 for s in scores)   # the session never overflowed
    assert len(said) == 1 and re.match(r"rerank: \d of 8 abstract excerpts shortened to fit the model's "
                                       r"700-token context", said[0])
    with pytest.raises(liquidlfm.ContextFullError, match="rerank prompt for .* context holds 300 tokens"):
        ModelReranker(CitingFake(template, 300))(IDEA, papers[:2])


def test_query_expansion_that_cannot_fit_says_so(template, papers, free_text):
    assert model_expansion_terms(CitingFake(template, 2048), IDEA) == [f"p{i}" for i in range(1, 13)]
    with pytest.raises(liquidlfm.ContextFullError, match="^query expansion: the prompt has \\d+ tokens, but the "
                                                         "model's context holds 300 tokens, 64 of them"):
        model_expansion_terms(CitingFake(template, 300), "an idea " * 20)


def test_structured_query_expansion_keeps_room_for_its_json_answer(template):
    model = RecordingFake(template, 2048)
    assert model_expansion_terms(model, IDEA)
    (_, kw, prompt_tokens), = model.calls
    assert kw["max_tokens"] == json_max_tokens(KEYPHRASES_MAX_BYTES) and kw["response_format"]["type"] == "json_schema"
    assert prompt_tokens + kw["max_tokens"] <= kw["n_ctx"] == 2048
    with pytest.raises(liquidlfm.ContextFullError, match=f"^query expansion: the prompt has \\d+ tokens, but the "
                                                         f"model's context holds 600 tokens, "
                                                         f"{json_max_tokens(KEYPHRASES_MAX_BYTES)} of them"):
        model_expansion_terms(CitingFake(template, 600), "an idea " * 20)


def test_smallest_paragraph_prompt_that_cannot_fit_names_the_sizes(template, papers):
    shorts = {f"P{i}": p for i, p in enumerate(papers[:4], 1)}
    meter = PromptMeter(CitingFake(template, 1000))
    with pytest.raises(liquidlfm.ContextFullError) as e:
        fit_paragraph(meter, IDEA, Theme("Alignment", list(shorts)), shorts, max_tokens=300)
    assert re.match(r"the paragraph on 'Alignment': even the smallest prompt with 1 reference and 20-word "
                    r"excerpts has \d+ tokens, but the model's context holds 1000 tokens, 300 of them kept for "
                    r"the answer and 8 as margin, which leaves 692 for the prompt; use a model with a longer "
                    r"context, a shorter idea, or a smaller max_tokens", str(e.value))


@pytest.mark.parametrize("structured", [False, True], ids=["free_text", "structured"])
@pytest.mark.parametrize("n_ctx,max_tokens", [(2048, 300), (1024, 100)])
def test_draft_in_a_small_context_cites_only_what_its_prompts_showed(template, papers, n_ctx, max_tokens,
                                                                     structured, monkeypatch):
    if not structured:
        monkeypatch.setitem(sys.modules, "llguidance", None)
    model, said = CitingFake(template, n_ctx), []
    d = draft_related_work(IDEA, papers=papers, model=model, top_k=12, max_tokens=max_tokens,
                           progress=said.append)
    assert d.retrieval.reranked and d.themes_by == "model"
    assert d.notes and all(n in said for n in d.notes) and any("left out" in n for n in d.notes)
    assert "\n".join(d.notes) in d.explain()
    paragraph_prompts = [u for u in model.seen if "Write one paragraph" in u]
    assert len(paragraph_prompts) == len(d.themes)
    for th in d.themes:
        shown = [re.findall(r"^\[(P\d+)\]", u, re.M) for u in paragraph_prompts if f"Theme: {th.name}\n" in u]
        assert shown == [th.prompt_keys] and set(th.prompt_keys) <= set(th.keys)
        cited = cited_keys(th.text)
        assert cited and set(cited) <= set(th.prompt_keys), (th.name, cited, th.prompt_keys)
        if structured:      # the paragraph grammar let it write only the keys its prompt showed
            assert not th.report.dropped, th.report.dropped
        else:               # it asked for every key, and those not shown were refused
            assert {x[0] for x in th.report.dropped} >= set(th.keys) - set(th.prompt_keys)
    assert set(d.cited) < {h.paper.key for h in d.retrieval.hits}   # some retrieved papers did not fit


def test_structured_grouping_leaves_papers_out_when_its_json_answer_does_not_fit(template, papers):
    """The grouping's JSON answer names every listed paper, so its bound (json_max_tokens of the
    schema's bytes) is part of the budget: in 1024 tokens the titles of all 12 papers plus the answer
    for 12 do not fit, so the lowest-ranked are left out of the prompt and of the schema's required
    keys (which shrinks the answer), and join the last theme; no call overflows the context."""
    model, said = RecordingFake(template, 1024), []
    d = draft_related_work(IDEA, papers=papers, model=model, top_k=12, max_tokens=100, progress=said.append)
    for _, kw, prompt_tokens in model.calls:
        assert prompt_tokens + kw["max_tokens"] <= kw["n_ctx"] == 1024
    (user, kw, _), = [c for c in model.calls if "Group these papers" in c[0]]
    listed = re.findall(r"^\[(P\d+)\]", user, re.M)
    schema = kw["response_format"]["json_schema"]["schema"]
    assert 1 <= len(listed) < 12 and listed == [f"P{i}" for i in range(1, len(listed) + 1)]
    assert all(alt["properties"]["papers"]["required"] == listed for alt in schema["anyOf"])
    assert kw["max_tokens"] == json_max_tokens(themes_schema(listed, 3)[1]) < json_max_tokens(
        themes_schema([f"P{i}" for i in range(1, 13)], 3)[1])
    note = next(n for n in d.notes if n.startswith("theme grouping:"))
    assert f"the {12 - len(listed)} lowest-ranked of 12 left out" in note and note in said
    assert d.themes_by == "model" and d.themes[-1].name == "Further related work"
    assert set(d.themes[-1].keys) >= {f"P{i}" for i in range(len(listed) + 1, 13)}


def test_cli_with_small_contexts(template, papers, shared_dir, monkeypatch, capsys, tmp_path):
    model = CitingFake(template, 2048)
    monkeypatch.setattr(scholar_cli, "load_model", lambda spec, progress=None: model)
    corpus = str(shared_dir / "data" / "papers" / "acl2021.jsonl")
    out = tmp_path / "related.md"
    assert scholar_cli.main([IDEA, "--corpus", corpus, "--model", "fake", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "left out" in err and "cannot be cited there" in err and out.read_text().count("### ") >= 2
    assert scholar_cli.main([IDEA, "--corpus", corpus, "--model", "fake", "--n-ctx", "1024",
                             "--max-tokens", "100", "--themes", "2", "--top-k", "6"]) == 0
    assert "1024-token context" in capsys.readouterr().err
    assert scholar_cli.main([IDEA, "--corpus", corpus, "--model", "fake", "--n-ctx", "1024"]) == 1
    err = capsys.readouterr().err
    assert re.search(r"error: .* has \d+ tokens, but the model's context holds 1024 tokens, 300 of them kept "
                     r"for the answer", err), err
    assert scholar_cli.main([IDEA, "--corpus", corpus, "--model", "fake", "--n-ctx", "0"]) == 2
