"""Chat templates: render a conversation into the prompt string the model was trained on.

Rendering matches transformers' ``apply_chat_template`` byte for byte (docs/architecture.md §7.5): a sandboxed,
immutable jinja2 environment with ``trim_blocks``/``lstrip_blocks``, the ``loopcontrols`` extension,
a ``{% generation %}`` block (rendered as its body), ``tojson`` = ``json.dumps(ensure_ascii=False)``,
the globals ``raise_exception`` and ``strftime_now``, and the tokenizer's special tokens
(``bos_token``, ``eos_token``, ...) as variables.

Templates come from model files, so rendering is bounded in work as well as sandboxed: ``range()`` gives
at most MAX_RANGE items; a render may take at most MAX_STEPS loop iterations, calls and lookups, build
strings and lists of at most MAX_VALUE items (``*``, ``+``, ``~``) and MAX_WORK items in all (output
included), recurse only as deep as Python allows and, as a backstop, run for at most MAX_SECONDS. Past a
limit render() raises ChatTemplateLimitError (a liquidlfm.ModelFormatError: the template, not the
conversation, is at fault) naming the template. Real chat templates stay far below these limits (the
LFM2 template takes ~4 steps per message) and render byte-identically.

Where the template comes from (first found): the model's ``chat_template.jinja``, its
``tokenizer_config.json`` ``chat_template``, the GGUF key ``tokenizer.chat_template``; otherwise the built-in LFM2
template below.

    from liquidlfm.chat_template import ChatTemplate
    tpl = ChatTemplate(source=None, special_tokens={"bos_token": "<|startoftext|>"})
    prompt = tpl.render([{"role": "user", "content": "Hi"}], add_generation_prompt=True)
"""
from __future__ import annotations

import contextvars
import dataclasses
import functools
import json
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Optional

from .errors import ModelFormatError

__all__ = [
    "LFM2_CHAT_TEMPLATE",
    "ChatTemplate",
    "ChatTemplateLimitError",
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


# ---- work limits ----

MAX_RANGE = 10_000        # items of one range() (jinja's sandbox allows 100 000 per call, any number of calls)
MAX_STEPS = 250_000       # loop iterations, calls, item and attribute lookups in one render
MACRO_STEPS = 20          # what one macro call counts for (it costs ~20 loop iterations)
MAX_SECONDS = 10.0        # backstop: wall time of one render, checked every 1024 steps
MAX_VALUE = 1 << 24       # characters / items of one string or list built by *, +, ~
MAX_WORK = 1 << 28        # characters / items built in one render, output included


class ChatTemplateLimitError(ModelFormatError):
    """A chat template did more work than any real one needs (see MAX_RANGE, MAX_STEPS, MAX_VALUE,
    MAX_WORK): e.g. nested range(100000) loops, or a string doubled in a loop."""


class _Budget:
    __slots__ = ("name", "steps", "work", "next_check", "deadline")

    def __init__(self, name: str):
        self.name, self.steps, self.work = name, 0, 0
        self.next_check = 1024
        self.deadline = time.monotonic() + MAX_SECONDS

    def fail(self, what: str):
        raise ChatTemplateLimitError(f"chat template {self.name}: {what}; no real chat template needs this much work")

    def step(self, n: int = 1) -> None:
        self.steps += n
        if self.steps > self.next_check:
            if self.steps > MAX_STEPS:
                self.fail(f"more than {MAX_STEPS} loop iterations, calls and lookups")
            self.next_check = self.steps + 1024
            if time.monotonic() > self.deadline:
                self.fail(f"still rendering after {MAX_SECONDS:g} s")

    def built(self, n: int) -> None:
        if n > MAX_VALUE:
            self.fail(f"a string or list of {n} items (limit {MAX_VALUE})")
        self.work += n
        if self.work > MAX_WORK:
            self.fail(f"more than {MAX_WORK} characters / items built")


_BUDGET: contextvars.ContextVar = contextvars.ContextVar("liquidlfm_chat_template_budget", default=None)


def _budget() -> _Budget:
    b = _BUDGET.get()
    return b if b is not None else _Budget("(rendered outside ChatTemplate.render)")


def _size(x) -> int:
    return len(x) if isinstance(x, (str, bytes, list, tuple)) else 0


class _Counted:
    """A for-loop's iterable, charging one step per item (len() passes through for loop.length)."""

    __slots__ = ("_it", "_budget")

    def __init__(self, it, budget):
        self._it, self._budget = it, budget

    def __iter__(self):
        step = self._budget.step
        for x in self._it:
            step()
            yield x

    def __len__(self):
        return len(self._it)


def _count_loop(it):
    return _Counted(it, _budget())


def _count_size(x):
    _budget().built(_size(x))
    return x


def _capped_range(*args):
    r = range(*args)
    if len(r) > MAX_RANGE:
        _budget().fail(f"range() of {len(r)} items (limit {MAX_RANGE})")
    _budget().step(len(r))
    return r


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
    import jinja2.runtime
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

    class BoundedEnvironment(ImmutableSandboxedEnvironment):
        """The sandbox, plus a bound on work (see MAX_*): every for-loop iterable is wrapped in a
        counting filter and every ~ concatenation in a size check when the template is parsed;
        calls and the *, **, + operators are checked as they run."""

        intercepted_binops = frozenset(["*", "**", "+"])

        def _parse(self, source, name, filename):
            tree = super()._parse(source, name, filename)
            for node in tree.find_all(jinja2.nodes.For):
                node.iter = jinja2.nodes.Filter(node.iter, "__lfm_loop", [], [], None, None, lineno=node.lineno)
            for node in list(tree.find_all(jinja2.nodes.Concat)):
                nodes = node.nodes
                node.nodes = [jinja2.nodes.Filter(jinja2.nodes.Concat(nodes, lineno=node.lineno), "__lfm_size",
                                                  [], [], None, None, lineno=node.lineno)]
            return tree

        def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 (jinja's signature)
            _budget().step(MACRO_STEPS if isinstance(__obj, jinja2.runtime.Macro) else 1)
            return super().call(__context, __obj, *args, **kwargs)

        def getitem(self, obj, argument):
            _budget().step()
            return super().getitem(obj, argument)

        def getattr(self, obj, attribute):
            _budget().step()
            return super().getattr(obj, attribute)

        def call_binop(self, context, operator, left, right):
            b = _budget()
            if operator == "*":
                n, k = (_size(left), right) if _size(left) else (_size(right), left)
                if n and isinstance(k, int) and n * k > 0:
                    b.built(n * k)
            elif operator == "**":
                if type(left) is int and type(right) is int and abs(left) > 1 \
                        and right * left.bit_length() > MAX_VALUE:
                    b.fail(f"an integer power of more than {MAX_VALUE} bits")
            elif operator == "+" and (_size(left) or _size(right)):
                b.built(_size(left) + _size(right))
            return super().call_binop(context, operator, left, right)

    env = BoundedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationBlock, jinja2.ext.loopcontrols]
    )
    env.filters["__lfm_loop"] = _count_loop
    env.filters["__lfm_size"] = _count_size
    env.globals["range"] = _capped_range
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
    name: how errors name the template (e.g. its file); default: the start of its source.
    """

    def __init__(self, source: Optional[str] = None, special_tokens: Optional[Mapping[str, str]] = None, *,
                 name: Optional[str] = None):
        self.source = source if source else LFM2_CHAT_TEMPLATE
        self.is_builtin = not source
        self.name = name or ("(built-in LFM2)" if self.is_builtin else repr(self.source[:40] + "..."
                                                                          if len(self.source) > 40 else self.source))
        tokens = dict(LFM2_SPECIAL_TOKENS) if self.is_builtin or special_tokens is None else {}
        if special_tokens:
            tokens.update({k: v for k, v in special_tokens.items() if v is not None})
        self.special_tokens = tokens
        self._template = _compile(self.source)

    def render(self, messages, tools=None, add_generation_prompt: bool = True, **kwargs) -> str:
        """Render messages (a list of {"role", "content", ...} dicts) into a prompt string.

        tools: list of JSON-schema dicts (or strings) or None. Extra keyword arguments become template
        variables (e.g. documents=..., keep_past_thinking=...). Raises TypeError for non-dict messages
        or tools, jinja2.TemplateError when the template rejects the conversation and
        ChatTemplateLimitError when it does unbounded work (see the module docstring).
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
        budget = _Budget(self.name)
        token = _BUDGET.set(budget)
        try:
            out = []
            for chunk in self._template.generate(
                messages=msgs, tools=tools, documents=variables.pop("documents", None),
                add_generation_prompt=add_generation_prompt, **variables,
            ):
                budget.work += len(chunk)
                if budget.work > MAX_WORK:
                    budget.built(0)
                out.append(chunk)
            return "".join(out)
        except RecursionError:
            budget.fail("recursion too deep")
        finally:
            _BUDGET.reset(token)


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
        try:
            return jinja.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise ModelFormatError(f"{jinja}: not UTF-8 text (byte offset {e.start})") from None
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
    try:
        return bytes(field.parts[field.data[0]]).decode("utf-8")
    except UnicodeDecodeError as e:
        raise ModelFormatError(f"{path}: tokenizer.chat_template is not UTF-8 text (byte offset {e.start})") from None


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
