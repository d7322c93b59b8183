"""LFM2 tool calls <-> OpenAI tool_calls, for the server.

Reading the calls a model wrote (parse_tool_calls, literals only, nothing evaluated) lives in
liquidlfm/tool_calls.py, shared with Scholar's agent search. ToolCallSplitter separates a generated token stream into content
text and call lists by the two token ids, as the reference says to (never by decoded text, which
ordinary tokens could spell). format_tool_calls() writes an assistant message's OpenAI `tool_calls`
back as LFM2 text, for templates that ignore the field (LFM2's shipped template does).
tool_call_grammar() is the Lark grammar (llguidance's dialect) of a reply that is nothing but such a
call list, used to force a call (OpenAI's tool_choice "required" or a named function).
"""
from __future__ import annotations

import json
import re
from typing import Any, Callable, List, Sequence

from ..tool_calls import TOOL_CALL_END, TOOL_CALL_START, ToolCall, new_call_id, parse_tool_calls

__all__ = ["TOOL_CALL_START", "TOOL_CALL_END", "ToolCall", "parse_tool_calls", "format_tool_calls",
           "new_call_id", "ToolCallSplitter", "FUNCTION_NAME_PATTERN", "tool_call_grammar"]

# OpenAI's rule for function names
FUNCTION_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


# ---- OpenAI tool_calls -> LFM2 text (history replay) ----

def _python_literal(v: Any) -> str:
    """A JSON value written as the Python literal LFM2 emits (strings double-quoted)."""
    if v is None:
        return "None"
    if v is True:
        return "True"
    if v is False:
        return "False"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a JSON string is a valid Python string literal
    if isinstance(v, (int, float)):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_python_literal(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(str(k), ensure_ascii=False)}: {_python_literal(x)}"
                               for k, x in v.items()) + "}"
    raise TypeError(f"not a JSON value: {type(v).__name__}")


def format_tool_calls(calls: Sequence[dict]) -> str:
    """OpenAI tool_calls ([{"function": {"name", "arguments"}}, ...]) as LFM2's
    <|tool_call_start|>[name(key=value, ...)]<|tool_call_end|>. ValueError when an arguments string
    is not a JSON object or a name cannot be written as a Python call."""
    parts = []
    for i, c in enumerate(calls):
        fn = c.get("function") or {}
        name = fn.get("name")
        if not isinstance(name, str) or not all(p.isidentifier() for p in name.split(".")):
            raise ValueError(f"tool_calls[{i}].function.name must be an identifier, got {name!r}")
        raw = fn.get("arguments") or "{}"
        try:
            args = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            raise ValueError(f"tool_calls[{i}].function.arguments is not valid JSON") from None
        if not isinstance(args, dict):
            raise ValueError(f"tool_calls[{i}].function.arguments must be a JSON object")
        bad = [k for k in args if not (isinstance(k, str) and k.isidentifier())]
        if bad:
            raise ValueError(f"tool_calls[{i}].function.arguments: {bad[0]!r} is not a parameter name")
        parts.append(f"{name}(" + ", ".join(f"{k}={_python_literal(v)}" for k, v in args.items()) + ")")
    return TOOL_CALL_START + "[" + ", ".join(parts) + "]" + TOOL_CALL_END


# ---- splitting a generated stream ----

class ToolCallSplitter:
    """Feeds on generation chunks (text, token ids) and separates content from tool calls.

    The call region starts at token start_id and ends at end_id; its text is decoded from its own
    ids (decode(ids) -> str) and parsed when the end token arrives. feed() returns what became final:
    content text, and the calls of each closed region. A region that does not parse, or is still
    open at the end (max_tokens), is given back as content text, markers included, so nothing the
    model wrote is lost.

    Chunk texts must carry the special tokens' text (generation decodes them), so the text of a
    chunk holding start_id is cut at the marker: what precedes it is content.
    """

    def __init__(self, start_id: int, end_id: int, decode: Callable[[Sequence[int]], str]):
        self.start_id, self.end_id, self._decode = start_id, end_id, decode
        self._in_call = False
        self._ids: List[int] = []
        self.calls: List[ToolCall] = []

    def feed(self, text: str, token_ids: Sequence[int]):
        """-> (content text now final, list of new ToolCalls)."""
        if not self._in_call and self.start_id not in token_ids:
            return text, []
        content, new_calls = [], []
        # walk the ids; the text of a chunk normally belongs to one id (one token per chunk), but a
        # chunk may carry several; text is attributed at the markers
        for t in token_ids:
            if not self._in_call:
                if t == self.start_id:
                    head, _, text = text.partition(TOOL_CALL_START)
                    content.append(head)
                    self._in_call, self._ids = True, []
                # other ids before the start: their text is in `text` before the marker
            elif t == self.end_id:
                body = self._decode(self._ids)
                calls = parse_tool_calls(body)
                if calls is None:
                    content.append(TOOL_CALL_START + body + TOOL_CALL_END)
                else:
                    new_calls.extend(calls)
                    self.calls.extend(calls)
                self._in_call, self._ids = False, []
                text = text.partition(TOOL_CALL_END)[2]
            else:
                self._ids.append(t)
        if not self._in_call:
            content.append(text)
        return "".join(content), new_calls

    def finish(self) -> str:
        """End of generation: an unclosed region's text, as content ('' when none)."""
        if not self._in_call:
            return ""
        self._in_call = False
        return TOOL_CALL_START + self._decode(self._ids)


# ---- a forced call: the grammar of a reply that is one call list ----

# JSON values inside a call are written compactly, as json.dumps does (whitespace cannot pad them)
_JSON_STYLE = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


def _lark_string(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a Lark string literal


def tool_call_grammar(functions: Sequence[dict], start_id: int, end_id: int, parallel: bool = True) -> str:
    """A Lark grammar for <|tool_call_start|>[name(key=value, ...), ...]<|tool_call_end|> over
    functions (OpenAI function definitions: name, parameters JSON schema), in the Pythonic form
    LFM2 writes. Each call names one of the functions and passes its parameters as keyword
    arguments in the declared order, the required ones always and the others optionally, each
    value JSON valid under the parameter's schema (so True / None are written true / null, which
    parse_tool_calls reads). parallel=False allows exactly one call. ValueError for a parameter
    name that cannot be a keyword argument."""
    rules = []
    calls = []
    for j, fn in enumerate(functions):
        name = fn["name"]
        params = fn.get("parameters") or {}
        props = params.get("properties") or {}
        if not isinstance(props, dict):
            raise ValueError(f"tool {name!r}: 'parameters.properties' must be an object")
        required = set(params.get("required") or ())
        keys = list(props)
        for k in keys:
            if not (isinstance(k, str) and k.isidentifier()):
                raise ValueError(f"tool {name!r}: parameter {k!r} cannot be written as a keyword argument")
        made = {}

        def seq(i: int, emitted: bool) -> str:
            """A rule for parameters i.. (emitted: one is already written, so a separator comes first)."""
            if i == len(keys):
                return ""
            rule = f"a{j}_{i}_{int(emitted)}"
            if rule not in made:
                made[rule] = True
                k = keys[i]
                schema = dict(props[k]) if isinstance(props[k], dict) else {}
                for defs in ("$defs", "definitions"):  # what "#/$defs/..." references point into
                    if isinstance(params.get(defs), dict):
                        schema.setdefault(defs, params[defs])
                value = "%json " + json.dumps({**schema, "x-guidance": _JSON_STYLE})
                item = _lark_string((", " if emitted else "") + k + "=") + " " + value
                rest = seq(i + 1, True)
                with_item = item + (" " + rest if rest else "")
                if k in required:
                    body = with_item
                else:
                    skip = seq(i + 1, emitted)
                    body = f"({with_item} | {skip})" if skip else f"({with_item})?"
                rules.append(f"{rule}: {body}")
            return rule

        args = seq(0, False)
        rules.append(f"c{j}: {_lark_string(name + '(')} {args} \")\"" if args else f"c{j}: {_lark_string(name + '()')}")
        calls.append(f"c{j}")
    call = " | ".join(calls)
    many = ' (", " call)*' if parallel else ""
    head = [f"start: <[{start_id}]> \"[\" call{many} \"]\" <[{end_id}]>", f"call: {call}"]
    return "\n".join(head + rules) + "\n"
