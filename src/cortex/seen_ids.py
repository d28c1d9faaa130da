"""Bounded-memory duplicate detection over a stream of point ids (8 bytes per id).

Ids are hashed to 64 bits and kept in a few sorted numpy runs, merged LSM-style, so
membership is a handful of binary searches and memory stays at 8 bytes per distinct id
(1M ids = 8 MB), far below a Python set.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np


def id_keys(ids: list[int | str]) -> np.ndarray:
    """64-bit keys for Qdrant ids: the int itself, or the low 64 bits of the UUID."""
    if isinstance(ids, np.ndarray) and ids.dtype.kind in "iu":
        return ids.astype(np.uint64)
    return np.fromiter(
        (i if isinstance(i, int) else uuid.UUID(i).int & 0xFFFFFFFFFFFFFFFF for i in ids),
        dtype=np.uint64, count=len(ids),
    )


class SeenIds:
    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []
        self.count = 0

    def __contains__(self, key: int) -> bool:
        return bool(self.contains(np.array([key], dtype=np.uint64))[0])

    def contains(self, keys: np.ndarray) -> np.ndarray:
        hit = np.zeros(len(keys), dtype=bool)
        for run in self._runs:
            pos = np.searchsorted(run, keys)
            pos[pos == len(run)] = 0
            hit |= run[pos] == keys if len(run) else False
        return hit

    def add(self, keys: np.ndarray) -> None:
        """Add keys (callers pass keys not yet present)."""
        run = np.unique(keys)
        self.count += len(run)
        # Merge while the newest run is at least as large as the one before (keeps O(log n) runs).
        while self._runs and len(self._runs[-1]) <= len(run):
            run = np.union1d(self._runs.pop(), run)
        self._runs.append(run)


class SeenLog:
    """Append-only log of the seen id keys (8 bytes each), so duplicates are still detected after a resume.

    Opening truncates the log to ``offset`` (the checkpoint's); :meth:`load` puts its keys
    back into a :class:`SeenIds`; :meth:`write` appends the keys of each committed batch
    (unbuffered: a checkpoint never counts bytes still in a buffer).  Chosen over re-reading
    the already migrated part of the source on resume: 8 bytes per id, no second read.
    """

    def __init__(self, path: Path, offset: int) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(path, "ab", buffering=0)  # noqa: SIM115 - closed in close()
        if self._fh.seek(0, os.SEEK_END) < offset:
            offset = 0  # the log was deleted: duplicates across this resume go uncounted (ordering is unaffected)
        self._fh.truncate(offset)
        self.offset = offset

    def load(self, seen: SeenIds) -> None:
        keys = np.fromfile(self.path, dtype=np.uint64, count=self.offset // 8)
        if len(keys):
            seen.add(keys)

    def write(self, keys: np.ndarray | None) -> None:
        if keys is not None and len(keys):
            self.offset += self._fh.write(np.ascontiguousarray(keys, dtype=np.uint64).tobytes())

    def close(self) -> None:
        self._fh.close()



class RecordingSeen(SeenIds):
    """SeenIds that remembers the keys each ``validate`` call added, to log them when the batch commits."""

    def __init__(self) -> None:
        super().__init__()
        self.added: list[np.ndarray] = []

    def add(self, keys: np.ndarray) -> None:
        super().add(keys)
        self.added.append(keys)

    def take(self) -> np.ndarray | None:
        out = np.concatenate(self.added) if self.added else None
        self.added = []
        return out

