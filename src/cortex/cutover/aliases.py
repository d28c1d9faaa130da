"""Aliases for the embedded target (Qdrant Edge has none), and the cutover/rollback history.

Embedded: one small JSON file in the storage directory, ``.cortex-aliases.json``
(``{"aliases": {alias: collection}}``).  It is replaced atomically (write a temporary file,
fsync, rename, fsync the directory), so a reader in another process sees either the old
table or the new one, never a torn one.  Writers take ``.cortex-aliases.lock`` (flock).

History: one JSON line per cutover / rollback (time, alias, collection, previous
collection, gates with their figures).  Embedded: ``.cortex-aliases.history.jsonl`` beside
the alias file; server: ``<state dir>/alias-history/<target>.jsonl``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from cortex.errors import TargetError

ALIAS_FILE = ".cortex-aliases.json"
HISTORY_FILE = ".cortex-aliases.history.jsonl"


def alias_file(root: str | Path) -> Path:
    return Path(root) / ALIAS_FILE


_cache: dict[str, tuple[tuple[int, int, int], dict[str, str]]] = {}


def read_aliases(root: str | Path) -> dict[str, str]:
    """The alias table of an embedded storage directory (``{}`` when it has none); cached by file identity."""
    f = alias_file(root)
    try:
        st = f.stat()
    except FileNotFoundError:
        return {}
    ident = (st.st_ino, st.st_mtime_ns, st.st_size)
    hit = _cache.get(str(f))
    if hit is not None and hit[0] == ident:
        return dict(hit[1])
    try:
        table = dict(orjson.loads(f.read_bytes()).get("aliases") or {})
    except (ValueError, OSError) as e:
        raise TargetError(f"{f}: unreadable alias table ({e}); restore it from "
                          f"{Path(root) / HISTORY_FILE} or delete it and run `cortex qdrant cutover` again") from e
    _cache[str(f)] = (ident, table)
    return dict(table)


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / ".cortex-aliases.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def set_aliases(root: str | Path, changes: dict[str, str | None]) -> dict[str, str]:
    """Apply ``{alias: collection}`` (None deletes) to the embedded alias table in one atomic replace."""
    root = Path(root)
    with _locked(root):
        _cache.pop(str(alias_file(root)), None)
        table = read_aliases(root)
        for a, c in changes.items():
            if c is None:
                table.pop(a, None)
            else:
                table[a] = c
        _write_atomic(alias_file(root), orjson.dumps({"aliases": table}, option=orjson.OPT_INDENT_2))
        return table


# -- history ----------------------------------------------------------------------------------------
def history_file(target_kind: str, location: str, state_dir: str | Path) -> Path:
    if target_kind == "embedded":
        return Path(location) / HISTORY_FILE
    key = hashlib.sha256(location.encode()).hexdigest()[:16]
    return Path(state_dir) / "alias-history" / f"{key}.jsonl"


def record(path: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """Append one history entry (fsynced); adds its time."""
    entry = {"time": time.time(), "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **entry}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as fh:
        fh.write(orjson.dumps(entry, default=str, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")
        fh.flush()
        os.fsync(fh.fileno())
    return entry


def read_history(path: Path, alias: str | None = None) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_bytes().splitlines():
        with contextlib.suppress(ValueError):
            e = orjson.loads(line)
            if alias is None or e.get("alias") == alias:
                out.append(e)
    return out
