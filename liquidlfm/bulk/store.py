"""The output folder of a bulk job: shards and a manifest, each written atomically, and resuming.

    out/part-00000.jsonl   records 0 .. shard_size-1, in input order: {"id": ..., <result fields>} or
    out/part-00001.jsonl   {"id": ..., "error": "..."}; each file appears whole or not at all
    out/manifest.json      what the job is (inputs digest, options, model), which shards are done
                           (their record range, ids digest, counts, file digest) and the run history
    out/.lock              held (flock) while a job writes here

Every record's shard is fixed by its position (record i is in shard i // shard_size), so a rerun with
the same inputs and options computes the same shards, trusts the finished ones (after checking their
digest) and does only the rest: nothing lost, nothing twice. A shard file that a killed job renamed
into place but had not yet entered in the manifest is checked line by line against the ids it must
hold and adopted, or removed.
"""
from __future__ import annotations

import datetime as _dt
import errno
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Union

from .._files import atomic_write_bytes

__all__ = ["OutputStore", "BulkError", "ResumeMismatchError", "shard_name", "read_output", "MANIFEST"]

MANIFEST = "manifest.json"
LOCK = ".lock"
FORMAT_VERSION = 1


class BulkError(RuntimeError):
    """A bulk job could not run or finish (what was finished is kept; the message says how to go on)."""


class ResumeMismatchError(BulkError):
    """The output folder holds a job with other inputs, options or model than this one."""


def shard_name(k: int) -> str:
    return f"part-{k:05d}.jsonl"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def ids_digest(ids: Iterable) -> str:
    h = hashlib.sha256()
    for i in ids:
        h.update(json.dumps(i, ensure_ascii=False).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def _dump(obj) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, indent=1) + "\n").encode("utf-8")


class OutputStore:
    """One job's output folder (see module docstring). Use as a context manager: holds the folder's
    lock from open() to close()."""

    def __init__(self, out: Union[str, os.PathLike]):
        self.out = Path(out)
        self.manifest: Dict[str, Any] = {}
        self._lock_fd: Optional[int] = None

    # ---- lock ----

    def open(self) -> "OutputStore":
        if self.out.exists() and not self.out.is_dir():
            raise BulkError(f"{self.out} exists and is not a folder; the output of a bulk job is a folder")
        self.out.mkdir(parents=True, exist_ok=True)
        import fcntl

        fd = os.open(self.out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise BulkError(f"another bulk job is writing to {self.out} (its lock {self.out / LOCK} is held); "
                                "wait for it or use another output folder") from None
            raise
        self._lock_fd = fd
        return self

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def __enter__(self) -> "OutputStore":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- starting or resuming ----

    def start(self, job: Dict[str, Any], shard_ids: Sequence[Sequence], *, overwrite: bool = False) -> List[int]:
        """Begin (or resume) the job described by `job` (task, model, options, inputs, records,
        records_sha256, shard_size): shard_ids[k] are the ids shard k holds. Returns the shards that
        are already done. A folder holding another job raises ResumeMismatchError naming what differs,
        unless overwrite (then its shards and manifest are removed)."""
        self._remove_temp_files()
        old = self._read_manifest()
        if old is not None and overwrite:
            self._remove_outputs()
            old = None
        elif old is None and not overwrite:
            strays = sorted(p.name for p in self.out.glob("part-*.jsonl"))
            if strays:
                raise BulkError(f"{self.out} holds shard files ({', '.join(strays[:3])}...) but no {MANIFEST}; "
                                f"pass overwrite=True (--overwrite) to replace them, or use another output folder")
        elif old is None and overwrite:
            self._remove_outputs()
        if old is not None:
            diff = _differences(old, job)
            if diff:
                raise ResumeMismatchError(
                    f"{self.out} holds a job with other {', '.join(d[0] for d in diff)} "
                    f"({'; '.join(d[1] for d in diff)}); to resume, run it with the same input and options; "
                    f"to start over in this folder, pass overwrite=True (--overwrite)")
        done = self._verify_shards(old, shard_ids, int(job["shard_size"]))
        self.manifest = dict(job)
        self.manifest.update({
            "liquidlfm_bulk": FORMAT_VERSION,
            "status": "running",
            "created": old.get("created", _now()) if old else _now(),
            "updated": _now(),
            "shards_total": len(shard_ids),
            "shards": done,
            "runs": (old.get("runs", []) if old else []),
        })
        self.manifest.pop("error", None)
        self._recount()
        self._write_manifest()
        return sorted(int(e["index"]) for e in done.values())

    def _verify_shards(self, old: Optional[dict], shard_ids: Sequence[Sequence], shard_size: int) -> Dict[str, dict]:
        """The finished shards that can be trusted: listed in the old manifest with a matching file
        digest, or on disk unlisted (a kill between rename and manifest) with exactly the right ids."""
        listed = (old or {}).get("shards", {})
        done: Dict[str, dict] = {}
        for path in sorted(self.out.glob("part-*.jsonl")):
            name = path.name
            try:
                k = int(name[5:10])
            except ValueError:
                continue
            if name != shard_name(k) or k >= len(shard_ids):
                path.unlink()  # not a shard of this job (a removed input's tail): would be read as output
                continue
            entry = listed.get(name)
            data = path.read_bytes()
            if entry is not None and entry.get("sha256") == hashlib.sha256(data).hexdigest() \
                    and entry.get("ids_sha256") == ids_digest(shard_ids[k]):
                done[name] = entry
                continue
            adopted = _adopt(data, shard_ids[k])
            if adopted is None:
                path.unlink()
                continue
            entry = adopted
            first = k * shard_size
            entry.update(index=k, file=name, records=[first, first + len(shard_ids[k])],
                         sha256=hashlib.sha256(data).hexdigest(), bytes=len(data), ids_sha256=ids_digest(shard_ids[k]))
            done[name] = entry
        return done

    # ---- writing ----

    def write_shard(self, k: int, rows: List[dict], *, first_record: int, generated_tokens: int = 0) -> dict:
        """Write shard k (rows in record order) atomically, then enter it in the manifest."""
        lines = [json.dumps(r, ensure_ascii=False) + "\n" for r in rows]
        data = "".join(lines).encode("utf-8")
        name = shard_name(k)
        atomic_write_bytes(self.out / name, [data])
        errors = sum(1 for r in rows if "error" in r)
        entry = {
            "index": k, "file": name, "records": [first_record, first_record + len(rows)],
            "first_id": rows[0]["id"] if rows else None, "last_id": rows[-1]["id"] if rows else None,
            "count": len(rows), "ok": len(rows) - errors, "errors": errors,
            "truncated": sum(1 for r in rows if r.get("truncated")),
            "generated_tokens": int(generated_tokens),
            "ids_sha256": ids_digest(r["id"] for r in rows),
            "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
        }
        self.manifest["shards"][name] = entry
        self._recount()
        self.manifest["updated"] = _now()
        self._write_manifest()
        return entry

    def add_run(self, run: Dict[str, Any]) -> None:
        self.manifest.setdefault("runs", []).append(run)
        self._write_manifest()

    def finish(self, status: str, error: Optional[str] = None) -> None:
        self.manifest["status"] = status
        if error:
            self.manifest["error"] = error
        self.manifest["updated"] = _now()
        self._write_manifest()

    @property
    def counts(self) -> Dict[str, int]:
        return self.manifest["counts"]

    # ---- internals ----

    def _recount(self) -> None:
        shards = self.manifest["shards"].values()
        self.manifest["shards"] = dict(sorted(self.manifest["shards"].items()))
        self.manifest["counts"] = {
            "shards_done": len(self.manifest["shards"]),
            "records_done": sum(e["count"] for e in shards),
            "ok": sum(e["ok"] for e in shards),
            "errors": sum(e["errors"] for e in shards),
            "truncated": sum(e.get("truncated", 0) for e in shards),
            "generated_tokens": sum(e.get("generated_tokens", 0) for e in shards),
        }

    def _write_manifest(self) -> None:
        atomic_write_bytes(self.out / MANIFEST, [_dump(self.manifest)])

    def _read_manifest(self) -> Optional[dict]:
        path = self.out / MANIFEST
        if not path.exists():
            return None
        try:
            m = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise BulkError(f"{path} is not a bulk manifest ({e}); pass overwrite=True (--overwrite) to start "
                            "over in this folder") from None
        if not isinstance(m, dict) or m.get("liquidlfm_bulk") != FORMAT_VERSION:
            raise BulkError(f"{path} is not a liquidlfm bulk manifest (version {FORMAT_VERSION}); pass "
                            "overwrite=True (--overwrite) to start over in this folder")
        return m

    def _remove_temp_files(self) -> None:
        for p in self.out.glob(".*.tmp"):  # a killed job's unfinished atomic writes
            if p.name.startswith((".part-", f".{MANIFEST}.")):
                p.unlink()

    def _remove_outputs(self) -> None:
        for p in self.out.glob("part-*.jsonl"):
            p.unlink()
        m = self.out / MANIFEST
        if m.exists():
            m.unlink()


_IDENTITY = ("task", "records", "records_sha256", "shard_size", "options", "model")


def _differences(old: dict, new: dict) -> List[tuple]:
    """(what, how) for each part of the job's identity that differs."""
    out = []
    for key in _IDENTITY:
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if key == "options" and isinstance(a, dict) and isinstance(b, dict):
            keys = sorted(set(a) | set(b))
            how = ", ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in keys if a.get(k) != b.get(k))
            out.append(("options", how))
        elif key == "model" and isinstance(a, dict) and isinstance(b, dict):
            out.append(("model", f"{a.get('path')} -> {b.get('path')}"))
        elif key == "records_sha256":
            out.append(("input", "the records' ids or texts changed"))
        elif key == "records":
            out.append(("input size", f"{a} -> {b} records"))
        else:
            out.append((key, f"{a!r} -> {b!r}"))
    return out


def _adopt(data: bytes, ids: Sequence) -> Optional[dict]:
    """Counts for a shard file whose lines are exactly one JSON object per expected id, in order;
    None if it is anything else (then it is redone)."""
    try:
        rows = [json.loads(line) for line in data.decode("utf-8").splitlines()]
    except (ValueError, UnicodeDecodeError):
        return None
    if len(rows) != len(ids) or any(not isinstance(r, dict) or r.get("id") != i or type(r.get("id")) is not type(i)
                                    for r, i in zip(rows, ids)):
        return None
    errors = sum(1 for r in rows if "error" in r)
    return {"first_id": ids[0] if ids else None, "last_id": ids[-1] if ids else None,
            "count": len(rows), "ok": len(rows) - errors, "errors": errors,
            "truncated": sum(1 for r in rows if r.get("truncated")), "generated_tokens": 0, "adopted": True}


def read_output(out: Union[str, os.PathLike]) -> Iterator[dict]:
    """The output records of a bulk job, in input order (shard by shard). Raises BulkError if the
    job has not finished every shard (the manifest's status says why)."""
    out = Path(out)
    path = out / MANIFEST
    if not path.exists():
        raise BulkError(f"{out} has no {MANIFEST}: not the output of a bulk job")
    m = json.loads(path.read_text(encoding="utf-8"))
    total = m.get("shards_total", 0)
    missing = [k for k in range(total) if shard_name(k) not in m.get("shards", {})]
    if missing:
        raise BulkError(f"{out}: {len(missing)} of {total} shards are not done (status {m.get('status')!r}); "
                        "rerun the job to finish them")
    for k in range(total):
        with open(out / shard_name(k), encoding="utf-8") as f:
            for line in f:
                yield json.loads(line)
