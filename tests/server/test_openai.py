"""The official `openai` client against the server over loopback, end to end on the real engine
(`python -m liquidlfm serve` on a random-weight model with the LFM2 tokenizer and chat template).

Set LIQUIDLFM_TEST_OPENAI_BASE_URL to run the client tests against any OpenAI-compatible server;
tests that configure or inspect the server (memory, limits, signals) then skip. Random weights say
nothing about quality: what is checked is shape, determinism and agreement between paths (streamed
= whole, concurrent = alone, n choices = single requests).
"""
import asyncio
import json
import signal
import threading
import time

import httpx
import openai
import pytest

from tests.server.conftest import ProcessServer

GREEDY = dict(temperature=0)
NO_END = {"7": -100, "2": -100}  # <|im_end|>, <|endoftext|>: random weights could end a reply early


def user(text):
    return [{"role": "user", "content": text}]


def chat_text(client, model, text, **kw):
    r = client.chat.completions.create(model=model, messages=user(text), **kw)
    return r.choices[0].message.content, r.choices[0].finish_reason, r.usage


def test_models(openai_server):
    models = openai_server.client().models.list()
    assert openai_server.model in [m.id for m in models.data]
    assert all(m.object == "model" for m in models.data)


def test_chat(openai_server):
    client, model = openai_server.client(), openai_server.model
    r = client.chat.completions.create(model=model, messages=[{"role": "system", "content": "Be brief."}] + user("Hi"),
                                       max_tokens=8, **GREEDY)
    assert r.object == "chat.completion" and r.model == model and len(r.choices) == 1
    c = r.choices[0]
    assert c.message.role == "assistant" and isinstance(c.message.content, str) and c.finish_reason in ("stop", "length")
    assert 0 < r.usage.prompt_tokens and r.usage.completion_tokens <= 8
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    # greedy is deterministic
    again = client.chat.completions.create(model=model, messages=[{"role": "system", "content": "Be brief."}] + user("Hi"),
                                           max_tokens=8, **GREEDY)
    assert again.choices[0].message.content == c.message.content


def test_stream_equals_whole(openai_server):
    client, model = openai_server.client(), openai_server.model
    whole, finish, usage = chat_text(client, model, "Tell me a story.", max_tokens=24, **GREEDY)
    stream = client.chat.completions.create(model=model, messages=user("Tell me a story."), max_tokens=24, stream=True,
                                            stream_options={"include_usage": True}, **GREEDY)
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [finish]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == usage.completion_tokens


def test_completions(openai_server):
    client, model = openai_server.client(), openai_server.model
    one = client.completions.create(model=model, prompt="Once upon a time", max_tokens=10, **GREEDY)
    assert one.object == "text_completion" and one.choices[0].finish_reason in ("stop", "length")
    two = client.completions.create(model=model, prompt=["Once upon a time", "The weather"], max_tokens=10, **GREEDY)
    assert [c.index for c in two.choices] == [0, 1] and two.choices[0].text == one.choices[0].text
    alone = client.completions.create(model=model, prompt="The weather", max_tokens=10, **GREEDY)
    assert two.choices[1].text == alone.choices[0].text
    streamed = client.completions.create(model=model, prompt="Once upon a time", max_tokens=10, stream=True, **GREEDY)
    assert "".join(c.choices[0].text for c in streamed) == one.choices[0].text


def test_n_choices(openai_server):
    client, model = openai_server.client(), openai_server.model
    single, _, _ = chat_text(client, model, "Name a color.", max_tokens=8, **GREEDY)
    r = client.chat.completions.create(model=model, messages=user("Name a color."), max_tokens=8, n=2, **GREEDY)
    assert [c.index for c in r.choices] == [0, 1]
    assert [c.message.content for c in r.choices] == [single, single]


def test_n_choices_seeds(ours):
    # liquidlfm samples choice i with seed + i: each choice is the single request with that seed
    client, model = ours.client(), ours.model
    kw = dict(max_tokens=10, temperature=1.0, logit_bias=NO_END)
    r = client.chat.completions.create(model=model, messages=user("Pick words."), n=2, seed=100, **kw)
    for i, c in enumerate(r.choices):
        assert c.message.content == chat_text(client, model, "Pick words.", seed=100 + i, **kw)[0]


def test_seed_reproducibility(openai_server):
    client, model = openai_server.client(), openai_server.model
    kw = dict(max_tokens=16, temperature=1.0, top_p=1.0, logit_bias=NO_END)
    a = chat_text(client, model, "Say something random.", seed=1234, **kw)[0]
    b = chat_text(client, model, "Say something random.", seed=1234, **kw)[0]
    c = chat_text(client, model, "Say something random.", seed=4321, **kw)[0]
    assert a == b
    assert a != c  # 16 tokens sampled at T=1 from a 1024-token vocabulary: a collision is not credible


def test_stop(openai_server):
    client, model = openai_server.client(), openai_server.model
    full, _, _ = chat_text(client, model, "Count.", max_tokens=24, logit_bias=NO_END, **GREEDY)
    assert len(full) >= 8
    stop = full[4:7]
    cut = full[:full.index(stop)]
    text, finish, _ = chat_text(client, model, "Count.", max_tokens=24, logit_bias=NO_END, stop=[stop, "\x00never"],
                                **GREEDY)
    assert (text, finish) == (cut, "stop")


def test_logit_bias_forces_a_token(ours, served_model_dir):
    from liquidlfm import Tokenizer

    (token,) = Tokenizer.from_dir(served_model_dir).encode("a", add_special_tokens=False)
    # +100 makes it the only choice
    client, model = ours.client(), ours.model
    forced = client.completions.create(model=model, prompt="x", max_tokens=3, logit_bias={str(token): 100}, **GREEDY)
    assert forced.choices[0].text == "aaa"


SCHEMAS = [
    {"type": "object", "properties": {"name": {"type": "string", "maxLength": 12}, "age": {"type": "integer",
     "minimum": 0, "maximum": 130}}, "required": ["name", "age"], "additionalProperties": False},
    {"type": "object", "properties": {"tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "minItems": 1,
     "maxItems": 3}, "ok": {"type": "boolean"}}, "required": ["tags", "ok"], "additionalProperties": False},
    {"type": "object", "properties": {"choice": {"anyOf": [{"type": "null"}, {"const": 7}, {"type": "string",
     "pattern": "^[a-z]{1,5}$"}]}}, "required": ["choice"], "additionalProperties": False},
]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_json_schema_output_validates(openai_server, schema):
    import jsonschema

    client, model = openai_server.client(), openai_server.model
    r = client.chat.completions.create(model=model, messages=user("Give me the data as JSON."), max_tokens=80,
                                       temperature=1.0, seed=3, n=2, response_format={
                                           "type": "json_schema", "json_schema": {"name": "data", "schema": schema,
                                                                                  "strict": True}})
    for c in r.choices:
        assert c.finish_reason == "stop", c.message.content
        jsonschema.validate(json.loads(c.message.content), schema)


def test_json_object_output_parses(openai_server):
    client, model = openai_server.client(), openai_server.model
    r = client.chat.completions.create(model=model, messages=user("JSON please."), max_tokens=60,
                                       response_format={"type": "json_object"}, **GREEDY)
    # a random model may not close an object within max_tokens; whatever ends by itself parses
    if r.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(r.choices[0].message.content), dict)


WEATHER_TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
                                      "parameters": {"type": "object", "properties": {
                                          "city": {"type": "string", "enum": ["Paris", "Oslo", "Seoul"]},
                                          "unit": {"type": "string", "enum": ["C", "F"]}},
                                          "required": ["city"]}}},
    {"type": "function", "function": {"name": "get_time", "description": "The time now",
                                      "parameters": {"type": "object", "properties": {}}}},
]


def test_forced_tool_call(openai_server):
    """tool_choice "required" (a random model would never call a tool by itself): the reply is
    a valid call to one of the tools, in OpenAI's shape; the call streams as a tool_calls delta."""
    import jsonschema

    client, model = openai_server.client(), openai_server.model
    for seed in range(3):
        r = client.chat.completions.create(model=model, messages=user("What's the weather in Oslo?"),
                                           tools=WEATHER_TOOLS, tool_choice="required", parallel_tool_calls=False,
                                           max_tokens=40, temperature=1.0, seed=seed)
        c = r.choices[0]
        assert c.finish_reason == "tool_calls", c.message
        (call,) = c.message.tool_calls
        assert call.type == "function" and call.id.startswith("call_")
        params = {t["function"]["name"]: t["function"]["parameters"] for t in WEATHER_TOOLS}
        jsonschema.validate(json.loads(call.function.arguments), params[call.function.name])
    named = client.chat.completions.create(
        model=model, messages=user("Weather?"), tools=WEATHER_TOOLS, max_tokens=40, parallel_tool_calls=False, **GREEDY,
        tool_choice={"type": "function", "function": {"name": "get_weather"}}, stream=True)
    chunks = list(named)
    calls = [tc for ch in chunks if ch.choices for tc in (ch.choices[0].delta.tool_calls or [])]
    assert len(calls) == 1 and calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments)["city"] in ("Paris", "Oslo", "Seoul")
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "tool_calls"


def test_tool_conversation_round_trip(openai_server):
    """A full tool turn with the client's own types: call, tool result, next reply."""
    client, model = openai_server.client(), openai_server.model
    messages = user("Weather in Paris?")
    first = client.chat.completions.create(model=model, messages=messages, tools=WEATHER_TOOLS, tool_choice="required",
                                           parallel_tool_calls=False, max_tokens=40, **GREEDY)
    call = first.choices[0].message.tool_calls[0]
    messages += [first.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temp": 21})}]
    second = client.chat.completions.create(model=model, messages=messages, tools=WEATHER_TOOLS, max_tokens=8,
                                            tool_choice="none", **GREEDY)
    assert second.choices[0].finish_reason in ("stop", "length") and not second.choices[0].message.tool_calls


def test_errors(openai_server):
    client, model = openai_server.client(), openai_server.model
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=user("x"))
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=model, messages=user("x"), temperature=-1)
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=model, messages=user("word " * 5000))
    assert e.value.code == "context_length_exceeded"


# ---- liquidlfm's own server: load, memory, disconnects, limits, signals ----

RSS_BOUND_MIB = 32
PROMPTS = ["What is the capital of France?", "Write a haiku.", "2 + 2 =", "Translate 'hello' to Korean.",
           "List three fruits.", "Who wrote Hamlet?", "Describe the sea.", "Say hi."]


def test_load_32_streaming_clients(ours):
    """32 concurrent streaming clients x 3 requests, greedy: every answer complete and equal to the
    same request run alone; the server's peak RSS stays within RSS_BOUND_MIB of its size after warm-up."""
    client, model = ours.client(), ours.model
    # 48 tokens: each request must outlast the time the clients take to send the others, or a fast
    # machine finishes requests as they arrive and never has many to decode together
    kw = dict(max_tokens=48, **GREEDY)
    alone = {p: chat_text(client, model, p, **kw) for p in PROMPTS}  # also the warm-up
    proc = ours.process
    rss_warm = proc.rss_kib()

    async def one_client(aclient, k):
        out = []
        for j in range(3):
            p = PROMPTS[(k + j) % len(PROMPTS)]
            stream = await aclient.chat.completions.create(model=model, messages=user(p), stream=True,
                                                           stream_options={"include_usage": True}, **kw)
            parts, finish, usage = [], None, None
            async for c in stream:
                if c.choices:
                    parts.append(c.choices[0].delta.content or "")
                    finish = c.choices[0].finish_reason or finish
                if c.usage is not None:
                    usage = c.usage
            out.append((p, "".join(parts), finish, usage))
        return out

    async def run_all():
        aclient = ours.async_client()
        try:
            return await asyncio.gather(*(one_client(aclient, k) for k in range(32)))
        finally:
            await aclient.close()

    peak = [0]
    stop = threading.Event()
    steps_before = proc.health()["steps"]

    def sample_rss():
        while not stop.is_set():
            peak[0] = max(peak[0], proc.rss_kib())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()
    t0 = time.monotonic()
    results = asyncio.run(run_all())
    elapsed = time.monotonic() - t0
    stop.set()
    sampler.join()
    answers = [a for client_answers in results for a in client_answers]
    assert len(answers) == 96
    for p, text, finish, usage in answers:
        ref_text, ref_finish, ref_usage = alone[p]
        assert (text, finish) == (ref_text, ref_finish), p
        assert usage.completion_tokens == ref_usage.completion_tokens and usage.prompt_tokens == ref_usage.prompt_tokens
    assert len({text for _, text, _, _ in answers}) == len(PROMPTS)  # eight different answers
    h = proc.health()
    assert h["active"] == 0 and h["queued"] == 0 and h["requests"] == 0
    # decoded together: one sequence at a time would take a step per generated token
    generated = sum(usage.completion_tokens for _, _, _, usage in answers)
    steps = h["steps"] - steps_before
    print(f"\n[load] {generated} tokens in {steps} engine steps ({generated / steps:.1f} sequences a step)")
    assert steps < generated / 3, (steps, generated)
    grown_mib = (max(peak[0], proc.rss_kib("VmHWM")) - rss_warm) / 1024
    print(f"load test: 96 streams in {elapsed:.1f} s, {generated} tokens in {steps} steps; RSS after "
          f"warm-up {rss_warm / 1024:.0f} MiB, peak +{grown_mib:.1f} MiB")
    assert grown_mib < RSS_BOUND_MIB


def test_disconnect_mid_stream_frees_the_sequence(ours):
    proc = ours.process
    with httpx.Client(timeout=30) as c:
        with c.stream("POST", ours.url + "/v1/chat/completions", json={
                "model": ours.model, "stream": True, "max_tokens": 400, "logit_bias": NO_END,
                "messages": user("Go on forever.")}) as r:
            lines = r.iter_lines()
            n = sum(1 for _, line in zip(range(4), (l for l in lines if l.startswith("data: "))))
            assert n == 4
    deadline = time.monotonic() + 5
    while True:
        h = proc.health()
        if h["active"] == 0 and h["requests"] == 0:
            break
        assert time.monotonic() < deadline, h
        time.sleep(0.02)
    assert chat_text(ours.client(), ours.model, "Still there?", max_tokens=4)[1] in ("stop", "length")


@pytest.fixture
def limited(ours, served_model_dir, tmp_path):
    p = ProcessServer(served_model_dir, "--api-key", "k3y", "--n-seq", 2, "--max-queue", 0, "--n-ctx", 512,
                      "--max-request-bytes", 4096, "-t", 1, "--model-name", "tiny", log_path=tmp_path / "limited.log")
    yield p
    assert p.stop() == 0, p.output()


def test_limits_on_the_real_engine(limited):
    url = limited.url
    body = {"model": "tiny", "messages": user("hi"), "max_tokens": 4}
    auth = {"Authorization": "Bearer k3y"}
    with httpx.Client(base_url=url, timeout=30) as c:
        assert c.post("/v1/chat/completions", json=body).status_code == 401
        assert c.post("/v1/chat/completions", json=body, headers={"Authorization": "Bearer nope"}).status_code == 401
        assert c.post("/v1/chat/completions", json=body, headers=auth).status_code == 200
        r = c.post("/v1/chat/completions", json={**body, "messages": user("x" * 5000)}, headers=auth)
        assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
        r = c.post("/v1/chat/completions", json={**body, "max_tokens": 600}, headers=auth)
        assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"
    # 6 long requests at once on 2 sequences and no queue: some are turned away with 429, the
    # others complete
    client = openai.OpenAI(base_url=url + "/v1", api_key="k3y", max_retries=0)
    outcomes = []

    def long_request():
        try:
            r = client.completions.create(model="tiny", prompt="a", max_tokens=400, logit_bias=NO_END, **GREEDY)
            outcomes.append(r.choices[0].finish_reason)
        except openai.RateLimitError as e:
            outcomes.append(e.status_code)

    threads = [threading.Thread(target=long_request) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(outcomes) == 6 and 429 in outcomes and outcomes.count("length") >= 2, outcomes


def test_sigterm_drains(ours, served_model_dir, tmp_path):
    """SIGTERM: new requests get 503 at once; a stream that outlives --shutdown-timeout is cancelled
    with an error event, and the process exits 0 (the scripted tests also cover a stream that
    finishes within the timeout)."""
    # 60,000 tokens: the tiny model makes ~8,000 a second on a quiet core, so the stream cannot end
    # on its own within the 1 s drain (4,000 sometimes did)
    p = ProcessServer(served_model_dir, "--n-seq", 2, "--n-ctx", 65536, "-t", 1, "--model-name", "tiny",
                      "--shutdown-timeout", 1, log_path=tmp_path / "drain.log")
    try:
        with httpx.Client(timeout=30) as c:
            with c.stream("POST", p.url + "/v1/completions", json={
                    "model": "tiny", "prompt": "a", "max_tokens": 60000, "logit_bias": NO_END, "stream": True,
                    **GREEDY}) as r:
                lines = (l for l in r.iter_lines() if l.startswith("data: "))
                next(lines)
                t0 = time.monotonic()
                p.proc.send_signal(signal.SIGTERM)
                refused = httpx.get(p.url + "/health", timeout=10)
                rest = list(lines)
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "shutting_down"
        assert rest[-1] == "data: [DONE]"
        assert json.loads(rest[-2][6:])["error"]["code"] == "shutting_down"
        assert len(rest) > 10  # it ran on for the timeout
        assert p.proc.wait(30) == 0
        assert time.monotonic() - t0 < 8
    finally:
        p.stop()
