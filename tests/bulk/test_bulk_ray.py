"""Bulk jobs on a local Ray started by this module (num_cpus=2, no dashboard, this machine only):
the same output as the single-process translator record for record, bad records reported per record,
a worker killed mid-run and a whole job killed with SIGKILL both ending with every id exactly once."""
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

import liquidlfm
from liquidlfm import bulk
from liquidlfm.bulk import MANIFEST, BulkInputError, ResumeMismatchError
from tests.bulk.helpers import REPO, TEMPLATE_FILE, SerialFakeModel, en_sentences, fake_worker, write_jsonl

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_address():
    """One local Ray for the module (its start-up takes seconds). Its workers import this checkout
    (PYTHONPATH, inherited by the Ray processes), so they can also load the test workers."""
    import ray

    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(REPO) + (os.pathsep + old if old else "")
    assert bulk.init_ray(None, num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        if old is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = old


@pytest.fixture(scope="module")
def template(shared_dir):
    return (shared_dir / TEMPLATE_FILE).read_text()


def with_bad_records(path, good):
    """good records as JSONL at path, with three bad ones in the middle."""
    with open(path, "wb") as f:
        for r in good[:len(good) // 2]:
            f.write((json.dumps(r) + "\n").encode())
        f.write(b'{"id": "latin1", "text": "caf\xe9"}\n')
        f.write(b'{"id": "empty", "text": ""}\n')
        f.write((json.dumps({"id": "long", "text": "x" * 3000}) + "\n").encode())  # no boundary to split at
        for r in good[len(good) // 2:]:
            f.write((json.dumps(r) + "\n").encode())
    return path


@pytest.fixture(scope="module")
def short_corpus(shared_dir, tmp_path_factory):
    """24 short segments (FLORES sentences cut to their first words: the scripted fake model is slow
    per token) and three bad records."""
    good = [{"id": i, "text": " ".join(t.split()[:6]) + "."} for i, t in en_sentences(shared_dir, 24)]
    return with_bad_records(tmp_path_factory.mktemp("corpus") / "short.jsonl", good), good


def ids_in(out):
    return [json.loads(line)["id"] for p in sorted(Path(out).glob("part-*.jsonl"))
            for line in p.read_text(encoding="utf-8").splitlines()]


def check_bad_records(rows):
    assert rows["latin1"] == {"id": "latin1", "error": "invalid UTF-8: byte 0xe9 at character 3"}
    assert rows["empty"] == {"id": "empty", "error": "empty text"}
    assert rows["long"]["error"].startswith("ContextFullError: a single piece of")


def test_fake_model_job_matches_translate_and_reports_bad_records(ray_address, template, short_corpus, tiny_chat_dir,
                                                                  tmp_path):
    path, good = short_corpus
    out = tmp_path / "out"
    r = bulk.translate(path, "ko", out, model=tiny_chat_dir, actors=2, batch_size=4, shard_size=8, n_ctx=512,
                       progress=False, _worker_class=fake_worker(template))
    assert (r.status, r.records, r.ok, r.errors, r.shards, r.records_run) == ("done", 27, 24, 3, 4, 27)
    assert Counter(ids_in(out)) == Counter([g["id"] for g in good] + ["latin1", "empty", "long"])
    rows = {row["id"]: row for row in bulk.read_output(out)}
    expected = liquidlfm.translate([g["text"] for g in good], "ko", model=SerialFakeModel(template), n_ctx=512)
    assert [rows[g["id"]]["translation"] for g in good] == expected
    check_bad_records(rows)
    m = json.loads((out / MANIFEST).read_text())
    assert m["status"] == "done" and m["counts"]["errors"] == 3 and m["counts"]["records_done"] == 27
    assert m["options"]["target"] == "ko" and m["runs"][-1]["actors"] == 2
    assert sum(e["count"] for e in m["shards"].values()) == 27
    assert m["shards"]["part-00002.jsonl"]["records"] == [16, 24]

    # the same job again: every shard is done, nothing runs
    again = bulk.translate(path, "ko", out, model=tiny_chat_dir, n_ctx=512, progress=False,
                           _worker_class=fake_worker(template))
    assert (again.records_run, again.shards_resumed) == (0, 4)
    with pytest.raises(ResumeMismatchError, match=r"options \(formality: None -> 'polite'\)"):
        bulk.translate(path, "ko", out, model=tiny_chat_dir, n_ctx=512, formality="polite", progress=False)


def test_worker_killed_mid_run_is_restarted_and_nothing_is_lost(ray_address, template, short_corpus, tiny_chat_dir,
                                                                tmp_path):
    path, good = short_corpus
    marker = tmp_path / "crash"
    marker.touch()
    out = tmp_path / "out"
    r = bulk.translate(path, "ko", out, model=tiny_chat_dir, actors=2, batch_size=4, shard_size=8, n_ctx=512,
                       progress=False, _worker_class=fake_worker(template, crash_marker=str(marker)))
    assert not marker.exists() and (tmp_path / "crash.claimed").exists()  # one actor did die (os._exit)
    assert r.status == "done" and r.records == 27
    ids = ids_in(out)
    assert len(ids) == len(set(ids)) == 27
    rows = {row["id"]: row for row in bulk.read_output(out)}
    assert [rows[g["id"]]["translation"] for g in good] == [g["text"].upper() for g in good]


KILLED_JOB = """
import sys
from liquidlfm import bulk
from tests.bulk.helpers import fake_worker
path, out, address, template, model = sys.argv[1:6]
bulk.translate(path, "ko", out, model=model, ray_address=address, actors=1, batch_size=2, shard_size=4,
               n_ctx=512, progress=False, _worker_class=fake_worker(open(template).read(), delay=0.3))
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "Ctrl-C"])
def test_job_killed_resumes_with_every_id_once(sig, ray_address, template, shared_dir, tiny_chat_dir, tmp_path):
    records = [{"id": f"s{i}", "text": " ".join(t.split()[:4])} for i, t in en_sentences(shared_dir, 40)]
    path = write_jsonl(tmp_path / "c.jsonl", records)
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-c", KILLED_JOB, str(path), str(out), ray_address,
                             str(shared_dir / TEMPLATE_FILE), str(tiny_chat_dir)], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        while len(list(out.glob("part-*.jsonl"))) < 2:
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "the job wrote no shard in 90 s"
            time.sleep(0.05)
    finally:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.jsonl")}
    m = json.loads((out / MANIFEST).read_text())
    assert len(before) < 10
    if sig == signal.SIGKILL:
        assert m["status"] == "running"  # killed partway: no chance to say so
    else:
        assert m["status"] == "interrupted" and m["runs"][-1]["status"] == "interrupted"

    r = bulk.translate(path, "ko", out, model=tiny_chat_dir, actors=2, batch_size=2, shard_size=4, n_ctx=512,
                       progress=False, _worker_class=fake_worker(template))
    assert r.status == "done" and r.shards_resumed >= len(before) - 1  # (a shard renamed but not yet listed is adopted)
    ids = ids_in(out)
    assert sorted(ids) == sorted(rec["id"] for rec in records) and len(ids) == len(set(ids))
    for name, mtime in before.items():  # finished shards were kept, not redone
        assert (out / name).stat().st_mtime_ns == mtime
    assert [row["translation"] for row in bulk.read_output(out)] == [rec["text"].upper() for rec in records]


def test_duplicate_ids_fail_before_ray_runs(ray_address, tiny_chat_dir, tmp_path):
    path = write_jsonl(tmp_path / "dup.jsonl", [{"id": 1, "text": "a"}, {"id": 1, "text": "b"}])
    with pytest.raises(BulkInputError, match="duplicate id 1"):
        bulk.translate(path, "ko", tmp_path / "out", model=tiny_chat_dir, progress=False)
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="unknown|not a supported|language"):
        bulk.translate(path, "xx-not-a-language", tmp_path / "out", model=tiny_chat_dir, progress=False)
    with pytest.raises(TypeError, match="unexpected options: stream"):
        bulk.translate(path, "ko", tmp_path / "out", stream=True)


def test_related_work_for_many_ideas(ray_address, shared_dir, tmp_path):
    from liquidlfm.scholar import draft_related_work, load_corpus

    corpus = shared_dir / "data" / "papers" / "acl2021.jsonl"
    ideas = ["unsupervised word alignment for machine translation", "dialogue state tracking with few examples",
             "   "]
    out = tmp_path / "rw"
    r = bulk.related_work(ideas, out, corpus=corpus, actors=2, batch_size=1, top_k=5, progress=False)
    assert (r.status, r.ok, r.errors) == ("done", 2, 1)
    rows = list(bulk.read_output(out))
    papers = load_corpus(corpus)
    for row, idea in zip(rows[:2], ideas):
        d = draft_related_work(idea, papers=papers, top_k=5)
        assert (row["related_work"], row["cited"], row["bibtex"]) == (d.text, d.cited, d.bibtex())
    assert rows[2] == {"id": 2, "error": "empty text"}


# ---- the real engine: a random-weight LFM2 through the batched generation path ----

def test_real_model_same_output_as_single_process_translate(ray_address, tiny_chat_dir, tiny_chat_model, shared_dir,
                                                          tmp_path):
    """40 FLORES sentences and three bad records, 2 actors x 4 sequences, batches of 6: record for
    record what one process's lfm.translate gives for the same list."""
    good = [{"id": i, "text": t} for i, t in en_sentences(shared_dir, 40)]
    path = with_bad_records(tmp_path / "corpus.jsonl", good)
    out = tmp_path / "out"
    r = bulk.translate(path, "ko", out, model=tiny_chat_dir, actors=2, n_seq=4, batch_size=6, shard_size=10,
                       max_tokens=MAX_TOKENS, n_ctx=512, progress=False)
    assert (r.status, r.records, r.ok, r.errors) == ("done", 43, 40, 3)
    assert r.generated_tokens > 0 and r.work_seconds > 0
    rows = {row["id"]: row for row in bulk.read_output(out)}
    ids = ids_in(out)
    assert len(ids) == len(set(ids)) == len(rows) == 43
    expected = liquidlfm.translate([g["text"] for g in good], "ko", model=tiny_chat_model, max_tokens=MAX_TOKENS,
                                   n_ctx=512)
    assert [rows[g["id"]]["translation"] for g in good] == expected
    check_bad_records(rows)


MAX_TOKENS = 12  # per piece: a random model rarely stops by itself; this keeps the runs short


def test_cli_folder_of_markdown_documents(ray_address, tiny_chat_dir, tiny_chat_model, tmp_path):
    """`liquidlfm translate --input FOLDER --output OUT/ --ray ADDRESS`: one record per document, the
    markdown kept as the translator keeps it; rerunning the same command finds the job done."""
    docs = tmp_path / "docs"
    (docs / "guide").mkdir(parents=True)
    texts = {"index.md": "# Welcome\n\nThis is the start. Read on!\n\n- one item\n- two items\n",
             "guide/setup.md": "## Setup\n\nRun `pip install liquidlfm` first.\n\n"
                               "| a | b |\n|---|---|\n| cell one | two |\n",
             "notes.txt": "Plain notes. Nothing else."}
    for name, text in texts.items():
        (docs / name).write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "liquidlfm", "translate", "--to", "ko", "--input", str(docs), "--output", f"{out}/",
           "--model", str(tiny_chat_dir), "--ray", ray_address, "--actors", "1", "--n-seq", "4",
           "--max-tokens", str(MAX_TOKENS), "--n-ctx", "512", "--no-progress"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "done: 3 records" in p.stderr
    rows = {row["id"]: row for row in bulk.read_output(out)}
    assert sorted(rows) == sorted(texts)
    for name, text in texts.items():
        assert rows[name]["translation"] == liquidlfm.translate(text, "ko", model=tiny_chat_model,
                                                                max_tokens=MAX_TOKENS, n_ctx=512)
    assert rows["guide/setup.md"]["translation"].startswith("## ")  # markup kept verbatim
    p = subprocess.run([sys.executable, "-m", "liquidlfm.translate"] + cmd[4:], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "1 of 1 shards already done; this run 0 records" in p.stderr


def test_related_work_with_a_model(ray_address, shared_dir, tiny_chat_dir, tiny_chat_model, tmp_path):
    """Each actor loads the model and indexes the corpus once; the draft is the one the same model
    writes in this process."""
    from liquidlfm.scholar import draft_related_work, load_corpus

    corpus = shared_dir / "data" / "papers" / "acl2021.jsonl"
    idea = "unsupervised word alignment for machine translation"
    options = dict(top_k=4, max_themes=2, max_tokens=16)
    out = tmp_path / "rw"
    r = bulk.related_work([{"id": "idea-1", "text": idea}], out, model=tiny_chat_dir, corpus=corpus, actors=1,
                          progress=False, **options)
    assert (r.status, r.ok) == ("done", 1)
    [row] = bulk.read_output(out)
    d = draft_related_work(idea, papers=load_corpus(corpus), model=tiny_chat_model, **options)
    assert (row["id"], row["related_work"], row["cited"]) == ("idea-1", d.text, d.cited)
    assert row["report"] == d.report.summary() and len(d.cited) > 0
