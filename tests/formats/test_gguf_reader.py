"""liquidlfm's C GGUF reader (csrc/format/gguf.c via liquidlfm.gguf) against the `gguf` package's
GGUFReader on files written by gguf.GGUFWriter: every metadata value type, nested arrays, custom
alignment, version 2 and 3, float and block-quantized tensors."""
import numpy as np
import pytest

import gguf
from gguf import GGMLQuantizationType as QT

from liquidlfm import _core
from liquidlfm.gguf import read_gguf, read_metadata, read_tokenizer_metadata, tensor_data, TYPE_IDS

FLOAT_TENSORS = ("F32", "F16", "BF16")
QUANT_TENSORS = ("Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K")


def _quant_bytes(rng, qtype, rows, cols):
    """Random bytes shaped like qtype blocks (any bytes are a valid tensor for header tests)."""
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    return rng.integers(0, 256, size=(rows, cols // block * size), dtype=np.uint8)


def write_sample(path, *, alignment=None, quant=(), rng=None):
    rng = rng or np.random.default_rng(0)
    w = gguf.GGUFWriter(str(path), "lfm2")
    if alignment is not None:
        w.add_custom_alignment(alignment)
    w.add_uint8("t.u8", 250)
    w.add_int8("t.i8", -7)
    w.add_uint16("t.u16", 65000)
    w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4_000_000_000)
    w.add_int32("t.i32", -2_000_000_000)
    w.add_float32("t.f32", 1.5)
    w.add_uint64("t.u64", 2**63 + 5)
    w.add_int64("t.i64", -(2**62))
    w.add_float64("t.f64", -3.25e100)
    w.add_bool("t.bool_t", True)
    w.add_bool("t.bool_f", False)
    w.add_string("t.str", "héllo wörld ✓ 안녕 🙂")
    w.add_array("t.arr_i32", [1, -2, 3])
    w.add_array("t.arr_f32", [0.5, -1.25])
    w.add_array("t.arr_str", ["a", "", "ĠHello", "<|im_end|>"])
    w.add_array("t.arr_bool", [True, False, True])
    w.add_array("t.nested", [[1, 2], [3], [4, 5, 6]])
    w.add_key_value("t.arr_u8", [1, 2, 255], gguf.GGUFValueType.ARRAY, sub_type=gguf.GGUFValueType.UINT8)
    w.add_key_value("t.arr_i64", [-(2**40), 7], gguf.GGUFValueType.ARRAY, sub_type=gguf.GGUFValueType.INT64)
    w.add_key_value("t.arr_f64", [1e-300, 2.0], gguf.GGUFValueType.ARRAY, sub_type=gguf.GGUFValueType.FLOAT64)
    tensors = {}
    tensors["f32.2d"] = rng.standard_normal((3, 8)).astype(np.float32)
    tensors["f32.1d"] = rng.standard_normal(5).astype(np.float32)
    tensors["f16.3d"] = rng.standard_normal((2, 3, 4)).astype(np.float16)
    tensors["f32.4d"] = rng.standard_normal((2, 1, 3, 4)).astype(np.float32)
    for name, a in tensors.items():
        w.add_tensor(name, a)
    bf = rng.integers(0, 2**16, size=(4, 16), dtype=np.uint16)
    w.add_tensor("bf16.2d", bf.view(np.uint8), raw_dtype=QT.BF16)
    tensors["bf16.2d"] = bf
    for q in quant:
        qt = QT[q]
        block = gguf.GGML_QUANT_SIZES[qt][0]
        raw = _quant_bytes(rng, qt, 3, 2 * block)
        w.add_tensor(f"{q.lower()}.w", raw, raw_dtype=qt)
        tensors[f"{q.lower()}.w"] = raw
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return tensors


def expected_metadata():
    return {
        "general.architecture": "lfm2", "t.u8": 250, "t.i8": -7, "t.u16": 65000, "t.i16": -30000,
        "t.u32": 4_000_000_000, "t.i32": -2_000_000_000, "t.f32": 1.5, "t.u64": 2**63 + 5, "t.i64": -(2**62),
        "t.f64": -3.25e100, "t.bool_t": True, "t.bool_f": False, "t.str": "héllo wörld ✓ 안녕 🙂",
        "t.arr_i32": [1, -2, 3], "t.arr_f32": [0.5, -1.25], "t.arr_str": ["a", "", "ĠHello", "<|im_end|>"],
        "t.arr_bool": [True, False, True], "t.nested": [[1, 2], [3], [4, 5, 6]], "t.arr_u8": [1, 2, 255],
        "t.arr_i64": [-(2**40), 7], "t.arr_f64": [1e-300, 2.0],
    }


def compare_with_gguf_reader(path):
    info = read_gguf(path)
    ref = gguf.GGUFReader(str(path))
    ref_fields = {k: f for k, f in ref.fields.items() if not k.startswith("GGUF.")}
    assert list(info.metadata) == list(ref_fields)
    for k, f in ref_fields.items():
        ours = info.metadata[k]
        if f.types[0] == gguf.GGUFValueType.ARRAY and len(f.types) > 1 and f.types[1] == gguf.GGUFValueType.ARRAY:
            continue  # GGUFReader flattens nested arrays; checked against expected values instead
        theirs = f.contents()
        if isinstance(theirs, float):
            assert ours == pytest.approx(theirs, rel=1e-7), k
        elif isinstance(theirs, list) and theirs and isinstance(theirs[0], float):
            assert ours == pytest.approx(theirs, rel=1e-7), k
        else:
            assert ours == theirs, k
        assert (info.types[k] if isinstance(info.types[k], int) else info.types[k][0]) == int(f.types[0])
        if f.types[0] == gguf.GGUFValueType.ARRAY:
            assert info.types[k][1] == int(f.types[1])
    assert [t.name for t in info.tensors] == [t.name for t in ref.tensors]
    for ours, theirs in zip(info.tensors, ref.tensors):
        assert ours.type == int(theirs.tensor_type), ours.name
        assert ours.ne == tuple(int(x) for x in theirs.shape), ours.name
        assert ours.offset == theirs.data_offset, ours.name
        assert ours.nbytes == theirs.n_bytes, ours.name
        assert bytes(tensor_data(info, ours.name)) == theirs.data.tobytes(), ours.name
    return info


@pytest.mark.parametrize("alignment", [None, 64, 256, 1])
def test_all_value_types_match_gguf_reader(tmp_path, alignment):
    path = tmp_path / "sample.gguf"
    write_sample(path, alignment=alignment)
    info = compare_with_gguf_reader(path)
    exp = expected_metadata()
    if alignment is not None:
        exp["general.alignment"] = alignment
    assert set(info.metadata) == set(exp)
    for k, v in exp.items():
        if isinstance(v, float):
            assert info.metadata[k] == pytest.approx(v, rel=1e-7), k
        elif isinstance(v, list) and v and isinstance(v[0], float):
            assert info.metadata[k] == pytest.approx(v, rel=1e-7), k
        else:
            assert info.metadata[k] == v, k
    assert info.alignment == (alignment or 32)
    assert info.data_offset % info.alignment == 0
    assert info.version == 3


def test_tensor_values_roundtrip(tmp_path):
    path = tmp_path / "sample.gguf"
    tensors = write_sample(path)
    info = read_gguf(path)
    for name, a in tensors.items():
        t = info.tensor(name)
        assert t.shape == a.shape, name
        assert bytes(tensor_data(info, name)) == a.tobytes()
    assert info.tensor("f16.3d").type_name == "f16"
    assert info.tensor("bf16.2d").type_name == "bf16"
    assert info.tensor("f32.4d").ne == (4, 3, 1, 2)


def test_version_2_reads_like_version_3(tmp_path):
    path = tmp_path / "v3.gguf"
    write_sample(path)
    raw = bytearray(path.read_bytes())
    assert raw[4:8] == (3).to_bytes(4, "little")
    raw[4:8] = (2).to_bytes(4, "little")
    v2 = tmp_path / "v2.gguf"
    v2.write_bytes(bytes(raw))
    a, b = read_gguf(path), read_gguf(v2)
    assert b.version == 2 and a.version == 3
    assert a.metadata == b.metadata and a.tensors == b.tensors


@pytest.mark.parametrize("qtype", QUANT_TENSORS)
def test_quantized_tensor_infos(tmp_path, qtype):
    path = tmp_path / f"{qtype}.gguf"
    write_sample(path, quant=(qtype,))
    info = compare_with_gguf_reader(path)
    t = info.tensor(f"{qtype.lower()}.w")
    assert t.type == TYPE_IDS[qtype.lower()] and t.type_name.lower() == qtype.lower()
    block = gguf.GGML_QUANT_SIZES[QT[qtype]][0]
    assert t.ne == (2 * block, 3)


@pytest.mark.reference
def test_lfm2_fixture_metadata(tmp_path):
    from tests.fixtures.gguf_models import hf_to_gguf, make_tiny_hf

    hf = make_tiny_hf(tmp_path / "hf")
    path = hf_to_gguf(hf, tmp_path / "m.gguf", "f16")
    compare_with_gguf_reader(path)
    meta = read_metadata(path)
    assert meta["general.architecture"] == "lfm2"
    assert meta["lfm2.attention.head_count_kv"] == [0, 2, 0, 2]
    tok = read_tokenizer_metadata(path)
    assert tok["tokenizer.ggml.model"] == "gpt2" and tok["tokenizer.ggml.pre"] == "lfm2"
    assert len(tok["tokenizer.ggml.tokens"]) == len(tok["tokenizer.ggml.token_type"]) == 320
    assert tok["tokenizer.ggml.bos_token_id"] == 1 and tok["tokenizer.ggml.eos_token_id"] == 7
    assert tok["tokenizer.ggml.add_bos_token"] is True
    assert isinstance(tok["tokenizer.ggml.merges"], list)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_gguf(tmp_path / "nope.gguf")
    with pytest.raises(OSError):
        read_gguf(tmp_path)


def test_type_info_floats():
    assert _core.type_info(0) == ("f32", 1, 4)
    assert _core.type_info(1) == ("f16", 1, 2)
    assert _core.type_info(30) == ("bf16", 1, 2)
    assert _core.type_info(999) is None
