"""Data shared by the bench scripts (generated, never downloaded)."""

from __future__ import annotations

from collections.abc import Iterator
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



def embedding_chunks(n: int, dim: int, *, seed: int = 0, clusters: int = 300, rank: int = 256,
                     spread: float = 1.0, noise: float = 1.0, chunk: int = 50_000) -> Iterator[np.ndarray]:
    """Unit vectors shaped like text embeddings, ``chunk`` rows at a time: a few hundred Gaussian clusters
    in a low-rank subspace plus isotropic noise, normalized (float32; ``noise`` relative to the signal norm)."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((dim, rank)))[0].T.astype(np.float32)  # (rank, dim), orthonormal
    centers = rng.standard_normal((clusters, rank)).astype(np.float32)
    for lo in range(0, n, chunk):
        m = min(n, lo + chunk) - lo
        z = centers[rng.integers(0, clusters, m)] + spread * rng.standard_normal((m, rank)).astype(np.float32)
        x = z @ basis
        x += (noise * np.linalg.norm(x, axis=1, keepdims=True) / np.sqrt(dim)
              * rng.standard_normal((m, dim)).astype(np.float32))
        yield x / np.linalg.norm(x, axis=1, keepdims=True)


def embedding_like(n: int, dim: int, seed: int = 0) -> np.ndarray:
    return np.concatenate(list(embedding_chunks(n, dim, seed=seed)))


def write_embedding_like(path: Path, n: int, dim: int, seed: int = 0) -> None:
    """:func:`embedding_chunks` rows written to a .npy in slices (bounded memory)."""
    m = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
    lo = 0
    for x in embedding_chunks(n, dim, seed=seed):
        m[lo:lo + len(x)] = x
        lo += len(x)
    m.flush()
    del m
