"""Chat templates: render a conversation into the prompt string the model was trained on.

Rendering matches transformers' ``apply_chat_template`` byte for byte (docs/architecture.md §7.5): a sandboxed,
immutable jinja2 environment with ``trim_blocks``/``lstrip_blocks``, the ``loopcontrols`` extension,
a ``{% generation %}`` block (rendered as its body), ``tojson`` = ``json.dumps(ensure_ascii=False)``,
the globals ``raise_exception`` and ``strftime_now``, and the tokenizer's special tokens
(``bos_token``, ``eos_token``, ...) as variables.

Where the template comes from (first found): the model's ``chat_template.jinja``, its
``tokenizer_config.json`` ``chat_template``, the GGUF key ``tokenizer.chat_template``; otherwise the built-in LFM2
template below.

    from liquidlfm.chat_template import ChatTemplate
    tpl = ChatTemplate(source=None, special_tokens={"bos_token": "<|startoftext|>"})
    prompt = tpl.render([{"role": "user", "content": "Hi"}], add_generation_prompt=True)
"""
from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Optional

__all__ = [
    "LFM2_CHAT_TEMPLATE",
    "ChatTemplate",
    "render_chat_template",
    "chat_template_from_dir",
    "chat_template_from_gguf",
    "special_tokens_from_dir",
]

# LFM2's chat format (docs/architecture.md §7.1), written for this package: <|startoftext|>, an optional system
# turn (the first message when its role is "system") extended by "List of tools: <|tool_list_start|>[...]
# <|tool_list_end|>", every other message as <|im_start|>role\ncontent<|im_end|>\n with non-string
# content JSON-serialised and tool results wrapped in <|tool_response_start|>...<|tool_response_end|>,
# then <|im_start|>assistant\n when a generation prompt is asked for.
LFM2_CHAT_TEMPLATE = (
    "{{- bos_token -}}\n"
    "{%- set ns = namespace(system_prompt='') -%}\n"
    "{%- if messages and messages[0]['role'] == 'system' -%}\n"
    "    {%- set ns.system_prompt = messages[0]['content'] -%}\n"
    "    {%- set messages = messages[1:] -%}\n"
    "{%- endif -%}\n"
    "{%- if tools -%}\n"
    "    {%- set ns.system_prompt = ns.system_prompt + ('\\n' if ns.system_prompt else '')"
    " + 'List of tools: <|tool_list_start|>[' -%}\n"
    "    {%- for tool in tools -%}\n"
    "        {%- set ns.system_prompt = ns.system_prompt + (tool if tool is string else tool | tojson) -%}\n"
    "        {%- if not loop.last -%}{%- set ns.system_prompt = ns.system_prompt + ', ' -%}{%- endif -%}\n"
    "    {%- endfor -%}\n"
    "    {%- set ns.system_prompt = ns.system_prompt + ']<|tool_list_end|>' -%}\n"
    "{%- endif -%}\n"
    "{%- if ns.system_prompt -%}\n"
    "    {{- '<|im_start|>system\\n' + ns.system_prompt + '<|im_end|>\\n' -}}\n"
    "{%- endif -%}\n"
    "{%- for message in messages -%}\n"
    "    {%- set content = message['content'] -%}\n"
    "    {%- if content is not string -%}{%- set content = content | tojson -%}{%- endif -%}\n"
    "    {%- if message['role'] == 'tool' -%}\n"
    "        {%- set content = '<|tool_response_start|>' + content + '<|tool_response_end|>' -%}\n"
    "    {%- endif -%}\n"
    "    {{- '<|im_start|>' + message['role'] + '\\n' + content + '<|im_end|>\\n' -}}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "    {{- '<|im_start|>assistant\\n' -}}\n"
    "{%- endif -%}\n"
)

LFM2_SPECIAL_TOKENS = {"bos_token": "<|startoftext|>", "eos_token": "<|im_end|>", "pad_token": "<|pad|>"}

_SPECIAL_TOKEN_KEYS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


# ---- the jinja environment ----

def _raise_exception(message):
    import jinja2

    raise jinja2.exceptions.TemplateError(message)


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt):
    return datetime.now().strftime(fmt)


@functools.lru_cache(maxsize=1)
def _environment():
    import jinja2
    import jinja2.ext
    import jinja2.nodes
    import jinja2.utils
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class GenerationBlock(jinja2.ext.Extension):
        """``{% generation %}...{% endgeneration %}`` marks assistant text for training masks; for
        rendering it is just its body."""

        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

        def _body(self, caller):
            return caller()

    class SafeNamespace(jinja2.utils.Namespace):
        """namespace() that refuses underscore-prefixed attributes (no way to CPython internals)."""

        def __init__(*args, **kwargs):
            self, args = args[0], args[1:]
            attrs = dict(*args, **kwargs)
            for name in attrs:
                SafeNamespace._check(name)
            jinja2.utils.Namespace.__init__(self, attrs)

        def __setitem__(self, name, value):
            SafeNamespace._check(name)
            jinja2.utils.Namespace.__setitem__(self, name, value)

        @staticmethod
        def _check(name):
            if isinstance(name, str) and name.startswith("_"):
                raise jinja2.exceptions.SecurityError(f"chat template: namespace attribute {name!r} is not allowed")

    class SafeDict:
        def __call__(self, *args, **kwargs):
            return dict(*args, **kwargs)

        def fromkeys(self, *args, **kwargs):
            return dict.fromkeys(*args, **kwargs)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationBlock, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.globals["dict"] = SafeDict()
    env.globals["namespace"] = SafeNamespace
    return env


@functools.lru_cache(maxsize=16)
def _compile(source: str):
    return _environment().from_string(source)


# ---- input cleaning (what the template may see) ----

def _plain(value: Any) -> Any:
    """Rebuild template inputs out of plain JSON-like types; other objects become "<TypeName>"."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, Mapping):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if type(value).__module__ == "numpy" and hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return _plain(value.item())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if callable(getattr(value, "model_dump", None)):
        return _plain(value.model_dump())
    return f"<{type(value).__name__}>"


_REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")


def _alias_reasoning(messages):
    out = []
    for m in messages:
        r = next((m[k] for k in _REASONING_FIELDS if m.get(k) is not None), None)
        if r is not None:
            m = {"thinking": r, **m, "reasoning_content": r}
        out.append(m)
    return out


# ---- rendering ----

class ChatTemplate:
    """A compiled chat template plus the special-token variables it is rendered with.

    source: the template text; None uses the built-in LFM2 template.
    special_tokens: {"bos_token": ..., "eos_token": ..., ...}; missing ones default to LFM2's.
    """

    def __init__(self, source: Optional[str] = None, special_tokens: Optional[Mapping[str, str]] = None):
        self.source = source if source else LFM2_CHAT_TEMPLATE
        self.is_builtin = not source
        tokens = dict(LFM2_SPECIAL_TOKENS) if self.is_builtin or special_tokens is None else {}
        if special_tokens:
            tokens.update({k: v for k, v in special_tokens.items() if v is not None})
        self.special_tokens = tokens
        self._template = _compile(self.source)

    def render(self, messages, tools=None, add_generation_prompt: bool = True, **kwargs) -> str:
        """Render messages (a list of {"role", "content", ...} dicts) into a prompt string.

        tools: list of JSON-schema dicts (or strings) or None. Extra keyword arguments become template
        variables (e.g. documents=..., keep_past_thinking=...). Raises TypeError for non-dict messages
        or tools and jinja2.TemplateError when the template rejects the conversation.
        """
        if isinstance(messages, (str, bytes)) or not isinstance(messages, Iterable):
            raise TypeError("messages must be a list of {'role': ..., 'content': ...} dicts")
        msgs = _plain(list(messages))
        for m in msgs:
            if not isinstance(m, dict):
                raise TypeError(f"chat messages must be dicts, got {m!r}")
        msgs = _alias_reasoning(msgs)
        if tools is not None:
            if isinstance(tools, (str, bytes, Mapping)) or not isinstance(tools, Iterable):
                raise TypeError("tools must be a list of JSON-schema dicts")
            tools = list(tools)
            for t in tools:
                if not isinstance(t, (dict, str)):
                    raise TypeError(f"each tool must be a JSON-schema dict, got {type(t).__name__}")
            tools = _plain(tools)
        variables = {**self.special_tokens, **_plain(kwargs)}
        return self._template.render(
            messages=msgs, tools=tools, documents=variables.pop("documents", None),
            add_generation_prompt=add_generation_prompt, **variables,
        )


def render_chat_template(messages, tools=None, add_generation_prompt=True, *, source=None, special_tokens=None,
                         **kwargs) -> str:
    """One-shot form of ChatTemplate(source, special_tokens).render(...)."""
    return ChatTemplate(source, special_tokens).render(messages, tools, add_generation_prompt, **kwargs)


# ---- finding a model's template ----

def _template_from_config_value(value) -> Optional[str]:
    """tokenizer_config.json's chat_template is a string or a list of {"name", "template"}."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        named = {d.get("name"): d.get("template") for d in value if isinstance(d, dict)}
        return named.get("default") or next((t for t in named.values() if isinstance(t, str)), None)
    return None


def chat_template_from_dir(path) -> Optional[str]:
    """The chat template of a Hugging Face model folder, or None. As in transformers, a
    chat_template.jinja file takes priority over tokenizer_config.json's chat_template."""
    path = Path(path)
    jinja = path / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    cfg = path / "tokenizer_config.json"
    if cfg.is_file():
        try:
            data = json.loads(cfg.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        if isinstance(data, dict):
            return _template_from_config_value(data.get("chat_template"))
    return None


def chat_template_from_gguf(path) -> Optional[str]:
    """The GGUF metadata key tokenizer.chat_template, or None."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path), "r")
    field = reader.fields.get("tokenizer.chat_template")
    if field is None or not field.data:
        return None
    return bytes(field.parts[field.data[0]]).decode("utf-8")


def special_tokens_from_dir(path) -> dict:
    """{"bos_token": ..., ...} from tokenizer_config.json / special_tokens_map.json of a model folder."""
    path = Path(path)
    out = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        f = path / name
        if not f.is_file():
            continue
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict):
            continue
        for k in _SPECIAL_TOKEN_KEYS:
            v = data.get(k)
            if isinstance(v, dict):
                v = v.get("content")
            if isinstance(v, str):
                out[k] = v
    return out
