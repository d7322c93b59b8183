"""Tokenizer files from strangers: malformed tokenizer.json / tokenizer_config.json / GGUF tokenizer
metadata raise liquidlfm's errors (ModelFormatError naming the field, UnsupportedModelError for a
well-formed tokenizer of another kind), never KeyError / TypeError / AttributeError, never a huge
allocation, never a silently corrupted table."""
import copy
import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import liquidlfm
from liquidlfm.tokenizer import Tokenizer
from tests.fixtures.gguf_models import write_gguf_file, write_metadata_gguf
from tests.fixtures.tokenizers import gguf_tokenizer_fields, write_tokenizer_files

LIQUID_ERRORS = (liquidlfm.ModelFormatError, liquidlfm.UnsupportedModelError)


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    return write_tokenizer_files(tmp_path_factory.mktemp("lfm2_tok_input"), vocab_size=300)


@pytest.fixture(scope="module")
def tj(tok_dir):
    """The parsed tokenizer.json (copy before mutating)."""
    return json.loads((tok_dir / "tokenizer.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def config(tok_dir):
    return json.loads((tok_dir / "tokenizer_config.json").read_text(encoding="utf-8"))


def _added(id_, content="<think>", special=True):
    return {"id": id_, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": False, "special": special}


# ---- ids ----

def test_added_token_negative_id_rejected(tj):
    """id -1 used to index tokens[-1]: the last entry was silently replaced."""
    d = copy.deepcopy(tj)
    d["added_tokens"].append(_added(-1))
    n = len(d["added_tokens"]) - 1
    with pytest.raises(liquidlfm.ModelFormatError, match=rf"added_tokens\[{n}\] \('<think>'\) has id -1"):
        Tokenizer.from_tokenizer_json(d)
    d["model"]["vocab"]["Ġzz"] = -3
    with pytest.raises(liquidlfm.ModelFormatError, match=r"model.vocab\['Ġzz'\] has id -3"):
        Tokenizer.from_tokenizer_json(d)


@pytest.mark.parametrize("where", ["vocab", "added"])
@pytest.mark.parametrize("huge", [10_000_000, 30_000_000, 2**40])
def test_huge_id_rejected_without_allocating(tj, where, huge):
    """One id of 10**7 used to size a 10**7-entry table (1.4 GB; 3*10**7: 4 GB)."""
    d = copy.deepcopy(tj)
    if where == "vocab":
        d["model"]["vocab"]["Ġzz"] = huge
    else:
        d["added_tokens"].append(_added(huge))
    t0 = time.perf_counter()
    with pytest.raises(liquidlfm.ModelFormatError, match=rf"has id {huge}: ids must stay below twice"):
        Tokenizer.from_tokenizer_json(d)
    assert time.perf_counter() - t0 < 1.0


def test_sparse_ids_within_bound_still_load(tj):
    """Holes stay allowed (UNUSED "[PAD<i>]" fillers) while the table is at most twice the entries."""
    d = copy.deepcopy(tj)
    n_entries = len(d["model"]["vocab"]) + len(d["added_tokens"]) + 1
    d["added_tokens"].append(_added(2 * n_entries - 1))
    t = Tokenizer.from_tokenizer_json(d)
    assert t.vocab_size == 2 * n_entries and t.token_type(2 * n_entries - 2) == 5


@pytest.mark.parametrize("bad", [None, "3", 3.0, True, [3], {"id": 3}])
def test_non_integer_ids(tj, bad):
    d = copy.deepcopy(tj)
    d["model"]["vocab"]["Ġzz"] = bad
    with pytest.raises(liquidlfm.ModelFormatError, match=r"model.vocab\['Ġzz'\] has id"):
        Tokenizer.from_tokenizer_json(d)
    d = copy.deepcopy(tj)
    d["added_tokens"].append(_added(bad))
    with pytest.raises(liquidlfm.ModelFormatError, match=r"added_tokens\[\d+\] .* has id"):
        Tokenizer.from_tokenizer_json(d)


def test_missing_added_token_id_and_content(tj):
    d = copy.deepcopy(tj)
    del d["added_tokens"][3]["id"]
    with pytest.raises(liquidlfm.ModelFormatError, match=r"added_tokens\[3\] .* has id None"):
        Tokenizer.from_tokenizer_json(d)
    d = copy.deepcopy(tj)
    del d["added_tokens"][3]["content"]
    with pytest.raises(liquidlfm.ModelFormatError, match=r"added_tokens\[3\].content must be a string"):
        Tokenizer.from_tokenizer_json(d)
    d = copy.deepcopy(tj)
    d["added_tokens"][3]["special"] = "yes"
    with pytest.raises(liquidlfm.ModelFormatError, match=r"added_tokens\[3\].special must be true or false"):
        Tokenizer.from_tokenizer_json(d)


# ---- wrong JSON types ----

def _set(path, value):
    def mutate(d):
        obj = d
        for k in path[:-1]:
            obj = obj[k]
        obj[path[-1]] = value
    return mutate


@pytest.mark.parametrize("mutate, match", [
    (_set(["model"], "BPE"), r"tokenizer.json.model must be a JSON object"),
    (_set(["model", "vocab"], [["a", 1]]), r"model.vocab must be a JSON object"),
    (_set(["model", "merges"], "a b"), r"model.merges must be a list"),
    (_set(["model", "merges", 0], ["Ġ", 5]), r"model.merges\[0\] .* is neither"),
    (_set(["model", "merges", 0], ["Ġ"]), r"model.merges\[0\] .* is neither"),
    (_set(["model", "ignore_merges"], "false"), r"model.ignore_merges must be true or false"),
    (_set(["added_tokens"], {"id": 0}), r"tokenizer.json.added_tokens must be a list"),
    (_set(["added_tokens", 0], "<|pad|>"), r"added_tokens\[0\] must be a JSON object"),
    (_set(["normalizer"], "NFC"), r"tokenizer.json.normalizer must be a JSON object or null"),
    (_set(["normalizer"], ["NFC"]), r"tokenizer.json.normalizer must be a JSON object or null"),
    (_set(["pre_tokenizer"], "ByteLevel"), r"tokenizer.json.pre_tokenizer must be a JSON object or null"),
    (_set(["pre_tokenizer", "pretokenizers"], "Split"), r"pre_tokenizer.pretokenizers must be a list"),
    (_set(["pre_tokenizer", "pretokenizers", 0], "Split"), r"pre_tokenizer.pretokenizers\[0\] must be a JSON object"),
    (_set(["pre_tokenizer", "pretokenizers", 1], None), r"pre_tokenizer.pretokenizers\[1\] must be a JSON object"),
    (_set(["pre_tokenizer", "pretokenizers", 0, "pattern"], "x"), r"pretokenizers\[0\].pattern must be a JSON object"),
    (_set(["decoder"], "ByteLevel"), r"tokenizer.json.decoder must be a JSON object or null"),
    (_set(["post_processor"], [1]), r"tokenizer.json.post_processor must be a JSON object or null"),
    (_set(["post_processor", "single"], "x"), r"post_processor.single must be a list"),
    (_set(["post_processor", "single", 0, "SpecialToken"], "x"), r"single\[0\].SpecialToken must be a JSON object"),
    (_set(["post_processor", "special_tokens"], []), r"post_processor.special_tokens must be a JSON object"),
    (_set(["post_processor", "special_tokens", "<|startoftext|>"], 1),
     r"special_tokens\['<\|startoftext\|>'\] must be a JSON object"),
    (_set(["post_processor", "special_tokens", "<|startoftext|>", "ids"], 1), r"ids must be a list of token ids"),
    (_set(["post_processor", "special_tokens", "<|startoftext|>", "ids"], ["1"]), r"ids\[0\] must be a token id"),
    (_set(["post_processor", "special_tokens", "<|startoftext|>", "ids"], [-1]), r"BOS id -1 outside"),
])
def test_wrong_types_name_the_field(tj, mutate, match):
    d = copy.deepcopy(tj)
    mutate(d)
    with pytest.raises(liquidlfm.ModelFormatError, match=match):
        Tokenizer.from_tokenizer_json(d)


def test_top_level_not_an_object_file(tmp_path):
    (tmp_path / "tokenizer.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(liquidlfm.ModelFormatError, match="tokenizer.json must be a JSON object"):
        Tokenizer.from_dir(tmp_path)


# ---- text that is not UTF-8 ----

@pytest.mark.parametrize("where", ["vocab", "added"])
def test_lone_surrogate_in_token(tok_dir, tmp_path, where):
    """A JSON "\\ud800" escape gives a str with no UTF-8 form; used to raise UnicodeEncodeError."""
    d = json.loads((tok_dir / "tokenizer.json").read_text(encoding="utf-8"))
    if where == "vocab":
        d["model"]["vocab"]["Ġ\ud800"] = len(d["model"]["vocab"]) + 5
    else:
        d["added_tokens"].append(_added(len(d["model"]["vocab"]) + 5, "<\ud800>"))
    (tmp_path / "tokenizer.json").write_text(json.dumps(d), encoding="utf-8")  # ensure_ascii: a \ud800 escape
    with pytest.raises(liquidlfm.ModelFormatError, match=r"tokens\[\d+\] is not valid UTF-8 text"):
        Tokenizer.from_tokenizer_json(tmp_path / "tokenizer.json")


def test_nul_in_added_token(tj):
    d = copy.deepcopy(tj)
    d["added_tokens"].append(_added(len(d["model"]["vocab"]) + 5, "<a\0b>"))
    with pytest.raises(liquidlfm.ModelFormatError, match=r"tokens\[\d+\] contains a NUL"):
        Tokenizer.from_tokenizer_json(d)


def test_config_files_not_utf8(tok_dir, tmp_path):
    for name in ("tokenizer.json", "generation_config.json"):
        (tmp_path / name).write_bytes((tok_dir / name).read_bytes())
    (tmp_path / "tokenizer_config.json").write_bytes(b'{"add_bos_token": "\xff"}')
    with pytest.raises(liquidlfm.ModelFormatError, match="tokenizer_config.json: not UTF-8"):
        Tokenizer.from_dir(tmp_path)


def test_merge_with_unknown_token(tj):
    d = copy.deepcopy(tj)
    d["model"]["merges"].append(["Ġzzq", "zzq"])
    with pytest.raises(liquidlfm.ModelFormatError, match=r"not in the vocabulary"):
        Tokenizer.from_tokenizer_json(d)


# ---- tokenizer_config.json ----

@pytest.mark.parametrize("value, want", [
    (True, True), (False, False), ("true", True), ("false", False), ("False", False), (" TRUE ", True), (None, True),
])
def test_add_bos_token_strings_read_as_booleans(tj, config, value, want):
    """transformers 5 drops tokenizer_config's add_bos_token when a tokenizer.json is present (its
    post-processor decides) and older versions tested its truth value, so "false" meant True; we read
    the string as the boolean it spells."""
    cfg = dict(config, add_bos_token=value, add_eos_token="false" if value is not None else None)
    t = Tokenizer.from_tokenizer_json(tj, tokenizer_config=cfg)
    assert t.add_bos_token is want and t.add_eos_token is False
    assert (t.encode("hi")[0] == t.bos_id) is want


@pytest.mark.parametrize("key", ["add_bos_token", "add_eos_token"])
@pytest.mark.parametrize("value", [1, 0, "yes", "", [], {}, 1.0])
def test_add_bos_token_other_values(tj, config, key, value):
    with pytest.raises(liquidlfm.ModelFormatError, match=f"tokenizer_config.json {key} must be true or false"):
        Tokenizer.from_tokenizer_json(tj, tokenizer_config=dict(config, **{key: value}))


@pytest.mark.parametrize("value", [5, ["<|im_end|>"], {"content": 7}, {"content": ["x"]}])
def test_special_token_not_a_string(tj, config, value):
    with pytest.raises(liquidlfm.ModelFormatError, match="tokenizer_config.json eos_token must be a string"):
        Tokenizer.from_tokenizer_json(tj, tokenizer_config=dict(config, eos_token=value))


def test_config_not_an_object(tj, tok_dir, tmp_path):
    with pytest.raises(liquidlfm.ModelFormatError, match="tokenizer_config.json must be a JSON object"):
        Tokenizer.from_tokenizer_json(tj, tokenizer_config=[["bos_token", "x"]])
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (tmp_path / name).write_bytes((tok_dir / name).read_bytes())
    (tmp_path / "generation_config.json").write_text("[1]", encoding="utf-8")
    with pytest.raises(liquidlfm.ModelFormatError, match="generation_config.json must be a JSON object"):
        Tokenizer.from_dir(tmp_path)


def test_generation_config_bool_id_ignored(tj):
    t = Tokenizer.from_tokenizer_json(tj, generation_config={"eos_token_id": True, "pad_token_id": [False]})
    assert t.eos_id is None and t.pad_id is None


# ---- GGUF metadata ----

def _write_gguf(path, fields, types=None):
    """A tensor-less GGUF with fields; types overrides the value type of a key (gguf.GGUFValueType)."""
    return write_metadata_gguf(path, fields, types)


@pytest.fixture(scope="module")
def gguf_fields(tok_dir):
    return gguf_tokenizer_fields(tok_dir)


def _gguf_bad_values():
    import gguf

    V = gguf.GGUFValueType
    return [
        ([1, 2], (V.ARRAY, V.UINT32)),
        ([1], (V.ARRAY, V.INT32)),
        ("1", V.STRING),
        (1.0, V.FLOAT32),
        (True, V.BOOL),
    ]


@pytest.mark.parametrize("key", ["tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                 "tokenizer.ggml.padding_token_id"])
@pytest.mark.parametrize("case", range(5))
def test_gguf_special_id_of_wrong_type(gguf_fields, tmp_path, key, case):
    """llama.cpp reads these keys with get_key<uint32_t>, which throws "key ... has wrong type" for any
    other type: we refuse them too (ModelFormatError naming the key; any integer type is accepted)."""
    value, vt = _gguf_bad_values()[case]
    p = _write_gguf(tmp_path / "t.gguf", dict(gguf_fields, **{key: value}), {key: vt})
    with pytest.raises(liquidlfm.ModelFormatError, match=f"{key} must be an integer token id"):
        Tokenizer.from_gguf(p)


def test_gguf_special_id_other_integer_types(gguf_fields, tmp_path):
    import gguf

    V = gguf.GGUFValueType
    for vt in (V.INT32, V.UINT64, V.UINT8):
        p = _write_gguf(tmp_path / "t.gguf", gguf_fields, {"tokenizer.ggml.bos_token_id": vt})
        assert Tokenizer.from_gguf(p).bos_id == 1


@pytest.mark.parametrize("key", ["tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token"])
def test_gguf_add_bos_of_wrong_type(gguf_fields, tmp_path, key):
    import gguf

    V = gguf.GGUFValueType
    for value, vt in (("false", V.STRING), (0, V.UINT32), ([True], (V.ARRAY, V.BOOL))):
        p = _write_gguf(tmp_path / "t.gguf", dict(gguf_fields, **{key: value}), {key: vt})
        with pytest.raises(liquidlfm.ModelFormatError, match=f"{key} must be a bool"):
            Tokenizer.from_gguf(p)


def test_gguf_pre_of_wrong_type(gguf_fields, tmp_path):
    p = _write_gguf(tmp_path / "t.gguf", dict(gguf_fields, **{"tokenizer.ggml.pre": ["lfm2"]}))
    with pytest.raises(liquidlfm.UnsupportedModelError, match=r"tokenizer.ggml.pre is \['lfm2'\]"):
        Tokenizer.from_gguf(p)


def test_gguf_token_type_not_an_array(gguf_fields, tmp_path):
    p = _write_gguf(tmp_path / "t.gguf", dict(gguf_fields, **{"tokenizer.ggml.token_type": 1}))
    with pytest.raises(liquidlfm.ModelFormatError, match="token_type must be an array of int"):
        Tokenizer.from_gguf(p)


def test_gguf_token_not_utf8(gguf_fields, tmp_path):
    """Invalid UTF-8 in a GGUF token string (decoded with surrogateescape) is a format error."""
    import gguf

    V = gguf.GGUFValueType
    tokens = list(gguf_fields["tokenizer.ggml.tokens"])
    tokens[100] = tokens[100].encode("utf-8") + b"\xff"
    p = _write_gguf(tmp_path / "t.gguf", dict(gguf_fields, **{"tokenizer.ggml.tokens": tokens}),
                    {"tokenizer.ggml.tokens": (V.ARRAY, V.STRING)})
    with pytest.raises(liquidlfm.ModelFormatError, match=r"tokens\[100\] is not valid UTF-8 text"):
        Tokenizer.from_gguf(p)


@pytest.mark.parametrize("key", ["tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens",
                                 "tokenizer.ggml.token_type", "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id",
                                 "tokenizer.ggml.eos_token_id", "tokenizer.ggml.padding_token_id",
                                 "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token"])
def test_gguf_any_key_of_any_type(gguf_fields, tmp_path, key):
    """Every tokenizer key the loader reads, stored with every GGUF value type: a tokenizer or a
    liquidlfm error, never TypeError / KeyError."""
    import gguf

    V = gguf.GGUFValueType
    for value, vt in (("x", V.STRING), (7, V.UINT32), (0, V.UINT8), (-7, V.INT32), (2**40, V.UINT64),
                      (1.5, V.FLOAT32), (True, V.BOOL), (["a", "b"], (V.ARRAY, V.STRING)), ([1, 2], (V.ARRAY, V.INT32)),
                      ([[1], [2]], (V.ARRAY, V.ARRAY)), (None, None)):
        fields = dict(gguf_fields, **{key: value})
        if value is None:
            del fields[key]
        p = _write_gguf(tmp_path / "t.gguf", fields, {key: vt} if vt is not None else None)
        try:
            Tokenizer.from_gguf(p).close()
        except LIQUID_ERRORS:
            pass


@pytest.mark.reference
def test_gguf_model_with_array_bos_still_loads(tmp_path):
    """An otherwise valid model whose tokenizer.ggml.bos_token_id is an array used to fail to load with
    TypeError; now the tokenizer is refused (ModelFormatError) and the model loads without one, as
    liquidlfm.load does for any unreadable GGUF tokenizer."""
    import gguf

    from tests.fixtures.gguf_models import hf_to_gguf, make_tiny_hf

    src = hf_to_gguf(make_tiny_hf(tmp_path / "hf", vocab_size=320), tmp_path / "m.gguf", "f32")
    r = gguf.GGUFReader(str(src))
    w = gguf.GGUFWriter(str(tmp_path / "bad.gguf"), "lfm2")
    for k, f in r.fields.items():
        if k.startswith("GGUF.") or k == "general.architecture":
            continue
        if k == "tokenizer.ggml.bos_token_id":
            w.add_key_value(k, [1, 2], gguf.GGUFValueType.ARRAY, sub_type=gguf.GGUFValueType.UINT32)
        elif f.types[0] == gguf.GGUFValueType.ARRAY:
            w.add_key_value(k, f.contents(), f.types[0], sub_type=f.types[1])
        else:
            w.add_key_value(k, f.contents(), f.types[0])
    for t in r.tensors:
        w.add_tensor(t.name, t.data, raw_dtype=t.tensor_type)
    write_gguf_file(w)
    with pytest.raises(liquidlfm.ModelFormatError, match="tokenizer.ggml.bos_token_id must be an integer"):
        Tokenizer.from_gguf(tmp_path / "bad.gguf")
    with liquidlfm.load(str(tmp_path / "bad.gguf")) as m:
        assert m.tokenizer is None
        assert m.forward([1, 2, 3]).shape == (3, 320)


# ---- mutated tokenizer.json (hypothesis) ----

def _paths(obj, prefix=(), limit=4):
    """Every (path) into obj; lists and objects with many children contribute their first `limit`."""
    out = [prefix]
    if isinstance(obj, dict):
        for k in list(obj)[:limit] if len(obj) > 20 else obj:
            out += _paths(obj[k], prefix + (k,), limit)
    elif isinstance(obj, list):
        for i in range(min(len(obj), limit)):
            out += _paths(obj[i], prefix + (i,), limit)
    return out


JUNK = st.one_of(
    st.none(), st.booleans(), st.sampled_from([-1, 0, 1, 255, 10_000_000, 2**31, 2**63, -(2**40)]),
    st.floats(allow_nan=True), st.sampled_from(["", "\ud800", "a\0b", "Ġ", "BPE", "Sequence", "true", "false"]),
    st.text(max_size=5), st.lists(st.integers(-2, 300), max_size=3),
    st.dictionaries(st.sampled_from(["type", "id", "content", "ids", "Regex"]), st.integers(-1, 5), max_size=2),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_tokenizer_json_raises_only_liquidlfm_errors(tj, config, data):
    """Drop keys, change types, put huge / negative ids anywhere the loader reads (tokenizer.json and
    tokenizer_config.json): the result is a working tokenizer or a ModelFormatError /
    UnsupportedModelError, nothing else."""
    d = copy.deepcopy(tj)
    cfg = copy.deepcopy(config)
    paths = _paths(d)
    for _ in range(data.draw(st.integers(1, 3))):
        target = data.draw(st.sampled_from(["json", "json", "json", "config"]))
        root = d if target == "json" else cfg
        path = data.draw(st.sampled_from(paths if target == "json" else _paths(cfg)))
        if not path:
            continue
        obj = root
        try:
            for k in path[:-1]:
                obj = obj[k]
            obj[path[-1]]
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed this path
        if not isinstance(obj, (dict, list)):
            continue
        if data.draw(st.booleans()) and isinstance(obj, dict):
            del obj[path[-1]]
        else:
            obj[path[-1]] = data.draw(JUNK)
    try:
        t = Tokenizer.from_tokenizer_json(d, tokenizer_config=cfg)
    except LIQUID_ERRORS:
        return
    try:
        ids = t.encode("Hello <|im_start|>world 안녕 python", add_special_tokens=True)
    except LIQUID_ERRORS:  # e.g. a byte whose token was mutated away
        return
    assert all(0 <= i < t.vocab_size for i in ids)
    t.close()
