"""Embedded target: Qdrant Edge (``qdrant-edge-py``), one shard directory per collection.

The engine is Qdrant's own (WAL, segments, HNSW) running in this process.  A shard can be
open in one process at a time; a second one gets :class:`CollectionBusyError` naming the
collection.  Bulk loads create the shard with indexing disabled (``indexing_threshold=0``)
and build the HNSW index once in :meth:`EdgeTarget.finish_load`.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
from array import array
from collections.abc import Iterator
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np

from cortex import disk_space
from cortex.errors import CollectionBusyError, CortexError, DiskFullError, TargetError
from cortex.ids import normalize_point_id
from cortex.targets.base import (
    CollectionInfo,
    StoredPoint,
    Target,
    merged_search_params,
    qdrant_filter,
    split_vectors,
    stack_vectors,
)

DEFAULT_INDEXING_THRESHOLD_KB = 10_000  # Qdrant's default
CONFIG_FILE = "cortex_config.json"  # the CollectionConfig a collection was created from (migrate --config)
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")
_DISTANCES = {"cosine": "Cosine", "dot": "Dot", "euclid": "Euclid", "manhattan": "Manhattan"}


def _q():
    import qdrant_edge

    return qdrant_edge


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


class EdgeTarget(Target):
    kind = "embedded"

    def __init__(self, path: str | Path = "./qdrant_storage") -> None:
        self.root = Path(path)
        self._shards: dict[str, Any] = {}

    @property
    def location(self) -> str:
        return str(self.root)

    # -- shards ---------------------------------------------------------------------------
    def _dir(self, name: str) -> Path:
        if not _NAME.match(name) or name in (".", ".."):
            raise CortexError(f"invalid collection name {name!r}: use letters, digits, '_', '-', '.'")
        return self.root / name

    def _config_json(self, name: str) -> dict[str, Any] | None:
        f = self._dir(self.resolve(name)) / "edge_config.json"
        if not f.exists():
            return None
        try:
            return json.loads(f.read_text())
        except (ValueError, OSError) as e:
            raise TargetError(f"collection '{name}' in {self.root} is damaged ({f.name}: {e}); delete the "
                              "collection directory and migrate again") from e

    def _edge_config(self, dim: int, distance: str, indexing_threshold: int | None,
                     sparse: dict[str, dict[str, Any]] | None = None,
                     named: dict[str, dict[str, Any]] | None = None) -> Any:
        q = _q()

        def params(size: int, dist: str) -> Any:
            return q.EdgeVectorParams(size=size, distance=getattr(q.Distance, _DISTANCES[dist.lower()]))

        vectors: Any = params(dim, distance)
        if named:
            vectors = {"": vectors, **{n: params(int(v["size"]), v["distance"]) for n, v in named.items()}}
        sparse_cfg = None
        if sparse:
            sparse_cfg = {n: q.EdgeSparseVectorParams(modifier=q.Modifier.Idf if (v or {}).get("modifier") == "idf"
                                                      else None) for n, v in sparse.items()}
        return q.EdgeConfig(vectors=vectors, sparse_vectors=sparse_cfg,
                            optimizers=q.EdgeOptimizersConfig(indexing_threshold=indexing_threshold))

    def _open(self, name: str, config: Any = None) -> Any:
        name = self.resolve(name)
        if config is None and name in self._shards:
            return self._shards[name]
        if name in self._shards:
            self._shards.pop(name).close()
        d = self._dir(name)
        if not (d / "edge_config.json").exists():
            raise TargetError(f"collection '{name}' does not exist in {self.root}")
        disk_space.check_open(d, name)  # the engine maps (and on tmpfs fills) its files on load: SIGBUS if full
        try:
            shard = _q().EdgeShard.load(str(d), config)
        except Exception as e:  # the binding raises a bare Exception
            if "WouldBlock" in str(e):
                raise CollectionBusyError(
                    f"collection '{name}' in {self.root} is in use by another process "
                    "(a migration or another Cortex command); wait for it to finish or stop it"
                ) from e
            if "No space left on device" in str(e):
                raise DiskFullError(f"not enough disk space in {d} to open collection '{name}' ({e}); free some "
                                    "space and re-run") from e
            raise TargetError(f"cannot open collection '{name}' in {self.root}: {e}") from e
        self._shards[name] = shard
        return shard

    def close(self) -> None:
        for shard in self._shards.values():
            shard.close()
        self._shards.clear()

    # -- collections ----------------------------------------------------------------------
    def list_collections(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(d.name for d in self.root.iterdir() if (d / "edge_config.json").exists())

    def collection_info(self, name: str) -> CollectionInfo | None:
        name = self.resolve(name)
        cfg = self._config_json(name)
        if cfg is None:
            return None
        shard = self._open(name)
        info = shard.info()
        vectors = cfg.get("vectors") or {}
        vec = vectors.get("", {})
        named = {n: _named_params(v) for n, v in vectors.items() if n != ""}
        sparse = {n: {"modifier": (v or {}).get("modifier")} for n, v in (cfg.get("sparse_vectors") or {}).items()}
        opt = {k: v for k, v in (cfg.get("optimizers") or {}).items() if v is not None}
        threshold = opt.get("indexing_threshold")
        status = "grey" if threshold == 0 else "green"
        return CollectionInfo(
            name=name,
            dim=vec.get("size"),
            distance=(vec.get("distance") or "").lower() or None,
            points=info.points_count,
            status=status,
            segments=info.segments_count,
            indexed_vectors=info.indexed_vectors_count,
            hnsw=cfg.get("hnsw_config") or {"m": 16, "ef_construct": 100, "full_scan_threshold": 10000},
            optimizer=opt,
            disk_bytes=dir_size(self._dir(name)),
            payload_indexes={k: str(v.data_type).split(".")[-1].lower() for k, v in info.payload_schema.items()},
            named_vectors=named,
            sparse_vectors=sparse,
        )

    def create_collection(self, name: str, dim: int, distance: str, defer_indexing: bool = True, *,
                          sparse: dict[str, dict[str, Any]] | None = None,
                          named: dict[str, dict[str, Any]] | None = None, config: Any = None) -> None:
        d = self._dir(name)
        if (d / "edge_config.json").exists():
            raise TargetError(f"collection '{name}' already exists in {self.root}")
        if d.exists() and not any(d.iterdir()):
            d.rmdir()
        elif d.exists():  # a create that died half-way: nothing acknowledged lives there yet
            shutil.rmtree(d)
        d.parent.mkdir(parents=True, exist_ok=True)
        disk_space.check_create(self.root, name)
        if config is not None:
            from cortex.collection_config import edge_config

            threshold = 0 if defer_indexing else _threshold(config)
            self._shards[name] = _q().EdgeShard.create(str(d), edge_config(config, indexing_threshold=threshold))
            (d / CONFIG_FILE).write_text(config.model_dump_json(exclude_none=True))
            return
        threshold = 0 if defer_indexing else DEFAULT_INDEXING_THRESHOLD_KB
        self._shards[name] = _q().EdgeShard.create(str(d), self._edge_config(dim, distance, threshold, sparse, named))

    def create_with_config(self, name: str, config: Any) -> None:
        """A new collection from a ready ``qdrant_edge.EdgeConfig`` (``cortex qdrant setup``)."""
        d = self._dir(name)
        if (d / "edge_config.json").exists():
            raise TargetError(f"collection '{name}' already exists in {self.root}")
        d.mkdir(parents=True, exist_ok=True)
        self._shards[name] = _q().EdgeShard.create(str(d), config)

    def reconfigure(self, name: str, config: Any) -> None:
        """Reopen with changed settings (HNSW, quantization, optimizers, on-disk flags): Edge applies them on load."""
        self._open(name, config)

    def delete_collection(self, name: str) -> None:
        if name in self._shards:
            self._shards.pop(name).close()
        d = self._dir(name)
        if d.exists():
            shutil.rmtree(d)

    # -- points ---------------------------------------------------------------------------
    def upsert(self, name: str, ids: list[int | str], vectors: np.ndarray,
               payloads: list[dict[str, Any]] | None, *,
               sparse: dict[str, list[tuple[list[int], list[float]] | None]] | None = None,
               named: dict[str, np.ndarray] | None = None) -> None:
        q = _q()
        shard = self._open(name)
        disk_space.check_write(self._dir(name), name, _batch_bytes(vectors, payloads, named))
        pls = payloads if payloads is not None else repeat(None)
        # The binding reads a vector as a Python sequence of floats. Slices of a flat array.array
        # make each float as it is read (and free it at once), ~2.5x faster than rows of tolist(),
        # which holds every float of the batch alive at the same time.
        vecs = np.ascontiguousarray(vectors, dtype=np.float32)
        d = vecs.shape[1] if vecs.ndim == 2 else 0
        flat = array("f")
        flat.frombytes(memoryview(vecs).cast("B"))
        if sparse or named:
            points = [q.Point(i, v, p) for i, v, p in zip(ids, _vector_dicts(q, flat, d, len(ids), sparse, named),
                                                           pls, strict=False)]
        else:
            points = [q.Point(i, flat[k * d:(k + 1) * d], p)
                      for k, (i, p) in enumerate(zip(ids, pls, strict=False))]
        try:
            shard.update(q.UpdateOperation.upsert_points(points))
        except (TypeError, ValueError) as e:
            raise TargetError(f"collection '{name}' rejected the batch: {e}") from e

    def flush(self, name: str) -> None:
        self._open(name).flush()

    def _created_from(self, name: str) -> Any:
        """The CollectionConfig the collection was created from, or None."""
        f = self._dir(name) / CONFIG_FILE
        if not f.exists():
            return None
        from cortex.collection_config import CollectionConfig

        return CollectionConfig.model_validate_json(f.read_text())

    def _reindex(self, name: str, threshold: int) -> Any:
        created = self._created_from(name)
        if created is not None:  # keep its HNSW / quantization / storage settings
            from cortex.collection_config import edge_config

            return self._open(name, edge_config(created, indexing_threshold=_threshold(created)))
        cfg = self._config_json(name) or {}
        vectors = dict(cfg["vectors"])
        vec = vectors.pop("")
        config = self._edge_config(vec["size"], vec["distance"], threshold, cfg.get("sparse_vectors"),
                                   {n: _named_params(v) for n, v in vectors.items()})
        return self._open(name, config)

    def finish_load(self, name: str) -> None:
        shard = self._open(name)
        shard.flush()
        cfg = self._config_json(name) or {}
        dims = sum(int(v.get("size") or 0) for v in (cfg.get("vectors") or {}).values())
        disk_space.check_index_build(self._dir(name), name, shard.info().points_count, dims)
        if (cfg.get("optimizers") or {}).get("indexing_threshold") == 0:
            shard = self._reindex(name, DEFAULT_INDEXING_THRESHOLD_KB)
        try:
            shard.optimize()
        except Exception as e:  # the engine's own free-space check (the binding raises a bare Exception)
            if "Not enough space" in str(e):
                raise DiskFullError(f"not enough disk space in {self._dir(name)} to build the index of '{name}': "
                                    f"{str(e).splitlines()[0][:200]}; free some space and re-run") from e
            raise
        shard.flush()

    def optimize(self, name: str, wait: bool = True, progress: Any = None) -> CollectionInfo:
        # Edge has no background optimizer: optimizing is always synchronous here.
        self.finish_load(name)
        info = self.collection_info(name)
        assert info is not None
        return info

    def retrieve(self, name: str, ids: list[int | str], with_vectors: bool = True) -> dict[Any, StoredPoint]:
        recs = self._open(name).retrieve(list(ids), with_payload=True, with_vector=with_vectors)
        return {(sp := _stored(r, with_vectors)).id: sp for r in recs}

    def fetch_arrays(self, name: str, ids: list[int | str], dim: int
                     ) -> tuple[list[Any], np.ndarray, list[dict[str, Any] | None]]:
        """Straight from the shard.  The binding returns each vector as a list of floats; packing
        each one into a single buffer as soon as it is read lets the allocator reuse the memory
        (~2x faster at 768 dims than converting them all at the end)."""
        recs = self._open(name).retrieve(list(ids), with_payload=True, with_vector=True)
        found = [r.id if isinstance(r.id, int) else normalize_point_id(r.id) for r in recs]
        try:
            pack = struct.Struct(f"{dim}f").pack
            got = np.frombuffer(b"".join([pack(*r.vector) for r in recs]), dtype=np.float32).reshape(-1, dim)
        except (struct.error, TypeError):  # named vectors or another dimension: the general path
            got = stack_vectors([r.vector for r in recs], dim)
        return found, got, [r.payload for r in recs]

    def scroll(self, name: str, batch_size: int = 1000, with_vectors: bool = False,
               with_payload: bool = True, filter: Any = None) -> Iterator[list[StoredPoint]]:
        q = _q()
        shard = self._open(name)
        offset = None
        flt = qdrant_filter(filter, "edge")
        while True:
            recs, offset = shard.scroll(q.ScrollRequest(offset=offset, limit=batch_size, filter=flt,
                                                        with_payload=with_payload, with_vector=with_vectors))
            if recs:
                yield [_stored(r, with_vectors) for r in recs]
            if offset is None:
                return

    def search(self, name: str, queries: np.ndarray, k: int, ef: int | None = None,
               exact: bool = False, filter: Any = None, params: Any = None) -> list[list[tuple[Any, float]]]:
        q = _q()
        shard = self._open(name)
        if params is not None:
            from cortex.collection_config import edge_search_params

            params = edge_search_params(merged_search_params(params, ef, exact))
        else:
            params = q.SearchParams(hnsw_ef=ef, exact=exact)
        flt = qdrant_filter(filter, "edge")
        reqs = [q.QueryRequest(limit=k, query=q.Query.Nearest(row), filter=flt, params=params)
                for row in np.asarray(queries, dtype=np.float32).tolist()]
        results = shard.query_batch(q.QueryBatchRequest(reqs))
        return [[(normalize_point_id(p.id), float(p.score)) for p in res] for res in results]

    def count(self, name: str, exact: bool = True, filter: Any = None) -> int:
        return self._open(name).count(_q().CountRequest(exact=exact, filter=qdrant_filter(filter, "edge")))

    def delete_points(self, name: str, filter: Any) -> None:
        shard = self._open(name)
        shard.update(_q().UpdateOperation.delete_points_by_filter(qdrant_filter(filter, "edge")))
        shard.flush()

    def create_payload_index(self, name: str, field_name: str, kind: str = "keyword",
                             is_tenant: bool = False) -> None:
        q = _q()
        schema: Any = getattr(q.PayloadSchemaType, kind.capitalize())
        if is_tenant and kind in ("keyword", "uuid"):  # Qdrant Edge takes the tenant flag
            schema = (q.KeywordIndexParams if kind == "keyword" else q.UuidIndexParams)(is_tenant=True)
        self._open(name).update(q.UpdateOperation.create_field_index(field_name, schema))

    def delete_ids(self, name: str, ids: list[int | str]) -> None:
        self._open(name).update(_q().UpdateOperation.delete_points(list(ids)))

    def before_overwrite(self, name: str, ids: list[int | str]) -> None:
        """Delete the points ``sync`` is about to write again, so that their new versions are appended.

        Qdrant updates a point of a growing (appendable) segment in place: the changed vectors and
        payloads dirty pages all over a large segment, and the flush then writes each one back.  Deleted
        first, the new versions land together at the segment's end (1% of a 1M x 384 collection: flush
        1.1 s -> 0.2 s, the updates themselves no slower).  No reader is affected: the shard is this
        process's alone while it writes (Edge locks it).  A process killed between the delete and the
        upsert leaves the ids in sync's dirty log, and the next sync writes them again.
        """
        if ids:
            self.delete_ids(name, ids)

    # Qdrant Edge has no aliases: Cortex keeps them in one small file in the storage directory.
    def list_aliases(self) -> dict[str, str]:
        from cortex.cutover.aliases import read_aliases

        return read_aliases(self.root)

    def switch_aliases(self, changes: dict[str, str | None]) -> None:
        from cortex.cutover.aliases import set_aliases

        set_aliases(self.root, changes)


def _threshold(config: Any) -> int:
    o = config.optimizers
    return o.indexing_threshold if o is not None and o.indexing_threshold is not None else DEFAULT_INDEXING_THRESHOLD_KB


def _stored(r: Any, with_vectors: bool) -> StoredPoint:
    main, sparse, named = split_vectors(r.vector) if with_vectors else (None, None, None)
    return StoredPoint(normalize_point_id(r.id), main, r.payload, sparse, named)


def _named_params(v: dict[str, Any]) -> dict[str, Any]:
    out = {"size": v.get("size"), "distance": (v.get("distance") or "").lower() or None}
    if v.get("multivector_config"):
        out["multivector"] = True
    return out


def _vector_dicts(q: Any, flat: array, d: int, n: int,
                  sparse: dict[str, list[tuple[list[int], list[float]] | None]] | None,
                  named: dict[str, np.ndarray] | None) -> Iterator[dict[str, Any]]:
    """Per point ``{"": dense, name: dense, name: SparseVector}``; absent vectors are left out."""
    named_rows: list[tuple[str, array, int, np.ndarray]] = []
    for nm, arr in (named or {}).items():
        a = np.ascontiguousarray(arr, dtype=np.float32)
        f = array("f")
        f.frombytes(memoryview(a).cast("B"))
        named_rows.append((nm, f, a.shape[1], ~np.isnan(a).all(axis=1) if len(a) else np.zeros(0, bool)))
    sparse_items = list((sparse or {}).items())
    sv = q.SparseVector
    for k in range(n):
        v: dict[str, Any] = {"": flat[k * d:(k + 1) * d]}
        for nm, f, dn, present in named_rows:
            if present[k]:
                v[nm] = f[k * dn:(k + 1) * dn]
        for nm, rows in sparse_items:
            row = rows[k]
            if row is not None:
                v[nm] = sv(row[0], row[1])
        yield v


def _batch_bytes(vectors: np.ndarray, payloads: list[dict[str, Any]] | None,
                 named: dict[str, np.ndarray] | None) -> int:
    """About what a batch adds on disk: its vectors (WAL + storage) and a rough payload size."""
    n = len(vectors)
    size = 2 * int(np.asarray(vectors).nbytes) + sum(2 * int(a.nbytes) for a in (named or {}).values())
    if payloads:
        size += n * 512  # an estimate; a batch's payloads are not serialized twice just to weigh them
    return size
