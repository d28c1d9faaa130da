"""An hnswlib index file (``Index.save_index``, usually ``.bin``), read straight from the file.

Layout (hnswlib ``hnswalg.h``, ``saveIndex``): a 96-byte little-endian header
``offsetLevel0_, max_elements_, cur_element_count, size_data_per_element_, label_offset_,
offsetData_`` (size_t each), ``maxlevel_`` (int), ``enterpoint_node_`` (uint32), ``maxM_, maxM0_,
M_`` (size_t), ``mult_`` (double), ``ef_construction_`` (size_t); then ``cur_element_count``
level-0 records of ``size_data_per_element_`` bytes: a uint32 link-list header (low 16 bits:
link count; bit 16 = ``DELETE_MARK`` on byte 2, set by ``mark_deleted``), the links, the float32
vector at ``offsetData_`` and the uint64 label at ``label_offset_``; then the upper-level link
lists.  So ``dim = (label_offset_ - offsetData_) / 4``.  The records are read with a structured
``np.memmap`` view (no per-element Python work); deleted elements are skipped.

The space (l2 / ip / cosine) is not stored: ``--distance`` chooses it, default euclid (l2)
with a warning.  Labels are the ids.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cortex.errors import SourceError
from cortex.sources.base import Batch, Source, SourceInfo, check_exists, parse_distance, require, row_norms

HEADER = struct.Struct("<QQQQQQiIQQQdQ")  # 96 bytes
DELETE_BIT = 1 << 16  # DELETE_MARK (0x01) on byte 2 of the uint32 link-list header
SUFFIXES = (".bin", ".hnsw", ".hnswlib")
SAMPLE = 1000

@dataclass
class HnswHeader:
    offset_level0: int
    max_elements: int
    count: int
    size_per_element: int
    label_offset: int
    offset_data: int
    max_level: int
    enterpoint: int
    max_m: int
    max_m0: int
    m: int
    mult: float
    ef_construction: int

    @property
    def dim(self) -> int:
        return (self.label_offset - self.offset_data) // 4


def read_header(path: str | Path) -> HnswHeader:
    """Parse and sanity-check the header; ValueError says what does not fit."""
    size = Path(path).stat().st_size
    with open(path, "rb") as f:
        raw = f.read(HEADER.size)
    if len(raw) < HEADER.size:
        raise ValueError(f"the file has {size} bytes, less than the {HEADER.size}-byte hnswlib header")
    h = HnswHeader(*HEADER.unpack(raw))
    if h.offset_level0 != 0 or h.m == 0 or h.max_m0 < h.m or h.max_m0 > 65535:
        raise ValueError("the header does not look like hnswlib's (offsetLevel0/M/maxM0)")
    if h.offset_data != h.max_m0 * 4 + 4:
        raise ValueError("the header does not look like hnswlib's (offsetData != maxM0 links + 4)")
    if h.label_offset <= h.offset_data or (h.label_offset - h.offset_data) % 4:
        raise ValueError("the header does not look like hnswlib's (vector size is not a float32 multiple)")
    if h.size_per_element != h.label_offset + 8:
        raise ValueError("the header does not look like hnswlib's (record size != label offset + 8)")
    if h.count > h.max_elements or (h.count and h.enterpoint >= h.count):
        raise ValueError("the header does not look like hnswlib's (element counts)")
    need = HEADER.size + h.count * (h.size_per_element + 4)
    if size < need:
        raise ValueError(f"the file is truncated: {size} bytes, its header promises at least {need}")
    rest = size - HEADER.size - h.count * h.size_per_element - h.count * 4
    per_level = h.max_m * 4 + 4
    if rest % per_level and (rest - h.count * 4) % per_level:  # the second form: forks that store norms
        raise ValueError(f"the file size {size} does not match its header (truncated or padded)")
    return h


class HnswlibSource(Source):
    kind = "hnswlib"
    extra = "hnswlib"
    description = "an hnswlib index (.bin from save_index); --distance cosine|dot|euclid (space is not stored)"

    def __init__(self, path: str, options: Any = None) -> None:
        super().__init__(path, options)
        self._h: HnswHeader | None = None
        self._info: SourceInfo | None = None
        self._index: Any = None
        self._space: str | None = None

    @classmethod
    def detect(cls, path: str) -> bool:
        p = Path(path)
        if not (p.is_file() and p.suffix.lower() in SUFFIXES):
            return False
        try:
            read_header(p)
            return True
        except (ValueError, OSError):
            return False

    def _header(self) -> HnswHeader:
        if self._h is None:
            p = check_exists(self.path)
            if p.is_dir():
                raise SourceError(f"{self.path}: is a directory; the hnswlib source reads one save_index file")
            try:
                h = read_header(p)
            except ValueError as e:
                raise SourceError(f"{self.path}: not a readable hnswlib index: {e}") from e
            if h.count == 0:
                raise SourceError(f"{self.path}: the hnswlib index holds no elements; nothing to migrate")
            want = self.options.dimensions
            if want and int(want) != h.dim:
                raise SourceError(f"{self.path}: the index stores {h.dim}-dimensional vectors but --dimensions is "
                                  f"{want}; drop --dimensions (hnswlib files record it)")
            self._h = h
        return self._h

    def _records(self) -> np.memmap:
        h = self._header()
        dt = np.dtype({"names": ["ll", "vec", "label"], "formats": ["<u4", ("<f4", (h.dim,)), "<u8"],
                       "offsets": [0, h.offset_data, h.label_offset], "itemsize": h.size_per_element})
        return np.memmap(self.path, dtype=dt, mode="r", offset=HEADER.size, shape=(h.count,))

    def _deleted(self, rec: np.memmap) -> int:
        n = 0
        for lo in range(0, len(rec), 1 << 20):
            n += int(np.count_nonzero(rec["ll"][lo:lo + (1 << 20)] & DELETE_BIT))
        return n

    def info(self) -> SourceInfo:
        if self._info is not None:
            return self._info
        h = self._header()
        rec = self._records()
        deleted = self._deleted(rec)
        live = h.count - deleted
        if live == 0:
            raise SourceError(f"{self.path}: all {h.count} elements of the hnswlib index are marked deleted; "
                              "nothing to migrate")
        head = rec[:SAMPLE]
        sample = np.asarray(head["vec"][(head["ll"] & DELETE_BIT) == 0], np.float32)
        unit = len(sample) > 0 and bool(np.all(np.abs(row_norms(sample) - 1) < 1e-3))
        warnings: list[str] = []
        if self.options.distance:
            distance = parse_distance(self.options.distance, self.path)
        else:
            distance = "euclid"
            warnings.append("hnswlib does not store its space: assuming 'l2' (euclid); pass --distance cosine or "
                            "--distance dot for an index built with space='cosine' or 'ip'")
        if unit:
            warnings.append(f"all {len(sample)} sampled vectors have norm 1: this looks like a space='cosine' index "
                            "(hnswlib normalizes on insert, so the original norms are not stored); cosine, dot and "
                            "euclid rank unit vectors identically")
        if deleted:
            warnings.append(f"{deleted} elements are marked deleted and are skipped")
        self._info = SourceInfo(
            kind=self.kind, name=self.path, dim=h.dim, distance=distance, count=live, warnings=warnings,
            details={"elements": h.count, "deleted": deleted, "max_elements": h.max_elements, "M": h.m,
                     "ef_construction": h.ef_construction, "max_level": h.max_level})
        return self._info

    def batches(self, batch_size: int, resume: Any = None) -> Iterator[Batch]:
        rec = self._records()
        start = int(resume["pos"]) if resume else 0
        for lo in range(start, len(rec), batch_size):
            hi = min(len(rec), lo + batch_size)
            part = rec[lo:hi]
            live = (part["ll"] & DELETE_BIT) == 0
            if live.all():
                vecs = np.array(part["vec"], dtype=np.float32)
                labels = np.array(part["label"], dtype=np.uint64)
            else:
                vecs = np.array(part["vec"][live], dtype=np.float32)
                labels = np.array(part["label"][live], dtype=np.uint64)
            yield Batch(ids=labels, vectors=vecs, cursor={"pos": hi})

    def search(self, queries: np.ndarray, k: int) -> tuple[list[list[Any]], np.ndarray]:
        """hnswlib's own knn_query (ef = max(64, 2k)); scores follow Qdrant (euclid: L2, dot/cosine: similarity)."""
        hnswlib = require("hnswlib", self.extra, "hnswlib")
        info = self.info()
        space = {"euclid": "l2", "dot": "ip", "cosine": "cosine"}.get(info.distance or "euclid")
        if space is None:
            raise SourceError(f"{self.path}: hnswlib has no '{info.distance}' space to search with")
        if self._index is None or self._space != space:
            idx = hnswlib.Index(space=space, dim=info.dim)
            try:
                idx.load_index(str(self.path))
            except RuntimeError as e:
                raise SourceError(f"{self.path}: hnswlib cannot load the index ({e})") from e
            self._index, self._space = idx, space
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if q.ndim == 1:
            q = q[None, :]
        k = min(k, info.count or k)
        self._index.set_ef(max(64, 2 * k))
        labels, dist = self._index.knn_query(q, k=k)
        dist = np.asarray(dist, np.float32)
        scores = np.sqrt(np.clip(dist, 0, None)) if space == "l2" else 1.0 - dist
        return [[int(v) for v in row] for row in labels], scores

    def close(self) -> None:
        self._index = None
