"""The batch scheduler (liquidlfm.generation.batch.BatchEngine) on the real engine with the small
random-weight chat model: every request gives what Model.generate gives for it alone (tokens, text,
finish reason), whatever else shares its steps; requests join and leave between steps; n > 1 shares
one prefill; cancel, close, queue limits and errors; the background thread."""
import queue
import threading

import pytest

import liquidlfm as lfm
from liquidlfm.errors import Cancelled, ContextFullError
from liquidlfm.generation.batch import EngineClosed

GREEDY = dict(temperature=0, repetition_penalty=1.0)
PROMPTS = ["Once upon a time", "안녕하세요, 오늘 날씨는", "def fibonacci(n):\n    ", "The", "A long time ago in a galaxy",
           "1, 2, 3, 4,"]


def alone(model, prompt, **kw):
    """What the single-sequence path gives (a fresh session, so no prefix cache is involved)."""
    with model.session(n_ctx=kw.pop("n_ctx", None)) as s:
        return model.generate(prompt, session=s, **kw)


def same(a, b):
    assert (list(a.token_ids), str(a), a.finish_reason) == (list(b.token_ids), str(b), b.finish_reason)


@pytest.mark.parametrize("n_seq", [1, 3, 8])
def test_greedy_list_equals_one_at_a_time(tiny_chat_model, n_seq):
    m = tiny_chat_model
    got = m.generate(PROMPTS, max_tokens=12, n_seq=n_seq, **GREEDY)
    assert len(got) == len(PROMPTS)
    for p, g in zip(PROMPTS, got):
        same(g, alone(m, p, max_tokens=12, **GREEDY))
        assert g.stats.prompt_tokens == len(m.tokenizer.encode(p)) and g.stats.generated_tokens == len(g.token_ids)


def test_seeded_sampling_equals_one_at_a_time(tiny_chat_model):
    m = tiny_chat_model
    kw = dict(temperature=0.9, top_p=0.95, repetition_penalty=1.1, seed=7, max_tokens=10)
    for p, g in zip(PROMPTS, m.generate(PROMPTS, n_seq=4, **kw)):
        same(g, alone(m, p, **kw))


def test_stops_and_lengths_as_one_at_a_time(tiny_chat_model):
    m = tiny_chat_model
    base = m.generate(PROMPTS[0], max_tokens=12, **GREEDY)
    stop = str(base)[3:6] or "e"  # a string the greedy output contains
    eos_tok = base.token_ids[4]   # ends generation when sampled, as the model's eos would
    cases = [dict(max_tokens=0), dict(max_tokens=1), dict(max_tokens=12, stop=[stop]),
             dict(max_tokens=12, stop_token_ids=[eos_tok])]
    with m.batch(n_seq=4) as eng:
        reqs = [eng.submit(PROMPTS[0], **GREEDY, **c) for c in cases]
        eng.run()
        for r, c in zip(reqs, cases):
            same(r.result(), alone(m, PROMPTS[0], **GREEDY, **c))
    assert reqs[0].result().finish_reason == "length" and reqs[0].token_ids == []
    assert reqs[2].result().finish_reason == "stop" and stop not in reqs[2].result()
    assert reqs[3].result().finish_reason == "stop" and eos_tok not in reqs[3].token_ids


def test_full_context_ends_with_length_as_one_at_a_time(tiny_chat_model):
    m = tiny_chat_model
    ids = m.tokenizer.encode(PROMPTS[4])
    n_ctx = len(ids) + 5
    with m.batch(n_seq=2, n_ctx=n_ctx) as eng:
        r = eng.submit(ids, max_tokens=50, **GREEDY)
        eng.run()
        got = r.result()
    same(got, alone(m, ids, max_tokens=50, n_ctx=n_ctx, **GREEDY))
    assert got.finish_reason == "length" and len(got.token_ids) == 5  # the 5th fills the context


def test_requests_join_and_leave_between_steps(tiny_chat_model):
    m = tiny_chat_model
    with m.batch(n_seq=2, n_batch=4) as eng:  # n_batch 4: long prompts take several steps, shared with decoders
        first = eng.submit(PROMPTS[1], max_tokens=20, **GREEDY)
        for _ in range(3):
            eng.step()
        later = [eng.submit(p, max_tokens=8, **GREEDY) for p in PROMPTS[2:5]]
        assert eng.n_queued == 3 and eng.n_active == 1  # admitted at the next step
        eng.step()
        assert eng.n_queued == 2 and eng.n_active == 2
        eng.run()
        assert eng.n_active == 0 and eng.n_queued == 0
        same(first.result(), alone(m, PROMPTS[1], max_tokens=20, **GREEDY))
        for p, r in zip(PROMPTS[2:5], later):
            same(r.result(), alone(m, p, max_tokens=8, **GREEDY))


def test_n_shares_one_prefill(tiny_chat_model):
    m = tiny_chat_model
    ids = m.tokenizer.encode(PROMPTS[4])
    with m.batch(n_seq=4) as eng:
        reqs = eng.submit_n(ids, 3, max_tokens=8, temperature=0.8, seed=11)
        eng.run()
        assert [r.stats.prefilled_tokens for r in reqs] == [len(ids), 0, 0]
        assert [r.stats.reused_tokens for r in reqs] == [0, len(ids), len(ids)]
        for i, r in enumerate(reqs):
            same(r.result(), alone(m, ids, max_tokens=8, temperature=0.8, seed=11 + i))
        greedy = eng.submit_n(ids, 2, max_tokens=8, **GREEDY)
        eng.run()
        same(greedy[0].result(), greedy[1].result())
    with m.batch(n_seq=2) as eng:
        with pytest.raises(ValueError, match="n=3"):
            eng.submit_n(ids, 3)


def test_cancel_frees_the_sequence(tiny_chat_model):
    m = tiny_chat_model
    with m.batch(n_seq=2) as eng:
        a = eng.submit(PROMPTS[0], max_tokens=40, **GREEDY)
        b = eng.submit(PROMPTS[1], max_tokens=6, **GREEDY)
        c = eng.submit(PROMPTS[2], max_tokens=6, **GREEDY)  # waits for a free sequence
        eng.step()
        eng.step()
        a.cancel()
        eng.run()
        assert a.result().finish_reason == "cancelled" and 0 < len(a.token_ids) < 40
        same(b.result(), alone(m, PROMPTS[1], max_tokens=6, **GREEDY))
        same(c.result(), alone(m, PROMPTS[2], max_tokens=6, **GREEDY))
        assert eng.n_active == 0
        q = eng.submit(PROMPTS[3], max_tokens=4, **GREEDY)
        q.cancel()  # still queued: ends without running
        assert q.result().finish_reason == "cancelled" and q.token_ids == []


def test_background_thread_serves_many_threads(tiny_chat_model):
    m = tiny_chat_model
    want = {p: alone(m, p, max_tokens=10, **GREEDY) for p in PROMPTS}
    got, errors = {}, []
    with m.batch(n_seq=3).start() as eng:
        def client(p):
            try:
                chunks = list(eng.submit(p, max_tokens=10, **GREEDY))
                got[p] = ("".join(c.text for c in chunks), [t for c in chunks for t in c.token_ids],
                          chunks[-1].finish_reason)
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)
        threads = [threading.Thread(target=client, args=(p,)) for p in PROMPTS]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert not errors
    for p in PROMPTS:
        assert got[p] == (str(want[p]), list(want[p].token_ids), want[p].finish_reason)


def test_on_chunk_sees_every_chunk(tiny_chat_model):
    seen = []
    with tiny_chat_model.batch(n_seq=1) as eng:
        r = eng.submit(PROMPTS[0], max_tokens=5, on_chunk=seen.append, **GREEDY)
        eng.run()
    assert "".join(c.text for c in seen) == str(r.result()) and seen[-1].finish_reason == r.finish_reason


def test_chat_on_a_list_of_conversations(tiny_chat_model):
    m = tiny_chat_model
    convs = [[{"role": "user", "content": p}] for p in PROMPTS[:3]]
    got = m.chat(convs, max_tokens=8, **GREEDY)
    for conv, g in zip(convs, got):
        with m.session() as s:
            same(g, m.chat(conv, max_tokens=8, session=s, **GREEDY))
    with pytest.raises(ValueError, match="stream"):
        m.chat(convs, stream=True)


def test_bad_requests_fail_at_submit(tiny_chat_model):
    m = tiny_chat_model
    with m.batch(n_seq=1, n_ctx=16, max_queue=2) as eng:
        with pytest.raises(ContextFullError, match="16"):
            eng.submit(list(range(5, 30)))
        with pytest.raises(ValueError, match="empty"):
            eng.submit([])
        with pytest.raises(ValueError, match="out of range"):
            eng.submit([10**6])
        with pytest.raises(TypeError, match="bogus"):
            eng.submit(PROMPTS[0], bogus=1)
        with pytest.raises(ValueError, match="top_k"):
            eng.submit(PROMPTS[0], top_k=-1)
        eng.submit(PROMPTS[0], max_tokens=2)
        eng.submit(PROMPTS[0], max_tokens=2)
        with pytest.raises(queue.Full):
            eng.submit(PROMPTS[0], max_tokens=2)
        eng.run()
    with pytest.raises(EngineClosed):
        eng.submit(PROMPTS[0])
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError):
            m.batch(n_seq=bad)
    with pytest.raises(TypeError, match="session"):
        m.generate(PROMPTS[:2], session=object())


def test_close_cancels_running_and_waiting(tiny_chat_model):
    eng = tiny_chat_model.batch(n_seq=1).start()
    a = eng.submit(PROMPTS[0], max_tokens=10_000, **GREEDY)
    b = eng.submit(PROMPTS[1], max_tokens=10, **GREEDY)
    next(iter(a))
    eng.close()
    assert a.result().finish_reason == "cancelled"
    assert b.result().finish_reason == "cancelled" and b.token_ids == []
    assert eng.closed


def test_failed_step_fails_its_requests_only(tiny_chat_model):
    m = tiny_chat_model
    with m.batch(n_seq=2) as eng:
        a = eng.submit(PROMPTS[0], max_tokens=30, **GREEDY)
        eng.step()
        eng._ctx._set_abort_after(0)  # the next forward pass aborts in its first layer
        with pytest.raises(Cancelled):
            eng.step()
        with pytest.raises(Cancelled):
            a.result()
        assert eng.n_active == 0
        b = eng.submit(PROMPTS[1], max_tokens=6, **GREEDY)  # the engine keeps serving
        same(b.result(), alone(m, PROMPTS[1], max_tokens=6, **GREEDY))


def test_result_steps_the_engine_itself(tiny_chat_model):
    """result() without run() or a thread: steps until its own request is done (the others progress
    too, and their chunks wait in their queues)."""
    m = tiny_chat_model
    with m.batch(n_seq=2) as eng:
        reqs = [eng.submit(p, max_tokens=6, **GREEDY) for p in PROMPTS[:3]]
        for p, r in zip(PROMPTS[:3], reqs):
            same(r.result(), alone(m, p, max_tokens=6, **GREEDY))
        first = next(iter(eng.submit(PROMPTS[3], max_tokens=3, **GREEDY)))  # iterating: one chunk at a time
        assert len(first.token_ids) <= 1


def test_a_request_whose_token_handling_fails_ends_alone(tiny_chat_model):
    """An error while sampling or detokenizing one request's token fails that request only; the
    engine neither stalls on it nor stops serving the others."""
    m = tiny_chat_model
    with m.batch(n_seq=2) as eng:
        bad = eng.submit(PROMPTS[0], max_tokens=8, **GREEDY)
        good = eng.submit(PROMPTS[1], max_tokens=8, **GREEDY)

        def broken(token, context_full):
            raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "a tokenizer hole")

        bad.emitter.push = broken
        eng.run()
        with pytest.raises(UnicodeDecodeError):
            bad.result()
        same(good.result(), alone(m, PROMPTS[1], max_tokens=8, **GREEDY))
        assert eng.n_active == 0
