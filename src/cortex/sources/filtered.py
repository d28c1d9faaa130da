"""A source seen through ``--where``: the records of the inner source whose payload matches.

Used for sources that cannot filter themselves (see ``Source.push_down_where``): every batch
is read whole and :func:`cortex.where.matches` runs over its payloads; the rows left out count
in ``Batch.skipped`` so ``read = written + rejected + skipped`` still holds.  Cursors are the
inner source's, so a subset resumes exactly where it stopped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from cortex.sources.base import Batch, Source, SourceInfo
from cortex.where import Expr, matches, to_text


class FilteredSource(Source):
    """Wraps ``inner``; everything but ``batches`` and ``search`` is the inner source's."""

    def __init__(self, inner: Source, expr: Expr) -> None:  # noqa: D107 - no Source.__init__: shares inner's
        self.inner, self.expr = inner, expr
        self.kind = inner.kind  # type: ignore[misc]
        self.path, self.options = inner.path, inner.options

    @classmethod
    def detect(cls, path: str) -> bool:
        return False

    def info(self) -> SourceInfo:
        info = self.inner.info()  # count: every record is read (the skipped ones too), so progress stays right
        note = f"--where {to_text(self.expr)} is applied while streaming (the {self.kind} source cannot filter)"
        if note not in info.warnings:
            info.warnings.append(note)
        return info

    def batches(self, batch_size: int, resume: Any = None) -> Iterator[Batch]:
        for b in self.inner.batches(batch_size, resume=resume):
            yield filter_batch(b, self.expr)

    def fingerprint(self) -> dict[str, Any]:
        return self.inner.fingerprint()

    def search(self, queries: np.ndarray, k: int) -> tuple[list[list[Any]], np.ndarray]:
        raise NotImplementedError("the store's own search does not know the --where subset")

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:  # describe(), layout() ... of the inner source
        return getattr(self.inner, name)


def filter_batch(b: Batch, expr: Expr) -> Batch:
    """The rows of ``b`` whose payload matches ``expr``; the others are counted in ``skipped``."""
    n = len(b.ids)
    if not n:
        return b
    keep = matches(expr, b.payloads if b.payloads is not None else [None] * n)
    if keep.all():
        return b
    idx = np.flatnonzero(keep)
    ids = b.ids[idx] if isinstance(b.ids, np.ndarray) else [b.ids[i] for i in idx]
    return Batch(ids=ids, vectors=np.asarray(b.vectors)[idx],
                 payloads=[b.payloads[i] for i in idx] if b.payloads is not None else None,
                 rejected=b.rejected, locations=[b.locations[i] for i in idx] if b.locations is not None else None,
                 cursor=b.cursor,
                 sparse={k: [rows[i] for i in idx] for k, rows in b.sparse.items()} if b.sparse else b.sparse,
                 named={k: a[idx] for k, a in b.named.items()} if b.named else b.named,
                 skipped=b.skipped + n - len(idx),
                 texts=[b.texts[i] for i in idx] if b.texts is not None else None,
                 native=[b.native[i] for i in idx] if b.native is not None else None)
