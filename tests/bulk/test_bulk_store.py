"""The output folder: atomic shards and manifest, resuming, refusing a different job, the lock."""
import hashlib
import json

import pytest

from liquidlfm.bulk.store import (MANIFEST, BulkError, OutputStore, ResumeMismatchError, read_output, shard_name)

IDS = [[0, 1, 2], [3, 4, 5], [6]]


def job(**changes):
    j = {"task": "translate", "model": {"path": "/m.gguf", "bytes": 10},
         "options": {"target": "ko", "max_tokens": None},
         "inputs": [], "records": 7, "records_sha256": "abc", "shard_size": 3}
    j.update(changes)
    return j


def rows(k):
    return [{"id": i, "translation": f"t{i}"} if i != 4 else {"id": i, "error": "empty text"} for i in IDS[k]]


def write(store, k):
    return store.write_shard(k, rows(k), first_record=IDS[k][0], generated_tokens=5)


def test_fresh_job_then_resume_skips_finished_shards(tmp_path):
    out = tmp_path / "out"
    with OutputStore(out) as s:
        assert s.start(job(), IDS) == []
        e = write(s, 1)
        assert e["records"] == [3, 6] and (e["ok"], e["errors"], e["first_id"], e["last_id"]) == (2, 1, 3, 5)
        s.finish("interrupted")
    m = json.loads((out / MANIFEST).read_text())
    assert m["status"] == "interrupted" and list(m["shards"]) == [shard_name(1)]
    assert m["counts"] == {"shards_done": 1, "records_done": 3, "ok": 2, "errors": 1, "truncated": 0,
                           "generated_tokens": 5}
    assert [json.loads(line) for line in (out / shard_name(1)).read_text().splitlines()] == rows(1)
    with OutputStore(out) as s:
        assert s.start(job(), IDS) == [1]
        assert s.manifest["status"] == "running"
        write(s, 0)
        write(s, 2)
        s.finish("done")
    assert [r["id"] for r in read_output(out)] == list(range(7))
    assert not list(out.glob(".*.tmp"))


def test_other_options_input_or_model_refuse_to_resume(tmp_path):
    out = tmp_path / "out"
    with OutputStore(out) as s:
        s.start(job(), IDS)
        write(s, 0)
    for changed, what in [(job(options={"target": "ja", "max_tokens": None}), r"options \(target: 'ko' -> 'ja'\)"),
                          (job(records_sha256="def"), "input"),
                          (job(model={"path": "/other.gguf", "bytes": 10}), "model"),
                          (job(shard_size=2), "shard_size")]:
        with OutputStore(out) as s, pytest.raises(ResumeMismatchError, match=what + ".*overwrite"):
            s.start(changed, IDS)
    with OutputStore(out) as s:  # overwrite: a fresh job, the old shards gone
        assert s.start(job(options={"target": "ja"}), IDS, overwrite=True) == []
    assert not (out / shard_name(0)).exists()


def test_shard_renamed_but_not_in_manifest_is_adopted_or_removed(tmp_path):
    """A job killed between renaming a shard into place and writing the manifest."""
    out = tmp_path / "out"
    with OutputStore(out) as s:
        s.start(job(), IDS)
    good = "".join(json.dumps(r) + "\n" for r in rows(0))
    (out / shard_name(0)).write_text(good)
    (out / shard_name(1)).write_text(json.dumps({"id": 3, "translation": "x"}) + "\n")  # too short
    (out / shard_name(9)).write_text("{}\n")  # not a shard of this job
    (out / ".part-00002.jsonl.x1y2.tmp").write_text("half")  # an unfinished atomic write
    with OutputStore(out) as s:
        assert s.start(job(), IDS) == [0]
        e = s.manifest["shards"][shard_name(0)]
        assert e["adopted"] and e["records"] == [0, 3] and e["sha256"] == hashlib.sha256(good.encode()).hexdigest()
    assert sorted(p.name for p in out.iterdir()) == [".lock", MANIFEST, shard_name(0)]


def test_changed_shard_file_is_redone(tmp_path):
    out = tmp_path / "out"
    with OutputStore(out) as s:
        s.start(job(), IDS)
        write(s, 0)
        write(s, 2)
    (out / shard_name(2)).write_text(json.dumps({"id": 6, "translation": "edited by hand"}) + "\n")
    (out / shard_name(0)).write_text("garbage\n")
    with OutputStore(out) as s:
        # shard 2 still holds exactly its ids: adopted as it is now; shard 0 is unreadable: redone
        assert s.start(job(), IDS) == [2]
    assert not (out / shard_name(0)).exists()


def test_stray_shards_without_manifest_need_overwrite(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / shard_name(0)).write_text("{}\n")
    with OutputStore(out) as s, pytest.raises(BulkError, match="no manifest.json.*overwrite"):
        s.start(job(), IDS)
    with OutputStore(out) as s:
        assert s.start(job(), IDS, overwrite=True) == []
    (out / MANIFEST).write_text("{not json")
    with OutputStore(out) as s, pytest.raises(BulkError, match="not a bulk manifest"):
        s.start(job(), IDS)


def test_one_job_per_folder_at_a_time(tmp_path):
    out = tmp_path / "out"
    with OutputStore(out):
        with pytest.raises(BulkError, match="another bulk job is writing"):
            OutputStore(out).open()
    with OutputStore(out):  # released
        pass
    (tmp_path / "file").write_text("x")
    with pytest.raises(BulkError, match="not a folder"):
        OutputStore(tmp_path / "file").open()


def test_read_output_refuses_an_unfinished_job(tmp_path):
    out = tmp_path / "out"
    with OutputStore(out) as s:
        s.start(job(), IDS)
        write(s, 0)
    with pytest.raises(BulkError, match="2 of 3 shards are not done"):
        list(read_output(out))
    with pytest.raises(BulkError, match="not the output of a bulk job"):
        list(read_output(tmp_path))
