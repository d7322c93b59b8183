"""The KoEn model as the Korean<->English default (issue 17): the registry, the published prompt byte for
byte (rendered with LFM2's real chat template), the automatic direction rule, and model resolution
for each pair against a loopback fake of the Hugging Face Hub (no network)."""
import os
from pathlib import Path

import jinja2
import pytest

import liquidlfm
from liquidlfm import hub
from liquidlfm.translate import (REGISTRY, Translator, auto_target, has_hangul, model_for, prompt_format_for,
                                 resolve_translation_model, system_prompt, translate)
from liquidlfm.translate.models import GENERAL, KOEN, entry_for
from tests.fixtures.fake_lm import FakeModel
from tests.fixtures.hub_server import FakeHub, isolate_hub, tiny_gguf_bytes

KOEN_REPO = "gyung/lfm2-1.2b-koen-mt-v8-rl-10k-merged-GGUF"
KOEN_FILES = {q: f"lfm2-1.2b-koen-mt-v8-rl-10k-merged-{q}.gguf" for q in ("Q8_0", "Q5_K_M", "Q4_K_M")}


@pytest.fixture(scope="module")
def template(shared_dir):
    return (shared_dir / "data" / "lfm2-tokenizer" / "chat_template.jinja").read_text()


@pytest.fixture
def koen_fake(template, tmp_path):
    """A scripted model loaded from a file named like the KoEn Q8_0 GGUF (what the registry goes by)."""
    fake = FakeModel(template)
    fake.path = tmp_path / KOEN_FILES["Q8_0"]
    return fake


def _jinja(template, messages):
    """The chat template rendered by jinja2 itself, as transformers and llama.cpp's jinja mode do."""
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(template).render(messages=messages, add_generation_prompt=True,
                                            bos_token="<|startoftext|>", eos_token="<|im_end|>")


# ---- the registry ----

def test_registry_names_the_published_files():
    assert KOEN.repo == KOEN_REPO and KOEN.files == KOEN_FILES and KOEN.default_quant == "Q8_0"
    assert KOEN.spec() == f"{KOEN_REPO}:{KOEN_FILES['Q8_0']}"
    assert KOEN.spec("q4_k_m") == f"{KOEN_REPO}:{KOEN_FILES['Q4_K_M']}"
    with pytest.raises(ValueError, match="no 'Q6_K' file; quants: Q8_0, Q5_K_M, Q4_K_M"):
        KOEN.spec("Q6_K")
    assert GENERAL.spec() == "LiquidAI/LFM2-350M-GGUF:LFM2-350M-Q4_0.gguf"
    assert GENERAL.spec("Q6_K") == "LiquidAI/LFM2-350M-GGUF:Q6_K"  # the hub matches the repo's list
    assert KOEN.published["Q8_0"] == (34.39, 12.93) and KOEN.published["Q4_K_M"] == (33.97, 12.56)
    assert set(REGISTRY) == {"koen-v8", "general"}
    assert hub.DEFAULT_MODELS["translate"] == (KOEN_REPO, KOEN_FILES["Q8_0"])
    assert hub.DEFAULT_MODELS["translate-general"] == ("LiquidAI/LFM2-350M-GGUF", "LFM2-350M-Q4_0.gguf")


def test_model_for_each_pair():
    assert model_for("en", "ko") is KOEN and model_for("ko", "en") is KOEN
    assert model_for(None, "ko") is KOEN and model_for(None, "en") is KOEN and model_for(None, None) is KOEN
    assert model_for("en", "ja") is GENERAL and model_for("ja", "ko") is GENERAL and model_for(None, "fr") is GENERAL
    assert model_for("en", "ko", fast=True) is GENERAL and model_for(None, None, fast=True) is GENERAL


def test_prompt_format_by_repo_or_file_name(tmp_path):
    for spec in [KOEN_REPO, f"{KOEN_REPO}:Q4_K_M", f"{KOEN_REPO}:{KOEN_FILES['Q5_K_M']}@main",
                 f"/models/{KOEN_FILES['Q4_K_M']}", "C:\\models\\" + KOEN_FILES["Q8_0"],
                 "/m/lfm2-1.2b-koen-mt-v8-rl-10k-merged-F16.gguf"]:
        assert prompt_format_for(spec) == "koen", spec
        assert entry_for(spec) is KOEN
    for spec in ["LiquidAI/LFM2-350M-GGUF", "/m/LFM2-350M-Q8_0.gguf"]:
        assert prompt_format_for(spec) == "liquid" and entry_for(spec) is GENERAL
    assert prompt_format_for("/m/other.gguf") == "liquid" and entry_for("/m/other.gguf") is None
    assert prompt_format_for(None) == "liquid" and prompt_format_for(object()) == "liquid"


# ---- the prompt, byte for byte ----

@pytest.mark.parametrize("text,target,line", [
    ("The weather is nice today.", "ko", "Translate the following text to Korean."),
    ("오늘 날씨가 좋네요.", "en", "Translate the following text to English."),
    ("  spaces kept\tas given ", "ko", "Translate the following text to Korean."),
])
def test_default_prompt_is_the_published_one(koen_fake, template, text, target, line):
    t = Translator(koen_fake)
    assert t.prompt_format == "koen"
    expected = (f"<|startoftext|><|im_start|>system\n{line}<|im_end|>\n<|im_start|>user\n{text}<|im_end|>\n"
                "<|im_start|>assistant\n")
    assert t.render(text, target) == expected
    assert _jinja(template, [{"role": "system", "content": line}, {"role": "user", "content": text}]) == expected
    assert system_prompt(target, prompt_format="koen") == line
    # the generation stops at <|im_end|> (id 7 in LFM2's vocabulary)
    assert 7 in t.stop_ids


def test_glossary_and_formality_are_extra_lines_only_when_asked(koen_fake):
    t = Translator(koen_fake)
    assert t.render("Liquid AI is here.", "ko", formality="polite", glossary={"Liquid AI": "리퀴드 AI"}) == (
        "<|startoftext|><|im_start|>system\nTranslate the following text to Korean.\n"
        "Use polite Korean (존댓말, -요/-습니다 endings).\nUse these translations for the following terms:\n"
        "Liquid AI = 리퀴드 AI<|im_end|>\n<|im_start|>user\nLiquid AI is here.<|im_end|>\n<|im_start|>assistant\n")
    seen = []
    orig = t.render
    t.render = lambda text, target, **kw: (seen.append(orig(text, target, **kw)), seen[-1])[1]
    list(t.iter_translate("Liquid AI is here. Nothing else.", "ko", glossary={"Liquid AI": "리퀴드 AI"}))
    plain = [p for p in seen if "user\nNothing else." in p][0]
    assert "system\nTranslate the following text to Korean.<|im_end|>" in plain  # no glossary line there


def test_prompt_format_override_and_errors(template):
    fake = FakeModel(template)
    assert Translator(fake).prompt_format == "liquid"  # an unknown model: Liquid's style
    assert Translator(fake, prompt_format="koen").render("hi", "ko").startswith(
        "<|startoftext|><|im_start|>system\nTranslate the following text to Korean.<|im_end|>")
    with pytest.raises(ValueError, match="prompt_format must be one of koen, liquid"):
        Translator(fake, prompt_format="chatml")
    with pytest.raises(ValueError, match="prompt_format"):
        system_prompt("ko", prompt_format="x")


# ---- the direction rule ----

def test_hangul_ranges():
    for cp in (0xAC00, 0xD7AF, 0xD55C, 0x1100, 0x11FF, 0x3130, 0x318F, 0x3131):
        assert has_hangul("abc " + chr(cp)), hex(cp)
    for cp in (0xABFF, 0xD7B0, 0x10FF, 0x1200, 0x312F, 0x3190, 0x3042, 0x4E00):
        assert not has_hangul("abc " + chr(cp)), hex(cp)
    assert auto_target("오늘 날씨가 좋네요.") == "en"
    assert auto_target("LFM2 모델") == "en"  # any Hangul at all
    assert auto_target("The weather is nice today.") == "ko"
    assert auto_target("今日はいい天気") == "ko"  # no Hangul: into Korean


def test_translate_picks_the_direction_per_text(koen_fake):
    t = Translator(koen_fake)
    prompts = []
    orig = t.render
    t.render = lambda text, target, **kw: (prompts.append((text, target)), orig(text, target, **kw))[1]
    out = [p for _, p in t.iter_documents(["Hello there.", "안녕하세요.", "Mixed 한국어 text."], None)]
    assert out == ["HELLO THERE.", "안녕하세요.", "Mixed 한국어 text."]
    assert ("Hello there.", "ko") in prompts and ("안녕하세요.", "en") in prompts
    # Hangul -> into English; this piece reads as English already (detect_language), so it is kept
    assert not any(p[0].startswith("Mixed") for p in prompts)
    # through translate(): target omitted
    assert translate("Good morning.", model=koen_fake) == "GOOD MORNING."
    assert translate(["Good morning.", "좋은 아침."], model=koen_fake) == ["GOOD MORNING.", "좋은 아침."]
    # an explicit target still wins: English text to English is kept as it is
    assert translate("Good morning.", "en", model=koen_fake) == "Good morning."


# ---- model resolution for each pair (loopback hub, no network) ----

@pytest.fixture
def hub_env(monkeypatch, tmp_path):
    return isolate_hub(monkeypatch, tmp_path)


def test_each_pair_resolves_its_model(hub_env, monkeypatch, tmp_path):
    data = tiny_gguf_bytes(tmp_path)
    koen = {f: data + bytes([i]) * 8 for i, f in enumerate(KOEN_FILES.values())}  # distinct content per file
    general = {"LFM2-350M-Q4_0.gguf": data + b"g" * 8}
    with FakeHub({KOEN_REPO: koen, "LiquidAI/LFM2-350M-GGUF": general}) as srv:
        monkeypatch.setenv("HF_ENDPOINT", srv.url)
        assert Path(resolve_translation_model()).name == KOEN_FILES["Q8_0"]
        assert Path(resolve_translation_model(source="en", target="ko")).name == KOEN_FILES["Q8_0"]
        assert Path(resolve_translation_model(target="en")).name == KOEN_FILES["Q8_0"]
        assert Path(resolve_translation_model(target="ko", quant="Q4_K_M")).name == KOEN_FILES["Q4_K_M"]
        assert Path(resolve_translation_model(KOEN_REPO, quant="Q5_K_M")).name == KOEN_FILES["Q5_K_M"]
        assert Path(resolve_translation_model(KOEN_REPO)).name == KOEN_FILES["Q8_0"]  # the repo's default file
        assert Path(resolve_translation_model(source="en", target="ja")).name == "LFM2-350M-Q4_0.gguf"
        assert Path(resolve_translation_model(target="ko", fast=True)).name == "LFM2-350M-Q4_0.gguf"
        assert srv.downloads(KOEN_FILES["Q8_0"]) == 1 and srv.downloads(KOEN_FILES["Q4_K_M"]) == 1
        # everything is now cached: offline works, no request at all
        monkeypatch.setenv("LIQUIDLFM_OFFLINE", "1")
        n = len(srv.requests)
        assert Path(resolve_translation_model()).read_bytes() == koen[KOEN_FILES["Q8_0"]]
        assert Path(hub.resolve_model(KOEN_REPO)).name == KOEN_FILES["Q8_0"]
        assert len(srv.requests) == n
    with pytest.raises(ValueError, match="not a repo id"):
        resolve_translation_model(str(tmp_path / "x.gguf"), quant="Q8_0")
    with pytest.raises(ValueError, match="already names a file"):
        resolve_translation_model(f"{KOEN_REPO}:Q8_0", quant="Q4_K_M")


def test_offline_message_names_the_koen_file(hub_env, monkeypatch):
    monkeypatch.setenv("LIQUIDLFM_OFFLINE", "1")
    with pytest.raises(liquidlfm.ModelNotFoundError) as ei:
        translate("The weather is nice today.", "ko")
    msg = str(ei.value)
    assert f"liquidlfm download {KOEN_REPO}:{KOEN_FILES['Q8_0']}" in msg
    assert f"hf download {KOEN_REPO} {KOEN_FILES['Q8_0']} --cache-dir {hub_env}" in msg
    assert str(hub_env / KOEN_FILES["Q8_0"]) in msg and "LIQUIDLFM_MODEL" in msg
    with pytest.raises(liquidlfm.ModelNotFoundError, match="LFM2-350M-Q4_0.gguf"):
        translate("The weather is nice today.", "ja")
    with pytest.raises(liquidlfm.ModelNotFoundError, match=KOEN_FILES["Q4_K_M"]):
        translate("The weather is nice today.", quant="Q4_K_M")


def test_cached_koen_file_placed_by_hand_is_found(hub_env, monkeypatch, tmp_path):
    """The offline message says to place the file in the cache folder: that works, and it is prompted
    the KoEn way (by its name)."""
    hub_env.mkdir(parents=True)
    (hub_env / KOEN_FILES["Q8_0"]).write_bytes(tiny_gguf_bytes(tmp_path))
    monkeypatch.setenv("LIQUIDLFM_OFFLINE", "1")
    path = resolve_translation_model(target="ko")
    assert path == str(hub_env / KOEN_FILES["Q8_0"]) and prompt_format_for(path) == "koen"
    assert os.environ.get("LIQUIDLFM_MODEL") is None


def test_without_network_a_cached_other_default_is_used(hub_env, monkeypatch, tmp_path, capsys):
    """Offline with only the general model cached, Korean<->English falls back to it (said on stderr)
    and prompts it the general way; online it would download the KoEn file instead (above)."""
    hub_env.mkdir(parents=True)
    (hub_env / "LFM2-350M-Q4_0.gguf").write_bytes(tiny_gguf_bytes(tmp_path))
    monkeypatch.setenv("LIQUIDLFM_OFFLINE", "1")
    path = resolve_translation_model(target="ko")
    assert Path(path).name == "LFM2-350M-Q4_0.gguf" and prompt_format_for(path) == "liquid"
    assert f"{KOEN_REPO} ({KOEN_FILES['Q8_0']}) is not cached" in capsys.readouterr().err
