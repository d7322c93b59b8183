"""Convert a Hugging Face LFM2 folder to a GGUF file llama.cpp loads, quantized by liquidlfm's C
block quantizers.

    python -m liquidlfm.quantize path/to/hf-folder out.gguf --type q4_k_m

Types are llama.cpp's file types, under llama-quantize's names: f32, f16, bf16, q8_0, q4_0, q4_1,
q5_0, q5_1, q4_k_s, q4_k_m, q5_k_s, q5_k_m, q6_k, and the aliases q4_k (= q4_k_m) and q5_k
(= q5_k_m), as llama-quantize has them. general.file_type is llama.cpp's number for the type.

Each tensor gets the storage type llama-quantize (llama.cpp 0c1e57098, vendored by
llama-cpp-python 0.3.36) gives it for that file type, from the same floats, and the quantized
bytes are the ones it writes (no importance matrix): the file equals llama-quantize's output from
an F32 GGUF of the folder (or an F16 / BF16 one, when the folder's weights are F16 / BF16) tensor by
tensor, types and data (tests/formats/test_quantize_mixes.py). The rule (csrc/model/ftype.c, shared
with lfm.load(..., quantize=...)), for LFM2:
  - norms and the short-conv kernel stay F32;
  - the output head, and the token embedding when tied to it (LFM2's default), are Q6_K (Q8_0 for
    q8_0); an untied embedding gets the file type's main type;
  - q4_k_m / q5_k_m: attention V of the attention layers i of n (counted over attention layers)
    with i < n/8, i >= 7n/8 or (i - n/8) % 3 == 2, and FFN down of the layers passing the same test
    over all layers, are Q6_K; q4_k_s: the first 4 attention V and FFN down below n_layer/8 are Q5_K;
  - every other matrix gets the main type (Q4_K for q4_k_*, Q5_K for q5_k_*, ...);
  - a row length the block does not divide falls back as llama.cpp does: Q4_K to Q5_0, Q5_K to
    Q5_1, Q6_K to Q8_0, and to F16 when 32 does not divide it either.
Which tensors there are, their names on both sides, their shapes and which is a norm, the conv
kernel, the embedding or the head come from the engine's tensor table (csrc/model/tensors.c, through
_core.tensor_table()), so this accepts exactly the folders the engine loads. The output is written
to a temporary file beside `out` and renamed into place only when complete.

The HF-side reading (config.json, safetensors incl. sharded, tokenizer.json) and the GGUF metadata
(lfm2.* keys and tokenizer.*) live here too; tests/fixtures/gguf_models.py reuses them with the
`gguf` package's reference quantizer.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import struct
import sys
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from . import _core
from .gguf import TYPE_TRAITS

# ---- HF folder reading --------------------------------------------------------------------------

_ST_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "F64": np.float64}


class SafetensorsFolder:
    """Tensors of a HF folder (model.safetensors or sharded with model.safetensors.index.json) as
    float32 numpy arrays, read lazily through np.memmap."""

    def __init__(self, folder: str | os.PathLike):
        folder = Path(folder)
        index = folder / "model.safetensors.index.json"
        if index.is_file():
            files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        elif (folder / "model.safetensors").is_file():
            files = ["model.safetensors"]
        else:
            files = sorted(p.name for p in folder.glob("*.safetensors"))
        if not files:
            raise FileNotFoundError(f"no *.safetensors in {folder}")
        self.entries = {}
        for f in files:
            path = folder / f
            with open(path, "rb") as fh:
                (n,) = struct.unpack("<Q", fh.read(8))
                header = json.loads(fh.read(n))
            base = 8 + n
            for name, e in header.items():
                if name == "__metadata__":
                    continue
                self.entries[name] = (path, base + e["data_offsets"][0], base + e["data_offsets"][1],
                                      e["dtype"], tuple(e["shape"]))

    def __contains__(self, name):
        return name in self.entries

    def names(self):
        return list(self.entries)

    def shape(self, name):
        return self.entries[name][4]

    def get(self, name) -> np.ndarray:
        path, start, end, dtype, shape = self.entries[name]
        if dtype not in _ST_DTYPES:
            raise ValueError(f"tensor {name!r}: unsupported safetensors dtype {dtype}")
        raw = np.memmap(path, dtype=np.uint8, mode="r", offset=start, shape=(end - start,)) if end > start else \
            np.zeros(0, np.uint8)
        a = raw.view(_ST_DTYPES[dtype])
        if dtype == "BF16":
            a = (a.astype(np.uint32) << 16).view(np.float32)
        return np.asarray(a, dtype=np.float32).reshape(shape)


def _read_lfm3_config(folder: Path) -> dict:
    """An LFM3 config.json as the C core reads it (hf_config.c: Lfm3Config's defaults, the RoPE of each
    attention kind, the flags it refuses): the engine's own reading, so the GGUF says what liquidlfm
    runs from the folder."""
    from . import _core
    m = _core.Model(str(folder))
    try:
        c = m.config
    finally:
        m.close()
    return dict(
        moe=False, lfm3=True, n_expert=0, n_expert_used=0, n_ff_exp=0, n_layer_dense=c["n_layer"], expert_bias=False,
        expert_norm=True, expert_scale=1.0, n_layer=c["n_layer"], layer_types=c["layer_types"], n_embd=c["n_embd"],
        n_head=c["n_head"], n_head_kv=c["n_head_kv"], head_dim=c["head_dim"], n_ff=c["n_ff"], n_ctx=c["n_ctx_train"],
        rope_theta=c["rope_theta"], eps=c["norm_eps"], l_cache=c["conv_l_cache"], vocab_size=c["n_vocab"],
        tie=c["tied_output"], bos=None if c["bos_id"] < 0 else c["bos_id"], eos=None if c["eos_id"] < 0 else c["eos_id"],
        pad=None if c["pad_id"] < 0 else c["pad_id"], name=folder.name, sliding_window=c["sliding_window"],
        sandwich_norm=c["sandwich_norm"], attn_gate=c["attn_gate"], rope_pairs=c["rope_pairs"],
        rope_theta_swa=c["rope_theta_swa"], rope_pairs_swa=c["rope_pairs_swa"],
    )


def read_hf_config(folder: Path, st: SafetensorsFolder) -> dict:
    """Normalise an LFM2 (old and new key names), LFM2-MoE or LFM3 config.json into the values the GGUF needs."""
    cfg = json.loads((folder / "config.json").read_text())
    arch = (cfg.get("architectures") or ["?"])[0]
    if cfg.get("model_type") == "lfm3" and arch in ("Lfm3ForCausalLM", "?"):
        return _read_lfm3_config(folder)
    moe = cfg.get("model_type") == "lfm2_moe"
    if not (cfg.get("model_type") in (None, "lfm2") and arch in ("Lfm2ForCausalLM", "?")) and \
            not (moe and arch in ("Lfm2MoeForCausalLM", "?")):
        from .errors import UnsupportedModelError
        raise UnsupportedModelError(f"{folder}: model_type {cfg.get('model_type')!r} / {arch}: only LFM2 "
                                    "(Lfm2ForCausalLM), LFM2-MoE (Lfm2MoeForCausalLM) and LFM3 (Lfm3ForCausalLM) "
                                    "can be converted")
    n_layer = cfg["num_hidden_layers"]
    if "layer_types" in cfg and cfg["layer_types"]:
        layer_types = list(cfg["layer_types"])
    else:
        attn = set(cfg.get("full_attn_idxs") or [])
        layer_types = ["full_attention" if i in attn else "conv" for i in range(n_layer)]
    H = cfg.get("hidden_size", cfg.get("block_dim"))
    n_head = cfg.get("num_attention_heads", cfg.get("num_heads"))
    rope = cfg.get("rope_theta")
    if rope is None:
        rope = (cfg.get("rope_parameters") or {}).get("rope_theta", cfg.get("theta", 1e6))
    # trust the tensor shape for the FFN width (config keys disagree between copies); when layer 0's
    # w1 is missing, tensor_map says so
    w1 = _hf_name(_row("ffn_gate"), 0)
    F = st.shape(w1)[0] if w1 in st else None
    tie = cfg.get("tie_word_embeddings", cfg.get("tie_embedding", True))
    if F is None and moe:  # every layer is MoE: no dense FFN to measure
        F = cfg.get("intermediate_size")
    n_expert = cfg.get("num_experts", 0) if moe else 0
    moe_fields = dict(
        moe=moe, n_expert=n_expert, n_expert_used=cfg.get("num_experts_per_tok", 0) if moe else 0,
        n_ff_exp=cfg.get("moe_intermediate_size", 0) if moe else 0,
        n_layer_dense=min(cfg.get("num_dense_layers", 2), n_layer) if moe else n_layer,
        expert_bias=bool(cfg.get("use_expert_bias", True)) if moe else False,
        expert_norm=bool(cfg.get("norm_topk_prob", True)) if moe else True,
        expert_scale=float(cfg.get("routed_scaling_factor", 1.0)) if moe else 1.0,
    )
    return dict(**moe_fields, lfm3=False,
        n_layer=n_layer, layer_types=layer_types, n_embd=H, n_head=n_head, n_head_kv=cfg["num_key_value_heads"],
        head_dim=cfg.get("head_dim") or H // n_head,
        n_ff=F, n_ctx=cfg.get("max_position_embeddings", 128000), rope_theta=float(rope),
        eps=float(cfg.get("norm_eps", cfg.get("block_norm_eps", 1e-5))), l_cache=cfg.get("conv_L_cache", 3),
        vocab_size=cfg["vocab_size"], tie=bool(tie),
        bos=cfg.get("bos_token_id"), eos=cfg.get("eos_token_id"), pad=cfg.get("pad_token_id"),
        name=folder.name,
    )


@functools.cache
def tensor_table() -> tuple[dict, ...]:
    """The engine's tensor table (csrc/model/tensors.c), one dict per LFM2 weight: GGUF / HF name
    patterns ("%d" = layer), scope (global / layer / conv / attn), role (norm / conv_kernel / matrix /
    embedding / head), shape (PyTorch order) over the symbols of _dims, is_matmul, want_f32."""
    from . import _core
    return _core.tensor_table()


def _row(tensor_id: str) -> dict:
    return next(r for r in tensor_table() if r["id"] == tensor_id)


def _hf_name(row: dict, layer: int, lfm3: bool = False) -> str:
    name = row["hf_lfm3"] if lfm3 else row["hf"]  # LFM3 names its attention as Qwen3 (tensors.c)
    return name % layer if row["scope"] != "global" else name


def _gguf_name(row: dict, layer: int) -> str:
    return row["gguf"] % layer if row["scope"] != "global" else row["gguf"]


def _dims(cfg: dict) -> dict:
    """Values of the table's shape symbols for this config."""
    H, hd = cfg["n_embd"], cfg["head_dim"]
    return {"V": cfg["vocab_size"], "H": H, "3H": 3 * H, "F": cfg["n_ff"], "nh*hd": cfg["n_head"] * hd,
            "nkv*hd": cfg["n_head_kv"] * hd, "hd": hd, "K": cfg["l_cache"], "E": cfg.get("n_expert", 0),
            "FE": cfg.get("n_ff_exp", 0), "nh": cfg["n_head"]}


def layer_scopes(cfg: dict, layer: int) -> tuple[str, ...]:
    """The table scopes layer (-1: the globals) of this config has (tensors.c's lfm_tensor_applies)."""
    if layer < 0:
        return ("global",)
    kind = cfg["layer_types"][layer]
    scopes = ["layer", "conv" if kind == "conv" else "attn"]
    if cfg.get("attn_gate") and kind != "conv":
        scopes.append("attn_gate")
    if cfg.get("sandwich_norm"):
        scopes.append("sandwich")
    if cfg.get("moe") and layer >= cfg["n_layer_dense"]:
        scopes += ["moe"] + (["moe_bias"] if cfg["expert_bias"] else [])
    else:
        scopes.append("ffn")
    return tuple(scopes)


def _expert_hf_names(row: dict, layer: int, n_expert: int) -> list[str]:
    """The HF names of an expert stack's matrices: the pattern's second %d is the expert."""
    return [row["hf"] % (layer, e) for e in range(n_expert)]


def tensor_map(cfg: dict, st: SafetensorsFolder) -> list[tuple[str, list[str], dict, int]]:
    """(GGUF name, HF names, table row, layer (-1 for the global tensors)) of every tensor the GGUF
    gets, in the table's order. HF names: one, or for an expert stack one per expert (stacked,
    expert-major, into the one GGUF tensor, as llama.cpp's converter does).

    Accepts exactly what liquidlfm's safetensors loader accepts: every tensor the table gives this
    config's layers, with its shape (the conv kernel as [H, 1, K] or squeezed [H, K]); lm_head.weight
    only for an untied head (a tied one saved anyway is dropped); nothing else. Errors name the
    tensor like the loader's."""
    from .errors import ModelFormatError, UnsupportedModelError

    dims = _dims(cfg)
    out, used = [], set()
    for layer in [-1] + list(range(cfg["n_layer"])):
        scopes = layer_scopes(cfg, layer)
        for row in tensor_table():
            if row["scope"] not in scopes:
                continue
            experts = len(row["shape"]) == 3
            hfs = _expert_hf_names(row, layer, dims["E"]) if experts else [_hf_name(row, layer, cfg.get("lfm3", False))]
            if row["role"] == "head" and cfg["tie"]:
                used.update(hfs)
                continue
            want = tuple(dims[d] for d in row["shape"])[1:] if experts else tuple(dims[d] for d in row["shape"])
            for hf in hfs:
                if hf not in st:
                    raise ModelFormatError(f"missing tensor {hf!r}")
                got, w = tuple(st.shape(hf)), want
                if row["role"] == "conv_kernel" and len(got) != 2:
                    w = (want[0], 1, want[1])
                if got != w:
                    raise ModelFormatError(f"tensor {hf!r}: expected shape {list(w)}, got {list(got)}")
                used.add(hf)
            out.append((_gguf_name(row, layer), hfs, row, layer))
    extra = [n for n in st.names() if n not in used]
    if extra:
        raise UnsupportedModelError(f"unexpected tensor {extra[0]!r} (not part of an LFM2/LFM3 model with this config)")
    return out


def _with_zero_expert_bias(cfg: dict, names: list) -> list:
    """names plus a zero exp_probs_b for each MoE layer of a config without expert bias: llama.cpp's
    lfm2moe requires the tensor, and ranking by s + 0 is ranking by s (adding 0.0 is exact)."""
    row = _row("exp_probs_b")
    out = []
    for entry in names:
        out.append(entry)
        _, _, r, layer = entry
        if r["id"] == "ffn_gate_inp":  # right after the router, where the table has the bias
            out.append((_gguf_name(row, layer), [], row, layer))
    return out


# ---- tokenizer metadata --------------------------------------------------------------------------

TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNUSED, TOKEN_BYTE = 1, 2, 3, 4, 5, 6


def read_hf_tokenizer(folder: Path, vocab_size: int, cfg: dict) -> dict | None:
    """tokenizer.* GGUF metadata from tokenizer.json (+ tokenizer_config.json, chat_template.jinja).
    None when the folder has no tokenizer.json."""
    tj = folder / "tokenizer.json"
    if not tj.is_file():
        return None
    tok = json.loads(tj.read_text(encoding="utf-8"))
    model = tok.get("model", {})
    if model.get("type") != "BPE":
        from .errors import UnsupportedModelError
        raise UnsupportedModelError(f"{tj}: tokenizer model {model.get('type')!r} (expected byte-level BPE)")
    vocab = dict(model.get("vocab", {}))
    added = {a["content"]: a for a in tok.get("added_tokens", [])}
    for content, a in added.items():
        vocab[content] = a["id"]
    n = max(vocab_size, max(vocab.values()) + 1)
    tokens = [None] * n
    types = [TOKEN_NORMAL] * n
    for s, i in vocab.items():
        tokens[i] = s
    for content, a in added.items():
        types[a["id"]] = TOKEN_CONTROL if a.get("special") else TOKEN_USER_DEFINED
    for i in range(n):
        if tokens[i] is None:
            tokens[i] = f"[PAD{i}]"
            types[i] = TOKEN_UNUSED
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    tc = {}
    if (folder / "tokenizer_config.json").is_file():
        tc = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))

    def tid(key, fallback):
        v = tc.get(key)
        if isinstance(v, dict):
            v = v.get("content")
        if isinstance(v, str) and v in vocab:
            return vocab[v]
        return fallback

    template = None
    if (folder / "chat_template.jinja").is_file():
        template = (folder / "chat_template.jinja").read_text(encoding="utf-8")
    elif isinstance(tc.get("chat_template"), str):
        template = tc["chat_template"]
    return dict(
        tokens=tokens, types=types, merges=merges,
        bos=cfg["bos"] if cfg["bos"] is not None else tid("bos_token", None),
        eos=cfg["eos"] if cfg["eos"] is not None else tid("eos_token", None),
        pad=cfg["pad"] if cfg["pad"] is not None else tid("pad_token", None),
        add_bos=bool(tc.get("add_bos_token", True)), add_eos=bool(tc.get("add_eos_token", False)),
        chat_template=template,
    )


def synthetic_tokenizer(vocab_size: int) -> dict:
    """A minimal byte-level vocabulary for folders without tokenizer.json, so llama.cpp (which
    needs tokenizer.* keys) still loads the file: LFM2's 14 special tokens, the 256 byte symbols,
    one merge, then [PAD<i>] fillers."""
    specials = ["<|pad|>", "<|startoftext|>", "<|endoftext|>", "<|fim_pre|>", "<|fim_mid|>", "<|fim_suf|>",
                "<|im_start|>", "<|im_end|>", "<|tool_list_start|>", "<|tool_list_end|>", "<|tool_call_start|>",
                "<|tool_call_end|>", "<|tool_response_start|>", "<|tool_response_end|>"]
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs = bs[:]
    k = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + k)
            k += 1
    byte_syms = [chr(c) for c in cs]
    tokens = specials + byte_syms + ["Ġt"]
    types = [TOKEN_CONTROL] * len(specials) + [TOKEN_NORMAL] * (len(byte_syms) + 1)
    if len(tokens) > vocab_size:
        raise ValueError(f"vocab_size {vocab_size} < {len(tokens)} needed for the synthetic tokenizer")
    for i in range(len(tokens), vocab_size):
        tokens.append(f"[PAD{i}]")
        types.append(TOKEN_UNUSED)
    return dict(tokens=tokens, types=types, merges=["Ġ t"], bos=1, eos=7, pad=0, add_bos=True, add_eos=False,
                chat_template=None)


# ---- type policy ---------------------------------------------------------------------------------

# llama.cpp's file types liquidlfm writes, name -> llama_ftype (general.file_type), from the C core
# (model/ftype.c): f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k_s, q4_k_m, q5_k_s, q5_k_m, q6_k,
# and llama-quantize's aliases q4_k (= q4_k_m) and q5_k (= q5_k_m).
_FTYPES = _core.ftypes()
FILE_TYPE = {name: f["id"] for name, f in _FTYPES.items()}
MAIN_TYPE = {name: f["type"].lower() for name, f in _FTYPES.items()}  # q4_k_m -> q4_k: most matrices' type

TYPES = tuple(FILE_TYPE)  # what a file can be converted to

# (elements, bytes) per block of every storage type, from the C core's traits table
BLOCK = {t: (v["block_elems"], v["block_bytes"]) for t, v in TYPE_TRAITS.items()}


def core_config(cfg: dict) -> dict:
    """read_hf_config's values under lfm_config's names (what the C core's type rule reads)."""
    return dict(n_vocab=cfg["vocab_size"], n_embd=cfg["n_embd"], n_head=cfg["n_head"], n_head_kv=cfg["n_head_kv"],
                head_dim=cfg["head_dim"], n_ff=cfg["n_ff"], conv_l_cache=cfg["l_cache"], tied_output=int(cfg["tie"]),
                is_attn=[k != "conv" for k in cfg["layer_types"]], n_expert=cfg.get("n_expert", 0),
                n_expert_used=cfg.get("n_expert_used", 0), n_ff_exp=cfg.get("n_ff_exp", 0),
                n_layer_dense=cfg.get("n_layer_dense", cfg["n_layer"]), expert_bias=int(cfg.get("expert_bias", False)),
                attn_gate=int(cfg.get("attn_gate", False)), sandwich_norm=int(cfg.get("sandwich_norm", False)))


def tensor_types(cfg: dict, target: str, available: Callable[[str], bool] = lambda t: True) -> dict:
    """{(tensor id, layer): storage type} for file type `target`: llama-quantize's choice for each
    tensor (the C core's rule, see the module docstring), F32 for the tensors it never quantizes
    (norms, the conv kernel: the HF floats as they are). A type the encoder cannot produce
    (available(t) false: the `gguf` package has no K-quant quantizer) becomes Q8_0, or F16 when 32
    does not divide the row."""
    dims = _dims(cfg)
    out = {}
    for (tid, layer), t in _core.ftype_tensor_types(target, core_config(cfg)).items():
        t = "f32" if t is None else t.lower()
        if not available(t):
            n = dims[_row(tid)["ne"][0]]
            t = "q8_0" if n % 32 == 0 and available("q8_0") else "f16"
        out[(tid, layer)] = t
    return out


def _float_encode(a: np.ndarray, t: str) -> np.ndarray:
    if t == "f32":
        return np.ascontiguousarray(a, dtype=np.float32)
    if t == "f16":
        return np.ascontiguousarray(a.astype(np.float16))
    if t == "bf16":  # round to nearest even, like torch
        u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
        r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
        nan = np.isnan(a)
        r[nan] = 0x7FC0
        return r
    raise ValueError(t)


# ---- GGUF writing ------------------------------------------------------------------------------

def write_lfm2_gguf(hf_dir, out_path, target: str, encode: Callable[[np.ndarray, str], np.ndarray],
                    available: Callable[[str], bool], progress: bool = False, name: str | None = None,
                    rename: Callable[[str], str] | None = None) -> None:
    """Write `hf_dir` as an LFM2 (arch "lfm2") or LFM2-MoE ("lfm2moe") GGUF at out_path (atomically).
    encode(float32 [rows, n], type) must return the row-major bytes (uint8 [rows, row_bytes]) of a
    quantized type. rename(HF name) -> GGUF name replaces the tensor table's GGUF names (tests pass
    llama.cpp's own mapping; for an expert stack it gets expert 0's HF name)."""
    import gguf

    target = target.lower()
    if target not in TYPES:
        raise ValueError(f"unknown type {target!r}; expected one of {', '.join(TYPES)}")
    base = MAIN_TYPE[target]
    if not available(base):
        from .errors import UnsupportedModelError
        raise UnsupportedModelError(f"no quantizer for {target} in this build")
    hf_dir = Path(hf_dir)
    st = SafetensorsFolder(hf_dir)
    cfg = read_hf_config(hf_dir, st)
    names = tensor_map(cfg, st)
    types = tensor_types(cfg, target, available)
    tok = read_hf_tokenizer(hf_dir, cfg["vocab_size"], cfg) or synthetic_tokenizer(cfg["vocab_size"])

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out_path.name + ".", suffix=".part", dir=out_path.parent)
    os.close(fd)
    try:
        w = gguf.GGUFWriter(tmp, "lfm3" if cfg["lfm3"] else "lfm2moe" if cfg["moe"] else "lfm2")
        w.add_name(name or cfg["name"])
        w.add_file_type(FILE_TYPE[target])
        if TYPE_TRAITS[base]["is_quantized"]:
            w.add_quantization_version(gguf.GGML_QUANT_VERSION)
        w.add_block_count(cfg["n_layer"])
        w.add_context_length(cfg["n_ctx"])
        w.add_embedding_length(cfg["n_embd"])
        w.add_feed_forward_length(cfg["n_ff"])
        w.add_head_count(cfg["n_head"])
        w.add_head_count_kv([cfg["n_head_kv"] if k != "conv" else 0 for k in cfg["layer_types"]])
        w.add_rope_freq_base(cfg["rope_theta"])
        w.add_layer_norm_rms_eps(cfg["eps"])
        w.add_vocab_size(cfg["vocab_size"])
        w.add_shortconv_l_cache(cfg["l_cache"])
        if cfg["lfm3"]:  # liquidlfm's lfm3 keys (README, "GGUF for LFM3"; llama.cpp has no lfm3)
            w.add_key_length(cfg["head_dim"])
            w.add_value_length(cfg["head_dim"])
            w.add_rope_dimension_count(2 * cfg["rope_pairs"])
            swa = [k == "sliding_attention" for k in cfg["layer_types"]]
            if any(swa):
                w.add_sliding_window(cfg["sliding_window"])
                w.add_sliding_window_pattern(swa)
                w.add_rope_freq_base_swa(cfg["rope_theta_swa"])
                w.add_rope_dimension_count_swa(2 * cfg["rope_pairs_swa"])
        if cfg["moe"]:  # llama.cpp's lfm2moe keys (its converter writes these)
            w.add_expert_count(cfg["n_expert"])
            w.add_expert_used_count(cfg["n_expert_used"])
            w.add_expert_feed_forward_length(cfg["n_ff_exp"])
            w.add_leading_dense_block_count(cfg["n_layer_dense"])
            w.add_expert_gating_func(gguf.ExpertGatingFuncType.SIGMOID)
            # llama.cpp always normalizes and never scales for lfm2moe; say so only when the config differs
            if not cfg["expert_norm"]:
                w.add_expert_weights_norm(False)
            if cfg["expert_scale"] != 1.0:
                w.add_expert_weights_scale(cfg["expert_scale"])
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("lfm2")
        w.add_token_list(tok["tokens"])
        w.add_token_types(tok["types"])
        w.add_token_merges(tok["merges"])
        if tok["bos"] is not None:
            w.add_bos_token_id(tok["bos"])
        if tok["eos"] is not None:
            w.add_eos_token_id(tok["eos"])
        if tok["pad"] is not None:
            w.add_pad_token_id(tok["pad"])
        w.add_add_bos_token(tok["add_bos"])
        w.add_add_eos_token(tok["add_eos"])
        if tok["chat_template"]:
            w.add_chat_template(tok["chat_template"])

        if cfg["moe"] and not cfg["expert_bias"]:
            names = _with_zero_expert_bias(cfg, names)
        plan = []
        for gname, hnames, row, layer in names:
            shape = st.shape(hnames[0]) if hnames else (cfg["n_expert"],)
            if row["role"] == "conv_kernel" and len(shape) == 3:
                shape = (shape[0], shape[2])  # [H, 1, K] -> [H, K]
            if len(hnames) > 1 or len(row["shape"]) == 3:  # an expert stack: [E, rows, cols]
                shape = (len(hnames),) + tuple(shape)
            if rename is not None and hnames:
                gname = rename(hnames[0])
            t = types[(row["id"], layer)] if hnames else "f32"
            be, bb = BLOCK[t]
            rows = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
            nbytes = rows * (shape[-1] // be) * bb
            qtype = gguf.GGMLQuantizationType[t.upper()]
            # PyTorch-order shapes; the writer reverses them into ggml ne. Raw types are given
            # as their byte shape (last dimension = bytes per row).
            if t in ("f32", "f16"):
                w.add_tensor_info(gname, shape, np.dtype(np.float32 if t == "f32" else np.float16), nbytes)
            else:
                byte_shape = tuple(shape[:-1]) + (shape[-1] // be * bb,)
                w.add_tensor_info(gname, byte_shape, np.dtype(np.uint8), nbytes, raw_dtype=qtype)
            plan.append((gname, hnames, shape, t))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        it = plan
        if progress:
            from tqdm import tqdm
            it = tqdm(plan, desc=f"{out_path.name} ({target})", unit="tensor")
        for gname, hnames, shape, t in it:
            if not hnames:  # the zero expert bias llama.cpp needs
                a = np.zeros(shape, np.float32)
            elif len(hnames) > 1 or len(shape) == 3:
                a = np.stack([st.get(h) for h in hnames]).reshape(shape)
            else:
                a = st.get(hnames[0]).reshape(shape)
            if not TYPE_TRAITS[t]["is_quantized"]:
                data = _float_encode(a, t)
            else:
                data = encode(np.ascontiguousarray(a.reshape(-1, shape[-1]), dtype=np.float32), t)
            w.write_tensor_data(np.ascontiguousarray(data).view(np.uint8) if t not in ("f32", "f16") else data)
        w.close()
        os.replace(tmp, out_path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


# ---- liquidlfm's quantizer -----------------------------------------------------------------------

def _core_available(t: str) -> bool:
    """True when the C core can quantize t (the traits table's from_float)."""
    return t in TYPE_TRAITS and TYPE_TRAITS[t]["quantizable"]


def _core_encode(a: np.ndarray, t: str, n_threads: int | None = None) -> np.ndarray:
    """Quantize rows with the C quantizer, split over threads (the C call releases the GIL)."""
    from . import _core
    tid = TYPE_TRAITS[t]["id"]
    n_threads = n_threads or _core.cpu_features()["usable_cores"]  # affinity and cgroup quota, as the engine
    rows = a.shape[0]
    if n_threads <= 1 or rows < 64:
        return _core.quantize(tid, a)
    from concurrent.futures import ThreadPoolExecutor
    step = (rows + n_threads - 1) // n_threads
    with ThreadPoolExecutor(n_threads) as ex:
        parts = list(ex.map(lambda r0: _core.quantize(tid, a[r0:r0 + step]), range(0, rows, step)))
    return np.concatenate(parts, axis=0)


def quantize_hf(hf_dir, out_path, type: str = "q8_0", *, progress: bool = True, n_threads: int | None = None,
                name: str | None = None) -> Path:
    """Convert a HF LFM2 folder into a GGUF of `type` with liquidlfm's quantizer; returns out_path."""
    write_lfm2_gguf(hf_dir, out_path, type, lambda a, t: _core_encode(a, t, n_threads), _core_available,
                    progress=progress, name=name)
    return Path(out_path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m liquidlfm.quantize",
                                 description="Convert a Hugging Face LFM2 folder into a (quantized) GGUF file.")
    ap.add_argument("hf_dir", help="folder with config.json, *.safetensors and tokenizer.json")
    ap.add_argument("out", help="output .gguf path (written atomically)")
    ap.add_argument("--type", default="q8_0", choices=TYPES,
                    help="llama.cpp file type: which type each tensor gets (q4_k_m: as llama-quantize Q4_K_M)")
    ap.add_argument("--threads", type=int, default=None, help="quantizer threads (default: all cores)")
    ap.add_argument("--name", default=None, help="general.name (default: the folder name)")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    from .errors import LiquidLFMError
    try:
        quantize_hf(args.hf_dir, args.out, args.type, progress=not args.quiet, n_threads=args.threads,
                    name=args.name)
    except (LiquidLFMError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
