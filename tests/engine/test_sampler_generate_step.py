"""_core.generate_step (csrc/runtime/generate.c): the C step of the generation loop on the engine's context."""
import numpy as np
import pytest

import liquidlfm as lfm
from liquidlfm import _core
from tests.fixtures.hf_models import make_hf_model

pytestmark = pytest.mark.reference  # models are built with transformers

V = 300


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = make_hf_model(tmp_path_factory.mktemp("gs"), vocab_size=V, hidden_size=64, num_hidden_layers=2,
                         layer_types=["conv", "full_attention"], num_attention_heads=4, num_key_value_heads=2,
                         intermediate_size=96, seed=5, tokenizer=False)
    m = lfm.load(path)
    yield m
    m.close()


def test_matches_sample_then_decode(model):
    prompt = [1, 20, 30, 40]
    with model.session(n_ctx=64) as a, model.session(n_ctx=64) as b:
        a.prefill(prompt)
        logits = b.prefill(prompt)
        sa = _core.Sampler(V, temperature=0.9, top_k=20, seed=3, repetition_penalty=1.2)
        sb = _core.Sampler(V, temperature=0.9, top_k=20, seed=3, repetition_penalty=1.2)
        for _ in range(15):
            t, fin = _core.generate_step(a._ctx, sa, [])
            u = sb.sample(logits)
            sb.accept(u)
            logits = b.step(u)
            assert (t, fin) == (u, _core.FINISH_NONE)
            assert sa.count(t) == sb.count(t)
        assert a.pos == b.pos == len(prompt) + 15
        np.testing.assert_array_equal(a.logits, b.logits)


def test_stop_ids_and_length(model):
    with model.session(n_ctx=8) as s:
        s.prefill([1, 2, 3])
        greedy = _core.Sampler(V, temperature=0)
        t = int(np.argmax(s.logits))
        tok, fin = _core.generate_step(s._ctx, greedy, [t, 5])
        assert (tok, fin) == (t, _core.FINISH_STOP) and s.pos == 3  # a stop token is not decoded
        fins = []
        for _ in range(5):
            tok, fin = _core.generate_step(s._ctx, greedy, ())
            fins.append(fin)
        assert fins == [0, 0, 0, 0, _core.FINISH_LENGTH] and s.pos == 8
        tok, fin = _core.generate_step(s._ctx, greedy, None)  # full on entry: returned, not decoded
        assert fin == _core.FINISH_LENGTH and s.pos == 8 and 0 <= tok < V


def test_bad_arguments(model):
    with model.session(n_ctx=16) as s:
        smp = _core.Sampler(V)
        with pytest.raises(ValueError, match="no logits"):
            _core.generate_step(s._ctx, smp)  # nothing decoded yet
        s.prefill([1, 2])
        with pytest.raises(ValueError, match="n_vocab"):
            _core.generate_step(s._ctx, _core.Sampler(V + 1))
        with pytest.raises(TypeError):
            _core.generate_step(s, smp)  # the Python Session, not its _core.Ctx
        with pytest.raises(TypeError):
            _core.generate_step(s._ctx, object())
        with pytest.raises(TypeError):
            _core.generate_step(s._ctx, smp, ["a"])
        assert s.pos == 2
    with pytest.raises(ValueError, match="closed"):
        _core.generate_step(s._ctx, smp)
    smp.close()
    with model.session(n_ctx=16) as s2:
        s2.prefill([1])
        with pytest.raises(ValueError, match="closed"):
            _core.generate_step(s2._ctx, smp)


def test_allowed_mask_applies_to_the_c_step(model):
    """The C loop samples through the sampler, so its mask holds there too: every step picks from
    the allowed set (changed between steps, as constrained decoding does), greedy the best of it,
    and a mask allowing nothing fails the step cleanly, leaving the context as it was."""
    def mask(ids):
        bits = np.zeros((V + 31) // 32, np.uint32)
        for t in ids:
            bits[t // 32] |= np.uint32(1 << (t % 32))
        return bits

    rng = np.random.default_rng(0)
    with model.session(n_ctx=64) as s:
        s.prefill([1, 2, 3])
        smp = _core.Sampler(V, temperature=1.5, seed=4)
        for _ in range(12):
            allowed = rng.choice(V, size=3, replace=False).tolist()
            smp.set_allowed(mask(allowed))
            tok, fin = _core.generate_step(s._ctx, smp, ())
            assert tok in allowed and fin == _core.FINISH_NONE
        greedy = _core.Sampler(V, temperature=0)
        allowed = rng.choice(V, size=10, replace=False)
        greedy.set_allowed(mask(allowed))
        best = int(allowed[np.argmax(s.logits[allowed])])
        assert _core.generate_step(s._ctx, greedy, ())[0] == best
        pos = s.pos
        greedy.set_allowed(mask([]))
        with pytest.raises(ValueError, match="allows none"):
            _core.generate_step(s._ctx, greedy, ())
        assert s.pos == pos
