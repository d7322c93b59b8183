"""File helpers shared by the package."""
import os
import tempfile
from pathlib import Path
from typing import Iterable


def atomic_write_bytes(path, parts: Iterable[bytes]) -> None:
    """Write parts to path so that a reader sees the old file or the whole new one, never a part:
    a temporary file in the same folder, fsynced, then renamed over path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            for part in parts:
                f.write(part)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
