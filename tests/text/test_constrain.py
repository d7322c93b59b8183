"""Structured output (liquidlfm/generation/constrain.py): llguidance masks through the C sampler.

The models write noise — RandomLM (seeded Gaussian logits, tests/fixtures/random_lm.py) on the Python
sampling path, and the engine's tiny random-weight LFM2 on the native C path — with the LFM2 test
tokenizer. The mask alone must give output that parses and validates: a property test over many
generated JSON schemas, plus regex, Lark and any-JSON, and the errors a bad request gets.
"""
import json
import math
import re
import sys
import threading

import jsonschema
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

import liquidlfm as lfm
from liquidlfm.generation import Constraint
from liquidlfm.generation.constrain import mask_words
from tests.fixtures.random_lm import RandomLM, make_random_lm

IM_END, ENDOFTEXT = 7, 2


@pytest.fixture(scope="module")
def rlm(tmp_path_factory):
    return make_random_lm(tmp_path_factory.mktemp("random_lm"))


@pytest.fixture(scope="module")
def tok(rlm):
    return rlm.tokenizer


def allowed_ids(bits, n_vocab):
    return np.flatnonzero(np.unpackbits(bits.view(np.uint8), bitorder="little")[:n_vocab]).tolist()


def walk(c, rng, max_steps=400):
    """Drive c by hand with uniformly random allowed tokens: (token ids, ended by a stop token)."""
    bits = c.new_mask()
    out = []
    for _ in range(max_steps):
        allowed = allowed_ids(c.fill_mask(bits), c.n_vocab)
        assert allowed, "the mask allowed nothing"
        t = int(rng.choice(allowed))
        c.accept(t)
        if t in c.stop_ids:
            return out, True
        out.append(t)
    return out, False


# ---- the Constraint on its own ----

def test_mask_only_allows_the_grammar_then_only_stop_tokens(tok):
    c = Constraint.regex(tok, r"(yes|no)")
    assert c.stop_ids == (ENDOFTEXT, IM_END) and c.eos_id == IM_END and c.n_vocab == tok.vocab_size
    bits = c.fill_mask(c.new_mask())
    first = allowed_ids(bits, c.n_vocab)
    assert first and all("yes".startswith(s) or "no".startswith(s) for s in (tok.decode([t]) for t in first))
    assert IM_END not in first and not c.is_finished
    for t in tok.encode("yes", add_special_tokens=False):
        c.accept(t)
    assert c.is_finished and c.is_accepting
    assert allowed_ids(c.fill_mask(bits), c.n_vocab) == [ENDOFTEXT, IM_END]
    c.accept(ENDOFTEXT)  # any stop token ends it
    assert c.is_finished


def test_accept_refuses_a_disallowed_token_and_keeps_its_state(tok):
    c = Constraint.json_schema(tok, {"type": "object", "properties": {"a": {"type": "integer"}},
                                     "required": ["a"], "additionalProperties": False})
    for t in tok.encode('{"a": 1', add_special_tokens=False):
        c.accept(t)
    x = tok.encode("x", add_special_tokens=False)[0]
    assert not c.allows(x) and not c.allows(IM_END)
    with pytest.raises(ValueError, match="not allowed here by the JSON schema"):
        c.accept(x)
    with pytest.raises(ValueError, match="<\\|im_end\\|>"):
        c.accept(IM_END)  # the object is not closed yet
    c.accept(tok.encode("}", add_special_tokens=False)[0])
    assert c.is_finished
    with pytest.raises(ValueError, match="already complete"):
        c.accept(x)


def test_reset_and_copy(tok):
    c = Constraint.regex(tok, r"ab|cd")
    c.accept(tok.encode("a", add_special_tokens=False)[0])
    d = c.copy()
    d.accept(tok.encode("b", add_special_tokens=False)[0])
    assert d.is_finished and not c.is_finished
    c.reset()
    assert c.allows(tok.encode("c", add_special_tokens=False)[0])
    assert not d.allows(tok.encode("c", add_special_tokens=False)[0])


def test_random_walks_of_the_mask_stay_in_the_language(tok):
    """Any token the mask allows keeps the text a prefix of the language, and ending is only possible
    on a complete sentence."""
    rng = np.random.default_rng(0)
    pattern = r"[a-z]{1,4}(-[0-9]{2})?@(x|yz)\.com"
    for _ in range(30):
        ids, stopped = walk(Constraint.regex(tok, pattern), rng)
        assert stopped and re.fullmatch(pattern, tok.decode(ids)), tok.decode(ids)
    lark = 'start: item ("," item)*\nitem: "on" | "off" | /[0-9]{1,3}/'
    for _ in range(10):
        ids, stopped = walk(Constraint.grammar(tok, lark), rng)
        if stopped:
            assert re.fullmatch(r"(on|off|[0-9]{1,3})(,(on|off|[0-9]{1,3}))*", tok.decode(ids)), tok.decode(ids)


def test_masks_longer_than_the_vocabulary_and_custom_stops(tok):
    c = Constraint.regex(tok, "a", n_vocab=tok.vocab_size + 40, stop_ids=[5])
    assert c.n_words == mask_words(tok.vocab_size + 40) and c.stop_ids == (5,) and c.eos_id == 5
    bits = np.full(c.n_words + 3, 0xFFFFFFFF, np.uint32)
    c.fill_mask(bits)
    assert (bits[mask_words(tok.vocab_size):] == 0).all()  # padding rows and extra words: never
    c.accept(tok.encode("a", add_special_tokens=False)[0])
    assert allowed_ids(c.fill_mask(bits), c.n_vocab) == [5]
    with pytest.raises(ValueError, match="needs"):
        c.fill_mask(np.zeros(c.n_words - 1, np.uint32))
    with pytest.raises(TypeError, match="uint32"):
        c.fill_mask(np.zeros(c.n_words, np.int64))
    read_only = c.new_mask()
    read_only.setflags(write=False)
    with pytest.raises(ValueError, match="writeable"):
        c.fill_mask(read_only)
    with pytest.raises(ValueError, match="contiguous"):
        c.fill_mask(np.zeros(2 * c.n_words, np.uint32)[::2])
    with pytest.raises(ValueError, match="smaller than the tokenizer"):
        Constraint.regex(tok, "a", n_vocab=10)
    with pytest.raises(ValueError, match="stop token id"):
        Constraint.regex(tok, "a", stop_ids=[10 ** 6])


def test_the_llguidance_tokenizer_is_built_once_per_tokenizer(tok):
    a = Constraint.regex(tok, "a")
    b = Constraint.json(tok)
    assert a._ll_tokenizer is b._ll_tokenizer
    assert Constraint.regex(tok, "a", n_vocab=tok.vocab_size + 1)._ll_tokenizer is not a._ll_tokenizer


def test_a_protocol_tokenizer_without_token_bytes_works():
    """Any GenerationTokenizer will do (the byte-level test double of fake_lm.py)."""
    from tests.fixtures.fake_lm import FakeTokenizer

    t = FakeTokenizer()
    c = Constraint.regex(t, r"[0-9]{2,3}")
    ids, stopped = walk(c, np.random.default_rng(1))
    assert stopped and re.fullmatch(r"[0-9]{2,3}", t.decode(ids))


def test_bad_grammars_raise_value_error_naming_the_problem(tok):
    cases = [
        (lambda: Constraint.json_schema(tok, {"type": "foo"}), "Invalid type: foo"),
        (lambda: Constraint.json_schema(tok, "{not json"), "not valid JSON"),
        (lambda: Constraint.json_schema(tok, [1, 2]), "must be an object"),
        (lambda: Constraint.json_schema(tok, {"type": "string", "pattern": "(?<=a)b"}), "look-around"),
        (lambda: Constraint.json_schema(tok, {"type": "integer", "minimum": 5, "maximum": 1}), "nsatisfiable"),
        (lambda: Constraint.json_schema(tok, {"$ref": "#/$defs/missing"}), "missing"),
        (lambda: Constraint.regex(tok, "a(b"), "unclosed group"),
        (lambda: Constraint.grammar(tok, "start: nothing_here"), "unknown name"),
    ]
    for make, msg in cases:
        with pytest.raises(ValueError, match=msg):
            make()
    with pytest.raises(TypeError):
        Constraint.regex(tok, 5)


def test_missing_llguidance_says_what_to_install(tok, monkeypatch):
    monkeypatch.setitem(sys.modules, "llguidance", None)
    with pytest.raises(ImportError, match=re.escape('pip install "liquidlfm[structured]"')):
        Constraint.json(tok)


# ---- response_format through generate / stream / chat ----

def schema_format(schema):
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}


PERSON = {"type": "object", "properties": {
    "name": {"type": "string", "maxLength": 12},
    "age": {"type": "integer", "minimum": 0, "maximum": 130},
    "tags": {"type": "array", "items": {"enum": ["a", "b c", "\"q\""]}, "maxItems": 3},
    "ok": {"type": "boolean"}}, "required": ["name", "age", "ok"], "additionalProperties": False}


def test_generate_and_chat_follow_a_json_schema(rlm):
    for seed in range(6):
        r = rlm.generate("Describe a person as JSON:", max_tokens=300, temperature=1.0, seed=seed,
                         response_format=schema_format(PERSON))
        assert r.finish_reason == "stop", str(r)
        jsonschema.validate(json.loads(r), PERSON)
        assert IM_END not in r.token_ids  # the stop token ends it, it is not returned
    reply = rlm.chat([{"role": "user", "content": "A person, please."}], max_tokens=300, temperature=0.9,
                     seed=3, response_format=schema_format(PERSON))
    jsonschema.validate(json.loads(reply), PERSON)
    chunks = list(rlm.stream("x", max_tokens=300, temperature=1.0, seed=4, response_format=schema_format(PERSON)))
    text = "".join(ch.text for ch in chunks)
    assert chunks[-1].finish_reason == "stop"
    jsonschema.validate(json.loads(text), PERSON)


def test_greedy_constrained_generation_is_deterministic(rlm):
    a = rlm.generate("x", max_tokens=200, temperature=0, response_format=schema_format(PERSON))
    b = rlm.generate("x", max_tokens=200, temperature=0, response_format=schema_format(PERSON))
    assert str(a) == str(b) and a.finish_reason == "stop"
    jsonschema.validate(json.loads(a), PERSON)


def test_every_sampling_setting_keeps_the_output_valid(rlm):
    for kw in (dict(temperature=0.3, min_p=0.15, repetition_penalty=1.05), dict(temperature=2.0, top_k=50),
               dict(temperature=1.5, top_p=0.5), dict(temperature=1.0, presence_penalty=2.0, frequency_penalty=-3.0),
               dict(temperature=1.0, logit_bias={i: 50.0 for i in range(30, 200)})):
        r = rlm.generate("x", max_tokens=300, seed=1, response_format=schema_format(PERSON), **kw)
        assert r.finish_reason == "stop", kw
        jsonschema.validate(json.loads(r), PERSON)


def test_json_object_regex_and_grammar_formats(rlm):
    finished = 0
    for seed in range(8):
        r = rlm.generate("x", max_tokens=400, temperature=1.0, seed=seed, response_format={"type": "json_object"})
        if r.finish_reason == "stop":
            finished += 1
            assert isinstance(json.loads(r), dict)
        else:  # random text may write one long string: cut by max_tokens, still a JSON prefix
            assert r.finish_reason == "length" and str(r).startswith("{")
    assert finished >= 4, f"only {finished} of 8 any-JSON generations ended by themselves"
    pattern = r"[0-9]{3}-[0-9]{4} [A-Z][a-z]{0,8}"
    for seed in range(5):
        r = rlm.generate("x", max_tokens=60, temperature=1.0, seed=seed, response_format={"type": "regex",
                                                                                           "pattern": pattern})
        assert r.finish_reason == "stop" and re.fullmatch(pattern, r), str(r)
    lark = 'start: "(" pair ("; " pair){0,2} ")"\npair: KEY "=" VAL\nKEY: /[a-z]{1,5}/\nVAL: /[0-9]{1,4}/'
    for seed in range(5):
        r = rlm.generate("x", max_tokens=100, temperature=1.0, seed=seed,
                         response_format={"type": "grammar", "grammar": lark})
        assert r.finish_reason == "stop" and re.fullmatch(r"\([a-z]{1,5}=[0-9]{1,4}(; [a-z]{1,5}=[0-9]{1,4}){0,2}\)", r)


def test_a_constraint_object_is_restarted_for_each_generation(rlm, tok):
    c = Constraint.regex(tok, r"[a-c]{2}", stop_ids=rlm.stop_token_ids)
    for seed in range(3):
        r = rlm.generate("x", max_tokens=20, temperature=1.0, seed=seed, constraint=c)
        assert re.fullmatch(r"[a-c]{2}", r) and r.finish_reason == "stop" and c.is_finished


def test_one_constraint_cannot_drive_two_generations_at_once(rlm, tok):
    c = Constraint.regex(tok, r"[a-z]{5}")
    s1, s2 = rlm.session(), rlm.session()
    it = rlm.stream("x", max_tokens=10, temperature=1.0, seed=0, constraint=c, session=s1)
    first = next(it).text
    with pytest.raises(RuntimeError, match="in use by another generation"):
        rlm.generate("x", max_tokens=10, constraint=c, session=s2)
    assert re.fullmatch(r"[a-z]{5}", first + "".join(ch.text for ch in it))  # the first one went on unharmed
    assert re.fullmatch(r"[a-z]{5}", rlm.generate("x", max_tokens=10, constraint=c, session=s2, seed=1))


def test_max_tokens_cuts_a_constrained_output(rlm):
    r = rlm.generate("x", max_tokens=3, temperature=1.0, seed=0, response_format=schema_format(PERSON))
    assert r.finish_reason == "length" and len(r.token_ids) == 3 and str(r).startswith('{"')


def test_bad_requests_raise_at_the_call(rlm):
    bad = [
        (dict(response_format=schema_format({"type": "foo"})), ValueError, "Invalid type"),
        (dict(response_format={"type": "json_schema", "json_schema": {"name": "x"}}), ValueError, "no 'schema'"),
        (dict(response_format={"type": "json_schema"}), ValueError, "needs 'json_schema'"),
        (dict(response_format={"type": "regex", "pattern": "(("}), ValueError, "invalid regex"),
        (dict(response_format={"type": "regex"}), ValueError, "needs 'pattern'"),
        (dict(response_format={"type": "grammar", "grammar": "start: x"}), ValueError, "unknown name"),
        (dict(response_format={"type": "xml"}), ValueError, "not supported"),
        (dict(response_format={}), ValueError, "needs a 'type'"),
        (dict(response_format="json"), TypeError, "must be a dict"),
        (dict(constraint="[a-z]+"), TypeError, "Constraint"),
        (dict(response_format={"type": "json_object"}, constraint=Constraint.regex(rlm.tokenizer, "a")),
         ValueError, "not both"),
    ]
    for kw, exc, msg in bad:
        with pytest.raises(exc, match=msg):
            rlm.stream("x", **kw)  # raised by the call, before the first next()
        with pytest.raises(exc, match=msg):
            rlm.chat([{"role": "user", "content": "x"}], stream=True, **kw)
    # {"type": "text"} is plain generation
    assert rlm.generate("x", max_tokens=5, seed=0, response_format={"type": "text"}).finish_reason in ("length",
                                                                                                       "stop")


def test_a_model_without_tokenizer_refuses_response_format(rlm):
    bare = RandomLM(rlm.tokenizer)
    bare.tokenizer = None
    with pytest.raises(ValueError, match="tokenizer"):
        bare.generate([1, 2, 3], response_format={"type": "json_object"})


# ---- the property: any schema, random model, output validates ----

PROP_NAMES = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8)
SHORT_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=6)
PATTERNS = [r"^[a-z]{1,6}$", r"^[0-9]{3}-[0-9]{2}$", r"^(red|green|blue)$", r"^[A-Z][a-z]{0,5}( [A-Z][a-z]{0,5})?$",
            r"^[0-9]{1,2}:[0-9]{2}$", r"^[^\"\\]{0,5}$"]


@st.composite
def int_schema(draw):
    lo = draw(st.integers(-10 ** 6, 10 ** 6))
    hi = lo + draw(st.integers(0, 10 ** 6))
    s = {"type": "integer"}
    if draw(st.booleans()):
        s["minimum"] = lo
    if draw(st.booleans()) or "minimum" not in s:
        s["maximum"] = hi
    return s


@st.composite
def number_schema(draw):
    # bounds with a few decimals, as schemas write them (llguidance turns a bound into digits, and
    # a float like 3.392304975291753e-193 comes out one unit in the last place off)
    lo = draw(st.integers(-10 ** 6, 10 ** 6)) / draw(st.sampled_from([1, 10, 100, 1000]))
    s = {"type": "number", "minimum": lo, "maximum": lo + draw(st.integers(0, 10 ** 5)) / 100}
    if draw(st.booleans()):
        s["exclusiveMinimum"] = s.pop("minimum")
        s["maximum"] += 1
    return s


@st.composite
def string_schema(draw):
    kind = draw(st.sampled_from(["length", "enum", "pattern"]))
    if kind == "length":
        hi = draw(st.integers(0, 12))
        s = {"type": "string", "maxLength": hi}
        if draw(st.booleans()):
            s["minLength"] = draw(st.integers(0, hi))
        return s
    if kind == "enum":
        return {"type": "string", "enum": draw(st.lists(SHORT_TEXT, min_size=1, max_size=4, unique=True))}
    return {"type": "string", "pattern": draw(st.sampled_from(PATTERNS))}


LEAVES = st.one_of(
    string_schema(), string_schema(), int_schema(), int_schema(), st.just({"type": "boolean"}),
    st.just({"type": "null"}), number_schema(),  # numbers (unbounded digits) less often
    st.builds(lambda v: {"const": v}, st.one_of(st.integers(-99, 99), SHORT_TEXT, st.booleans(), st.none())),
    st.builds(lambda v: {"enum": v}, st.lists(st.one_of(st.integers(-9, 9), SHORT_TEXT, st.none()), min_size=1,
                                              max_size=3, unique_by=lambda x: json.dumps(x))),
)


@st.composite
def object_of(draw, children):
    props = draw(st.dictionaries(PROP_NAMES, children, min_size=1, max_size=4))
    required = [k for k in props if draw(st.booleans())]
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False}


def extend(children):
    @st.composite
    def array(draw):
        lo = draw(st.integers(0, 2))
        return {"type": "array", "items": draw(children), "minItems": lo, "maxItems": lo + draw(st.integers(0, 2))}

    return st.one_of(array(), object_of(children), st.builds(lambda a, b: {"anyOf": [a, b]}, children, children))


NESTED = st.recursive(LEAVES, extend, max_leaves=8)
SCHEMAS = st.one_of(object_of(NESTED), NESTED)  # mostly objects at the top, as APIs ask for


def unbounded(schema) -> bool:
    """Whether a complete output can be arbitrarily long: a JSON number's digits are unbounded,
    everything else the strategies build has a length bound."""
    if isinstance(schema, dict):
        return schema.get("type") == "number" or any(unbounded(v) for v in schema.values())
    if isinstance(schema, list):
        return any(unbounded(v) for v in schema)
    return False


def check_output(result, schema):
    note(f"schema: {json.dumps(schema)}\noutput: {str(result)!r} ({result.finish_reason}, "
         f"{len(result.token_ids)} tokens)")
    event(f"finish: {result.finish_reason}")
    event(f"output tokens: {'< 10' if len(result.token_ids) < 10 else '< 50' if len(result.token_ids) < 50 else '>= 50'}")
    if result.finish_reason == "stop":
        jsonschema.validate(json.loads(result), schema)
    else:
        # cut by max_tokens: only possible when the schema allows outputs of any length
        assert unbounded(schema), "a bounded schema's generation hit max_tokens"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(schema=SCHEMAS, seed=st.integers(0, 2 ** 32 - 1), temperature=st.sampled_from([0.0, 0.7, 1.0, 1.5]))
def test_any_schema_random_model_output_validates(rlm, schema, seed, temperature):
    r = rlm.generate("Answer in JSON:", max_tokens=1200, temperature=temperature, seed=seed,
                     repetition_penalty=1.0, response_format=schema_format(schema))
    check_output(r, schema)


@pytest.mark.reference  # the engine's random-weight model is built with transformers
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(schema=SCHEMAS, seed=st.integers(0, 2 ** 32 - 1))
def test_any_schema_engine_model_output_validates(tiny_chat_model, schema, seed):
    """The same on the real engine, whose generation loop samples in C (the mask is set before each
    native step)."""
    m = tiny_chat_model
    r = m.chat([{"role": "user", "content": "Answer in JSON."}], max_tokens=1200, temperature=1.0, seed=seed,
               response_format=schema_format(schema))
    check_output(r, schema)


@pytest.mark.reference
def test_engine_native_step_follows_the_schema(tiny_chat_model):
    """On the engine's native C step, greedy and sampled: valid, and greedy is the best allowed
    token at each step, as the Python path computes it from the same logits."""
    m = tiny_chat_model
    with m.session() as s:
        assert s.prefix_cache.native_ctx is not None  # the C generate step path
        native = m.generate("x", max_tokens=200, temperature=0, session=s, response_format=schema_format(PERSON))
    assert native.finish_reason == "stop"
    jsonschema.validate(json.loads(native), PERSON)
    # the same greedy choices token by token through Session.prefill/step and the Python mask
    c = Constraint.json_schema(m.tokenizer, PERSON, stop_ids=m.stop_token_ids, n_vocab=m.config.n_vocab)
    bits = np.zeros(mask_words(m.config.n_vocab), np.uint32)
    banned = set(m._gen_banned_ids())
    with m.session() as s:
        logits = s.prefill(m.tokenizer.encode("x"))
        out = []
        while True:
            allowed = [t for t in allowed_ids(c.fill_mask(bits), m.config.n_vocab) if t not in banned]
            t = allowed[int(np.argmax(logits[allowed]))]
            c.accept(t)
            if t in c.stop_ids:
                break
            out.append(t)
            logits = s.step(t)
    assert out == native.token_ids
