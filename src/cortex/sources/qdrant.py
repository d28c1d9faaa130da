"""Another Qdrant collection as a source: an embedded shard directory or a server collection.

This makes embedded -> server a one-liner (the path from a laptop trial to production):
``cortex qdrant migrate --source ./qdrant_storage/code --target code --url https://...``.
Server sources are ``http(s)://host:port`` (or ``local:PATH``) plus ``--source-collection``.
An embedded shard is copied to a temporary directory first, because opening a shard
replays and rewrites its WAL: the user's source is never written.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from cortex.errors import SourceError
from cortex.sources.base import Batch, Source, SourceInfo, file_fingerprint
from cortex.targets.base import Target


def _is_url(path: str) -> bool:
    return path.startswith(("http://", "https://", "local:"))


class QdrantSource(Source):
    kind = "qdrant"
    description = "a Qdrant collection: an embedded shard directory, or a server URL + --source-collection"

    @classmethod
    def detect(cls, path: str) -> bool:
        return _is_url(path) or (Path(path) / "edge_config.json").is_file()

    def __init__(self, path: str, options: Any = None) -> None:
        super().__init__(path, options)
        self._target: Target | None = None
        self._tmp: str | None = None
        self._warnings: list[str] = []

    def _open(self) -> tuple[Target, str]:
        if self._target is not None:
            return self._target, self._name
        if _is_url(self.path):
            from cortex.targets.server import ServerTarget

            name = self.options.collection
            if not name:
                raise SourceError(f"{self.path}: pass --source-collection NAME to say which collection to read")
            t = ServerTarget(self.path, api_key=self.options.api_key or self.options.extra.get("api_key"))
            t.ping()
        else:
            from cortex.targets.edge import EdgeTarget

            shard = Path(self.path)
            if not (shard / "edge_config.json").is_file():
                raise SourceError(f"{self.path}: not a Qdrant shard directory (no edge_config.json)")
            name = shard.name
            if self.options.extra.get("copy", "true").lower() in ("0", "false", "no"):
                root = shard.parent
            else:
                self._tmp = tempfile.mkdtemp(prefix="cortex-qdrant-src-")
                shutil.copytree(shard, Path(self._tmp) / name)
                root = Path(self._tmp)
                self._warnings.append(f"read from a temporary copy of {self.path} (opening a shard rewrites its WAL)")
            t = EdgeTarget(root)
        if t.collection_info(name) is None:
            raise SourceError(f"{self.path}: no collection '{name}' there")
        self._target, self._name = t, name
        return t, name

    def info(self) -> SourceInfo:
        t, name = self._open()
        ci = t.collection_info(name)
        assert ci is not None
        warnings = list(self._warnings)
        if ci.dim is None and ci.named_vectors:
            raise SourceError(f"{self.path}: collection '{name}' has only named vectors "
                              f"({', '.join(ci.named_vectors)}); Cortex migrates the default vector for now")
        if ci.payload_indexes:
            warnings.append("payload indexes of the source: " + ", ".join(f"{k} ({v})" for k, v in
                                                                        ci.payload_indexes.items()))
        return SourceInfo(kind=self.kind, name=f"{self.path}:{name}", dim=ci.dim, distance=ci.distance,
                          count=ci.points, warnings=warnings, details={"payload_indexes": ci.payload_indexes})

    def batches(self, batch_size: int, resume: Any = None) -> Iterator[Batch]:
        t, name = self._open()
        skip = done = resume["done"] if resume else 0
        for page in t.scroll(name, batch_size=batch_size, with_vectors=True, with_payload=True):
            if skip:  # scroll order is stable (by id): skip what a checkpoint covers
                take = min(len(page), skip)
                skip -= take
                page = page[take:]
                if not page:
                    continue
            done += len(page)
            vecs = np.stack([p.vector for p in page]).astype(np.float32, copy=False)
            yield Batch(ids=[p.id for p in page], vectors=vecs, payloads=[p.payload or {} for p in page],
                        cursor={"done": done})

    def search(self, queries: np.ndarray, k: int) -> tuple[list[list[Any]], np.ndarray]:
        t, name = self._open()
        res = t.search(name, queries, k)
        ids = [[i for i, _ in r] for r in res]
        scores = np.array([[s for _, s in r] + [np.nan] * (k - len(r)) for r in res], dtype=np.float32)
        return ids, scores

    def fingerprint(self) -> dict[str, Any]:
        if _is_url(self.path):
            t, name = self._open()
            ci = t.collection_info(name)
            return {"url": self.path, "collection": name, "points": ci.points if ci else None}
        return file_fingerprint(self.path)

    def close(self) -> None:
        if self._target is not None:
            self._target.close()
            self._target = None
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
