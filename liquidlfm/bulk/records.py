"""Reading a bulk job's input: records with an id and a text, from JSONL, Parquet, plain text files or
a folder of documents, checked before any work starts.

A record that can be named by its id but not translated (invalid UTF-8, an empty or non-string text)
is kept with a per-record error: it appears in the output with that error, and the job goes on. What
cannot be named (a line that is not JSON, a missing or unusable id) or could be named twice
(duplicate ids) stops the job before it starts, with the file and line.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

__all__ = ["Record", "BulkInputError", "read_records", "input_format", "describe_inputs", "FORMATS",
           "DOCUMENT_SUFFIXES"]

FORMATS = ("jsonl", "parquet", "text", "folder")
DOCUMENT_SUFFIXES = (".md", ".markdown", ".txt")  # what a folder input reads, one record per file
_JSONL_SUFFIXES = (".jsonl", ".ndjson")
_PARQUET_SUFFIXES = (".parquet", ".pq")


class BulkInputError(ValueError):
    """The input cannot be read as records (bad format, unusable or duplicate ids): nothing was started."""


@dataclass
class Record:
    """One unit of work: id (str or int, unique in the job), text, and error (set when the record
    cannot be processed: the output then carries the error instead of a result)."""
    id: Union[str, int]
    text: str
    error: Optional[str] = None
    where: str = ""  # file:line, for messages


def input_format(path: Union[str, os.PathLike]) -> str:
    """The format a path is read as: "folder" for a directory, else from its suffix ("jsonl",
    "parquet", or "text" for anything else)."""
    p = Path(path)
    if p.is_dir():
        return "folder"
    suffix = p.suffix.lower()
    if suffix in _JSONL_SUFFIXES:
        return "jsonl"
    if suffix in _PARQUET_SUFFIXES:
        return "parquet"
    return "text"


def _as_paths(source) -> List[Path]:
    if isinstance(source, (str, os.PathLike)):
        return [Path(source)]
    if isinstance(source, (list, tuple)) and source and all(isinstance(s, (str, os.PathLike)) for s in source):
        return [Path(s) for s in source]
    raise TypeError("source must be a path, a list of paths, or a list of {id, text} dicts")


def describe_inputs(source) -> List[Dict[str, Any]]:
    """What the manifest records about the inputs: path, format and size of each (None for in-memory records)."""
    if _is_in_memory(source):
        return [{"path": None, "format": "records", "records": len(source)}]
    out = []
    for p in _as_paths(source):
        fmt = input_format(p)
        size = (sum(f.stat().st_size for f in _folder_documents(p)) if fmt == "folder" else p.stat().st_size)
        out.append({"path": str(p.resolve()), "format": fmt, "bytes": size})
    return out


def _is_in_memory(source) -> bool:
    return isinstance(source, (list, tuple)) and bool(source) and all(isinstance(s, dict) for s in source)


def _check_id(value, where: str, field: str) -> Union[str, int]:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BulkInputError(f"{where}: the id field {field!r} is {_kind(value)}; ids must be strings or integers")
    if isinstance(value, str):
        if not value:
            raise BulkInputError(f"{where}: the id field {field!r} is empty")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise BulkInputError(f"{where}: the id is not valid UTF-8 ({value!r})") from None
    return value


def _kind(value) -> str:
    if value is None:
        return "null"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _text_error(text) -> Optional[str]:
    """Why a text cannot be processed, or None."""
    if text is None:
        return "no text"
    if not isinstance(text, str):
        return f"the text is {_kind(text)}, not a string"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        bad = text[e.start]
        byte = ord(bad) - 0xDC00 if 0xDC80 <= ord(bad) <= 0xDCFF else None
        what = f"byte 0x{byte:02x}" if byte is not None else f"lone surrogate U+{ord(bad):04X}"
        return f"invalid UTF-8: {what} at character {e.start}"
    if not text.strip():
        return "empty text"
    return None


def _record(rid, text, where: str) -> Record:
    err = _text_error(text)
    # text kept only when usable: an invalid one cannot be encoded for Ray or the output anyway
    return Record(rid, text if err is None else "", err, where)


def _decode_line(raw: bytes) -> str:
    # surrogateescape: an invalid byte survives as U+DC80..U+DCFF, so the line still parses and the
    # record's id can be reported along with the bad byte
    return raw.decode("utf-8", "surrogateescape")


def _read_jsonl(path: Path, id_field: str, text_field: str) -> Iterator[Record]:
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            where = f"{path}:{n}"
            line = _decode_line(raw)
            if not line.strip():
                continue  # blank lines carry no record (JSONL writers often end with one)
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise BulkInputError(f"{where}: not a JSON object ({e.msg} at column {e.colno})") from None
            if not isinstance(obj, dict):
                raise BulkInputError(f"{where}: expected a JSON object with {id_field!r} and {text_field!r}, "
                                     f"got {type(obj).__name__}")
            if id_field not in obj:
                raise BulkInputError(f"{where}: no {id_field!r} field (fields: {', '.join(list(obj)[:8])}); "
                                     f"name the id field with id_field= / --id-field")
            rid = _check_id(obj[id_field], where, id_field)
            if text_field not in obj:
                yield Record(rid, "", f"no {text_field!r} field", where)
                continue
            yield _record(rid, obj[text_field], where)


def _read_parquet(path: Path, id_field: str, text_field: str) -> Iterator[Record]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise BulkInputError(f"{path}: reading Parquet needs pyarrow (pip install 'liquidlfm[bulk]')") from None
    pf = pq.ParquetFile(path)
    names = pf.schema_arrow.names
    for field in (id_field, text_field):
        if field not in names:
            raise BulkInputError(f"{path}: no column {field!r} (columns: {', '.join(names[:12])}); "
                                 f"name it with id_field= / text_field= (--id-field / --text-field)")
    row = 0
    for batch in pf.iter_batches(columns=[id_field, text_field], batch_size=4096):
        ids = batch.column(0).to_pylist()
        texts = batch.column(1)
        binary = texts.type in _binary_types()
        for rid, text in zip(ids, texts.to_pylist()):
            row += 1
            where = f"{path}:row {row}"
            rid = _check_id(rid, where, id_field)
            if binary and text is not None:
                text = text.decode("utf-8", "surrogateescape")
            yield _record(rid, text, where)


def _binary_types():
    import pyarrow as pa
    return (pa.binary(), pa.large_binary())


def _read_text(path: Path, id_prefix: Optional[str]) -> Iterator[Record]:
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            line = _decode_line(raw).rstrip("\r\n")
            rid = n if id_prefix is None else f"{id_prefix}:{n}"
            yield _record(rid, line, f"{path}:{n}")


def _folder_documents(folder: Path) -> List[Path]:
    files = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in DOCUMENT_SUFFIXES
             and not any(part.startswith(".") for part in p.relative_to(folder).parts)]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def _read_folder(folder: Path, id_prefix: Optional[str]) -> Iterator[Record]:
    docs = _folder_documents(folder)
    if not docs:
        raise BulkInputError(f"{folder}: no {'/'.join(DOCUMENT_SUFFIXES)} files in this folder")
    for p in docs:
        rel = p.relative_to(folder).as_posix()
        rid = rel if id_prefix is None else f"{id_prefix}/{rel}"
        yield _record(rid, p.read_bytes().decode("utf-8", "surrogateescape"), str(p))


def _read_in_memory(items: Sequence[dict], id_field: str, text_field: str) -> Iterator[Record]:
    for n, obj in enumerate(items):
        where = f"record {n}"
        if id_field not in obj:
            raise BulkInputError(f"{where}: no {id_field!r} key")
        rid = _check_id(obj[id_field], where, id_field)
        yield _record(rid, obj.get(text_field), where) if text_field in obj else \
            Record(rid, "", f"no {text_field!r} field", where)


def iter_records(source, *, id_field: str = "id", text_field: str = "text",
                 format: Optional[str] = None) -> Iterator[Record]:
    """The records of source, in order (see read_records)."""
    if _is_in_memory(source):
        yield from _read_in_memory(source, id_field, text_field)
        return
    paths = _as_paths(source)
    several = len(paths) > 1
    for p in paths:
        if not p.exists():
            raise BulkInputError(f"{p}: no such file or folder")
        fmt = format or input_format(p)
        if fmt not in FORMATS:
            raise BulkInputError(f"unknown input format {fmt!r}; one of {', '.join(FORMATS)}")
        if fmt == "folder" and not p.is_dir():
            raise BulkInputError(f"{p}: format 'folder' needs a directory")
        if fmt != "folder" and p.is_dir():
            raise BulkInputError(f"{p} is a folder; format {fmt!r} needs a file")
        prefix = p.name if several else None  # ids stay unique across several text files / folders
        if fmt == "jsonl":
            yield from _read_jsonl(p, id_field, text_field)
        elif fmt == "parquet":
            yield from _read_parquet(p, id_field, text_field)
        elif fmt == "text":
            yield from _read_text(p, prefix)
        else:
            yield from _read_folder(p, prefix)


def read_records(source, *, id_field: str = "id", text_field: str = "text",
                 format: Optional[str] = None) -> Tuple[List[Record], str]:
    """All records of source and a digest of their ids and texts (what a rerun must match to resume).

    source: a path or a list of paths (JSONL, Parquet, plain text: one record per line with id = the
    line number, or a folder: one record per .md/.markdown/.txt file with id = its relative path; with
    several paths, text and folder ids are prefixed by the file's name), or a list of dicts. format:
    force one of FORMATS for every path (default: from the suffix). Raises BulkInputError for
    unreadable input and for duplicate ids (naming both places)."""
    records = list(iter_records(source, id_field=id_field, text_field=text_field, format=format))
    if not records:
        raise BulkInputError("the input holds no records")
    seen: Dict[Tuple[str, Union[str, int]], str] = {}
    digest = hashlib.sha256()
    for r in records:
        key = (type(r.id).__name__, r.id)
        if key in seen:
            raise BulkInputError(f"duplicate id {r.id!r}: {seen[key]} and {r.where}; every record needs its own id")
        seen[key] = r.where
        digest.update(json.dumps([r.id, r.text, r.error], ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return records, digest.hexdigest()


def records_from_texts(texts: Iterable[str]) -> List[dict]:
    """[{"id": i, "text": t}] for a plain list of strings (ids 0, 1, ...)."""
    return [{"id": i, "text": t} for i, t in enumerate(texts)]
