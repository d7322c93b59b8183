"""The translator's plumbing and the markdown segmenter, on a scripted fake model (tests/fixtures/fake_lm.py)
so the expected output is known exactly. Real (random-weight) models: tests/apps/test_translate_model.py."""
import warnings

import pytest
from hypothesis import given, settings, strategies as st

import importlib

import liquidlfm
from liquidlfm.segment import Segment, rebuild, segment, segment_plain, split_sentences
from liquidlfm.translate import (LANGUAGES, TranslationTruncatedWarning, Translator, detect_language, language,
                                 load_glossary, system_prompt, translate)
from liquidlfm.translate.prompts import glossary_for
from tests.fixtures.fake_lm import FakeModel

tr_mod = importlib.import_module("liquidlfm.translate")  # the package (liquidlfm.translate is the function)

DOC = """\
---
title: Demo
---
# Liquid **LFM2** guide #

Welcome to the guide. It explains e.g. how Mr. Smith uses the U.S. version. Read it!
This line wraps
onto the next one.

- First item with `inline_code()` and a [link text](https://example.com/a_(b) "t").
- Second item
  continues here.
  1. nested one
   * deeper
- [ ] task item

| Name | Description |
|------|:-----------:|
| `lfm` | A fast engine. Really fast. |
| b \\| c | d |

```python
print("hello. World")  # never translated
```

~~~
tilde fence. Stays.
~~~

    indented code. Yes.

> Quote here. Another sentence?

오늘 날씨가 좋네요. 내일은 비가 온다고 합니다! 정말요?
See <https://x.y> and https://liquid.ai/docs. Done.
<div align="center">
![alt text](img.png)
[ref]: https://example.com/ref
Setext heading
==============
***
Last line without newline."""


@pytest.fixture(scope="module")
def template(shared_dir):
    return (shared_dir / "data" / "lfm2-tokenizer" / "chat_template.jinja").read_text()


@pytest.fixture
def fake(template):
    return FakeModel(template)


# ---- segmentation ----

def test_roundtrip_and_structure():
    segs = segment(DOC)
    assert rebuild(segs) == DOC
    assert rebuild(segs, lambda s: s) == DOC
    texts = [s.text for s in segs if s.translate]
    # sentences, with abbreviations kept together
    assert "It explains e.g. how Mr. Smith uses the U.S. version." in texts
    assert "Read it!" in texts and "Welcome to the guide." in texts
    assert "This line wraps\nonto the next one." in texts
    # headings, list items, table cells, link/alt text, quotes, Korean sentences
    for t in ["Liquid **LFM2** guide", "First item with", "link text", "Second item\n  continues here.",
              "nested one", "deeper", "task item", "Name", "Description", "A fast engine.", "Really fast.", "d",
              "Quote here.", "Another sentence?", "오늘 날씨가 좋네요.", "내일은 비가 온다고 합니다!", "정말요?",
              "alt text", "Setext heading", "Last line without newline."]:
        assert t in texts, t
    # never translated: code, URLs, markers, pipes, fences, front matter, html, link definitions
    joined = "\n".join(texts)
    for t in ["inline_code", "print(", "tilde fence", "indented code", "https://", "title: Demo", "<div",
              "[ref]", "```", "- ", "# "]:
        assert t not in joined, t
    import re
    assert not re.search(r"(?<!\\)\|", joined)  # only escaped pipes inside cells
    assert "b \\| c" in texts
    for s in segs:
        if s.translate:
            assert s.text == s.text.strip() and any(c.isalpha() for c in s.text)


def test_rebuild_keeps_structure_around_translations():
    segs = segment(DOC)
    out = rebuild(segs, lambda s: "<" + s.upper() + ">")
    assert "# <LIQUID **LFM2** GUIDE> #\n" in out
    assert "- <FIRST ITEM WITH> `inline_code()` <AND A> [<LINK TEXT>](https://example.com/a_(b) \"t\").\n" in out
    assert "  1. <NESTED ONE>\n   * <DEEPER>\n- [ ] <TASK ITEM>\n" in out
    assert "| <NAME> | <DESCRIPTION> |\n|------|:-----------:|\n| `lfm` | <A FAST ENGINE.> <REALLY FAST.> |\n" in out
    assert '```python\nprint("hello. World")  # never translated\n```\n' in out
    assert "    indented code. Yes.\n" in out
    assert "> <QUOTE HERE.> <ANOTHER SENTENCE?>\n" in out
    assert "<See> <https://x.y> <AND> https://liquid.ai/docs. <DONE.>" in out.replace("<SEE>", "<See>")
    assert out.endswith("<LAST LINE WITHOUT NEWLINE.>")
    # rebuild from a list of translations, with count checks
    n = sum(s.translate for s in segs)
    assert rebuild(segs, [s.text for s in segs if s.translate]) == DOC
    with pytest.raises(ValueError, match="fewer"):
        rebuild(segs, ["x"] * (n - 1))
    with pytest.raises(ValueError, match="more"):
        rebuild(segs, ["x"] * (n + 1))


def test_sentence_splitting():
    assert split_sentences("One. Two? Three!") == ["One. ", "Two? ", "Three!"]
    assert split_sentences("Dr. Kim met J. R. R. Tolkien at 3 p.m. on Monday.") == [
        "Dr. Kim met J. R. R. Tolkien at 3 p.m. on Monday."]
    assert split_sentences("He said \"Stop.\" Then he left.") == ["He said \"Stop.\" ", "Then he left."]
    assert split_sentences("Apples, pears, etc. are fruit. Yes.") == ["Apples, pears, etc. are fruit. ", "Yes."]
    assert split_sentences("它很好。我们走吧！好") == ["它很好。", "我们走吧！", "好"]
    assert split_sentences("회의는 3시입니다. 늦지 마세요.") == ["회의는 3시입니다. ", "늦지 마세요."]
    assert split_sentences("Version 2.5 is out... Try it.") == ["Version 2.5 is out... ", "Try it."]


def test_unclosed_fence_and_edge_inputs():
    for doc in ["```\ncode to the end", "", "\n\n", "just text", "# ", "|a|b|\n|-|-|", "- ", "> ",
                "a\r\nb\r\n\r\nc", "<!-- x\ny -->\ntext", "   \n\t\n", "[x](y", "`unclosed code"]:
        assert rebuild(segment(doc)) == doc
        assert rebuild(segment_plain(doc)) == doc
    assert [s.translate for s in segment("```\ncode. Yes.\n")] == [False]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list("ab .!?\n#-*|`[]()>:1가나 \t~_<") + ["```", "http://x.y", "\r\n", "    ",
                                                                      "<!--", "-->", "---\n", "\\|"]),
                max_size=40).map("".join))
def test_roundtrip_property(s):
    assert rebuild(segment(s)) == s
    assert rebuild(segment_plain(s)) == s
    for seg in segment(s):
        assert isinstance(seg, Segment) and seg.text


# ---- languages, prompts, glossary ----

def test_languages():
    assert language("ko") is language("kor_Hang") is language("Korean") is language("한국어") is LANGUAGES["ko"]
    assert language("ENGLISH").code == "en" and language("eng_Latn").code == "en"
    for code in ["en", "ko", "ja", "zh", "ar", "fr", "de", "es", "pt"]:
        assert language(code).code == code
    with pytest.raises(ValueError) as ei:
        language("klingon")
    assert "ko (kor_Hang, Korean)" in str(ei.value) and "en (eng_Latn, English)" in str(ei.value)


def test_detect_language():
    assert detect_language("The weather is nice today.") == "en"
    assert detect_language("오늘 날씨가 좋네요.") == "ko"
    assert detect_language("LFM2 모델은 빠릅니다.") == "ko"  # Hangul with a Latin name
    assert detect_language("今日はいい天気ですね。") == "ja"
    assert detect_language("今天天气很好。") == "zh"
    assert detect_language("الطقس جميل اليوم") == "ar"
    assert detect_language("Le chat est sur la table et il dort.") == "fr"
    assert detect_language("Der Hund ist nicht in dem Haus und schläft.") == "de"
    assert detect_language("El perro está en la casa con los niños.") == "es"
    assert detect_language("123 !?") is None


def test_system_prompt():
    assert system_prompt("ko") == "Translate to Korean."
    assert system_prompt("kor_Hang") == "Translate to Korean."
    assert system_prompt("en") == "Translate to English."
    assert system_prompt("ko", formality="polite") == "Translate to Korean.\nUse polite Korean (존댓말, -요/-습니다 endings)."
    assert system_prompt("fr", formality="casual") == "Translate to French.\nUse a casual, informal register in French."
    assert system_prompt("ko", glossary={"Liquid AI": "리퀴드 AI"}) == (
        "Translate to Korean.\nUse these translations for the following terms:\nLiquid AI = 리퀴드 AI")
    with pytest.raises(ValueError, match="formality"):
        system_prompt("ko", formality="rude")


def test_fake_model_is_a_translation_model(fake):
    from liquidlfm.translate import TranslationModel
    from liquidlfm.translate.translator import TranslationTokenizer

    assert isinstance(fake, TranslationModel) and isinstance(fake.tokenizer, TranslationTokenizer)


@pytest.mark.reference
def test_prompt_is_exactly_the_chat_template(fake, template):
    from transformers.utils.chat_template_utils import render_jinja_template

    t = Translator(fake)
    for text, target, kw in [("The weather is nice today.", "ko", {}), ("오늘 날씨가 좋네요.", "en", {}),
                             ("Liquid AI builds LFMs.", "ko", {"formality": "polite",
                                                               "glossary": {"Liquid AI": "리퀴드 AI"}})]:
        sysmsg = system_prompt(target, **kw)
        ref = render_jinja_template(conversations=[[{"role": "system", "content": sysmsg},
                                                    {"role": "user", "content": text}]],
                                    chat_template=template, add_generation_prompt=True,
                                    bos_token="<|startoftext|>", eos_token="<|im_end|>")[0][0]
        assert t.render(text, target, **kw) == ref
        assert ref == f"<|startoftext|><|im_start|>system\n{sysmsg}<|im_end|>\n<|im_start|>user\n{text}<|im_end|>\n" \
                      "<|im_start|>assistant\n"
        ids, _ = t._prompt_ids(text, target, kw.get("formality"), kw.get("glossary"))
        assert ids == fake.tokenizer.encode(ref, add_special_tokens=False)
        assert ids.count(1) == 1 and ids[0] == 1  # exactly one BOS


def test_prompt_uses_models_apply_chat_template(fake):
    calls = []

    def apply(messages, add_generation_prompt=True):
        calls.append(messages)
        return "X" + messages[0]["content"] + "|" + messages[1]["content"] + "<|im_start|>assistant\n"
    fake.apply_chat_template = apply
    t = Translator(fake)
    assert t.render("hi", "ko") == "XTranslate to Korean.|hi<|im_start|>assistant\n"
    assert calls[0] == [{"role": "system", "content": "Translate to Korean."}, {"role": "user", "content": "hi"}]


def test_glossary_file(tmp_path):
    p = tmp_path / "g.tsv"
    p.write_text("# comment\nLiquid AI\t리퀴드 AI\nmodel = 모델\n", encoding="utf-8")
    assert load_glossary(str(p)) == {"Liquid AI": "리퀴드 AI", "model": "모델"}
    j = tmp_path / "g.json"
    j.write_text('{"LFM": "엘에프엠"}', encoding="utf-8")
    assert load_glossary(str(j)) == {"LFM": "엘에프엠"}
    bad = tmp_path / "bad.txt"
    bad.write_text("no separator here\n")
    with pytest.raises(ValueError, match="bad.txt:1"):
        load_glossary(str(bad))


# ---- translating (fake model: output = upper-cased input) ----

def test_translate_document_rebuilds_structure(fake):
    out = translate(DOC, "ko", model=fake)
    expected = rebuild(segment(DOC), lambda s: s.upper() if detect_language(s) != "ko" else s)
    # wrapped lines inside one sentence are sent as one line
    expected = expected.replace("THIS LINE WRAPS\nONTO THE NEXT ONE.", "THIS LINE WRAPS ONTO THE NEXT ONE.")
    expected = expected.replace("SECOND ITEM\n  CONTINUES HERE.", "SECOND ITEM CONTINUES HERE.")
    assert out == expected
    assert "오늘 날씨가 좋네요." in out  # already Korean: kept, not sent to the model
    assert 'print("hello. World")' in out


def test_list_keeps_order_and_stream_in_order(fake):
    items = ["first sentence", "second one. And more.", "third", "# heading\n\ntext"]
    assert translate(items, "ko", model=fake) == ["FIRST SENTENCE", "SECOND ONE. AND MORE.", "THIRD",
                                                  "# HEADING\n\nTEXT"]
    assert list(translate(items, "ko", model=fake, stream=True)) == translate(items, "ko", model=fake)
    doc = "Alpha one. Beta two.\n\n- gamma\n- delta\n"
    chunks = list(translate(doc, "ko", model=fake, stream=True))
    assert chunks == ["ALPHA ONE.", " ", "BETA TWO.", "\n\n- ", "GAMMA", "\n- ", "DELTA", "\n"]
    assert "".join(chunks) == translate(doc, "ko", model=fake)


def test_stream_is_lazy(fake):
    calls = []
    fake.transform = lambda s: (calls.append(s) if s not in calls else None, s.upper())[1]
    it = translate("One. Two. Three.", "ko", model=fake, stream=True)
    assert calls == []
    assert next(it) == "ONE." and calls == ["One."]
    assert next(it) == " " and calls == ["One."]
    assert next(it) == "TWO." and calls == ["One.", "Two."]


def test_prefix_state_reused(fake):
    fake.prefilled.clear()
    t = Translator(fake)
    t.translate_piece("Hello there.", "ko")
    t.translate_piece("Another sentence.", "ko")
    prefix = len(fake.tokenizer.encode(t.render("\0", "ko").split("\0")[0], add_special_tokens=False))
    # first call prefills the prefix, then the rest; the second only its own tokens
    n_rest = len(fake.tokenizer.encode(t.render("Another sentence.", "ko"), add_special_tokens=False)) - prefix
    assert fake.prefilled[0] == prefix and fake.prefilled[-1] == n_rest
    assert t.translate_piece("Third one.", "ko") == ("THIRD ONE.", "stop")


def test_source_target_and_passthrough(fake):
    assert translate("오늘 날씨가 좋네요.", "ko", model=fake) == "오늘 날씨가 좋네요."  # already Korean
    assert translate("오늘 날씨가 좋네요.", "en", model=fake) == "오늘 날씨가 좋네요.".upper()
    # an explicit source turns detection off
    assert translate("hello", "en", model=fake, source="ko") == "HELLO"
    assert translate("hello", "kor_Hang", model=fake) == "HELLO"
    assert translate("hello", "Korean", model=fake) == "HELLO"


def test_glossary_and_formality_reach_the_prompt(fake):
    seen = []
    t = Translator(fake)
    orig = t.render
    t.render = lambda text, target, **kw: (seen.append(orig(text, target, **kw)), seen[-1])[1]
    list(t.iter_translate("Liquid AI is here. Nothing else.", "ko", formality="polite",
                          glossary={"Liquid AI": "리퀴드 AI", "absent": "없음"}))
    first = [p for p in seen if "user\nLiquid AI is here." in p][0]
    assert "Liquid AI = 리퀴드 AI" in first and "absent" not in first and "존댓말" in first
    second = [p for p in seen if "user\nNothing else." in p][0]
    assert "Liquid AI = " not in second  # only terms that occur in the piece


def test_errors_are_clear(fake):
    with pytest.raises(ValueError, match="unknown language 'xx'.*ko \\(kor_Hang, Korean\\)"):
        translate("hi", "xx", model=fake)
    with pytest.raises(ValueError, match="unknown language"):
        translate("hi", "ko", model=fake, source="elvish")
    with pytest.raises(ValueError, match="empty text"):
        translate("", "ko", model=fake)
    with pytest.raises(ValueError, match="empty text"):
        translate("  \n", "ko", model=fake)
    with pytest.raises(ValueError, match="list item 1"):
        translate(["ok", ""], "ko", model=fake)
    with pytest.raises(ValueError, match="empty list"):
        translate([], "ko", model=fake)
    with pytest.raises(TypeError, match="list item 0 is int"):
        translate([3], "ko", model=fake)
    with pytest.raises(TypeError):
        translate(b"bytes", "ko", model=fake)
    with pytest.raises(ValueError, match="formality"):
        translate("hi", "ko", model=fake, formality="stiff")
    with pytest.raises(ValueError, match="max_tokens"):
        translate("hi", "ko", model=fake, max_tokens=0)
    with pytest.raises(TypeError, match="glossary"):
        translate("hi", "ko", model=fake, glossary={"a": 1})


def test_truncation_is_never_silent(fake):
    with pytest.warns(TranslationTruncatedWarning, match="max_tokens"):
        out = translate("A rather long sentence here.", "ko", model=fake, max_tokens=5)
    assert out == "A RAT"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert translate("Short.", "ko", model=fake, max_tokens=50) == "SHORT."


def test_context_full_split_then_error(fake):
    t = Translator(fake, n_ctx=160)
    long = "one two three four five six seven, eight nine ten eleven twelve, thirteen fourteen fifteen sixteen"
    out = "".join(t.iter_translate(long, "ko"))
    # split at clause/word boundaries to fit, each part translated, joined with spaces
    assert out.replace(" ", "") == long.upper().replace(" ", "")
    with pytest.raises(liquidlfm.ContextFullError, match="cannot fit the 160-token context"):
        "".join(t.iter_translate("x" * 200, "ko"))
    t2 = Translator(fake, n_ctx=40)  # not even the prompt fits
    with pytest.raises(liquidlfm.ContextFullError):
        "".join(t2.iter_translate("Hello.", "ko"))


def _fits(t, part, formality, glossary, max_tokens=None):
    """part's whole prompt (register and glossary lines included) leaves room to translate it."""
    ids, _ = t._prompt_ids(part, "ko", formality, glossary_for(part, glossary))
    room = len(t._encode(part)) + 8 if max_tokens is None else min(max_tokens, len(t._encode(part)) + 8)
    return len(ids) + room <= t.n_ctx


@pytest.mark.parametrize("formality", [None, "polite"])
def test_long_text_with_a_large_glossary_fits_the_context(fake, formality):
    glossary = {f"term{i}": f"용어{i}" for i in range(300)}
    glossary["Liquid AI"] = "리퀴드 AI"
    text = " ".join(f"term{i}" + (" Liquid AI" if i % 7 == 0 else "") for i in range(300)) + "."
    t = Translator(fake, n_ctx=512)     # the glossary lines of the whole text alone take ~4000 tokens
    parts = t._fit(text, "ko", formality, glossary)
    assert len(parts) > 1 and " ".join(parts) == text
    for part in parts:                  # each part fits with its own terms' lines, no term is cut
        assert _fits(t, part, formality, glossary), part
        assert not part.startswith("AI") and not part.endswith("Liquid")
        assert all(f"{k} = {v}" in t.render(part, "ko", formality=formality, glossary=glossary_for(part, glossary))
                   for k, v in glossary_for(part, glossary).items())
    # the middle of this text is inside the term: the split goes next to it
    parts = Translator(fake, n_ctx=150)._fit("alpha beta gamma Liquid AI delta epsilon zeta", "ko", formality=None,
                                             glossary={"Liquid AI": "리퀴드 AI"})
    assert len(parts) > 1 and any("Liquid AI" in p for p in parts)
    out = translate(text, "ko", model=fake, glossary=glossary, formality=formality, n_ctx=512, max_tokens=10_000)
    assert out == text.upper()          # every part translated in a context that held it (the fake refuses more)


def test_glossary_too_large_for_any_piece_fails_clearly(fake):
    huge = {"Liquid AI": "리퀴드 AI " * 100}
    with pytest.raises(liquidlfm.ContextFullError, match=r"glossary lines for the 1 term\(s\) in 'Liquid AI' "
                                                         r"\('Liquid AI'\) take \d+ tokens.*context holds 512"):
        translate("Liquid AI is a company.", "ko", model=fake, glossary=huge, n_ctx=512)
    # before: the text was split inside the term, and the parts went out without its glossary line
    t = Translator(fake, n_ctx=512)
    with pytest.raises(liquidlfm.ContextFullError, match="glossary"):
        t._fit("Liquid AI", "ko", None, huge)
    # the register line counts too: "Hi." fits 100 tokens with the bare prompt, not with the polite line
    assert Translator(fake, n_ctx=100).translate_piece("Hi.", "ko") == ("HI.", "stop")
    with pytest.raises(liquidlfm.ContextFullError, match="the prompt around a piece .* takes 106 tokens"):
        Translator(fake, n_ctx=100).translate_piece("Hi.", "ko", formality="polite")


def test_model_loaded_once_per_path(monkeypatch, tmp_path, fake):
    loads = []
    import liquidlfm.hub as hub
    monkeypatch.setattr(hub, "resolve_model", lambda spec=None, purpose="translate": str(tmp_path / "m.gguf"))
    import types, sys
    fake_mod = types.ModuleType("liquidlfm.model")
    fake_mod.load = lambda path: (loads.append(path), fake)[1]
    monkeypatch.setitem(sys.modules, "liquidlfm.model", fake_mod)
    monkeypatch.setattr(tr_mod, "_MODELS", {})
    assert translate("hello", "ko") == "HELLO"
    assert translate(["a", "b"], "ko", model="whatever") == ["A", "B"]
    assert loads == [str(tmp_path / "m.gguf")]


def test_translate_is_a_plain_function(fake):
    import types

    import liquidlfm.translate as m  # the package attribute is the function, not the module
    assert isinstance(m, types.FunctionType) and m is translate and m("hi", "ko", model=fake) == "HI"
    assert liquidlfm.translate("hi", "ko", model=fake) == "HI"
    assert type(tr_mod) is types.ModuleType and not callable(tr_mod)  # no module-class swapping


def test_batch_translates_repeated_pieces_once(fake):
    stats = tr_mod._translator_for(fake).stats
    items = ["Same sentence. Other one.", "Same sentence.", "- Same sentence."]
    n0 = stats["segments"]
    assert translate(items, "ko", model=fake) == ["SAME SENTENCE. OTHER ONE.", "SAME SENTENCE.", "- SAME SENTENCE."]
    assert stats["segments"] - n0 == 2  # "Same sentence." once, "Other one." once
    n0 = stats["segments"]
    assert translate(items, "ko", model=fake, batch=False)[2] == "- SAME SENTENCE."
    assert stats["segments"] - n0 == 4
