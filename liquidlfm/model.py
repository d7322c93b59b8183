"""Loading LFM2 / LFM2.5 models and running them: load(), Model, Session, ModelConfig.

    import liquidlfm as lfm
    model = lfm.load("path/to/LFM2.5-1.2B-Instruct")       # HF folder, .gguf file, or "org/name"
    logits = model.forward([1, 2, 3])                       # float32 [3, n_vocab], read-only view
    with model.session() as s:
        last = s.prefill(ids)                               # float32 [n_vocab] (a copy)
        nxt = s.step(int(last.argmax()))
        blob = s.save(); s.load(blob)

Logits ownership: `Model.forward` returns a zero-copy, read-only view of the buffer the C engine
wrote; that buffer belongs to the array alone, so later calls never overwrite it. `Session.prefill`
and `Session.step` return fresh copies (one vocab row), so a result stays valid after the next step.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np

from . import _blas, _core
from .generation import GenerationMixin, PrefixCache

__all__ = ["load", "Model", "Session", "ModelConfig"]


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of a loaded model (shapes as the engine runs them)."""

    n_vocab: int
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_ff: int
    conv_l_cache: int
    n_ctx_train: int
    norm_eps: float
    rope_theta: float
    bos_id: Optional[int]
    eos_id: Optional[int]
    pad_id: Optional[int]
    tied_output: bool
    layer_types: List[str] = field(default_factory=list)
    weight_type: str = "f32"
    # LFM2-MoE (0 / n_layer / False for a dense model): layers from n_layer_dense on route each token
    # to n_expert_used of n_expert SwiGLU experts of width n_ff_exp
    n_expert: int = 0
    n_expert_used: int = 0
    n_ff_exp: int = 0
    n_layer_dense: int = 0
    expert_bias: bool = False
    # "lfm2" (LFM2, LFM2.5, LFM2-MoE) or "lfm3"; LFM3's "sliding_attention" layers see the last
    # sliding_window positions; sandwich_norm / attn_gate: its use_sandwich_norm / use_attention_gate
    arch: str = "lfm2"
    sliding_window: int = 0
    sandwich_norm: bool = False
    attn_gate: bool = False
    # RoPE: full attention layers rotate their first rope_pairs frequency pairs (dims i and
    # i + head_dim/2) at rope_theta; sliding layers rope_pairs_swa at rope_theta_swa
    rope_pairs: int = 0
    rope_theta_swa: float = 0.0
    rope_pairs_swa: int = 0

    @classmethod
    def _from_core(cls, d: dict) -> "ModelConfig":
        d = dict(d)
        for k in ("bos_id", "eos_id", "pad_id"):
            if d.get(k, -1) < 0:
                d[k] = None
        return cls(**d)

    @property
    def n_layer_attn(self) -> int:
        return sum(t != "conv" for t in self.layer_types)

    @property
    def n_layer_conv(self) -> int:
        return sum(t == "conv" for t in self.layer_types)

    @property
    def is_moe(self) -> bool:
        return self.n_expert > 0


def _looks_like_repo_id(s: str) -> bool:
    """ "owner/name", optionally with liquidlfm.hub's ":FILE.gguf" / ":QUANT" / "@revision" suffixes."""
    head = s.split(":", 1)[0].split("@", 1)[0]
    parts = head.split("/")
    return len(parts) == 2 and all(parts) and not s.startswith(("/", ".", "~")) and not head.endswith((".gguf", ".safetensors"))


def load(path_or_repo_id: Union[str, os.PathLike], *, quantize: Optional[str] = None, n_threads: Optional[int] = None,
         kv_cache: str = "f32", blas: Union[None, bool, str] = None) -> "Model":
    """Load a model from a Hugging Face folder, a .safetensors file, a .gguf file, or a Hub id.

    A path that does not exist and looks like "org/name" is resolved (cache or download) by
    liquidlfm.hub.resolve_model. quantize: a quantized llama.cpp file type ("q4_k_m", "q8_0", ...;
    liquidlfm.quantize.TYPES) to re-encode the weights on load, each tensor in the type
    llama-quantize would give it (the weights of `liquidlfm quantize --type` that file type).
    n_threads: default thread count of this model's sessions (None: all cores).
    kv_cache: default KV cache precision of its sessions: "f32" (exact, as transformers) or "f16"
    (half the memory; llama.cpp's default cache, whose results it then reproduces).
    blas: whether float weight matrices may run on OpenBLAS (the scipy-openblas32 package): "auto"
    for F32 and BF16 matrices in prefill batches large enough that it measured faster (not F16, nor
    an F32 GGUF's, which stay bit-identical to llama.cpp; README, "OpenBLAS"), "on" (or True) for
    every float matmul, "off" (or False) never: liquidlfm's own kernels and float order. None: the
    LFM_BLAS environment variable (0, 1, auto), else "auto". "auto" without scipy-openblas32 runs on
    liquidlfm's kernels; "on" then raises ImportError.
    Raises FileNotFoundError, ModelFormatError (corrupt/inconsistent), UnsupportedModelError.
    """
    path = os.fspath(path_or_repo_id)
    if not os.path.exists(path) and _looks_like_repo_id(path):
        from .hub import resolve_model  # lazy: only Hub ids need it

        path = os.fspath(resolve_model(path))
    return Model(path, quantize=quantize, n_threads=n_threads, kv_cache=kv_cache, blas=blas)


def _kv_f16(kv_cache: str) -> bool:
    if kv_cache not in ("f32", "f16"):
        raise ValueError(f"kv_cache must be 'f32' or 'f16', got {kv_cache!r}")
    return kv_cache == "f16"


def _read_json(p: Path) -> Optional[dict]:
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class Model(GenerationMixin):
    """A loaded LFM2 / LFM2.5 model (read-only, shareable across threads). Use load() to make one.

    Attributes: config (ModelConfig), path, tokenizer (liquidlfm.tokenizer.Tokenizer or None),
    chat_template (str or None), generation_config (dict), blas_mode ("auto" / "on" / "off", the
    default of its sessions; see load()).
    """

    def __init__(self, path, *, quantize: Optional[str] = None, n_threads: Optional[int] = None,
                 kv_cache: str = "f32", blas: Union[None, bool, str] = None):
        self.path = Path(os.fspath(path))
        self.n_threads = int(n_threads) if n_threads else 0
        if self.n_threads < 0:
            raise ValueError("n_threads must be positive or None")
        _kv_f16(kv_cache)
        self.kv_cache = kv_cache
        self.blas_mode = _blas.prepare(blas)
        self._core = _core.Model(str(self.path), quantize=quantize, n_threads=self.n_threads)
        self.config = ModelConfig._from_core(self._core.config)
        self.tokenizer = None
        self.chat_template: Optional[str] = None
        self.generation_config: dict = {}
        self._load_side_files()

    # ---- side files: tokenizer, chat template, generation config ----

    def _load_side_files(self) -> None:
        if self.path.suffix == ".gguf":
            self._load_gguf_side()
            return
        folder = self.path if self.path.is_dir() else self.path.parent
        if (folder / "tokenizer.json").is_file():
            try:
                from .tokenizer import Tokenizer  # lazy: the tokenizer part may not be built
            except ImportError:
                Tokenizer = None
            if Tokenizer is not None:
                self.tokenizer = Tokenizer.from_dir(folder)
        from .chat_template import chat_template_from_dir

        self.chat_template = chat_template_from_dir(folder)
        gc = _read_json(folder / "generation_config.json")
        self.generation_config = gc if isinstance(gc, dict) else {}

    def _load_gguf_side(self) -> None:
        try:
            from .tokenizer import Tokenizer
        except ImportError:
            Tokenizer = None
        if Tokenizer is not None and hasattr(Tokenizer, "from_gguf"):
            try:
                self.tokenizer = Tokenizer.from_gguf(self.path)
            except (ValueError, KeyError):
                self.tokenizer = None
        try:
            from .gguf import read_metadata  # gguf part; optional until it lands
        except ImportError:
            return
        meta = read_metadata(self.path)
        ct = meta.get("tokenizer.chat_template")
        self.chat_template = ct if isinstance(ct, str) else None
        gc = {}
        for key, name in (("tokenizer.ggml.bos_token_id", "bos_token_id"), ("tokenizer.ggml.eos_token_id", "eos_token_id"),
                          ("tokenizer.ggml.padding_token_id", "pad_token_id")):
            if key in meta:
                gc[name] = meta[key]
        self.generation_config = gc

    # ---- running ----

    def forward(self, ids: Sequence[int]) -> np.ndarray:
        """Logits of every position of one sequence: float32 [len(ids), n_vocab].

        A read-only zero-copy view of the engine's output buffer (owned by the array).
        Raises ValueError for an empty list or an id outside [0, n_vocab).
        """
        return self._core.forward(ids, n_threads=self.n_threads, kv_f16=_kv_f16(self.kv_cache), blas=self.blas_mode)

    def _native_ctx(self, *, n_ctx=None, n_batch=None, n_threads=None, kv_cache=None, n_seq: int = 1):
        """A native context of n_seq sequences with this model's session defaults (BatchEngine's)."""
        if self.closed:
            raise ValueError("model is closed")
        nt = n_threads if n_threads is not None else self.n_threads
        kv_f16 = _kv_f16(kv_cache if kv_cache is not None else self.kv_cache)
        return _core.Ctx(self._core, n_ctx=n_ctx or 0, n_batch=n_batch or 0, n_threads=nt or 0, kv_f16=kv_f16,
                         blas=self.blas_mode, n_seq=n_seq)

    def session(self, n_ctx: Optional[int] = None, *, n_batch: Optional[int] = None,
                n_threads: Optional[int] = None, kv_cache: Optional[str] = None,
                blas: Union[None, bool, str] = None) -> "Session":
        """A new decoding session (KV cache + conv state). n_ctx: positions it can hold
        (None: min(n_ctx_train, 32768); memory is committed only as positions are used).
        kv_cache: "f32" / "f16"; blas: "auto" / "on" / "off" (None: the model's, see load())."""
        return Session(self, n_ctx=n_ctx, n_batch=n_batch, n_threads=n_threads, kv_cache=kv_cache, blas=blas)

    @property
    def blas(self) -> Optional[str]:
        """The OpenBLAS this model's sessions use by default (its configuration string), or None:
        blas "off", LFM_KERNELS=ref, OpenBLAS unavailable, or no matrix it would take (quantized
        weights; F16; an F32 GGUF under "auto", kept bit-identical to llama.cpp)."""
        return _core.blas_info() if self._core.blas_use(self.blas_mode) else None

    def describe(self) -> str:
        """One line per weight the engine uses: name type [rows, cols]."""
        return self._core.describe()

    @property
    def closed(self) -> bool:
        return self._core.closed

    def close(self) -> None:
        """Release the weights. Sessions still open keep them mapped until they close, but
        raise ValueError when used."""
        self._core.close()

    def __enter__(self) -> "Model":
        if self.closed:
            raise ValueError("model is closed")
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        c = self.config
        experts = f", {c.n_expert} experts ({c.n_expert_used} per token)" if not self.closed and c.is_moe else ""
        if not self.closed and c.arch == "lfm3":
            experts = f", LFM3 (sliding window {c.sliding_window})"
        state = "closed" if self.closed else f"{c.n_layer} layers, H={c.n_embd}{experts}, vocab={c.n_vocab}, {c.weight_type}"
        return f"<liquidlfm.Model {self.path.name!r} {state}>"


class Session:
    """One sequence's decoding state: conv state + KV cache + scratch, single-owner.

    prefill(ids) / step(token) return the logits of the last position as a float32 copy
    [n_vocab]. pos: tokens decoded so far; n_ctx: capacity. save() -> bytes, load(bytes) restore
    the whole state (position, conv state, KV rows, last logits). ContextFullError when a call
    would pass n_ctx (nothing is changed then).
    """

    def __init__(self, model: Model, n_ctx: Optional[int] = None, *, n_batch: Optional[int] = None,
                 n_threads: Optional[int] = None, kv_cache: Optional[str] = None,
                 blas: Union[None, bool, str] = None):
        if model.closed:
            raise ValueError("model is closed")
        for name, v in (("n_ctx", n_ctx), ("n_batch", n_batch), ("n_threads", n_threads)):
            if v is not None and (not isinstance(v, (int, np.integer)) or v <= 0):
                raise ValueError(f"{name} must be a positive int or None, got {v!r}")
        self.model = model
        nt = n_threads if n_threads is not None else model.n_threads
        kv_f16 = _kv_f16(kv_cache if kv_cache is not None else model.kv_cache)
        blas_mode = _blas.prepare(blas) if blas is not None else model.blas_mode
        self._ctx = _core.Ctx(model._core, n_ctx=n_ctx or 0, n_batch=n_batch or 0, n_threads=nt or 0, kv_f16=kv_f16,
                              blas=blas_mode)
        self.prefix_cache = PrefixCache(self, native_ctx=self._ctx)

    def prefill(self, ids: Sequence[int]) -> np.ndarray:
        """Append ids at the current position; return the last position's logits [n_vocab]."""
        return self._ctx.decode(ids, "last")

    def step(self, token: int) -> np.ndarray:
        """Append one token; return its logits [n_vocab]."""
        if isinstance(token, (bool, np.bool_)) or not isinstance(token, (int, np.integer)):
            raise TypeError(f"step() takes one int token id, got {type(token).__name__}")
        return self._ctx.decode([int(token)], "last")

    def decode(self, ids: Sequence[int], logits: str = "last"):
        """Append ids; logits='last' -> [n_vocab], 'all' -> [len(ids), n_vocab], 'none' -> None."""
        return self._ctx.decode(ids, logits)

    @property
    def logits(self) -> Optional[np.ndarray]:
        """A copy of the last decoded position's logits, or None."""
        return self._ctx.last_logits()

    @property
    def pos(self) -> int:
        return self._ctx.pos

    @property
    def n_ctx(self) -> int:
        return self._ctx.n_ctx

    @property
    def n_threads(self) -> int:
        return self._ctx.n_threads

    @property
    def blas(self) -> Optional[str]:
        """How this session's float matmuls use OpenBLAS: "auto" (prefill batches from the measured
        size), "on" (every batch), or None (never: off, LFM_KERNELS=ref or OpenBLAS unavailable)."""
        return self._ctx.blas

    def reset(self) -> None:
        """Back to position 0 with an empty state."""
        self._ctx.reset()

    def save(self) -> bytes:
        """The whole state as bytes (valid for sessions of a model of the same shape)."""
        return self._ctx.save()

    def load(self, blob) -> None:
        """Restore a state from save(); ModelFormatError for a corrupt blob, ValueError for another
        model's, ContextFullError if it holds more positions than this session's n_ctx."""
        self._ctx.load(blob)

    @property
    def closed(self) -> bool:
        return self._ctx.closed

    def close(self) -> None:
        self._ctx.close()

    def __enter__(self) -> "Session":
        if self.closed:
            raise ValueError("session is closed")
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        if self.closed:
            return "<liquidlfm.Session closed>"
        return f"<liquidlfm.Session pos={self.pos} n_ctx={self.n_ctx}>"
