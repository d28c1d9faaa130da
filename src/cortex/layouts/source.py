"""The one place a layout is applied: a :class:`Source` wrapper whose batches carry the layout's payloads.

Every command opens its source through :func:`cortex.sources.open_source`, which wraps it here,
so migrate, sync, export, verify, compare and benchmark all see the same payloads and point
ids: migrate writes them, verify compares the collection with them, compare filters on them.
A source whose payloads are already in the layout (a Qdrant collection written by the app or by
Cortex) is read back through the layout's inverse first, so re-migrating it changes nothing.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from cortex.ids import map_id
from cortex.layouts.base import Collision, Doc, Layout
from cortex.layouts.flat import FlatLayout
from cortex.sources.base import Batch, Rejected, Source, SourceInfo, parse_distance, row_norms

SAMPLE_ROWS = 256  # rows read ahead (once) to choose field names and check vector norms


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


class LayoutSource(Source):
    """``inner`` with its payloads (and, for Haystack, point ids) in a layout chosen at :meth:`info`."""

    def __init__(self, inner: Source, requested: str | None, make: Any) -> None:
        self.inner, self.requested, self._make = inner, requested, make
        self.path, self.options, self.kind, self.extra = inner.path, inner.options, inner.kind, inner.extra
        self.layout: Layout | None = None
        self._info: SourceInfo | None = None
        self.text_column: str | None = None
        self.metadata_column: str | None = None

    @classmethod
    def detect(cls, path: str) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:  # the wrapped source's own helpers (describe(), ...)
        inner = self.__dict__.get("inner")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)

    @property  # type: ignore[override]
    def scope(self) -> Any:  # a partition of the source (cortex.scale) is the wrapped source's
        return self.inner.scope

    @scope.setter
    def scope(self, value: Any) -> None:
        self.inner.scope = value

    def split(self, n: int) -> list[Any] | None:
        return self.inner.split(n)

    def info(self) -> SourceInfo:
        info = self.inner.info()  # not cached: a partition's count depends on its scope
        if self._info is None:
            self._info = self._choose(info)
        return replace(info, warnings=self._info.warnings, details={**(info.details or {}),
                                                                    "layout": self._info.details["layout"]})

    def _choose(self, info: SourceInfo) -> SourceInfo:
        """Pick the layout and its field names (once, from the first rows of the whole source)."""
        d = info.details or {}
        name = self.requested or d.get("layout") or "flat"
        self.layout = self._make(name, self.options.extra, d.get("text_field") or "text")
        self.text_column = self.options.text_column or d.get("text_column")
        self.metadata_column = self.options.extra.get("metadata_column") or d.get("metadata_column")
        warnings = list(info.warnings)
        if not self._identity() or d.get("text_field"):
            first = self._first_batch()
            if first is not None:
                docs = [self._doc(first, i) for i in range(len(first))]
                warnings += self.layout.prepare(docs)
                warnings += self._distance_notes(info, first)
        return replace(info, warnings=warnings, details={**d, "layout": self.layout.name})

    def _identity(self) -> bool:
        return isinstance(self.layout, FlatLayout) and "text_key" not in self.options.extra

    def _first_batch(self) -> Batch | None:
        scope, self.inner.scope = self.inner.scope, None  # every partition samples the same rows
        gen = self.inner.batches(SAMPLE_ROWS)
        try:
            return next(iter(gen), None)
        finally:
            close = getattr(gen, "close", None)
            if close is not None:
                close()
            self.inner.scope = scope

    def _distance_notes(self, info: SourceInfo, first: Batch) -> list[str]:
        assert self.layout is not None
        if isinstance(self.layout, FlatLayout) or not len(first):
            return []
        dist = parse_distance(self.options.distance) if self.options.distance else info.distance
        if dist in (None, "cosine"):
            return []
        vecs = np.asarray(first.vectors, dtype=np.float64)
        vecs = vecs[np.isfinite(vecs).all(axis=1)]
        hint = self.layout.distance_hint(dist) or f"{self.layout.framework} has no setting for {dist} distance"
        if len(vecs) and np.allclose(row_norms(vecs), 1.0, atol=1e-3):
            return [f"all {len(vecs)} sampled vectors have norm 1, so cosine ranks them exactly as {dist} does: pass "
                    f"--distance cosine and the app opens the collection with {self.layout.framework}'s defaults "
                    f"(keeping {dist}, the app must open it with {hint})"]
        return [f"the vectors are not unit length, so the collection keeps the source's {dist} distance (cosine "
                f"would rank them differently); the app must open it with {hint}"]

    def _doc(self, b: Batch, i: int) -> Doc:
        assert self.layout is not None
        orig = b.payloads[i] if b.payloads is not None else None
        payload = dict(orig or {})
        sid = _plain(b.ids[i])
        if self.layout.owns(payload):
            text, meta, extra, native = self.layout.read(payload)
        else:
            text = b.texts[i] if b.texts is not None else None
            native = b.native[i] if b.native is not None else None
            extra: dict[str, Any] = {}
            meta = payload
            if not isinstance(self.layout, FlatLayout):  # flat keeps such columns where they are
                if text is None and self.text_column and self.text_column in payload:
                    text = payload.pop(self.text_column)
                if self.metadata_column and self.metadata_column in payload:
                    inner = payload.pop(self.metadata_column)
                    meta, extra = (dict(inner) if isinstance(inner, dict) else {}), payload
            text = None if text is None else text if isinstance(text, str) else str(text)
        pid = map_id(self.layout.point_id(sid, orig))[0] if self.layout.needs_point_id(native) else None
        return Doc(id=sid, point_id=pid, text=text, metadata=meta, extra=extra, native=native)

    def transform(self, b: Batch) -> Batch:
        """``b`` with its payloads in the layout; rows that would overwrite a user field go to ``rejected``."""
        if self._identity() and b.texts is None and b.native is None:
            return b
        assert self.layout is not None
        keep: list[int] = []
        ids: list[Any] = []
        payloads: list[dict[str, Any]] = []
        rejected = list(b.rejected)
        own_ids = type(self.layout).point_id is not Layout.point_id
        for i in range(len(b.ids)):
            doc = self._doc(b, i)
            try:
                payloads.append(self.layout.write(doc))
            except Collision as e:
                rejected.append(Rejected(b.location(i), str(e), id=doc.id,
                                         raw={"id": doc.id, "payload": b.payloads[i] if b.payloads else None}))
                continue
            keep.append(i)
            ids.append(doc.point_id if own_ids else b.ids[i])
        if len(keep) == len(b.ids):
            return replace(b, ids=ids, payloads=payloads, rejected=rejected, texts=None, native=None)
        idx = np.asarray(keep, dtype=np.int64)
        return replace(b, ids=ids, vectors=b.vectors[idx], payloads=payloads, rejected=rejected, texts=None,
                       native=None, locations=[b.location(i) for i in keep],
                       sparse={k: [r[i] for i in keep] for k, r in b.sparse.items()} if b.sparse else b.sparse,
                       named={k: np.asarray(a)[idx] for k, a in b.named.items()} if b.named else b.named)

    def batches(self, batch_size: int, resume: Any = None):  # type: ignore[override]
        self.info()
        for b in self.inner.batches(batch_size, resume=resume):
            yield self.transform(b)

    def search(self, queries: np.ndarray, k: int) -> tuple[list[list[Any]], np.ndarray]:
        ids, scores = self.inner.search(queries, k)
        self.info()
        assert self.layout is not None
        if type(self.layout).point_id is Layout.point_id:
            return ids, scores
        return [[self.layout.point_id(i) for i in row] for row in ids], scores

    def exhaustive_search(self) -> bool:
        self.info()
        return self._identity() and self.inner.exhaustive_search()  # the flat layout: the same ids and vectors

    def sample_vectors(self, n: int, seed: int) -> np.ndarray | None:
        self.info()
        return self.inner.sample_vectors(n, seed) if self._identity() else None

    def fingerprint(self) -> dict[str, Any]:
        fp = self.inner.fingerprint()
        self.info()
        assert self.layout is not None
        if not self._identity() or self.text_column:
            fp["layout"] = {**self.layout.describe(), "text_column": self.text_column,
                            "metadata_column": self.metadata_column}
        return fp

    def field_path(self, key: str) -> str:
        """Where a user metadata field ``key`` is in this layout's payloads (for filters)."""
        self.info()
        assert self.layout is not None
        return self.layout.field_path(key)

    def close(self) -> None:
        self.inner.close()
