"""The request bodies of /v1/chat/completions and /v1/completions, validated into plain values.

Types are strict (a string is not a number, a float is not an int, a bool is not an int): what
OpenAI's API rejects with 400 we reject with 400, naming the parameter. Unknown fields are ignored,
as llama-server and vLLM do, so clients that send newer OpenAI fields (`store`, `metadata`,
`service_tier`, ...) still work. Fields with several accepted shapes (`prompt`, `stop`,
`tool_choice`, message `content`) are checked by hand for clear messages.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import APIError, bad_request
from .tools import FUNCTION_NAME_PATTERN

__all__ = ["ChatRequest", "CompletionRequest", "validate_request", "sampling_kwargs", "stop_list",
           "prompt_list", "message_text", "reject_unsupported", "MAX_STOP", "MAX_N"]

MAX_STOP = 4      # OpenAI's limit on stop sequences
MAX_N = 128       # OpenAI's limit on n (the server's queue may allow fewer; see app.py)


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", populate_by_name=True)


class StreamOptions(_Strict):
    include_usage: Optional[bool] = None


class FunctionCall(_Strict):
    name: str
    arguments: str = "{}"


class ToolCallIn(_Strict):
    id: Optional[str] = None
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(_Strict):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Any = None          # str, list of content parts, or null (assistant with tool_calls)
    name: Optional[str] = None
    tool_calls: Optional[List[ToolCallIn]] = None
    tool_call_id: Optional[str] = None


class FunctionDef(_Strict):
    name: str = Field(pattern=FUNCTION_NAME_PATTERN.pattern)
    description: Optional[str] = None
    parameters: Optional[Dict[str, Any]] = None
    strict: Optional[bool] = None


class Tool(_Strict):
    type: Literal["function"]
    function: FunctionDef


class _Common(_Strict):
    model: str
    stream: bool = False
    stream_options: Optional[StreamOptions] = None
    n: int = Field(1, ge=1, le=MAX_N)
    temperature: Optional[float] = Field(None, ge=0, le=2)
    top_p: Optional[float] = Field(None, ge=0, le=1)
    top_k: Optional[int] = Field(None, ge=-1)           # extension (vLLM / llama-server); -1 or 0: off
    min_p: Optional[float] = Field(None, ge=0, le=1)    # extension
    repetition_penalty: Optional[float] = Field(None, gt=0)  # extension
    presence_penalty: Optional[float] = Field(None, ge=-2, le=2)
    frequency_penalty: Optional[float] = Field(None, ge=-2, le=2)
    logit_bias: Optional[Dict[str, float]] = None
    stop: Any = None
    seed: Optional[int] = None
    user: Optional[str] = None


class ChatRequest(_Common):
    messages: List[ChatMessage] = Field(min_length=1)
    max_tokens: Optional[int] = Field(None, ge=0)
    max_completion_tokens: Optional[int] = Field(None, ge=0)
    tools: Optional[List[Tool]] = None
    tool_choice: Any = None
    parallel_tool_calls: Optional[bool] = None
    # {"type": "text" | "json_object" | "json_schema", ...}, and liquidlfm's "regex" / "grammar";
    # checked by Constraint.from_response_format
    response_format: Optional[Dict[str, Any]] = None
    logprobs: Optional[bool] = None
    top_logprobs: Optional[int] = None


class CompletionRequest(_Common):
    prompt: Any
    max_tokens: Optional[int] = Field(16, ge=0)   # OpenAI's default for completions
    echo: Optional[bool] = None
    response_format: Optional[Dict[str, Any]] = None   # an extension here, as in vLLM / llama-server
    suffix: Optional[str] = None
    best_of: Optional[int] = None
    logprobs: Optional[int] = None


def _param(loc) -> Optional[str]:
    """pydantic's location ('messages', 0, 'role') as OpenAI writes it: messages[0].role."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or None


def validate_request(cls, body: Any):
    """body (decoded JSON) -> cls instance; APIError 400 naming the first bad parameter."""
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.", code="invalid_json")
    try:
        req = cls.model_validate(body)
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        param = _param(err["loc"])
        kind = err["type"]
        msg = err["msg"][:1].lower() + err["msg"][1:]
        if kind == "missing":
            raise bad_request(f"Missing required parameter: '{param}'.", param, "missing_required_parameter") from None
        if kind.endswith("_type"):
            raise bad_request(f"Invalid type for '{param}': {msg}.", param, "invalid_type") from None
        raise bad_request(f"Invalid value for '{param}': {msg}.", param, "invalid_value") from None
    for name in ("temperature", "top_p", "min_p", "repetition_penalty", "presence_penalty", "frequency_penalty"):
        v = getattr(req, name)
        if v is not None and not math.isfinite(v):
            raise bad_request(f"Invalid value for '{name}': must be a finite number.", name, "invalid_value")
    return req


# ---- fields with several shapes ----

def stop_list(stop: Any) -> List[str]:
    """`stop`: null, a string, or a list of at most MAX_STOP strings."""
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop] if stop else []
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        if len(stop) > MAX_STOP:
            raise bad_request(f"Invalid value for 'stop': at most {MAX_STOP} stop sequences are allowed, "
                              f"got {len(stop)}.", "stop", "invalid_value")
        return [s for s in stop if s]
    raise bad_request("Invalid type for 'stop': expected a string or an array of strings.", "stop", "invalid_type")


def prompt_list(prompt: Any) -> List[Union[str, List[int]]]:
    """`prompt`: a string, a list of strings, a list of token ids, or a list of token-id lists."""
    def ids(x):
        return isinstance(x, list) and len(x) > 0 and all(type(t) is int for t in x)

    if isinstance(prompt, str):
        return [prompt]
    if ids(prompt):
        return [prompt]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return list(prompt)
    if isinstance(prompt, list) and prompt and all(ids(p) for p in prompt):
        return list(prompt)
    raise bad_request("Invalid type for 'prompt': expected a string, an array of strings, an array of token ids "
                      "or an array of token-id arrays (none empty).", "prompt", "invalid_type")


def message_text(content: Any, where: str, allow_null: bool) -> str:
    """A message's content: a string, null (where allowed), or a list of text parts joined by newlines."""
    if isinstance(content, str):
        return content
    if content is None:
        if allow_null:
            return ""
        raise bad_request(f"Missing required parameter: '{where}'.", where, "missing_required_parameter")
    if isinstance(content, list):
        texts = []
        for i, part in enumerate(content):
            p = f"{where}[{i}]"
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise bad_request(f"Invalid type for '{p}': expected a content part object with a 'type'.", p,
                                  "invalid_type")
            if part["type"] not in ("text", "input_text"):
                raise bad_request(f"Invalid value for '{p}.type': this server takes text content only, got "
                                  f"{part['type']!r}.", p + ".type", "invalid_value")
            if not isinstance(part.get("text"), str):
                raise bad_request(f"Invalid type for '{p}.text': expected a string.", p + ".text", "invalid_type")
            texts.append(part["text"])
        return "\n".join(texts)
    raise bad_request(f"Invalid type for '{where}': expected a string or an array of content parts.", where,
                      "invalid_type")


def sampling_kwargs(req: _Common, n_vocab: int) -> Dict[str, Any]:
    """The engine's sampling keyword arguments for req (unset ones left out: the model's defaults apply)."""
    kw: Dict[str, Any] = {}
    for name in ("temperature", "top_p", "min_p", "repetition_penalty", "presence_penalty", "frequency_penalty",
                 "seed"):
        v = getattr(req, name)
        if v is not None:
            kw[name] = v
    if req.top_k is not None:
        kw["top_k"] = max(req.top_k, 0)
    if req.logit_bias:
        bias = {}
        for key, value in req.logit_bias.items():
            try:
                token = int(key)
            except ValueError:
                token = -1
            if not 0 <= token < n_vocab or str(token) != key.strip():
                raise bad_request(f"Invalid key in 'logit_bias': {key!r} is not a token id in [0, {n_vocab}).",
                                  "logit_bias", "invalid_value")
            if not (math.isfinite(value) and -100 <= value <= 100):
                raise bad_request(f"Invalid value in 'logit_bias' for token {key}: must be in [-100, 100].",
                                  "logit_bias", "invalid_value")
            bias[token] = float(value)
        kw["logit_bias"] = bias
    return kw


def reject_unsupported(req: _Common) -> None:
    """400 for features this server does not implement, instead of silently ignoring them."""
    if isinstance(req, ChatRequest):
        if req.logprobs or req.top_logprobs:
            raise bad_request("logprobs are not supported by this server.", "logprobs", "unsupported_parameter")
    else:
        if req.logprobs is not None:
            raise bad_request("logprobs are not supported by this server.", "logprobs", "unsupported_parameter")
        if req.suffix:
            raise bad_request("suffix (fill-in-the-middle) is not supported by this server.", "suffix",
                              "unsupported_parameter")
        if req.best_of is not None and req.best_of != req.n:
            raise bad_request("best_of other than n is not supported by this server.", "best_of",
                              "unsupported_parameter")
