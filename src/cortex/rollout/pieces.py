"""One small JSON file per independent piece of a job, one writer each; the job's state is their union.

See :mod:`cortex.rollout` for the design.  Used by rollouts (a piece = a unit) and meant for
partitions.  File names come from piece names: names made of letters, digits, ``.``, ``_``, ``-``
are used as they are; any other name gets a readable prefix plus a short hash.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from cortex import atomic_file
from cortex.errors import CortexError
from cortex.state import acquire_lock, is_locked, release_lock

_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,100}$")


def file_stem(name: str) -> str:
    """A file name for piece ``name`` (stable, unique, safe on every filesystem)."""
    if _SAFE.match(name):
        return name
    prefix = re.sub(r"[^A-Za-z0-9._\-]+", "_", name)[:40].strip("._-") or "piece"
    return f"{prefix}-{hashlib.sha256(name.encode()).hexdigest()[:10]}"


class PieceStore:
    """``dir/<piece>.json`` files (atomic replace) and ``dir/<piece>.lock`` (flock of its writer)."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)

    def path(self, name: str) -> Path:
        return self.dir / f"{file_stem(name)}.json"

    def read(self, name: str) -> dict[str, Any] | None:
        return self._load(self.path(name))

    def _load(self, p: Path) -> dict[str, Any] | None:
        try:
            data = atomic_file.read_json(p)
        except orjson.JSONDecodeError as e:
            raise CortexError(f"{p}: damaged piece state ({e}); restore it from a copy or delete it to "
                              "start that piece over") from e
        return data

    def write(self, name: str, data: dict[str, Any]) -> None:
        """Replace the piece's file (the caller is its one writer: it holds :meth:`lock`)."""
        data = {**data, "name": name, "updated": time.time()}
        atomic_file.write_json(self.path(name), data)

    def all(self) -> dict[str, dict[str, Any]]:
        """Every piece, by name."""
        out: dict[str, dict[str, Any]] = {}
        if self.dir.is_dir():
            for p in sorted(self.dir.glob("*.json")):
                d = self._load(p)
                if d is not None and "name" in d:
                    out[d["name"]] = d
        return out

    def mtimes(self) -> dict[str, tuple[int, int, int]]:
        """File name -> (inode, mtime ns, size), to notice a change cheaply (the router polls this).

        Every write replaces the file by a new one (a new inode), so a change shows even within
        the filesystem's timestamp granularity.
        """
        if not self.dir.is_dir():
            return {}
        out = {}
        for p in self.dir.glob("*.json"):
            with contextlib.suppress(FileNotFoundError):
                st = p.stat()
                out[p.name] = (st.st_ino, st.st_mtime_ns, st.st_size)
        return out

    @contextlib.contextmanager
    def lock(self, name: str, what: str) -> Iterator[None]:
        """Be the piece's one writer while the block runs (another process gets a one-line busy error)."""
        fd = acquire_lock(self.dir / f"{file_stem(name)}.lock",
                          f"{what} is busy in another process (pid {{pid}}); wait for it to finish or stop it")
        try:
            yield
        finally:
            release_lock(fd)

    def is_locked(self, name: str) -> bool:
        return is_locked(self.dir / f"{file_stem(name)}.lock")

    def merge(self, other: str | Path) -> list[str]:
        """Union with another copy of the pieces (e.g. from another machine); the later ``updated`` wins.

        Returns the names taken from ``other``.
        """
        taken = []
        mine = self.all()
        for name, data in PieceStore(other).all().items():
            if name not in mine or float(data.get("updated", 0)) > float(mine[name].get("updated", 0)):
                atomic_file.write_json(self.path(name), data)
                taken.append(name)
        return taken
