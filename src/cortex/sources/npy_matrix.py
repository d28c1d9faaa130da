"""A 2-D ``.npy`` matrix, with optional ids (``--ids ids.npy|ids.txt``) and payloads (``--payloads meta.jsonl``)."""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from cortex.errors import SourceError
from cortex.sources.base import Batch, Rejected, Source, SourceInfo, check_exists, even_ranges


def npy_shape(path: str | Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from the .npy header, without reading the data."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        reader = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        shape, _, dtype = reader.get(version, np.lib.format.read_array_header_2_0)(f)
    return shape, dtype


class NpyMatrixSource(Source):
    kind = "npy-matrix"
    description = "a 2-D .npy matrix (+ --ids ids.npy|ids.txt, --payloads meta.jsonl)"

    @classmethod
    def detect(cls, path: str) -> bool:
        # Any single .npy file is this kind: a 1-D or unreadable one then gets its own message
        # ("expected a 2-D matrix", "not a readable .npy file"), not "cannot tell what kind".
        p = Path(path)
        return p.is_file() and p.suffix.lower() == ".npy"

    def _matrix(self) -> np.ndarray:
        check_exists(self.path)
        try:
            m = np.load(self.path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise SourceError(f"{self.path}: not a readable .npy file ({e})") from e
        if m.ndim != 2:
            raise SourceError(f"{self.path}: expected a 2-D matrix (points x dims), got shape {m.shape}")
        if m.dtype.kind not in "fiu":
            raise SourceError(f"{self.path}: vectors must be numeric, got dtype {m.dtype}")
        if m.shape[0] == 0:
            raise SourceError(f"{self.path}: the matrix has no rows; nothing to migrate")
        return m

    def _ids(self, n: int) -> np.ndarray | list[str] | None:
        path = self.options.ids
        if not path:
            return None
        check_exists(path, "--ids")
        if path.endswith(".npy"):
            ids = np.load(path, mmap_mode="r", allow_pickle=False)
            ids = ids if ids.dtype.kind in "iu" else ids.astype(str)
        else:
            ids = Path(path).read_text().splitlines()
            if ids and ids[-1] == "":
                ids.pop()
        if len(ids) != n:
            raise SourceError(f"{path}: has {len(ids)} ids but {self.path} has {n} rows; they must match 1:1")
        return ids

    def info(self) -> SourceInfo:
        m = self._matrix()
        self._ids(m.shape[0])
        lo, hi = self.scope["rows"] if self.scope else (0, m.shape[0])
        return SourceInfo(kind=self.kind, name=self.path, dim=int(m.shape[1]), count=int(hi - lo))

    def split(self, n: int) -> list[Any]:
        """Row ranges of the matrix."""
        return [{"rows": [lo, hi]} for lo, hi in even_ranges(int(self._matrix().shape[0]), n)]

    def batches(self, batch_size: int, resume: Any = None) -> Iterator[Batch]:
        m = self._matrix()
        n = m.shape[0]
        ids = self._ids(n)
        first, n = self.scope["rows"] if self.scope else (0, n)
        start = resume["row"] if resume else first
        pf = None
        if self.options.payloads:
            check_exists(self.options.payloads, "--payloads")
            pf = open(self.options.payloads, "rb")  # noqa: SIM115 - closed in finally
            if resume:
                pf.seek(resume["payload_offset"])
            else:
                for _ in range(first):  # a partition's payloads start at its first row's line
                    pf.readline()
        try:
            for lo in range(start, n, batch_size):
                hi = min(n, lo + batch_size)
                vecs = np.ascontiguousarray(m[lo:hi], dtype=np.float32)
                bid = ids[lo:hi] if ids is not None else np.arange(lo, hi, dtype=np.int64)
                payloads = None
                rejected: list[Rejected] = []
                keep = None
                if pf is not None:
                    payloads = []
                    keep = []
                    for row in range(lo, hi):
                        line = pf.readline()
                        where = f"{self.options.payloads}:{row + 1}"
                        if not line:
                            raise SourceError(
                                f"{self.options.payloads}: ends at line {row}, but {self.path} has {n} rows"
                            )
                        try:
                            obj = orjson.loads(line)
                            if not isinstance(obj, dict):
                                raise ValueError("not a JSON object")
                            payloads.append(obj)
                            keep.append(row - lo)
                        except ValueError as e:
                            rejected.append(Rejected(where, f"payload line is not a JSON object ({e})",
                                                     id=_scalar(bid[row - lo]), raw=line.decode("utf-8", "replace")))
                rows = range(lo, hi)
                if keep is not None and len(keep) < hi - lo:
                    vecs = vecs[keep]
                    bid = [bid[i] for i in keep]
                    rows = [lo + i for i in keep]
                cursor = {"row": hi, "payload_offset": pf.tell() if pf else 0}
                yield Batch(ids=bid if isinstance(bid, list) else _id_list(bid), vectors=vecs,
                            payloads=payloads, rejected=rejected, cursor=cursor,
                            locations=[f"{self.path}:row {r}" for r in rows])
                _release(m, hi)
        finally:
            if pf is not None:
                pf.close()


def _release(m: np.ndarray, rows_done: int) -> None:
    """Drop the mapped pages of rows already read: a mmap otherwise keeps them in our RSS."""
    base = getattr(m, "_mmap", None)
    if not isinstance(base, mmap.mmap):
        return
    end = getattr(m, "offset", 0) + rows_done * m.shape[1] * m.dtype.itemsize
    end -= end % mmap.PAGESIZE
    if end > 0:
        base.madvise(mmap.MADV_DONTNEED, 0, end)


def _scalar(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _id_list(ids: Any) -> Any:
    if isinstance(ids, np.ndarray) and ids.dtype.kind in "iu":
        return np.asarray(ids)  # kept as an array: the id mapper has a vector fast path
    return [_scalar(i) for i in ids]
