"""The gRPC services (``qdrant.Qdrant``, ``qdrant.Collections``, ``qdrant.Points``, ``qdrant.Snapshots``)."""

from __future__ import annotations

import itertools
import sys
import time
import traceback
from concurrent import futures
from typing import Any

import grpc
import qdrant_edge as q

from . import convert as cv
from .convert import BadRequest, NotFound, RpcFail, Unsupported
from .protos import g, grpc_to_payload
from .store import Store

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
        with c.use() as shard:
            info = shard.info()
            config = c.config
        ci = g.CollectionInfo(
            status=g.CollectionStatus.Green, optimizer_status=g.OptimizerStatus(ok=True),
            segments_count=info.segments_count, config=config, payload_schema=cv.payload_schema_out(info),
            points_count=info.points_count, indexed_vectors_count=info.indexed_vectors_count)
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


def _selector_ids_or_filter(sel: g.PointsSelector) -> tuple[list[Any] | None, Any]:
    kind = sel.WhichOneof("points_selector_one_of")
    if kind == "points":
        return [cv.point_id(p) for p in sel.points.ids], None
    if kind == "filter":
        return None, cv.filter_in(sel.filter) or q.Filter()
    raise BadRequest("Wrong input: empty points selector")


def _no_shard_keys(request: Any) -> None:
    if "shard_key_selector" in request.DESCRIPTOR.fields_by_name and request.HasField("shard_key_selector"):
        raise Unsupported("shard keys are not supported by this test server")


class Points(g.PointsServicer):
    def __init__(self, store: Store) -> None:
        self.store = store
        self._ops = itertools.count(1)

    def _applied(self, t0: float, wait: bool) -> g.PointsOperationResponse:
        status = g.UpdateStatus.Completed if wait else g.UpdateStatus.Acknowledged
        return g.PointsOperationResponse(result=g.UpdateResult(operation_id=next(self._ops), status=status),
                                         time=_since(t0))

    def _update(self, request: Any, op: Any) -> g.PointsOperationResponse:
        t0 = time.perf_counter()
        _no_shard_keys(request)
        with self.store.get(request.collection_name).use() as shard:
            shard.update(op)
        return self._applied(t0, request.wait if request.HasField("wait") else False)

    # -- writes ----------------------------------------------------------------------------------
    def Upsert(self, request, context):  # noqa: N802
        points = [cv.point_in(p) for p in request.points]  # converted before taking the collection lock
        kw: dict[str, Any] = {}
        if request.HasField("update_filter"):
            kw["condition"] = cv.filter_in(request.update_filter)
        if request.HasField("update_mode"):
            kw["update_mode"] = {g.UpdateMode.InsertOnly: q.UpdateMode.InsertOnly,
                                 g.UpdateMode.UpdateOnly: q.UpdateMode.UpdateOnly}.get(request.update_mode,
                                                                                        q.UpdateMode.Upsert)
        return self._update(request, q.UpdateOperation.upsert_points(points, **kw))

    def Delete(self, request, context):  # noqa: N802
        ids, flt = _selector_ids_or_filter(request.points)
        op = q.UpdateOperation.delete_points(ids) if ids is not None else q.UpdateOperation.delete_points_by_filter(flt)
        return self._update(request, op)

    def SetPayload(self, request, context):  # noqa: N802
        return self._payload_op(request, "set_payload")

    def OverwritePayload(self, request, context):  # noqa: N802
        return self._payload_op(request, "overwrite_payload")

    def _payload_op(self, request: Any, name: str) -> g.PointsOperationResponse:
        payload = grpc_to_payload(request.payload)
        key = request.key if request.HasField("key") else None
        if not request.HasField("points_selector"):
            raise BadRequest("Wrong input: points_selector is required")
        ids, flt = _selector_ids_or_filter(request.points_selector)
        if ids is not None:
            op = getattr(q.UpdateOperation, name)(ids, payload, key)
        else:
            op = getattr(q.UpdateOperation, f"{name}_by_filter")(flt, payload, key)
        return self._update(request, op)

    def DeletePayload(self, request, context):  # noqa: N802
        if not request.HasField("points_selector"):
            raise BadRequest("Wrong input: points_selector is required")
        ids, flt = _selector_ids_or_filter(request.points_selector)
        keys = list(request.keys)
        op = (q.UpdateOperation.delete_payload(ids, keys) if ids is not None
              else q.UpdateOperation.delete_payload_by_filter(flt, keys))
        return self._update(request, op)

    def ClearPayload(self, request, context):  # noqa: N802
        ids, flt = _selector_ids_or_filter(request.points)
        op = q.UpdateOperation.clear_payload(ids) if ids is not None else q.UpdateOperation.clear_payload_by_filter(flt)
        return self._update(request, op)

    def CreateFieldIndex(self, request, context):  # noqa: N802
        return self._update(request, q.UpdateOperation.create_field_index(request.field_name, cv.field_schema(request)))

    def DeleteFieldIndex(self, request, context):  # noqa: N802
        return self._update(request, q.UpdateOperation.delete_field_index(request.field_name))

    # -- reads -----------------------------------------------------------------------------------
    def Get(self, request, context):  # noqa: N802
        t0 = time.perf_counter()
        _no_shard_keys(request)
        ids = [cv.point_id(p) for p in request.ids]
        wp = cv.with_payload(request.with_payload, request.HasField("with_payload"))
        wv = cv.with_vectors(request.with_vectors, request.HasField("with_vectors"))
        with self.store.get(request.collection_name).use() as shard:
            recs = shard.retrieve(ids, with_payload=wp, with_vector=wv)
        return g.GetResponse(result=[cv.record_out(r) for r in recs], time=_since(t0))

    def Scroll(self, request, context):  # noqa: N802
        t0 = time.perf_counter()
        _no_shard_keys(request)
        req = q.ScrollRequest(
            offset=cv.point_id(request.offset) if request.HasField("offset") else None,
            limit=request.limit if request.HasField("limit") else 10,
            filter=cv.optional_filter(request),
            with_payload=cv.with_payload(request.with_payload, request.HasField("with_payload")),
            with_vector=cv.with_vectors(request.with_vectors, request.HasField("with_vectors")),
            order_by=cv.order_by(request.order_by) if request.HasField("order_by") else None)
        with self.store.get(request.collection_name).use() as shard:
            recs, nxt = shard.scroll(req)
        out = g.ScrollResponse(result=[cv.record_out(r) for r in recs], time=_since(t0))
        if nxt is not None:
            out.next_page_offset.CopyFrom(cv.point_id_out(nxt))
        return out

    def Count(self, request, context):  # noqa: N802
        t0 = time.perf_counter()
        _no_shard_keys(request)
        req = q.CountRequest(exact=request.exact if request.HasField("exact") else True,
                             filter=cv.optional_filter(request))
        with self.store.get(request.collection_name).use() as shard:
            n = shard.count(req)
        return g.CountResponse(result=g.CountResult(count=n), time=_since(t0))

    def _query(self, name: str, requests: list[Any]) -> list[list[g.ScoredPoint]]:
        """Run ``QueryPoints``-like messages (converted under the lock: a query by id reads the shard)."""
        for m in requests:
            _no_shard_keys(m)
            if "lookup_from" in m.DESCRIPTOR.fields_by_name and m.HasField("lookup_from"):
                raise Unsupported("lookup_from is not supported by this test server")
        with self.store.get(name).use() as shard:
            def lookup(pid: Any, using: str | None) -> Any:
                recs = shard.retrieve([pid], with_payload=False, with_vector=[using or ""])
                if not recs:
                    raise NotFound(f"Not found: No point with id {pid} found")
                v = recs[0].vector
                return v.get(using or "") if isinstance(v, dict) else v

            reqs = [cv.query_request(m, lookup) if isinstance(m, g.QueryPoints) else cv.search_request(m)
                    for m in requests]
            results = shard.query_batch(q.QueryBatchRequest(reqs)) if len(reqs) > 1 else [shard.query(reqs[0])]
        return [[cv.scored_out(p) for p in res] for res in results]

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
