r"""LFM2's tokenizer: byte-level BPE with the LLaMA-3-style pre-tokenizer, core in C (csrc/text/tokenizer.c).

    tok = Tokenizer.from_dir("path/to/LFM2-350M")        # tokenizer.json (+ tokenizer_config.json)
    tok = Tokenizer.from_gguf("LFM2-350M-Q4_0.gguf")      # tokenizer.ggml.* metadata
    ids = tok.encode("안녕하세요, world! 🙂")                # [1, ...]: BOS first, like transformers
    tok.decode(ids)                                        # '<|startoftext|>안녕하세요, world! 🙂'
    tok.decode(ids, skip_special_tokens=True)              # '안녕하세요, world! 🙂'
    dec = tok.stream_decoder()                             # never splits a UTF-8 character
    for i in ids: print(dec.feed(i), end="")
    print(dec.flush())

Ids are identical to Hugging Face `tokenizers` loading the same tokenizer.json and to llama.cpp on a
GGUF carrying the same vocabulary (tests/text/test_tokenizer*.py). Defaults follow transformers:
`encode(text)` adds BOS (when the tokenizer's add_bos_token says so) and turns special-token text such
as "<|im_start|>" into its id (parse_special=True). For untrusted user content pass
parse_special=False, so a user cannot inject control tokens (llama-cpp-python's default).

decode() is the exact byte concatenation of the tokens, decoded as UTF-8 with invalid/incomplete
sequences replaced by U+FFFD (= `tokenizers` Tokenizer.decode and transformers 5's decode on LFM2;
older transformers could apply clean_up_tokenization_spaces, " ." -> ".", which we never do).

Unicode: the pre-tokenizer's \p{L} / \p{N} / \s classes are Unicode 16.0 tables
(csrc/text/unicode_tables.c, tools/gen_unicode_tables.py), matching HF tokenizers' Oniguruma exactly on
every code point; llama.cpp ships its own tables, so characters whose category changed between
Unicode versions could split differently there (none of the test text does).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence, Union

from . import _core
from .errors import LiquidLFMError, ModelFormatError, UnsupportedModelError
from .generation.streaming import StreamDecoder

__all__ = ["Tokenizer", "StreamDecoder", "LFM2_PRETOKENIZER_PATTERN"]

# GGUF tokenizer.ggml.token_type values (= lfm_token_kind in csrc/lfm.h)
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

LFM2_PRETOKENIZER_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# GGUF tokenizer.ggml.pre values llama.cpp runs with this pattern and ignore_merges
_GGUF_PRE_OK = {"lfm2", "llama-bpe", "llama3", "llama-v3"}

_SURROGATE = re.compile("[\ud800-\udfff]")


def _content(tok, where: str) -> Optional[str]:
    """A special token given as "text" or {"content": "text", ...} (transformers' AddedToken dict)."""
    if tok is None:
        return None
    c = tok.get("content") if isinstance(tok, Mapping) else tok
    if not isinstance(c, str):
        raise ModelFormatError(f"{where} must be a string or {{'content': string}}, got {tok!r:.80}")
    return c


def _flag(value, where: str, default: bool) -> bool:
    """A boolean setting: true/false, or the strings "true"/"false" (any case) that hand-edited
    configs carry; anything else is a format error (bool("false") would be True)."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ModelFormatError(f"{where} must be true or false, got {value!r:.80}")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


class Tokenizer:
    """Byte-level BPE tokenizer (C core). Build with from_dir / from_tokenizer_json / from_gguf / load.

    Attributes: vocab_size, bos_id, eos_id, pad_id (None when unknown), add_bos_token,
    add_eos_token, special_ids (control tokens: <|im_start|>, ...). Thread-safe; close() frees the
    native tables (also via `with`)."""

    def __init__(self, tokens: Sequence[str], token_types: Optional[Sequence[int]], merges: Sequence[str], *,
                 ignore_merges: bool = True, bos_id: Optional[int] = None, eos_id: Optional[int] = None,
                 pad_id: Optional[int] = None, add_bos_token: bool = True, add_eos_token: bool = False):
        tokens = list(tokens)
        types = list(token_types) if token_types is not None else [NORMAL] * len(tokens)
        for name, v in (("bos_id", bos_id), ("eos_id", eos_id), ("pad_id", pad_id)):
            if v is not None and not 0 <= v < len(tokens):
                raise ModelFormatError(f"tokenizer {name} {v} outside the vocabulary [0, {len(tokens)})")
        self._core = _core.Tokenizer(tokens, types, list(merges), bool(ignore_merges),
                                     -1 if bos_id is None else bos_id, -1 if eos_id is None else eos_id)
        self._tokens = tokens
        self._types = types
        self._token_to_id: Optional[dict] = None
        self.bos_id, self.eos_id, self.pad_id = bos_id, eos_id, pad_id
        self.add_bos_token = bool(add_bos_token) and bos_id is not None
        self.add_eos_token = bool(add_eos_token) and eos_id is not None
        self.special_ids = frozenset(i for i, k in enumerate(types) if k == CONTROL)
        self.ignore_merges = bool(ignore_merges)

    # ---- construction ----

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> "Tokenizer":
        """A model folder, a tokenizer.json or a .gguf file."""
        p = Path(path)
        if p.is_dir():
            return cls.from_dir(p)
        if p.suffix == ".gguf":
            return cls.from_gguf(p)
        return cls.from_tokenizer_json(p)

    @classmethod
    def from_dir(cls, folder: Union[str, os.PathLike]) -> "Tokenizer":
        """tokenizer.json, with add_bos_token / add_eos_token / bos / eos / pad from tokenizer_config.json
        (falling back to generation_config.json ids) when present."""
        folder = Path(folder)
        tj = folder / "tokenizer.json"
        if not tj.is_file():
            raise FileNotFoundError(f"{tj} not found (a model folder needs tokenizer.json for its tokenizer)")
        config = _read_json(folder / "tokenizer_config.json") if (folder / "tokenizer_config.json").is_file() else {}
        gen = _read_json(folder / "generation_config.json") if (folder / "generation_config.json").is_file() else {}
        return cls.from_tokenizer_json(tj, tokenizer_config=config, generation_config=gen)

    @classmethod
    def from_tokenizer_json(cls, src: Union[str, os.PathLike, Mapping], *, tokenizer_config: Optional[Mapping] = None,
                            generation_config: Optional[Mapping] = None) -> "Tokenizer":
        """From a tokenizer.json path or its parsed dict. Raises UnsupportedModelError for a tokenizer
        that is not LFM2-style byte-level BPE (other pre-tokenizer, normalizer, byte fallback...) and
        ModelFormatError, naming the field, for a malformed one (missing or non-integer ids, ids far
        past the number of tokens, wrong JSON types, text that is not valid UTF-8).

        add_bos_token / add_eos_token in tokenizer_config may be JSON booleans or the strings
        "true" / "false" (read as what they say); other values are a ModelFormatError."""
        data = _read_json(Path(src)) if not isinstance(src, Mapping) else src
        tokens, types, merges, ignore_merges, template_bos = _parse_tokenizer_json(data)
        config = _mapping(tokenizer_config, "tokenizer_config.json")
        gen = _mapping(generation_config, "generation_config.json")
        index = {t: i for i, t in enumerate(tokens) if types[i] in (CONTROL, USER_DEFINED)}

        def special(name, gen_key):
            c = _content(config.get(name), f"tokenizer_config.json {name}")
            if c is not None:
                if c not in index:
                    raise ModelFormatError(f"tokenizer_config.json {name} {c!r} is not an added token")
                return index[c]
            v = gen.get(gen_key)
            if isinstance(v, list):
                v = v[0] if v else None
            return v if _is_int(v) and 0 <= v < len(tokens) else None

        bos = special("bos_token", "bos_token_id")
        if bos is None:
            bos = template_bos
        eos = special("eos_token", "eos_token_id")
        pad = special("pad_token", "pad_token_id")
        add_bos = _flag(config.get("add_bos_token"), "tokenizer_config.json add_bos_token", template_bos is not None)
        add_eos = _flag(config.get("add_eos_token"), "tokenizer_config.json add_eos_token", False)
        return cls._from_file_data("tokenizer.json", tokens, types, merges, ignore_merges=ignore_merges, bos_id=bos,
                                   eos_id=eos, pad_id=pad, add_bos_token=add_bos, add_eos_token=add_eos)

    @classmethod
    def from_gguf(cls, path: Union[str, os.PathLike]) -> "Tokenizer":
        """From the tokenizer.ggml.* metadata of a GGUF file (model "gpt2", pre "lfm2" or "llama-bpe").

        Like llama.cpp (llama-vocab.cpp reads them with get_key, which refuses a value of another
        type), the special ids (bos / eos / padding_token_id) must be integers and add_bos_token /
        add_eos_token booleans: a string, array or float there is a ModelFormatError naming the key
        (llama.cpp insists on u32 exactly; any GGUF integer type is accepted here)."""
        meta = _read_gguf_tokenizer_metadata(Path(path))
        model = meta.get("tokenizer.ggml.model")
        if model is None:
            raise ModelFormatError(f"{path}: no tokenizer.ggml.model key (the file carries no tokenizer)")
        if model != "gpt2":
            raise UnsupportedModelError(f"{path}: tokenizer.ggml.model is {model!r:.80}; only byte-level BPE ('gpt2') is supported")
        pre = meta.get("tokenizer.ggml.pre")
        if not isinstance(pre, str) or pre not in _GGUF_PRE_OK:
            raise UnsupportedModelError(
                f"{path}: tokenizer.ggml.pre is {pre!r:.80}; supported: {sorted(_GGUF_PRE_OK)} (LFM2's LLaMA-3 pattern)")
        tokens = meta.get("tokenizer.ggml.tokens")
        merges = meta.get("tokenizer.ggml.merges")
        if not tokens or merges is None:
            raise ModelFormatError(f"{path}: tokenizer.ggml.tokens / tokenizer.ggml.merges missing")
        types = meta.get("tokenizer.ggml.token_type")
        for key, arr, typ in (("tokens", tokens, str), ("merges", merges, str),
                              ("token_type", [] if types is None else types, int)):
            if not isinstance(arr, list) or not all(isinstance(x, typ) and not isinstance(x, bool) for x in arr):
                raise ModelFormatError(f"{path}: tokenizer.ggml.{key} must be an array of {typ.__name__}")
        if types is not None and len(types) != len(tokens):
            raise ModelFormatError(f"{path}: {len(types)} token types for {len(tokens)} tokens")

        def tid(key):
            v = meta.get(key)
            if v is not None and not _is_int(v):
                raise ModelFormatError(f"{path}: {key} must be an integer token id, got {v!r:.80}")
            return v

        def flag(key, default):
            v = meta.get(key)
            if v is not None and not isinstance(v, bool):
                raise ModelFormatError(f"{path}: {key} must be a bool, got {v!r:.80}")
            return default if v is None else v

        bos = tid("tokenizer.ggml.bos_token_id")
        return cls._from_file_data(
            str(path), tokens, types, merges, ignore_merges=True, bos_id=bos,
            eos_id=tid("tokenizer.ggml.eos_token_id"), pad_id=tid("tokenizer.ggml.padding_token_id"),
            add_bos_token=flag("tokenizer.ggml.add_bos_token", bos is not None),
            add_eos_token=flag("tokenizer.ggml.add_eos_token", False))

    @classmethod
    def _from_file_data(cls, where: str, *args, **kw) -> "Tokenizer":
        """cls(*args, **kw) for tables read from a file: what the core rejects as a bad argument (a
        NUL or lone surrogate in a token, ...) is a ModelFormatError about that file."""
        try:
            return cls(*args, **kw)
        except (TypeError, ValueError) as e:
            if isinstance(e, LiquidLFMError):
                raise
            raise ModelFormatError(f"{where}: {e}") from None

    # ---- encode / decode ----

    @property
    def vocab_size(self) -> int:
        return len(self._tokens)

    def __len__(self) -> int:
        return len(self._tokens)

    def encode(self, text: Union[str, bytes], add_special_tokens: bool = True, parse_special: bool = True,
               errors: str = "strict") -> list:
        """Token ids of text (str, or bytes that must be valid UTF-8).

        add_special_tokens: prepend BOS (and append EOS) as the tokenizer's add_bos_token /
        add_eos_token say — transformers' default. Chat-template output already starts with
        <|startoftext|>: encode it with add_special_tokens=False.
        parse_special: special-token text ("<|im_end|>") becomes its id (transformers' behaviour);
        False treats it as plain text — use that for untrusted user content.
        errors: a Python str may hold lone surrogates ("\\ud800"), which have no UTF-8 form. "strict"
        raises UnicodeEncodeError (a ValueError, like HF tokenizers); "replace" tokenizes each as U+FFFD.
        Invalid UTF-8 bytes raise ValueError naming the byte offset."""
        if isinstance(text, str):
            m = _SURROGATE.search(text)
            if m:
                if errors == "replace":
                    text = _SURROGATE.sub("\ufffd", text)
                elif errors == "strict":
                    raise UnicodeEncodeError(
                        "utf-8", text, m.start(), m.start() + 1,
                        f"lone surrogate U+{ord(m.group()):04X} cannot be tokenized (not valid Unicode text); "
                        "pass errors='replace' to tokenize it as U+FFFD")
                else:
                    raise ValueError(f"errors must be 'strict' or 'replace', not {errors!r}")
        elif not isinstance(text, (bytes, bytearray, memoryview)):
            raise TypeError(f"text must be str or bytes, not {type(text).__name__}")
        ids = self._core.encode(text, add_bos=add_special_tokens and self.add_bos_token,
                                parse_special=bool(parse_special))
        if add_special_tokens and self.add_eos_token:
            ids.append(self.eos_id)
        return ids

    def __call__(self, text, **kw) -> list:
        return self.encode(text, **kw)

    def decode(self, ids: Union[int, Iterable[int]], skip_special_tokens: bool = False) -> str:
        """Text of ids. Incomplete or invalid UTF-8 (ids cut mid-character) becomes U+FFFD.
        skip_special_tokens drops control tokens (<|startoftext|>, <|im_end|>, ...). Ids outside the
        vocabulary raise ValueError."""
        return self.decode_bytes(ids, skip_special_tokens).decode("utf-8", "replace")

    def decode_bytes(self, ids: Union[int, Iterable[int]], skip_special_tokens: bool = False) -> bytes:
        """The raw bytes of ids, concatenated (may end inside a UTF-8 character)."""
        if isinstance(ids, int):
            ids = [ids]
        elif not isinstance(ids, (list, tuple)):
            ids = list(ids)
        return self._core.decode_bytes(ids, skip_special_tokens=bool(skip_special_tokens))

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes token_id stands for (control tokens: their text)."""
        return self._core.token_bytes(int(token_id))

    def id_to_token(self, token_id: int) -> str:
        """The vocabulary string (byte-level alphabet for normal tokens, e.g. 'Ġworld')."""
        if not 0 <= token_id < len(self._tokens):
            raise ValueError(f"token id {token_id} out of range [0, {len(self._tokens)})")
        return self._tokens[token_id]

    def token_to_id(self, token: str) -> Optional[int]:
        """Id of a vocabulary string (as id_to_token returns it), or None."""
        if self._token_to_id is None:
            d = {}
            for i, t in enumerate(self._tokens):
                d.setdefault(t, i)
            self._token_to_id = d
        return self._token_to_id.get(token)

    def token_type(self, token_id: int) -> int:
        """GGUF token type: 1 normal, 3 control, 4 user-defined, 5 unused, ..."""
        if not 0 <= token_id < len(self._types):
            raise ValueError(f"token id {token_id} out of range [0, {len(self._types)})")
        return self._types[token_id]

    @property
    def token_types(self) -> tuple:
        """GGUF token type of every id (see token_type)."""
        return tuple(self._types)

    @property
    def unused_ids(self) -> list:
        """Ids of type UNUSED (vocabulary holes, GGUF "[PAD<i>]" fillers): never emit these."""
        return [i for i, k in enumerate(self._types) if k == UNUSED]

    def get_vocab(self) -> dict:
        """{token string: id}, like transformers' get_vocab()."""
        self.token_to_id("")
        return dict(self._token_to_id)

    def stream_decoder(self, skip_special_tokens: bool = False) -> "StreamDecoder":
        return StreamDecoder(self, skip_special_tokens=skip_special_tokens)

    # ---- lifetime ----

    def close(self) -> None:
        self._core.close()

    @property
    def closed(self) -> bool:
        return self._core.closed

    def __enter__(self) -> "Tokenizer":
        if self.closed:
            raise ValueError("tokenizer is closed")
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"vocab_size={self.vocab_size}"
        return f"<liquidlfm.Tokenizer {state} bos_id={self.bos_id} eos_id={self.eos_id}>"


# ---- tokenizer.json ----

def _read_json(path: Path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ModelFormatError(f"{path}: invalid JSON: {e}") from None
    except UnicodeDecodeError as e:
        raise ModelFormatError(f"{path}: not UTF-8 text (byte offset {e.start})") from None


def _mapping(value, where: str) -> Mapping:
    """A JSON object (None: empty)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ModelFormatError(f"{where} must be a JSON object, got {type(value).__name__}")
    return value


def _get(obj: Mapping, key: str, where: str, kind, what: str):
    """obj[key] when it is of type kind (None when missing or null), else a ModelFormatError naming
    where.key and what was expected."""
    v = obj.get(key)
    if v is None or (isinstance(v, kind) and not (isinstance(v, bool) and bool not in _tuple(kind))):
        return v
    raise ModelFormatError(f"{where}.{key} must be {what}, got {v!r:.80}")


def _tuple(kind) -> tuple:
    return kind if isinstance(kind, tuple) else (kind,)


def _check_pretokenizer(pre) -> None:
    def bad(why):
        raise UnsupportedModelError(
            f"tokenizer.json pre_tokenizer is not LFM2's Sequence[Split(LLaMA-3 regex, Isolated), "
            f"ByteLevel(use_regex=false)] ({why}); other tokenizers are not supported")

    if not isinstance(pre, Mapping) or pre.get("type") != "Sequence":
        bad(f"got {pre.get('type') if isinstance(pre, Mapping) else pre!r:.80}")
    steps = _get(pre, "pretokenizers", "tokenizer.json pre_tokenizer", list, "a list") or []
    for k, step in enumerate(steps):
        if not isinstance(step, Mapping):
            raise ModelFormatError(f"tokenizer.json pre_tokenizer.pretokenizers[{k}] must be a JSON object, "
                                   f"got {step!r:.80}")
    if len(steps) != 2:
        bad(f"{len(steps)} steps")
    split, bl = steps
    pattern = _get(split, "pattern", "tokenizer.json pre_tokenizer.pretokenizers[0]", Mapping, "a JSON object")
    pattern = (pattern or {}).get("Regex") if split.get("type") == "Split" else None
    if pattern != LFM2_PRETOKENIZER_PATTERN:
        bad(f"split pattern {pattern!r:.80}")
    if split.get("behavior") != "Isolated" or split.get("invert"):
        bad(f"split behavior {split.get('behavior')!r:.40}, invert={split.get('invert')!r:.40}")
    if bl.get("type") != "ByteLevel" or bl.get("use_regex", True) or bl.get("add_prefix_space", False):
        bad(f"second step {bl!r:.200}")


def _parse_tokenizer_json(data: Mapping):
    data = _mapping(data, "tokenizer.json")
    model = _get(data, "model", "tokenizer.json", Mapping, "a JSON object") or {}
    if model.get("type") != "BPE":
        raise UnsupportedModelError(f"tokenizer.json model type {model.get('type')!r:.80}; only BPE is supported")
    for key in ("normalizer", "pre_tokenizer", "decoder", "post_processor"):
        _get(data, key, "tokenizer.json", Mapping, "a JSON object or null")
    norm = data.get("normalizer")
    if norm is not None:
        raise UnsupportedModelError(f"tokenizer.json has a normalizer ({norm.get('type')!r:.80}); LFM2 has none")
    for key, ok in (("byte_fallback", (None, False)), ("continuing_subword_prefix", (None, "")),
                    ("end_of_word_suffix", (None, "")), ("dropout", (None, 0, 0.0))):
        v = model.get(key)
        if not isinstance(v, (type(None), bool, int, float, str)) or v not in ok:
            raise UnsupportedModelError(f"tokenizer.json model.{key} = {v!r:.80} is not supported")
    _check_pretokenizer(data.get("pre_tokenizer"))
    dec = data.get("decoder")
    if dec is not None and dec.get("type") != "ByteLevel":
        raise UnsupportedModelError(f"tokenizer.json decoder {dec.get('type')!r:.80}; expected ByteLevel")
    vocab = _get(model, "vocab", "tokenizer.json model", Mapping, "a JSON object {token: id}") or {}
    added = _get(data, "added_tokens", "tokenizer.json", list, "a list") or []
    # every id checked before any table is sized by the largest one
    max_id = -1
    for t, i in vocab.items():
        if not _is_int(i) or i < 0:
            raise ModelFormatError(f"tokenizer.json model.vocab[{t!r:.80}] has id {i!r:.80}, expected an integer >= 0")
        max_id = max(max_id, i)
    for k, a in enumerate(added):
        where = f"tokenizer.json added_tokens[{k}]"
        if not isinstance(a, Mapping):
            raise ModelFormatError(f"{where} must be a JSON object, got {a!r:.80}")
        i = a.get("id")
        if not _is_int(i) or i < 0:
            raise ModelFormatError(f"{where} ({a.get('content')!r:.80}) has id {i!r:.80}, expected an integer >= 0")
        if not isinstance(a.get("content"), str):
            raise ModelFormatError(f"{where}.content must be a string, got {a.get('content')!r:.80}")
        for flag in ("lstrip", "rstrip", "single_word", "special"):
            _get(a, flag, where, bool, "true or false")
        max_id = max(max_id, i)
    # Ids need not be dense (a hole becomes an UNUSED "[PAD<i>]" token, as llama.cpp's converter
    # does), but the table is sized by the largest id: at most twice the number of entries, so a
    # stray id of 10**7 cannot make us allocate gigabytes.
    n_entries = len(vocab) + len(added)
    if max_id >= 2 * n_entries:
        where = next((f"model.vocab[{t!r:.80}]" for t, i in vocab.items() if i == max_id), None) or next(
            f"added_tokens[{k}]" for k, a in enumerate(added) if a["id"] == max_id)
        raise ModelFormatError(f"tokenizer.json {where} has id {max_id}: ids must stay below twice the number "
                               f"of entries ({n_entries} vocab + added tokens, so < {2 * n_entries})")
    n = max_id + 1
    tokens = [None] * n
    types = [NORMAL] * n
    for t, i in vocab.items():
        tokens[i] = t
    for a in added:
        if a.get("lstrip") or a.get("rstrip") or a.get("single_word"):
            raise UnsupportedModelError(f"added token {a['content']!r:.80} uses lstrip/rstrip/single_word")
        tokens[a["id"]] = a["content"]
        types[a["id"]] = CONTROL if a.get("special") else USER_DEFINED
    for i, t in enumerate(tokens):
        if t is None:  # a hole: like llama.cpp's converter, a never-produced placeholder
            tokens[i] = f"[PAD{i}]"
            types[i] = UNUSED
    merges = []
    for k, m in enumerate(_get(model, "merges", "tokenizer.json model", list, "a list") or []):
        if isinstance(m, str):
            merges.append(m)
        elif isinstance(m, (list, tuple)) and len(m) == 2 and all(isinstance(x, str) for x in m):
            merges.append(f"{m[0]} {m[1]}")
        else:
            raise ModelFormatError(f"tokenizer.json model.merges[{k}] {m!r:.80} is neither 'a b' nor [a, b]")
    ignore_merges = _get(model, "ignore_merges", "tokenizer.json model", bool, "true or false")
    template_bos = _template_bos(data.get("post_processor"), "tokenizer.json post_processor")
    if template_bos is not None and not 0 <= template_bos < n:
        raise ModelFormatError(f"tokenizer.json post_processor: BOS id {template_bos} outside the vocabulary [0, {n})")
    return tokens, types, merges, bool(ignore_merges), template_bos


def _template_bos(post, where: str) -> Optional[int]:
    """The id the post-processor puts in front of a single sequence, if any."""
    if not isinstance(post, Mapping):
        return None
    if post.get("type") == "Sequence":
        procs = _get(post, "processors", where, list, "a list") or []
        for k, p in enumerate(procs):
            b = _template_bos(p, f"{where}.processors[{k}]")
            if b is not None:
                return b
        return None
    if post.get("type") != "TemplateProcessing":
        return None
    single = _get(post, "single", where, list, "a list") or []
    first = single[0] if single else None
    if not isinstance(first, Mapping) or "SpecialToken" not in first:
        return None
    tok = _get(first, "SpecialToken", f"{where}.single[0]", Mapping, "a JSON object") or {}
    name = tok.get("id")
    specials = _get(post, "special_tokens", where, Mapping, "a JSON object") or {}
    if not isinstance(name, str) or name not in specials:
        return None
    spec = specials[name]
    if not isinstance(spec, Mapping):
        raise ModelFormatError(f"{where}.special_tokens[{name!r:.80}] must be a JSON object, got {spec!r:.80}")
    ids = _get(spec, "ids", f"{where}.special_tokens[{name!r:.80}]", list, "a list of token ids") or []
    if len(ids) != 1:
        return None
    if not _is_int(ids[0]):
        raise ModelFormatError(f"{where}.special_tokens[{name!r:.80}].ids[0] must be a token id, got {ids[0]!r:.80}")
    return ids[0]


# ---- GGUF ----

def _read_gguf_tokenizer_metadata(path: Path) -> dict:
    """tokenizer.* keys through our C GGUF reader (csrc/format/gguf.c validates the whole header)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    from .gguf import read_tokenizer_metadata

    return read_tokenizer_metadata(path)
