"""A directory tree of per-vector ``.npy`` files with optional ``.json`` sidecars (id = file stem).

This is the migration guide's "From Numpy Files" layout.  Files are read in a stable order (sorted
per directory, depth first), so a resume cursor is the number of files already consumed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from cortex.errors import SourceError
from cortex.sources.base import Batch, Rejected, Source, SourceInfo, check_exists, even_ranges


def walk_npy(root: str) -> Iterator[str]:
    """Every ``*.npy`` below ``root`` in a deterministic order, streaming."""
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return
    for e in entries:
        if e.is_dir(follow_symlinks=False):
            yield from walk_npy(e.path)
        elif e.name.endswith(".npy") and e.is_file():
            yield e.path


class NpyDirSource(Source):
    kind = "npy-dir"
    description = "a directory of per-vector .npy files with optional .json sidecars"

    @classmethod
    def detect(cls, path: str) -> bool:
        return Path(path).is_dir() and next(walk_npy(path), None) is not None

    def info(self) -> SourceInfo:
        check_exists(self.path)
        if not Path(self.path).is_dir():
            raise SourceError(f"{self.path}: the npy-dir source needs a directory of .npy files")
        count = 0
        first = None
        for f in walk_npy(self.path):
            count += 1
            first = first or f
        if count == 0:
            raise SourceError(f"{self.path}: no .npy files found below this directory; nothing to migrate")
        if self.scope:
            count = self.scope["files"][1] - self.scope["files"][0]
        dim = None
        for f in walk_npy(self.path):
            try:
                dim = int(np.load(f, allow_pickle=False).reshape(-1).shape[0])
                break
            except (ValueError, OSError, EOFError):
                continue
        return SourceInfo(kind=self.kind, name=self.path, dim=dim, count=count)

    def split(self, n: int) -> list[Any]:
        """Ranges of the files, in the order they are read."""
        return [{"files": [lo, hi]} for lo, hi in even_ranges(sum(1 for _ in walk_npy(self.path)), n)]

    def batches(self, batch_size: int, resume: Any = None) -> Iterator[Batch]:
        first, end = self.scope["files"] if self.scope else (0, None)
        skip = resume["files"] if resume else first
        done = 0
        ids: list[str] = []
        vecs: list[np.ndarray] = []
        payloads: list[dict[str, Any]] = []
        locs: list[str] = []
        rejected: list[Rejected] = []
        dim: int | None = None
        for f in walk_npy(self.path):
            if end is not None and done >= end:
                break
            done += 1
            if done <= skip:
                continue
            stem = Path(f).stem
            try:
                v = np.load(f, allow_pickle=False)
                if v.ndim == 2 and v.shape[0] == 1:
                    v = v[0]
                if v.ndim != 1 or v.dtype.kind not in "fiu":
                    raise ValueError(f"expected a 1-D numeric vector, got shape {v.shape} dtype {v.dtype}")
                dim = dim or v.shape[0]
                if v.shape[0] != dim:
                    raise ValueError(f"vector has {v.shape[0]} dimensions, earlier files have {dim}")
                payload = self._sidecar(f)
                ids.append(stem)
                vecs.append(v)
                payloads.append(payload)
                locs.append(f)
            except (ValueError, OSError, EOFError) as e:
                rejected.append(Rejected(f, str(e), id=stem))
            if len(ids) + len(rejected) >= batch_size:
                yield self._batch(ids, vecs, payloads, locs, rejected, done)
                ids, vecs, payloads, locs, rejected = [], [], [], [], []
        if ids or rejected:
            yield self._batch(ids, vecs, payloads, locs, rejected, done)

    @staticmethod
    def _sidecar(npy_path: str) -> dict[str, Any]:
        side = npy_path[:-4] + ".json"
        try:
            with open(side, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            return {}
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError as e:
            raise ValueError(f"sidecar {side} is not valid JSON ({e}); fix or remove it") from e
        if not isinstance(obj, dict):
            raise ValueError(f"sidecar {side} must hold a JSON object")
        return obj

    @staticmethod
    def _batch(ids, vecs, payloads, locs, rejected, done) -> Batch:
        arr = np.stack(vecs).astype(np.float32, copy=False) if vecs else np.empty((0, 0), np.float32)
        return Batch(ids=ids, vectors=arr, payloads=payloads, rejected=rejected, locations=locs,
                     cursor={"files": done})
