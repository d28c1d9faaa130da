"""Server target: a Qdrant server through qdrant-client (gRPC preferred for bulk upload).

``url`` may also be ``local:PATH`` or ``:memory:`` for qdrant-client's local mode, which
speaks the same client API (slow, brute-force search: meant for tests, never a default).
Errors are translated into Cortex's typed errors: transient ones (timeouts, resets,
UNAVAILABLE, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED, HTTP 429/5xx) are
:class:`TransientTargetError`; auth failures :class:`AuthError`; the rest :class:`TargetError`.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import numpy as np

from cortex.errors import AuthError, BatchTooLargeError, TargetError, TransientTargetError
from cortex.ids import normalize_point_id
from cortex.targets.base import CollectionInfo, StoredPoint, Target, merged_search_params, qdrant_filter, split_vectors

T = TypeVar("T")
DEFAULT_INDEXING_THRESHOLD_KB = 10_000
_DISTANCES = {"cosine": "Cosine", "dot": "Dot", "euclid": "Euclid", "manhattan": "Manhattan"}
_TRANSIENT_GRPC = {"UNAVAILABLE", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED", "ABORTED", "INTERNAL", "UNKNOWN"}


def translate(e: Exception, where: str) -> TargetError:
    """A qdrant-client / gRPC / httpx exception as a typed Cortex error."""
    import grpc
    import httpx
    from qdrant_client.common.client_exceptions import ResourceExhaustedResponse
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    if isinstance(e, TargetError):
        return e
    if isinstance(e, ResourceExhaustedResponse):  # rate limited, with the server's retry-after
        return TransientTargetError(f"{where}: rate limited by the server, retry after {e.retry_after_s}s")
    if isinstance(e, grpc.RpcError) and hasattr(e, "code"):
        code = e.code().name
        detail = e.details() if hasattr(e, "details") else str(e)
        if code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
            return AuthError(f"{where}: the server refused the API key ({detail}); check --api-key / QDRANT_API_KEY")
        if code == "RESOURCE_EXHAUSTED" and "message larger than max" in (detail or "").lower():
            return BatchTooLargeError(f"{where}: batch larger than the server accepts ({detail})")
        if code in _TRANSIENT_GRPC:
            return TransientTargetError(f"{where}: {code}: {detail}")
        return TargetError(f"{where}: {code}: {detail}")
    if isinstance(e, UnexpectedResponse):
        status = e.status_code
        body = e.content.decode("utf-8", "replace")[:300] if e.content else e.reason_phrase
        if status in (401, 403):
            return AuthError(f"{where}: the server refused the API key (HTTP {status}); "
                             "check --api-key / QDRANT_API_KEY")
        if status == 413:
            return BatchTooLargeError(f"{where}: batch larger than the server accepts (HTTP 413)")
        if status == 429 or status >= 500:
            return TransientTargetError(f"{where}: HTTP {status}: {body}")
        return TargetError(f"{where}: HTTP {status}: {body}")
    if isinstance(e, (ResponseHandlingException, httpx.TransportError, TimeoutError, ConnectionError)):
        return TransientTargetError(f"{where}: {e}")
    return TargetError(f"{where}: {type(e).__name__}: {e}")


#: collection metadata key of a config's indexing threshold while the load defers indexing
THRESHOLD_KEY = "cortex_indexing_threshold"


class ServerTarget(Target):
    kind = "server"

    def __init__(self, url: str, api_key: str | None = None, prefer_grpc: bool = True,
                 grpc_port: int = 6334, timeout: int = 60, client: Any = None, raw_grpc_upload: bool = True) -> None:
        """``raw_grpc_upload=False``: upsert with qdrant-client's own ``upsert`` even over gRPC (slower; for tests)."""
        from qdrant_client import QdrantClient

        self.url = url
        self.api_key = api_key
        if client is not None:
            self.client = client
        elif url == ":memory:":
            self.client = QdrantClient(location=":memory:")
        elif url.startswith("local:"):
            self.client = QdrantClient(path=url[len("local:"):])
        else:
            # With gRPC every call Cortex makes goes over gRPC, so the REST port may be closed: skip
            # qdrant-client's version check, which reads it (and warns when it cannot).
            with warnings.catch_warnings():  # an unreachable server gets Cortex's one-line error from ping()
                warnings.filterwarnings("ignore", message="Failed to obtain server version")
                self.client = QdrantClient(url=url, api_key=api_key, prefer_grpc=prefer_grpc,
                                           grpc_port=grpc_port, timeout=timeout, check_compatibility=not prefer_grpc)
        self.local = url == ":memory:" or url.startswith("local:")
        self.normalizes_cosine = not self.local  # local mode keeps cosine vectors as given
        self.prefer_grpc = prefer_grpc and not self.local
        self.raw_grpc_upload = raw_grpc_upload and self.prefer_grpc
        self.timeout = timeout
        self._uploader: Any = None
        self._uploader_lock = threading.Lock()
        # Local mode is not thread-safe (one SQLite connection): the pipeline's writers take turns.
        self._local_lock = threading.Lock() if self.local else None
        self._thresholds: dict[str, int] = {}  # indexing threshold of a config-created collection, after its load

    @property
    def location(self) -> str:
        return self.url

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            if self._local_lock is not None:
                with self._local_lock:
                    return fn()
            return fn()
        except Exception as e:  # translated into typed errors
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            if isinstance(e, ValueError) and "not found" in str(e).lower():
                raise TargetError(f"{self.url}: {what}: {e}") from e
            raise translate(e, f"{self.url}: {what}") from e

    def ping(self) -> None:
        """Fail fast with a clear message when the server is unreachable or refuses the key."""
        try:
            self._call("list collections", self.client.get_collections)
        except TransientTargetError as e:
            raise TargetError(f"cannot reach Qdrant at {self.url} ({e}); check --url / QDRANT_URL "
                              "and that the server is running") from e

    def close(self) -> None:
        self.client.close()

    def list_collections(self) -> list[str]:
        return sorted(c.name for c in self._call("list collections", self.client.get_collections).collections)

    def collection_info(self, name: str) -> CollectionInfo | None:
        if not self._call("collection exists", lambda: self.client.collection_exists(name)):
            try:  # an alias (servers that do not resolve it in collection_exists)
                real = self.resolve(name)
            except TargetError:
                return None
            if real == name or not self._call("collection exists", lambda: self.client.collection_exists(real)):
                return None
            name = real
        info = self._call(f"get collection '{name}'", lambda: self.client.get_collection(name))
        params = info.config.params
        vectors = params.vectors
        dim = distance = None
        named: dict[str, dict[str, Any]] = {}
        if isinstance(vectors, dict):
            for vname, vp in vectors.items():
                if vname != "":
                    named[vname] = {"size": vp.size, "distance": vp.distance.value.lower()}
                    if vp.multivector_config is not None:
                        named[vname]["multivector"] = True
            if "" in vectors:
                dim, distance = vectors[""].size, vectors[""].distance.value.lower()
        elif vectors is not None:
            dim, distance = vectors.size, vectors.distance.value.lower()
        sparse = {n: {"modifier": "idf" if str(getattr(sp.modifier, "value", sp.modifier)).lower() == "idf" else None}
                  for n, sp in (params.sparse_vectors or {}).items()}
        hnsw = info.config.hnsw_config.model_dump(exclude_none=True) if info.config.hnsw_config else {}
        opt = info.config.optimizer_config.model_dump(exclude_none=True) if info.config.optimizer_config else {}
        status = getattr(info.status, "value", str(info.status))
        schema = {k: str(getattr(v.data_type, "value", v.data_type)) for k, v in (info.payload_schema or {}).items()}
        return CollectionInfo(
            name=name, dim=dim, distance=distance, points=info.points_count or 0, status=status,
            segments=info.segments_count, indexed_vectors=info.indexed_vectors_count, hnsw=hnsw,
            optimizer=opt, disk_bytes=None, payload_indexes=schema, named_vectors=named, sparse_vectors=sparse,
        )

    def create_collection(self, name: str, dim: int, distance: str, defer_indexing: bool = True, *,
                          sparse: dict[str, dict[str, Any]] | None = None,
                          named: dict[str, dict[str, Any]] | None = None, custom_sharding: bool = False,
                          config: Any = None) -> None:
        """As :meth:`Target.create_collection`; ``custom_sharding``: sharding_method custom (shard keys);
        ``config``: a :class:`~cortex.collection_config.CollectionConfig` to create it from."""
        from qdrant_client import models

        if config is not None:
            from cortex.collection_config import client_create_kwargs

            kw = client_create_kwargs(config.model_copy(update={"name": name}),
                                      indexing_threshold=0 if defer_indexing else None)
            if custom_sharding:
                kw["sharding_method"] = models.ShardingMethod.CUSTOM
            if config.optimizers is not None and config.optimizers.indexing_threshold is not None:
                self._thresholds[name] = config.optimizers.indexing_threshold
                # kept in the collection too, so a resumed load in another process restores it (not the default)
                kw["metadata"] = {**(kw.get("metadata") or {}),
                                  THRESHOLD_KEY: config.optimizers.indexing_threshold}
            self._call(f"create collection '{name}'", lambda: self.client.create_collection(**kw))
            return

        def params(size: int, dist: str) -> Any:
            return models.VectorParams(size=size, distance=models.Distance(_DISTANCES[dist.lower()]))

        vectors: Any = params(dim, distance)
        if named:
            vectors = {"": vectors, **{n: params(int(v["size"]), v["distance"]) for n, v in named.items()}}
        sparse_cfg = None
        if sparse:
            sparse_cfg = {n: models.SparseVectorParams(modifier=models.Modifier.IDF
                                                       if (v or {}).get("modifier") == "idf" else None)
                          for n, v in sparse.items()}
        threshold = 0 if defer_indexing else None
        self._call(f"create collection '{name}'", lambda: self.client.create_collection(
            name,
            vectors_config=vectors,
            sparse_vectors_config=sparse_cfg,
            optimizers_config=models.OptimizersConfigDiff(indexing_threshold=threshold) if defer_indexing else None,
            **({"sharding_method": models.ShardingMethod.CUSTOM} if custom_sharding else {}),
        ))

    def delete_collection(self, name: str) -> None:
        self._call(f"delete collection '{name}'", lambda: self.client.delete_collection(name))

    def upsert(self, name: str, ids: list[int | str], vectors: np.ndarray,
               payloads: list[dict[str, Any]] | None, *,
               sparse: dict[str, list[tuple[list[int], list[float]] | None]] | None = None,
               named: dict[str, np.ndarray] | None = None, shard_key: str | int | None = None) -> None:
        """As :meth:`Target.upsert`; ``shard_key``: into that custom shard key (custom sharding)."""
        sk = {"shard_key": shard_key} if shard_key is not None else {}
        if self.raw_grpc_upload:
            up = self._uploader or self._make_uploader()
            if sparse or named:
                self._call(f"upsert into '{name}'", lambda: up.upsert(name, ids, vectors, payloads,
                                                                      sparse=sparse, named=named, **sk))
            else:
                self._call(f"upsert into '{name}'", lambda: up.upsert(name, ids, vectors, payloads, **sk))
            return
        from qdrant_client import models

        rest = {"shard_key_selector": shard_key} if shard_key is not None else {}
        if sparse or named:
            points = [models.PointStruct(id=i, vector=v, payload=payloads[k] if payloads is not None else None)
                      for k, (i, v) in enumerate(zip(ids, _vector_dicts(vectors, sparse, named), strict=True))]
            self._call(f"upsert into '{name}'", lambda: self.client.upsert(name, points=points, wait=True, **rest))
            return
        batch = models.Batch(ids=list(ids), vectors=vectors.tolist(), payloads=payloads)
        self._call(f"upsert into '{name}'", lambda: self.client.upsert(name, points=batch, wait=True, **rest))

    def create_shard_key(self, name: str, key: str | int) -> bool:
        """Create custom shard key ``key`` on a collection made with ``custom_sharding``; False when it exists."""
        have = self._call(f"list shard keys of '{name}'", lambda: self.client.list_shard_keys(name))
        if any(getattr(sk, "key", sk) == key for sk in (getattr(have, "shard_keys", None) or [])):
            return False
        self._call(f"create shard key {key!r} on '{name}'", lambda: self.client.create_shard_key(name, key))
        return True

    def _make_uploader(self) -> Any:
        from cortex.targets.grpc_upload import GrpcUploader

        with self._uploader_lock:  # writer threads share one uploader (and the client's channels)
            if self._uploader is None:
                self._uploader = self._call("open gRPC channels", lambda: GrpcUploader(self.client, self.timeout))
            return self._uploader

    def finish_load(self, name: str) -> None:
        from qdrant_client import models

        info = self.collection_info(name)
        if info is not None and info.optimizer.get("indexing_threshold") == 0:
            threshold = self._thresholds.get(name) or self._saved_threshold(name) or DEFAULT_INDEXING_THRESHOLD_KB
            self._call(f"re-enable indexing of '{name}'", lambda: self.client.update_collection(
                name, optimizers_config=models.OptimizersConfigDiff(indexing_threshold=threshold)))

    def _saved_threshold(self, name: str) -> int | None:
        """The config's indexing threshold that ``create_collection`` kept in the collection's metadata."""
        try:
            meta = self._call(f"read collection '{name}'", lambda: self.client.get_collection(name)).config.metadata
        except TargetError:
            return None
        value = (meta or {}).get(THRESHOLD_KEY)
        return int(value) if isinstance(value, int | float) and value > 0 else None

    def optimize(self, name: str, wait: bool = True, progress: Any = None) -> CollectionInfo:
        from qdrant_client import models

        self.finish_load(name)
        # An empty optimizers diff wakes the optimizer (the documented way to trigger it).
        self._call(f"optimize '{name}'", lambda: self.client.update_collection(
            name, optimizers_config=models.OptimizersConfigDiff()))
        info = self.collection_info(name)
        while wait and info is not None and info.status != "green":
            if progress is not None:
                progress(info)
            time.sleep(1.0)
            info = self.collection_info(name)
        assert info is not None
        return info

    def retrieve(self, name: str, ids: list[int | str], with_vectors: bool = True) -> dict[Any, StoredPoint]:
        recs = self._call(f"retrieve from '{name}'", lambda: self.client.retrieve(
            name, ids=list(ids), with_payload=True, with_vectors=with_vectors))
        return {(sp := _stored(r, with_vectors)).id: sp for r in recs}

    def scroll(self, name: str, batch_size: int = 1000, with_vectors: bool = False,
               with_payload: bool = True, filter: Any = None) -> Iterator[list[StoredPoint]]:
        offset = None
        flt = qdrant_filter(filter, "client")
        while True:
            recs, offset = self._call(f"scroll '{name}'", lambda o=offset: self.client.scroll(
                name, limit=batch_size, offset=o, scroll_filter=flt, with_payload=with_payload,
                with_vectors=with_vectors))
            if recs:
                yield [_stored(r, with_vectors) for r in recs]
            if offset is None:
                return

    def search(self, name: str, queries: np.ndarray, k: int, ef: int | None = None,
               exact: bool = False, filter: Any = None, params: Any = None) -> list[list[tuple[Any, float]]]:
        from qdrant_client import models

        from cortex.collection_config import client_search_params

        flt = qdrant_filter(filter, "client")
        sp = (client_search_params(merged_search_params(params, ef, exact)) if params is not None
              else models.SearchParams(hnsw_ef=ef, exact=exact))
        reqs = [models.QueryRequest(query=row, limit=k, filter=flt, params=sp)
                for row in np.asarray(queries, dtype=np.float32).tolist()]
        out = self._call(f"search '{name}'", lambda: self.client.query_batch_points(name, requests=reqs))
        return [[(normalize_point_id(p.id), float(p.score)) for p in r.points] for r in out]

    def count(self, name: str, exact: bool = True, filter: Any = None) -> int:
        flt = qdrant_filter(filter, "client")
        return self._call(f"count '{name}'", lambda: self.client.count(name, count_filter=flt, exact=exact)).count

    def delete_points(self, name: str, filter: Any, shard_key: str | int | None = None) -> None:
        """As :meth:`Target.delete_points`; ``shard_key``: in that custom shard key only."""
        from qdrant_client import models

        flt = qdrant_filter(filter, "client")
        sk = {"shard_key_selector": shard_key} if shard_key is not None else {}
        self._call(f"delete points from '{name}'", lambda: self.client.delete(
            name, points_selector=models.FilterSelector(filter=flt), wait=True, **sk))

    def create_payload_index(self, name: str, field_name: str, kind: str = "keyword",
                             is_tenant: bool = False) -> None:
        from qdrant_client import models

        if self.local:
            return  # qdrant-client's local mode keeps no payload indexes (it filters by scanning)
        schema: Any = getattr(models.PayloadSchemaType, kind.upper())
        if is_tenant and kind == "keyword":
            schema = models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True)
        elif is_tenant and kind == "uuid":
            schema = models.UuidIndexParams(type=models.UuidIndexType.UUID, is_tenant=True)
        self._call(f"index payload field '{field_name}'", lambda: self.client.create_payload_index(
            name, field_name=field_name, field_schema=schema, wait=True))


    def delete_ids(self, name: str, ids: list[int | str]) -> None:
        from qdrant_client import models

        self._call(f"delete points from '{name}'", lambda: self.client.delete(
            name, points_selector=models.PointIdsList(points=list(ids)), wait=True))

    def list_aliases(self) -> dict[str, str]:
        got = self._call("list aliases", self.client.get_aliases)
        return {a.alias_name: a.collection_name for a in got.aliases}

    def switch_aliases(self, changes: dict[str, str | None]) -> None:
        """One ``update_collection_aliases`` call: delete + create per alias, applied atomically by Qdrant."""
        from qdrant_client import models

        have = self.list_aliases()
        ops: list[Any] = []
        for alias, coll in changes.items():
            if alias in have:
                ops.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias)))
            if coll is not None:
                ops.append(models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=coll,
                                                                                      alias_name=alias)))
        if ops:
            self._call("update aliases", lambda: self.client.update_collection_aliases(
                change_aliases_operations=ops))


def _stored(r: Any, with_vectors: bool) -> StoredPoint:
    main, sparse, named = split_vectors(r.vector) if with_vectors else (None, None, None)
    return StoredPoint(normalize_point_id(r.id), main, r.payload, sparse, named)


def _vector_dicts(vectors: np.ndarray, sparse: dict[str, list[tuple[list[int], list[float]] | None]] | None,
                  named: dict[str, np.ndarray] | None) -> list[dict[str, Any]]:
    """Per point ``{"": [...], name: [...], name: SparseVector}`` (qdrant-client models); absent ones left out."""
    from qdrant_client import models

    out: list[dict[str, Any]] = [{"": row} for row in np.asarray(vectors, dtype=np.float32).tolist()]
    for nm, arr in (named or {}).items():
        a = np.asarray(arr, dtype=np.float32)
        present = ~np.isnan(a).all(axis=1)
        for k, row in enumerate(a.tolist()):
            if present[k]:
                out[k][nm] = row
    for nm, rows in (sparse or {}).items():
        for k, row in enumerate(rows):
            if row is not None:
                out[k][nm] = models.SparseVector(indices=list(row[0]), values=list(row[1]))
    return out
