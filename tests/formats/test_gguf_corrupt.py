"""Corrupt GGUF files: every one is a clear exception from the C reader, never a crash, a hang or
a read outside the file. Files are built byte by byte here so each field can lie on purpose.
Run under AddressSanitizer with tests/sanitize/run.sh."""
import random
import struct

import numpy as np
import pytest

from liquidlfm import ModelFormatError, UnsupportedModelError
from liquidlfm.gguf import read_gguf

U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)


def s(b):
    b = b.encode() if isinstance(b, str) else b
    return struct.pack("<Q", len(b)) + b


def val(t, v):
    fmt = {U8: "B", I8: "b", U16: "H", I16: "h", U32: "I", I32: "i", F32: "f", BOOL: "?", U64: "Q", I64: "q",
           F64: "d"}
    if t in fmt:
        return struct.pack("<" + fmt[t], v)
    if t == STR:
        return s(v)
    et, items = v
    return struct.pack("<IQ", et, len(items)) + b"".join(val(et, x) for x in items)


def kv(key, t, v):
    return s(key) + struct.pack("<I", t) + val(t, v)


def tinfo(name, ne, type_id, offset):
    return s(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", n) for n in ne) + \
        struct.pack("<IQ", type_id, offset)


def build(kvs=None, tensors=None, *, version=3, magic=b"GGUF", alignment=32, data=None, n_kv=None, n_t=None):
    """kvs: list of encoded kv bytes; tensors: list of (name, ne, type, offset, nbytes)."""
    if kvs is None:
        kvs = [kv("general.architecture", STR, "lfm2"), kv("a.list", ARR, (STR, ["x", "", "yz"])),
               kv("a.num", U32, 7)]
    if tensors is None:
        tensors = [("w", (8, 2), 0, 0, 64), ("b", (4,), 1, 64, 8)]
    head = magic + struct.pack("<IQQ", version, len(tensors) if n_t is None else n_t, len(kvs) if n_kv is None else n_kv)
    body = b"".join(kvs) + b"".join(tinfo(n, ne, t, off) for n, ne, t, off, _ in tensors)
    out = head + body
    out += b"\0" * ((-len(out)) % alignment)
    if data is None:
        size = max([off + nb for _, _, _, off, nb in tensors], default=0)
        data = bytes(np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8))
    return out + data


def write(tmp_path, blob, name="x.gguf"):
    p = tmp_path / name
    p.write_bytes(blob)
    return p


def expect(tmp_path, blob, exc=ModelFormatError, match=None):
    with pytest.raises(exc, match=match):
        read_gguf(write(tmp_path, blob))


def test_builder_makes_a_valid_file(tmp_path):
    info = read_gguf(write(tmp_path, build()))
    assert info.metadata["a.list"] == ["x", "", "yz"]
    assert [(t.name, t.ne, t.nbytes) for t in info.tensors] == [("w", (8, 2), 64), ("b", (4,), 8)]


def test_truncated_everywhere(tmp_path):
    blob = build()
    for cut in range(len(blob)):
        p = write(tmp_path, blob[:cut])
        with pytest.raises(ModelFormatError):
            read_gguf(p)


def test_wrong_magic_and_versions(tmp_path):
    expect(tmp_path, build(magic=b"GGML"), match="not a GGUF file")
    expect(tmp_path, b"", match="too short")
    expect(tmp_path, build(version=1), UnsupportedModelError, match="version 1")
    expect(tmp_path, build(version=4), match="unknown GGUF version 4")
    expect(tmp_path, build(version=0), match="unknown GGUF version 0")
    expect(tmp_path, build(version=0x03000000), UnsupportedModelError, match="big-endian")


def test_lying_counts(tmp_path):
    expect(tmp_path, build(n_kv=2**63), match="metadata entries")
    expect(tmp_path, build(n_t=2**40), match="tensors")
    expect(tmp_path, build(n_kv=4))  # one more kv than present: runs into the tensor infos / end


def test_lying_string_lengths(tmp_path):
    good = kv("a.s", STR, "hello")
    for bad_len in (6, 2**20, 2**63, 2**64 - 1):
        lying = s("a.s") + struct.pack("<I", STR) + struct.pack("<Q", bad_len) + b"hello"
        expect(tmp_path, build([good, lying], tensors=[], alignment=1))
    lying_key = struct.pack("<Q", 2**64 - 8) + b"k" + struct.pack("<I", U8) + b"\x01"
    expect(tmp_path, build([lying_key], tensors=[]), match="claims")
    expect(tmp_path, build([s("") + struct.pack("<I", U8) + b"\x01"], tensors=[]), match="length 0")


def test_lying_array_lengths(tmp_path):
    for et, item in ((U32, b"\1\0\0\0"), (STR, s("x")), (U8, b"\1"), (ARR, struct.pack("<IQ", U8, 0))):
        for n in (2, 2**31, 2**61, 2**64 - 1):
            blob = s("a.arr") + struct.pack("<IIQ", ARR, et, n) + item
            expect(tmp_path, build([blob], tensors=[], alignment=1))


def test_nested_arrays(tmp_path):
    nested = kv("a.n", ARR, (ARR, [(I32, [1, 2]), (I32, []), (STR, ["q"])]))
    info = read_gguf(write(tmp_path, build([nested], tensors=[])))
    assert info.metadata["a.n"] == [[1, 2], [], ["q"]]
    deep = (U8, [1])
    for _ in range(12):
        deep = (ARR, [deep])
    expect(tmp_path, build([kv("a.deep", ARR, deep)], tensors=[]), match="nested deeper")


def test_bad_value_types(tmp_path):
    expect(tmp_path, build([s("a.x") + struct.pack("<I", 13) + b"\0" * 8], tensors=[]), match="unknown value type")
    expect(tmp_path, build([s("a.x") + struct.pack("<IIQ", ARR, 99, 0)], tensors=[]), match="element type")
    expect(tmp_path, build([kv("a.b", U8, 1)[:-1 - 4] + struct.pack("<I", BOOL) + b"\x07"], tensors=[]),
           match="bool")


def test_duplicated_keys_and_tensor_names(tmp_path):
    expect(tmp_path, build([kv("a.x", U8, 1), kv("a.y", U8, 2), kv("a.x", U32, 3)], tensors=[]),
           match="duplicated metadata key 'a.x'")
    expect(tmp_path, build(tensors=[("w", (8,), 0, 0, 32), ("w", (8,), 0, 32, 32)]),
           match="duplicated tensor name 'w'")


def test_non_utf8_keys_and_names(tmp_path):
    for bad in (b"a.\xff", b"a.\xc0\xaf", b"a.\xed\xa0\x80", b"a\x00b", b"\xe2\x82"):
        expect(tmp_path, build([s(bad) + struct.pack("<I", U8) + b"\1"], tensors=[]), match="UTF-8")
    blob = build(tensors=[("w", (8,), 0, 0, 32)])
    blob = blob.replace(s("w"), s(b"\xff"), 1)
    expect(tmp_path, blob, match="UTF-8")


def test_alignment(tmp_path):
    ok = build([kv("general.alignment", U32, 64)], tensors=[("w", (16,), 0, 0, 64), ("v", (4,), 0, 64, 16)],
               alignment=64)
    info = read_gguf(write(tmp_path, ok))
    assert info.alignment == 64 and info.data_offset % 64 == 0
    for a in (0, 3, 48, 2**31 + 1):
        expect(tmp_path, build([kv("general.alignment", U32, a)]), match="power of two")
    expect(tmp_path, build([kv("general.alignment", U64, 32)]), match="uint32")
    # offset not a multiple of the alignment
    expect(tmp_path, build(tensors=[("w", (4,), 0, 4, 16)]), match="not a multiple of the alignment")


def test_bad_tensor_offsets_and_overlaps(tmp_path):
    expect(tmp_path, build(tensors=[("w", (8,), 0, 2**63, 32)], data=b"\0" * 64), match="outside")
    expect(tmp_path, build(tensors=[("w", (8,), 0, 0, 32)], data=b"\0" * 16), match="outside")
    expect(tmp_path, build(tensors=[("w", (8, 2), 0, 0, 64), ("v", (8,), 0, 32, 32)]), match="overlap")
    expect(tmp_path, build(tensors=[("w", (8,), 0, 2**64 - 32, 32)], data=b"\0" * 64), match="outside")


def test_absurd_dimensions(tmp_path):
    expect(tmp_path, build(tensors=[("w", (1, 1, 1, 1, 1), 0, 0, 4)]), match="dimensions")
    expect(tmp_path, build(tensors=[("w", (), 0, 0, 4)]), match="dimensions")
    expect(tmp_path, build(tensors=[("w", (8, 0), 0, 0, 4)]), match="expected > 0")
    expect(tmp_path, build(tensors=[("w", (2**63,), 0, 0, 4)]))
    expect(tmp_path, build(tensors=[("w", (2**32, 2**32), 0, 0, 4)]), match="larger than the file")
    expect(tmp_path, build(tensors=[("w", (2**62, 4), 0, 0, 4)]), match="larger than the file")
    expect(tmp_path, build(tensors=[("w", (2**21,) * 4, 0, 0, 4)]), match="larger than the file")


def test_unknown_tensor_type_names_tensor_and_type(tmp_path):
    with pytest.raises(UnsupportedModelError, match=r"tensor 'blk\.0\.weird' has type id 99"):
        read_gguf(write(tmp_path, build(tensors=[("blk.0.weird", (8,), 99, 0, 32)])))
    with pytest.raises(UnsupportedModelError, match="type id 4294967295"):
        read_gguf(write(tmp_path, build(tensors=[("w", (8,), 2**32 - 1, 0, 32)])))


def test_named_only_tensor_type_is_refused_by_name(tmp_path):
    # ids the traits table names and sizes but cannot decode (IQ*, TQ*, ...): refused, and said so by name
    with pytest.raises(UnsupportedModelError, match=r"tensor 'blk\.0\.iq' has type iq4_xs \(id 23\)"):
        read_gguf(write(tmp_path, build(tensors=[("blk.0.iq", (256,), 23, 0, 136)])))


def test_row_not_multiple_of_block_size(tmp_path):
    from liquidlfm import _core

    if _core.type_info(8) is None:
        pytest.fail("q8_0 is not known to the C core (the quants part is missing from this build)")
    expect(tmp_path, build(tensors=[("w", (33,), 8, 0, 34)]), match="multiple of the q8_0 block size")


def test_mutation_fuzz(tmp_path):
    """Random byte edits of a valid file: each open either works or raises our exceptions."""
    rng = random.Random(1234)
    base = build([kv("general.architecture", STR, "lfm2"), kv("a.list", ARR, (STR, ["x", "", "yz"])),
                  kv("a.n", ARR, (ARR, [(I32, [1, 2]), (F32, [0.5])])), kv("a.b", BOOL, True)],
                 tensors=[("w", (8, 2), 0, 0, 64), ("b", (4,), 1, 64, 8), ("c", (2, 2), 30, 96, 8)])
    header_len = len(base) - 104
    outcomes = {"ok": 0, "format": 0, "unsupported": 0}
    p = tmp_path / "fuzz.gguf"
    for it in range(600):
        blob = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            kind = rng.random()
            pos = rng.randrange(header_len)
            if kind < 0.5:
                blob[pos] = rng.randrange(256)
            elif kind < 0.75:  # plant a big little-endian integer
                blob[pos:pos + 8] = struct.pack("<Q", rng.choice([2**64 - 1, 2**63, 2**32, 2**31 - 1, 1 << rng.randrange(64)]))
            else:
                del blob[pos:pos + rng.randint(1, 16)]
        if rng.random() < 0.2:
            blob = blob[:rng.randrange(len(blob))]
        p.write_bytes(bytes(blob))
        try:
            read_gguf(p)
            outcomes["ok"] += 1
        except UnsupportedModelError:
            outcomes["unsupported"] += 1
        except ModelFormatError:
            outcomes["format"] += 1
    assert outcomes["format"] > 300, outcomes


# ---- whole models through lfm.load --------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    from tests.fixtures.gguf_models import hf_to_gguf, make_tiny_hf

    d = tmp_path_factory.mktemp("tiny")
    hf = make_tiny_hf(d / "hf", vocab_size=320, hidden_size=64, n_layers=2, layer_types=["conv", "full_attention"],
                      heads=4, kv_heads=2, ff=96, tokenizer=False)
    return hf_to_gguf(hf, d / "m.gguf", "f16").read_bytes()


@pytest.mark.reference
def test_model_load_truncated_and_mutated(tmp_path, tiny_gguf):
    import liquidlfm as lfm

    p = tmp_path / "m.gguf"
    p.write_bytes(tiny_gguf)
    m = lfm.load(str(p))
    assert m.forward([1, 2, 3]).shape == (3, 320)
    rng = random.Random(7)
    cuts = sorted({rng.randrange(len(tiny_gguf)) for _ in range(40)} | {len(tiny_gguf) - 1, 4, 100})
    for cut in cuts:
        p.write_bytes(tiny_gguf[:cut])
        with pytest.raises(ModelFormatError):
            lfm.load(str(p))
    info = read_gguf(write(tmp_path, tiny_gguf, "ok.gguf"))
    header_end = info.data_offset
    ok = 0
    for _ in range(150):
        blob = bytearray(tiny_gguf)
        for _ in range(rng.randint(1, 3)):
            pos = rng.randrange(header_end)
            blob[pos] = rng.randrange(256)
        p.write_bytes(bytes(blob))
        try:
            lfm.load(str(p)).forward([1, 2])
            ok += 1
        except (ModelFormatError, UnsupportedModelError):
            pass
    assert ok < 150
