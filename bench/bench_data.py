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


def embedding_chunks(n: int, dim: int, *, seed: int = 0, clusters: int = 2000, rank: int = 256,
                     alpha: float = 0.8, spread: float = 1.0, noise: float = 0.5, chunk: int = 50_000
                     ) -> Iterator[np.ndarray]:
    """Unit vectors shaped like text embeddings, ``chunk`` rows at a time (float32).

    A Gaussian mixture of ``clusters`` clusters of very unequal size (Dirichlet weights) in a
    ``rank``-dimensional subspace whose variance decays as a power law (index**-alpha, as the spectra
    of real embedding models do). Each cluster has its own anisotropic spread (per-direction scales,
    log-normal around the global spectrum), so clusters overlap and near neighbours are ambiguous;
    then isotropic noise over all ``dim`` dimensions (``noise`` relative to the signal norm), and
    normalized. HNSW at Qdrant's defaults does not reach recall 1.0 on it: at 50k points FAISS HNSW
    (m 16, ef_construct 100) gives recall@10 0.96 / 0.98 / 0.995 at ef 32 / 64 / 128, and m 8,
    ef_construct 64 gives 0.89 / 0.93 / 0.96, so the recall goal decides between settings."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((dim, rank)))[0].T.astype(np.float32)  # (rank, dim), orthonormal
    spec = np.arange(1, rank + 1, dtype=np.float64) ** -alpha
    spec = (spec / np.sqrt((spec ** 2).sum()) * np.sqrt(rank)).astype(np.float32)
    centers = (rng.standard_normal((clusters, rank)) * spec).astype(np.float32)
    scales = (spread * spec * np.exp(0.5 * rng.standard_normal((clusters, rank)))).astype(np.float32)
    weights = rng.dirichlet(np.full(clusters, 0.5))
    for lo in range(0, n, chunk):
        m = min(n, lo + chunk) - lo
        c = rng.choice(clusters, m, p=weights)
        x = (centers[c] + scales[c] * rng.standard_normal((m, rank)).astype(np.float32)) @ basis
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
