"""The C sampler (csrc/text/sampler.c via _core.Sampler) against NumPy references of the same semantics
and against transformers' logits processors."""
import math
import threading

import numpy as np
import pytest

from liquidlfm._core import Sampler


def rand_logits(rng, v, scale=3.0):
    return (rng.standard_normal(v) * scale).astype(np.float32)


# ---- NumPy reference (transformers order: temperature -> top-k -> top-p -> min-p) ----

def ref_filter(logits, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0):
    """Return {token: prob} of the distribution transformers would sample from (float64)."""
    x = logits.astype(np.float64) / temperature
    keep = np.isfinite(x)
    if top_k > 0:
        kth = np.sort(x[keep])[::-1][min(top_k, keep.sum()) - 1]
        keep &= x >= kth
    def probs_of(mask):
        y = np.where(mask, x, -np.inf)
        e = np.exp(y - y.max())
        return e / e.sum()
    if top_p < 1.0:
        p = probs_of(keep)
        order = np.argsort(-p, kind="stable")
        above = np.concatenate([[0.0], np.cumsum(p[order])[:-1]])
        kept_sorted = above < top_p
        kept_sorted[0] = True
        m = np.zeros_like(keep)
        m[order[kept_sorted]] = True
        keep &= m
    if min_p > 0.0:
        p = probs_of(keep)
        keep &= p >= min_p * p.max()
    p = probs_of(keep)
    return {int(i): float(p[i]) for i in np.flatnonzero(keep)}


def dist_dict(s, logits):
    ids, probs = s.dist(logits)
    return {int(i): float(p) for i, p in zip(ids, probs)}


def assert_same_dist(got, want, tol=2e-5):
    assert set(got) == set(want), (sorted(set(got) ^ set(want)))
    for k in want:
        assert abs(got[k] - want[k]) <= tol * max(1.0, want[k]) + 1e-7, (k, got[k], want[k])


# ---- greedy ----

def test_greedy_is_argmax_and_deterministic():
    rng = np.random.default_rng(0)
    for trial in range(50):
        x = rand_logits(rng, 1000)
        for t in (0.0, -1.0):
            s = Sampler(1000, temperature=t, seed=trial)
            assert s.sample(x) == int(np.argmax(x))
            assert s.sample(x) == int(np.argmax(x))


def test_greedy_ties_take_first_index():
    x = np.zeros(16, dtype=np.float32)
    x[[3, 9]] = 5.0
    assert Sampler(16, temperature=0).sample(x) == 3


def test_top_k_1_is_argmax():
    rng = np.random.default_rng(1)
    for trial in range(50):
        x = rand_logits(rng, 4096)
        s = Sampler(4096, temperature=1.5, top_k=1, seed=trial)
        for _ in range(3):
            assert s.sample(x) == int(np.argmax(x))


def test_2d_logits_use_last_row():
    rng = np.random.default_rng(2)
    x = rand_logits(rng, 3 * 50).reshape(3, 50)
    assert Sampler(50, temperature=0).sample(x) == int(np.argmax(x[-1]))


# ---- seeds ----

def draw(s, x, n):
    return [s.sample(x) for _ in range(n)]


def test_same_seed_same_tokens_and_reset_reseeds():
    rng = np.random.default_rng(3)
    x = rand_logits(rng, 500, scale=1.0)
    a = draw(Sampler(500, temperature=1.0, seed=42), x, 200)
    b = draw(Sampler(500, temperature=1.0, seed=42), x, 200)
    c = draw(Sampler(500, temperature=1.0, seed=43), x, 200)
    assert a == b
    assert a != c
    s = Sampler(500, temperature=1.0, seed=42)
    first = draw(s, x, 50)
    s.reset()
    assert draw(s, x, 50) == first == a[:50]


def test_seed_any_int():
    x = np.zeros(10, dtype=np.float32)
    Sampler(10, seed=2**64 + 5).sample(x)
    assert Sampler(10, seed=-1).seed == 2**64 - 1


# ---- filters vs the NumPy reference (exact kept sets) ----

CASES = [
    dict(temperature=1.0),
    dict(temperature=0.7),
    dict(temperature=1.0, top_k=5),
    dict(temperature=0.3, top_k=50),
    dict(temperature=1.0, top_p=0.9),
    dict(temperature=0.5, top_p=0.5),
    dict(temperature=1.0, min_p=0.05),
    dict(temperature=0.3, min_p=0.15),
    dict(temperature=1.2, top_k=40, top_p=0.8),
    dict(temperature=0.8, top_k=30, top_p=0.95, min_p=0.02),
    dict(temperature=1.0, top_p=0.7, min_p=0.1),
    dict(temperature=1.0, top_k=100000),  # k larger than the vocabulary
]


@pytest.mark.parametrize("params", CASES, ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()))
def test_filters_match_numpy_reference(params):
    rng = np.random.default_rng(4)
    for v in (7, 300, 5000):
        for _ in range(5):
            x = rand_logits(rng, v, scale=rng.uniform(0.5, 4.0))
            s = Sampler(v, seed=0, **params)
            assert_same_dist(dist_dict(s, x), ref_filter(x, **params))


def test_top_k_keeps_ties_at_threshold():
    x = np.array([5, 4, 3, 3, 3, 1, 0], dtype=np.float32)
    assert set(dist_dict(Sampler(7, top_k=3), x)) == {0, 1, 2, 3, 4}


@pytest.mark.reference
def test_filters_match_transformers_warpers():
    torch = pytest.importorskip("torch")
    from transformers.generation.logits_process import (
        MinPLogitsWarper,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    rng = np.random.default_rng(5)
    for params in CASES:
        for v in (50, 2000):
            x = rand_logits(rng, v, scale=2.0)
            scores = torch.from_numpy(x.copy())[None]
            ids = torch.zeros((1, 1), dtype=torch.long)
            scores = TemperatureLogitsWarper(params["temperature"])(ids, scores)
            if params.get("top_k", 0) > 0:
                scores = TopKLogitsWarper(params["top_k"])(ids, scores)
            if params.get("top_p", 1.0) < 1.0:
                scores = TopPLogitsWarper(params["top_p"])(ids, scores)
            if params.get("min_p", 0.0) > 0.0:
                scores = MinPLogitsWarper(params["min_p"])(ids, scores)
            p = torch.softmax(scores[0].double(), -1).numpy()
            want = {int(i): float(p[i]) for i in np.flatnonzero(np.isfinite(scores[0].numpy()))}
            assert_same_dist(dist_dict(Sampler(v, **params), x), want)


def test_samples_follow_the_distribution():
    """Empirical frequencies of 40k draws (fixed seed) match the reported distribution."""
    rng = np.random.default_rng(6)
    x = rand_logits(rng, 12, scale=1.0)
    for params in (dict(temperature=1.0), dict(temperature=0.8, top_k=6), dict(temperature=1.0, top_p=0.8),
                   dict(temperature=1.0, min_p=0.2)):
        s = Sampler(12, seed=123, **params)
        want = ref_filter(x, **params)
        n = 40000
        counts = np.bincount([s.sample(x) for _ in range(n)], minlength=12)
        assert set(np.flatnonzero(counts)) <= set(want)
        for k, p in want.items():
            sd = math.sqrt(p * (1 - p) / n)
            assert abs(counts[k] / n - p) < 5 * sd + 1e-4, (params, k, counts[k] / n, p)


# ---- penalties ----

@pytest.mark.reference
def test_repetition_penalty_matches_transformers():
    torch = pytest.importorskip("torch")
    from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor

    rng = np.random.default_rng(7)
    for penalty in (1.05, 1.3, 0.8):
        x = rand_logits(rng, 1000)
        hist = rng.integers(0, 1000, size=60).tolist()
        s = Sampler(1000, repetition_penalty=penalty)
        s.accept(hist)
        got = s.processed_logits(x)
        want = RepetitionPenaltyLogitsProcessor(penalty)(torch.tensor([hist]), torch.from_numpy(x.copy())[None])
        np.testing.assert_array_equal(got, want[0].numpy())


def ref_penalties(x, hist, rep=1.0, presence=0.0, frequency=0.0, last_n=-1):
    x = x.astype(np.float32).copy()
    window = hist if last_n < 0 else hist[len(hist) - last_n:] if last_n > 0 else []
    counts = {}
    for t in window:
        counts[t] = counts.get(t, 0) + 1
    for t, c in counts.items():
        v = x[t]
        if rep != 1.0:
            v = v * np.float32(rep) if v < 0 else v / np.float32(rep)
        v = np.float32(v - (np.float32(c) * np.float32(frequency) + np.float32(presence)))
        x[t] = v
    return x


@pytest.mark.parametrize("last_n", [-1, 0, 1, 7, 64])
def test_presence_frequency_and_window(last_n):
    rng = np.random.default_rng(8)
    x = rand_logits(rng, 200)
    hist = rng.integers(0, 30, size=100).tolist()
    kw = dict(repetition_penalty=1.1, presence_penalty=0.5, frequency_penalty=0.25)
    s = Sampler(200, penalty_last_n=last_n, **kw)
    for t in hist:  # one at a time, so the ring buffer wraps
        s.accept(t)
    want = ref_penalties(x, hist, 1.1, 0.5, 0.25, last_n)
    np.testing.assert_allclose(s.processed_logits(x), want, rtol=1e-6, atol=1e-6)
    window = hist if last_n < 0 else hist[len(hist) - last_n:] if last_n > 0 else []
    for t in range(30):
        assert s.count(t) == window.count(t)
    s.reset()
    np.testing.assert_array_equal(s.processed_logits(x), x)


def test_frequency_penalty_matches_openai_formula():
    x = np.zeros(5, dtype=np.float32)
    s = Sampler(5, presence_penalty=1.0, frequency_penalty=0.5)
    s.accept([2, 2, 2, 4])
    np.testing.assert_allclose(s.processed_logits(x), [0, 0, -2.5, 0, -1.5])


def test_penalties_change_greedy_choice():
    x = np.array([1.0, 2.0, 1.95], dtype=np.float32)
    s = Sampler(3, temperature=0, repetition_penalty=1.1)
    assert s.sample(x) == 1
    s.accept(1)
    assert s.sample(x) == 2


# ---- logit bias ----

def test_logit_bias_adds_and_bans():
    x = np.array([3.0, 2.0, 1.0, 0.0], dtype=np.float32)
    s = Sampler(4, temperature=0, logit_bias={0: -math.inf})
    assert s.sample(x) == 1
    s.set_logit_bias({3: 10.0})
    assert s.sample(x) == 3
    np.testing.assert_allclose(s.processed_logits(x), [3, 2, 1, 10])
    s.set_logit_bias(None)
    assert s.sample(x) == 0
    # banned tokens are never drawn
    s = Sampler(4, temperature=5.0, logit_bias={0: -math.inf, 1: -math.inf}, seed=1)
    assert set(draw(s, x, 300)) == {2, 3}


# ---- bad arguments ----

@pytest.mark.parametrize("kw", [
    dict(top_k=-1), dict(temperature=math.nan), dict(temperature=math.inf), dict(top_p=0.0), dict(top_p=1.5),
    dict(top_p=math.nan), dict(top_p=-0.1), dict(min_p=-0.1), dict(min_p=1.5), dict(min_p=math.nan),
    dict(repetition_penalty=0.0), dict(repetition_penalty=-1.0), dict(repetition_penalty=math.nan),
    dict(presence_penalty=math.nan), dict(frequency_penalty=math.inf),
    dict(logit_bias={10: 1.0}), dict(logit_bias={-1: 1.0}), dict(logit_bias={1: math.nan}),
    dict(logit_bias={1: math.inf}),
])
def test_bad_params_raise_value_error(kw):
    with pytest.raises(ValueError):
        Sampler(10, **kw)


def test_bad_inputs():
    with pytest.raises(ValueError):
        Sampler(0)
    with pytest.raises(TypeError):
        Sampler(10, logit_bias=[1, 2])
    with pytest.raises(TypeError):
        Sampler(10, seed="x")
    s = Sampler(10)
    with pytest.raises(TypeError):
        s.sample(np.zeros(10, dtype=np.float64))
    with pytest.raises(ValueError):
        s.sample(np.zeros(11, dtype=np.float32))
    with pytest.raises((ValueError, BufferError)):
        s.sample(np.zeros(20, dtype=np.float32)[::2])
    x = np.zeros(10, dtype=np.float32)
    x[3] = np.nan
    with pytest.raises(ValueError, match="logit 3"):
        s.sample(x)
    with pytest.raises(ValueError, match="banned"):
        s.sample(np.full(10, -np.inf, dtype=np.float32))
    with pytest.raises(ValueError):
        s.accept(10)
    with pytest.raises(ValueError):
        s.accept([1, 2, -1])
    assert s.count(1) == 0  # a rejected batch leaves the history unchanged
    s.close()
    with pytest.raises(ValueError, match="closed"):
        s.sample(np.zeros(10, dtype=np.float32))
    s.close()  # idempotent
    with Sampler(10) as s2:
        s2.sample(np.zeros(10, dtype=np.float32))
    assert s2.closed


def test_concurrent_use_never_crashes():
    """Two threads hammering one sampler either succeed or get RuntimeError (busy)."""
    v = 65536
    x = rand_logits(np.random.default_rng(9), v)
    s = Sampler(v, temperature=1.0, top_p=0.9)
    errors = []

    def work():
        for _ in range(100):
            try:
                s.sample(x)
            except RuntimeError as e:
                errors.append(e)

    ts = [threading.Thread(target=work) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert all("in use" in str(e) for e in errors)


def test_large_vocab_filters_are_sublinear_in_sorting():
    """top-k / min-p on 65k logits must not cost a full sort per token (sanity bound, generous)."""
    import time

    v = 65536
    x = rand_logits(np.random.default_rng(10), v)
    s = Sampler(v, temperature=0.8, top_k=40, top_p=0.95, min_p=0.05)
    t0 = time.perf_counter()
    for _ in range(200):
        s.sample(x)
    per = (time.perf_counter() - t0) / 200
    assert per < 5e-3, per


# ---- non-finite values after logit bias and penalties (csrc/kernels/ROUNDING.md, "Non-finite values") ----

BIG = 3e38  # finite; two of them overflow float32 to inf


def test_all_banned_by_bias_is_value_error():
    x = np.zeros(8, np.float32)
    for kw in (dict(temperature=0), dict(temperature=1.0), dict(top_k=3), dict(top_p=0.5), dict(min_p=0.2)):
        s = Sampler(8, logit_bias={i: -math.inf for i in range(8)}, **kw)
        with pytest.raises(ValueError, match="no token can be sampled"):
            s.sample(x)
        with pytest.raises(ValueError, match="no token can be sampled"):
            s.dist(x)


def test_bias_overflow_is_the_largest_logit():
    """logit + bias overflowing to +inf is taken as the largest float: that token wins."""
    x = np.array([BIG, 0, 1, -BIG], np.float32)
    for kw in (dict(temperature=0), dict(temperature=1.0, seed=3), dict(top_k=2, seed=3), dict(top_p=0.9, seed=3),
               dict(min_p=0.5, seed=3)):
        s = Sampler(4, logit_bias={0: BIG}, **kw)
        assert np.isfinite(s.processed_logits(x)).all()
        assert set(draw(s, x, 20)) == {0}, kw


def test_penalty_nan_on_a_banned_token_keeps_it_banned():
    """-inf (banned) minus count * frequency overflowing to -inf was NaN, and a NaN row made
    sample() return the last candidate: the banned token."""
    x = np.array([1.0, 0.5, 0.0, 2.0], np.float32)
    for kw in (dict(temperature=1.0), dict(temperature=0.7, top_k=2), dict(top_p=0.8), dict(min_p=0.1), dict(temperature=0)):
        s = Sampler(4, logit_bias={3: -math.inf}, frequency_penalty=-BIG, seed=5, **kw)
        s.accept([3, 3])
        assert s.processed_logits(x)[3] == -math.inf
        got = draw(s, x, 50)
        assert 3 not in got and all(0 <= t < 4 for t in got), kw


def test_penalties_that_make_every_logit_nan_raise():
    """v / tiny repetition penalty overflows to inf, minus count * huge frequency (inf): NaN. Such
    a token counts as banned; top-k then used to keep nothing and read ord[-1]."""
    x = np.array([10.0, 10.0, 1.0, 0.0], np.float32)
    s = Sampler(4, temperature=1.0, top_k=1, repetition_penalty=1e-38, frequency_penalty=BIG, seed=1)
    s.accept([0, 0, 1, 1])
    assert s.processed_logits(x)[:2].tolist() == [-math.inf, -math.inf]
    assert set(draw(s, x, 20)) == {2}
    s.accept([2, 2, 3, 3])  # now every token is NaN after the penalties
    with pytest.raises(ValueError, match="no token can be sampled"):
        s.sample(x)


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

SPECIAL = [math.nan, math.inf, -math.inf, BIG, -BIG, 0.0, 1e-30]


@st.composite
def sampler_case(draw_):
    v = draw_(st.integers(1, 40))
    rng = np.random.default_rng(draw_(st.integers(0, 2**32 - 1)))
    x = (rng.standard_normal(v) * draw_(st.sampled_from([1.0, 30.0, 1e30]))).astype(np.float32)
    for _ in range(draw_(st.integers(0, 4))):
        x[draw_(st.integers(0, v - 1))] = draw_(st.sampled_from(SPECIAL))
    bias = draw_(st.dictionaries(st.integers(0, v - 1), st.sampled_from([-math.inf, BIG, -BIG, 5.0, -5.0, 0.0]),
                                 max_size=v))
    params = dict(
        temperature=draw_(st.sampled_from([0.0, 1e-30, 0.5, 1.0, 7.0])),
        top_k=draw_(st.sampled_from([0, 1, 2, 5, 100])),
        top_p=draw_(st.sampled_from([1.0, 0.9, 0.3, 1e-6])),
        min_p=draw_(st.sampled_from([0.0, 0.05, 0.9, 1.0])),
        repetition_penalty=draw_(st.sampled_from([1.0, 1.3, 1e-38, 1e38])),
        presence_penalty=draw_(st.sampled_from([0.0, 0.5, BIG, -BIG])),
        frequency_penalty=draw_(st.sampled_from([0.0, -0.5, BIG, -BIG])),
        seed=draw_(st.integers(0, 10)),
    )
    hist = draw_(st.lists(st.integers(0, v - 1), max_size=8))
    return v, x, bias, params, hist


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sampler_case())
def test_any_logits_and_params_give_a_valid_token_or_value_error(case):
    v, x, bias, params, hist = case
    s = Sampler(v, logit_bias=bias or None, **params)
    s.accept(hist)
    try:
        t = s.sample(x)
    except ValueError as e:
        assert "logit" in str(e) or "no token can be sampled" in str(e), e
        return
    assert isinstance(t, int) and 0 <= t < v
    assert not (np.isnan(x).any() or (x == np.inf).any())  # such input rows raise
    y = s.processed_logits(x)
    assert np.isfinite(y[t]), (t, y)
    assert np.all((y == -np.inf) | np.isfinite(y))
    ids, probs = s.dist(x)
    assert len(ids) >= 1 and np.all((ids >= 0) & (ids < v)) and np.isfinite(y[ids]).all()
    assert np.isfinite(probs).all() and abs(float(probs.sum()) - 1) < 1e-3


@pytest.mark.reference
def test_generate_with_everything_banned_or_overflowing(tiny_chat_model):
    """User-chosen logit_bias / penalties through Model.generate: a ValueError or valid tokens."""
    m = tiny_chat_model
    V = 1024
    with pytest.raises(ValueError, match="no token can be sampled"):
        m.generate([1, 2, 3], max_tokens=3, logit_bias={i: -math.inf for i in range(V)}, temperature=0.8)
    with pytest.raises(ValueError, match="no token can be sampled"):
        m.generate([1, 2, 3], max_tokens=3, logit_bias={i: -math.inf for i in range(V)}, temperature=0)
    # the prompt's last id banned and penalised to NaN; everything else pushed to +inf by the penalty
    r = m.generate([5, V - 1, V - 1], max_tokens=6, logit_bias={V - 1: -math.inf}, frequency_penalty=-BIG,
                   temperature=1.0, seed=1)
    assert r.token_ids and all(0 <= t < V - 1 for t in r.token_ids)
    r = m.generate([5, 6, 7], max_tokens=6, repetition_penalty=1e-38, frequency_penalty=BIG, top_k=3, seed=2)
    assert all(0 <= t < V for t in r.token_ids)


def test_penalty_window_is_bounded():
    """penalty_last_n sizes a window allocated up front: a huge value is refused, not gigabytes
    (found by the sampler fuzz target)."""
    with pytest.raises(ValueError, match="penalty_last_n"):
        Sampler(16, penalty_last_n=2**31 - 1)
    with pytest.raises(ValueError, match="penalty_last_n"):
        Sampler(16, penalty_last_n=(1 << 20) + 1)
    s = Sampler(16, penalty_last_n=1 << 20, repetition_penalty=1.5, temperature=0)
    s.accept(3)
    x = np.zeros(16, np.float32)
    x[3] = 1.0
    x[5] = 0.9
    assert s.sample(x) == 5  # the window works at the limit: 3 is penalized (1.0 / 1.5 < 0.9)


# ---- allowed-token mask (constrained decoding) ----

def pack_mask(allowed, v):
    """uint32 words with bit i % 32 of word i // 32 set for each allowed token."""
    bits = np.zeros((v + 31) // 32, np.uint32)
    for t in allowed:
        bits[t // 32] |= np.uint32(1 << (t % 32))
    return bits


MASK_PARAMS = [
    dict(temperature=0), dict(temperature=1.0), dict(temperature=0.3), dict(temperature=7.0),
    dict(temperature=1.0, top_k=1), dict(temperature=1.0, top_k=5), dict(temperature=1.0, top_k=500),
    dict(temperature=1.0, top_p=0.9), dict(temperature=2.0, top_p=0.3), dict(temperature=1.0, min_p=0.2),
    dict(temperature=1.0, top_k=8, top_p=0.8, min_p=0.05),
    dict(temperature=1.0, repetition_penalty=1e-3), dict(temperature=1.0, presence_penalty=-BIG),
    dict(temperature=0, frequency_penalty=-1e6),
]


@pytest.mark.parametrize("params", MASK_PARAMS)
def test_masked_tokens_are_never_sampled(params):
    """Whatever pushes a disallowed token up (its logit, bias, negative penalties on it), it stays
    out: the mask is applied before everything else."""
    v = 100  # not a multiple of 32: the last word is partial
    rng = np.random.default_rng(1)
    x = rand_logits(rng, v, scale=5.0)
    allowed = sorted(rng.choice(v, size=7, replace=False).tolist())
    banned_best = [t for t in np.argsort(-x) if t not in allowed][:5]
    s = Sampler(v, seed=3, logit_bias={int(t): 1e30 for t in banned_best}, **params)
    s.accept([int(t) for t in banned_best] * 3)  # negative penalties raise these further
    s.set_allowed(pack_mask(allowed, v))
    got = draw(s, x, 300)
    assert set(got) <= set(allowed), (sorted(set(got) - set(allowed)), params)
    ids, probs = s.dist(x)
    assert set(ids.tolist()) <= set(allowed) and abs(float(probs.sum()) - 1) < 1e-4
    y = s.processed_logits(x)
    assert np.all(y[[t for t in range(v) if t not in allowed]] == -np.inf)


def test_masked_distribution_is_the_filters_over_the_allowed_tokens():
    rng = np.random.default_rng(2)
    v = 77
    for trial in range(40):
        x = rand_logits(rng, v)
        allowed = rng.random(v) < 0.4
        allowed[rng.integers(v)] = True
        params = dict(temperature=float(rng.choice([0.5, 1.0, 2.0])), top_k=int(rng.choice([0, 3, 10])),
                      top_p=float(rng.choice([1.0, 0.9, 0.5])), min_p=float(rng.choice([0.0, 0.1])))
        s = Sampler(v, **params)
        s.set_allowed(pack_mask(np.flatnonzero(allowed), v))
        want = ref_filter(np.where(allowed, x, -np.inf).astype(np.float32), **params)
        assert_same_dist(dist_dict(s, x), want)


def test_greedy_picks_the_best_allowed_token():
    rng = np.random.default_rng(3)
    v = 300
    for trial in range(30):
        x = rand_logits(rng, v)
        allowed = rng.choice(v, size=int(rng.integers(1, 20)), replace=False)
        s = Sampler(v, temperature=0)
        s.set_allowed(pack_mask(allowed, v))
        best = allowed[np.argmax(x[allowed])]
        assert s.sample(x) == best and draw(s, x, 3) == [best] * 3


def test_full_mask_changes_nothing_and_none_clears():
    """An all-ones mask takes the unmasked path's values: same draws from the same seed."""
    rng = np.random.default_rng(4)
    v = 1000
    x = rand_logits(rng, v)
    for params in (dict(temperature=0.8), dict(temperature=1.0, top_p=0.9), dict(temperature=1.0, top_k=40)):
        a, b = Sampler(v, seed=9, **params), Sampler(v, seed=9, **params)
        b.set_allowed(np.full((v + 31) // 32, 0xFFFFFFFF, np.uint32))
        assert draw(a, x, 200) == draw(b, x, 200)
    s = Sampler(v, temperature=0)
    s.set_allowed(pack_mask([5], v))
    assert s.sample(x) == 5
    s.set_allowed(None)
    assert s.sample(x) == int(np.argmax(x))


def test_mask_is_copied_persists_and_survives_reset():
    v = 64
    x = np.zeros(v, np.float32)
    x[10] = 5.0
    bits = pack_mask([3], v)
    s = Sampler(v, temperature=0)
    s.set_allowed(bits)
    bits[:] = 0xFFFFFFFF  # the sampler holds its own copy
    assert draw(s, x, 3) == [3, 3, 3]
    s.reset()
    assert s.sample(x) == 3


def test_bits_past_the_vocabulary_are_ignored():
    v = 70  # 3 words; bits 70..95 do not name tokens
    bits = pack_mask([], v)
    bits[2] = np.uint32(0xFFFFFFFF) & ~np.uint32(0b111111)  # only bits >= 70
    s = Sampler(v, temperature=1.0)
    s.set_allowed(bits)
    with pytest.raises(ValueError, match="allows none"):
        s.sample(np.zeros(v, np.float32))
    bits[2] |= np.uint32(1 << 5)  # token 69
    s.set_allowed(bits)
    assert set(draw(s, np.zeros(v, np.float32), 20)) == {69}


def test_empty_mask_or_only_banned_tokens_raise_clearly():
    v = 40
    x = np.zeros(v, np.float32)
    s = Sampler(v, temperature=0.7, logit_bias={2: -math.inf})
    s.set_allowed(pack_mask([], v))
    for call in (s.sample, s.dist, s.processed_logits):
        with pytest.raises(ValueError, match="mask allows none"):
            call(x)
    s.set_allowed(pack_mask([2], v))  # allowed, but banned by the bias
    with pytest.raises(ValueError, match="no token can be sampled.*mask"):
        s.sample(x)
    x[3] = -np.inf
    s.set_allowed(pack_mask([3], v))  # allowed, but -inf in the row
    with pytest.raises(ValueError, match="no token can be sampled"):
        s.sample(x)


def test_bad_masks_are_refused_and_keep_the_previous_one():
    v = 100
    s = Sampler(v, temperature=0)
    s.set_allowed(pack_mask([7], v))
    x = np.zeros(v, np.float32)
    for bad, exc, msg in [
        (np.zeros(3, np.uint32), ValueError, "4 words"),
        (np.zeros(5, np.uint32), ValueError, "got 5"),
        (np.zeros(0, np.uint32), ValueError, "got 0"),
        (np.zeros((4, 1), np.uint32), ValueError, "1-D"),
        (np.zeros(4, np.int64), TypeError, "uint32"),
        (np.zeros(4, np.float32), TypeError, "uint32"),
        (np.zeros(8, np.uint16), TypeError, "uint32"),
        (np.zeros(8, np.uint32)[::2], ValueError, "contiguous"),
        ([1, 2, 3, 4], TypeError, "uint32 array or None"),
        (7, TypeError, "uint32 array or None"),
    ]:
        with pytest.raises(exc, match=msg):
            s.set_allowed(bad)
        assert s.sample(x) == 7, bad
    s.close()
    with pytest.raises(ValueError, match="closed"):
        s.set_allowed(None)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sampler_case(), st.data())
def test_any_mask_gives_an_allowed_token_or_value_error(case, data):
    v, x, bias, params, hist = case
    allowed = data.draw(st.sets(st.integers(0, v - 1), max_size=v))
    s = Sampler(v, logit_bias=bias or None, **params)
    s.accept(hist)
    s.set_allowed(pack_mask(allowed, v))
    try:
        t = s.sample(x)
    except ValueError as e:
        assert "logit" in str(e) or "no token can be sampled" in str(e), e
        return
    assert t in allowed
    ids, _ = s.dist(x)
    assert set(ids.tolist()) <= allowed
