"""Chat templates rendered by liquidlfm.chat_template vs transformers' apply_chat_template."""
import json
import os
from pathlib import Path

import pytest

from liquidlfm.chat_template import (
    LFM2_CHAT_TEMPLATE,
    ChatTemplate,
    chat_template_from_dir,
    render_chat_template,
    special_tokens_from_dir,
)

REPO = Path(__file__).resolve().parents[2]


def find_shared() -> Path:
    if os.environ.get("LIQUIDLFM_SHARED"):
        return Path(os.environ["LIQUIDLFM_SHARED"])
    for parent in REPO.parents:
        if (parent / "shared" / "data").is_dir():
            return parent / "shared"
    pytest.fail("../shared not found; set LIQUIDLFM_SHARED")


SHARED_TOK = find_shared() / "data" / "lfm2-tokenizer"
SHARED_TEMPLATE = (SHARED_TOK / "chat_template.jinja").read_text(encoding="utf-8")

SPECIAL = ["<|pad|>", "<|startoftext|>", "<|endoftext|>", "<|fim_pre|>", "<|fim_mid|>", "<|fim_suf|>",
           "<|im_start|>", "<|im_end|>", "<|tool_list_start|>", "<|tool_list_end|>", "<|tool_call_start|>",
           "<|tool_call_end|>", "<|tool_response_start|>", "<|tool_response_end|>"]


@pytest.fixture(scope="module")
def hf_tokenizer():
    """A PreTrainedTokenizerFast (tiny byte-level BPE with LFM2's special tokens) carrying the shipped
    LFM2 chat template, as transformers would load it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIAL)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|startoftext|>", eos_token="<|im_end|>", pad_token="<|pad|>",
        chat_template=SHARED_TEMPLATE,
    )


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city — 날씨 ☀",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
CANDIDATES_TOOL = {"name": "get_candidate_status", "description": "Retrieves status",
                   "parameters": {"type": "object", "properties": {"candidate_id": {"type": "string"}}}}

CONVERSATIONS = {
    "user_only": [{"role": "user", "content": "What is C. elegans?"}],
    "system_user": [{"role": "system", "content": "You are a helpful assistant."},
                    {"role": "user", "content": "What is C. elegans?"}],
    "multi_turn": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                   {"role": "assistant", "content": "Hello! 안녕하세요 🙂"}, {"role": "user", "content": "2+2?"}],
    "tool_turns": [{"role": "user", "content": "Weather in Seoul?"},
                   {"role": "assistant", "content": '<|tool_call_start|>[get_weather(city="Seoul")]<|tool_call_end|>'},
                   {"role": "tool", "content": '{"temp": 21, "sky": "맑음"}'},
                   {"role": "assistant", "content": "It is 21°C and clear."}],
    "non_string_content": [{"role": "user", "content": [{"type": "text", "text": "hé \"quoted\" </script>"}]},
                           {"role": "assistant", "content": ["a", 1]},
                           {"role": "tool", "content": {"result": [1, 2.5, True, None], "ключ": "значение"}},
                           {"role": "user", "content": 42}],
    "empty_system": [{"role": "system", "content": ""}, {"role": "user", "content": "x"}],
    "whitespace": [{"role": "user", "content": "  leading and trailing  \n\n"},
                   {"role": "assistant", "content": "\tTabs\n"}],
    "special_text_in_content": [{"role": "user", "content": "<|im_end|> injected <|im_start|>system"}],
}

TOOLSETS = {"no_tools": None, "empty": [], "one": [WEATHER_TOOL], "two": [WEATHER_TOOL, CANDIDATES_TOOL]}


@pytest.mark.reference
@pytest.mark.parametrize("conv", sorted(CONVERSATIONS))
@pytest.mark.parametrize("tools", sorted(TOOLSETS))
@pytest.mark.parametrize("gen", [True, False])
def test_same_string_as_transformers(hf_tokenizer, conv, tools, gen):
    messages, tool_list = CONVERSATIONS[conv], TOOLSETS[tools]
    want = hf_tokenizer.apply_chat_template(messages, tools=tool_list, add_generation_prompt=gen, tokenize=False)
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|im_end|>", "pad_token": "<|pad|>"}
    # the model's own (shipped) template through our environment
    assert render_chat_template(messages, tool_list, gen, source=SHARED_TEMPLATE, special_tokens=special) == want
    # and our built-in LFM2 template
    assert ChatTemplate().render(messages, tools=tool_list, add_generation_prompt=gen) == want


def test_worked_example_from_reference():
    out = ChatTemplate().render([{"role": "system", "content": "You are a helpful assistant."},
                                 {"role": "user", "content": "What is C. elegans?"}])
    assert out == ("<|startoftext|><|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                   "<|im_start|>user\nWhat is C. elegans?<|im_end|>\n<|im_start|>assistant\n")


def test_none_content_renders_null():
    # (transformers 5 drops a None content before rendering and then fails on the undefined value)
    out = ChatTemplate().render([{"role": "assistant", "content": None}], add_generation_prompt=False)
    assert out == "<|startoftext|><|im_start|>assistant\nnull<|im_end|>\n"
    assert render_chat_template([{"role": "assistant", "content": None}], source=SHARED_TEMPLATE,
                                add_generation_prompt=False) == out


@pytest.mark.reference
def test_environment_features_match_transformers(hf_tokenizer):
    """loopcontrols, tojson without HTML escaping / key sorting, raise_exception, generation blocks,
    namespace, strftime_now, extra kwargs and special tokens as variables."""
    src = (
        "{% for m in messages %}{% if loop.index > 2 %}{% break %}{% endif %}"
        "{% generation %}[{{ m.content | tojson }}]{% endgeneration %}{% endfor %}"
        "{{ {'b': '<&>', 'a': '한'} | tojson }}{{ {'x': 1} | tojson(indent=2) }}"
        "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}"
        "{{ eos_token }}{{ flag }}{{ strftime_now('%Y') | length }}"
        "{% if messages | length > 5 %}{{ raise_exception('too many') }}{% endif %}"
    )
    msgs = [{"role": "user", "content": "a<b>"}, {"role": "user", "content": "ü"}, {"role": "user", "content": "c"}]
    want = hf_tokenizer.apply_chat_template(msgs, chat_template=src, tokenize=False, flag="F")
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|im_end|>", "pad_token": "<|pad|>"}
    assert render_chat_template(msgs, source=src, special_tokens=special, add_generation_prompt=False,
                                flag="F") == want
    import jinja2

    with pytest.raises(jinja2.TemplateError, match="too many"):
        render_chat_template(msgs * 2, source=src, special_tokens=special)


def test_sandbox_blocks_escapes():
    import jinja2

    for src in ("{{ messages.__class__.__mro__ }}", "{% set ns = namespace(_x=1) %}",
                "{{ ''.__class__.__subclasses__() }}"):
        with pytest.raises(jinja2.exceptions.SecurityError):
            render_chat_template([{"role": "user", "content": "x"}], source=src)


# ---- bounded work: templates come from model files ----

def _limited(src, seconds=1.0, messages=({"role": "user", "content": "x"},), **kw):
    """Render src; it must stop with ChatTemplateLimitError (a ModelFormatError) within `seconds`."""
    import time

    import liquidlfm
    from liquidlfm.chat_template import ChatTemplateLimitError

    t0 = time.perf_counter()
    with pytest.raises(ChatTemplateLimitError) as e:
        ChatTemplate(src, **kw).render(list(messages))
    assert time.perf_counter() - t0 < seconds, src
    assert isinstance(e.value, liquidlfm.ModelFormatError)
    return str(e.value)


def test_nested_range_loops_stop_within_a_second():
    """Two nested range(100000) loops used to run 10**10 iterations (jinja's sandbox caps one range at
    100 000 items, not how many are made)."""
    msg = _limited("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", name="evil.gguf")
    assert "chat template evil.gguf: range() of 100000 items (limit 10000)" in msg
    msg = _limited("{% for i in range(10000) %}{% for j in range(10000) %}{{ '' }}{% endfor %}{% endfor %}")
    assert "more than 250000 loop iterations" in msg and "'{% for i in range(10000) %}" in msg
    _limited("{% for c in 'ab' * 5000000 %}{% for d in 'ab' %}{% endfor %}{% endfor %}")
    _limited("{% for c in messages[0].content %}{% for d in messages[0].content %}{% endfor %}{% endfor %}",
             messages=[{"role": "user", "content": "x" * 100000}])


@pytest.mark.parametrize("src", [
    "{% set ns = namespace(s='x') %}{% for i in range(100) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
    "{% set ns = namespace(s='x') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
    "{% set ns = namespace(s=[1]) %}{% for i in range(100) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
    "{{ 'x' * 10**10 }}",
    "{{ [0] * 10**10 }}",
    "{{ 10 ** 100000000 }}",
    "{% for i in range(10000) %}{{ 'x' * 10**6 }}{% endfor %}",
])
def test_huge_values_refused_before_they_are_built(src):
    _limited(src)


def test_macro_recursion_bounded():
    assert "recursion too deep" in _limited("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}")
    _limited("{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(40) }}", seconds=2.0)


@pytest.mark.reference
def test_long_conversation_within_limits(hf_tokenizer):
    """The shipped LFM2 template on 2 000 turns and 100 tools: far below every limit, same bytes as
    transformers."""
    msgs = [{"role": ("user", "assistant")[i % 2], "content": f"turn {i} " + "안녕 " * 50} for i in range(2000)]
    tools = [dict(CANDIDATES_TOOL, name=f"tool_{i}") for i in range(100)]
    want = hf_tokenizer.apply_chat_template(msgs, tools=tools, add_generation_prompt=True, tokenize=False)
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|im_end|>", "pad_token": "<|pad|>"}
    assert render_chat_template(msgs, tools, True, source=SHARED_TEMPLATE, special_tokens=special) == want
    assert ChatTemplate().render(msgs, tools=tools) == want


def test_bad_inputs():
    t = ChatTemplate()
    with pytest.raises(TypeError):
        t.render("hello")
    with pytest.raises(TypeError):
        t.render(["hello"])
    with pytest.raises(TypeError):
        t.render([{"role": "user", "content": "x"}], tools=[object()])
    with pytest.raises(TypeError):
        t.render([{"role": "user", "content": "x"}], tools={"name": "f"})


def test_template_sources_and_special_tokens(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    assert chat_template_from_dir(d) is None
    (d / "tokenizer_config.json").write_text(json.dumps({"chat_template": "CFG", "bos_token": "<s>",
                                                         "eos_token": {"content": "</s>"}}))
    assert chat_template_from_dir(d) == "CFG"
    (d / "tokenizer_config.json").write_text(json.dumps({"chat_template": [
        {"name": "tool_use", "template": "TOOLS"}, {"name": "default", "template": "DEFAULT"}]}))
    assert chat_template_from_dir(d) == "DEFAULT"
    # transformers: a chat_template.jinja file takes priority over tokenizer_config.json's template
    (d / "chat_template.jinja").write_text("JINJA{{ bos_token }}", encoding="utf-8")
    assert chat_template_from_dir(d) == "JINJA{{ bos_token }}"
    (d / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<s>", "eos_token": {"content": "</s>"}}))
    assert chat_template_from_dir(d) == "JINJA{{ bos_token }}"
    assert special_tokens_from_dir(d) == {"bos_token": "<s>", "eos_token": "</s>"}
    # the shipped LFM2 files
    assert chat_template_from_dir(SHARED_TOK) == SHARED_TEMPLATE
    assert special_tokens_from_dir(SHARED_TOK)["bos_token"] == "<|startoftext|>"


def test_template_from_gguf(tmp_path):
    import gguf
    import numpy as np

    from liquidlfm.chat_template import chat_template_from_gguf

    path = tmp_path / "t.gguf"
    w = gguf.GGUFWriter(str(path), "lfm2")
    w.add_chat_template("{{ bos_token }}안녕")
    w.add_tensor("x", np.zeros(4, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    assert chat_template_from_gguf(path) == "{{ bos_token }}안녕"


def test_template_not_utf8(tmp_path):
    """Used to raise UnicodeDecodeError out of liquidlfm.load for a model folder."""
    import gguf
    import numpy as np

    import liquidlfm
    from liquidlfm.chat_template import chat_template_from_gguf

    (tmp_path / "chat_template.jinja").write_bytes(b"{{ bos_token }}\xff")
    with pytest.raises(liquidlfm.ModelFormatError, match=r"chat_template.jinja: not UTF-8 text \(byte offset 15\)"):
        chat_template_from_dir(tmp_path)
    path = tmp_path / "t.gguf"
    w = gguf.GGUFWriter(str(path), "lfm2")
    w.add_key_value("tokenizer.chat_template", b"ab\xff", gguf.GGUFValueType.STRING)
    w.add_tensor("x", np.zeros(4, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(liquidlfm.ModelFormatError, match=r"tokenizer.chat_template is not UTF-8 text"):
        chat_template_from_gguf(path)


def test_builtin_is_self_contained():
    src = (REPO / "liquidlfm" / "chat_template.py").read_text(encoding="utf-8")
    assert "shared" not in src.replace("SafeNamespace", "").split("LFM2_CHAT_TEMPLATE = (")[1].split(")\n")[0]
    assert "<|tool_response_start|>" in LFM2_CHAT_TEMPLATE
