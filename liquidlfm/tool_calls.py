"""LFM2's tool-call text: reading the calls a model wrote between its tool-call tokens.

LFM2 answers a tool request with its own tokens around a Python-style list of calls
(docs/architecture.md §7.3; /work/shared/docs/lfm2-reference.md §7.3):

    <|tool_call_start|>[get_weather(city="Paris", days=2), get_time(tz="CET")]<|tool_call_end|>

(or, when the system prompt asks for JSON, `[{"name": "get_weather", "arguments": {"city": "Paris"}}]`).
parse_tool_calls() turns the text between the two tokens into OpenAI's shape, reading it with
Python's `ast` and accepting literals only (strings, numbers, True/False/None, lists, tuples,
dicts): nothing is ever evaluated. split_tool_calls() finds the call regions in a reply's decoded
text (for callers that hold the whole reply, like Scholar's search agent; the server splits a token
stream by token ids instead, liquidlfm/server/tools.py).
Shared by the server (liquidlfm/server/tools.py) and Scholar's agent search (liquidlfm/scholar/agent.py).
"""
from __future__ import annotations

import ast
import json
import math
import re
import secrets
from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple

__all__ = ["TOOL_CALL_START", "TOOL_CALL_END", "ToolCall", "parse_tool_calls", "split_tool_calls", "new_call_id"]

TOOL_CALL_START = "<|tool_call_start|>"
TOOL_CALL_END = "<|tool_call_end|>"
_MAX_CALL_TEXT = 1 << 20  # characters of one call list we try to parse (max_tokens bounds it anyway)


@dataclass
class ToolCall:
    """One call in OpenAI's shape: id, name, arguments (a JSON object as a string)."""

    name: str
    arguments: str
    id: str = field(default_factory=lambda: new_call_id())

    def as_openai(self, index: Optional[int] = None) -> dict:
        d = {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}
        if index is not None:  # streaming deltas carry the call's position
            d = {"index": index, **d}
        return d


def new_call_id() -> str:
    return "call_" + secrets.token_hex(12)


class _NotLiteral(ValueError):
    pass


def _literal(node: ast.AST) -> Any:
    """The JSON value of a literal expression node; _NotLiteral for anything else (names, calls,
    attribute access, operators other than a sign, sets, bytes, complex numbers, NaN/inf)."""
    if isinstance(node, ast.Constant):
        v = node.value
        if v is None or isinstance(v, (bool, str, int)):
            return v
        if isinstance(v, float) and math.isfinite(v):
            return v
        raise _NotLiteral(f"unsupported constant {v!r}")
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) \
            and isinstance(node.operand, ast.Constant) and type(node.operand.value) in (int, float):
        v = node.operand.value
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.Dict):
        out = {}
        for k, v in zip(node.keys, node.values):
            if k is None:  # {**x}
                raise _NotLiteral("dict unpacking")
            key = _literal(k)
            if not isinstance(key, str):  # JSON objects have string keys
                key = json.dumps(key)
            out[key] = _literal(v)
        return out
    # JSON spellings a model may use inside a Python call: true / false / null
    if isinstance(node, ast.Name) and node.id in ("true", "false", "null"):
        return {"true": True, "false": False, "null": None}[node.id]
    raise _NotLiteral(f"not a literal: {type(node).__name__}")


def _call_name(func: ast.AST) -> str:
    """f -> "f"; a dotted target (api.f) keeps its dots: OpenAI names have none, but it still names
    the function the model meant."""
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if not isinstance(func, ast.Name):
        raise _NotLiteral("call target is not a name")
    parts.append(func.id)
    return ".".join(reversed(parts))


def _from_python(text: str) -> List[ToolCall]:
    tree = ast.parse(text, mode="eval").body
    calls = tree.elts if isinstance(tree, (ast.List, ast.Tuple)) else [tree]
    out = []
    for c in calls:
        if not isinstance(c, ast.Call):
            raise _NotLiteral("list item is not a call")
        if c.args:
            raise _NotLiteral("positional arguments have no parameter names")
        args = {}
        for kw in c.keywords:
            if kw.arg is None:  # f(**x)
                raise _NotLiteral("keyword unpacking")
            args[kw.arg] = _literal(kw.value)
        out.append(ToolCall(_call_name(c.func), json.dumps(args, ensure_ascii=False)))
    return out


def _reject_constant(name: str):
    raise _NotLiteral(f"{name} is not JSON")


def _from_json(text: str) -> List[ToolCall]:
    data = json.loads(text, parse_constant=_reject_constant)
    items = data if isinstance(data, list) else [data]
    out = []
    for it in items:
        if not isinstance(it, dict) or not isinstance(it.get("name"), str):
            raise _NotLiteral("JSON call without a name")
        args = it.get("arguments", it.get("parameters", {}))
        if isinstance(args, str):  # already a JSON string (OpenAI's own shape)
            args = json.loads(args, parse_constant=_reject_constant)
        if not isinstance(args, dict):
            raise _NotLiteral("JSON call arguments are not an object")
        out.append(ToolCall(it["name"], json.dumps(args, ensure_ascii=False)))
    return out


def parse_tool_calls(text: str) -> Optional[List[ToolCall]]:
    """The calls in the text between <|tool_call_start|> and <|tool_call_end|> (markers excluded),
    or None when it is not a list of calls with literal keyword arguments (Pythonic or JSON).
    An empty list `[]` gives []."""
    text = text.strip()
    if not text or len(text) > _MAX_CALL_TEXT:
        return None
    looks_json = text.startswith("{") or re.match(r"\[\s*\{", text) is not None
    for reader in (_from_json, _from_python) if looks_json else (_from_python, _from_json):
        try:
            return reader(text)
        except (_NotLiteral, SyntaxError, ValueError, TypeError, RecursionError, MemoryError):
            continue
    return None


def split_tool_calls(text: str) -> Tuple[str, List[ToolCall]]:
    """(content, calls) of a whole decoded reply: the calls of every closed
    <|tool_call_start|>...<|tool_call_end|> region that parses, and the rest of the text as content
    (a region that does not parse, or is left open, stays in the content, markers included, so
    nothing the model wrote is lost)."""
    content, calls, pos = [], [], 0
    while True:
        i = text.find(TOOL_CALL_START, pos)
        j = text.find(TOOL_CALL_END, i + len(TOOL_CALL_START)) if i >= 0 else -1
        if i < 0 or j < 0:
            content.append(text[pos:])
            break
        body = text[i + len(TOOL_CALL_START):j]
        parsed = parse_tool_calls(body)
        content.append(text[pos:i])
        if parsed is None:
            content.append(text[i:j + len(TOOL_CALL_END)])
        else:
            calls.extend(parsed)
        pos = j + len(TOOL_CALL_END)
    return "".join(content), calls
