"""Reading bulk input: formats, ids, per-record errors, and what stops a job before it starts."""
import json

import pytest

from liquidlfm.bulk.records import BulkInputError, input_format, read_records
from tests.bulk.helpers import write_jsonl


def test_jsonl_records_in_order_with_custom_fields(tmp_path):
    p = tmp_path / "c.jsonl"
    p.write_text('{"key": "a", "body": "Hello."}\n\n{"key": 7, "body": "Bye.", "extra": 1}\n', encoding="utf-8")
    recs, digest = read_records(p, id_field="key", text_field="body")
    assert [(r.id, r.text, r.error) for r in recs] == [("a", "Hello.", None), (7, "Bye.", None)]
    assert len(digest) == 64
    assert input_format(p) == "jsonl"


def test_digest_follows_ids_and_texts(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [{"id": 1, "text": "x"}])
    b = write_jsonl(tmp_path / "b.jsonl", [{"id": 1, "text": "y"}])
    c = write_jsonl(tmp_path / "c.jsonl", [{"id": 2, "text": "x"}])
    d = write_jsonl(tmp_path / "d.jsonl", [{"id": 1, "text": "x", "other": "ignored"}])
    digests = [read_records(p)[1] for p in (a, b, c, d)]
    assert len(set(digests[:3])) == 3 and digests[0] == digests[3]


def test_bad_records_are_kept_with_an_error(tmp_path):
    p = tmp_path / "bad.jsonl"
    with open(p, "wb") as f:
        f.write(b'{"id": "ok", "text": "fine"}\n')
        f.write(b'{"id": "bytes", "text": "caf\xe9 au lait"}\n')       # Latin-1, not UTF-8
        f.write(b'{"id": "surrogate", "text": "a \\ud800 b"}\n')        # valid JSON, not valid text
        f.write(b'{"id": "empty", "text": "  \\n "}\n')
        f.write(b'{"id": "none", "text": null}\n')
        f.write(b'{"id": "number", "text": 12}\n')
        f.write(b'{"id": "missing"}\n')
    recs, _ = read_records(p)
    errs = {r.id: r.error for r in recs}
    assert errs["ok"] is None
    assert errs["bytes"] == "invalid UTF-8: byte 0xe9 at character 3"
    assert errs["surrogate"] == "invalid UTF-8: lone surrogate U+D800 at character 2"
    assert errs["empty"] == "empty text"
    assert errs["none"] == "no text"
    assert errs["number"] == "the text is an int, not a string"
    assert errs["missing"] == "no 'text' field"
    assert all(r.text == "" for r in recs if r.error)  # nothing unencodable travels on


@pytest.mark.parametrize("line, message", [
    ('{"id": 1, "text": "a"', "c.jsonl:2: not a JSON object"),
    ('["id", "text"]', "c.jsonl:2: expected a JSON object"),
    ('{"text": "a"}', "c.jsonl:2: no 'id' field"),
    ('{"id": 1.5, "text": "a"}', "c.jsonl:2: the id field 'id' is a float"),
    ('{"id": true, "text": "a"}', "c.jsonl:2: the id field 'id' is a bool"),
    ('{"id": "", "text": "a"}', "c.jsonl:2: the id field 'id' is empty"),
])
def test_unnameable_records_stop_before_starting(tmp_path, line, message):
    p = tmp_path / "c.jsonl"
    p.write_text('{"id": 0, "text": "first"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(BulkInputError, match=message.replace(".", r"\.").replace("[", r"\[")):
        read_records(p)


def test_duplicate_ids_name_both_places(tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", [{"id": "a", "text": "1"}, {"id": "b", "text": "2"},
                                           {"id": "a", "text": "3"}])
    with pytest.raises(BulkInputError, match=r"duplicate id 'a': .*d\.jsonl:1 and .*d\.jsonl:3"):
        read_records(p)
    # 1 and "1" are different JSON values, so different ids
    q = write_jsonl(tmp_path / "e.jsonl", [{"id": 1, "text": "1"}, {"id": "1", "text": "2"}])
    assert [r.id for r in read_records(q)[0]] == [1, "1"]


def test_empty_input_is_an_error(tmp_path):
    p = tmp_path / "empty.jsonl"
    p.write_text("\n", encoding="utf-8")
    with pytest.raises(BulkInputError, match="no records"):
        read_records(p)


def test_text_file_one_record_per_line(tmp_path):
    p = tmp_path / "lines.txt"
    p.write_bytes(b"First line.\r\nSecond \xff line.\n\nFourth.")
    recs, _ = read_records(p)
    assert [(r.id, r.text, r.error) for r in recs] == [
        (1, "First line.", None), (2, "", "invalid UTF-8: byte 0xff at character 7"), (3, "", "empty text"),
        (4, "Fourth.", None)]


def test_several_text_files_prefix_their_ids(tmp_path):
    (tmp_path / "a.txt").write_text("x\ny\n", encoding="utf-8")
    (tmp_path / "b.txt").write_text("z\n", encoding="utf-8")
    recs, _ = read_records([tmp_path / "a.txt", tmp_path / "b.txt"])
    assert [r.id for r in recs] == ["a.txt:1", "a.txt:2", "b.txt:1"]


def test_folder_one_record_per_document(tmp_path):
    root = tmp_path / "docs"
    (root / "guide").mkdir(parents=True)
    (root / "index.md").write_text("# Title\n\nSome text.\n", encoding="utf-8")
    (root / "guide" / "b.markdown").write_text("Other.", encoding="utf-8")
    (root / "guide" / "a.txt").write_bytes(b"bad \xc3")
    (root / "image.png").write_bytes(b"\x89PNG")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "x.md").write_text("skip me", encoding="utf-8")
    recs, _ = read_records(root)
    assert input_format(root) == "folder"
    assert [r.id for r in recs] == ["guide/a.txt", "guide/b.markdown", "index.md"]
    assert recs[2].text == "# Title\n\nSome text.\n" and recs[0].error.startswith("invalid UTF-8: byte 0xc3")
    (root / "guide" / "a.txt").unlink()
    (root / "guide" / "b.markdown").unlink()
    (root / "index.md").unlink()
    with pytest.raises(BulkInputError, match="no .md/.markdown/.txt files"):
        read_records(root)


def test_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")  # the bulk and test extras install it
    import pyarrow.parquet as pq

    p = tmp_path / "c.parquet"
    pq.write_table(pa.table({"doc": ["a", "b", "c"], "src": ["Hello.", None, ""]}), p)
    recs, _ = read_records(p, id_field="doc", text_field="src")
    assert [(r.id, r.error) for r in recs] == [("a", None), ("b", "no text"), ("c", "empty text")]
    q = tmp_path / "bin.parquet"
    pq.write_table(pa.table({"id": [1, 2], "text": pa.array([b"ok", b"\xfe"], pa.binary())}), q)
    recs, _ = read_records(q)
    assert [(r.id, r.text, r.error) for r in recs] == [(1, "ok", None),
                                                        (2, "", "invalid UTF-8: byte 0xfe at character 0")]
    with pytest.raises(BulkInputError, match="no column 'text'"):
        read_records(p, id_field="doc")


def test_in_memory_records_and_source_checks(tmp_path):
    recs, _ = read_records([{"id": "x", "text": "One."}, {"id": "y", "text": ""}])
    assert [(r.id, r.error) for r in recs] == [("x", None), ("y", "empty text")]
    with pytest.raises(BulkInputError, match="no such file"):
        read_records(tmp_path / "missing.jsonl")
    with pytest.raises(TypeError, match="source must be"):
        read_records(42)
    with pytest.raises(BulkInputError, match="unknown input format"):
        read_records(write_jsonl(tmp_path / "a.jsonl", [{"id": 1, "text": "a"}]), format="csv")
    assert json.loads(json.dumps([r.id for r in recs])) == ["x", "y"]
