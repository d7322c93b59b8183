"""Structured output: constrained decoding with llguidance, the token mask applied in the C sampler.

    c = Constraint.json_schema(model.tokenizer, {"type": "object", "properties": {...}})
    text = model.generate(prompt, constraint=c)            # or response_format={"type": "json_schema", ...}

A Constraint follows one generation token by token. Before each token, fill_mask(bits) writes which
tokens may come next (bit i % 32 of bits[i // 32] for token i); the C sampler gets the mask
(Sampler.set_allowed) and treats every other token's logit as -inf before penalties, temperature and
the filters, so whatever the model prefers, the output stays inside the grammar. accept(token) moves
the constraint on. Once the grammar is complete, only the stop tokens (eos, <|im_end|>,
<|endoftext|>) are allowed, so generation ends by itself with text that parses.

llguidance (https://github.com/guidance-ai/llguidance, the grammar engine of llama.cpp and vLLM)
compiles the JSON schema / regex / Lark grammar and computes the masks; it walks a trie of our
tokenizer's vocabulary, built here from the tokenizer's own bytes (no Hugging Face tokenizer needed)
and cached per tokenizer. It is an optional dependency: pip install "liquidlfm[structured]".

JSON output is compact by default (", " and ": " separators, no free whitespace): a model cannot
pad the output with endless whitespace, and the text is what json.dumps would write.
"""
from __future__ import annotations

import json as _json
import threading
import weakref
from typing import Iterable, List, Optional, Sequence, Union

import numpy as np

__all__ = ["Constraint", "mask_words", "STOP_TOKEN_TEXTS"]

# Control tokens that end a turn, looked up by text in the tokenizer (generation stops on them too).
STOP_TOKEN_TEXTS = ("<|im_end|>", "<|endoftext|>")
CONTROL, UNUSED = 3, 5  # GGUF token types (lfm_token_kind)
INSTALL_HINT = 'pip install "liquidlfm[structured]"'

# Separators of the JSON the model writes: json.dumps's defaults, and no whitespace anywhere else.
JSON_OPTIONS = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


def mask_words(n_vocab: int) -> int:
    """Length of an allowed-token mask for n_vocab tokens: (n_vocab + 31) // 32 uint32 words."""
    return (int(n_vocab) + 31) // 32


def _llguidance():
    try:
        import llguidance
    except ImportError as e:
        raise ImportError(f"structured output (response_format / Constraint) needs llguidance: {INSTALL_HINT}"
                          ) from e
    return llguidance


# ---- the vocabulary as llguidance sees it ----

class _Vocabulary:
    """What llguidance.LLTokenizer reads from a tokenizer object (the attributes of its
    TokenizerWrapper): every token's bytes, the special ids (llguidance marks them so grammar text
    never matches them), eos, and a callable that tokenizes text (used for bytes the grammar forces).

    Holds the tokenizer weakly: the cached LLTokenizer keeps this object alive, and a strong
    reference would keep the tokenizer (the cache key) alive forever."""

    is_tokenizer_wrapper = True

    def __init__(self, tokenizer, n_vocab: int, eos_id: int):
        n_tok = tokenizer.vocab_size
        types = getattr(tokenizer, "token_types", None) or [tokenizer.token_type(i) for i in range(n_tok)]
        token_bytes = getattr(tokenizer, "token_bytes", None)
        if token_bytes is None:
            def token_bytes(i):
                return tokenizer.decode_bytes([i])
        # ids past the tokenizer (embedding rows without a token) and ids it cannot decode (holes in a
        # vocabulary) have no bytes: llguidance never allows an empty token
        self.tokens: List[bytes] = [_bytes_or_empty(token_bytes, i) for i in range(n_tok)] + [b""] * (n_vocab - n_tok)
        self.special_token_ids = [i for i, k in enumerate(types) if k in (CONTROL, UNUSED)]
        self.eos_token_id = int(eos_id)
        bos = getattr(tokenizer, "bos_id", None)
        self.bos_token_id = int(bos) if bos is not None and bos >= 0 else None
        self._tokenizer = weakref.ref(tokenizer) if _weakrefable(tokenizer) else (lambda t=tokenizer: t)

    def __call__(self, text) -> List[int]:
        tok = self._tokenizer()
        if tok is None:  # only cached LLTokenizers outlive their tokenizer, and nothing uses them then
            return []
        if isinstance(text, (bytes, bytearray)):
            text = bytes(text).decode("utf-8", "replace")
        return list(tok.encode(text, add_special_tokens=False, parse_special=False))


def _bytes_or_empty(token_bytes, i) -> bytes:
    try:
        return bytes(token_bytes(i))
    except (ValueError, IndexError, KeyError):
        return b""


def _weakrefable(obj) -> bool:
    try:
        weakref.ref(obj)
    except TypeError:
        return False
    return True


_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def _ll_tokenizer(tokenizer, n_vocab: int, eos_id: int):
    """llguidance's LLTokenizer for tokenizer (building it walks the whole vocabulary: ~0.4 s for
    65k tokens), cached per tokenizer object, n_vocab and eos."""
    llg = _llguidance()
    key = (n_vocab, eos_id)
    with _CACHE_LOCK:
        per_tok = _CACHE.get(tokenizer) if _weakrefable(tokenizer) else None
        if per_tok is not None and key in per_tok:
            return per_tok[key]
        llt = llg.LLTokenizer(_Vocabulary(tokenizer, n_vocab, eos_id))
        if _weakrefable(tokenizer):
            _CACHE.setdefault(tokenizer, {})[key] = llt
        return llt


def default_stop_ids(tokenizer) -> List[int]:
    """eos and the tokenizer's <|im_end|> / <|endoftext|> (the tokens that end an LFM2 turn)."""
    ids = set()
    eos = getattr(tokenizer, "eos_id", None)
    if eos is not None and eos >= 0:
        ids.add(int(eos))
    for text in STOP_TOKEN_TEXTS:
        enc = tokenizer.encode(text, add_special_tokens=False, parse_special=True)
        if len(enc) == 1:
            ids.add(int(enc[0]))
    return sorted(ids)


# ---- the constraint ----

class Constraint:
    """A grammar that generation must follow, token by token (see the module docstring).

    Build with Constraint.json_schema / .json / .regex / .grammar / .from_response_format. One
    constraint follows one generation at a time; generate() / stream() / chat() start it from its
    initial state (reset()). copy() gives an independent one in the same state.

    stop_ids: the tokens that end the output once the grammar is complete (default: the tokenizer's
    eos, <|im_end|> and <|endoftext|>). n_vocab: the model's vocabulary size when it is larger than
    the tokenizer's (padded embeddings); masks may also be longer than the constraint's, the extra
    tokens are never allowed.
    """

    def __init__(self, tokenizer, grammar: str, *, kind: str = "grammar", source: Optional[str] = None,
                 stop_ids: Optional[Iterable[int]] = None, n_vocab: Optional[int] = None, _matcher=None):
        """grammar: an llguidance grammar (LLMatcher.grammar_from_*: Lark text or its JSON form);
        kind and source (what the user gave) name it in messages. The constructors build these."""
        llg = _llguidance()
        n_tok = int(tokenizer.vocab_size)
        n_vocab = n_tok if n_vocab is None else int(n_vocab)
        if n_vocab < n_tok:
            raise ValueError(f"n_vocab {n_vocab} is smaller than the tokenizer's vocabulary ({n_tok} tokens)")
        stops = sorted({int(t) for t in stop_ids}) if stop_ids is not None else default_stop_ids(tokenizer)
        for t in stops:
            if not 0 <= t < n_vocab:
                raise ValueError(f"stop token id {t} out of range [0, {n_vocab})")
        eos = getattr(tokenizer, "eos_id", None)
        if eos is None or eos < 0 or eos not in stops:
            if not stops:
                raise ValueError("the tokenizer has no eos token and no stop token ids were given: "
                                 "a constrained generation would have no way to end")
            eos = stops[0]
        self.tokenizer = tokenizer
        self.kind = kind
        self.source = grammar if source is None else source
        self._grammar = grammar
        self.n_vocab = n_vocab
        self.eos_id = int(eos)
        self.stop_ids = tuple(stops)
        self._ll_tokenizer = _ll_tokenizer(tokenizer, n_vocab, self.eos_id)
        if _matcher is not None:
            self._matcher = _matcher
        else:
            self._matcher = llg.LLMatcher(self._ll_tokenizer, grammar, log_level=0)
            if self._matcher.is_error():
                # validate_grammar gives the message without the parser-state dump of get_error()
                msg = llg.LLMatcher.validate_grammar(grammar, self._ll_tokenizer) or self._matcher.get_error()
                raise ValueError(f"invalid {kind}: {msg.strip()}")
        self._stop_words = np.array([t // 32 for t in self.stop_ids], dtype=np.intp)
        self._stop_bits = np.array([1 << (t % 32) for t in self.stop_ids], dtype=np.uint32)
        self._busy = threading.Lock()

    # ---- constructors ----

    @classmethod
    def json_schema(cls, tokenizer, schema: Union[dict, str, bool], *, whitespace_flexible: bool = False,
                    **kw) -> "Constraint":
        """Output: JSON valid under schema (a dict, or its JSON text). llguidance supports most of
        JSON Schema (types, properties/required/additionalProperties, enum/const, string
        minLength/maxLength/pattern/format, numeric bounds, array items/prefixItems/minItems/
        maxItems, anyOf/oneOf/allOf, $ref/$defs); an unsupported keyword or a malformed schema
        raises ValueError naming it. whitespace_flexible=True lets the model place whitespace
        freely (default: compact ", " / ": " separators)."""
        llg = _llguidance()
        if isinstance(schema, (bytes, bytearray)):
            schema = bytes(schema).decode("utf-8")
        if isinstance(schema, str):
            try:
                schema = _json.loads(schema)
            except ValueError as e:
                raise ValueError(f"the JSON schema is not valid JSON: {e}") from None
        if isinstance(schema, bool):
            schema = {} if schema else {"not": {}}
        if not isinstance(schema, dict):
            raise ValueError(f"a JSON schema must be an object (dict), got {type(schema).__name__}")
        options = dict(JSON_OPTIONS)
        if whitespace_flexible:
            options = {"whitespace_flexible": True}
        try:
            grammar = llg.LLMatcher.grammar_from_json_schema(schema, overrides=options)
        except (ValueError, TypeError) as e:
            raise ValueError(f"invalid JSON schema: {e}") from None
        return cls(tokenizer, grammar, kind="JSON schema", source=_json.dumps(schema), **kw)

    @classmethod
    def json(cls, tokenizer, **kw) -> "Constraint":
        """Output: any JSON object (OpenAI's response_format {"type": "json_object"})."""
        return cls.json_schema(tokenizer, {"type": "object"}, **kw)

    @classmethod
    def regex(cls, tokenizer, pattern: str, **kw) -> "Constraint":
        """Output: text matching pattern in full (Rust regex syntax, anchored at both ends)."""
        if not isinstance(pattern, str):
            raise TypeError(f"regex pattern must be a str, got {type(pattern).__name__}")
        llg = _llguidance()
        return cls(tokenizer, llg.LLMatcher.grammar_from_regex(pattern), kind="regex", source=pattern, **kw)

    @classmethod
    def grammar(cls, tokenizer, lark: str, **kw) -> "Constraint":
        """Output: a sentence of a Lark grammar (llguidance's Lark dialect: `start: ...` rules,
        /regex/ and "literal" terminals, %json {schema} for embedded JSON)."""
        if not isinstance(lark, str):
            raise TypeError(f"grammar must be a str (Lark syntax), got {type(lark).__name__}")
        llg = _llguidance()
        return cls(tokenizer, llg.LLMatcher.grammar_from_lark(lark), kind="Lark grammar", source=lark, **kw)

    @classmethod
    def from_response_format(cls, tokenizer, response_format, **kw) -> Optional["Constraint"]:
        """The constraint an OpenAI-style response_format asks for, or None for {"type": "text"}:
        {"type": "json_object"}, {"type": "json_schema", "json_schema": {"name": ..., "schema": {...},
        "strict": ...}}, and liquidlfm's {"type": "regex", "pattern": ...} and
        {"type": "grammar", "grammar": <Lark text>}. Raises ValueError naming what is wrong."""
        if isinstance(response_format, Constraint):
            return response_format
        if not isinstance(response_format, dict):
            raise TypeError(f"response_format must be a dict like {{'type': 'json_object'}}, "
                            f"got {type(response_format).__name__}")
        kind = response_format.get("type")
        if kind in (None, "text"):
            if kind is None:
                raise ValueError("response_format needs a 'type': 'text', 'json_object', 'json_schema', "
                                 "'regex' or 'grammar'")
            return None
        if kind == "json_object":
            return cls.json(tokenizer, **kw)
        if kind == "json_schema":
            spec = response_format.get("json_schema")
            if not isinstance(spec, dict):
                raise ValueError("response_format json_schema needs 'json_schema': {'name': ..., 'schema': {...}}")
            if "schema" not in spec:
                raise ValueError("response_format json_schema: 'json_schema' has no 'schema'")
            return cls.json_schema(tokenizer, spec["schema"], **kw)
        if kind == "regex":
            pattern = response_format.get("pattern", response_format.get("regex"))
            if not isinstance(pattern, str):
                raise ValueError("response_format regex needs 'pattern': a regular expression string")
            return cls.regex(tokenizer, pattern, **kw)
        if kind in ("grammar", "lark"):
            lark = response_format.get("grammar", response_format.get("lark"))
            if not isinstance(lark, str):
                raise ValueError("response_format grammar needs 'grammar': Lark grammar text")
            return cls.grammar(tokenizer, lark, **kw)
        raise ValueError(f"response_format type {kind!r} is not supported: use 'text', 'json_object', "
                         f"'json_schema', 'regex' or 'grammar'")

    # ---- decoding ----

    @property
    def n_words(self) -> int:
        return mask_words(self.n_vocab)

    def new_mask(self) -> np.ndarray:
        """A mask array for this constraint's vocabulary (uint32 zeros)."""
        return np.zeros(self.n_words, dtype=np.uint32)

    def fill_mask(self, bits: np.ndarray) -> np.ndarray:
        """Write the tokens allowed next into bits (uint32, C-contiguous, at least n_words words;
        words past the constraint's vocabulary are set to 0). Returns bits. Once the grammar is
        complete, the stop tokens are allowed (and nothing else when it cannot go on)."""
        if not isinstance(bits, np.ndarray) or bits.dtype != np.uint32 or bits.ndim != 1:
            raise TypeError("fill_mask needs a 1-D numpy.uint32 array (Constraint.new_mask())")
        if not bits.flags.c_contiguous or not bits.flags.writeable:
            raise ValueError("fill_mask needs a writeable C-contiguous array")
        n = self.n_words
        if bits.shape[0] < n:
            raise ValueError(f"the mask has {bits.shape[0]} words; this constraint needs {n} "
                             f"(n_vocab {self.n_vocab})")
        if getattr(self.tokenizer, "closed", False):
            raise ValueError("the constraint's tokenizer is closed")
        m = self._matcher
        m.unsafe_compute_mask_ptr(bits.ctypes.data, n * 4)
        if m.is_error():
            raise RuntimeError(f"constrained decoding failed ({self.kind}): {self._error()}")
        bits[n:] = 0
        if (bits[self.eos_id // 32] >> np.uint32(self.eos_id % 32)) & np.uint32(1):
            np.bitwise_or.at(bits, self._stop_words, self._stop_bits)
        return bits

    def allows(self, token: int) -> bool:
        """Whether token may come next (without changing the state)."""
        token = int(token)
        if self._matcher.validate_tokens([token]) == 1:
            return True
        return token in self.stop_ids and self._may_end()

    def _may_end(self) -> bool:
        m = self._matcher
        return bool(m.is_stopped() or m.is_accepting())

    def accept(self, token: int) -> None:
        """Advance past token (sampled under this constraint's mask). A stop token is accepted once
        the grammar is complete. Raises ValueError, leaving the state unchanged, for a token the
        grammar does not allow here."""
        token = int(token)
        m = self._matcher
        if m.validate_tokens([token]) == 1:
            ok = m.consume_token(token)
        elif token in self.stop_ids and self._may_end():
            ok = m.consume_token(self.eos_id)  # llguidance knows one end token; any stop id means it
        else:
            raise ValueError(f"token {token} ({self._token_text(token)}) is not allowed here by the {self.kind}"
                             + (" (it is already complete)" if m.is_stopped() else ""))
        if not ok:
            raise RuntimeError(f"constrained decoding failed ({self.kind}): {self._error()}")

    @property
    def is_finished(self) -> bool:
        """True once the grammar is complete and cannot go on: only a stop token may follow (or one
        has been accepted)."""
        return bool(self._matcher.is_stopped())

    @property
    def is_accepting(self) -> bool:
        """True when the output so far is complete under the grammar (it may still go on)."""
        return bool(self._matcher.is_accepting())

    def reset(self) -> None:
        """Back to the initial state (no tokens accepted)."""
        self._matcher.reset()

    def copy(self) -> "Constraint":
        """An independent constraint in the same state."""
        return Constraint(self.tokenizer, self._grammar, kind=self.kind, source=self.source, stop_ids=self.stop_ids,
                          n_vocab=self.n_vocab, _matcher=self._matcher.deep_copy())

    # ---- one generation at a time ----

    def _claim(self) -> None:
        if not self._busy.acquire(blocking=False):
            raise RuntimeError("this Constraint is in use by another generation; use constraint.copy() "
                               "for each concurrent one")

    def _release(self) -> None:
        self._busy.release()

    # ---- helpers ----

    def _error(self) -> str:
        return self._matcher.get_error().split("\n<state>")[0].strip()

    def _token_text(self, token: int) -> str:
        try:
            return repr(self.tokenizer.decode_bytes([token]).decode("utf-8", "replace"))
        except Exception:  # an id outside the tokenizer
            return "not a token of the tokenizer"

    def __repr__(self) -> str:
        src = self.source if len(self.source) <= 60 else self.source[:57] + "..."
        return f"Constraint({self.kind}: {src!r}, finished={self.is_finished})"
