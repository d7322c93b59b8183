"""The HTTP layer on a scripted model (scripted.py: the real BatchEngine and server over a fake
forward pass whose replies are known exactly): response shapes, streaming, n, stop, tools, limits
and every error code, disconnects, and the draining shutdown."""
import json
import socket
import threading
import time

import httpx
import openai
import pytest

from tests.server.conftest import ThreadServer
from tests.server.scripted import ScriptedModel

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
         {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}]


def script(user: str) -> str:
    """What the scripted model answers to the last user message."""
    if user.startswith("weather"):
        return 'Checking.<|tool_call_start|>[get_weather(city="Paris"), get_time()]<|tool_call_end|>'
    if user.startswith("call one"):
        return '<|tool_call_start|>[get_weather(city="Oslo")]<|tool_call_end|>'
    if user.startswith("call"):
        return '<|tool_call_start|>[get_weather(city="Paris"), get_time()]<|tool_call_end|>'
    if user.startswith("broken call"):
        return "<|tool_call_start|>[get_weather(city=Paris)]<|tool_call_end|>"
    if user.startswith("json"):
        return '{"name": "Ada", "age": 36}'
    if user.startswith("long"):
        return "x" * 400
    return user.upper()


@pytest.fixture(scope="module")
def model():
    return ScriptedModel(script)


@pytest.fixture(scope="module")
def srv(model):
    with ThreadServer(model, n_seq=4, max_queue=4, n_ctx=512) as s:
        yield s


@pytest.fixture
def http(srv, model):
    model.gate.set()
    model.step_delay = 0.0
    with srv.client() as c:
        yield c
    model.gate.set()
    model.step_delay = 0.0
    wait_idle(srv)


def wait_idle(srv, timeout=10):
    deadline = time.monotonic() + timeout
    while srv.engine.n_active or srv.engine.n_queued or srv.state.admitted:
        assert time.monotonic() < deadline, (srv.engine, srv.state.admitted)
        time.sleep(0.01)


def chat(http, content, **kw):
    return http.post("/v1/chat/completions", json={"model": "scripted", "messages": [{"role": "user", "content": content}],
                                                   **kw})


def sse(response):
    """The data events of an SSE body: JSON objects, and the final [DONE]."""
    events = []
    for block in response.text.split("\n\n"):
        if not block:
            continue
        assert block.startswith("data: "), block
        data = block[len("data: "):]
        events.append(data if data == "[DONE]" else json.loads(data))
    return events


def assert_error(r, status, code=None, param=None):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    if param is not None:
        assert body["error"]["param"] == param, body
    return body["error"]


# ---- answers ----

def test_chat_completion_shape_and_usage(http, model):
    r = chat(http, "hello there", temperature=0)
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-") and body["model"] == "scripted"
    (choice,) = body["choices"]
    assert choice == {"index": 0, "message": {"role": "assistant", "content": "HELLO THERE", "refusal": None},
                      "logprobs": None, "finish_reason": "stop"}
    prompt = model.prompts[-1]
    assert prompt == "<|startoftext|><|im_start|>user\nhello there<|im_end|>\n<|im_start|>assistant\n"
    n_prompt = len(model.tokenizer.encode(prompt, add_special_tokens=False))
    assert body["usage"] == {"prompt_tokens": n_prompt, "completion_tokens": len("HELLO THERE"),
                             "total_tokens": n_prompt + len("HELLO THERE")}


def test_chat_roles_and_content_parts(http, model):
    r = http.post("/v1/chat/completions", json={"model": "scripted", "messages": [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "part one"}, {"type": "text", "text": "part two"}]},
    ]})
    assert r.json()["choices"][0]["message"]["content"] == "PART ONE\nPART TWO"
    assert model.prompts[-1].startswith("<|startoftext|><|im_start|>system\nBe brief.<|im_end|>\n")


def test_chat_stream(http):
    r = chat(http, "stream me", stream=True, stream_options={"include_usage": True})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = sse(r)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "STREAM ME"
    finals = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finals) == 1 and finals[0]["choices"][0]["finish_reason"] == "stop"
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == len("STREAM ME")


def test_stream_without_usage_has_no_usage_field(http):
    chunks = sse(chat(http, "abc", stream=True))[:-1]
    assert all("usage" not in c for c in chunks)


def test_n_choices_share_one_prefill(http, srv, model):
    ctx = model.contexts[-1]
    before = ctx.tokens_decoded
    body = chat(http, "twice", n=3).json()
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    assert all(c["message"]["content"] == "TWICE" for c in body["choices"])
    n_prompt = body["usage"]["prompt_tokens"]
    assert body["usage"]["completion_tokens"] == 3 * len("TWICE")
    # the prompt was decoded once, then each choice decoded its own tokens (the last one needs none)
    assert ctx.tokens_decoded - before == n_prompt + 3 * len("TWICE")


def test_n_choices_stream(http):
    chunks = sse(chat(http, "two", n=2, stream=True))[:-1]
    for i in (0, 1):
        mine = [c["choices"][0] for c in chunks if c["choices"][0]["index"] == i]
        assert mine[0]["delta"]["role"] == "assistant"
        assert "".join(c["delta"].get("content", "") for c in mine) == "TWO"
        assert mine[-1]["finish_reason"] == "stop"


def test_stop_strings(http):
    assert chat(http, "hello there", stop="LO").json()["choices"][0]["message"]["content"] == "HEL"
    assert chat(http, "hello there", stop=["zz", "O T"]).json()["choices"][0]["message"]["content"] == "HELL"
    streamed = sse(chat(http, "hello there", stop=["RE"], stream=True))[:-1]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in streamed) == "HELLO THE"


def test_max_tokens_and_length(http):
    body = chat(http, "hello there", max_tokens=3).json()
    assert body["choices"][0] == {"index": 0, "message": {"role": "assistant", "content": "HEL", "refusal": None},
                                  "logprobs": None, "finish_reason": "length"}
    assert chat(http, "hello there", max_completion_tokens=2).json()["choices"][0]["message"]["content"] == "HE"


def test_completions(http):
    body = http.post("/v1/completions", json={"model": "scripted", "prompt": "abc", "max_tokens": 4}).json()
    assert body["object"] == "text_completion" and body["id"].startswith("cmpl-")
    assert body["choices"] == [{"text": "!!!!", "index": 0, "logprobs": None, "finish_reason": "length"}]
    assert body["usage"] == {"prompt_tokens": 4, "completion_tokens": 4, "total_tokens": 8}  # BOS + 3 bytes
    # default max_tokens is OpenAI's 16
    assert http.post("/v1/completions", json={"model": "scripted", "prompt": "x"}).json()["choices"][0]["text"] == "!" * 16
    body = http.post("/v1/completions", json={"model": "scripted", "prompt": ["a", "bc"], "max_tokens": 2,
                                              "n": 2, "echo": True}).json()
    assert [c["text"] for c in body["choices"]] == ["a!!", "a!!", "bc!!", "bc!!"]
    assert [c["index"] for c in body["choices"]] == [0, 1, 2, 3]
    assert body["usage"]["prompt_tokens"] == 2 + 3 and body["usage"]["completion_tokens"] == 8
    body = http.post("/v1/completions", json={"model": "scripted", "prompt": [[1, 200, 201], [202]], "max_tokens": 1,
                                              "echo": True}).json()
    assert [c["text"] for c in body["choices"]] == ["<|startoftext|>de!", "f!"]
    chunks = sse(http.post("/v1/completions", json={"model": "scripted", "prompt": "q", "max_tokens": 3, "stream": True,
                                                    "echo": True}))
    assert chunks[-1] == "[DONE]" and all(c["object"] == "text_completion" for c in chunks[:-1])
    assert "".join(c["choices"][0]["text"] for c in chunks[:-1]) == "q!!!"
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    # a stop string that is the whole output leaves nothing
    body = http.post("/v1/completions", json={"model": "scripted", "prompt": "q", "max_tokens": 5, "stop": "!!"}).json()
    assert body["choices"][0]["text"] == "" and body["choices"][0]["finish_reason"] == "stop"


def test_models_and_health(http, srv):
    assert http.get("/v1/models").json() == {"object": "list", "data": [
        {"id": "scripted", "object": "model", "created": srv.state.created, "owned_by": "liquidlfm",
         "max_model_len": 512}]}
    assert http.get("/v1/models/scripted").json()["id"] == "scripted"
    assert_error(http.get("/v1/models/other"), 404, "model_not_found")
    h = http.get("/health").json()
    assert h["status"] == "ok" and h["n_seq"] == 4 and h["active"] == 0 and h["queued"] == 0


def test_openai_client_on_scripted_model(srv, model):
    client = openai.OpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0)
    r = client.chat.completions.create(model="scripted", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == "HI" and r.usage.completion_tokens == 2
    parts = [c.choices[0].delta.content or "" for c in
             client.chat.completions.create(model="scripted", messages=[{"role": "user", "content": "yo"}], stream=True)
             if c.choices]
    assert "".join(parts) == "YO"


# ---- tools ----

def test_tool_calls(http, model):
    r = chat(http, "weather in Paris?", tools=TOOLS)
    (choice,) = r.json()["choices"]
    assert choice["finish_reason"] == "tool_calls"
    msg = choice["message"]
    assert msg["content"] == "Checking."
    calls = msg["tool_calls"]
    assert [(c["type"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
        ("function", "get_weather", {"city": "Paris"}), ("function", "get_time", {})]
    assert all(c["id"].startswith("call_") for c in calls) and calls[0]["id"] != calls[1]["id"]
    # the tools reached the model in LFM2's format
    assert ('List of tools: <|tool_list_start|>[{"name": "get_weather", "description": "Weather in a city", '
            '"parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}, {"name": "get_time", '
            '"parameters": {"type": "object", "properties": {}}}]<|tool_list_end|>') in model.prompts[-1]


def test_tool_calls_stream(http):
    chunks = sse(chat(http, "weather now", tools=TOOLS, stream=True))[:-1]
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert "".join(d.get("content") or "" for d in deltas) == "Checking."
    calls = [tc for d in deltas for tc in d.get("tool_calls", [])]
    assert [(tc["index"], tc["function"]["name"], json.loads(tc["function"]["arguments"])) for tc in calls] == [
        (0, "get_weather", {"city": "Paris"}), (1, "get_time", {})]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    # no tool-call token text leaks into the content
    assert not any("<|tool_call" in (d.get("content") or "") for d in deltas)


def test_tool_calls_with_openai_client(srv):
    client = openai.OpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0)
    r = client.chat.completions.create(model="scripted", messages=[{"role": "user", "content": "weather?"}], tools=TOOLS)
    assert r.choices[0].finish_reason == "tool_calls"
    assert [(t.function.name, json.loads(t.function.arguments)) for t in r.choices[0].message.tool_calls] == [
        ("get_weather", {"city": "Paris"}), ("get_time", {})]


def test_parallel_tool_calls_false_keeps_the_first(http):
    calls = chat(http, "weather", tools=TOOLS, parallel_tool_calls=False).json()["choices"][0]["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["get_weather"]


def test_unparsable_call_comes_back_as_content(http):
    choice = chat(http, "broken call", tools=TOOLS).json()["choices"][0]
    assert choice["finish_reason"] == "stop" and "tool_calls" not in choice["message"]
    assert choice["message"]["content"] == "<|tool_call_start|>[get_weather(city=Paris)]<|tool_call_end|>"


def test_tool_choice_required_and_named_constrain_the_reply_to_a_call(http, model):
    # the reply is held to the grammar of a call list over the tools (the scripted reply fits it)
    body = chat(http, "call", tools=TOOLS, tool_choice="required").json()
    assert model.prompts[-1].endswith("<|im_start|>assistant\n")
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    assert [c["function"]["name"] for c in body["choices"][0]["message"]["tool_calls"]] == ["get_weather", "get_time"]
    # a named function: only it may be called; the script's second call (get_time) is cut by the
    # grammar, which then allows only "]" or another get_weather call
    named = {"type": "function", "function": {"name": "get_weather"}}
    body = chat(http, "call one", tools=TOOLS, tool_choice=named, temperature=0).json()
    calls = body["choices"][0]["message"]["tool_calls"]
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
        ("get_weather", {"city": "Oslo"})]
    # without a grammar the scripted model would have answered in plain text
    assert "tool_calls" not in chat(http, "hello", tools=TOOLS).json()["choices"][0]["message"]


def test_tool_choice_none_bans_the_call_token(http):
    # the scripted reply starts "Checking." then wants <|tool_call_start|>, which is banned: the
    # sampler picks the best allowed token instead, and no call is parsed
    body = chat(http, "weather", tools=TOOLS, tool_choice="none", max_tokens=12).json()
    assert "tool_calls" not in body["choices"][0]["message"]
    assert body["choices"][0]["message"]["content"].startswith("Checking.")


def test_tool_history_is_replayed_in_lfm2_format(http, model):
    chat_messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
        {"role": "user", "content": "thanks"},
    ]
    r = http.post("/v1/chat/completions", json={"model": "scripted", "messages": chat_messages, "tools": TOOLS})
    assert r.json()["choices"][0]["message"]["content"] == "THANKS"
    p = model.prompts[-1]
    assert ('<|im_start|>assistant\n<|tool_call_start|>[get_weather(city="Paris")]<|tool_call_end|><|im_end|>\n'
            '<|im_start|>tool\n<|tool_response_start|>{"temp": 21}<|tool_response_end|><|im_end|>\n') in p


# ---- structured output ----

PERSON = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20}, "age": {"type": "integer"}},
          "required": ["name", "age"], "additionalProperties": False}


def test_response_format_json_schema(http):
    import jsonschema

    rf = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}}
    body = chat(http, "json please", response_format=rf, n=2).json()
    for c in body["choices"]:
        assert c["message"]["content"] == '{"name": "Ada", "age": 36}' and c["finish_reason"] == "stop"
        jsonschema.validate(json.loads(c["message"]["content"]), PERSON)
    streamed = sse(chat(http, "json please", response_format=rf, stream=True))[:-1]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in streamed) == '{"name": "Ada", "age": 36}'


def test_response_format_holds_the_model_to_the_schema(http):
    # the script answers "HELLO" (not JSON): the grammar allows only JSON, and the answer is JSON;
    # an enum leaves the scripted model's (uniform) preferences nothing to wander into
    schema = {"type": "object", "properties": {"mood": {"enum": ["happy", "sad"]}}, "required": ["mood"],
              "additionalProperties": False}
    body = chat(http, "hello", temperature=0,
                response_format={"type": "json_schema", "json_schema": {"name": "m", "schema": schema}}).json()
    assert json.loads(body["choices"][0]["message"]["content"])["mood"] in ("happy", "sad")
    assert body["choices"][0]["finish_reason"] == "stop"


def test_completions_response_format_extension(http):
    body = http.post("/v1/completions", json={"model": "scripted", "prompt": "q", "max_tokens": 8,
                                              "response_format": {"type": "regex", "pattern": "!{3}"}}).json()
    assert body["choices"][0]["text"] == "!!!" and body["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("rf", [
    {"type": "yaml"},
    {"type": "json_schema"},
    {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "properties": 5}}},
    {"type": "regex", "pattern": "("},
    "json_object",
])
def test_bad_response_format(http, rf):
    assert_error(chat(http, "x", response_format=rf), 400, param="response_format")


def test_response_format_and_forced_call_conflict(http):
    assert_error(chat(http, "x", response_format={"type": "json_object"}, tools=TOOLS, tool_choice="required"), 400,
                 param="tool_choice")


# ---- errors: 400 ----

@pytest.mark.parametrize("body, param, code", [
    ({"messages": [{"role": "user", "content": "x"}]}, "model", "missing_required_parameter"),
    ({"model": "scripted"}, "messages", "missing_required_parameter"),
    ({"model": "scripted", "messages": []}, "messages", "invalid_value"),
    ({"model": "scripted", "messages": "hi"}, "messages", "invalid_type"),
    ({"model": "scripted", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role", "invalid_value"),
    ({"model": "scripted", "messages": [{"role": "user"}]}, "messages[0].content", "missing_required_parameter"),
    ({"model": "scripted", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
     "messages[0].content[0].type", "invalid_value"),
    ({"model": "scripted", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}, "temperature",
     "invalid_type"),
    ({"model": "scripted", "messages": [{"role": "user", "content": "x"}], "temperature": 2.5}, "temperature",
     "invalid_value"),
    ({"model": "scripted", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1.5}, "max_tokens",
     "invalid_type"),
    ({"model": "scripted", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}, "max_tokens",
     "invalid_value"),
    ({"model": "scripted", "messages": [{"role": "user", "content": "x"}], "n": True}, "n", "invalid_type"),
    ({"model": "scripted", "messages": [{"role": "user", "content": "x"}], "n": 5}, "n", "invalid_value"),
    ({"model": "scripted", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}, "stream", "invalid_type"),
    ({"model": "scripted", "messages": [{"role": "user", "content": "x"}], "stop": ["a", "b", "c", "d", "e"]}, "stop",
     "invalid_value"),
    ({"model": "scripted", "messages": [{"role": "user", "content": "x"}], "stop": 3}, "stop", "invalid_type"),
    ({"model": "scripted", "messages": [{"role": "user", "content": "x"}], "logit_bias": {"abc": 1}}, "logit_bias",
     "invalid_value"),
    ({"model": "scripted", "messages": [{"role": "user", "content": "x"}], "logit_bias": {"5": 200}}, "logit_bias",
     "invalid_value"),
    ({"model": "scripted", "messages": [{"role": "user", "content": "x"}], "logit_bias": {"99999": 1}}, "logit_bias",
     "invalid_value"),
    ({"model": "scripted", "messages": [{"role": "user", "content": "x"}], "logprobs": True}, "logprobs",
     "unsupported_parameter"),
    ({"model": "scripted", "messages": [{"role": "user", "content": "x"}], "seed": "1"}, "seed", "invalid_type"),
    ({"model": "scripted", "messages": [{"role": "user", "content": "x"}], "tool_choice": "auto"}, "tool_choice",
     "invalid_value"),
    ({"model": "scripted", "messages": [{"role": "user", "content": "x"}], "tools": TOOLS,
      "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice", "invalid_value"),
    ({"model": "scripted", "messages": [{"role": "user", "content": "x"}],
      "tools": [{"type": "function", "function": {"name": "bad name"}}]}, "tools[0].function.name", "invalid_value"),
    ({"model": "scripted", "messages": [{"role": "assistant", "tool_calls": [
        {"type": "function", "function": {"name": "f", "arguments": "{oops"}}]}]}, "messages[0].tool_calls",
     "invalid_value"),
])
def test_bad_chat_requests(http, body, param, code):
    assert_error(http.post("/v1/chat/completions", json=body), 400, code, param)


@pytest.mark.parametrize("body, param", [
    ({"model": "scripted"}, "prompt"),
    ({"model": "scripted", "prompt": []}, "prompt"),
    ({"model": "scripted", "prompt": [1, "a"]}, "prompt"),
    ({"model": "scripted", "prompt": [[1], []]}, "prompt"),
    ({"model": "scripted", "prompt": [5, 100000]}, "prompt"),
    ({"model": "scripted", "prompt": "x", "logprobs": 2}, "logprobs"),
    ({"model": "scripted", "prompt": "x", "suffix": "y"}, "suffix"),
    ({"model": "scripted", "prompt": "x", "best_of": 3}, "best_of"),
    ({"model": "scripted", "prompt": ["a", "b", "c"], "n": 3}, "prompt"),  # 9 sequences > 4 + 4
])
def test_bad_completion_requests(http, body, param):
    assert_error(http.post("/v1/completions", json=body), 400, param=param)


def test_bad_json(http):
    for raw in (b"{", b"[1, 2]", b"\xff\xfe", b"", b"null"):
        e = assert_error(http.post("/v1/chat/completions", content=raw,
                                   headers={"Content-Type": "application/json"}), 400)
        assert e["code"] == "invalid_json"
    deep = b"[" * 100000 + b"]" * 100000
    assert_error(http.post("/v1/completions", content=deep), 400, "invalid_json")


def test_context_length_exceeded(http):
    e = assert_error(chat(http, "y" * 600), 400, "context_length_exceeded", "messages")
    assert "maximum context length is 512 tokens" in e["message"]
    e = assert_error(chat(http, "short", max_tokens=500), 400, "context_length_exceeded", "messages")
    assert "in the completion" in e["message"]
    assert_error(http.post("/v1/completions", json={"model": "scripted", "prompt": "z" * 512}), 400,
                 "context_length_exceeded", "prompt")
    # unset max_tokens: what is left of the context
    body = http.post("/v1/completions", json={"model": "scripted", "prompt": "z" * 500, "max_tokens": None}).json()
    assert body["choices"][0]["finish_reason"] == "length" and body["usage"]["total_tokens"] == 512


def test_unknown_model_and_url(http):
    assert_error(chat(http, "x", model="gpt-4o"), 404, "model_not_found", "model")
    assert_error(http.post("/v1/completions", json={"model": "gpt-4o", "prompt": "x"}), 404, "model_not_found")
    assert_error(http.get("/v1/nothing"), 404)
    assert_error(http.get("/v1/chat/completions"), 405)


def test_openai_client_error_classes(srv):
    client = openai.OpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert e.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="scripted", messages=[{"role": "user", "content": "x"}], temperature=9)
    assert e.value.param == "temperature"


# ---- limits: 413, 429, 401 ----

def test_request_too_large(http):
    big = {"model": "scripted", "messages": [{"role": "user", "content": "a" * (1 << 20)}]}
    assert_error(http.post("/v1/chat/completions", json=big), 413, "request_too_large")

    def chunked():  # no Content-Length: counted while reading
        yield b'{"model": "scripted", "prompt": "'
        for _ in range(1100):
            yield b"a" * 1024
        yield b'"}'

    assert_error(http.post("/v1/completions", content=chunked()), 413, "request_too_large")


def test_queue_full_gives_429(http, srv, model):
    model.gate.clear()  # every request holds its sequence until the gate opens
    results = {}

    def hold(i):
        results[i] = chat(http, f"held {i}")

    threads = [threading.Thread(target=hold, args=(i,)) for i in range(8)]  # 4 running + 4 queued = capacity
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while srv.state.admitted < 8:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        e = assert_error(chat(http, "one more"), 429, "queue_full")
        assert "8 sequences" in e["message"]
        client = openai.OpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.RateLimitError):
            client.completions.create(model="scripted", prompt="x")
        # a request that could never fit is a 400, not a 429
        assert_error(chat(http, "x", n=5), 400, param="n")
    finally:
        model.gate.set()
        for t in threads:
            t.join(30)
    assert [results[i].json()["choices"][0]["message"]["content"] for i in range(8)] == [f"HELD {i}" for i in range(8)]


def test_api_key():
    m = ScriptedModel(script)
    with ThreadServer(m, n_seq=1, api_key="s3cret") as s, s.client() as c:
        body = {"model": "scripted", "messages": [{"role": "user", "content": "x"}]}
        e = assert_error(c.post("/v1/chat/completions", json=body), 401, "invalid_api_key")
        assert "Authorization: Bearer" in e["message"]
        assert_error(c.post("/v1/chat/completions", json=body, headers={"Authorization": "Bearer wrong"}), 401,
                     "invalid_api_key")
        assert_error(c.get("/v1/models", headers={"Authorization": "Basic s3cret"}), 401)
        assert c.post("/v1/chat/completions", json=body, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/health").status_code == 200  # health checks need no key
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=s.url + "/v1", api_key="nope", max_retries=0).models.list()
        assert openai.OpenAI(base_url=s.url + "/v1", api_key="s3cret", max_retries=0).models.list().data[0].id == "scripted"


# ---- disconnects ----

def test_disconnect_while_queued_frees_the_request(http, srv, model):
    model.gate.clear()
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            with c.stream("POST", "/v1/chat/completions", json={
                    "model": "scripted", "stream": True, "messages": [{"role": "user", "content": "wait"}]}) as r:
                assert r.status_code == 200
                deadline = time.monotonic() + 10
                while srv.engine.n_active + srv.engine.n_queued == 0:
                    assert time.monotonic() < deadline
                    time.sleep(0.01)
        # the client is gone before any token: its request is cancelled and its place released
        deadline = time.monotonic() + 10
        while srv.state.admitted:
            assert time.monotonic() < deadline, srv.state.health()
            time.sleep(0.01)
    finally:
        model.gate.set()
    wait_idle(srv)
    assert chat(http, "after").json()["choices"][0]["message"]["content"] == "AFTER"


def test_disconnect_mid_stream_frees_the_sequence(http, srv, model):
    model.step_delay = 0.01  # 400 tokens: 4 s unless cancelled
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        with c.stream("POST", "/v1/chat/completions", json={
                "model": "scripted", "stream": True, "messages": [{"role": "user", "content": "long"}]}) as r:
            lines = r.iter_lines()
            got = 0
            for line in lines:
                if line.startswith("data: ") and '"x' in line:
                    got += 1
                    if got == 3:
                        break
            assert srv.engine.n_active == 1
    t0 = time.monotonic()
    wait_idle(srv, timeout=3)
    assert time.monotonic() - t0 < 3
    generated = len(model.contexts[-1].seqs[0])  # not all 400 tokens were decoded
    assert generated < 300
    model.step_delay = 0.0
    assert chat(http, "next").json()["choices"][0]["message"]["content"] == "NEXT"


def test_non_streaming_client_disconnect_cancels(http, srv, model):
    model.step_delay = 0.01
    sock = socket.create_connection(("127.0.0.1", int(srv.url.rsplit(":", 1)[1])))
    body = json.dumps({"model": "scripted", "messages": [{"role": "user", "content": "long"}]}).encode()
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    deadline = time.monotonic() + 10
    while srv.engine.n_active == 0:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    sock.close()
    wait_idle(srv, timeout=3)


# ---- shutdown ----

def test_drain_finishes_running_streams_and_refuses_new_requests():
    m = ScriptedModel(script)
    m.step_delay = 0.005
    s = ThreadServer(m, n_seq=2, shutdown_timeout=20)
    try:
        with s.client() as c, c.stream("POST", "/v1/chat/completions", json={
                "model": "scripted", "stream": True, "messages": [{"role": "user", "content": "long"}]}) as r:
            it = r.iter_lines()
            assert next(l for l in it if l.startswith("data: "))
            s.server.handle_exit(15, None)  # SIGTERM
            with s.client() as c2:
                assert_error(c2.get("/health"), 503, "shutting_down")
                assert_error(c2.post("/v1/chat/completions", json={
                    "model": "scripted", "messages": [{"role": "user", "content": "x"}]}), 503, "shutting_down")
            rest = [l for l in it if l.startswith("data: ")]
        # the running stream was not cut: all 400 x's and a normal end
        assert rest[-1] == "data: [DONE]"
        events = [json.loads(l[6:])["choices"][0] for l in rest[:-1]]
        assert "".join(e["delta"].get("content", "") for e in events) == "x" * 400
        assert events[-1]["finish_reason"] == "stop"
        s.thread.join(10)
        assert not s.thread.is_alive()
        assert m.contexts[-1].closed
    finally:
        s.stop()


def test_drain_cancels_what_outlives_the_timeout():
    m = ScriptedModel(script)
    m.step_delay = 0.02  # 400 tokens = 8 s > the 0.5 s timeout
    s = ThreadServer(m, n_seq=2, shutdown_timeout=0.5)
    try:
        client = openai.OpenAI(base_url=s.url + "/v1", api_key="x", max_retries=0)
        stream = client.chat.completions.create(model="scripted", messages=[{"role": "user", "content": "long"}],
                                                stream=True)
        first = next(iter(stream))
        assert first.choices[0].delta.role == "assistant"
        t0 = time.monotonic()
        s.server.handle_exit(15, None)
        with pytest.raises(openai.APIError, match="shutting down"):
            for _ in stream:
                pass
        s.thread.join(10)
        assert not s.thread.is_alive() and time.monotonic() - t0 < 6
    finally:
        s.stop()
