"""Bounded-memory duplicate detection over a stream of point ids (8 bytes per id).

Ids are hashed to 64 bits and kept in a few sorted numpy runs, merged LSM-style, so
membership is a handful of binary searches and memory stays at 8 bytes per distinct id
(1M ids = 8 MB), far below a Python set.
"""

from __future__ import annotations

import uuid

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
