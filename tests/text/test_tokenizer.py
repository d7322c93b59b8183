"""Tokenizer: ids identical to Hugging Face `tokenizers` on the same tokenizer.json (the LFM2-like
fixture, see tests/fixtures/tokenizers.py — the real LFM2 tokenizer.json is not available here),
round trips, streaming decode, and clear errors."""
import json
import random
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import liquidlfm
from liquidlfm import _core
from liquidlfm.tokenizer import StreamDecoder, Tokenizer
from tests.fixtures.tokenizers import write_tokenizer_files

tokenizers = pytest.importorskip("tokenizers")


@pytest.fixture(scope="session")
def tok_dir(tmp_path_factory):
    return write_tokenizer_files(tmp_path_factory.mktemp("lfm2_tok"))


@pytest.fixture(scope="session")
def tok(tok_dir):
    return Tokenizer.from_dir(tok_dir)


@pytest.fixture(scope="session")
def hf(tok_dir):
    return tokenizers.Tokenizer.from_file(str(tok_dir / "tokenizer.json"))


@pytest.fixture(scope="session")
def hf_plain(tok_dir):
    """HF with special-token text treated as plain text (= our parse_special=False)."""
    t = tokenizers.Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
    t.encode_special_tokens = True
    return t


@pytest.fixture(scope="session")
def parity_records(shared_dir):
    with open(shared_dir / "data" / "text" / "parity.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def assert_same(tok, hf, hf_plain, text):
    for add in (True, False):
        want = hf.encode(text, add_special_tokens=add).ids
        assert tok.encode(text, add_special_tokens=add) == want, (text, add)
    want = hf_plain.encode(text, add_special_tokens=False).ids
    assert tok.encode(text, add_special_tokens=False, parse_special=False) == want, text


# ---- construction ----

def test_from_dir_special_ids(tok):
    assert tok.vocab_size == 1024
    assert (tok.bos_id, tok.eos_id, tok.pad_id) == (1, 7, 0)
    assert tok.add_bos_token and not tok.add_eos_token
    assert tok.id_to_token(6) == "<|im_start|>" and tok.token_to_id("<|im_end|>") == 7
    assert tok.id_to_token(13) == "<|tool_response_end|>"
    assert set(range(32)) == set(tok.special_ids)
    assert tok.token_type(1023) == 4  # "python": non-special added token -> USER_DEFINED
    assert tok.token_bytes(tok.token_to_id("Ġthe")) == b" the"
    assert tok.token_bytes(6) == b"<|im_start|>"


def test_from_tokenizer_json_dict_and_path(tok_dir, tok):
    data = json.loads((tok_dir / "tokenizer.json").read_text(encoding="utf-8"))
    a = Tokenizer.from_tokenizer_json(data)
    b = Tokenizer.from_tokenizer_json(tok_dir / "tokenizer.json")
    c = Tokenizer.load(tok_dir)
    s = "Hello <|im_start|>user\nworld"
    assert a.encode(s) == b.encode(s) == c.encode(s) == tok.encode(s)
    assert a.bos_id == 1  # from the TemplateProcessing post-processor when there is no tokenizer_config
    assert a.eos_id is None  # tokenizer.json alone does not say which token ends a turn


@pytest.mark.reference
def test_same_ids_as_transformers(tok_dir, tok, parity_records):
    transformers = pytest.importorskip("transformers")
    at = transformers.AutoTokenizer.from_pretrained(str(tok_dir))
    for r in parity_records[::25]:
        ids = tok.encode(r["text"])
        assert ids == at(r["text"])["input_ids"]
        assert tok.decode(ids) == at.decode(ids)  # transformers 5 applies no clean-up here either
        assert tok.decode(ids, skip_special_tokens=True) == at.decode(ids, skip_special_tokens=True)
    assert (at.bos_token_id, at.eos_token_id, at.pad_token_id) == (tok.bos_id, tok.eos_id, tok.pad_id)


# ---- parity with HF tokenizers ----

def test_parity_jsonl_every_record(tok, hf, hf_plain, parity_records):
    assert len(parity_records) == 725
    for r in parity_records:
        assert_same(tok, hf, hf_plain, r["text"])


@pytest.mark.parametrize("vocab_size", [300, 4096])
def test_parity_other_vocab_sizes(tmp_path, vocab_size, parity_records):
    """A tiny vocabulary (bytes only, no merges) and a larger one (longer merge chains)."""
    d = write_tokenizer_files(tmp_path, vocab_size=vocab_size)
    ours, ref = Tokenizer.from_dir(d), tokenizers.Tokenizer.from_file(str(d / "tokenizer.json"))
    assert ours.vocab_size == vocab_size
    for text in [r["text"] for r in parity_records] + ADVERSARIAL:
        assert ours.encode(text) == ref.encode(text).ids, text


@pytest.mark.parametrize("ignore_merges", [True, False])
def test_ignore_merges_flag(tok_dir, parity_records, ignore_merges):
    """A vocab entry no merge chain reaches ("Ġzzqx") is emitted whole only with ignore_merges."""
    data = json.loads((tok_dir / "tokenizer.json").read_text(encoding="utf-8"))
    data["model"]["ignore_merges"] = ignore_merges
    data["model"]["vocab"]["Ġzzqx"] = 1023  # and "python" (an added token) moves to 1024
    (py,) = [a for a in data["added_tokens"] if a["content"] == "python"]
    py["id"] = 1024
    ours = Tokenizer.from_tokenizer_json(data)
    ref = tokenizers.Tokenizer.from_str(json.dumps(data))
    assert ours.ignore_merges == ignore_merges
    ids = ours.encode("a zzqx b", add_special_tokens=False)
    assert (1023 in ids) == ignore_merges
    assert ours.encode("python", add_special_tokens=False) == [1024]
    for text in [r["text"] for r in parity_records[::3]] + ADVERSARIAL + ["a zzqx b zzqxzzqx"]:
        assert ours.encode(text) == ref.encode(text).ids, text


def test_parity_jsonl_concatenated(tok, hf, parity_records):
    text = "\n".join(r["text"] for r in parity_records)
    assert tok.encode(text) == hf.encode(text).ids


ADVERSARIAL = [
    "",
    " ",
    "\n",
    "a",
    "안녕하세요, world! 🙂",
    "아리아스(Arias)는 2010년에 ...",
    # Hangul: precomposed, conjoining jamo (decomposed), compatibility jamo, halfwidth
    "한국어 \u1100\u1161\u11a8\u1100\u1161 \u3131\u314f \uffa1\uffc2 ᄀᄁᄂ ᅡᅢ ᆨᆩ",
    "漢字かな交じり文、中文标点。「引用」『二重』【括弧】〜",
    "𠀀𠀁𪜀 CJK ext B 𫝀 𬺰 𰀀 𱍐",
    # emoji: ZWJ families, skin tones, flags, keycaps, tags, variation selectors
    "👨‍👩‍👧‍👦 👩🏽‍💻 👍🏿👍🏻 🇰🇷🇺🇸🇯🇵 🏴󠁧󠁢󠁳󠁣󠁴󠁿 1️⃣ #️⃣ ❤️ ☺︎ 🏳️‍🌈",
    "🙂🙂🙂🙂🙂🙂🙂🙂🙂🙂",
    # combining marks
    "e\u0301 a\u0300\u0316 Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319 ñ n\u0303 \u0301start",
    "क्षत्रिय हिन्दी ภาษาไทย العَرَبِيَّة עִבְרִית",
    # whitespace runs
    " " * 100,
    "a" + " " * 37 + "b",
    "\n" * 50,
    "\r\n" * 20,
    "x \r\n y\r\r\n\n\rz \t\t\n \n",
    "\t\t\tdef f():\n\t\t\t\treturn 1\n",
    "  \u00a0\u00a0 \u3000\u3000x\u2028y\u2029z\u0085w\u001c\u001d\u001e\u001fv\u000b\u000c",
    " \n \n\n   \n",
    "trailing spaces   ",
    "   leading spaces",
    # digits
    "1234567890" * 5,
    "3.14159 1,000,000 $12.50 ٣٤٥ ١٢٣ ۱۲۳ ०१२ ௧௨௩ ½ ⅓ Ⅻ ⑳ 𝟏𝟐𝟑",
    # code
    "def add(a, b):\n    return a + b  # sum\n\nprint(add(1, 2))\n",
    "for (int i = 0; i < n; ++i) { x[i] += y[i] >> 2; } // C\n",
    "<div class=\"x\">&amp;&lt;&gt;</div> {{ jinja }} {% if %} ${VAR} $$ @@ ## ~~ ``` ''' \"\"\"",
    "if x != y && z >= 0 || w <= 1: pass\n\treturn [*a, **b]",
    # contractions in various cases (Oniguruma (?i) folds 'ſ' to 's')
    "I'm you're he's they've we'd she'll it's",
    "I'M YOU'RE HE'S THEY'VE WE'D SHE'LL IT'S",
    "I'm You'Re He'S They'vE we'D She'Ll iT'S 'S 'T 'RE 'VE 'M 'LL 'D",
    "'s's's 'ss ''s '''t x's'", "it'ſ it'ſs 'ﬆ 'ﬅ 'K 'K",
    "don't can't won't y'all 'tis o'clock rock'n'roll",
    # special-token text inside content
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|><|im_start|><|im_end|>",
    "text<|endoftext|>more<|pad|><|startoftext|>",
    "<|im_start|", "<|im_end|>>", "<<|im_end|>", "<|reserved_5|><|reserved_21|><|reserved_22|>",
    "<|tool_call_start|>[f(x=1)]<|tool_call_end|>",
    "python cpython pythonic Python PYTHON python3 pypython",
    # control characters, BOM, ZW chars, private use, noncharacters, max code point
    "\x00\x01\x02\x7f \x00x",
    "\ufeffbom \u200bzw\u200cj\u200dj \u2060",
    "\ue000\uf8ff \U000f0000 \U0010fffd \U0010ffff \ufffe\uffff",
    "\ufffd replacement",
    "𝒽𝑒𝓁𝓁𝑜 𝐁𝐨𝐥𝐝 ｆｕｌｌｗｉｄｔｈ Ａ１",
    "ǅungla ǈ ǋ ᾈ",  # titlecase letters
]


@pytest.mark.parametrize("text", ADVERSARIAL)
def test_parity_adversarial(tok, hf, hf_plain, text):
    assert_same(tok, hf, hf_plain, text)


POOL = (
    list("aAzZ09'’\"!?.,;:-_()[]{}<>|/\\ \t\n\r") + ["\r\n", "  ", "   ", "\u00a0", "\u3000", "\u0301", "\u200d"]
    + list("한국어가각각ㄱ中文字かカ") + ["🙂", "👩🏽‍💻", "🇰🇷", "👍🏿", "❤️"]
    + ["'s", "'S", "'re", "'LL", "'ſ", "<|im_start|>", "<|im_end|>", "<|pad|>", "python", "<|", "|>"]
    + ["123", "4567", "٣", "½", "def ", "return", " the", "ing", "é", "e\u0301", "\x00"]
)


def random_strings(seed, n, max_parts=40):
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        k = rnd.randint(1, max_parts)
        out.append("".join(rnd.choice(POOL) for _ in range(k)))
    return out


def test_parity_generated(tok, hf, hf_plain):
    for s in random_strings(1234, 2000):
        assert_same(tok, hf, hf_plain, s)


def test_parity_random_code_points(tok, hf, hf_plain):
    rnd = random.Random(7)
    for _ in range(300):
        chars = []
        for _ in range(rnd.randint(1, 60)):
            r = rnd.random()
            if r < 0.3:
                cp = rnd.randint(0x20, 0x7E)
            elif r < 0.6:
                cp = rnd.randint(0x80, 0xFFFF)
            else:
                cp = rnd.randint(0x10000, 0x10FFFF)
            if 0xD800 <= cp <= 0xDFFF:
                cp = 0x20
            chars.append(chr(cp))
        assert_same(tok, hf, hf_plain, "".join(chars))


def test_code_points_classified_like_hf(tok, hf):
    """Unicode scalar values in letter / digit / punctuation / space contexts: the pre-token split
    (Unicode 16.0 tables) and the ids match HF's Oniguruma. Every BMP code point, every 3rd one of
    planes 1-2, every 61st elsewhere (tools/gen_unicode_tables.py --check covers all of them)."""
    pre = tokenizers.pre_tokenizers.Split(
        tokenizers.Regex(liquidlfm.tokenizer.LFM2_PRETOKENIZER_PATTERN), behavior="isolated")
    cps = [c for c in range(0x10000) if not 0xD800 <= c <= 0xDFFF]
    cps += list(range(0x10000, 0x30000, 3)) + list(range(0x30000, 0x110000, 61))
    step = 8192
    for i in range(0, len(cps), step):
        text = "".join(f"a{chr(c)}1!{chr(c)}{chr(c)}! " for c in cps[i:i + step])
        want = [p.encode("utf-8") for p, _ in pre.pre_tokenize_str(text)]
        assert _core.pretokenize(text) == want, f"block starting U+{cps[i]:04X}"
    text = "".join(f"a{chr(c)}1 {chr(c)}{chr(c)}x" for c in cps[::17])
    assert tok.encode(text) == hf.encode(text).ids


def test_pretokenizer_splits_like_hf():
    """The pre-token boundaries themselves (stronger than ids, which BPE can make coincide)."""
    pre = tokenizers.pre_tokenizers.Split(
        tokenizers.Regex(liquidlfm.tokenizer.LFM2_PRETOKENIZER_PATTERN), behavior="isolated")
    extra = ["'ſx 'Sx 'ſſ 'REx 'LLx 'Dx x'tx", "a'b a'sb a'Sb A'LLB", "'\u017f\u017f'\u212a"]
    for text in ADVERSARIAL + extra + random_strings(5, 500):
        want = [p.encode("utf-8") for p, _ in pre.pre_tokenize_str(text)]
        assert _core.pretokenize(text) == want, text


def test_long_inputs(tok, hf):
    for text in ("a" * 100_000, "🙂" * 20_000, " " * 50_000 + "x", "1" * 30_001, "ab" * 40_000 + "\n" * 1000):
        assert tok.encode(text) == hf.encode(text).ids


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(POOL), max_size=30).map("".join))
def test_parity_hypothesis_pool(tok, hf, hf_plain, text):
    assert_same(tok, hf, hf_plain, text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=60))
def test_parity_hypothesis_any_text(tok, hf, hf_plain, text):
    # st.text() never yields surrogates
    assert_same(tok, hf, hf_plain, text)


# ---- round trips and decoding ----

@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_decode_encode_roundtrip(tok, text):
    assert tok.decode(tok.encode(text, add_special_tokens=False, parse_special=False)) == text
    ids = tok.encode(text)
    assert ids[0] == tok.bos_id
    assert tok.decode(ids) == "<|startoftext|>" + text


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 1023), max_size=40))
def test_decode_matches_hf_on_any_ids(tok, hf, ids):
    """Arbitrary id sequences (cut mid-character): same U+FFFD replacement as HF's decoder."""
    assert tok.decode(ids) == hf.decode(ids, skip_special_tokens=False)
    assert tok.decode(ids, skip_special_tokens=True) == hf.decode(ids, skip_special_tokens=True)


def stream(tok, ids, cuts, skip=False):
    dec = tok.stream_decoder(skip_special_tokens=skip)
    chunks, prev = [], 0
    for c in sorted(cuts) + [len(ids)]:
        chunks.append(dec.feed(ids[prev:c]))
        prev = c
    chunks.append(dec.flush())
    return chunks


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120), st.lists(st.integers(0, 200), max_size=10), st.booleans())
def test_stream_decode_joins_to_full_decode(tok, text, cuts, skip):
    ids = tok.encode(text)
    cuts = [min(c, len(ids)) for c in cuts]
    chunks = stream(tok, ids, cuts, skip)
    assert "".join(chunks) == tok.decode(ids, skip_special_tokens=skip)
    for c in chunks:
        assert "\ufffd" not in c or "\ufffd" in text  # never splits a character


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 1023), max_size=60), st.lists(st.integers(0, 60), max_size=10))
def test_stream_decode_any_ids(tok, ids, cuts):
    assert "".join(stream(tok, ids, cuts)) == tok.decode(ids)


def test_stream_decoder_korean_one_id_at_a_time(tok):
    text = "안녕하세요, 세계! 한국어 스트리밍 🙂👩🏽‍💻"
    ids = tok.encode(text, add_special_tokens=False)
    assert any(len(tok.token_bytes(i).decode("utf-8", "ignore").encode()) != len(tok.token_bytes(i)) for i in ids)
    dec = StreamDecoder(tok)
    chunks = [dec.feed(i) for i in ids]
    assert all("\ufffd" not in c for c in chunks)
    assert "".join(chunks) + dec.flush() == text
    dec2 = tok.stream_decoder()
    dec2.feed(ids[0])
    assert dec2.pending == tok.token_bytes(ids[0])  # the first byte of 안 alone is incomplete


def test_stream_decoder_flush_incomplete(tok):
    ids = tok.encode("안", add_special_tokens=False)
    dec = tok.stream_decoder()
    assert dec.feed(ids[:-1]) == ""
    assert dec.flush() == "\ufffd" == tok.decode(ids[:-1])


# ---- special tokens ----

def test_parse_special(tok):
    s = "<|im_start|>user\nhi<|im_end|>"
    on = tok.encode(s, add_special_tokens=False)
    off = tok.encode(s, add_special_tokens=False, parse_special=False)
    assert on[0] == 6 and on[-1] == 7
    assert 6 not in off and 7 not in off
    assert tok.decode(off) == tok.decode(on) == s
    assert tok.decode(on, skip_special_tokens=True) == "user\nhi"


def test_user_defined_token_always_split(tok, hf_plain):
    ids = tok.encode("import python", add_special_tokens=False, parse_special=False)
    assert ids[-1] == 1023
    assert ids == hf_plain.encode("import python", add_special_tokens=False).ids
    assert tok.decode([1023], skip_special_tokens=True) == "python"  # not a control token


def test_bytes_input_equals_str(tok):
    s = "바이트 input 🙂"
    assert tok.encode(s.encode("utf-8")) == tok.encode(s) == tok.encode(bytearray(s.encode()))


# ---- errors ----

def test_invalid_utf8_names_offset(tok):
    with pytest.raises(ValueError, match=r"invalid UTF-8 at byte offset 3 \(byte 0xFF\)"):
        tok.encode(b"abc\xffdef")
    for bad, off in ((b"\xc0\xaf", 0), (b"ok\xed\xa0\x80", 2), (b"\xf4\x90\x80\x80", 0), (b"abcd\xe2\x82", 4),
                     (b"\x80", 0), (b"x\xf0\x9f\x99", 1)):
        with pytest.raises(ValueError, match=f"byte offset {off} "):
            tok.encode(bad)


def test_lone_surrogate(tok, hf):
    with pytest.raises(UnicodeEncodeError, match="lone surrogate U\\+D800"):
        tok.encode("ok \ud800 no")
    with pytest.raises((TypeError, UnicodeEncodeError)):  # HF refuses it too (TypeError)
        hf.encode("ok \ud800 no")
    assert tok.encode("ok \ud800 no", errors="replace") == tok.encode("ok \ufffd no")
    # two lone surrogates that would pair in UTF-16 are still two replacement characters
    assert tok.encode("\ud83d\ude42", errors="replace") == tok.encode("\ufffd\ufffd")
    with pytest.raises(ValueError, match="errors must be"):
        tok.encode("\udc80", errors="ignore")


def test_out_of_range_ids(tok):
    for bad in (1024, -1, 2**40):
        with pytest.raises(ValueError, match="out of range"):
            tok.decode([5, bad])
        with pytest.raises(ValueError, match="out of range"):
            tok.token_bytes(bad)
        with pytest.raises(ValueError, match="out of range"):
            tok.id_to_token(bad)
    with pytest.raises(TypeError):
        tok.decode(["a"])
    with pytest.raises(TypeError):
        tok.encode(123)


def test_closed_tokenizer(tok_dir):
    t = Tokenizer.from_dir(tok_dir)
    with t:
        assert t.encode("x")
    assert t.closed
    with pytest.raises(ValueError, match="tokenizer is closed"):
        t.encode("x")
    with pytest.raises(ValueError, match="tokenizer is closed"):
        t.decode([1])
    t.close()  # idempotent


def _tokenizer_json(tok_dir):
    return json.loads((tok_dir / "tokenizer.json").read_text(encoding="utf-8"))


def test_bad_tokenizer_json(tok_dir, tmp_path):
    d = _tokenizer_json(tok_dir)
    d["model"]["merges"][5] = ["Ġthe", "zzzz_not_a_token"]
    with pytest.raises(liquidlfm.ModelFormatError, match="merge 5 .* not in the vocabulary"):
        Tokenizer.from_tokenizer_json(d)
    d = _tokenizer_json(tok_dir)
    d["model"]["merges"][0] = "nospace"
    with pytest.raises(liquidlfm.ModelFormatError, match="merge 0 'nospace'"):
        Tokenizer.from_tokenizer_json(d)
    d = _tokenizer_json(tok_dir)
    d["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = r"\s+|\S+"
    with pytest.raises(liquidlfm.UnsupportedModelError, match="pre_tokenizer"):
        Tokenizer.from_tokenizer_json(d)
    d = _tokenizer_json(tok_dir)
    d["model"]["type"] = "Unigram"
    with pytest.raises(liquidlfm.UnsupportedModelError, match="Unigram"):
        Tokenizer.from_tokenizer_json(d)
    d = _tokenizer_json(tok_dir)
    d["model"]["vocab"]["\u4e00\u4e01"] = 2000  # not byte-level alphabet
    with pytest.raises(liquidlfm.ModelFormatError, match="byte-level"):
        Tokenizer.from_tokenizer_json(d)
    (tmp_path / "tokenizer.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(liquidlfm.ModelFormatError, match="invalid JSON"):
        Tokenizer.from_dir(tmp_path)
    with pytest.raises(FileNotFoundError):
        Tokenizer.from_dir(tmp_path / "nope")


def test_vocab_holes_become_unused(tok_dir):
    d = _tokenizer_json(tok_dir)
    d["added_tokens"].append({"id": 1100, "content": "<think>", "single_word": False, "lstrip": False,
                              "rstrip": False, "normalized": False, "special": True})
    t = Tokenizer.from_tokenizer_json(d)
    assert t.vocab_size == 1101
    assert t.token_type(1050) == 5 and t.id_to_token(1050) == "[PAD1050]"
    assert t.unused_ids == list(range(1024, 1100)) and len(t.token_types) == 1101
    assert t.encode("a<think>b", add_special_tokens=False)[1] == 1100
    assert 1050 not in t.encode("[PAD1050]")


def test_threads_share_one_tokenizer(tok, parity_records):
    texts = [r["text"] for r in parity_records[:200]]
    want = [tok.encode(t) for t in texts]
    errors = []

    def work():
        for _ in range(3):
            if [tok.encode(t) for t in texts] != want:
                errors.append("mismatch")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors


# ---- robustness ----

@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64))
def test_utf8_validation_matches_python(tok, hf, data):
    """Random bytes: we reject exactly what Python's strict UTF-8 decoder rejects, at the same offset;
    accepted bytes give HF's ids."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        with pytest.raises(ValueError, match=f"byte offset {e.start} "):
            tok.encode(data)
        return
    assert tok.encode(data) == hf.encode(text).ids


BL_CHARS = "abcĠĊ<|>é\u0100\u0120" + "".join(tokenizers.pre_tokenizers.ByteLevel.alphabet())[:40]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fuzz_construction_and_encode(data):
    """Garbage vocabularies / merges / types: a ValueError (ModelFormatError) or a working tokenizer,
    never a crash; whatever builds, encodes arbitrary bytes (or raises ValueError), ids in range."""
    tokens = data.draw(st.lists(st.text(alphabet=BL_CHARS, min_size=1, max_size=4), min_size=1, max_size=60))
    types = data.draw(st.lists(st.sampled_from([1, 1, 1, 3, 4, 5, 6, 2, 0, 7]), min_size=len(tokens),
                               max_size=len(tokens)))
    pairs = data.draw(st.lists(st.tuples(st.integers(0, len(tokens) - 1), st.integers(0, len(tokens) - 1)),
                               max_size=40))
    merges = [f"{tokens[a]} {tokens[b]}" for a, b in pairs]
    if data.draw(st.booleans()):  # make merged tokens exist, so many merges are valid
        tokens = tokens + [tokens[a] + tokens[b] for a, b in pairs]
        types = types + [1] * len(pairs)
    text = data.draw(st.one_of(st.binary(max_size=40), st.text(alphabet=BL_CHARS + " 'x1\n", max_size=40)))
    try:
        t = _core.Tokenizer(tokens, types, merges, data.draw(st.booleans()), 0, -1)
    except ValueError:
        return
    for add_bos in (False, True):
        try:
            ids = t.encode(text, add_bos=add_bos, parse_special=data.draw(st.booleans()))
        except ValueError:
            continue
        assert all(0 <= i < len(tokens) for i in ids)
        t.decode_bytes(ids)
    t.close()
