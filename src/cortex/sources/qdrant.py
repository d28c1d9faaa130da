"""Another Qdrant collection as a source: an embedded shard directory or a server collection.

This makes embedded -> server a one-liner (the path from a laptop trial to production):
``cortex qdrant migrate --source ./qdrant_storage/code --target code --url https://...``.
Server sources are ``http(s)://host:port`` (or ``local:PATH``) plus ``--source-collection``, read over
gRPC on port 6334 (``--source-opt grpc_port=P`` for another; ``--source-opt prefer_grpc=false`` for REST).
An embedded shard is copied to a temporary directory first, because opening a shard
replays and rewrites its WAL: the user's source is never written.

Everything a point holds comes along: the default vector, named dense vectors
(``Batch.named``), sparse vectors (``Batch.sparse``) and the payload; the collection's
payload indexes are declared in ``SourceInfo.details`` and re-created on the target.  A
collection with only named dense vectors has no default vector: ``--vector-column NAME``
picks the one that becomes the target's default vector (else the first by name, with a warning).
Multi-vectors (ColBERT-style) are not migrated (a warning names them).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from cortex.errors import SourceError
from cortex.sources.base import Batch, Rejected, Source, SourceInfo, file_fingerprint
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
        self._main = ""  # which stored vector becomes the default one
        self._named: dict[str, dict[str, Any]] = {}  # named dense vectors carried over: {name: {size, distance}}
        self._sparse: dict[str, dict[str, Any]] = {}

    def _open(self) -> tuple[Target, str]:
        if self._target is not None:
            return self._target, self._name
        if _is_url(self.path):
            from cortex.targets.server import ServerTarget

            name = self.options.collection
            if not name:
                raise SourceError(f"{self.path}: pass --source-collection NAME to say which collection to read")
            extra = self.options.extra
            try:
                grpc_port = int(extra.get("grpc_port", 6334))
            except ValueError as e:
                raise SourceError(f"--source-opt grpc_port={extra['grpc_port']!r}: expected a port number") from e
            t = ServerTarget(self.path, api_key=self.options.api_key or extra.get("api_key"), grpc_port=grpc_port,
                             prefer_grpc=str(extra.get("prefer_grpc", "true")).lower() not in ("0", "false", "no"))
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
        dense = {n: v for n, v in ci.named_vectors.items() if not v.get("multivector")}
        multi = [n for n, v in ci.named_vectors.items() if v.get("multivector")]
        if multi:
            warnings.append(f"multi-vectors are not migrated: {', '.join(multi)}")
        want = self.options.vector_column
        dim, distance, main = ci.dim, ci.distance, ""
        if ci.dim is None:
            if not dense:
                kinds = ", ".join([*ci.sparse_vectors, *multi]) or "none"
                raise SourceError(f"{self.path}: collection '{name}' has no dense vector to migrate as the main "
                                  f"one (its vectors: {kinds}); Cortex needs a dense vector per point")
            if want and want not in dense:
                raise SourceError(f"{self.path}: collection '{name}' has no dense vector '{want}'; its dense "
                                  f"vectors: {', '.join(dense)} (fix --vector-column)")
            main = want or sorted(dense)[0]
            if not want:
                warnings.append(f"collection '{name}' has no default vector; its named vector '{main}' becomes the "
                                f"target's default vector (choose another with --vector-column: "
                                f"{', '.join(dense)})")
            dim, distance = dense[main]["size"], dense[main]["distance"]
        elif want and want != "":
            raise SourceError(f"{self.path}: collection '{name}' has a default vector, which stays the main one; "
                              "--vector-column picks the main vector only of collections without one")
        self._main = main
        self._named = {n: {"size": v["size"], "distance": v["distance"]} for n, v in dense.items() if n != main}
        self._sparse = {n: {"modifier": v.get("modifier")} for n, v in ci.sparse_vectors.items()}
        details = {"collection": name, "main_vector": main, "payload_indexes": dict(ci.payload_indexes),
                   "named_vectors": self._named, "sparse_vectors": self._sparse}
        count = ci.points if getattr(self, "_where", None) is None else t.count(name, exact=True, filter=self._where)
        return SourceInfo(kind=self.kind, name=f"{self.path}:{name}", dim=dim, distance=distance,
                          count=count, warnings=warnings, details=details)

    def batches(self, batch_size: int, resume: Any = None) -> Iterator[Batch]:
        t, name = self._open()
        self.info()  # which vector is the main one, which are extra
        skip = done = resume["done"] if resume else 0
        scope = {"filter": self._where} if getattr(self, "_where", None) is not None else {}
        for page in t.scroll(name, batch_size=batch_size, with_vectors=True, with_payload=True, **scope):
            if skip:  # scroll order is stable (by id): skip what a checkpoint covers
                take = min(len(page), skip)
                skip -= take
                page = page[take:]
                if not page:
                    continue
            done += len(page)
            yield self._batch(name, page, {"done": done})

    def push_down_where(self, expr: Any) -> bool:
        """--where as a Qdrant filter on the source collection (scroll, count and search)."""
        from cortex.targets.base import qdrant_filter
        from cortex.where import NotPushable

        t, _name = self._open()
        try:
            qdrant_filter(expr, "edge" if t.kind == "embedded" else "client")
        except NotPushable:
            return False
        self._where = expr
        return True

    def _batch(self, name: str, page: list[Any], cursor: Any) -> Batch:
        main = self._main
        mains = [p.vector if main == "" else (p.named or {}).get(main) for p in page]
        rejected = [Rejected(f"{self.path}:{name} id={p.id}", f"the point has no {repr(main) if main else 'default'} "
                             "vector, which becomes the target's main vector", id=p.id)
                    for p, v in zip(page, mains, strict=True) if v is None]
        if rejected:
            page = [p for p, v in zip(page, mains, strict=True) if v is not None]
            mains = [v for v in mains if v is not None]
        if not self._named and not self._sparse and mains:  # one vector per point: the plain path
            return Batch(ids=[p.id for p in page], vectors=np.stack(mains).astype(np.float32, copy=False),
                         payloads=[p.payload or {} for p in page], rejected=rejected, cursor=cursor)
        n = len(page)
        vecs = np.stack(mains).astype(np.float32, copy=False) if n else np.zeros((0, 0), np.float32)
        named = {}
        for nm, cfg in self._named.items():
            a = np.full((n, int(cfg["size"])), np.nan, dtype=np.float32)
            for k, p in enumerate(page):
                v = (p.named or {}).get(nm)
                if v is not None and len(v) == a.shape[1]:
                    a[k] = v
            named[nm] = a
        sparse = {nm: [(p.sparse or {}).get(nm) for p in page] for nm in self._sparse}
        return Batch(ids=[p.id for p in page], vectors=vecs, payloads=[p.payload or {} for p in page],
                     rejected=rejected, cursor=cursor, sparse=sparse or None, named=named or None)

    def search(self, queries: np.ndarray, k: int) -> tuple[list[list[Any]], np.ndarray]:
        t, name = self._open()
        scope = {"filter": self._where} if getattr(self, "_where", None) is not None else {}
        res = t.search(name, queries, k, **scope)
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
