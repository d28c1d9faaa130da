"""A USearch index file (``Index.save``, ``.usearch``), memory-mapped with ``Index.restore(view=True)``.

The header gives dimension, metric and scalar kind without loading (``Index.metadata``).
Keys are read by slot position (``index.keys[lo:hi]``, the cursor) and vectors with
``index.get(keys, dtype=float32)``: f16/bf16/f64 convert exactly; i8 is a quantized copy
(vectors come back unit-length), flagged lossy.  b1 (binary) vectors are unpacked to 0/1
floats.  Multi-vector indexes (several vectors per key) are rejected.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from cortex.errors import SourceError
from cortex.sources.base import Batch, Source, SourceInfo, check_exists, parse_distance, require

SUFFIXES = (".usearch",)
_METRICS = {"cos": "cosine", "cosine": "cosine", "ip": "dot", "innerproduct": "dot", "l2sq": "euclid",
            "hamming": "manhattan"}


def looks_like_usearch(path: str | Path) -> bool:
    """A dense USearch file: (rows, cols) u32 or u64 matrix header, the matrix, then the 'usearch' magic."""
    try:
        size = Path(path).stat().st_size
        with open(path, "rb") as f:
            head = f.read(16)
            for width in (4, 8):
                if len(head) < 2 * width:
                    continue
                rows = int.from_bytes(head[:width], "little")
                cols = int.from_bytes(head[width:2 * width], "little")
                at = 2 * width + rows * cols
                if 0 < at < size:
                    f.seek(at)
                    if f.read(7) == b"usearch":
                        return True
    except OSError:
        return False
    return False


def _metric_name(kind: Any) -> str:
    return str(getattr(kind, "name", kind)).split(".")[-1].lower()


class USearchSource(Source):
    kind = "usearch"
    extra = "usearch"
    description = "a USearch index (.usearch from Index.save)"

    def __init__(self, path: str, options: Any = None) -> None:
        super().__init__(path, options)
        self._index: Any = None
        self._meta: dict[str, Any] | None = None

    @classmethod
    def detect(cls, path: str) -> bool:
        p = Path(path)
        if not p.is_file():
            return False
        return p.suffix.lower() in SUFFIXES or looks_like_usearch(p)

    def metadata(self) -> dict[str, Any]:
        """The file header (dimensions, metric, scalar kind, counts) without loading the index."""
        if self._meta is None:
            p = check_exists(self.path)
            if p.is_dir():
                raise SourceError(f"{self.path}: is a directory; the usearch source reads one Index.save file")
            uindex = require("usearch.index", self.extra, "USearch")
            try:
                meta = uindex.Index.metadata(str(p))
            except (ValueError, RuntimeError, OSError) as e:
                raise SourceError(f"{self.path}: not a readable USearch index ({e}); the file is corrupt, "
                                  "truncated or not a USearch index") from e
            if not meta:
                raise SourceError(f"{self.path}: not a readable USearch index (no header)")
            self._meta = meta
        return self._meta

    def _open(self) -> Any:
        if self._index is None:
            meta = self.metadata()
            if int(meta.get("count_present", 0)) == 0:
                raise SourceError(f"{self.path}: the USearch index holds no vectors; nothing to migrate")
            uindex = require("usearch.index", self.extra, "USearch")
            try:
                idx = uindex.Index.restore(str(self.path), view=True)
            except (ValueError, RuntimeError, OSError) as e:
                raise SourceError(f"{self.path}: not a readable USearch index ({e}); the file is corrupt or "
                                  "truncated") from e
            if idx is None:
                raise SourceError(f"{self.path}: not a readable USearch index")
            if idx.multi:
                raise SourceError(f"{self.path}: a multi-vector USearch index (several vectors per key) cannot map "
                                  "to Qdrant points with one vector each; split it into one vector per key first")
            self._index = idx
        return self._index

    def _scalar(self) -> str:
        return _metric_name(self.metadata()["kind_scalar"])

    def info(self) -> SourceInfo:
        meta = self.metadata()
        idx = self._open()
        scalar = self._scalar()
        metric = _metric_name(meta["kind_metric"])
        dim = int(meta["dimensions"])
        warnings: list[str] = []
        lossy = False
        distance = _METRICS.get(metric)
        if self.options.distance:
            want = parse_distance(self.options.distance, self.path)
            if distance and want != distance:
                warnings.append(f"the index uses {metric} ({distance}); using --distance {want} as asked")
            distance = want
        elif distance is None:
            raise SourceError(f"{self.path}: the index uses the {metric} metric, which has no Qdrant equivalent; "
                              "pass --distance cosine|dot|euclid|manhattan to choose one")
        if metric == "hamming":
            warnings.append("Hamming distance has no Qdrant equivalent: 'manhattan' is used, which on the unpacked "
                            "0/1 vectors equals the Hamming distance")
        if scalar == "i8":
            lossy = True
            warnings.append("vectors are stored as i8 (8-bit quantized, normalized): they come back as unit-length "
                            "float32 directions, so the original norms are lost and values carry about 1% "
                            "quantization error; cosine search is the least affected")
        elif scalar in ("f16", "bf16"):
            warnings.append(f"vectors are stored as {scalar}; converted exactly to float32 (the {scalar} rounding "
                            "happened when the index was built)")
        elif scalar == "b1":
            warnings.append(f"binary (b1) vectors are unpacked to {dim} 0/1 floats")
        elif scalar not in ("f32", "f64"):
            raise SourceError(f"{self.path}: USearch scalar kind {scalar} is not supported")
        deleted = int(meta.get("count_deleted", 0))
        if deleted:
            warnings.append(f"{deleted} removed vectors are skipped")
        return SourceInfo(kind=self.kind, name=self.path, dim=dim, distance=distance, count=len(idx),
                          warnings=warnings, lossy=lossy,
                          details={"metric": metric, "scalar": scalar, "deleted": deleted,
                                   "version": meta.get("version"), "memory_mapped": True})

    def _vectors(self, idx: Any, keys: np.ndarray) -> np.ndarray:
        if self._scalar() == "b1":  # asking usearch for float32 from b1 corrupts its heap: unpack here
            raw = np.vstack(idx.get(keys))
            return np.unpackbits(raw, axis=1)[:, :int(idx.ndim)].astype(np.float32)
        return np.vstack(idx.get(keys, dtype=np.float32)).astype(np.float32, copy=False)

    def batches(self, batch_size: int, resume: Any = None) -> Iterator[Batch]:
        idx = self._open()
        n = len(idx)
        start = int(resume["pos"]) if resume else 0
        for lo in range(start, n, batch_size):
            hi = min(n, lo + batch_size)
            keys = np.asarray(idx.keys[lo:hi], dtype=np.uint64)
            yield Batch(ids=keys, vectors=self._vectors(idx, keys), cursor={"pos": hi})

    def search(self, queries: np.ndarray, k: int) -> tuple[list[list[Any]], np.ndarray]:
        """USearch's own search; scores follow Qdrant (euclid: L2 distance, cos/ip: similarity)."""
        idx = self._open()
        metric = _metric_name(self.metadata()["kind_metric"])
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if q.ndim == 1:
            q = q[None, :]
        if self._scalar() == "b1":
            q = np.packbits((q > 0.5).astype(np.uint8), axis=1)
        m = idx.search(q, k)
        keys = np.atleast_2d(m.keys)
        dist = np.atleast_2d(np.asarray(m.distances, np.float32))
        counts = np.atleast_1d(getattr(m, "counts", np.full(len(keys), keys.shape[1])))
        if metric == "l2sq":
            scores = np.sqrt(np.clip(dist, 0, None))
        elif metric in ("cos", "cosine", "ip", "innerproduct"):
            scores = 1.0 - dist
        else:
            scores = dist
        return [[int(v) for v in row[:c]] for row, c in zip(keys, counts, strict=True)], scores

    def close(self) -> None:
        self._index = None
