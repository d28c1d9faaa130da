"""Small state files replaced atomically (write a temp file, fsync, rename, fsync the folder).

A reader never sees a torn file: it gets the old version or the new one. Used for state that has one
writer per file (alias tables, rollout units, partitions), so no cross-process lock is needed to read it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import orjson


def write_bytes(path: str | Path, data: bytes) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dfd = os.open(p.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def write_json(path: str | Path, obj: Any) -> None:
    write_bytes(path, orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS, default=str) + b"\n")


def read_json(path: str | Path, default: Any = None) -> Any:
    """The file's JSON, or ``default`` when it does not exist."""
    try:
        return orjson.loads(Path(path).read_bytes())
    except FileNotFoundError:
        return default
