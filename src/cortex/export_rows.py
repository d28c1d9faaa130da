"""Which rows of a source batch an export keeps: shared by ``export`` (JSONL, :func:`cortex.api.export`) and
the lossless Parquet export (:mod:`cortex.snapshot.parquet_format`, also used by ``backup``).

A row is kept when its vector is finite and has the source's dimension; the others become
:class:`~cortex.sources.base.Rejected` records for the dead-letter file.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cortex.sources.base import Rejected

BAD_VECTOR = "vector has a non-finite value or wrong dimension"


def py_id(rid: Any) -> Any:
    """A source id as a plain Python value (a numpy integer becomes an int: a big int stays a number)."""
    return rid.item() if isinstance(rid, np.generic) else rid


def good_rows(batch: Any, dim: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The batch's vectors as float32 and a mask of the rows to keep (finite, and ``dim`` wide when known)."""
    vecs = np.asarray(batch.vectors, dtype=np.float32)
    if not len(batch):
        return vecs.reshape(0, dim or 0), np.ones(0, bool)
    ok = np.isfinite(vecs).all(axis=1)
    if dim and vecs.shape[1] != dim:
        ok[:] = False
    return vecs, ok


def bad_rows(batch: Any, ok: np.ndarray) -> list[Rejected]:
    """A :class:`Rejected` for every row ``ok`` does not keep, in row order."""
    return [Rejected(batch.location(i), BAD_VECTOR, id=py_id(batch.ids[i])) for i in np.flatnonzero(~ok).tolist()]
