"""Many sequences in one context: _core.Ctx(n_seq=...).decode_seqs (lfm_ctx_decode_seqs) against each
sequence decoded alone in a single-sequence context with the same chunks.

The scenario (run_batched): 5 to 12 requests of random prompt lengths (1 to 40 tokens, cut into prefill
chunks of 1 to 12), each followed by 16 greedy one-token steps, share 3 to 8 sequence slots; a request
joins when a slot is free and its start step has come, runs one chunk or one decode token per step
beside the others (so a step mixes prefill chunks and decode tokens of 3 to 8 sequences, up to 48
tokens), and leaves by seq_reset, freeing its slot for the next request.

What is compared, per model type and per kernel level present (ref, avx2, avx512 here; each level is
run in a child process with LFM_KERNELS): the greedy tokens (equal everywhere) and every logits row the
two runs return. Bit-identical wherever the kernels give a token's row the same floats whatever the
number of rows in the matmul: Q4_0 (X8 repacked) and Q8_0 at every level, F32 / F16 weights on the
engine's GEMM, both KV cache types (the attention takes the one-token order for a sequence's only token
in a step, as when it is decoded alone), and every type at `ref`. Where batch size changes the order
of the float sums (kernels/ROUNDING.md, the "T" column), a row may differ from the same row computed
alone:
  - Q4_K: the first floor(T/4)*4 rows of a matmul take the 4-row GEMM order (one FMA per 64-element
    chunk instead of per block);
  - Q5_K and Q6_K: the tiled order from 8 rows on. In a llama.cpp Q4_0 file the head (the tied
    embedding) is Q6_K, so logits gathered for 8 or more sequences in one step differ in the last
    bits (nothing feeds back into the state); in Q4_K_M the Q6_K / Q4_K layers do feed back, and a
    last-bit change that moves one 8-bit activation quant by a step shows as a jump of ~1e-2 in the
    logits on this random model;
  - OpenBLAS (blas="on", or "auto" from its batch threshold on F32 / BF16 safetensors weights): sgemm's
    own blocking, which changes with the batch size.
The bounds asserted are the ones measured on these fixtures (BOUNDS below); the greedy tokens agree
for every type.
"""
from __future__ import annotations

import json
import os
import subprocess
import threading
import _thread
from pathlib import Path

import numpy as np
import pytest

import liquidlfm as lfm
from liquidlfm import _blas, _core

from .test_quants import python_argv, simd_levels_present

pytestmark = pytest.mark.reference  # the models are built with transformers and llama.cpp's quantizer

REPO = Path(__file__).resolve().parents[2]
V = 512
# small weights (std 0.02) so that a 1e-2 jump in Q4_K_M's logits does not tip a greedy choice
MODEL = dict(vocab_size=V, hidden_size=256, num_hidden_layers=4, layer_types=["conv", "full_attention"] * 2,
             num_attention_heads=4, num_key_value_heads=2, intermediate_size=512, seed=5, tokenizer=False,
             weight_std=0.02)
TYPES = ("f32", "f16", "q4_0", "q8_0", "q4_0_llama", "q4_k_m")
# max |logit(batched) - logit(alone)| at the SIMD levels, as measured on these fixtures (avx2 and
# avx512 give the same floats; the ref level is exact for every type); 0.0 means bit-identical
BOUNDS = {"f32": 0.0, "f16": 0.0, "q4_0": 0.0, "q8_0": 0.0,
          "q4_0_llama": 4e-7,  # measured 3.0e-7: the Q6_K head's tiled order, on logits of magnitude ~2
          "q4_k_m": 0.02}      # measured 0.0185
SCENARIOS = (  # slots, requests, seed, kv_f16
    (3, 5, 1, False),
    (5, 8, 2, True),
    (8, 12, 3, False),
)


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    from tests.fixtures.gguf_models import hf_to_gguf, llama_quantize
    from tests.fixtures.hf_models import make_hf_model

    d = tmp_path_factory.mktemp("batch")
    out = {"f32": make_hf_model(d / "f32", dtype="float32", **MODEL),
           "f16": make_hf_model(d / "f16", dtype="float16", **MODEL)}
    for t in ("q4_0", "q8_0"):  # every matrix in the type (the gguf package's encoder)
        out[t] = hf_to_gguf(out["f32"], d / f"{t}.gguf", t)
    f16 = hf_to_gguf(out["f32"], d / "f16.gguf", "f16")
    out["q4_0_llama"] = llama_quantize(f16, d / "q4_0_llama.gguf", "q4_0")  # Q6_K embedding / head
    out["q4_k_m"] = llama_quantize(f16, d / "q4_k_m.gguf", "q4_k_m")
    return {k: str(v) for k, v in out.items()}


@pytest.fixture(scope="module")
def q4_0(paths):
    with _core.Model(paths["q4_0"]) as m:
        yield m


# ---- the scenario ----

def make_requests(seed, n_req, n_gen=16, max_prompt=40):
    """Each request: a prompt cut into prefill chunks (some with logits), then n_gen greedy steps."""
    rng = np.random.default_rng(seed)
    reqs = []
    for _ in range(n_req):
        prompt = rng.integers(0, V, int(rng.integers(1, max_prompt + 1))).tolist()
        chunks, i = [], 0
        while i < len(prompt):
            k = int(rng.integers(1, 13))
            chunks.append(prompt[i:i + k])
            i += k
        want = [bool(rng.integers(0, 2)) for _ in chunks[:-1]] + [True]
        reqs.append({"chunks": chunks, "want": want, "n_gen": n_gen, "start": int(rng.integers(0, 4))})
    return reqs


def run_alone(model, req, **ctx_kw):
    """The request in a context of its own: its logits rows in order, and its greedy tokens."""
    rows, toks = [], []
    with _core.Ctx(model, **ctx_kw) as c:
        for chunk, want in zip(req["chunks"], req["want"]):
            r = c.decode(chunk, logits="last" if want else "none")
            if want:
                rows.append(r)
        for _ in range(req["n_gen"]):
            toks.append(int(np.argmax(rows[-1])))
            rows.append(c.decode([toks[-1]]))
    return np.stack(rows), toks


def run_batched(model, reqs, n_slots, **ctx_kw):
    """Every request through one context of n_slots sequences (see the module docstring). Returns per
    request its logits rows and greedy tokens, and the most tokens one step ran."""
    rows, toks = [[] for _ in reqs], [[] for _ in reqs]
    done = [0] * len(reqs)  # chunks run, then one more per decode step
    slot_of, waiting, free = {}, list(range(len(reqs))), list(range(n_slots))
    step, biggest = 0, 0
    with _core.Ctx(model, n_seq=n_slots, **ctx_kw) as c:
        assert c.n_seq == n_slots
        while waiting or slot_of:
            for r in [r for r in waiting if reqs[r]["start"] <= step][:len(free)]:
                slot_of[r] = free.pop(0)
                waiting.remove(r)
                assert c.seq_pos(slot_of[r]) == 0
            batch = []
            for r, s in slot_of.items():
                req, k = reqs[r], done[r]
                if k < len(req["chunks"]):
                    batch.append((r, (s, req["chunks"][k], req["want"][k])))
                else:
                    toks[r].append(int(np.argmax(rows[r][-1])))
                    batch.append((r, (s, [toks[r][-1]], True)))
            step += 1
            if not batch:
                continue
            biggest = max(biggest, sum(len(ids) for _, (_, ids, _) in batch))
            before = {s: c.seq_pos(s) for _, (s, _, _) in batch}
            out = c.decode_seqs([chunk for _, chunk in batch])
            assert out.dtype == np.float32 and out.shape == (sum(w for _, (_, _, w) in batch), V)
            it = iter(out)
            for r, (s, ids, want) in batch:
                assert c.seq_pos(s) == before[s] + len(ids)
                if want:
                    rows[r].append(next(it))
                done[r] += 1
                if done[r] == len(reqs[r]["chunks"]) + reqs[r]["n_gen"]:
                    c.seq_reset(s)
                    free.append(slot_of.pop(r))
    return [np.stack(x) for x in rows], toks, biggest


def measure(path, blas="off", scenarios=SCENARIOS):
    """Over the scenarios: whether every request's greedy tokens match its run alone, the largest
    logits difference, and the largest step."""
    same, worst, biggest = True, 0.0, 0
    with _core.Model(path) as m:
        for n_slots, n_req, seed, kv_f16 in scenarios:
            kw = dict(n_ctx=128, kv_f16=kv_f16, blas=blas, n_threads=2)
            reqs = make_requests(seed, n_req)
            got_rows, got_toks, big = run_batched(m, reqs, n_slots, **kw)
            biggest = max(biggest, big)
            for req, rows, toks in zip(reqs, got_rows, got_toks):
                want_rows, want_toks = run_alone(m, req, **kw)
                same &= toks == want_toks
                assert rows.shape == want_rows.shape
                worst = max(worst, float(np.abs(rows.astype(np.float64) - want_rows).max()))
    return {"tokens_equal": same, "max_abs": worst, "biggest": biggest}


def measure_all(paths):
    return {t: measure(paths[t]) for t in TYPES}


_RESULTS = {}


def results_at(level, paths):
    """measure_all at a kernel level: in this process for the level it runs, else in a child."""
    if level not in _RESULTS:
        if level == _core._quant_kernels():
            _RESULTS[level] = measure_all(paths)
        else:
            code = ("import json; from tests.engine.test_batch_decode import measure_all; "
                    f"print(json.dumps(measure_all({paths!r})))")
            env = dict(os.environ, LFM_KERNELS=level)
            r = subprocess.run([*python_argv(), "-c", code], env=env, cwd=REPO, capture_output=True, text=True,
                               timeout=600)
            assert r.returncode == 0, r.stderr[-3000:]
            _RESULTS[level] = json.loads(r.stdout.strip().splitlines()[-1])
    return _RESULTS[level]


LEVELS = ["ref"] + simd_levels_present(_core.cpu_features())[1]


@pytest.mark.parametrize("wtype", TYPES)
@pytest.mark.parametrize("level", LEVELS)
def test_each_sequence_as_if_alone(paths, level, wtype):
    if os.environ.get("LFM_KERNELS") and level != _core._quant_kernels():
        pytest.skip(f"LFM_KERNELS={os.environ['LFM_KERNELS']} is set for this run: only its level is measured")
    res = results_at(level, paths)[wtype]
    assert res["biggest"] >= 16  # steps of several sequences and prefill chunks did run together
    assert res["tokens_equal"]
    bound = 0.0 if level == "ref" else BOUNDS[wtype]
    assert res["max_abs"] <= bound, f"{wtype} at {level}: max |delta logit| {res['max_abs']:.3g} > {bound:g}"


@pytest.mark.parametrize("kv_f16, bound", [(False, 3e-6), (True, 4e-4)])
def test_openblas_batches_within_rounding(paths, kv_f16, bound):
    """blas="on": every float matmul on OpenBLAS, whose blocking depends on the batch size. Measured
    (OpenBLAS 0.3.34, SkylakeX kernels): 1.8e-6 with an F32 KV cache; 3.4e-4 with an F16 one, where a
    last-bit change can move a cached value by one F16 step."""
    path = _blas.library_path()
    assert path is not None, "scipy-openblas32 is a test dependency: pip install -e '.[test]'"
    _core.blas_load(path)
    scenarios = [(slots, n, seed, kv_f16) for slots, n, seed, _ in SCENARIOS]
    for t in ("f32", "f16"):
        res = measure(paths[t], blas="on", scenarios=scenarios)
        assert res["tokens_equal"]
        assert res["max_abs"] <= bound, (t, res)


# ---- sharing a prompt, splitting into n_batch passes ----

def alone_pieces(model, pieces, **kw):
    """Logits after the last piece of a sequence decoded alone piece by piece."""
    with _core.Ctx(model, n_ctx=128, **kw) as c:
        for p in pieces[:-1]:
            c.decode(p, logits="none")
        return c.decode(pieces[-1])


def test_seq_copy_then_diverge_equals_fresh_runs(q4_0):
    rng = np.random.default_rng(7)
    prompt = rng.integers(0, V, 23).tolist()
    tails = [rng.integers(0, V, n).tolist() for n in (1, 4, 1, 9)]
    with _core.Ctx(q4_0, n_ctx=128, n_seq=4) as c:
        c.decode_seqs([(2, prompt, False)])  # the shared prompt, once, in sequence 2
        for s in (0, 1, 3):
            c.seq_copy(2, s)
        c.seq_copy(2, 2)  # onto itself: nothing changes
        assert [c.seq_pos(s) for s in range(4)] == [23] * 4
        got = c.decode_seqs([(s, tails[s], True) for s in range(4)])
        for _ in range(5):  # diverge further, greedy
            got = c.decode_seqs([(s, [int(np.argmax(got[s]))], True) for s in range(4)])
        for s in range(4):
            with _core.Ctx(q4_0, n_ctx=128) as a:
                a.decode(prompt, logits="none")
                want = a.decode(tails[s])
                for _ in range(5):
                    want = a.decode([int(np.argmax(want))])
            np.testing.assert_array_equal(got[s], want)
        # a copy replaces what the destination held
        c.seq_copy(0, 1)
        assert c.seq_pos(1) == c.seq_pos(0)
        a_row, b_row = c.decode_seqs([(0, [5], True), (1, [5], True)])
        np.testing.assert_array_equal(a_row, b_row)


def cut(chunks, n_batch):
    """The forward passes decode_seqs makes: chunks taken in order, n_batch tokens per pass, a chunk
    that does not fit continued at the start of the next pass. Returns each chunk's pieces."""
    pieces, room = [[] for _ in chunks], n_batch
    for i, ids in enumerate(chunks):
        at = 0
        while at < len(ids):
            if room == 0:
                room = n_batch
            take = min(room, len(ids) - at)
            pieces[i].append(ids[at:at + take])
            at += take
            room -= take
    return pieces


@pytest.mark.parametrize("lengths", [(5, 6, 7), (8, 1, 9, 3), (20, 2)])
def test_n_batch_splits_into_passes(q4_0, lengths):
    """More tokens than n_batch: several forward passes, a chunk cut between two. Each sequence gives
    what it gives alone decoded in the same pieces (one-token pieces included)."""
    rng = np.random.default_rng(len(lengths))
    chunks = [rng.integers(0, V, n).tolist() for n in lengths]
    n_batch = 8
    with _core.Ctx(q4_0, n_ctx=128, n_batch=n_batch, n_seq=len(chunks)) as c:
        assert c.n_batch == n_batch
        got = c.decode_seqs([(s, ids, True) for s, ids in enumerate(chunks)])
        assert [c.seq_pos(s) for s in range(len(chunks))] == list(lengths)
    assert got.shape == (len(chunks), V)
    for s, pieces in enumerate(cut(chunks, n_batch)):
        assert sum(map(len, pieces)) == lengths[s]
        np.testing.assert_array_equal(got[s], alone_pieces(q4_0, pieces, n_batch=n_batch))
    assert any(len(p) > 1 for p in cut(chunks, n_batch))  # a chunk was cut between two passes


def test_logits_rows_only_where_asked(q4_0):
    with _core.Ctx(q4_0, n_ctx=32, n_seq=3) as c:
        out = c.decode_seqs([(0, [1, 2], False), (2, [3], False)])
        assert out.shape == (0, V) and out.dtype == np.float32
        out = c.decode_seqs([(2, [4, 5], True), (1, [6], False), (0, [7], True)])
        assert out.shape == (2, V)
        assert [c.seq_pos(s) for s in range(3)] == [3, 1, 3]
    np.testing.assert_array_equal(out[0], alone_pieces(q4_0, [[3], [4, 5]]))  # sequence 2
    np.testing.assert_array_equal(out[1], alone_pieces(q4_0, [[1, 2], [7]]))  # sequence 0


def test_sequence_zero_is_the_single_sequence_api(q4_0):
    """decode / pos / reset / save / load act on sequence 0; a blob moves between n_seq = 1 and 4."""
    ids = list(range(3, 20))
    with _core.Ctx(q4_0, n_ctx=64) as one, _core.Ctx(q4_0, n_ctx=64, n_seq=4) as many:
        want = one.decode(ids)
        many.decode_seqs([(1, ids[:5], False)])
        np.testing.assert_array_equal(many.decode(ids), want)
        assert (many.pos, many.seq_pos(0), many.seq_pos(1)) == (len(ids), len(ids), 5)
        np.testing.assert_array_equal(many.last_logits(), want)
        blob = many.save()
        assert blob == one.save()  # the single-sequence layout
        many.reset()
        assert (many.pos, many.seq_pos(1)) == (0, 5)  # only sequence 0
        many.load(blob)
        step = many.decode_seqs([(0, [9], True), (1, [9], True)])
        np.testing.assert_array_equal(step[0], one.decode([9]))
        assert many.last_logits() is None  # rows of a batch are not "sequence 0's last token"


# ---- errors leave everything as it was ----

def snapshot_and_step(c, n_seq):
    """Positions, then one more token for every sequence (their logits show the whole state)."""
    pos = [c.seq_pos(s) for s in range(n_seq)]
    return pos, c.decode_seqs([(s, [11], True) for s in range(n_seq)])


@pytest.fixture
def prefilled(q4_0):
    """Two identical contexts of 3 sequences at positions 4, 7, 2 (n_ctx 8)."""
    def make():
        c = _core.Ctx(q4_0, n_ctx=8, n_seq=3)
        c.decode_seqs([(0, [1, 2, 3, 4], False), (1, list(range(5, 12)), False), (2, [12, 13], False)])
        return c
    a, b = make(), make()
    yield a, b
    a.close()
    b.close()


@pytest.mark.parametrize("chunks, exc, match", [
    ([], ValueError, "empty chunk list"),
    ([(3, [1], True)], ValueError, r"chunk 0: sequence 3 is out of range \[0, 3\)"),
    ([(0, [1], True), (-1, [1], True)], ValueError, r"chunk 1: sequence -1 is out of range"),
    ([(0, [1], True), (2, [1], True), (0, [2], True)], ValueError, "chunk 2: sequence 0 already has chunk 0"),
    ([(0, [1], True), (2, [], True)], ValueError, "chunk 1: empty token list"),
    ([(0, [1], True), (2, [1, V], True)], ValueError, rf"chunk 1: token id {V} at index 1 is out of range \[0, {V}\)"),
    ([(0, [-1], True)], ValueError, "chunk 0: token id -1 at index 0 is out of range"),
    ([(0, [1], True), (2, [1.5], True)], TypeError, "chunk 1: token ids must be ints"),
    ([(0, "ab", True)], TypeError, "chunk 0: token ids must be a sequence of ints, not str"),
    ([(0, [1])], TypeError, r"chunk 0 must be a \(seq, ids, want_logits\) tuple"),
    ([[0, [1], True], 5], TypeError, r"chunk 1 must be a \(seq, ids, want_logits\) tuple, got int"),
    ([("0", [1], True)], TypeError, "the sequence number must be an int, not str"),
    ([(2**40, [1], True)], ValueError, "chunk 0: the sequence number is out of range"),
    ([(0, [1], True), (1, [2, 3], True)], lfm.ContextFullError, r"sequence 1 is full: 2 tokens do not fit \(position 7 of 8\)"),
    ([(0, [1, 2, 3, 4, 5], True)], lfm.ContextFullError, r"sequence 0 is full: 5 tokens do not fit \(position 4 of 8\)"),
])
def test_bad_calls_change_nothing(prefilled, chunks, exc, match):
    c, untouched = prefilled
    with pytest.raises(exc, match=match):
        c.decode_seqs(chunks)
    pos, rows = snapshot_and_step(c, 3)
    want_pos, want_rows = snapshot_and_step(untouched, 3)
    assert pos == want_pos == [4, 7, 2]
    np.testing.assert_array_equal(rows, want_rows)


def test_chunks_must_be_a_list(q4_0):
    with _core.Ctx(q4_0, n_ctx=8, n_seq=2) as c:
        with pytest.raises(TypeError, match="chunks must be a list"):
            c.decode_seqs((s, [1], True) for s in range(2))
        c.decode_seqs(((0, [1], True), (1, [2], True)))  # a tuple is a list here
        assert (c.seq_pos(0), c.seq_pos(1)) == (1, 1)


def test_bad_sequence_arguments(q4_0):
    for n_seq in (0, -2):
        with pytest.raises(ValueError, match="n_seq must be >= 1"):
            _core.Ctx(q4_0, n_ctx=8, n_seq=n_seq)
    with _core.Ctx(q4_0, n_ctx=8, n_seq=2) as c:
        with pytest.raises(ValueError, match=r"sequence 2 is out of range \[0, 2\)"):
            c.seq_pos(2)
        with pytest.raises(ValueError, match=r"sequence -1 is out of range \[0, 2\)"):
            c.seq_reset(-1)
        with pytest.raises(ValueError, match=r"sequence 0 -> 5: both must be in \[0, 2\)"):
            c.seq_copy(0, 5)
        with pytest.raises(TypeError, match="seq must be an int"):
            c.seq_pos(1.0)
        with pytest.raises(ValueError, match="src is out of range"):
            c.seq_copy(-2**63, 0)
        assert c.n_seq == 2
    with _core.Ctx(q4_0, n_ctx=8) as c:
        assert c.n_seq == 1


# ---- aborting ----

def test_abort_resets_the_sequences_of_the_call(q4_0):
    with _core.Ctx(q4_0, n_ctx=64, n_seq=3) as c, _core.Ctx(q4_0, n_ctx=64, n_seq=3) as ref:
        for ctx in (c, ref):
            ctx.decode_seqs([(0, [1, 2, 3], False), (1, [4, 5], False), (2, [6], False)])
        c._set_abort_after(2)  # stop after the 3rd layer check
        with pytest.raises(lfm.Cancelled, match="aborted"):
            c.decode_seqs([(2, list(range(7, 30)), True), (0, [9], True)])
        c._set_abort_after(-1)
        assert [c.seq_pos(s) for s in range(3)] == [0, 2, 0]  # 0 and 2 reset, 1 untouched
        ref.seq_reset(0)
        ref.seq_reset(2)
        np.testing.assert_array_equal(*(ctx.decode_seqs([(s, [12, 13], True) for s in range(3)]) for ctx in (c, ref)))


def test_ctrl_c_stops_a_long_call(paths, sigint_raises_keyboard_interrupt):
    with _core.Model(paths["q4_0"]) as m, _core.Ctx(m, n_ctx=4096, n_seq=4, n_batch=64) as c:
        c.decode_seqs([(s, [1, 2], False) for s in range(4)])
        long_call = [(s, [int(x) for x in np.arange(4000) % V], False) for s in range(3)]
        timer = threading.Timer(0.2, _thread.interrupt_main)
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            c.decode_seqs(long_call)  # ~12 000 tokens: several seconds uninterrupted
        timer.join()
        assert [c.seq_pos(s) for s in range(4)] == [0, 0, 0, 2]
        c.decode_seqs([(0, [5], True)])  # still usable


# ---- Python code run by the argument conversions ----

class Hooked(list):
    """Token ids whose conversion (len) runs hook() once, recording what it raised."""

    def __init__(self, ids, hook):
        super().__init__(ids)
        self.hook, self.errors = hook, []

    def __len__(self):
        if self.hook:
            hook, self.hook = self.hook, None
            try:
                hook()
            except (RuntimeError, ValueError) as e:
                self.errors.append(e)
        return super().__len__()


def test_conversions_cannot_free_what_the_call_uses(paths):
    m = _core.Model(paths["q4_0"])
    ctx = _core.Ctx(m, n_ctx=16, n_seq=2)
    ids = Hooked([1, 2], ctx.close)  # refused: the call is using the context
    out = ctx.decode_seqs([(0, [3], True), (1, ids, True)])
    assert out.shape == (2, V) and "in use" in str(ids.errors[0])
    ids = Hooked([4], m.close)  # deferred while the context uses the weights; the call then refuses
    with pytest.raises(ValueError, match="model is closed"):
        ctx.decode_seqs([(1, ids, True)])
    assert m.closed and not ids.errors
    ctx.close()
