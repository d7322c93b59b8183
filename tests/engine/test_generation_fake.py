"""The generation layer (liquidlfm/generation/) on a small fake engine, so stop strings, UTF-8
streaming, context limits, prefix reuse, threads and interrupts are tested independently of the real
model (tests/engine/test_generation.py runs the real engine)."""
import _thread
import contextlib
import hashlib
import math
import pickle
import threading
import time

import numpy as np
import pytest

from liquidlfm.errors import ContextFullError
from liquidlfm.generation import (
    RECOMMENDED_SAMPLING,
    GenerationMixin,
    PrefixCache,
    StopMatcher,
    load_session,
    resolve_sampling,
    save_session,
)
from tests.fixtures.threads import assert_session_refuses_second_thread

SPECIALS = ["<|pad|>", "<|startoftext|>", "<|endoftext|>", "<|fim_pre|>", "<|fim_mid|>", "<|fim_suf|>",
            "<|im_start|>", "<|im_end|>", "<|tool_list_start|>", "<|tool_list_end|>", "<|tool_call_start|>",
            "<|tool_call_end|>", "<|tool_response_start|>", "<|tool_response_end|>"]
N_SPECIAL = len(SPECIALS)
N_TOK = N_SPECIAL + 256  # tokenizer size
N_VOCAB = N_TOK + 16     # embedding rows (the last 16 are padding: never sampled)


class FakeTokenizer:
    """Byte tokens (id = 14 + byte) plus LFM2's control tokens at LFM2's ids."""

    bos_id, eos_id, pad_id = 1, 7, None
    vocab_size = N_TOK

    def encode(self, text, add_special_tokens=True, parse_special=False):
        ids = [self.bos_id] if add_special_tokens else []
        i = 0
        while i < len(text):
            if parse_special:
                for j, s in enumerate(SPECIALS):
                    if text.startswith(s, i):
                        ids.append(j)
                        i += len(s)
                        break
                else:
                    ids.extend(N_SPECIAL + b for b in text[i].encode("utf-8"))
                    i += 1
            else:
                ids.extend(N_SPECIAL + b for b in text[i].encode("utf-8"))
                i += 1
        return ids

    def token_bytes(self, i):
        return SPECIALS[i].encode() if i < N_SPECIAL else bytes([i - N_SPECIAL])

    def decode_bytes(self, ids, skip_special_tokens=False):
        ids = [ids] if isinstance(ids, int) else ids
        return b"".join(self.token_bytes(i) for i in ids if not (skip_special_tokens and i < N_SPECIAL))

    def decode(self, ids):
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def token_type(self, i):
        return 3 if i < N_SPECIAL else 1


def text_ids(s):
    return [N_SPECIAL + b for b in s.encode("utf-8")]


class FakeSession:
    """Recurrent fake: the state is a hash of every token so far (like a conv state it cannot be
    rewound). Logits are random normal seeded by the state, or, when the model has a script, put the
    scripted token on top. Counts how many tokens were run."""

    def __init__(self, model, n_ctx):
        self.model = model
        self.n_ctx = n_ctx
        self.reset()
        self.n_run = 0
        self.prefix_cache = PrefixCache(self)

    def reset(self):
        self.pos = 0
        self.h = b""

    def _logits(self):
        m = self.model
        if m.script is not None:
            i = self.pos - m.script_start
            x = np.zeros(N_VOCAB, dtype=np.float32)
            x[m.script[i] if 0 <= i < len(m.script) else m.script[-1]] = 20.0
            x[N_TOK:] = 100.0  # padding rows would win if they were not banned
            return x
        seed = int.from_bytes(self.h[:8], "little")
        x = (np.random.default_rng(seed).standard_normal(N_VOCAB) * 3).astype(np.float32)
        if self.model.ascii_only:  # keep replies valid text so they re-tokenize to the same ids
            x[N_SPECIAL + 128:N_TOK] -= 50.0
            x[[2, 7]] -= 50.0  # and let max_tokens decide the length
        return x

    def _run(self, tok):
        if self.pos >= self.n_ctx:
            raise ContextFullError("fake context full")
        hook = self.model.on_token
        if hook is not None:
            hook(self)
        self.h = hashlib.sha256(self.h + int(tok).to_bytes(4, "little")).digest()
        self.pos += 1
        self.n_run += 1

    def prefill(self, ids):
        if self.pos + len(ids) > self.n_ctx:
            raise ContextFullError("fake context full")
        for t in ids:
            self._run(t)
        return self._logits()

    def step(self, tok):
        self._run(tok)
        if self.model.step_delay:
            time.sleep(self.model.step_delay)
        return self._logits()

    def save(self):
        return pickle.dumps((self.pos, self.h))

    def load(self, blob):
        pos, h = pickle.loads(blob)
        self.pos, self.h = pos, h

    def close(self):
        pass


class FakeConfig:
    n_vocab = N_VOCAB
    eos_id = 7


class FakeModel(GenerationMixin):
    blas = None  # no OpenBLAS (what `--stats` reports)

    def __init__(self, n_ctx=256, script=None, generation_config=None, chat_template=None, tokenizer=True):
        self.config = FakeConfig()
        self.tokenizer = FakeTokenizer() if tokenizer else None
        self.chat_template = chat_template
        self.generation_config = generation_config or {}
        self.default_n_ctx = n_ctx
        self.script = script
        self.script_start = 0
        self.on_token = None
        self.step_delay = 0.0
        self.ascii_only = True

    def session(self, n_ctx=None):
        return FakeSession(self, n_ctx or self.default_n_ctx)

    def run_script(self, prompt_ids, tokens, **kw):
        self.script = tokens
        self.script_start = len(prompt_ids)
        return self.stream(prompt_ids, temperature=0, session=self.session(), **kw)


GREEDY = dict(temperature=0, repetition_penalty=1.0)


def test_fakes_satisfy_the_generation_protocols():
    from liquidlfm.generation import CachedSession, GenerationHost, GenerationTokenizer

    m = FakeModel()
    assert isinstance(m, GenerationHost) and isinstance(m.tokenizer, GenerationTokenizer)
    assert isinstance(m.session(), CachedSession)


# ---- parameters ----

def test_defaults_are_liquid_recommendation_unless_generation_config_says_otherwise():
    sp = resolve_sampling({"bos_token_id": 1, "eos_token_id": 7})
    assert (sp.temperature, sp.min_p, sp.repetition_penalty) == (0.3, 0.15, 1.05)
    assert RECOMMENDED_SAMPLING == {"temperature": 0.3, "min_p": 0.15, "repetition_penalty": 1.05}
    sp = resolve_sampling({"temperature": 0.1, "top_k": 50, "top_p": 0.1, "repetition_penalty": 1.05})
    assert (sp.temperature, sp.top_k, sp.top_p, sp.min_p, sp.repetition_penalty) == (0.1, 50, 0.1, 0.0, 1.05)
    assert resolve_sampling({"do_sample": False}).temperature == 0.0
    sp = resolve_sampling({"temperature": 0.1}, temperature=0.9, min_p=0.3)
    assert (sp.temperature, sp.min_p) == (0.9, 0.3)


@pytest.mark.parametrize("kw,exc", [
    (dict(max_tokens=-1), ValueError), (dict(max_tokens=1.5), TypeError), (dict(top_p=2.0), ValueError),
    (dict(top_p=0.0), ValueError), (dict(temperature=math.nan), ValueError), (dict(top_k=-3), ValueError),
    (dict(min_p=-1.0), ValueError), (dict(repetition_penalty=0.0), ValueError), (dict(stop=[1]), TypeError),
    (dict(seed="a"), TypeError), (dict(logit_bias={N_VOCAB: 1.0}), ValueError), (dict(temperature="hot"), TypeError),
])
def test_bad_arguments_raise_at_call(kw, exc):
    m = FakeModel()
    with pytest.raises(exc):
        m.stream("hi", **kw)  # eager validation: no iteration needed


def test_bad_prompts():
    m = FakeModel()
    with pytest.raises(ValueError):
        m.generate([1, N_VOCAB])
    with pytest.raises(ValueError):
        m.generate([-1])
    with pytest.raises(TypeError):
        m.generate([1, 2.5])
    with pytest.raises(ValueError):
        m.generate([])
    with pytest.raises(TypeError):
        m.generate(b"bytes")
    with pytest.raises(ValueError, match="no tokenizer"):
        FakeModel(tokenizer=False).generate("text")
    # token ids work without a tokenizer (text is then empty, ids are reported)
    r = FakeModel(tokenizer=False).generate([1, 20, 30], max_tokens=4, **GREEDY)
    assert len(r.token_ids) == 4 and r == ""


# ---- determinism ----

def test_greedy_deterministic_and_seeded_sampling_reproducible():
    m = FakeModel()
    a = m.generate("Once upon", max_tokens=20, **GREEDY)
    b = m.generate("Once upon", max_tokens=20, **GREEDY)
    assert a.token_ids == b.token_ids and len(a.token_ids) == 20
    s1 = m.generate("Once upon", max_tokens=20, temperature=1.0, seed=5)
    s2 = FakeModel().generate("Once upon", max_tokens=20, temperature=1.0, seed=5)
    s3 = m.generate("Once upon", max_tokens=20, temperature=1.0, seed=6)
    assert s1.token_ids == s2.token_ids
    assert s1.token_ids != s3.token_ids


def test_padding_rows_are_never_sampled():
    m = FakeModel()
    r = _collect_chunks(m.run_script(text_ids("ab"), text_ids("xyz")))
    assert all(t < N_TOK for c in r for t in c.token_ids)
    assert "".join(c.text for c in r).startswith("xyz")


# ---- stopping ----

def _collect_chunks(it):
    return list(it)


def test_stop_token_by_id_is_not_emitted():
    m = FakeModel()
    chunks = _collect_chunks(m.run_script(text_ids("q"), text_ids("Hi there") + [7] + text_ids("junk")))
    assert "".join(c.text for c in chunks) == "Hi there"
    assert chunks[-1].finish_reason == "stop"
    assert all(c.finish_reason is None for c in chunks[:-1])
    assert chunks[-1].stats.generated_tokens == len("Hi there")
    assert 7 not in [t for c in chunks for t in c.token_ids[:-1]]
    # <|endoftext|> stops too
    chunks = _collect_chunks(m.run_script(text_ids("q"), text_ids("ok") + [2]))
    assert "".join(c.text for c in chunks) == "ok" and chunks[-1].finish_reason == "stop"


@pytest.mark.parametrize("stop,want", [
    ("world", "Hello "), (["xyz", "lo w"], "Hel"), ("!", "Hello world"), ("Hello", ""),
    (["d! S", "orl"], "Hello w"), ("absent", "Hello world! STOP here"), ("ST", "Hello world! "),
])
def test_stop_strings_across_token_boundaries(stop, want):
    m = FakeModel()
    out = "Hello world! STOP here"
    chunks = _collect_chunks(m.run_script(text_ids("p"), text_ids(out) + [7], stop=stop))
    text = "".join(c.text for c in chunks)
    assert text == want
    stops = [stop] if isinstance(stop, str) else stop
    # no chunk ever shows any part of a matched stop string
    for c in chunks:
        for s in stops:
            if s in out:
                assert s not in c.text
    assert chunks[-1].finish_reason == "stop"


def test_stop_string_prefix_that_does_not_complete_is_released():
    m = FakeModel()
    chunks = _collect_chunks(m.run_script(text_ids("p"), text_ids("abab_abc"), stop="abc", max_tokens=8))
    assert "".join(c.text for c in chunks) == "abab_"
    chunks = _collect_chunks(m.run_script(text_ids("p"), text_ids("abab_ab"), stop="abc", max_tokens=7))
    assert "".join(c.text for c in chunks) == "abab_ab"  # held tail flushed at the end
    assert chunks[-1].finish_reason == "length"


def test_utf8_streaming_never_splits_characters():
    m = FakeModel()
    s = "안녕하세요, world! 🙂👍🏽 é ñ 中文 ẞ"
    chunks = _collect_chunks(m.run_script(text_ids("p"), text_ids(s) + [7]))
    assert "".join(c.text for c in chunks) == s
    for c in chunks:
        assert "\ufffd" not in c.text
        c.text.encode("utf-8")  # every chunk is valid text on its own
    assert any(c.text == "" for c in chunks)  # multi-byte characters were held back


def test_utf8_stop_string_in_korean():
    m = FakeModel()
    chunks = _collect_chunks(m.run_script(text_ids("p"), text_ids("안녕하세요 세계") + [7], stop="세계"))
    assert "".join(c.text for c in chunks) == "안녕하세요 "


# ---- lengths and context ----

def test_max_tokens_and_zero():
    m = FakeModel()
    r = m.generate("abc", max_tokens=5, **GREEDY)
    assert len(r.token_ids) == 5 and r.finish_reason == "length"
    assert r.stats.generated_tokens == 5 and r.stats.prompt_tokens == 4
    r = m.generate("abc", max_tokens=0, **GREEDY)
    assert r == "" and r.token_ids == [] and r.finish_reason == "length"


def test_prompt_longer_than_context_raises_and_leaves_session_alone():
    m = FakeModel(n_ctx=8)
    s = m.session()
    m.generate("ab", max_tokens=2, session=s, **GREEDY)
    pos = s.pos
    with pytest.raises(ContextFullError, match="9 tokens"):
        m.generate("abcdefgh", session=s)  # 1 BOS + 8 bytes = 9 > 8
    assert s.pos == pos
    m.generate("abcdefg", max_tokens=1, session=s, **GREEDY)  # exactly 8: fits


def test_context_filling_during_generation_reports_length():
    m = FakeModel(n_ctx=12)
    s = m.session()
    r = m.generate("abcd", max_tokens=100, session=s, **GREEDY)  # 5 prompt tokens
    assert r.finish_reason == "length"
    assert s.pos == 12
    assert len(r.token_ids) == 12 - 5  # generation stops once a decode fills the context
    # a prompt that fills the context exactly still yields one (undecoded) token
    s2 = m.session()
    r = m.generate("abcdefghijk", max_tokens=100, session=s2, **GREEDY)  # 12 tokens
    assert r.finish_reason == "length" and len(r.token_ids) == 1 and s2.pos == 12


def test_stats():
    m = FakeModel()
    r = m.generate("hello", max_tokens=10, logit_bias={2: -math.inf, 7: -math.inf}, **GREEDY)
    st = r.stats
    assert st.prompt_tokens == 6 and st.prefilled_tokens + st.reused_tokens == 6 and st.generated_tokens == 10
    assert st.prompt_tps > 0 and st.generation_tps > 0
    assert set(st.as_dict()) >= {"prompt_tokens", "generated_tokens", "prompt_tps", "generation_tps"}


# ---- chat and prefix reuse ----

def test_chat_reuses_prefix_and_matches_a_fresh_run():
    m = FakeModel()
    s = m.session()
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    r1 = m.chat(msgs, max_tokens=12, session=s, **GREEDY)
    p1 = len(FakeTokenizer().encode(m.apply_chat_template(msgs), add_special_tokens=False, parse_special=True))
    assert r1.stats.reused_tokens == 0 and r1.stats.prefilled_tokens == p1
    msgs2 = msgs + [{"role": "assistant", "content": r1}, {"role": "user", "content": "More?"}]
    n_before = s.n_run
    r2 = m.chat(msgs2, max_tokens=12, session=s, **GREEDY)
    full2 = FakeTokenizer().encode(m.apply_chat_template(msgs2), add_special_tokens=False, parse_special=True)
    # everything up to the end of the first reply is reused
    assert r2.stats.reused_tokens == p1 + len(r1.token_ids)
    assert r2.stats.prefilled_tokens == len(full2) - r2.stats.reused_tokens
    assert s.n_run - n_before == r2.stats.prefilled_tokens + len(r2.token_ids)
    fresh = FakeModel().chat(msgs2, max_tokens=12, session=FakeModel().session(), **GREEDY)
    assert fresh.token_ids == r2.token_ids and fresh == r2


def test_chat_restores_snapshot_when_history_is_edited():
    m = FakeModel()
    s = m.session()
    msgs = [{"role": "user", "content": "Hi"}]
    r1 = m.chat(msgs, max_tokens=6, session=s, **GREEDY)
    p1 = r1.stats.prompt_tokens
    # the user edits the assistant's answer: the current state is no longer a prefix, the snapshot
    # taken after the first prompt is
    msgs2 = msgs + [{"role": "assistant", "content": "EDITED"}, {"role": "user", "content": "ok"}]
    r2 = m.chat(msgs2, max_tokens=6, session=s, **GREEDY)
    assert r2.stats.reused_tokens == p1
    fresh = FakeModel().chat(msgs2, max_tokens=6, session=FakeModel().session(), **GREEDY)
    assert fresh.token_ids == r2.token_ids
    # a different conversation: nothing reusable -> reset
    r3 = m.chat([{"role": "user", "content": "Other"}], max_tokens=3, session=s, **GREEDY)
    assert r3.stats.reused_tokens == 0


def test_same_prompt_twice_reuses_everything():
    m = FakeModel()
    s = m.session()
    a = m.chat([{"role": "user", "content": "Hi"}], max_tokens=5, session=s, **GREEDY)
    b = m.chat([{"role": "user", "content": "Hi"}], max_tokens=5, session=s, **GREEDY)
    assert b.stats.reused_tokens == b.stats.prompt_tokens and b.stats.prefilled_tokens == 0
    assert a.token_ids == b.token_ids


def test_cache_prefix_keeps_a_shared_prompt_prefix_in_the_sessions_cache():
    m = FakeModel()
    s = m.session()
    prefix = "System: answer briefly.\nUser: "
    r1 = m.generate(prefix + "first question", max_tokens=4, session=s, cache_prefix=prefix, **GREEDY)
    assert s.prefix_cache.tokens[:r1.stats.prompt_tokens] == FakeTokenizer().encode(prefix + "first question",
                                                                                     parse_special=True)
    n_prefix = len(FakeTokenizer().encode(prefix, parse_special=True))
    r2 = m.generate(prefix + "second one", max_tokens=4, session=s, cache_prefix=prefix, **GREEDY)
    # the first reply diverges from the second prompt: the prefix snapshot is restored, not re-run
    assert r2.stats.reused_tokens == n_prefix
    assert r2.token_ids == FakeModel().generate(prefix + "second one", max_tokens=4, **GREEDY).token_ids
    # a cache_prefix the prompt does not start with is ignored
    r3 = m.generate("unrelated", max_tokens=2, session=s, cache_prefix="nope", **GREEDY)
    assert r3.stats.reused_tokens == 0


def test_chat_stream_and_tools():
    m = FakeModel()
    tools = [{"name": "f", "description": "d", "parameters": {}}]
    chunks = list(m.chat([{"role": "user", "content": "x"}], tools=tools, stream=True, max_tokens=4, **GREEDY))
    assert chunks[-1].finish_reason == "length" and sum(len(c.token_ids) for c in chunks) == 4
    prompt = m.apply_chat_template([{"role": "user", "content": "x"}], tools=tools)
    assert '<|tool_list_start|>[{"name": "f", "description": "d", "parameters": {}}]<|tool_list_end|>' in prompt
    with pytest.raises(TypeError):
        m.chat([{"role": "user", "content": "x"}], bogus=1)


def test_model_template_is_used_when_present():
    m = FakeModel(chat_template="{{ bos_token }}{% for m in messages %}[{{ m.content }}]{% endfor %}")
    assert m.apply_chat_template([{"role": "user", "content": "x"}]) == "<|startoftext|>[x]"


# ---- state files ----

def test_save_and_load_session_file(tmp_path):
    m = FakeModel()
    s = m.session()
    msgs = [{"role": "user", "content": "Hi"}]
    r1 = m.chat(msgs, max_tokens=5, session=s, **GREEDY)
    path = tmp_path / "state.lfm"
    save_session(s, path)
    assert [p.name for p in tmp_path.iterdir()] == ["state.lfm"]  # no temp files left
    s2 = m.session()
    load_session(s2, path)
    msgs2 = msgs + [{"role": "assistant", "content": r1}, {"role": "user", "content": "next"}]
    r2 = m.chat(msgs2, max_tokens=5, session=s2, **GREEDY)
    assert r2.stats.reused_tokens > 0
    assert r2.token_ids == m.chat(msgs2, max_tokens=5, session=m.session(), **GREEDY).token_ids
    data = path.read_bytes()
    (tmp_path / "bad").write_bytes(data[:-3])
    with pytest.raises(ValueError):
        load_session(s2, tmp_path / "bad")
    (tmp_path / "bad2").write_bytes(b"garbage" * 10)
    with pytest.raises(ValueError):
        load_session(s2, tmp_path / "bad2")
    # model-level helpers on the thread's session
    m.generate("abc", max_tokens=2, **GREEDY)
    m.save_session(tmp_path / "t.lfm")
    m.reset_session()
    m.load_session(tmp_path / "t.lfm")


# ---- threads ----

def test_one_model_two_threads_each_with_its_own_session():
    m = FakeModel()
    prompts = ["first prompt", "second one"]
    want = {p: FakeModel().generate(p, max_tokens=30, **GREEDY).token_ids for p in prompts}
    got, errors = {}, []

    def run(p):
        try:
            for _ in range(3):
                got[p] = m.generate(p, max_tokens=30, **GREEDY).token_ids
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    m.step_delay = 0.001
    ts = [threading.Thread(target=run, args=(p,)) for p in prompts]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors and got == want


def test_same_session_from_two_threads_raises():
    m = FakeModel()
    s = m.session()
    it = m.stream("hello", max_tokens=50, session=s, **GREEDY)
    next(it)  # generation in progress: the session is busy
    assert_session_refuses_second_thread(m, s)
    rest = list(it)
    assert rest[-1].finish_reason == "length"
    m.generate("x", session=s, max_tokens=2)  # free again


# ---- interrupts ----

def keyboard_interrupt_at_call(model, n):
    """A context in which the model's n-th engine call raises KeyboardInterrupt (as Ctrl-C between
    engine calls would), expected to escape the block; the hook is removed afterwards."""
    calls = 0

    def hook(session):
        nonlocal calls
        calls += 1
        if calls == n:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def interrupted():
        model.on_token = hook
        try:
            with pytest.raises(KeyboardInterrupt):
                yield
        finally:
            model.on_token = None

    return interrupted()


def test_keyboard_interrupt_mid_generation_leaves_session_consistent():
    m = FakeModel()
    s = m.session()
    with keyboard_interrupt_at_call(m, 20):
        m.generate("interrupt me", max_tokens=50, session=s, **GREEDY)
    # usable again (not busy), and the result equals a fresh run
    r = m.generate("interrupt me", max_tokens=10, session=s, **GREEDY)
    assert r.token_ids == FakeModel().generate("interrupt me", max_tokens=10, **GREEDY).token_ids


def test_sigint_from_another_thread_stops_within_a_token(sigint_raises_keyboard_interrupt):
    m = FakeModel()
    m.step_delay = 0.005
    s = m.session()
    timer = threading.Timer(0.2, _thread.interrupt_main)
    timer.start()
    t0 = time.perf_counter()
    n = 0
    with pytest.raises(KeyboardInterrupt):
        for c in m.stream("go", max_tokens=100000, session=s, **GREEDY):
            n += 1
    assert time.perf_counter() - t0 < 5
    assert n > 0
    timer.join()
    r = m.chat([{"role": "user", "content": "after"}], max_tokens=5, session=s, **GREEDY)
    assert r.token_ids == FakeModel().chat([{"role": "user", "content": "after"}], max_tokens=5,
                                           session=FakeModel().session(), **GREEDY).token_ids


def test_interrupted_prefill_does_not_leave_stale_tokens():
    m = FakeModel()
    s = m.session()
    m.chat([{"role": "user", "content": "Hi"}], max_tokens=3, session=s, **GREEDY)
    with keyboard_interrupt_at_call(m, 5):
        m.chat([{"role": "user", "content": "a different and long question"}], max_tokens=3, session=s, **GREEDY)
    msgs = [{"role": "user", "content": "a different and long question"}]
    r = m.chat(msgs, max_tokens=5, session=s, **GREEDY)
    assert r.token_ids == FakeModel().chat(msgs, max_tokens=5, session=FakeModel().session(), **GREEDY).token_ids


def test_unused_tokens_are_never_sampled():
    class Tok(FakeTokenizer):
        def token_type(self, i):
            return 5 if i == N_SPECIAL + ord("x") else 1

    m = FakeModel()
    m.tokenizer = Tok()
    chunks = list(m.run_script(text_ids("p"), text_ids("axbx")))
    assert N_SPECIAL + ord("x") not in [t for c in chunks for t in c.token_ids]


# ---- properties of the text assembly ----

from hypothesis import assume, given, settings, strategies as hst  # noqa: E402



@settings(max_examples=300, deadline=None)
@given(text=hst.text(alphabet="ab c안🙂", max_size=40), stops=hst.lists(hst.text(alphabet="ab c안🙂", min_size=1,
       max_size=4), max_size=3), cuts=hst.lists(hst.integers(0, 40), max_size=10))
def test_stop_matcher_property(text, stops, cuts):
    """Whatever the chunking, the emitted text is the text before the first stop string to complete."""
    bounds = sorted({min(c, len(text)) for c in cuts} | {0, len(text)})
    m = StopMatcher(stops)
    out, hit = [], False
    for a, b in zip(bounds, bounds[1:]):
        piece, hit = m.push(text[a:b])
        out.append(piece)
        if hit:
            break
    if not hit:
        out.append(m.flush())
    # the stop string that completes first wins (ties: the one starting first)
    ends = [(text.find(s) + len(s), text.find(s)) for s in stops if s in text]
    first = min(ends)[1] if ends else -1
    want = text if first < 0 else text[:first]
    assert "".join(out) == want
    assert hit == (first >= 0)


@settings(max_examples=50, deadline=None)
@given(hst.text(max_size=30))
def test_streamed_text_equals_decode_for_any_unicode(s):
    m = FakeModel()
    ids = text_ids(s)
    assume(ids)  # an empty text generates nothing to compare
    chunks = list(m.run_script(text_ids("p"), ids + [7], max_tokens=len(ids) + 1))
    assert "".join(c.text for c in chunks) == s
    assert all("\ufffd" not in c.text for c in chunks) or "\ufffd" in s


def test_interrupted_long_prefill_keeps_the_part_done(monkeypatch):
    import liquidlfm.generation.cache as cache

    monkeypatch.setattr(cache, "PREFILL_CHUNK", 8)
    m = FakeModel()
    s = m.session()
    prompt = "x" * 40
    with keyboard_interrupt_at_call(m, 17):  # as the third chunk starts, like a SIGINT between engine calls
        m.generate(prompt, max_tokens=3, session=s, **GREEDY)
    r = m.generate(prompt, max_tokens=3, session=s, **GREEDY)
    assert r.stats.reused_tokens == 16  # two whole chunks survived the interrupt
    assert r.token_ids == FakeModel().generate(prompt, max_tokens=3, **GREEDY).token_ids
