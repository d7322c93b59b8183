"""LFM2 tool calls <-> OpenAI tool_calls: the parser on model-like text, the history formatter, and
the stream splitter (liquidlfm/server/tools.py)."""
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liquidlfm.server.tools import (TOOL_CALL_END, TOOL_CALL_START, ToolCallSplitter, format_tool_calls,
                                    parse_tool_calls)


def calls(text):
    out = parse_tool_calls(text)
    return None if out is None else [(c.name, json.loads(c.arguments)) for c in out]


# ---- parsing what LFM2 writes ----

def test_pythonic_calls_as_lfm2_writes_them():
    # the shapes of Liquid's documented examples: keyword arguments, several calls, nested literals
    assert calls('[get_candidate_status(candidate_id="12345")]') == [("get_candidate_status", {"candidate_id": "12345"})]
    assert calls('[get_weather(city="Paris", days=2), get_time(tz="CET")]') == [
        ("get_weather", {"city": "Paris", "days": 2}), ("get_time", {"tz": "CET"})]
    assert calls("[f(x=[1, -2.5, {'a': None, 'b': (True, False)}], y='it\\'s', z=1e3)]") == [
        ("f", {"x": [1, -2.5, {"a": None, "b": [True, False]}], "y": "it's", "z": 1000.0})]
    assert calls("[f()]") == [("f", {})]
    assert calls("  [f(a=1)]\n") == [("f", {"a": 1})]           # whitespace around the list
    assert calls("f(a=1)") == [("f", {"a": 1})]                  # a bare call without the list
    assert calls("[api.search(q='x')]") == [("api.search", {"q": "x"})]
    assert calls('[f(s="한국어 🙂", e="")]') == [("f", {"s": "한국어 🙂", "e": ""})]
    assert calls("[f(flag=true, none=null)]") == [("f", {"flag": True, "none": None})]  # JSON spellings
    assert calls("[]") == []


def test_json_calls():
    # LFM2 switches to JSON when the system prompt asks for it
    assert calls('[{"name": "f", "arguments": {"a": true, "b": null}}]') == [("f", {"a": True, "b": None})]
    assert calls('{"name": "f", "arguments": "{\\"a\\": 1}"}') == [("f", {"a": 1})]
    assert calls('[{"name": "f", "parameters": {"a": [1, 2]}}, {"name": "g"}]') == [("f", {"a": [1, 2]}), ("g", {})]


@pytest.mark.parametrize("text", [
    "",
    "[f(1)]",                                    # positional: no parameter name for the value
    "[f(**kw)]",
    "[f(x=y)]",                                  # a name is not a literal
    "[f(x=__import__('os').system('true'))]",    # nothing is ever evaluated
    "[f(x=open('/etc/passwd').read())]",
    "[f(x=1+2)]",
    "[f(x=[i for i in range(3)])]",
    "[f(x=lambda: 0)]",
    "[f(x={1, 2})]",                             # a set is not JSON
    "[f(x=b'bytes')]",
    "[f(x=1j)]",
    "[f(x=float('nan'))]",
    "[f(x=1e999)]",                              # inf
    '[{"name": "f", "arguments": {"a": NaN}}]',
    "[(lambda: 0)()]",
    "[f(a=1), 2]",
    "[f(a=1)",                                   # cut off (max_tokens)
    "import os",
    "[" * 5000 + "]" * 5000,                     # deep nesting: refused, not a crash
    "[f(x=" + "[" * 5000 + "]" * 5000 + ")]",
])
def test_rejects_anything_but_literal_calls(text):
    assert parse_tool_calls(text) is None


def test_evaluation_never_happens(tmp_path):
    marker = tmp_path / "ran"
    parse_tool_calls(f"[f(x=open({str(marker)!r}, 'w').write('x'))]")
    parse_tool_calls(f"[__import__('pathlib').Path({str(marker)!r}).touch()]")
    assert not marker.exists()


def test_huge_input_is_refused_quickly():
    assert parse_tool_calls("[f(x='" + "a" * (2 << 20) + "')]") is None


# ---- history: OpenAI tool_calls back to LFM2 text ----

def test_format_tool_calls():
    text = format_tool_calls([
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris", "n": 2}'}},
        {"function": {"name": "f", "arguments": '{"a": [1, null, true], "s": "x\\"y\\n"}'}},
    ])
    assert text == ('<|tool_call_start|>[get_weather(city="Paris", n=2), f(a=[1, None, True], s="x\\"y\\n")]'
                    '<|tool_call_end|>')
    assert calls(text[len(TOOL_CALL_START):-len(TOOL_CALL_END)]) == [
        ("get_weather", {"city": "Paris", "n": 2}), ("f", {"a": [1, None, True], "s": 'x"y\n'})]


@pytest.mark.parametrize("fn, message", [
    ({"name": "f", "arguments": "{not json"}, "not valid JSON"),
    ({"name": "f", "arguments": "[1]"}, "JSON object"),
    ({"name": "f g", "arguments": "{}"}, "identifier"),
    ({"name": "f", "arguments": '{"a b": 1}'}, "parameter name"),
])
def test_format_tool_calls_rejects(fn, message):
    with pytest.raises(ValueError, match=message):
        format_tool_calls([{"function": fn}])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
identifiers = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True).filter(
    lambda s: s not in ("True", "False", "None") and not __import__("keyword").iskeyword(s))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(identifiers, st.dictionaries(identifiers, json_values, max_size=4)), min_size=1, max_size=3))
def test_format_then_parse_round_trip(items):
    openai_calls = [{"function": {"name": n, "arguments": json.dumps(a)}} for n, a in items]
    text = format_tool_calls(openai_calls)
    assert text.startswith(TOOL_CALL_START) and text.endswith(TOOL_CALL_END)
    assert calls(text[len(TOOL_CALL_START):-len(TOOL_CALL_END)]) == [(n, json.loads(json.dumps(a))) for n, a in items]


# ---- splitting a generated stream by token ids ----

START, END = 10, 11
VOCAB = {20: "Let me check. ", 21: "[f(", 22: "a=1", 23: ")]", 24: "Done.", 25: "[bad syntax"}


def decode(ids):
    return "".join(VOCAB[i] for i in ids)


def text_of(t):
    return {START: TOOL_CALL_START, END: TOOL_CALL_END}.get(t) or VOCAB[t]


def run_splitter(ids, per_chunk=1):
    sp = ToolCallSplitter(START, END, decode)
    content, found = [], []
    for i in range(0, len(ids), per_chunk):
        part = ids[i:i + per_chunk]
        text, new = sp.feed("".join(text_of(t) for t in part), part)
        content.append(text)
        found += [(c.name, json.loads(c.arguments)) for c in new]
    content.append(sp.finish())
    return "".join(content), found


@pytest.mark.parametrize("per_chunk", [1, 2, 3, 100])
def test_splitter_separates_content_and_calls(per_chunk):
    ids = [20, START, 21, 22, 23, END, 24]
    assert run_splitter(ids, per_chunk) == ("Let me check. Done.", [("f", {"a": 1})])
    # two regions
    assert run_splitter([START, 21, 23, END, START, 21, 22, 23, END], per_chunk) == ("", [("f", {}), ("f", {"a": 1})])


def test_splitter_gives_back_what_does_not_parse():
    assert run_splitter([20, START, 25, END, 24]) == (
        "Let me check. " + TOOL_CALL_START + "[bad syntax" + TOOL_CALL_END + "Done.", [])
    # cut off by max_tokens: the open region comes back as text
    assert run_splitter([20, START, 21, 22]) == ("Let me check. " + TOOL_CALL_START + "[f(a=1", [])


def test_splitter_ignores_text_that_only_spells_the_marker():
    # ordinary tokens spelling "<|tool_call_start|>" are content: calls are found by token id
    sp = ToolCallSplitter(START, END, decode)
    assert sp.feed(TOOL_CALL_START + "[f()]" + TOOL_CALL_END, [20, 21]) == (
        TOOL_CALL_START + "[f()]" + TOOL_CALL_END, [])
