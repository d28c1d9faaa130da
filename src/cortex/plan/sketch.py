"""Bounded-memory distinct counting: a KMV (k minimum values) sketch over 64-bit hashes."""

from __future__ import annotations

import hashlib

import numpy as np

_MASK = (1 << 64) - 1


def hash64(value: object) -> int:
    """A stable 64-bit hash of a JSON-like value (type-tagged, so 1 and "1" differ)."""
    h = hashlib.blake2b(f"{type(value).__name__}:{value!r}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little")


class KMV:
    """Keeps the ``k`` smallest distinct hashes; exact below ``k`` distinct values, ~1/sqrt(k) error above."""

    def __init__(self, k: int = 1024) -> None:
        self.k = k
        self._mins = np.zeros(0, dtype=np.uint64)
        self._pending: list[int] = []

    def add(self, h: int) -> None:
        self._pending.append(h)
        if len(self._pending) >= 4 * self.k:
            self._merge()

    def _merge(self) -> None:
        if self._pending:
            both = np.concatenate([self._mins, np.fromiter(self._pending, dtype=np.uint64, count=len(self._pending))])
            self._mins = np.unique(both)[: self.k]
            self._pending = []

    def estimate(self) -> int:
        self._merge()
        if len(self._mins) < self.k:
            return len(self._mins)
        kth = float(self._mins[-1]) / float(_MASK)
        return int(round((self.k - 1) / kth)) if kth > 0 else len(self._mins)

    @property
    def exact(self) -> bool:
        self._merge()
        return len(self._mins) < self.k
