"""LFM2-MoE (transformers' Lfm2MoeForCausalLM, llama.cpp's lfm2moe) on random-weight checkpoints.

The configurations differ in what transformers' defaults do not cover: expert counts and top-k
(k = 2 of 4, 4 of 8, 2 of 16, all 6 of 6), how many leading layers stay dense (0, 1, 2), layer-type
orders (attention first, conv only), GQA ratios (2, MHA, MQA), tied and untied heads, no expert bias
with un-normalized, scaled weights. The expert bias is drawn random (transformers initializes it to
zero), so the ranking it changes is tested.

Against transformers (F32 safetensors): full forward, token-by-token decode, chunked prefill,
prefill then steps against its own cache, greedy generation. Against llama-cpp-python 0.3.36 (the
pinned AVX2 build): GGUFs written by the gguf package (F32, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1) and
requantized by llama.cpp (Q4_K_M, Q5_K_M, Q6_K), in one batch and one token at a time; our writer's
files against llama-quantize's, tensor by tensor. Run with -s for the parity tables."""
import json
import re
import shutil
import struct

import numpy as np
import pytest

import liquidlfm as lfm
from liquidlfm import ModelFormatError, UnsupportedModelError
from liquidlfm.quantize import FILE_TYPE, quantize_hf
from tests.fixtures.gguf_models import hf_to_gguf, llama_quantize, require_exact_llama_reference
from tests.fixtures.hf_models import (assert_greedy_matches_hf_generate, hf_cached_decode_logits, hf_logits,
                                      load_moe_hf_model, make_moe_hf_model)
from tests.fixtures.parity import F32_BOUND, check_full_forward_f32, print_parity_table, random_ids

pytestmark = pytest.mark.reference  # transformers builds the models and computes the expected logits

A, C = "full_attention", "conv"

CONFIGS = {
    # name: make_moe_hf_model kwargs
    "h64_e4k2_dense1_gqa2": dict(
        vocab_size=320, hidden_size=64, num_hidden_layers=4, layer_types=[C, A, C, A], num_attention_heads=4,
        num_key_value_heads=2, intermediate_size=96, moe_intermediate_size=32, num_experts=4, num_experts_per_tok=2,
        num_dense_layers=1),
    "h96_e8k4_all_moe_mha_attn_first_untied": dict(
        vocab_size=384, hidden_size=96, num_hidden_layers=5, layer_types=[A, C, C, A, C], num_attention_heads=6,
        num_key_value_heads=6, intermediate_size=128, moe_intermediate_size=48, num_experts=8, num_experts_per_tok=4,
        num_dense_layers=0, tie_word_embeddings=False),
    "h128_e16k2_dense2_mqa_nobias_unnormed_scaled": dict(
        vocab_size=512, hidden_size=128, num_hidden_layers=6, layer_types=[C, C, A, C, A, C], num_attention_heads=8,
        num_key_value_heads=1, intermediate_size=192, moe_intermediate_size=64, num_experts=16, num_experts_per_tok=2,
        num_dense_layers=2, use_expert_bias=False, norm_topk_prob=False, routed_scaling_factor=2.5),
    "h64_e6k6_conv_only": dict(
        vocab_size=300, hidden_size=64, num_hidden_layers=3, layer_types=[C, C, C], num_attention_heads=4,
        num_key_value_heads=4, intermediate_size=96, moe_intermediate_size=40, num_experts=6, num_experts_per_tok=6,
        num_dense_layers=1),
}

PARITY = {}  # (config, check) -> max abs error
GGUF_PARITY = {}  # file type -> (batch top-1, batch max err, steps top-1, steps max err)
LONG = 600  # tokens: past the first prefill chunk (n_batch 512 by default)


@pytest.fixture(scope="module", autouse=True)
def parity_tables():
    """Print what the tests below measured (visible with -s); asserts live in the tests."""
    yield
    print_parity_table(PARITY)
    if GGUF_PARITY:
        print("\n| GGUF | 128-token batch: top-1 / max err | 48 one-token steps: top-1 / max err |\n|---|---|---|")
        for t, (b1, bm, s1, sm) in GGUF_PARITY.items():
            print(f"| {t} | {b1:.0%} / {bm:.3g} | {s1:.0%} / {sm:.3g} |")


_ids = random_ids


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def case(request, tmp_path_factory):
    name = request.param
    kw = CONFIGS[name]
    path = make_moe_hf_model(tmp_path_factory.mktemp(name), seed=sorted(CONFIGS).index(name), tokenizer=False, **kw)
    hf = load_moe_hf_model(path)
    model = lfm.load(path)
    yield name, kw, path, hf, model
    model.close()


# ---- against transformers -------------------------------------------------------------------------


def test_config(case):
    _, kw, _, _, model = case
    c = model.config
    assert c.is_moe and c.n_expert == kw["num_experts"] and c.n_expert_used == kw["num_experts_per_tok"]
    assert c.n_ff_exp == kw["moe_intermediate_size"] and c.n_layer_dense == kw["num_dense_layers"]
    assert c.expert_bias == kw.get("use_expert_bias", True)
    assert c.layer_types == kw["layer_types"]
    assert f"{kw['num_experts']} experts ({kw['num_experts_per_tok']} per token)" in repr(model)
    # describe(): the experts as one stack per kind, the router and the bias per MoE layer
    lines = model.describe().splitlines()
    moe_layer = kw["num_dense_layers"]
    E, FE, H = kw["num_experts"], kw["moe_intermediate_size"], kw["hidden_size"]
    assert f"model.layers.{moe_layer}.feed_forward.experts.*.w1.weight f32 [{E}, {FE}, {H}]" in lines
    assert f"model.layers.{moe_layer}.feed_forward.experts.*.w2.weight f32 [{E}, {H}, {FE}]" in lines
    assert f"model.layers.{moe_layer}.feed_forward.gate.weight f32 [{E}, {H}]" in lines
    assert any("expert_bias" in ln for ln in lines) == kw.get("use_expert_bias", True)


@pytest.mark.parametrize("n", [37, LONG])
def test_full_forward_f32(case, n):
    name, kw, _, hf, model = case
    check_full_forward_f32(PARITY, "moe parity", name, kw["vocab_size"], hf, model, n)


def test_decode_token_by_token_equals_full_forward(case):
    name, kw, _, _, model = case
    ids = _ids(29, kw["vocab_size"], seed=1)
    full = model.forward(ids)
    with model.session(n_ctx=64) as s:
        rows = np.stack([s.step(t) for t in ids])
    err = float(np.abs(rows - full).max())
    PARITY[(name, "step_vs_full")] = err
    assert err <= 1e-5


def test_chunked_prefill_equals_unchunked(case):
    name, kw, _, _, model = case
    ids = _ids(23, kw["vocab_size"], seed=2)
    with model.session(n_ctx=64) as s1, model.session(n_ctx=64, n_batch=5) as s2:
        a = s1.decode(ids, "all")
        b = s2.decode(ids, "all")
        la, lb = s1.step(3), s2.step(3)
    PARITY[(name, "chunked_vs_unchunked")] = float(np.abs(a - b).max())
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
    np.testing.assert_allclose(la, lb, atol=1e-5, rtol=0)
    np.testing.assert_allclose(a, model.forward(ids), atol=1e-5, rtol=0)


def test_prefill_then_steps_match_transformers_cache(case):
    """prefill(prompt) then step() against transformers' own incremental decode (its cache)."""
    name, kw, _, hf, model = case
    prompt, cont = _ids(11, kw["vocab_size"], seed=3), _ids(6, kw["vocab_size"], seed=4)
    ref = hf_cached_decode_logits(hf, prompt, cont)
    with model.session(n_ctx=32) as s:
        got = [s.prefill(prompt)] + [s.step(t) for t in cont]
    err = float(np.abs(np.stack(got) - np.stack(ref)).max())
    PARITY[(name, "hf_cache_decode")] = err
    assert err <= F32_BOUND


def test_two_threads_equal_one(case):
    _, kw, _, _, model = case
    ids = _ids(17, kw["vocab_size"], seed=8)
    with model.session(n_ctx=32, n_threads=1) as s1, model.session(n_ctx=32, n_threads=2) as s2:
        np.testing.assert_array_equal(s1.decode(ids, "all"), s2.decode(ids, "all"))


def test_expert_bias_matters(tmp_path):
    """The bias changes which experts win (so the tests above check how it is used): the same
    checkpoint with the bias zeroed gives other logits, by far more than the parity bound."""
    kw = CONFIGS["h64_e4k2_dense1_gqa2"]
    path = make_moe_hf_model(tmp_path / "m", seed=0, tokenizer=False, bias_std=0.2, **kw)
    zero = tmp_path / "zero"
    shutil.copytree(path, zero)
    header, data = _read_st(zero / "model.safetensors")
    data = bytearray(data)
    for name, e in header.items():
        if name.endswith("expert_bias"):
            a, b = e["data_offsets"]
            data[a:b] = bytes(b - a)
    _write_st(zero / "model.safetensors", header, bytes(data))
    ids = _ids(40, kw["vocab_size"], seed=9)
    with lfm.load(path) as m, lfm.load(zero) as z:
        diff = float(np.abs(m.forward(ids) - z.forward(ids)).max())
    assert diff > 100 * F32_BOUND, diff


@pytest.mark.parametrize("dtype", ["bfloat16"])
def test_half_checkpoint(tmp_path, dtype):
    """BF16 expert stacks (viewed in place): our F32 compute vs transformers' F32 on the same weights."""
    import torch
    from transformers import Lfm2MoeForCausalLM

    kw = CONFIGS["h96_e8k4_all_moe_mha_attn_first_untied"]
    path = make_moe_hf_model(tmp_path / dtype, dtype=dtype, seed=11, tokenizer=False, **kw)
    ids = _ids(31, kw["vocab_size"], seed=9)
    ref = hf_logits(Lfm2MoeForCausalLM.from_pretrained(path, dtype=torch.float32).eval(), ids)
    with lfm.load(path) as model:
        assert model.config.weight_type == "bf16"
        err = float(np.abs(model.forward(ids).astype(np.float64) - ref).max())
    PARITY[("h96_e8k4_all_moe_mha_attn_first_untied", dtype)] = err
    assert err <= F32_BOUND


def test_sharded_checkpoint_equals_single(tmp_path):
    """A sharded checkpoint: each expert stack viewed where its matrices lie, in whichever shard."""
    kw = CONFIGS["h64_e4k2_dense1_gqa2"]
    single = make_moe_hf_model(tmp_path / "single", seed=3, tokenizer=False, **kw)
    sharded = make_moe_hf_model(tmp_path / "sharded", seed=3, tokenizer=False, max_shard_size="30KB", **kw)
    index = json.loads((sharded / "model.safetensors.index.json").read_text())["weight_map"]
    assert len({index[f"model.layers.{layer}.feed_forward.experts.0.w1.weight"] for layer in (1, 2, 3)}) > 1
    ids = _ids(12, kw["vocab_size"])
    with lfm.load(single) as a, lfm.load(sharded) as b:
        np.testing.assert_array_equal(a.forward(ids), b.forward(ids))


# ---- greedy generation ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gen_model_dir(tmp_path_factory):
    return make_moe_hf_model(tmp_path_factory.mktemp("gen"), vocab_size=1024, hidden_size=64, num_hidden_layers=4,
                             layer_types=[C, A, C, A], num_attention_heads=4, num_key_value_heads=2,
                             intermediate_size=128, moe_intermediate_size=48, num_experts=8, num_experts_per_tok=2,
                             num_dense_layers=1, seed=3, tokenizer=True)


@pytest.mark.parametrize("prompt", ["Once upon a time", "안녕하세요, 오늘 날씨는", "def fibonacci(n):\n    "])
def test_greedy_matches_transformers_generate(gen_model_dir, prompt):
    with lfm.load(gen_model_dir) as model:
        assert_greedy_matches_hf_generate(load_moe_hf_model(gen_model_dir), model, prompt, 24)


def test_chat_and_translator_run(gen_model_dir):
    """The apps drive a MoE model through the same public API (random weights: only the plumbing)."""
    import warnings

    from liquidlfm.translate import TranslationTruncatedWarning

    with lfm.load(gen_model_dir) as model:
        reply = model.chat([{"role": "user", "content": "Hi!"}], max_tokens=8, temperature=0)
        assert reply.finish_reason in ("stop", "length") and len(reply.token_ids) >= 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TranslationTruncatedWarning)  # random weights never say <|im_end|>
            a = lfm.translate("The weather is nice today.", "ko", model=model, max_tokens=6)
            b = list(lfm.translate(["The weather is nice today."], "ko", model=model, max_tokens=6))
    assert isinstance(a, str) and b == [a]


# ---- GGUF: our engine against llama.cpp on the same files -----------------------------------------

# H = 256 so the K-quants apply; 8 experts so llama-quantize's 8-expert rules (attention K / V in
# Q8_0, attention output in Q5_K) are met; 3 layers of 7 dense-leading / MoE mixes
GGUF_SHAPE = dict(vocab_size=512, hidden_size=256, num_hidden_layers=6, layer_types=[C, C, A, C, C, A],
                  num_attention_heads=4, num_key_value_heads=2, intermediate_size=512, moe_intermediate_size=256,
                  num_experts=8, num_experts_per_tok=2, num_dense_layers=1)
GGUF_PACKAGE_TYPES = ["f32", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1"]  # written by the gguf package
LLAMA_QUANTIZE_TYPES = ["q4_k_m", "q5_k_m", "q6_k"]  # requantized by llama.cpp from the F32 file


@pytest.fixture(scope="module")
def gguf_hf(tmp_path_factory):
    return make_moe_hf_model(tmp_path_factory.mktemp("moe_gguf") / "hf", seed=5, tokenizer=True, **GGUF_SHAPE)


@pytest.fixture(scope="module")
def gguf_files(gguf_hf, tmp_path_factory):
    """file type -> GGUF of gguf_hf, built on first use."""
    root = tmp_path_factory.mktemp("moe_gguf_files")
    made = {}

    def get(t):
        if t not in made:
            if t in GGUF_PACKAGE_TYPES:
                made[t] = hf_to_gguf(gguf_hf, root / f"m-{t}.gguf", t)
            else:
                made[t] = llama_quantize(get("f32"), root / f"m-{t}.gguf", t)
        return made[t]

    return get


def llama_logits(path, ids, n_batch):
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(path), n_ctx=len(ids) + 8, n_batch=n_batch, n_ubatch=n_batch, logits_all=True,
                          n_threads=2, verbose=False, seed=0, type_k=0, type_v=0)
    try:
        if n_batch == 1:
            for t in ids:
                llm.eval([t])
        else:
            llm.eval(ids)
        return np.array(llm.scores[: len(ids)], dtype=np.float32)
    finally:
        llm.close()


def parity(ours, ref):
    return float(np.mean(ours.argmax(-1) == ref.argmax(-1))), float(np.abs(ours - ref).max())


def test_gguf_metadata_and_tensors(gguf_files, gguf_hf):
    from liquidlfm.gguf import read_gguf

    info = read_gguf(gguf_files("f32"))
    meta = info.metadata
    assert meta["general.architecture"] == "lfm2moe"
    assert (meta["lfm2moe.expert_count"], meta["lfm2moe.expert_used_count"]) == (8, 2)
    assert (meta["lfm2moe.expert_feed_forward_length"], meta["lfm2moe.leading_dense_block_count"]) == (256, 1)
    assert meta["lfm2moe.expert_gating_func"] == 2  # sigmoid
    assert info.tensor("blk.1.ffn_gate_exps.weight").shape == (8, 256, 256)
    assert info.tensor("blk.1.ffn_down_exps.weight").shape == (8, 256, 256)
    assert info.tensor("blk.1.ffn_gate_inp.weight").shape == (8, 256)
    assert info.tensor("blk.1.exp_probs_b.bias").shape == (8,)
    assert "blk.0.ffn_gate.weight" in [t.name for t in info.tensors]  # the dense first layer
    with lfm.load(str(gguf_files("f32"))) as g, lfm.load(gguf_hf) as h:
        assert g.config == h.config
        ids = _ids(48, 512, seed=6)
        np.testing.assert_allclose(g.forward(ids), h.forward(ids), atol=1e-5, rtol=0)


@pytest.mark.parametrize("ftype", GGUF_PACKAGE_TYPES + LLAMA_QUANTIZE_TYPES)
def test_logits_vs_llama_cpp(gguf_files, ftype):
    path = gguf_files(ftype)
    ids = [1] + _ids(127, 512, seed=7)[1:]
    with lfm.load(str(path)) as m:
        batch = np.array(m.forward(ids), dtype=np.float32)
        with m.session(n_ctx=64) as s:
            steps = np.stack([np.array(s.step(t), dtype=np.float32) for t in ids[:48]])
    b = parity(batch, llama_logits(path, ids, len(ids)))
    s = parity(steps, llama_logits(path, ids[:48], 1))
    GGUF_PARITY[ftype] = (*b, *s)
    print(f"\n[moe gguf] {ftype}: batch top-1 {b[0]:.0%} max {b[1]:.3g}; steps top-1 {s[0]:.0%} max {s[1]:.3g}")
    if ftype == "f32":
        # llama.cpp's F32 MUL_MAT_ID runs ggml_vec_dot_f32 per token, our F32 GEMM its batched order
        assert b[1] <= 1e-4 and s[1] <= 1e-4 and b[0] == s[0] == 1.0
        return
    require_exact_llama_reference()
    assert b == (1.0, 0.0) and s == (1.0, 0.0), (ftype, b, s)


def test_greedy_matches_llama_cpp(gguf_files):
    import llama_cpp

    path = gguf_files("q4_k_m")
    with lfm.load(str(path)) as gm:
        ids = gm.tokenizer.encode("Once upon a time")
        llm = llama_cpp.Llama(model_path=str(path), n_ctx=128, n_threads=2, verbose=False, logits_all=True, type_k=0,
                              type_v=0)  # an F32 KV cache, as ours
        want = []
        llm.eval(ids)
        for _ in range(16):
            t = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            if t in (2, 7):
                break
            want.append(t)
            llm.eval([t])
        llm.close()
        assert len(want) >= 4, want  # a non-trivial comparison
        assert gm.generate(ids, max_tokens=len(want), temperature=0, repetition_penalty=1.0).token_ids == want


# ---- our writer and quantize-on-load against llama-quantize ---------------------------------------


def _read_tensors(path):
    import gguf

    r = gguf.GGUFReader(str(path))
    file_type = int(r.fields["general.file_type"].parts[-1][0])
    return file_type, {t.name: (t.tensor_type.name, tuple(int(n) for n in t.shape), t.data.tobytes()) for t in r.tensors}


@pytest.mark.parametrize("ftype", ["q4_k_m", "q4_k_s", "q5_k_m", "q6_k", "q8_0", "q4_0"])
def test_writer_equals_llama_quantize(gguf_hf, gguf_files, tmp_path, ftype):
    """Types and bytes of every tensor as llama-quantize writes them from the F32 GGUF: the experts'
    stacks quantized expert by expert, ffn_down_exps counted as FFN down, the router kept F32, the
    8-expert rules for attention K / V / output."""
    theirs = llama_quantize(gguf_files("f32"), tmp_path / "llama.gguf", ftype)
    ours = quantize_hf(gguf_hf, tmp_path / "ours.gguf", ftype, progress=False)
    their_ftype, want = _read_tensors(theirs)
    our_ftype, got = _read_tensors(ours)
    assert our_ftype == their_ftype == FILE_TYPE[ftype]
    assert sorted(got) == sorted(want)
    wrong = [(n, want[n][0], got[n][0]) for n in want if want[n][:2] != got[n][:2]]
    assert not wrong, f"types / shapes differ (tensor, llama.cpp, ours): {wrong}"
    differ = [n for n in want if want[n][2] != got[n][2]]
    assert not differ, f"{len(differ)} of {len(want)} tensors differ in bytes: {differ[:5]}"
    types = {n: v[0] for n, v in got.items()}
    assert types["blk.1.ffn_gate_inp.weight"] == "F32" and types["blk.1.exp_probs_b.bias"] == "F32"
    if ftype == "q4_k_m":  # the rules the case is there for
        assert {types[f"blk.{i}.ffn_down_exps.weight"] for i in range(1, 6)} == {"Q4_K", "Q6_K"}
        assert types["blk.2.attn_v.weight"] == types["blk.2.attn_k.weight"] == "Q8_0"
        assert types["blk.2.attn_output.weight"] == "Q5_K"


@pytest.mark.parametrize("ftype", ["q4_k_m", "q4_0"])
def test_quantize_on_load_equals_file(gguf_hf, tmp_path, ftype):
    """lfm.load(folder, quantize=...) (experts requantized from their per-expert views) holds the
    weights of our file and routes as llama.cpp does: bit for bit the file, which runs bit for bit
    as in llama.cpp."""
    path = quantize_hf(gguf_hf, tmp_path / f"{ftype}.gguf", ftype, progress=False)
    ids = _ids(24, 512, seed=4)
    with lfm.load(str(path)) as f, lfm.load(gguf_hf, quantize=ftype) as q:
        a, b = f.forward(ids), q.forward(ids)
    np.testing.assert_array_equal(a, b)
    require_exact_llama_reference()
    np.testing.assert_array_equal(a, llama_logits(path, ids, len(ids)))


def test_writer_without_expert_bias_gives_llama_cpp_a_zero_bias(tmp_path):
    """llama.cpp's lfm2moe requires exp_probs_b: a checkpoint without expert bias gets zeros, which
    rank exactly as no bias."""
    from liquidlfm.gguf import read_gguf, tensor_data

    kw = dict(CONFIGS["h128_e16k2_dense2_mqa_nobias_unnormed_scaled"], norm_topk_prob=True, routed_scaling_factor=1.0)
    hf = make_moe_hf_model(tmp_path / "hf", seed=2, tokenizer=False, **kw)
    path = quantize_hf(hf, tmp_path / "m.gguf", "f32", progress=False)
    info = read_gguf(path)
    assert not np.any(np.frombuffer(bytes(tensor_data(info, "blk.2.exp_probs_b.bias")), np.float32))
    ids = _ids(20, kw["vocab_size"], seed=3)
    with lfm.load(hf) as a, lfm.load(str(path)) as b:
        want = np.array(a.forward(ids))
        np.testing.assert_allclose(b.forward(ids), want, atol=1e-5, rtol=0)
    np.testing.assert_allclose(llama_logits(path, ids, len(ids)), want, atol=1e-4, rtol=0)


def test_writer_records_unnormalized_scaled_weights(tmp_path):
    """norm_topk_prob = false and routed_scaling_factor != 1, which llama.cpp's converter never
    writes, go into expert_weights_norm / expert_weights_scale and load back the same."""
    from liquidlfm.gguf import read_metadata

    kw = CONFIGS["h128_e16k2_dense2_mqa_nobias_unnormed_scaled"]
    hf = make_moe_hf_model(tmp_path / "hf", seed=2, tokenizer=False, **kw)
    path = quantize_hf(hf, tmp_path / "m.gguf", "f32", progress=False)
    meta = read_metadata(path)
    assert meta["lfm2moe.expert_weights_norm"] is False and meta["lfm2moe.expert_weights_scale"] == 2.5
    ids = _ids(20, kw["vocab_size"], seed=3)
    with lfm.load(hf) as a, lfm.load(str(path)) as b:
        np.testing.assert_allclose(b.forward(ids), a.forward(ids), atol=1e-5, rtol=0)


# ---- the tensor table covers the model; bad checkpoints fail cleanly -------------------------------


def test_table_covers_transformers_state_dict():
    """Every parameter and buffer transformers saves for Lfm2MoeForCausalLM is a row (an expert
    stack's row covering its per-expert matrices), with the row's shape."""
    import torch
    from transformers import Lfm2MoeConfig, Lfm2MoeForCausalLM

    from liquidlfm.quantize import layer_scopes, tensor_table

    kw = CONFIGS["h64_e4k2_dense1_gqa2"]
    cfg = Lfm2MoeConfig(**{k: v for k, v in kw.items()})
    torch.manual_seed(0)
    saved = {}
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        Lfm2MoeForCausalLM(cfg).save_pretrained(d)
        header, _ = _read_st(f"{d}/model.safetensors")
        saved = {n: tuple(e["shape"]) for n, e in header.items()}
    dims = {"V": 320, "H": 64, "3H": 192, "F": 96, "nh*hd": 64, "nkv*hd": 32, "hd": 16, "K": 3, "E": 4, "FE": 32}
    conf = dict(layer_types=kw["layer_types"], n_layer=4, moe=True, n_layer_dense=1, expert_bias=True)
    want = {}
    for layer in [-1, 0, 1, 2, 3]:
        for row in tensor_table():
            if row["scope"] not in layer_scopes(conf, layer) or row["role"] == "head":
                continue
            shape = tuple(dims[d] for d in row["shape"])
            if len(shape) == 3:
                for e in range(4):
                    want[row["hf"] % (layer, e)] = shape[1:]
            else:
                want[row["hf"] % layer if layer >= 0 else row["hf"]] = shape
    for name, shape in want.items():
        if name.endswith("conv.conv.weight"):
            want[name] = (shape[0], 1, shape[1])
    assert saved == want


def test_gguf_names_match_llama_cpp():
    """Each MoE row's GGUF name is what llama.cpp's converter gives it (the gguf package's map, after
    the converter's merge of the experts and its .bias suffix for the expert bias)."""
    import gguf

    from liquidlfm.quantize import tensor_table

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LFM2MOE, 4)
    rows = {r["id"]: r for r in tensor_table()}
    assert names.get_name("model.layers.1.feed_forward.gate.weight", try_suffixes=(".weight",)) == \
        rows["ffn_gate_inp"]["gguf"] % 1
    assert names.get_name("model.layers.1.feed_forward.expert_bias.bias", try_suffixes=(".bias",)) == \
        rows["exp_probs_b"]["gguf"] % 1
    for w, rid in (("w1", "ffn_gate_exps"), ("w3", "ffn_up_exps"), ("w2", "ffn_down_exps")):
        assert names.get_name(f"layers.1.feed_forward.experts.{w}.weight", try_suffixes=(".weight",)) == \
            rows[rid]["gguf"] % 1
    # the arch's tensor list has them all
    have = {gguf.TENSOR_NAMES[t].replace("{bid}", "%d") for t in gguf.MODEL_TENSORS[gguf.MODEL_ARCH.LFM2MOE]}
    for rid in ("ffn_gate_inp", "exp_probs_b", "ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"):
        assert rows[rid]["gguf"].rsplit(".", 1)[0] in have


def _read_st(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    return header, raw[8 + n:]


def _write_st(path, header, data):
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + data)


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return make_moe_hf_model(tmp_path_factory.mktemp("good"), seed=4, tokenizer=False, **CONFIGS["h64_e4k2_dense1_gqa2"])


def _drop(name):
    return lambda h: h.pop(name)


def _reshape(name, shape):
    return lambda h: h[name].__setitem__("shape", shape)


def _retype(name):
    def edit(h):
        e = h[name]
        e["dtype"] = "F16"
        a, b = e["data_offsets"]
        e["data_offsets"] = [a, a + (b - a) // 2]
    return edit


BROKEN = {
    "missing_expert": (_drop("model.layers.2.feed_forward.experts.3.w2.weight"), ModelFormatError,
                       "missing tensor 'model.layers.2.feed_forward.experts.3.w2.weight'"),
    "misshaped_expert": (_reshape("model.layers.1.feed_forward.experts.0.w1.weight", [64, 32]), ModelFormatError,
                         "tensor 'model.layers.1.feed_forward.experts.0.w1.weight': expected shape [32, 64], got [64, 32]"),
    "missing_router": (_drop("model.layers.3.feed_forward.gate.weight"), ModelFormatError,
                       "missing tensor 'model.layers.3.feed_forward.gate.weight'"),
    "missing_bias": (_drop("model.layers.1.feed_forward.expert_bias"), ModelFormatError,
                     "missing tensor 'model.layers.1.feed_forward.expert_bias'"),
    "dense_ffn_in_moe_layer": (lambda h: h.__setitem__("model.layers.2.feed_forward.w1.weight",
                                                       dict(h["model.layers.0.feed_forward.w1.weight"])),
                               UnsupportedModelError, "unexpected tensor 'model.layers.2.feed_forward.w1.weight'"),
}


@pytest.mark.parametrize("case_name", sorted(BROKEN))
def test_loader_and_quantizer_reject(good, tmp_path, case_name):
    edit, exc, msg = BROKEN[case_name]
    d = tmp_path / "m"
    shutil.copytree(good, d)
    h, data = _read_st(d / "model.safetensors")
    edit(h)
    _write_st(d / "model.safetensors", h, data)
    with pytest.raises(exc, match=re.escape(msg)):
        lfm.load(d)
    with pytest.raises(exc, match=re.escape(msg)):
        quantize_hf(d, tmp_path / "out.gguf", "q8_0", progress=False)
    assert not (tmp_path / "out.gguf").exists()


def test_experts_of_mixed_dtypes_are_refused(good, tmp_path):
    d = tmp_path / "m"
    shutil.copytree(good, d)
    h, data = _read_st(d / "model.safetensors")
    _retype("model.layers.1.feed_forward.experts.2.w3.weight")(h)
    _write_st(d / "model.safetensors", h, data)
    with pytest.raises(UnsupportedModelError, match=re.escape(
            "tensor 'model.layers.1.feed_forward.experts.2.w3.weight': dtype f16, but expert 0's is f32")):
        lfm.load(d)


def _rewrite_gguf(src, dst, *, override=None, drop=()):
    import gguf

    r = gguf.GGUFReader(str(src))
    w = gguf.GGUFWriter(str(dst), "lfm2moe")
    for k, f in r.fields.items():
        if k.startswith("GGUF.") or k == "general.architecture" or k in drop:
            continue
        v = (override or {}).get(k, f.contents())
        if f.types[0] == gguf.GGUFValueType.ARRAY:
            w.add_key_value(k, v, f.types[0], sub_type=f.types[1])
        else:
            w.add_key_value(k, v, f.types[0])
    for t in r.tensors:
        w.add_tensor(t.name, np.array(t.data), raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return dst


def test_gguf_softmax_router_unsupported(gguf_files, tmp_path):
    p = _rewrite_gguf(gguf_files("q8_0"), tmp_path / "softmax.gguf", override={"lfm2moe.expert_gating_func": 1})
    with pytest.raises(UnsupportedModelError, match="only the sigmoid router"):
        lfm.load(str(p))


def test_gguf_missing_expert_count(gguf_files, tmp_path):
    p = _rewrite_gguf(gguf_files("q8_0"), tmp_path / "nocount.gguf", drop=("lfm2moe.expert_count",))
    with pytest.raises(ModelFormatError, match="missing metadata key 'lfm2moe.expert_count'"):
        lfm.load(str(p))


def test_gguf_experts_of_the_wrong_count(gguf_files, tmp_path):
    p = _rewrite_gguf(gguf_files("q8_0"), tmp_path / "count.gguf", override={"lfm2moe.expert_count": 7})
    with pytest.raises(ModelFormatError, match=r"blk\.1\.ffn_gate_inp\.weight.*expected ne \[256, 7\]"):
        lfm.load(str(p))
