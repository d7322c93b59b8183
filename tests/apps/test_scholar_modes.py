"""LFM-Scholar's own ways, with scripted models: the CiteAgent models by name, their
instruction/response drafting prompt with [AuthorYearKeyword] keys, and the agent search mode
(search_paper tool calls in LFM2's tokens, up to 5 rounds, results fed back as tool messages)."""
import json
import re

import pytest

from liquidlfm.scholar import Paper, draft_related_work
from liquidlfm.scholar.agent import SEARCH_TOOL, agent_search
from liquidlfm.scholar.corpus import finalize
from liquidlfm.scholar.draft import abstract_head, split_sections
from liquidlfm.scholar.keys import author_year_keys
from liquidlfm.scholar.models import MODELS, lookup, prompt_format_for
from liquidlfm.tool_calls import TOOL_CALL_END, TOOL_CALL_START
from tests.apps.test_scholar_verify import IDEA, check_invariants, make_papers
from tests.fixtures.scholar_fakes import ByteTokenizer


def call(*calls):
    return TOOL_CALL_START + "[" + ", ".join(calls) + "]" + TOOL_CALL_END


class ChatDouble:
    """A chat model double (GenerationModel): scripted replies when called with tools (the agent), a
    scripted theme grouping for the grouping prompt, and `draft` for a prompt sent as written
    (generate). Records every conversation, prompt and tools list it saw."""

    chat_template = "{{ messages }}"

    def __init__(self, replies=(), draft="", themes="", name="chat-double", tokenizer=None, n_ctx=None):
        self.replies, self.draft, self.themes, self.name = list(replies), draft, themes, name
        self.conversations, self.prompts, self.tools = [], [], []
        if tokenizer is not None:
            self.tokenizer = tokenizer
        if n_ctx is not None:
            self.n_ctx = n_ctx

    def apply_chat_template(self, messages, tools=None, add_generation_prompt=True, **kw):
        listing = f"tools: {json.dumps(tools)}\n" if tools else ""
        return listing + "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages) + \
            ("<|im_start|>assistant\n" if add_generation_prompt else "")

    def chat(self, messages, tools=None, **kw):
        if tools:
            self.tools.append(tools)
            self.conversations.append([dict(m) for m in messages])
            return self.replies.pop(0) if self.replies else "I have found enough papers."
        user = messages[-1]["content"]
        if "Group these papers" in user:
            return self.themes
        return ""

    def generate(self, prompt, max_tokens=None, **kw):
        self.prompts.append(prompt)
        return self.draft


# ---- the models ----

def test_known_models_and_their_prompt_formats():
    assert MODELS["cite-agent-2.6b"].spec == "gyung/LFM-CiteAgent-2.6B-GGUF:LFM2-2.6B-Exp.Q4_K_M.gguf"
    assert MODELS["cite-agent-1.2b"].spec == "gyung/LFM2.5-CiteAgent-1.2B-v1-GGUF:LFM2.5-1.2B-Instruct.Q4_K_M.gguf"
    assert lookup("Cite-Agent-2.6B") is MODELS["cite-agent-2.6b"] and lookup("nope") is None
    assert prompt_format_for("cite-agent-1.2b") == "cite-agent"
    assert prompt_format_for("/cache/models--gyung--LFM2.5-CiteAgent-1.2B-v1-GGUF/x.gguf") == "cite-agent"
    assert prompt_format_for("lfm2.5-1.2b-instruct") == "chat" and prompt_format_for("LiquidAI/LFM2-350M") == "chat"


def test_load_model_resolves_a_scholar_model_name(monkeypatch):
    import liquidlfm.hub as hub
    import liquidlfm.model as model_mod
    from liquidlfm.scholar import load_model

    seen = []

    class Loaded:
        pass

    monkeypatch.setattr(hub, "resolve_model", lambda spec, purpose: seen.append((spec, purpose)) or "/m.gguf")
    monkeypatch.setattr(model_mod, "load", lambda path: Loaded())
    m = load_model("cite-agent-2.6b")
    assert seen == [("gyung/LFM-CiteAgent-2.6B-GGUF:LFM2-2.6B-Exp.Q4_K_M.gguf", "chat")]
    assert m.name == "cite-agent-2.6b"
    load_model("some/repo-GGUF")
    assert seen[-1] == ("some/repo-GGUF", "chat")


# ---- [AuthorYearKeyword] keys ----

def test_author_year_keys_are_deterministic_and_unique():
    papers = make_papers()
    keys = author_year_keys(papers)
    assert keys == author_year_keys(make_papers())
    assert keys[:2] == ["Zhang2021Word", "Chen2021Mask"] and len(set(k.lower() for k in keys)) == len(keys)
    twins = [Paper(key="", title="Word Alignment", authors=("A Zhang",), year=2021)] * 3
    assert author_year_keys(twins) == ["Zhang2021Word", "Zhang2021WordAlignment", "Zhang2021WordAlignment2"]
    assert author_year_keys([Paper(key="", title="The On", authors=(), year=None)]) == ["AnonNDPaper"]


# ---- drafting in the CiteAgent format ----

THEMES = "Alignment models: P1, P2, P3\nTranslation: P4, P5, P6\n"


def test_cite_agent_draft_prompt_keys_and_verification():
    draft = ("### Alignment models\nBidirectional transformers align words [Zhang2021Word]. Masking helps "
             "[Chen2021Msk] and so do ghosts [Ghost2020Fake] (P9).\n\n"
             "### Translation\nStructure helps [Li2022Structural; Shi2021Bilingual]. Zhang2022Gaussian reads "
             "Gaussian attention.\n### Instruction:\nWrite more [Zhang2021Word].")
    model = ChatDouble(draft=draft, themes=THEMES, name="cite-agent-1.2b")
    d = draft_related_work(IDEA, papers=make_papers(), model=model, top_k=6, rerank=False, expand=False)
    check_invariants(d)
    assert d.prompt_format == "cite-agent" and "CiteAgent prompt format" in d.markdown()
    (prompt,) = model.prompts
    assert prompt.startswith("### Instruction:\n") and prompt.endswith("### Response:\n")
    assert "<|im_start|>" not in prompt                    # not the chat template
    keys = author_year_keys([h.paper for h in d.retrieval.hits])
    for k, h in zip(keys, d.retrieval.hits):
        assert f"[{k}] {h.paper.title}" in prompt
        assert abstract_head(h.paper.abstract) in prompt and len(abstract_head(h.paper.abstract)) <= 301
    assert re.search(r"- Alignment models: \[\w+\], \[\w+\], \[\w+\]", prompt)
    assert d.citeagent_keys == dict(zip([f"P{i}" for i in range(1, 7)], keys))
    a, b = d.themes
    by_key = {p.key: s for s, p in d.shorts.items()}
    mask_align = next(k for k, p in d.shorts.items() if p.title.startswith("Mask-Align"))
    assert a.report.repaired[0][:2] == ("Chen2021Msk", mask_align)
    assert {w for w, _ in a.report.dropped} == {"Ghost2020Fake", "P9"}
    assert "Write more" not in d.markdown()
    assert len({by_key[k] for k in d.cited}) >= 5


def test_cite_agent_format_can_be_chosen_for_any_model():
    model = ChatDouble(draft="Alignment [Zhang2021Word].", themes=THEMES)
    d = draft_related_work(IDEA, papers=make_papers(), model=model, top_k=6, rerank=False, expand=False,
                           prompt_format="cite-agent")
    assert d.prompt_format == "cite-agent" and model.prompts
    check_invariants(d)
    d = draft_related_work(IDEA, papers=make_papers(), model=ChatDouble(themes=THEMES, name="cite-agent-2.6b"),
                           top_k=6, rerank=False, expand=False, prompt_format="chat")
    assert d.prompt_format == "chat"
    with pytest.raises(ValueError, match="prompt_format must be"):
        draft_related_work(IDEA, papers=make_papers(), prompt_format="alpaca")


def test_split_sections():
    names = ["Word alignment", "Translation", "Lexicons"]
    text = "**Translation**\nB text.\n\n## Word Alignment\nA text.\nmore A.\n# Something else\nC text.\nD text."
    assert split_sections(text, names) == ["A text.\nmore A.", "B text.", "C text.\nD text."]
    assert split_sections("First.\n\nSecond.", names) == ["First.\nSecond.", "", ""]
    assert split_sections("x\n### Response:\ny", names)[0] == "x"
    assert split_sections("", names) == ["", "", ""]


# ---- agent search ----

def corpus_search(papers):
    from liquidlfm.scholar.retrieve import Index, retrieve
    index = Index(papers)
    queries = []

    def search(q):
        queries.append(q)
        return [h.paper for h in retrieve(q, index=index, top_k=3, expand=False).hits]
    return search, queries


def test_agent_calls_search_paper_and_gets_tool_messages():
    papers = make_papers()
    search, seen = corpus_search(papers)
    model = ChatDouble(replies=[
        call('search_paper(query="word alignment")'),
        "Next: " + call('search_paper(query="simultaneous translation")', 'lookup(x=1)'),
        call('search_paper(topic="none")'),
        "Enough.",
    ])
    out = agent_search(model, IDEA, search)
    assert out.rounds == 4 and out.queries == ["word alignment", "simultaneous translation"] == seen
    assert model.tools[0] == [SEARCH_TOOL]
    last = model.conversations[-1]
    assert [m["role"] for m in last] == ["system", "user", "assistant", "tool", "assistant", "tool", "tool",
                                         "assistant", "tool"]
    first_results = json.loads(last[3]["content"])
    assert len(first_results) == 3 and {"title", "authors", "year", "abstract"} <= set(first_results[0])
    assert "unknown tool 'lookup'" in last[6]["content"] and "needs query" in last[8]["content"]
    assert TOOL_CALL_START in last[2]["content"]           # the model's own call stays in its turn
    assert len(out.papers) == len({p.title for p in out.papers}) >= 3
    assert any("unknown tool" in n for n in out.notes)


def test_agent_stops_after_five_rounds():
    search, seen = corpus_search(make_papers())
    model = ChatDouble(replies=[call(f'search_paper(query="alignment {i}")') for i in range(9)])
    out = agent_search(model, IDEA, search)
    assert out.rounds == 5 and len(seen) == 5 and "after its 5 rounds" in out.notes[-1]


def test_agent_stops_when_the_conversation_fills_the_context():
    search, _ = corpus_search(make_papers())
    model = ChatDouble(replies=[call(f'search_paper(query="alignment {i}")') for i in range(9)],
                       tokenizer=ByteTokenizer(), n_ctx=2500)
    out = agent_search(model, IDEA, search, max_tokens=100)
    assert 1 <= out.rounds < 5 and "no longer fit the context of 2500" in out.notes[-1]


def test_agent_needs_a_chat_model():
    with pytest.raises(ValueError, match="chat model that can call tools"):
        agent_search(lambda p, max_tokens=0: "", IDEA, lambda q: [])
    with pytest.raises(ValueError, match="needs a model"):
        draft_related_work(IDEA, papers=make_papers(), search="agent")
    with pytest.raises(ValueError, match="search must be one of"):
        draft_related_work(IDEA, papers=make_papers(), search="deep")


def test_agent_draft_ranks_only_what_the_agent_found():
    extra = [Paper(key="", title="Dialogue State Tracking with Prompts", abstract="Few-shot dialogue state tracking.",
                   authors=("Ann Lee",), year=2022),
             Paper(key="", title="Protein Folding at Scale", abstract="Structure prediction of proteins.",
                   authors=("Bo Wu",), year=2021)]
    papers = finalize(make_papers() + extra)
    model = ChatDouble(replies=[call('search_paper(query="word alignment transformer")'),
                                call('search_paper(query="bilingual lexicon induction")'), "Done."],
                       themes="Alignment: P1, P2\nLexicons: P3\n")
    d = draft_related_work(IDEA, papers=papers, model=model, top_k=6, rerank=False, expand=False, search="agent")
    check_invariants(d)
    titles = {p.title for p in d.retrieved}
    assert "Protein Folding at Scale" not in titles and "Dialogue State Tracking with Prompts" not in titles
    assert len(model.conversations) == 3


def test_agent_that_never_searches_falls_back_to_classic():
    messages = []
    model = ChatDouble(replies=["I know the field already."], themes=THEMES)
    d = draft_related_work(IDEA, papers=make_papers(), model=model, top_k=6, rerank=False, expand=False,
                           search="agent", progress=messages.append)
    check_invariants(d)
    assert len(d.retrieved) == 6 and any("using the classic search instead" in m for m in messages)


def test_agent_searches_online_without_a_corpus(tmp_path, monkeypatch):
    from tests.apps.test_scholar_online import JSON_H, OPENALEX_BODY, Replay
    s = Replay({"/graph/v1/paper/search": [(500, {}, "down")], "/works": [(200, JSON_H, json.dumps(OPENALEX_BODY))]})
    try:
        monkeypatch.setenv("LIQUIDLFM_S2_URL", s.url + "/graph/v1")
        monkeypatch.setenv("LIQUIDLFM_OPENALEX_URL", s.url)
        monkeypatch.setenv("LIQUIDLFM_ARXIV_URL", s.url + "/api/query")
        import liquidlfm.scholar.online as online
        monkeypatch.setattr(online.time, "sleep", lambda x: None)
        model = ChatDouble(replies=[call('search_paper(query="gated convolutions")'), "Done."],
                           themes="Convolutions: P1, P2\n")
        d = draft_related_work("small language models with gated convolutions", model=model, top_k=3,
                               rerank=False, expand=False, search="agent", cache_dir=tmp_path)
        check_invariants(d)
        assert {p.source for p in d.retrieved} == {"openalex"} and s.count("/works") == 1
        assert s.count("/api/query") == 0
    finally:
        s.close()


# ---- command line ----

def test_cli_modes_and_their_errors(capsys, monkeypatch, tmp_path, shared_dir):
    from liquidlfm.scholar.__main__ import main
    corpus = str(shared_dir / "data" / "papers" / "acl2021.jsonl")
    assert main(["word alignment", "--corpus", corpus, "--search", "agent", "--no-model"]) == 2
    assert "--search agent needs a model" in capsys.readouterr().err
    assert main(["word alignment", "--corpus", corpus, "--search-rounds", "0"]) == 2
    assert "--search-rounds must be between 1 and 20" in capsys.readouterr().err
    monkeypatch.setenv("LIQUIDLFM_OFFLINE", "1")
    monkeypatch.setenv("LIQUIDLFM_CACHE", str(tmp_path))
    monkeypatch.delenv("LIQUIDLFM_MODEL", raising=False)
    assert main(["word alignment", "--corpus", corpus, "--model", "cite-agent-1.2b", "-q"]) == 2
    err = capsys.readouterr().err
    assert "gyung/LFM2.5-CiteAgent-1.2B-v1-GGUF:LFM2.5-1.2B-Instruct.Q4_K_M.gguf" in err


class Reply(str):
    """A reply with token ids, as liquidlfm's GenerationResult carries them."""

    def __new__(cls, text, token_ids):
        r = super().__new__(cls, text)
        r.token_ids = token_ids
        return r


class MarkerTokenizer:
    """<|tool_call_start|> is the single special token 7; everything else one id per byte + 300."""

    def encode(self, text, add_special_tokens=True, parse_special=True):
        if parse_special and text == TOOL_CALL_START:
            return [7]
        return [300 + b for b in text.encode()]


def test_only_the_tool_call_token_starts_a_call():
    search, seen = corpus_search(make_papers())
    text = call('search_paper(query="word alignment")')
    model = ChatDouble(replies=[Reply(text, [7, 300, 301]), Reply(text, [300, 301, 302]), "Done."],
                       tokenizer=MarkerTokenizer())
    out = agent_search(model, IDEA, search)
    assert seen == ["word alignment"] and out.rounds == 2        # the spelt-out call ended the search
    assert "spells a tool call in ordinary text" in out.notes[0]


def test_citation_in_a_heading_is_reported():
    assert split_sections("### Work [P9]\nText [P1].", ["Work"]) == ["### Work [P9]\nText [P1]."]
