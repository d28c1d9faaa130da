"""An Annoy index file (``AnnoyIndex.save``, ``.ann``), parsed with numpy.

Annoy files hold nodes only: neither the dimension nor the metric is stored, so both are
required (``--dimensions N --distance angular|euclidean|dot|manhattan|hamming``; Cortex names
work too).  Node layout (annoylib.h), int32 ``S`` and float32 ``T``:

* Angular:   ``n_descendants, children[2], v[f]``                  -> 12 + 4f bytes
* Euclidean / Manhattan (Minkowski): ``n_descendants, a, children[2], v[f]`` -> 16 + 4f
* Dot:       ``n_descendants, children[2], dot_factor, v[f]``      -> 16 + 4f
* Hamming:   ``n_descendants, children[2], pad, uint64 v[ceil(f/64)]`` -> 16 + 8 ceil(f/64)

Items are nodes ``0 .. n_items-1`` (``n_descendants == 1``; 0 for ids never added), split
nodes follow, and copies of the roots close the file; the last root's ``n_descendants`` is
``n_items``.  A wrong ``--dimensions`` (or metric) gives a node size that does not fit the
file, the roots or the item nodes: that is reported, not migrated as garbage.  Ids are item
indices.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cortex.errors import SourceError
from cortex.sources.base import Batch, Source, SourceInfo, check_exists, require

SUFFIXES = (".ann", ".annoy")
# accepted --distance value -> (annoy metric, Cortex distance)
_METRICS = {
    "angular": ("angular", "cosine"), "cosine": ("angular", "cosine"), "cos": ("angular", "cosine"),
    "euclidean": ("euclidean", "euclid"), "euclid": ("euclidean", "euclid"), "l2": ("euclidean", "euclid"),
    "manhattan": ("manhattan", "manhattan"), "l1": ("manhattan", "manhattan"),
    "dot": ("dot", "dot"), "ip": ("dot", "dot"), "inner_product": ("dot", "dot"),
    "hamming": ("hamming", "manhattan"),
}
USAGE = ("pass --dimensions N and --distance angular|euclidean|dot|manhattan|hamming "
         "(the values the index was built with)")


@dataclass
class _Layout:
    metric: str
    distance: str
    f: int
    node_size: int
    vec_offset: int
    child_offset: int
    n_nodes: int
    n_items: int  # item slots (max item id + 1)
    count: int  # items actually present

    def dtype(self) -> np.dtype:
        vec = ("<u8", ((self.f + 63) // 64,)) if self.metric == "hamming" else ("<f4", (self.f,))
        return np.dtype({"names": ["nd", "children", "v"], "formats": ["<i4", ("<i4", (2,)), vec],
                         "offsets": [0, self.child_offset, self.vec_offset], "itemsize": self.node_size})


def node_geometry(metric: str, f: int) -> tuple[int, int, int]:
    """(node size, vector offset, children offset) in bytes for an Annoy metric and dimension."""
    if metric == "angular":
        return 12 + 4 * f, 12, 4
    if metric in ("euclidean", "manhattan"):
        return 16 + 4 * f, 16, 8
    if metric == "dot":
        return 16 + 4 * f, 16, 4
    if metric == "hamming":  # uint64 words: the array is 8-byte aligned after the 12-byte head
        return 16 + 8 * ((f + 63) // 64), 16, 4
    raise ValueError(metric)


class AnnoySource(Source):
    kind = "annoy"
    extra = "annoy"
    description = "an Annoy index (.ann); needs --dimensions N and --distance angular|euclidean|dot|manhattan"

    def __init__(self, path: str, options: Any = None) -> None:
        super().__init__(path, options)
        self._layout: _Layout | None = None
        self._ann: Any = None

    @classmethod
    def detect(cls, path: str) -> bool:
        p = Path(path)
        return p.is_file() and p.suffix.lower() in SUFFIXES

    def _settings(self) -> tuple[int, str, str]:
        f, dist = self.options.dimensions, self.options.distance
        if not f or not dist:
            missing = " and ".join(x for x, v in (("--dimensions", f), ("--distance", dist)) if not v)
            raise SourceError(f"{self.path}: Annoy files do not record the dimension or the metric ({missing} "
                              f"missing); {USAGE}")
        key = str(dist).strip().lower()
        if key not in _METRICS:
            raise SourceError(f"{self.path}: unknown Annoy distance '{dist}'; {USAGE}")
        if int(f) < 1:
            raise SourceError(f"{self.path}: --dimensions must be a positive integer, got {f}")
        metric, distance = _METRICS[key]
        return int(f), metric, distance

    def layout(self) -> _Layout:
        if self._layout is None:
            p = check_exists(self.path)
            if p.is_dir():
                raise SourceError(f"{self.path}: is a directory; the annoy source reads one AnnoyIndex.save file")
            f, metric, distance = self._settings()
            size = p.stat().st_size
            if size == 0:
                raise SourceError(f"{self.path}: the file is empty; nothing to migrate")
            s, voff, coff = node_geometry(metric, f)
            lay = _Layout(metric, distance, f, s, voff, coff, size // s, 0, 0)
            nope = (f"{self.path}: --dimensions {f} with --distance {metric} does not fit this file "
                    f"({size} bytes")
            if size % s:
                raise SourceError(f"{nope} is not a multiple of the {s}-byte node size); check both values, "
                                  "or the file is truncated")
            nodes = np.memmap(p, dtype=lay.dtype(), mode="r", shape=(lay.n_nodes,))
            nd = nodes["nd"]
            m = int(nd[-1])
            if m < 1 or m > lay.n_nodes:
                raise SourceError(f"{nope}: the root claims {m} items in {lay.n_nodes} nodes); check both values")
            # roots: the trailing nodes with the same n_descendants; their children must be node/item indexes
            tail = nd[max(0, lay.n_nodes - 1024):]
            k = int(np.argmax(tail[::-1] != m)) if np.any(tail != m) else len(tail)  # trailing roots
            roots = nodes[lay.n_nodes - k:]
            if np.any(roots["children"] < 0) or np.any(roots["children"] >= lay.n_nodes):
                raise SourceError(f"{nope}: the roots point outside the file); check both values")
            items = nd[:m]
            bad = np.count_nonzero((items != 0) & (items != 1))
            if bad:
                raise SourceError(f"{nope}: {bad} of the first {m} nodes are not item nodes); the dimension or "
                                  "metric does not fit; check both values")
            count = int(np.count_nonzero(items == 1))
            if count == 0:
                raise SourceError(f"{self.path}: the Annoy index holds no items; nothing to migrate")
            if metric != "hamming":
                probe = np.asarray(nodes["v"][: min(m, 1000)])
                if not np.all(np.isfinite(probe)):
                    raise SourceError(f"{nope}: item vectors hold NaN/inf); check both values")
            lay.n_items, lay.count = m, count
            self._layout = lay
        return self._layout

    def info(self) -> SourceInfo:
        lay = self.layout()
        warnings = [f"Annoy does not store the dimension or metric: using --dimensions {lay.f} and "
                    f"{lay.metric} ({lay.distance}) as given; a wrong pair is caught only when it changes the "
                    "node size"]
        if lay.metric == "hamming":
            warnings.append("Hamming distance has no Qdrant equivalent: 'manhattan' is used, which on the unpacked "
                            "0/1 vectors equals the Hamming distance")
        if lay.count < lay.n_items:
            warnings.append(f"{lay.n_items - lay.count} item ids below {lay.n_items} were never added and are skipped")
        return SourceInfo(kind=self.kind, name=self.path, dim=lay.f, distance=lay.distance, count=lay.count,
                          warnings=warnings,
                          details={"metric": lay.metric, "nodes": lay.n_nodes, "node_size": lay.node_size,
                                   "item_slots": lay.n_items})

    def batches(self, batch_size: int, resume: Any = None) -> Iterator[Batch]:
        lay = self.layout()
        nodes = np.memmap(self.path, dtype=lay.dtype(), mode="r", shape=(lay.n_nodes,))
        start = int(resume["pos"]) if resume else 0
        for lo in range(start, lay.n_items, batch_size):
            hi = min(lay.n_items, lo + batch_size)
            part = nodes[lo:hi]
            keep = np.flatnonzero(part["nd"] == 1)
            raw = part["v"][keep] if len(keep) < hi - lo else part["v"]
            if lay.metric == "hamming":
                words = np.ascontiguousarray(raw, dtype="<u8")
                bits = np.unpackbits(words.view(np.uint8), axis=1, bitorder="little")[:, :lay.f]
                vecs = bits.astype(np.float32)
            else:
                vecs = np.array(raw, dtype=np.float32)
            yield Batch(ids=(keep + lo).astype(np.int64), vectors=vecs, cursor={"pos": hi})

    def search(self, queries: np.ndarray, k: int) -> tuple[list[list[Any]], np.ndarray]:
        """Annoy's get_nns_by_vector (search_k default); scores follow Qdrant (cosine similarity for angular)."""
        annoy = require("annoy", self.extra, "Annoy")
        lay = self.layout()
        if self._ann is None:
            ann = annoy.AnnoyIndex(lay.f, lay.metric)
            if not ann.load(str(self.path)):
                raise SourceError(f"{self.path}: Annoy cannot load the index")
            self._ann = ann
        q = np.asarray(queries, dtype=np.float32)
        if q.ndim == 1:
            q = q[None, :]
        ids: list[list[Any]] = []
        scores = np.full((len(q), k), np.nan, np.float32)
        for i, v in enumerate(q):
            got, dist = self._ann.get_nns_by_vector(v.tolist(), k, include_distances=True)
            d = np.asarray(dist, np.float32)
            if lay.metric == "angular":  # annoy angular distance = sqrt(2 - 2 cos)
                d = 1.0 - d * d / 2.0
            ids.append([int(x) for x in got])
            scores[i, : len(d)] = d
        return ids, scores

    def close(self) -> None:
        if self._ann is not None:
            self._ann.unload()
        self._ann = None
