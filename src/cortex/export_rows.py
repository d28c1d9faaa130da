"""Which rows of a source batch an export keeps: shared by ``export`` (JSONL, :func:`cortex.api.export`) and
the lossless Parquet export (:mod:`cortex.snapshot.parquet_format`, also used by ``backup``).

A row is kept when its vector is finite and has the source's dimension; the others become
:class:`~cortex.sources.base.Rejected` records for the dead-letter file.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np

from cortex.sources.base import Rejected

WriteRows = Callable[[Any, np.ndarray, list[int]], None]

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


def stream_export(src: Any, out: Path, summary: Any, sink: Callable[[Path], AbstractContextManager[WriteRows]], *,
                  dim: int | None, batch_size: int, progress: Any = None,
                  check: Callable[[Any], None] | None = None) -> None:
    """Stream ``src`` into ``sink`` at ``out``: kept rows written, the others to ``out.rejected.jsonl``.

    ``sink(tmp)`` opens the output at ``out.partial`` and yields a ``write(batch, vectors, keep)`` callable; the
    file is renamed to ``out`` only when every batch is written, so a killed export never leaves a short file
    under the real name. ``summary`` gets read / written / rejected / skipped / dead_letter (read = written +
    rejected + skipped); ``check(batch)`` may refuse a batch the format cannot hold.
    """
    from cortex.dead_letter import DeadLetter

    dl = DeadLetter(out.with_name(out.name + ".rejected.jsonl"))
    if progress is not None:
        progress.start(src.info().count)
    tmp = out.with_name(out.name + ".partial")
    with sink(tmp) as write:
        for batch in src.batches(batch_size):
            if check is not None:
                check(batch)
            summary.read += batch.read
            summary.skipped += batch.skipped
            vecs, ok = good_rows(batch, dim)
            rejected = list(batch.rejected) + bad_rows(batch, ok)
            keep = np.flatnonzero(ok).tolist()
            if keep:
                write(batch, vecs, keep)
                summary.written += len(keep)
            dl.write(rejected)
            summary.rejected += len(rejected)
            if progress is not None:
                progress.advance(batch.read)
    tmp.replace(out)
    dl.close()
    if progress is not None:
        progress.stop()
    summary.dead_letter = str(dl.path) if dl.count else None
