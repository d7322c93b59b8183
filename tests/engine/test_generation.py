"""Generation on the real engine with a small random-weight LFM2 (tests/fixtures/hf_models.py) and the
LFM2-like test tokenizer: parity with transformers' generate(), seeds, stop strings, UTF-8 streaming,
context limits, chat prefix reuse, threads, Ctrl-C, state files, the CLI."""
import _thread
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import liquidlfm as lfm
from liquidlfm.errors import ContextFullError
from tests.fixtures.hf_models import load_hf_model, make_hf_model
from tests.fixtures.threads import assert_session_refuses_second_thread

pytestmark = pytest.mark.reference  # models are built with transformers

REPO = Path(__file__).resolve().parents[2]
VOCAB = 1024
GREEDY = dict(temperature=0, repetition_penalty=1.0)
PROMPTS = ["Once upon a time", "안녕하세요, 오늘 날씨는", "def fibonacci(n):\n    "]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_hf_model(tmp_path_factory.mktemp("gen"), vocab_size=VOCAB, hidden_size=64, num_hidden_layers=4,
                         layer_types=["conv", "full_attention", "conv", "full_attention"], num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=128, seed=3, tokenizer=True)


@pytest.fixture(scope="module")
def model(model_dir):
    m = lfm.load(model_dir)
    assert m.tokenizer is not None and m.chat_template
    yield m
    m.close()


@pytest.fixture(scope="module")
def hf(model_dir):
    return load_hf_model(model_dir)


def hf_greedy(hf, ids, n, repetition_penalty=1.0):
    import torch

    with torch.no_grad():
        out = hf.generate(torch.tensor([ids]), max_new_tokens=n, do_sample=False, repetition_penalty=repetition_penalty,
                          eos_token_id=[2, 7], pad_token_id=0, attention_mask=torch.ones(1, len(ids), dtype=torch.long))
    return out[0, len(ids):].tolist()


# ---- parity with transformers ----

@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_matches_transformers_generate(model, hf, prompt):
    ids = model.tokenizer.encode(prompt)
    want = hf_greedy(hf, ids, 24)
    r = model.generate(prompt, max_tokens=24, **GREEDY)
    got = r.token_ids
    if r.finish_reason == "stop":  # transformers returns the eos token, we do not
        got = got + [want[len(got)]]
    assert got == want
    assert r == model.tokenizer.decode([t for t in r.token_ids])


def test_repetition_penalty_matches_transformers(model, hf):
    ids = model.tokenizer.encode(PROMPTS[0])
    want = hf_greedy(hf, ids, 24, repetition_penalty=1.3)
    r = model.generate(ids, max_tokens=24, temperature=0, repetition_penalty=1.3)
    got = r.token_ids + ([want[len(r.token_ids)]] if r.finish_reason == "stop" else [])
    assert got == want


# ---- sampling ----

def test_seeded_sampling_is_reproducible_across_runs_and_processes(model, model_dir):
    kw = dict(max_tokens=30, temperature=1.0, top_k=50, top_p=0.95, min_p=0.02, seed=1234)
    a = model.generate(PROMPTS[0], **kw)
    b = model.generate(PROMPTS[0], **kw)
    c = model.generate(PROMPTS[0], **{**kw, "seed": 1235})
    assert a.token_ids == b.token_ids
    assert a.token_ids != c.token_ids
    code = ("import liquidlfm as lfm, sys; m = lfm.load(sys.argv[1]);"
            "print(m.generate(%r, max_tokens=30, temperature=1.0, top_k=50, top_p=0.95, min_p=0.02, seed=1234)"
            ".token_ids)" % PROMPTS[0])
    out = subprocess.run([sys.executable, "-c", code, str(model_dir)], capture_output=True, text=True, timeout=300,
                         cwd=str(REPO))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(a.token_ids)


def test_model_satisfies_the_generation_protocols(model):
    from liquidlfm.generation import CachedSession, GenerationHost, GenerationTokenizer
    from liquidlfm.translate import TranslationModel

    assert isinstance(model, GenerationHost) and isinstance(model, TranslationModel)
    assert isinstance(model.tokenizer, GenerationTokenizer)
    with model.session() as s:
        assert isinstance(s, CachedSession) and s.prefix_cache.session is s


def test_default_sampling_runs(model):
    r = model.generate(PROMPTS[1], max_tokens=10, seed=0)
    assert r.finish_reason in ("stop", "length") and r.stats.generated_tokens == len(
        [t for t in r.token_ids if t not in (2, 7)])


# ---- streaming, stops ----

def test_stream_chunks_join_to_decode_and_carry_stats(model):
    chunks = list(model.stream(PROMPTS[1], max_tokens=40, temperature=1.5, seed=7))
    ids = [t for c in chunks for t in c.token_ids]
    text = "".join(c.text for c in chunks)
    gen_ids = [t for t in ids if t not in (2, 7)]
    assert text == model.tokenizer.decode(gen_ids)
    # (a random model may emit genuinely invalid UTF-8; chunking must not add replacement characters)
    assert text.count("\ufffd") == model.tokenizer.decode(gen_ids).count("\ufffd")
    for c in chunks[:-1]:
        assert c.finish_reason is None
    last = chunks[-1]
    assert last.finish_reason in ("stop", "length")
    st = last.stats
    assert st.prompt_tokens == len(model.tokenizer.encode(PROMPTS[1]))
    assert st.generated_tokens == len(gen_ids) and st.prompt_tps > 0 and st.generation_tps > 0


def test_stop_string_across_token_boundary(model):
    base = model.generate(PROMPTS[0], max_tokens=30, **GREEDY)
    pieces = [model.tokenizer.decode([t]) for t in base.token_ids]
    # a stop string that starts inside one token and ends inside the next
    pos = 0
    stop = None
    for i in range(len(pieces) - 1):
        a, b = pieces[i], pieces[i + 1]
        if len(a) >= 2 and len(b) >= 1 and pos > 0:
            stop = a[-1] + b[0]
            break
        pos += len(a)
    assert stop is not None, pieces
    chunks = list(model.stream(PROMPTS[0], max_tokens=30, stop=[stop, "\x00never"], **GREEDY))
    text = "".join(c.text for c in chunks)
    assert text == base[:base.index(stop)]
    assert all(stop not in c.text for c in chunks)
    assert chunks[-1].finish_reason == "stop"


def test_control_tokens_stop_by_id(model):
    # ban everything but <|im_end|> after a few tokens: forcing the stop token via logit_bias
    r = model.generate(PROMPTS[0], max_tokens=10, logit_bias={7: 100.0}, **GREEDY)
    assert r.finish_reason == "stop" and r == "" and r.token_ids == []  # the stop token is not returned


# ---- context ----

def test_prompt_too_long_raises_context_full(model):
    ids = model.tokenizer.encode("hello " * 40)
    with model.session(n_ctx=16) as s:
        with pytest.raises(ContextFullError):
            model.generate(ids, session=s)
        assert s.pos == 0


def test_context_fills_during_generation(model):
    with model.session(n_ctx=24) as s:
        ids = model.tokenizer.encode(PROMPTS[0])
        r = model.generate(ids, max_tokens=100, session=s, logit_bias={2: -1e9, 7: -1e9}, **GREEDY)
        assert r.finish_reason == "length"
        assert s.pos == 24
        assert len(r.token_ids) == 24 - len(ids)  # stops once a decode fills the context


# ---- chat and sessions ----

def _count_prefills(session):
    seen = []
    orig = session.prefill

    def prefill(ids):
        seen.append(len(ids))
        return orig(ids)

    session.prefill = prefill
    return seen


def _repeatable_token(tok):
    """A token t whose text repeated re-tokenizes to t repeated (so a reply made of it survives the
    text round trip of the chat history)."""
    for t in range(20, VOCAB):
        s = tok.decode([t])
        if s.startswith(" ") and s[1:].isalpha() and tok.encode(s * 12, add_special_tokens=False) == [t] * 12:
            return t
    pytest.fail("no repeatable token in the test vocabulary")


def test_chat_prefix_reuse_prefills_only_new_tokens(model):
    msgs = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hello there"}]
    t = _repeatable_token(model.tokenizer)
    kw = dict(max_tokens=12, logit_bias={t: 1000.0}, **GREEDY)  # the reply is t * 12
    with model.session(n_ctx=512) as s:
        seen = _count_prefills(s)
        r1 = model.chat(msgs, session=s, **kw)
        assert r1.token_ids == [t] * 12
        msgs2 = msgs + [{"role": "assistant", "content": str(r1)}, {"role": "user", "content": "And then?"}]
        r2 = model.chat(msgs2, session=s, **GREEDY, max_tokens=12)
        p2 = model.tokenizer.encode(model.apply_chat_template(msgs2), add_special_tokens=False)
        # reused: the first prompt and the whole reply
        assert r2.stats.reused_tokens == r1.stats.prompt_tokens + 12
        assert seen[-1] == r2.stats.prefilled_tokens == len(p2) - r2.stats.reused_tokens
        # a reply that does not survive re-tokenization: the snapshot after the first prompt is used
        msgs3 = msgs + [{"role": "assistant", "content": "edited ✓"}, {"role": "user", "content": "ok"}]
        r3 = model.chat(msgs3, session=s, **GREEDY, max_tokens=12)
        assert r3.stats.reused_tokens == r1.stats.prompt_tokens
    for m, r in ((msgs2, r2), (msgs3, r3)):
        with model.session(n_ctx=512) as fresh:
            assert model.chat(m, session=fresh, **GREEDY, max_tokens=12).token_ids == r.token_ids


def test_chat_with_tools_and_stream(model):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    chunks = list(model.chat([{"role": "user", "content": "Weather?"}], tools=tools, stream=True, max_tokens=5,
                             seed=0))
    assert chunks[-1].finish_reason in ("stop", "length")
    assert "<|tool_list_start|>" in model.apply_chat_template([{"role": "user", "content": "x"}], tools=tools)


def test_session_state_file_roundtrip(model, tmp_path):
    msgs = [{"role": "user", "content": "Tell me a story"}]
    kw = dict(max_tokens=8, **GREEDY)
    with model.session(n_ctx=256) as s:
        r1 = model.chat(msgs, session=s, logit_bias={_repeatable_token(model.tokenizer): 1000.0}, **kw)
        lfm.generation.save_session(s, tmp_path / "s.state")
    msgs2 = msgs + [{"role": "assistant", "content": str(r1)}, {"role": "user", "content": "More"}]
    with model.session(n_ctx=256) as s2:
        lfm.generation.load_session(s2, tmp_path / "s.state")
        r2 = model.chat(msgs2, session=s2, **kw)
        assert r2.stats.reused_tokens == r1.stats.prompt_tokens + 8
    with model.session(n_ctx=256) as s3:
        assert model.chat(msgs2, session=s3, **kw).token_ids == r2.token_ids


# ---- threads and interrupts ----

def test_two_threads_two_sessions_one_model(model):
    want = {p: model.generate(p, max_tokens=20, **GREEDY).token_ids for p in PROMPTS[:2]}
    got, errors = {}, []

    def run(p):
        try:
            with model.session(n_ctx=128) as s:
                for _ in range(2):
                    got[p] = model.generate(p, max_tokens=20, session=s, **GREEDY).token_ids
        except Exception as e:
            errors.append(e)

    ts = [threading.Thread(target=run, args=(p,)) for p in PROMPTS[:2]]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors and got == want


def test_one_session_two_threads_raises(model):
    with model.session(n_ctx=256) as s:
        it = model.stream(PROMPTS[0], max_tokens=50, session=s, **GREEDY)
        next(it)
        assert_session_refuses_second_thread(model, s)
        list(it)


def test_keyboard_interrupt_leaves_session_consistent(model, sigint_raises_keyboard_interrupt):
    with model.session(n_ctx=4096) as s:
        timer = threading.Timer(0.3, _thread.interrupt_main)
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            for _ in model.stream(PROMPTS[0], max_tokens=100000, session=s, logit_bias={2: -1e9, 7: -1e9},
                                  **GREEDY):
                pass
        timer.join()
        r = model.generate(PROMPTS[2], max_tokens=10, session=s, **GREEDY)
    assert r.token_ids == model.generate(PROMPTS[2], max_tokens=10, **GREEDY).token_ids


# ---- CLI ----

def test_cli_generate_and_chat(model, model_dir):
    want = model.generate(PROMPTS[0], max_tokens=12, **GREEDY)
    r = subprocess.run([sys.executable, "-m", "liquidlfm", "generate", "-m", str(model_dir), "-n", "12",
                        "--temperature", "0", "--repetition-penalty", "1.0", PROMPTS[0]],
                       capture_output=True, text=True, timeout=300, cwd=str(REPO))
    assert r.returncode == 0, r.stderr
    assert r.stdout == want + "\n"
    r = subprocess.run([sys.executable, "-m", "liquidlfm", "chat", "-m", str(model_dir), "-n", "6", "--seed", "1",
                        "--stats"], input="hi\n/reset\nhello\n/exit\n", capture_output=True, text=True, timeout=300,
                       cwd=str(REPO))
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("generated") == 2
    import liquidlfm
    assert r.stderr.count(f"kernels {liquidlfm.kernel_level} (float {liquidlfm.float_kernels})") == 2, r.stderr
    # the F32 test model runs prefill on OpenBLAS (a test dependency) unless LFM_BLAS=0 or LFM_KERNELS=ref
    blas = liquidlfm.blas
    assert r.stderr.count(f"blas {' '.join(blas.split()[:2])} (auto)" if blas else "blas off") == 2, r.stderr
    r = subprocess.run([sys.executable, "-m", "liquidlfm", "generate", "-m", str(model_dir / "missing"), "x"],
                       capture_output=True, text=True, timeout=300, cwd=str(REPO))
    assert r.returncode == 1 and "error" in r.stderr and "Traceback" not in r.stderr


# ---- GGUF: tokenizer, chat template and generation from the GGUF metadata ----

@pytest.fixture(scope="module")
def gguf_model(model_dir, tmp_path_factory):
    from tests.fixtures.gguf_models import hf_to_gguf

    path = hf_to_gguf(model_dir, tmp_path_factory.mktemp("gguf") / "m-f32.gguf", "f32")
    m = lfm.load(path)
    yield path, m
    m.close()


def test_gguf_chat_matches_safetensors(model, gguf_model):
    path, gm = gguf_model
    assert gm.tokenizer is not None and gm.chat_template
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "안녕? Say hi."}]
    assert gm.apply_chat_template(msgs) == model.apply_chat_template(msgs)
    a = model.chat(msgs, max_tokens=16, **GREEDY)
    b = gm.chat(msgs, max_tokens=16, **GREEDY)
    assert a.token_ids == b.token_ids and a == b


def test_gguf_greedy_matches_llama_cpp(gguf_model):
    import llama_cpp

    path, gm = gguf_model
    ids = gm.tokenizer.encode(PROMPTS[0])
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=128, n_threads=2, verbose=False, logits_all=True)
    want = []
    llm.eval(ids)
    for _ in range(16):
        t = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        if t in (2, 7):
            break
        want.append(t)
        llm.eval([t])
    assert len(want) >= 4, want  # a non-trivial comparison
    got = gm.generate(ids, max_tokens=len(want), **GREEDY).token_ids
    assert got == want
