"""Read GGUF files through liquidlfm's C reader (csrc/format/gguf.c).

    >>> from liquidlfm.gguf import read_metadata, read_gguf
    >>> meta = read_metadata("LFM2-350M-Q4_0.gguf")
    >>> meta["general.architecture"], len(meta["tokenizer.ggml.tokens"])
    ('lfm2', 65536)
    >>> info = read_gguf("LFM2-350M-Q4_0.gguf")
    >>> info.tensors[0].name, info.tensors[0].type_name, info.tensors[0].shape
    ('token_embd.weight', 'q6_k', (65536, 1024))

The whole header is validated in C before anything is returned: a corrupt file raises
liquidlfm.ModelFormatError, an unknown tensor type liquidlfm.UnsupportedModelError, a missing file
FileNotFoundError. Nothing stays open after these calls return.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from . import _core

# GGUF metadata value types (lfm_gguf_value_type in csrc/lfm.h)
UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64 = range(13)

# ggml tensor types, read from the C core's traits table (csrc/kernels/quants/type_traits.c), keyed by
# lower-case name: {"q4_k": {"id": 12, "name": "q4_K", "block_elems": 256, "block_bytes": 144,
# "quantizable": False, "matmul": True, ...}} (see _core.type_traits.__doc__ for every field)
TYPE_TRAITS = {t["name"].lower(): t for t in _core.type_traits()}
TYPE_IDS = {name: t["id"] for name, t in TYPE_TRAITS.items()}
TYPE_NAMES = {v: k for k, v in TYPE_IDS.items()}

# Keys the tokenizer needs (see read_tokenizer_metadata)
TOKENIZER_KEYS = (
    "tokenizer.ggml.model",
    "tokenizer.ggml.pre",
    "tokenizer.ggml.tokens",
    "tokenizer.ggml.token_type",
    "tokenizer.ggml.merges",
    "tokenizer.ggml.bos_token_id",
    "tokenizer.ggml.eos_token_id",
    "tokenizer.ggml.padding_token_id",
    "tokenizer.ggml.add_bos_token",
    "tokenizer.ggml.add_eos_token",
    "tokenizer.chat_template",
)


@dataclass(frozen=True)
class TensorInfo:
    name: str
    type: int          # ggml type id
    type_name: str     # the C core's name: "q4_0", "f16", "q4_K", ...
    ne: tuple          # ggml order: fastest dimension first
    offset: int        # absolute byte offset of the data in the file
    nbytes: int

    @property
    def shape(self) -> tuple:
        """PyTorch-order shape (reversed ne)."""
        return tuple(reversed(self.ne))


@dataclass
class GGUFInfo:
    path: str
    version: int
    alignment: int
    data_offset: int
    metadata: dict = field(default_factory=dict)
    types: dict = field(default_factory=dict)   # key -> value type, or (ARRAY, element type)
    tensors: list = field(default_factory=list)

    def tensor(self, name: str) -> TensorInfo:
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(name)


def read_gguf(path: str | os.PathLike) -> GGUFInfo:
    """Validate `path` and return its header: metadata dict, value types and tensor infos."""
    d = _core.gguf_read(os.fspath(path))
    tensors = [TensorInfo(t["name"], t["type"], t["type_name"], tuple(t["ne"]), t["offset"], t["nbytes"])
               for t in d["tensors"]]
    return GGUFInfo(os.fspath(path), d["version"], d["alignment"], d["data_offset"], d["metadata"], d["types"],
                    tensors)


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """All metadata of a GGUF file as {key: value}: ints, floats, bools, str, lists (nested for
    arrays of arrays). E.g. meta["tokenizer.ggml.tokens"] is a list of str."""
    return _core.gguf_read(os.fspath(path))["metadata"]


def read_tokenizer_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The tokenizer part of a GGUF's metadata (keys of TOKENIZER_KEYS that are present)."""
    meta = read_metadata(path)
    return {k: meta[k] for k in TOKENIZER_KEYS if k in meta}


def tensor_data(info: GGUFInfo, name: str):
    """The raw bytes of one tensor as a read-only numpy uint8 memmap (for tests and tools)."""
    import numpy as np

    t = info.tensor(name)
    return np.memmap(info.path, dtype=np.uint8, mode="r", offset=t.offset, shape=(t.nbytes,))
