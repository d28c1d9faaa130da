"""Data shared by the bench scripts (generated, never downloaded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_matrix(path: Path, n: int, dim: int) -> None:
    """A float32 .npy of standard-normal rows, written in slices (the writer never holds the whole matrix)."""
    rng = np.random.default_rng(0)
    m = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
    for lo in range(0, n, 50_000):
        hi = min(n, lo + 50_000)
        m[lo:hi] = rng.standard_normal((hi - lo, dim), dtype=np.float32)
    m.flush()
    del m
