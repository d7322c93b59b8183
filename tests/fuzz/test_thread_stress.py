"""Thread and lifetime stress of the native objects, meant to run under AddressSanitizer
(.ci/run: `bash tests/sanitize/run.sh tests/fuzz/test_thread_stress.py`): a Sampler re-initialised
or closed while another thread is inside sample() with the GIL released; a Ctx closed or
re-initialised (onto another model) while another thread decodes; a Model closed while used; and
argument conversions that run Python code (__getitem__, __index__) which closes and re-creates the
very object being called. Each must end in a result or a Python exception, never a memory error.

Skipped without ASan (a use-after-free there may pass silently or kill the whole test run)."""
import itertools
import threading
import time

import numpy as np
import pytest

pytestmark = [pytest.mark.reference]  # the models are built with transformers

ASAN = any("asan" in line for line in open("/proc/self/maps"))
if not ASAN:
    pytestmark.append(pytest.mark.skip(reason="needs the ASan build: bash tests/sanitize/run.sh tests/fuzz/test_thread_stress.py"))

ALLOWED = (RuntimeError, ValueError, TypeError)
SECONDS = 2.0


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A model of 512 tokens and one of 32 tokens (a re-init onto it shrinks every buffer)."""
    from liquidlfm import _core
    from tests.fixtures.hf_models import make_hf_model

    d = tmp_path_factory.mktemp("stress")
    big = make_hf_model(d / "big", vocab_size=512, hidden_size=64, num_hidden_layers=2,
                        layer_types=["conv", "full_attention"], num_attention_heads=4, num_key_value_heads=2,
                        intermediate_size=64, tokenizer=False)
    small = make_hf_model(d / "small", vocab_size=32, hidden_size=32, num_hidden_layers=2,
                          layer_types=["conv", "full_attention"], num_attention_heads=2, num_key_value_heads=1,
                          intermediate_size=32, tokenizer=False)
    return str(big), str(small), _core.Model(str(big)), _core.Model(str(small))


def _hammer(work, disturb, seconds=SECONDS):
    """Run work() in a loop in a thread while disturb() runs in a loop here; both may raise only
    ALLOWED exceptions. Returns how many work() calls completed."""
    stop = threading.Event()
    errors, done = [], [0]

    def worker():
        while not stop.is_set():
            try:
                work()
                done[0] += 1
            except ALLOWED:
                pass
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)
                return

    t = threading.Thread(target=worker)
    t.start()
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            try:
                disturb()
            except ALLOWED:
                pass
            time.sleep(0)
    finally:
        stop.set()
        t.join()
    assert not errors, errors
    return done[0]


def close_or_reinit(obj, reinit):
    """A disturbance for _hammer: every third call closes obj, the others re-initialise it through
    reinit(call number)."""
    calls = itertools.count()

    def disturb():
        i = next(calls)
        if i % 3 == 0:
            obj.close()
        else:
            reinit(i)

    return disturb


def test_sampler_reinit_and_close_while_sampling():
    from liquidlfm import _core

    V = 200_000
    logits = np.random.default_rng(0).standard_normal(V).astype(np.float32)
    s = _core.Sampler(V, temperature=1.0, top_p=0.9, repetition_penalty=1.1, seed=1)
    disturb = close_or_reinit(s, lambda k: s.__init__(V if k % 3 == 1 else 16, temperature=0.8, top_k=40, seed=k))

    def work():
        t = s.sample(logits)
        assert 0 <= t < V
        s.accept(t)

    _hammer(work, disturb)


def test_ctx_close_and_reinit_while_decoding(models):
    from liquidlfm import _core

    _, _, big, small = models
    ctx = _core.Ctx(big, n_ctx=64, n_threads=1)
    disturb = close_or_reinit(
        ctx, lambda i: ctx.__init__(big if i % 3 == 1 else small, n_ctx=64 if i % 2 else 8, n_threads=1))

    def work():
        if ctx.pos > 40:
            ctx.reset()
        out = ctx.decode([1, 2, 3, 4, 5, 6, 7], "all")
        assert out.shape[0] == 7 and out.shape[1] in (32, 512)
        ctx.save()

    _hammer(work, disturb)


def test_model_close_while_forward(models):
    from liquidlfm import _core

    big_path = models[0]
    m = _core.Model(big_path)
    k = iter(range(10**9))

    def disturb():
        if next(k) % 2:
            m.close()
        else:
            m.__init__(big_path)

    def work():
        assert m.forward([1, 2, 3, 4]).shape == (4, 512)

    _hammer(work, disturb)


def ids_that(n, on_first):
    """n token ids (all 1) whose first item access calls on_first(): Python code that runs inside the
    engine's conversion of its arguments."""

    class Ids:
        def __len__(self):
            return n

        def __getitem__(self, i):
            if i >= n:
                raise IndexError(i)
            if i == 0:
                on_first()
            return 1

    return Ids()


def test_ids_conversion_that_swaps_the_context(models):
    """__getitem__ runs while decode() converts its ids: it re-creates the context on the 32-token
    model. decode() must not use the 512-token vocabulary it saw before the conversion."""
    from liquidlfm import _core

    _, _, big, small = models

    for action in ("reinit", "close"):
        ctx = _core.Ctx(big, n_ctx=16, n_threads=1)

        def swap():
            ctx.close()
            if action == "reinit":
                ctx.__init__(small, n_ctx=4, n_threads=1)

        for mode in ("all", "last"):
            try:
                out = ctx.decode(ids_that(3, swap), mode)
            except ALLOWED:
                continue
            assert out.shape[-1] == 32  # the vocabulary of the model it actually ran


def test_ids_conversion_that_swaps_the_model(models):
    from liquidlfm import _core

    big_path, small_path, _, _ = models
    m = _core.Model(big_path)

    def swap():
        m.close()
        m.__init__(small_path)

    try:
        out = m.forward(ids_that(2, swap))
    except ALLOWED:
        return
    assert out.shape == (2, 32)


def test_token_index_that_swaps_the_sampler():
    from liquidlfm import _core

    s = _core.Sampler(100_000, temperature=1.0, penalty_last_n=64)

    class Tok:
        def __index__(self):
            s.close()
            s.__init__(4, temperature=1.0)
            return 99_999

    for call in (s.accept, s.count):
        try:
            call(Tok())
        except ALLOWED:
            pass
    # the swap inside the conversion is refused while the call holds the sampler ("in use"), so the
    # sampler is the one it was; either way it must sample within its own vocabulary
    assert s.n_vocab in (100_000, 4)
    logits = np.zeros(s.n_vocab, np.float32)
    assert 0 <= s.sample(logits) < s.n_vocab
