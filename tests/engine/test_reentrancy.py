"""Objects in use (csrc/py/pycommon.h): no C object is freed or replaced under a running call, and
nothing read from C is trusted across a call into Python.

- An argument whose conversion runs Python code (__len__, __getitem__, __index__) that closes or
  re-initialises the context, the model or the sampler: a clear error, or the call works on a state
  that did not change; never a read past a buffer.
- A Sampler re-initialised / closed from one thread while another samples with the GIL released.
- Ctx.__init__ after close() keeps exactly one model reference.
- test_stress_*: close, re-init and use from several threads at once, a few seconds (run under ASan by
  `bash tests/sanitize/run.sh tests/engine/test_reentrancy.py`; `-k stress` selects it alone).
"""
import os
import sys
import threading
import time

import numpy as np
import pytest

import liquidlfm as lfm
from liquidlfm import _core
from tests.fixtures.hf_models import make_hf_model

pytestmark = pytest.mark.reference  # models are built with transformers

SMALL_V, BIG_V = 16, 5000
STRESS_SECONDS = float(os.environ.get("LIQUIDLFM_STRESS_SECONDS", "2"))
ALLOWED = (RuntimeError, ValueError)  # "in use", "closed", bad id for the current vocabulary (and subclasses)


def _make(tmp_path_factory, name, vocab):
    return str(make_hf_model(tmp_path_factory.mktemp(name), vocab_size=vocab, hidden_size=32, num_hidden_layers=2,
                             layer_types=["conv", "full_attention"], num_attention_heads=2, num_key_value_heads=1,
                             intermediate_size=64, seed=1, tokenizer=False))


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    return {"small": _make(tmp_path_factory, "small", SMALL_V), "big": _make(tmp_path_factory, "big", BIG_V)}


@pytest.fixture(scope="module")
def models(paths):
    ms = {k: _core.Model(p) for k, p in paths.items()}
    yield ms
    for m in ms.values():
        m.close()


class Ids:
    """A token list whose conversion runs `hook` once (a sequence without __array__: numpy reads it with
    __len__ and __getitem__; objects with __index__ as items make an object array, refused as not ints)."""

    def __init__(self, ids, hook, where="getitem"):
        self.ids, self.hook, self.where, self.errors, self.fired = list(ids), hook, where, [], False

    def _fire(self):
        if not self.fired:
            self.fired = True
            try:
                self.hook()
            except ALLOWED as e:  # refused: the object is in use by this very call
                self.errors.append(e)

    def __len__(self):
        if self.where == "len":
            self._fire()
        return len(self.ids)

    def __getitem__(self, i):
        if self.where == "getitem" and i == 0:
            self._fire()
        return self.ids[i]


class Index:
    def __init__(self, v, hook):
        self.v, self.hook = v, hook

    def __index__(self):
        if self.hook:
            self.hook()
        return self.v


def _n_vocab_of(ctx_model):
    return ctx_model.config["n_vocab"]


# ---- item 6: conversions that close / re-initialise the context or the model ----

@pytest.mark.parametrize("where", ["len", "getitem"])
@pytest.mark.parametrize("logits", ["last", "all"])
def test_decode_ids_reinit_ctx_on_smaller_model(models, where, logits):
    big, small = models["big"], models["small"]
    ctx = _core.Ctx(big, n_ctx=32)

    def swap():  # the context now on a 16-token vocabulary: ids up to 4999 and a 16-float logits row
        ctx.close()
        ctx.__init__(small, n_ctx=32)

    ids = Ids([4990, 4991, 4992], swap, where)
    try:
        out = ctx.decode(ids, logits)
    except ALLOWED:
        out = None
    assert ids.fired
    # the close was refused (the context is in use by this call): the context is still the big one
    assert ids.errors and "in use" in str(ids.errors[0])
    if out is not None:
        assert out.shape == ((BIG_V,) if logits == "last" else (3, BIG_V))
    assert ctx.decode([4999]).shape == (BIG_V,)
    ctx.close()


@pytest.mark.parametrize("where", ["len", "getitem"])
def test_decode_ids_close_model(paths, where):
    m = _core.Model(paths["big"])
    ctx = _core.Ctx(m, n_ctx=32)

    def close_and_reinit_model():
        m.close()  # deferred: the context (and this call) still use the weights
        m.__init__(paths["small"])  # refused while they do

    ids = Ids([1, 2, 4999], close_and_reinit_model, where)
    with pytest.raises(ValueError, match="model is closed"):
        ctx.decode(ids)
    assert ids.errors and "in use" in str(ids.errors[0])
    assert m.closed
    ctx.close()  # the last user: the weights are freed now
    m.__init__(paths["small"])  # a closed, released model can be loaded again
    assert m.config["n_vocab"] == SMALL_V
    m.close()


@pytest.mark.parametrize("where", ["len", "getitem"])
def test_forward_ids_reinit_model(paths, where):
    m = _core.Model(paths["big"])

    def swap():
        m.close()
        m.__init__(paths["small"])

    ids = Ids([1, 4000, 4999], swap, where)
    with pytest.raises(ValueError, match="model is closed"):
        m.forward(ids)
    assert ids.errors and "in use" in str(ids.errors[0])  # the re-init, not the close
    assert m.closed
    m.__init__(paths["small"])  # nothing uses it any more
    assert m.forward([1, 2, 15]).shape == (3, SMALL_V)
    m.close()


def test_session_prefill_step_logits_reinit(paths):
    """The public Session: prefill() with such ids; step() and .logits afterwards on the state that won."""
    model = lfm.load(paths["big"])
    s = model.session(n_ctx=32)
    other = lfm.load(paths["small"])

    def swap():
        s._ctx.close()
        s._ctx.__init__(other._core, n_ctx=32)

    ids = Ids([4000, 4001], swap)
    out = s.prefill(ids)
    assert ids.errors and out.shape == (BIG_V,)
    assert s.logits.shape == (BIG_V,) and s.step(4999).shape == (BIG_V,)
    # between calls the context may change model: everything is read again
    s._ctx.close()
    s._ctx.__init__(other._core, n_ctx=32)
    assert s.logits is None and s.step(15).shape == (SMALL_V,) and s.logits.shape == (SMALL_V,)
    with pytest.raises(ValueError, match="out of range"):
        s.step(4999)
    s.close()
    model.close()
    other.close()


def test_set_abort_after_and_load_convert_first(models):
    ctx = _core.Ctx(models["small"], n_ctx=8)
    ctx.decode([1, 2])
    blob = ctx.save()
    with pytest.raises(ValueError, match="session is closed"):  # converted first, then checked
        ctx._set_abort_after(Index(-1, ctx.close))
    ctx.__init__(models["small"], n_ctx=8)
    ctx.load(blob)
    assert ctx.pos == 2
    ctx.close()


def test_generate_step_stop_ids_mutating_list(models):
    """A stop id's __index__ that empties the stop list: the ids are read from a copy."""
    ctx = _core.Ctx(models["small"], n_ctx=16)
    ctx.decode([1, 2, 3])
    smp = _core.Sampler(SMALL_V, temperature=0)
    stops = []
    stops.extend([Index(5, stops.clear)] + [Index(6, None)] * 40)
    tok, fin = _core.generate_step(ctx, smp, stops)
    assert 0 <= tok < SMALL_V
    ctx.close()


# ---- item 5: a Sampler used by one call while another frees or replaces it ----

def test_sampler_reinit_or_close_during_call_refused():
    """Deterministic: Python code run by a call's conversions cannot re-initialise or close the sampler."""
    s = _core.Sampler(100, temperature=0.8, seed=1)
    seen = []

    def reinit():
        for f in (lambda: s.__init__(5), s.close):
            try:
                f()
            except RuntimeError as e:
                seen.append(str(e))

    s.accept([Index(3, reinit), 4])
    assert len(seen) == 2 and all("in use" in e for e in seen)
    assert s.n_vocab == 100 and s.count(3) == 1 and s.count(4) == 1
    seen.clear()
    assert s.count(Index(3, reinit)) == 1
    assert len(seen) == 2 and s.n_vocab == 100
    # a logit_bias value whose __float__ changes the dict being read
    bias = {}

    class F:
        def __float__(self):
            bias.clear()
            return -1.0

    bias.update({i: F() for i in range(50)})
    s.set_logit_bias(bias)
    s.close()
    with pytest.raises(ValueError, match="closed"):
        s.sample(np.zeros(100, np.float32))


def test_sampler_reinit_close_from_other_thread():
    """Item 5: sample() (GIL released, large vocabulary) in a loop while another thread re-initialises and
    closes the same sampler: every call succeeds or raises RuntimeError / ValueError, never a crash (ASan)."""
    V = 200_000
    logits = np.random.RandomState(0).standard_normal(V).astype(np.float32)
    s = _core.Sampler(V, temperature=0.7, top_p=0.9, seed=3)
    stop = time.monotonic() + STRESS_SECONDS
    bad, counts = [], {"sampled": 0, "refused": 0, "reinit": 0, "reinit_refused": 0}

    def sampler_loop():
        i = 0
        while time.monotonic() < stop:
            i += 1
            if i % 4 == 0:
                time.sleep(0.0005)  # let the other thread in between calls too
            try:
                t = s.sample(logits)
                assert 0 <= t < V
                counts["sampled"] += 1
            except ALLOWED:
                counts["refused"] += 1
            except BaseException as e:  # noqa: BLE001 - reported below
                bad.append(e)

    def reinit_loop():
        i = 0
        while time.monotonic() < stop:
            i += 1
            try:
                if i % 3:
                    s.__init__(V if i % 2 else V // 2, temperature=0.7, top_p=0.9, seed=i)
                else:
                    s.close()
                counts["reinit"] += 1
            except ALLOWED:
                counts["reinit_refused"] += 1
            except BaseException as e:  # noqa: BLE001
                bad.append(e)
            time.sleep(0)

    th = [threading.Thread(target=sampler_loop), threading.Thread(target=reinit_loop)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    assert not bad, bad
    assert counts["sampled"] > 0 and counts["reinit"] + counts["reinit_refused"] > 0


# ---- item 8: Ctx.__init__ after close() ----

def test_ctx_reinit_after_close_keeps_one_model_reference(models):
    m = models["small"]
    ctx = _core.Ctx(m, n_ctx=8)
    base = sys.getrefcount(m)
    for _ in range(20):
        ctx.close()
        ctx.__init__(m, n_ctx=8)
    assert sys.getrefcount(m) == base
    ctx.close()
    assert sys.getrefcount(m) == base - 1  # a closed context holds no reference
    with pytest.raises(RuntimeError, match="already initialised"):
        ctx.__init__(m)
        ctx.__init__(m)
    ctx.close()
    del ctx
    assert sys.getrefcount(m) == base - 1


# ---- stress: everything at once ----

def test_stress_threads_close_reinit_use(paths):
    """Several threads close, re-initialise and use one model, one context and one sampler for a few
    seconds: every call succeeds or raises RuntimeError / ValueError (ContextFullError included)."""
    models = [_core.Model(paths["small"]), _core.Model(paths["big"])]
    spare = _core.Model(paths["small"])
    ctx = _core.Ctx(models[0], n_ctx=64)
    smp = _core.Sampler(SMALL_V, temperature=0.8, seed=1)
    stop = time.monotonic() + STRESS_SECONDS
    bad, ops = [], [0]

    def loop(body):
        def run():
            i = 0
            while time.monotonic() < stop:
                i += 1
                try:
                    body(i)
                    ops[0] += 1
                except ALLOWED:
                    pass
                except BaseException as e:  # noqa: BLE001
                    bad.append(e)
        return run

    def decoder(i):
        out = ctx.decode(Ids([1, 2, 3], (lambda: ctx.close()) if i % 7 == 0 else (lambda: None)), "all")
        assert out.shape[0] == 3 and out.shape[1] in (SMALL_V, BIG_V)
        if ctx.pos > 48:
            ctx.reset()

    def reiniter(i):
        ctx.close()
        ctx.__init__(models[i % 2], n_ctx=64)

    def stepper(i):
        tok, fin = _core.generate_step(ctx, smp, [Index(2, None)])
        assert 0 <= tok < BIG_V

    def sampler_reiniter(i):
        smp.__init__(SMALL_V if i % 2 else BIG_V, temperature=0.8, seed=i)

    def forwarder(i):
        out = spare.forward(Ids([1, 2], (lambda: spare.close()) if i % 5 == 0 else (lambda: None)))
        assert out.shape == (2, SMALL_V)

    def spare_reloader(i):
        if spare.closed:
            spare.__init__(paths["small"])
        else:
            spare.close()
        time.sleep(0.001)

    def getters(i):
        ctx.last_logits(), ctx.pos, ctx.n_ctx, smp.n_vocab, spare.config

    th = [threading.Thread(target=loop(f)) for f in (decoder, reiniter, stepper, sampler_reiniter, forwarder,
                                                      spare_reloader, getters)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    assert not bad, bad[:3]
    assert ops[0] > 0
    ctx.close()
    for m in models + [spare]:
        m.close()


# ---- the tokenizer follows the same rule ----

def test_tokenizer_close_or_reinit_during_conversion_refused():
    tok = _core.Tokenizer(["a", "b", "c", "ab"], None, ["a b"])
    refused = []

    def close_and_reinit():
        for f in (tok.close, lambda: tok.__init__(["x"], None, [])):
            try:
                f()
            except RuntimeError as e:
                refused.append(str(e))

    assert tok.decode_bytes([Index(0, close_and_reinit), 1]) == b"ab"
    assert tok.token_bytes(Index(3, close_and_reinit)) == b"ab"

    class Text:  # bytes(Text()) iterates: Python code inside encode's conversion
        def __iter__(self):
            close_and_reinit()
            return iter(b"abc")

    assert tok.encode(Text()) == [3, 2]
    assert len(refused) == 6 and all("in use" in e for e in refused)
    assert tok.n_tokens == 4
    tok.close()


def test_model_init_path_conversion_cannot_close_or_reinit(paths):
    """Model.__init__ is busy while its path converter (__fspath__) runs: a nested __init__ (which loaded
    a second model and leaked one) or close() is refused."""
    m = _core.Model.__new__(_core.Model)
    refused = []

    class P:
        def __fspath__(self):
            for f in (m.close, lambda: m.__init__(paths["big"])):
                try:
                    f()
                except RuntimeError as e:
                    refused.append(str(e))
            return paths["small"]

    m.__init__(P())
    assert len(refused) == 2 and all("in use" in e for e in refused)
    assert m.config["n_vocab"] == SMALL_V and not m.closed
    m.close()
