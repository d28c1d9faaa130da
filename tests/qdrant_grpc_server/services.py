"""The gRPC services (``qdrant.Qdrant``, ``qdrant.Collections``, ``qdrant.Points``, ``qdrant.Snapshots``)."""

from __future__ import annotations

import functools
import itertools
import sys
import time
import traceback
import uuid
from concurrent import futures
from typing import Any

import grpc
import qdrant_edge as q

from . import convert as cv
from .config import dense_vectors
from .convert import BadRequest, NotFound, RpcFail, Unsupported
from .protos import g, grpc_to_payload
from .store import Store, shard_key, shard_key_out

VERSION = "1.16.0"  # the server version reported by HealthCheck
DEFAULT_MAX_MESSAGE_BYTES = 64 * 2**20
#: methods a server answers without an API key
OPEN_METHODS = {"/qdrant.Qdrant/HealthCheck", "/grpc.health.v1.Health/Check"}


def _since(t0: float) -> float:
    return time.perf_counter() - t0


def _done(t0: float, result: bool = True) -> g.CollectionOperationResponse:
    return g.CollectionOperationResponse(result=result, time=_since(t0))


class Root(g.QdrantServicer):
    def HealthCheck(self, request, context):  # noqa: N802 - gRPC method names
        return g.HealthCheckReply(title="qdrant - vector search engine (Cortex test server on Qdrant Edge)",
                                  version=VERSION, commit="qdrant-edge")


class Collections(g.CollectionsServicer):
    def __init__(self, store: Store) -> None:
        self.store = store

    def Create(self, request, context):  # noqa: N802
        t0 = time.perf_counter()
        self.store.create(request)
        return _done(t0)

    def Get(self, request, context):  # noqa: N802
        t0 = time.perf_counter()
        c = self.store.get(request.collection_name)
        with c.use() as shards:
            infos = [shard.info() for shard in shards]
            config = c.config
        ci = g.CollectionInfo(
            status=g.CollectionStatus.Green, optimizer_status=g.OptimizerStatus(ok=True),
            segments_count=sum(i.segments_count for i in infos), config=config,
            payload_schema=cv.payload_schema_out(infos),
            points_count=sum(i.points_count for i in infos),
            indexed_vectors_count=sum(i.indexed_vectors_count for i in infos))
        ci.created_at.FromJsonString(c.created_at.replace("+00:00", "Z"))
        return g.GetCollectionInfoResponse(result=ci, time=_since(t0))

    def List(self, request, context):  # noqa: N802
        t0 = time.perf_counter()
        return g.ListCollectionsResponse(
            collections=[g.CollectionDescription(name=n) for n in self.store.names()], time=_since(t0))

    def CollectionExists(self, request, context):  # noqa: N802
        t0 = time.perf_counter()
        return g.CollectionExistsResponse(
            result=g.CollectionExists(exists=self.store.exists(request.collection_name)), time=_since(t0))

    def Update(self, request, context):  # noqa: N802
        t0 = time.perf_counter()
        self.store.get(request.collection_name).reconfigure(request)
        return _done(t0)

    def Delete(self, request, context):  # noqa: N802
        t0 = time.perf_counter()
        return _done(t0, self.store.delete(request.collection_name))

    def UpdateAliases(self, request, context):  # noqa: N802
        t0 = time.perf_counter()
        self.store.update_aliases(list(request.actions))
        return _done(t0)

    def _aliases(self, t0: float, pairs: list[tuple[str, str]]) -> g.ListAliasesResponse:
        return g.ListAliasesResponse(aliases=[g.AliasDescription(alias_name=a, collection_name=c) for a, c in pairs],
                                     time=_since(t0))

    def ListAliases(self, request, context):  # noqa: N802
        return self._aliases(time.perf_counter(), self.store.list_aliases())

    def ListCollectionAliases(self, request, context):  # noqa: N802
        return self._aliases(time.perf_counter(), self.store.list_aliases(request.collection_name))

    def CreateShardKey(self, request, context):  # noqa: N802
        t0 = time.perf_counter()
        ok = self.store.get(request.collection_name).create_shard_key(shard_key(request.request.shard_key))
        return g.CreateShardKeyResponse(result=ok, time=_since(t0))

    def DeleteShardKey(self, request, context):  # noqa: N802
        t0 = time.perf_counter()
        ok = self.store.get(request.collection_name).delete_shard_key(shard_key(request.request.shard_key))
        return g.DeleteShardKeyResponse(result=ok, time=_since(t0))

    def ListShardKeys(self, request, context):  # noqa: N802
        t0 = time.perf_counter()
        c = self.store.get(request.collection_name)
        with c.use():
            keys = [k for k in c.shards if k is not None]
        return g.ListShardKeysResponse(shard_keys=[g.ShardKeyDescription(key=shard_key_out(k)) for k in keys],
                                       time=_since(t0))


def _selector_ids_or_filter(sel: g.PointsSelector, as_filter: bool = False) -> tuple[list[Any] | None, Any]:
    """(ids, None) or (None, filter); ``as_filter``: ids as a has-id filter."""
    kind = sel.WhichOneof("points_selector_one_of")
    if kind == "points":
        ids = [cv.point_id(p) for p in sel.points.ids]
        return (None, q.Filter(must=[q.HasIdCondition(set(ids))])) if as_filter else (ids, None)
    if kind == "filter":
        return None, cv.filter_in(sel.filter) or q.Filter()
    raise BadRequest("Wrong input: empty points selector")


def _selector(request: Any) -> g.ShardKeySelector | None:
    if "shard_key_selector" in request.DESCRIPTOR.fields_by_name and request.HasField("shard_key_selector"):
        return request.shard_key_selector
    return None


def _id_order(pid: Any) -> tuple[int, int]:
    """Qdrant's point order: integer ids, then UUIDs."""
    return (0, pid) if isinstance(pid, int) else (1, uuid.UUID(str(pid)).int)


def _ids_or_filter(sel: Any, as_filter: bool) -> tuple[list[Any] | None, Any]:
    if sel is None:
        raise BadRequest("Wrong input: points_selector is required")
    return _selector_ids_or_filter(sel, as_filter)


def _upsert_op(m: Any, multi: bool = False) -> Any:
    points = [cv.point_in(p) for p in m.points]
    kw: dict[str, Any] = {}
    if m.HasField("update_filter"):
        kw["condition"] = cv.filter_in(m.update_filter)
    if m.HasField("update_mode"):
        kw["update_mode"] = {g.UpdateMode.InsertOnly: q.UpdateMode.InsertOnly,
                             g.UpdateMode.UpdateOnly: q.UpdateMode.UpdateOnly}.get(m.update_mode, q.UpdateMode.Upsert)
    return q.UpdateOperation.upsert_points(points, **kw)


def _delete_op(sel: g.PointsSelector, multi: bool = False) -> Any:
    ids, flt = _selector_ids_or_filter(sel, multi)
    return q.UpdateOperation.delete_points(ids) if ids is not None else q.UpdateOperation.delete_points_by_filter(flt)


def _payload_op(m: Any, name: str, multi: bool = False) -> Any:
    payload = grpc_to_payload(m.payload)
    key = m.key if m.HasField("key") else None
    ids, flt = _ids_or_filter(m.points_selector if m.HasField("points_selector") else None, multi)
    if ids is not None:
        return getattr(q.UpdateOperation, name)(ids, payload, key)
    return getattr(q.UpdateOperation, f"{name}_by_filter")(flt, payload, key)


def _delete_payload_op(m: Any, multi: bool = False) -> Any:
    ids, flt = _ids_or_filter(m.points_selector if m.HasField("points_selector") else None, multi)
    keys = list(m.keys)
    return (q.UpdateOperation.delete_payload(ids, keys) if ids is not None
            else q.UpdateOperation.delete_payload_by_filter(flt, keys))


def _clear_payload_op(sel: g.PointsSelector, multi: bool = False) -> Any:
    ids, flt = _selector_ids_or_filter(sel, multi)
    return q.UpdateOperation.clear_payload(ids) if ids is not None else q.UpdateOperation.clear_payload_by_filter(flt)


def _update_vectors_op(m: Any, multi: bool = False) -> Any:
    pvs = [q.PointVectors(cv.point_id(p.id), cv.vectors_in(p.vectors)) for p in m.points]
    flt = cv.filter_in(m.update_filter) if m.HasField("update_filter") else None
    return q.UpdateOperation.update_vectors(pvs, condition=flt)


def _delete_vectors_op(m: Any, multi: bool = False) -> Any:
    ids, flt = _ids_or_filter(m.points_selector if m.HasField("points_selector") else None, multi)
    names = list(m.vectors.names)
    return (q.UpdateOperation.delete_vectors(ids, names) if ids is not None
            else q.UpdateOperation.delete_vectors_by_filter(flt, names))


#: batch operation -> builder(message, several_shards) of its Edge op
_BATCH_OPS: dict[str, Any] = {
    "upsert": _upsert_op, "delete_points": lambda m, multi: _delete_op(m.points, multi),
    "delete_deprecated": _delete_op, "set_payload": lambda m, multi: _payload_op(m, "set_payload", multi),
    "overwrite_payload": lambda m, multi: _payload_op(m, "overwrite_payload", multi),
    "delete_payload": _delete_payload_op, "clear_payload": lambda m, multi: _clear_payload_op(m.points, multi),
    "clear_payload_deprecated": _clear_payload_op, "update_vectors": _update_vectors_op,
    "delete_vectors": _delete_vectors_op,
}


def _apply(shards: list[Any], build: Any) -> None:
    """The op ``build(several_shards)`` makes, on each shard.  Over several shard keys an op by ids becomes one by
    a has-id filter, so a point that lives in another shard is no error."""
    op = build(len(shards) > 1)
    for shard in shards:
        shard.update(op)


class Points(g.PointsServicer):
    def __init__(self, store: Store) -> None:
        self.store = store
        self._ops = itertools.count(1)

    def _applied(self, t0: float, wait: bool) -> g.PointsOperationResponse:
        status = g.UpdateStatus.Completed if wait else g.UpdateStatus.Acknowledged
        return g.PointsOperationResponse(result=g.UpdateResult(operation_id=next(self._ops), status=status),
                                         time=_since(t0))

    def _update(self, request: Any, build: Any, insert: bool = False) -> g.PointsOperationResponse:
        """Apply the op ``build(several_shards)`` makes to the shards the request names (all when none; an insert
        into a custom-sharded collection must name them)."""
        t0 = time.perf_counter()
        with self.store.get(request.collection_name).use(_selector(request), write=insert) as shards:
            _apply(shards, build)
        return self._applied(t0, request.wait if request.HasField("wait") else False)

    # -- writes ----------------------------------------------------------------------------------
    def Upsert(self, request, context):  # noqa: N802
        op = _upsert_op(request)  # converted before taking the collection lock
        return self._update(request, lambda _multi: op, insert=True)

    def Delete(self, request, context):  # noqa: N802
        return self._update(request, lambda multi: _delete_op(request.points, multi))

    def SetPayload(self, request, context):  # noqa: N802
        return self._update(request, lambda multi: _payload_op(request, "set_payload", multi))

    def OverwritePayload(self, request, context):  # noqa: N802
        return self._update(request, lambda multi: _payload_op(request, "overwrite_payload", multi))

    def DeletePayload(self, request, context):  # noqa: N802
        return self._update(request, lambda multi: _delete_payload_op(request, multi))

    def ClearPayload(self, request, context):  # noqa: N802
        return self._update(request, lambda multi: _clear_payload_op(request.points, multi))

    def UpdateVectors(self, request, context):  # noqa: N802
        return self._update(request, lambda multi: _update_vectors_op(request, multi))

    def DeleteVectors(self, request, context):  # noqa: N802
        return self._update(request, lambda multi: _delete_vectors_op(request, multi))

    def UpdateBatch(self, request, context):  # noqa: N802
        """The operations in order, under one hold of the collection lock (no other call sees half of them)."""
        t0 = time.perf_counter()
        ops = []
        for o in request.operations:
            kind = o.WhichOneof("operation")
            build = _BATCH_OPS.get(kind or "")
            if build is None:
                raise BadRequest(f"Wrong input: unknown batch operation {kind!r}")
            m = getattr(o, kind)
            ops.append((functools.partial(build, m), _selector(m), kind == "upsert"))
        c = self.store.get(request.collection_name)
        with c.lock:
            for build, selector, insert in ops:
                with c.use(selector, write=insert) as shards:
                    _apply(shards, build)
        wait = request.wait if request.HasField("wait") else False
        status = g.UpdateStatus.Completed if wait else g.UpdateStatus.Acknowledged
        return g.UpdateBatchResponse(result=[g.UpdateResult(operation_id=next(self._ops), status=status)
                                             for _ in ops], time=_since(t0))

    def _every_shard(self, request: Any, op: Any) -> g.PointsOperationResponse:
        t0 = time.perf_counter()
        with self.store.get(request.collection_name).use() as shards:
            for shard in shards:
                shard.update(op)
        return self._applied(t0, request.wait if request.HasField("wait") else False)

    def CreateFieldIndex(self, request, context):  # noqa: N802
        op = q.UpdateOperation.create_field_index(request.field_name, cv.field_schema(request))
        return self._every_shard(request, op)

    def DeleteFieldIndex(self, request, context):  # noqa: N802
        return self._every_shard(request, q.UpdateOperation.delete_field_index(request.field_name))

    # -- reads -----------------------------------------------------------------------------------
    def Get(self, request, context):  # noqa: N802
        t0 = time.perf_counter()
        ids = [cv.point_id(p) for p in request.ids]
        wp = cv.with_payload(request.with_payload, request.HasField("with_payload"))
        wv = cv.with_vectors(request.with_vectors, request.HasField("with_vectors"))
        recs: dict[Any, Any] = {}
        with self.store.get(request.collection_name).use(_selector(request)) as shards:
            for shard in shards:
                for r in shard.retrieve(ids, with_payload=wp, with_vector=wv):
                    recs.setdefault(str(r.id), r)
        return g.GetResponse(result=[cv.record_out(r) for r in recs.values()], time=_since(t0))

    def Scroll(self, request, context):  # noqa: N802
        t0 = time.perf_counter()
        limit = request.limit if request.HasField("limit") else 10

        def scroll_request(n: int) -> Any:
            return q.ScrollRequest(
                offset=cv.point_id(request.offset) if request.HasField("offset") else None, limit=n,
                filter=cv.optional_filter(request),
                with_payload=cv.with_payload(request.with_payload, request.HasField("with_payload")),
                with_vector=cv.with_vectors(request.with_vectors, request.HasField("with_vectors")),
                order_by=cv.order_by(request.order_by) if request.HasField("order_by") else None)

        with self.store.get(request.collection_name).use(_selector(request)) as shards:
            if len(shards) == 1:
                recs, nxt = shards[0].scroll(scroll_request(limit))
            elif request.HasField("order_by"):
                raise Unsupported("order_by across several shard keys is not supported by this test server")
            else:  # merge the shards' pages in id order; the first left over is the next offset
                merged: dict[Any, Any] = {}
                for shard in shards:
                    for r in shard.scroll(scroll_request(limit + 1))[0]:
                        merged.setdefault(_id_order(r.id), r)
                page = [merged[k] for k in sorted(merged)]
                recs, nxt = page[:limit], (page[limit].id if len(page) > limit else None)
        out = g.ScrollResponse(result=[cv.record_out(r) for r in recs], time=_since(t0))
        if nxt is not None:
            out.next_page_offset.CopyFrom(cv.point_id_out(nxt))
        return out

    def Count(self, request, context):  # noqa: N802
        t0 = time.perf_counter()
        req = q.CountRequest(exact=request.exact if request.HasField("exact") else True,
                             filter=cv.optional_filter(request))
        with self.store.get(request.collection_name).use(_selector(request)) as shards:
            n = sum(shard.count(req) for shard in shards)
        return g.CountResponse(result=g.CountResult(count=n), time=_since(t0))

    def _query(self, name: str, requests: list[Any]) -> list[list[g.ScoredPoint]]:
        """Run ``QueryPoints`` / ``SearchPoints`` messages (converted under the lock: a query by id reads the shard).

        Over several shard keys each shard answers ``offset + limit`` points, merged by score as the
        distance orders it (or by ``order_by``), then cut to the page.
        """
        for m in requests:
            if "lookup_from" in m.DESCRIPTOR.fields_by_name and m.HasField("lookup_from"):
                raise Unsupported("lookup_from is not supported by this test server")
        c = self.store.get(name)
        with c.use(_selector(requests[0])) as shards:
            def lookup(pid: Any, using: str | None) -> Any:
                for shard in shards:
                    recs = shard.retrieve([pid], with_payload=False, with_vector=[using or ""])
                    if recs:
                        v = recs[0].vector
                        return v.get(using or "") if isinstance(v, dict) else v
                raise NotFound(f"Not found: No point with id {pid} found")

            def convert(m: Any) -> Any:
                return cv.query_request(m, lookup) if isinstance(m, g.QueryPoints) else cv.search_request(m)

            if len(shards) == 1:
                reqs = [convert(m) for m in requests]
                results = shards[0].query_batch(q.QueryBatchRequest(reqs)) if len(reqs) > 1 \
                    else [shards[0].query(reqs[0])]
                return [[cv.scored_out(p) for p in res] for res in results]
            out = []
            for m in requests:
                page = type(m)()
                page.CopyFrom(m)
                offset = m.offset if m.HasField("offset") else 0
                limit = m.limit if isinstance(m, g.SearchPoints) or m.HasField("limit") else 10
                page.limit = offset + limit
                page.ClearField("offset")
                req = convert(page)
                hits = [p for shard in shards for p in shard.query(req)]
                hits.sort(key=_score_order(c.config, m))
                out.append([cv.scored_out(p) for p in hits[offset:offset + limit]])
            return out

    def Query(self, request, context):  # noqa: N802
        t0 = time.perf_counter()
        [res] = self._query(request.collection_name, [request])
        return g.QueryResponse(result=res, time=_since(t0))

    def QueryBatch(self, request, context):  # noqa: N802
        t0 = time.perf_counter()
        results = self._query(request.collection_name, list(request.query_points)) if request.query_points else []
        return g.QueryBatchResponse(result=[g.BatchResult(result=r) for r in results], time=_since(t0))

    def Search(self, request, context):  # noqa: N802
        t0 = time.perf_counter()
        [res] = self._query(request.collection_name, [request])
        return g.SearchResponse(result=res, time=_since(t0))

    def SearchBatch(self, request, context):  # noqa: N802
        t0 = time.perf_counter()
        results = self._query(request.collection_name, list(request.search_points)) if request.search_points else []
        return g.SearchBatchResponse(result=[g.BatchResult(result=r) for r in results], time=_since(t0))


def _score_order(config: g.CollectionConfig, m: Any) -> Any:
    """The sort key that puts the best hits of a query first (distances ascending, similarities descending)."""
    if isinstance(m, g.QueryPoints) and m.HasField("query") and m.query.WhichOneof("variant") == "order_by":
        desc = m.query.order_by.HasField("direction") and m.query.order_by.direction == g.Direction.Desc
        return lambda p: -p.order_value if desc else p.order_value
    using = (m.using if isinstance(m, g.QueryPoints) else m.vector_name) if m.HasField(
        "using" if isinstance(m, g.QueryPoints) else "vector_name") else ""
    fused = isinstance(m, g.QueryPoints) and m.HasField("query") and m.query.WhichOneof("variant") in ("fusion", "rrf")
    params = dense_vectors(config).get(using)
    if not fused and params is not None and params.distance in (g.Distance.Euclid, g.Distance.Manhattan):
        return lambda p: p.score
    return lambda p: -p.score


class Snapshots(g.SnapshotsServicer):
    def __init__(self, store: Store) -> None:
        self.store = store

    def Create(self, request, context):  # noqa: N802
        t0 = time.perf_counter()
        desc = self.store.create_snapshot(request.collection_name)
        return g.CreateSnapshotResponse(snapshot_description=desc, time=_since(t0))

    def List(self, request, context):  # noqa: N802
        t0 = time.perf_counter()
        return g.ListSnapshotsResponse(snapshot_descriptions=self.store.list_snapshots(request.collection_name),
                                       time=_since(t0))

    def Delete(self, request, context):  # noqa: N802
        t0 = time.perf_counter()
        self.store.delete_snapshot(request.collection_name, request.snapshot_name)
        return g.DeleteSnapshotResponse(time=_since(t0))


class Guard(grpc.ServerInterceptor):
    """API-key check (``api-key`` or ``authorization: Bearer``) and errors as gRPC statuses."""

    def __init__(self, api_key: str | None) -> None:
        self.api_key = api_key

    def _authorized(self, details: Any) -> bool:
        if self.api_key is None or details.method in OPEN_METHODS:
            return True
        md = dict(details.invocation_metadata or ())
        return md.get("api-key") == self.api_key or md.get("authorization") == f"Bearer {self.api_key}"

    def intercept_service(self, continuation, details):
        handler = continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        inner, authorized = handler.unary_unary, self._authorized(details)

        def run(request, context):
            if not authorized:
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "Invalid api-key")
            try:
                return inner(request, context)
            except RpcFail as e:
                context.abort(getattr(grpc.StatusCode, e.code), str(e))
            except NotImplementedError:
                context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{details.method} is not implemented by this test server")
            except (TypeError, ValueError, OverflowError) as e:  # what the binding raises for malformed values
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"Wrong input: {e}")
            except Exception as e:
                if type(e) is Exception:  # the Edge binding's errors are bare Exceptions
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"Wrong input: {e}")
                traceback.print_exc(file=sys.stderr)
                context.abort(grpc.StatusCode.INTERNAL, f"Service internal error: {type(e).__name__}: {e}")

        return grpc.unary_unary_rpc_method_handler(run, request_deserializer=handler.request_deserializer,
                                                   response_serializer=handler.response_serializer)


def build_server(store: Store, port: int = 0, host: str = "127.0.0.1", api_key: str | None = None,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, workers: int = 16) -> tuple[grpc.Server, int]:
    """A started gRPC server on ``host:port`` (0: a free port) and the port it listens on."""
    opts = [("grpc.max_receive_message_length", max_message_bytes), ("grpc.max_send_message_length", -1),
            ("grpc.so_reuseport", 0)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="qdrant-grpc"),
                         options=opts, interceptors=[Guard(api_key)])
    g.add_QdrantServicer_to_server(Root(), server)
    g.add_CollectionsServicer_to_server(Collections(store), server)
    g.add_PointsServicer_to_server(Points(store), server)
    g.add_SnapshotsServicer_to_server(Snapshots(store), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if not bound:
        raise OSError(f"cannot listen on {host}:{port}")
    server.start()
    return server, bound
