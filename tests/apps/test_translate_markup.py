"""No model reply can change a translated document's structure (issue 17's hole): a scripted model answers
every piece with markdown (table pipes, blank lines and headings, list markers, fences, link brackets,
HTML), and the translated document must parse (markdown-it-py, CommonMark + tables) into the same blocks,
links, images and code spans as the source."""
import itertools

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from markdown_it import MarkdownIt

from liquidlfm.segment import segment
from liquidlfm.translate import translate
from liquidlfm.translate.markup import fit_to_place, starts_line
from tests.fixtures.fake_lm import FakeModel

HOSTILE = [
    "X | Y\n\n# Z",
    "- one\n- two",
    "> quoted\n\n1. first",
    "```\ncode\n```",
    "text](http://evil.example) [more",
    "a `tick and <div> html",
    "---",
    "# heading",
    "1) item",
    "===",
    "<!-- open comment",
    "[ref]: http://x.example",
    "![img](http://tracker.example/p.png)",
    "ends with a backslash\\",
    "    indented code\n\n    more",
    "* * *",
    "| a | b |\n|---|---|\n| c | d |",
    "~~~",
    "+ plus",
    "closing #",
    "",
    " \n ",
]

DOCS = [
    """\
# Guide to LFM2

Intro sentence one. Intro sentence two.
A wrapped line here.

| Name | Description |
|------|-------------|
| lfm | A fast engine. Really fast. |
| b \\| c | See [the docs](https://example.com/docs) now. |

- First item with a [link text](https://example.com/a) inside.
- Second item.
  1. nested one
  2. nested two
- [ ] task item

> Quote here. Another sentence?

```python
print("never translated")
```

Heading two
-----------

Read `inline code` and ![alt text](img.png) here. Done.
""",
    """\
1. Step one. Step two.
2. Step three.

## Details ##

Text [with **bold** link](https://x.y/z "title") and more text.

> - quoted item
> - another quoted item

Last paragraph without newline.""",
    """\
Title line
==========

> > Deep quote. Still deep.
>
> Shallow again.

1) First step.
2) Second step with <b>html</b> and a footnote[^1].

| Col **A** | [Link](https://a.example) |
| :-- | --: |
| *x* | `y` |

* [x] Done item.
* [ ] Open item.

[^1]: The footnote text.
""",
]


def _md():
    return MarkdownIt("commonmark").enable("table")


def _shape(doc):
    """Block structure with nesting, plus the inline tokens that are structure (links, images, code
    spans, raw HTML, breaks), ignoring text and emphasis."""
    out = []
    for t in _md().parse(doc):
        if t.type == "inline":
            out.append(("inline", tuple((c.type, c.attrs.get("href") or c.attrs.get("src"))
                                        for c in t.children
                                        if c.type in ("link_open", "link_close", "image", "code_inline",
                                                      "html_inline", "hardbreak"))))
        else:
            out.append((t.type, t.tag, t.nesting, t.level, t.markup if t.type != "fence" else "fence"))
    return out


@pytest.fixture(scope="module")
def template(shared_dir):
    return (shared_dir / "data" / "lfm2-tokenizer" / "chat_template.jinja").read_text()


def test_hostile_replies_break_the_document_without_the_fix():
    """The check can fail: the same replies put back verbatim (what the translator did before) change
    the structure of every test document."""
    from liquidlfm.segment import rebuild

    for doc in DOCS:
        replies = itertools.cycle(HOSTILE)
        raw = rebuild(segment(doc), lambda s: next(replies))
        assert _shape(raw) != _shape(doc)


@pytest.mark.parametrize("doc", DOCS)
@pytest.mark.parametrize("offset", range(0, len(HOSTILE), 3))
def test_hostile_replies_keep_the_structure(template, doc, offset):
    counter, replies = itertools.count(offset), {}
    # the fake asks its transform at every step: one fixed reply per piece
    fake = FakeModel(template, transform=lambda s: replies.setdefault(s, HOSTILE[next(counter) % len(HOSTILE)]))
    out = translate(doc, "ko", model=fake, batch=False, max_tokens=400)
    assert _shape(out) == _shape(doc), out
    # the markup around the pieces is byte for byte the source's
    assert out.count("```python\nprint(\"never translated\")\n```") == doc.count("```python")


@pytest.mark.parametrize("reply", HOSTILE)
@pytest.mark.parametrize("where", ["text", "cell", "heading", "link"])
@pytest.mark.parametrize("line_start", [False, True])
def test_fit_to_place_is_one_inline_run(reply, where, line_start):
    t = fit_to_place(reply, "plain source", where=where, line_start=line_start)
    assert "\n" not in t and "\r" not in t
    # every backtick, angle bracket, square bracket and pipe is escaped; outside a cell, no pipe at all
    assert where == "cell" or "|" not in t
    i = 0
    while i < len(t):
        if t[i] == "\\":
            i += 2
            continue
        assert t[i] not in "|`<[]", (reply, t)
        i += 1
    # a trailing backslash never escapes what follows
    assert (len(t) - len(t.rstrip("\\"))) % 2 == 0
    # placed alone in a table cell / list item / heading / link, it stays there
    shapes = {"cell": ("| h |\n|---|\n| {} |\n", "| h |\n|---|\n| x |\n"),
              "text": ("- {}\n- b\n", "- x\n- b\n") if line_start else ("a {} b\n", "a x b\n"),
              "heading": ("## {}\n\npara\n", "## x\n\npara\n"),
              "link": ("[{}](http://u.example)\n", "[x](http://u.example)\n")}
    tmpl, ref = shapes[where]
    assert t, reply  # an empty reply keeps the source
    assert _shape(tmpl.format(t)) == _shape(ref), t


def test_fit_to_place_keeps_what_it_can():
    # no markup: unchanged; the source's own escapes stay single
    assert fit_to_place("좋은 날씨입니다.", "Nice weather.") == "좋은 날씨입니다."
    assert fit_to_place("b \\| c", "b \\| c", where="cell") == "b \\| c"
    assert fit_to_place("b | c", "b", where="cell") == "b \\| c"
    assert fit_to_place("b \\| c", "b") == "b &#124; c"  # outside a cell even an escaped pipe is an entity
    # line breaks become spaces
    assert fit_to_place("one\ntwo\r\n\r\nthree", "x") == "one two three"
    # markup the source had is carried over (its own brackets / code ticks), the rest escaped
    assert fit_to_place("see [참고] 1", "see [ref] 1") == "see [참고] 1"
    assert fit_to_place("see [참고] 1", "see ref 1") == "see \\[참고\\] 1"
    assert fit_to_place("<b>굵게</b>", "<b>bold</b>") == "<b>굵게</b>"
    assert fit_to_place("**굵게** 그리고 _기울임_", "**bold** and _italic_") == "**굵게** 그리고 _기울임_"
    # link text: unbalanced brackets escaped even when the source had brackets
    assert fit_to_place("a] b", "a [b] c", where="link") == "a\\] b"
    # block starts only at the start of a line / container
    assert fit_to_place("# 제목", "x", line_start=True) == "\\# 제목"
    assert fit_to_place("# 제목", "x", line_start=False) == "# 제목"
    assert fit_to_place("1. 첫째", "x", line_start=True) == "1\\. 첫째"
    assert fit_to_place("- 항목", "x", line_start=True) == "\\- 항목"
    assert fit_to_place("-5도", "x", line_start=True) == "-5도"
    assert fit_to_place("제목 #", "x", where="heading") == "제목 \\#"
    assert fit_to_place("C#", "x", where="heading") == "C#"
    assert fit_to_place("끝\\", "x") == "끝\\\\"
    assert fit_to_place(" \n", "Source text.") == "Source text."  # nothing back: the source stays
    with pytest.raises(ValueError, match="where"):
        fit_to_place("a", "b", where="table")


def test_starts_line():
    for before in ["", "  ", "- ", "* [ ] ", "> ", "> - ", "1. ", "  2) ", ">> "]:
        assert starts_line(before), before
    for before in ["| ", "# ", "text ", "`code` ", "[", "- text "]:
        assert not starts_line(before), before


def test_plain_text_mode_is_left_alone(template):
    fake = FakeModel(template, transform=lambda s: "X | Y\n\n# Z")
    assert translate("Hello there.", "ko", model=fake, markdown=False) == "X | Y\n\n# Z"
    assert translate("Hello there.", "ko", model=fake) == "X &#124; Y # Z"


_TOKENS = list("ab 가#>-+*=_~`|[]()<!\\.:1\t") + ["\n", "\n\n", "```", "~~~", "1. ", "- ", "* ", "> ", "# ", "---",
                                               "<!--", "-->", "<div>", "](x)", "[a](b)", "![i](j)", "\\|", "| x |",
                                               "    ", "[^1]", "http://u.example", "&#124;", "**", "\r\n"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.sampled_from(_TOKENS), max_size=12).map("".join), min_size=1, max_size=8))
def test_any_reply_keeps_the_structure(template, replies):
    for doc in DOCS:
        counter, seen = itertools.count(), {}
        fake = FakeModel(template, transform=lambda s: seen.setdefault(s, replies[next(counter) % len(replies)]))
        out = translate(doc, "ko", model=fake, batch=False, max_tokens=400)
        assert _shape(out) == _shape(doc), (replies, out)
