"""Protobuf messages of Qdrant's gRPC API <-> Qdrant Edge (``qdrant_edge``) objects.

Every function raises :class:`BadRequest` (sent as INVALID_ARGUMENT) for what a Qdrant
server would refuse as wrong input, and :class:`Unsupported` for what this test server
does not implement.
"""

from __future__ import annotations

import sys
import uuid
from array import array
from typing import Any

import numpy as np
import qdrant_edge as q

from .protos import g, grpc_to_payload, payload_to_grpc

DEFAULT_RRF_K = 2  # Qdrant's default for Fusion.RRF


class RpcFail(Exception):
    """An RPC answered with a gRPC status (``code`` is a ``grpc.StatusCode`` name)."""

    code = "INTERNAL"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code


class BadRequest(RpcFail):
    code = "INVALID_ARGUMENT"


class NotFound(RpcFail):
    code = "NOT_FOUND"


class Unsupported(RpcFail):
    code = "UNIMPLEMENTED"


# -- ids -----------------------------------------------------------------------------------------
def point_id(p: g.PointId) -> int | str:
    kind = p.WhichOneof("point_id_options")
    if kind == "num":
        return p.num
    if kind == "uuid":
        try:
            return str(uuid.UUID(p.uuid))
        except ValueError as e:
            raise BadRequest(f"Unable to parse UUID: {p.uuid}") from e
    raise BadRequest("Wrong input: point id is empty (neither num nor uuid)")


def point_id_out(pid: Any) -> g.PointId:
    if isinstance(pid, int):
        return g.PointId(num=pid)
    return g.PointId(uuid=str(pid))


# -- vectors -------------------------------------------------------------------------------------
def dense_floats(d: g.DenseVector) -> array:
    """The floats of a ``DenseVector`` straight from its packed wire bytes (2x faster than ``list(d.data)``)."""
    b = d.SerializeToString()  # 0x0a, varint length, little-endian float32s
    if not b:
        return array("f")
    i = 1
    while b[i] & 0x80:
        i += 1
    out = array("f")
    out.frombytes(b[i + 1:])
    if sys.byteorder != "little":
        out.byteswap()
    return out


def vector_in(v: g.Vector) -> Any:
    """One ``Vector`` as Edge takes it: a sequence of floats, a ``SparseVector`` or a list of lists."""
    kind = v.WhichOneof("vector")
    if kind == "dense":
        return dense_floats(v.dense)
    if kind == "sparse":
        return q.SparseVector(list(v.sparse.indices), list(v.sparse.values))
    if kind == "multi_dense":
        return [list(d.data) for d in v.multi_dense.vectors]
    if kind is None:  # the deprecated layout: data (+ indices | vectors_count)
        if v.HasField("indices"):
            return q.SparseVector(list(v.indices.data), list(v.data))
        if v.HasField("vectors_count") and v.vectors_count > 0:
            data, n = list(v.data), v.vectors_count
            if len(data) % n:
                raise BadRequest(f"Wrong input: {len(data)} floats do not split into {n} vectors")
            step = len(data) // n
            return [data[i:i + step] for i in range(0, len(data), step)]
        return list(v.data)
    raise Unsupported(f"inference inputs ({kind}) are not supported by this test server")


def vectors_in(v: g.Vectors) -> Any:
    kind = v.WhichOneof("vectors_options")
    if kind == "vector":
        return vector_in(v.vector)
    if kind == "vectors":
        return {name: vector_in(x) for name, x in v.vectors.vectors.items()}
    raise BadRequest("Wrong input: point has no vectors")


def vector_input(v: g.VectorInput, lookup: Any) -> Any:
    """A query's ``VectorInput``; ``lookup(point_id)`` gives a stored point's vector."""
    kind = v.WhichOneof("variant")
    if kind == "dense":
        return list(v.dense.data)
    if kind == "sparse":
        return q.SparseVector(list(v.sparse.indices), list(v.sparse.values))
    if kind == "multi_dense":
        return [list(d.data) for d in v.multi_dense.vectors]
    if kind == "id":
        return lookup(point_id(v.id))
    raise Unsupported(f"query input {kind!r} is not supported by this test server")


def _vector_out(v: Any) -> g.VectorOutput:
    if hasattr(v, "indices"):
        return g.VectorOutput(sparse=g.SparseVector(values=list(v.values), indices=list(v.indices)))
    if v and isinstance(v[0], (list, tuple)):
        return g.VectorOutput(multi_dense=g.MultiDenseVector(vectors=[g.DenseVector(data=r) for r in v]))
    return g.VectorOutput(dense=g.DenseVector(data=v))


def vectors_out(v: Any) -> g.VectorsOutput:
    if isinstance(v, dict):
        return g.VectorsOutput(vectors=g.NamedVectorsOutput(vectors={k: _vector_out(x) for k, x in v.items()}))
    return g.VectorsOutput(vector=_vector_out(v))


def point_in(p: g.PointStruct) -> Any:
    if not p.HasField("vectors"):
        raise BadRequest("Wrong input: point has no vectors")
    return q.Point(point_id(p.id), vectors_in(p.vectors), grpc_to_payload(p.payload) if p.payload else None)


def record_out(r: Any) -> g.RetrievedPoint:
    out = g.RetrievedPoint(id=point_id_out(r.id), payload=payload_to_grpc(r.payload) if r.payload else None)
    return _with_vector_and_order(out, r)


def scored_out(p: Any) -> g.ScoredPoint:
    out = g.ScoredPoint(id=point_id_out(p.id), score=float(p.score), version=int(p.version or 0),
                        payload=payload_to_grpc(p.payload) if p.payload else None)
    return _with_vector_and_order(out, p)


def _with_vector_and_order(out: Any, p: Any) -> Any:
    """``out`` (a RetrievedPoint or ScoredPoint) with ``p``'s vectors and order value, where it has them."""
    if p.vector is not None:
        out.vectors.CopyFrom(vectors_out(p.vector))
    if p.order_value is not None:
        out.order_value.CopyFrom(_order_value(p.order_value))
    return out


def _order_value(v: Any) -> g.OrderValue:
    return g.OrderValue(int=v) if isinstance(v, int) else g.OrderValue(float=float(v))


# -- selectors -----------------------------------------------------------------------------------
def with_payload(sel: g.WithPayloadSelector | None, has: bool) -> Any:
    if sel is None or not has:
        return False
    kind = sel.WhichOneof("selector_options")
    if kind == "enable":
        return sel.enable
    if kind == "include":
        return q.PayloadSelector.Include(list(sel.include.fields))
    if kind == "exclude":
        return q.PayloadSelector.Exclude(list(sel.exclude.fields))
    return False


def with_vectors(sel: g.WithVectorsSelector | None, has: bool) -> Any:
    if sel is None or not has:
        return False
    kind = sel.WhichOneof("selector_options")
    if kind == "enable":
        return sel.enable
    if kind == "include":
        return list(sel.include.names)
    return False


# -- filters -------------------------------------------------------------------------------------
def filter_in(f: g.Filter) -> Any:
    """A protobuf ``Filter`` as a ``qdrant_edge.Filter`` (None when it holds no condition)."""
    must = [condition(c) for c in f.must]
    should = [condition(c) for c in f.should]
    must_not = [condition(c) for c in f.must_not]
    min_should = None
    if f.HasField("min_should"):
        min_should = q.MinShould([condition(c) for c in f.min_should.conditions], f.min_should.min_count)
    if not (must or should or must_not or min_should):
        return None
    return q.Filter(must=must or None, should=should or None, must_not=must_not or None, min_should=min_should)


def optional_filter(msg: Any, field: str = "filter") -> Any:
    return filter_in(getattr(msg, field)) if msg.HasField(field) else None


def condition(c: g.Condition) -> Any:
    kind = c.WhichOneof("condition_one_of")
    if kind == "field":
        return field_condition(c.field)
    if kind == "is_empty":
        return q.IsEmptyCondition(c.is_empty.key)
    if kind == "is_null":
        return q.IsNullCondition(c.is_null.key)
    if kind == "has_id":
        return q.HasIdCondition({point_id(p) for p in c.has_id.has_id})
    if kind == "filter":
        return filter_in(c.filter) or q.Filter()
    if kind == "nested":
        return q.NestedCondition(c.nested.key, filter_in(c.nested.filter) or q.Filter())
    if kind == "has_vector":
        return q.HasVectorCondition(c.has_vector.has_vector)
    raise Unsupported(f"filter condition {kind!r} is not supported by this test server")


def _match(m: g.Match) -> Any:
    kind = m.WhichOneof("match_value")
    if kind == "boolean":  # a Python bool reaches the binding as an integer (matching nothing); numpy's does not
        return q.MatchValue(np.bool_(m.boolean))
    if kind in ("keyword", "integer"):
        return q.MatchValue(getattr(m, kind))
    if kind == "text":
        return q.MatchText(m.text)
    if kind == "text_any":
        return q.MatchTextAny(m.text_any)
    if kind == "phrase":
        return q.MatchPhrase(m.phrase)
    if kind == "prefix":
        return q.MatchPrefix(m.prefix)
    if kind == "substring":
        return q.MatchSubstring(m.substring)
    if kind == "keywords":
        return q.MatchAny(list(m.keywords.strings))
    if kind == "integers":
        return q.MatchAny(list(m.integers.integers))
    if kind == "except_keywords":
        return q.MatchExcept(list(m.except_keywords.strings))
    if kind == "except_integers":
        return q.MatchExcept(list(m.except_integers.integers))
    raise BadRequest("Wrong input: empty match condition")


def _bounds(msg: Any, conv: Any = lambda x: x) -> dict[str, Any]:
    return {k: conv(getattr(msg, k)) for k in ("lt", "gt", "gte", "lte") if msg.HasField(k)}


def _geo(p: g.GeoPoint) -> Any:
    return q.GeoPoint(lon=p.lon, lat=p.lat)


def field_condition(fc: g.FieldCondition) -> Any:
    kw: dict[str, Any] = {}
    if fc.HasField("match"):
        kw["match"] = _match(fc.match)
    if fc.HasField("range"):
        kw["range"] = q.RangeFloat(**_bounds(fc.range))
    if fc.HasField("datetime_range"):
        kw["range"] = q.RangeDateTime(**_bounds(fc.datetime_range, lambda t: t.ToJsonString()))
    if fc.HasField("geo_bounding_box"):
        b = fc.geo_bounding_box
        kw["geo_bounding_box"] = q.GeoBoundingBox(_geo(b.top_left), _geo(b.bottom_right))
    if fc.HasField("geo_radius"):
        kw["geo_radius"] = q.GeoRadius(_geo(fc.geo_radius.center), fc.geo_radius.radius)
    if fc.HasField("geo_polygon"):
        p = fc.geo_polygon
        kw["geo_polygon"] = q.GeoPolygon([_geo(x) for x in p.exterior.points],
                                         [[_geo(x) for x in ring.points] for ring in p.interiors] or None)
    if fc.HasField("values_count"):
        kw["values_count"] = q.ValuesCount(**_bounds(fc.values_count))
    if fc.HasField("is_empty"):
        kw["is_empty"] = fc.is_empty
    if fc.HasField("is_null"):
        kw["is_null"] = fc.is_null
    if not kw:
        raise BadRequest(f"Wrong input: field condition on '{fc.key}' has no condition")
    return q.FieldCondition(key=fc.key, **kw)


# -- search parameters and queries ---------------------------------------------------------------
def search_params(msg: Any) -> Any:
    if not msg.HasField("params"):
        return None
    p = msg.params
    kw: dict[str, Any] = {"exact": p.exact, "indexed_only": p.indexed_only}
    if p.HasField("hnsw_ef"):
        kw["hnsw_ef"] = p.hnsw_ef
    if p.HasField("quantization"):
        qp = p.quantization
        kw["quantization"] = q.QuantizationSearchParams(
            ignore=qp.ignore, rescore=qp.rescore if qp.HasField("rescore") else None,
            oversampling=qp.oversampling if qp.HasField("oversampling") else None)
    if p.HasField("acorn"):
        kw["acorn"] = q.AcornSearchParams(enable=p.acorn.enable, max_selectivity=p.acorn.max_selectivity
                                          if p.acorn.HasField("max_selectivity") else None)
    return q.SearchParams(**kw)


def order_by(o: g.OrderBy) -> Any:
    start = None
    if o.HasField("start_from"):
        kind = o.start_from.WhichOneof("value")
        if kind == "timestamp":
            start = o.start_from.timestamp.ToJsonString()
        elif kind is not None:
            start = getattr(o.start_from, kind)
    direction = q.Direction.Desc if o.HasField("direction") and o.direction == g.Direction.Desc else None
    if o.HasField("direction") and o.direction == g.Direction.Asc:
        direction = q.Direction.Asc
    return q.OrderBy(o.key, direction=direction, start_from=start)


def query_in(msg: Any, lookup: Any) -> Any:
    """The scoring query of a ``QueryPoints`` / ``PrefetchQuery`` (None: no query, points by id)."""
    if not msg.HasField("query"):
        return None
    qq = msg.query
    using = msg.using if msg.HasField("using") and msg.using else None
    kind = qq.WhichOneof("variant")
    if kind == "nearest":
        return q.Query.Nearest(vector_input(qq.nearest, lambda pid: lookup(pid, using)), using=using)
    if kind == "fusion":
        return q.Fusion.Dbsf() if qq.fusion == g.Fusion.DBSF else q.Fusion.Rrf(k=DEFAULT_RRF_K)
    if kind == "rrf":
        return q.Fusion.Rrf(k=qq.rrf.k if qq.rrf.HasField("k") else DEFAULT_RRF_K,
                            weights=list(qq.rrf.weights) or None)
    if kind == "order_by":
        return order_by(qq.order_by)
    if kind == "sample":
        return q.Sample.Random
    if kind == "recommend":
        r = qq.recommend
        rq = q.RecommendQuery([vector_input(v, lambda pid: lookup(pid, using)) for v in r.positive],
                              [vector_input(v, lambda pid: lookup(pid, using)) for v in r.negative])
        strategy = r.strategy if r.HasField("strategy") else g.RecommendStrategy.AverageVector
        if strategy == g.RecommendStrategy.SumScores:
            return q.Query.RecommendSumScores(rq, using=using)
        if strategy == g.RecommendStrategy.BestScore:
            return q.Query.RecommendBestScore(rq, using=using)
        return q.Query.Nearest(_average_vector(rq.positives, rq.negatives), using=using)
    raise Unsupported(f"query {kind!r} is not supported by this test server")


def _average_vector(pos: list[Any], neg: list[Any]) -> list[float]:
    """Qdrant's ``average_vector`` recommendation: avg(pos) + (avg(pos) - avg(neg))."""
    if not pos or any(not isinstance(v, list) or (v and isinstance(v[0], list)) for v in pos + neg):
        raise Unsupported("average_vector recommendation needs dense positives here; use best_score")
    avg = [sum(x) / len(pos) for x in zip(*pos, strict=True)]
    if not neg:
        return avg
    avg_neg = [sum(x) / len(neg) for x in zip(*neg, strict=True)]
    return [a + (a - b) for a, b in zip(avg, avg_neg, strict=True)]


def prefetch_in(p: g.PrefetchQuery, lookup: Any) -> Any:
    return q.Prefetch(limit=p.limit if p.HasField("limit") else 10, query=query_in(p, lookup),
                      prefetches=[prefetch_in(x, lookup) for x in p.prefetch] or None, params=search_params(p),
                      filter=optional_filter(p),
                      score_threshold=p.score_threshold if p.HasField("score_threshold") else None)


def query_request(m: g.QueryPoints, lookup: Any) -> Any:
    """A ``QueryPoints`` as an Edge query; points queried by id are left out of the result, as a server does."""
    used: list[Any] = []

    def by_id(pid: Any, using: str | None) -> Any:
        used.append(pid)
        return lookup(pid, using)

    query, prefetches = query_in(m, by_id), [prefetch_in(p, by_id) for p in m.prefetch] or None
    flt = optional_filter(m)
    if used:
        flt = q.Filter(must=[flt] if flt is not None else None, must_not=[q.HasIdCondition(set(used))])
    return q.QueryRequest(
        limit=m.limit if m.HasField("limit") else 10, offset=m.offset if m.HasField("offset") else None,
        query=query, prefetches=prefetches,
        with_vector=with_vectors(m.with_vectors, m.HasField("with_vectors")),
        with_payload=with_payload(m.with_payload, m.HasField("with_payload")),
        filter=flt, params=search_params(m),
        score_threshold=m.score_threshold if m.HasField("score_threshold") else None)


def search_request(m: g.SearchPoints) -> Any:
    """A ``SearchPoints`` as an Edge query request (dense, or sparse with ``sparse_indices``)."""
    if m.HasField("sparse_indices"):
        vec: Any = q.SparseVector(list(m.sparse_indices.data), list(m.vector))
    else:
        vec = list(m.vector)
    using = m.vector_name if m.HasField("vector_name") and m.vector_name else None
    return q.QueryRequest(
        limit=m.limit, offset=m.offset if m.HasField("offset") else None, query=q.Query.Nearest(vec, using=using),
        with_vector=with_vectors(m.with_vectors, m.HasField("with_vectors")),
        with_payload=with_payload(m.with_payload, m.HasField("with_payload")),
        filter=optional_filter(m), params=search_params(m),
        score_threshold=m.score_threshold if m.HasField("score_threshold") else None)


def request_wants_vectors(m: Any) -> bool:
    sel = m.with_vectors if m.HasField("with_vectors") else None
    return bool(with_vectors(sel, sel is not None))


# -- payload indexes -----------------------------------------------------------------------------
_FIELD_TYPES = {g.FieldType.FieldTypeKeyword: "Keyword", g.FieldType.FieldTypeInteger: "Integer",
                g.FieldType.FieldTypeFloat: "Float", g.FieldType.FieldTypeGeo: "Geo",
                g.FieldType.FieldTypeText: "Text", g.FieldType.FieldTypeBool: "Bool",
                g.FieldType.FieldTypeDatetime: "Datetime", g.FieldType.FieldTypeUuid: "Uuid"}


def field_schema(m: g.CreateFieldIndexCollection) -> Any:
    if not m.HasField("field_type"):
        raise BadRequest("Wrong input: field_type is required")
    name = _FIELD_TYPES.get(m.field_type)
    if name is None:
        raise BadRequest(f"Wrong input: unknown field type {m.field_type}")
    if m.HasField("field_index_params"):
        p = m.field_index_params
        kind = p.WhichOneof("index_params")
        if kind == "keyword_index_params":
            k = p.keyword_index_params
            return q.KeywordIndexParams(is_tenant=k.is_tenant if k.HasField("is_tenant") else None,
                                        on_disk=k.on_disk if k.HasField("on_disk") else None)
        if kind == "integer_index_params":
            i = p.integer_index_params
            return q.IntegerIndexParams(lookup=i.lookup if i.HasField("lookup") else None,
                                        range=i.range if i.HasField("range") else None)
    return getattr(q.PayloadSchemaType, name)


def payload_schema_out(infos: list[Any]) -> dict[str, g.PayloadSchemaInfo]:
    """The payload indexes of a collection's shards (points summed)."""
    out: dict[str, g.PayloadSchemaInfo] = {}
    for info in infos:
        for field, idx in info.payload_schema.items():
            name = str(idx.data_type).split(".")[-1]
            entry = out.setdefault(field, g.PayloadSchemaInfo(data_type=g.PayloadSchemaType.Value(name), points=0))
            entry.points += int(idx.points or 0)
    return out
