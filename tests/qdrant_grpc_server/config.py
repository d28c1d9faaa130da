"""A collection's config: the protobuf ``CollectionConfig`` a server reports, and the Edge config it maps to.

The stored form is the ``CollectionConfig`` message with a real server's defaults filled in (so
qdrant-client's ``CollectionInfo`` validates); :func:`edge_config` turns it into the
``qdrant_edge.EdgeConfig`` the shard is opened with.
"""

from __future__ import annotations

from typing import Any

import qdrant_edge as q

from .convert import BadRequest, Unsupported
from .protos import g

# What a Qdrant server reports for a collection created without these settings.
DEFAULT_HNSW = g.HnswConfigDiff(m=16, ef_construct=100, full_scan_threshold=10000, max_indexing_threads=0,
                                on_disk=False)
DEFAULT_OPTIMIZERS = g.OptimizersConfigDiff(deleted_threshold=0.2, vacuum_min_vector_number=1000,
                                            default_segment_number=0, indexing_threshold=10000, flush_interval_sec=5)
DEFAULT_WAL = g.WalConfigDiff(wal_capacity_mb=32, wal_segments_ahead=0, wal_retain_closed=1)

_DISTANCES = {g.Distance.Cosine: q.Distance.Cosine, g.Distance.Euclid: q.Distance.Euclid,
              g.Distance.Dot: q.Distance.Dot, g.Distance.Manhattan: q.Distance.Manhattan}
_DATATYPES = {g.Datatype.Float32: q.VectorStorageDatatype.Float32, g.Datatype.Uint8: q.VectorStorageDatatype.Uint8,
              g.Datatype.Float16: q.VectorStorageDatatype.Float16}
_COMPRESSION = {g.CompressionRatio.x4: q.CompressionRatio.X4, g.CompressionRatio.x8: q.CompressionRatio.X8,
                g.CompressionRatio.x16: q.CompressionRatio.X16, g.CompressionRatio.x32: q.CompressionRatio.X32,
                g.CompressionRatio.x64: q.CompressionRatio.X64}
_BINARY_ENCODING = {g.BinaryQuantizationEncoding.OneBit: q.BinaryQuantizationEncoding.OneBit,
                    g.BinaryQuantizationEncoding.TwoBits: q.BinaryQuantizationEncoding.TwoBits,
                    g.BinaryQuantizationEncoding.OneAndHalfBits: q.BinaryQuantizationEncoding.OneAndHalfBits}


def merged(default: Any, diff: Any) -> Any:
    out = type(default)()
    out.CopyFrom(default)
    out.MergeFrom(diff)
    return out


def collection_config(req: g.CreateCollection) -> g.CollectionConfig:
    """The config a server would report for ``req`` (validated: a bad one raises BadRequest)."""
    params = g.CollectionParams(
        shard_number=req.shard_number if req.HasField("shard_number") else 1,
        on_disk_payload=req.on_disk_payload if req.HasField("on_disk_payload") else True,
        replication_factor=req.replication_factor if req.HasField("replication_factor") else 1,
        write_consistency_factor=req.write_consistency_factor if req.HasField("write_consistency_factor") else 1,
    )
    if req.HasField("sharding_method"):
        params.sharding_method = req.sharding_method
    if req.HasField("vectors_config"):
        params.vectors_config.CopyFrom(req.vectors_config)
    if req.HasField("sparse_vectors_config"):
        params.sparse_vectors_config.CopyFrom(req.sparse_vectors_config)
    if not req.HasField("vectors_config"):  # sparse only (or no vectors): a server reports `vectors: {}`
        params.vectors_config.params_map.SetInParent()
    cfg = g.CollectionConfig(
        params=params,
        hnsw_config=merged(DEFAULT_HNSW, req.hnsw_config),
        optimizer_config=merged(DEFAULT_OPTIMIZERS, req.optimizers_config),
        wal_config=merged(DEFAULT_WAL, req.wal_config),
    )
    if req.HasField("quantization_config"):
        cfg.quantization_config.CopyFrom(req.quantization_config)
    for k, v in req.metadata.items():
        cfg.metadata[k].CopyFrom(v)
    edge_config(cfg)  # validates
    return cfg


# -- to Edge -------------------------------------------------------------------------------------
def _hnsw(h: g.HnswConfigDiff, base: g.HnswConfigDiff = DEFAULT_HNSW) -> Any:
    h = merged(base, h)
    return q.HnswIndexConfig(m=h.m, ef_construct=h.ef_construct, full_scan_threshold=h.full_scan_threshold,
                             max_indexing_threads=h.max_indexing_threads,
                             on_disk=h.on_disk if h.HasField("on_disk") else None,
                             payload_m=h.payload_m if h.HasField("payload_m") else None)


def quantization(c: g.QuantizationConfig) -> Any:
    kind = c.WhichOneof("quantization")
    if kind == "scalar":
        s = c.scalar
        if s.type != g.QuantizationType.Int8:
            raise BadRequest("Wrong input: scalar quantization type must be int8")
        return q.ScalarQuantizationConfig(q.ScalarType.Int8, quantile=s.quantile if s.HasField("quantile") else None,
                                          always_ram=s.always_ram if s.HasField("always_ram") else None)
    if kind == "product":
        p = c.product
        return q.ProductQuantizationConfig(_COMPRESSION[p.compression],
                                           always_ram=p.always_ram if p.HasField("always_ram") else None)
    if kind == "binary":
        b = c.binary
        return q.BinaryQuantizationConfig(always_ram=b.always_ram if b.HasField("always_ram") else None,
                                          encoding=_BINARY_ENCODING.get(b.encoding) if b.HasField("encoding")
                                          else None)
    raise Unsupported(f"quantization {kind!r} is not supported by this test server")


def _vector_params(name: str, p: g.VectorParams, hnsw: g.HnswConfigDiff) -> Any:
    if p.size < 1:
        raise BadRequest(f"Wrong input: vector '{name}' size must be positive, got {p.size}")
    if p.distance not in _DISTANCES:
        raise BadRequest(f"Wrong input: vector '{name}' has no valid distance")
    kw: dict[str, Any] = {}
    if p.HasField("on_disk"):
        kw["on_disk"] = p.on_disk
    if p.HasField("datatype") and p.datatype in _DATATYPES:
        kw["datatype"] = _DATATYPES[p.datatype]
    if p.HasField("multivector_config"):
        kw["multivector_config"] = q.MultiVectorConfig(q.MultiVectorComparator.MaxSim)
    if p.HasField("quantization_config"):
        kw["quantization_config"] = quantization(p.quantization_config)
    if p.HasField("hnsw_config"):
        kw["hnsw_config"] = _hnsw(p.hnsw_config, hnsw)
    return q.EdgeVectorParams(size=p.size, distance=_DISTANCES[p.distance], **kw)


def dense_vectors(cfg: g.CollectionConfig) -> dict[str, g.VectorParams]:
    vc = cfg.params.vectors_config
    if vc.WhichOneof("config") == "params":
        return {"": vc.params}
    return dict(vc.params_map.map)


def edge_config(cfg: g.CollectionConfig) -> Any:
    """The ``qdrant_edge.EdgeConfig`` of a stored ``CollectionConfig``."""
    dense = dense_vectors(cfg)
    vectors: Any = None
    if cfg.params.vectors_config.WhichOneof("config") == "params":
        vectors = _vector_params("", dense[""], cfg.hnsw_config)
    elif dense:
        vectors = {n: _vector_params(n, p, cfg.hnsw_config) for n, p in dense.items()}
    sparse = None
    if cfg.params.sparse_vectors_config.map:
        sparse = {}
        for n, sp in cfg.params.sparse_vectors_config.map.items():
            kw: dict[str, Any] = {}
            if sp.HasField("modifier") and sp.modifier == g.Modifier.Idf:
                kw["modifier"] = q.Modifier.Idf
            if sp.HasField("index"):
                if sp.index.HasField("full_scan_threshold"):
                    kw["full_scan_threshold"] = sp.index.full_scan_threshold
                if sp.index.HasField("on_disk"):
                    kw["on_disk"] = sp.index.on_disk
            sparse[n] = q.EdgeSparseVectorParams(**kw)
    o = cfg.optimizer_config
    optimizers = q.EdgeOptimizersConfig(
        deleted_threshold=o.deleted_threshold, vacuum_min_vector_number=o.vacuum_min_vector_number,
        default_segment_number=o.default_segment_number,
        max_segment_size=o.max_segment_size if o.HasField("max_segment_size") else None,
        indexing_threshold=o.indexing_threshold if o.HasField("indexing_threshold") else None,
        prevent_unoptimized=o.prevent_unoptimized if o.HasField("prevent_unoptimized") else None)
    return q.EdgeConfig(
        vectors=vectors, sparse_vectors=sparse, on_disk_payload=cfg.params.on_disk_payload,
        hnsw_config=_hnsw(cfg.hnsw_config),
        quantization_config=quantization(cfg.quantization_config) if cfg.HasField("quantization_config") else None,
        optimizers=optimizers)


# -- updates -------------------------------------------------------------------------------------
def apply_update(cfg: g.CollectionConfig, req: g.UpdateCollection) -> g.CollectionConfig:
    """``cfg`` with the diffs of ``req`` applied; what Edge cannot change raises."""
    new = g.CollectionConfig()
    new.CopyFrom(cfg)
    if req.HasField("optimizers_config"):
        new.optimizer_config.MergeFrom(req.optimizers_config)
    if req.HasField("hnsw_config"):
        new.hnsw_config.MergeFrom(req.hnsw_config)
    if req.HasField("params"):
        p = req.params
        for f in ("replication_factor", "write_consistency_factor", "on_disk_payload", "read_fan_out_factor"):
            if p.HasField(f):
                setattr(new.params, f, getattr(p, f))
    if req.HasField("quantization_config"):
        qd = req.quantization_config
        kind = qd.WhichOneof("quantization")
        if kind == "disabled":
            new.ClearField("quantization_config")
        elif kind is not None:
            getattr(new.quantization_config, kind).CopyFrom(getattr(qd, kind))
    if req.HasField("vectors_config"):
        _update_vectors(new, req.vectors_config)
    if req.HasField("sparse_vectors_config"):
        for n, sp in req.sparse_vectors_config.map.items():
            if n not in new.params.sparse_vectors_config.map:
                raise BadRequest(f"Wrong input: Not existing vector name error: {n}")
            if sp.HasField("modifier") and sp.modifier != new.params.sparse_vectors_config.map[n].modifier:
                raise Unsupported("changing a sparse vector's modifier is not supported by Qdrant Edge")
            new.params.sparse_vectors_config.map[n].index.MergeFrom(sp.index)
    if req.HasField("strict_mode_config"):
        raise Unsupported("strict mode is not supported by this test server")
    for k, v in req.metadata.items():
        new.metadata[k].CopyFrom(v)
    edge_config(new)  # validates
    return new


def _update_vectors(cfg: g.CollectionConfig, diff: g.VectorsConfigDiff) -> None:
    dense = cfg.params.vectors_config
    items = {"": diff.params} if diff.WhichOneof("config") == "params" else dict(diff.params_map.map)
    for name, d in items.items():
        if dense.WhichOneof("config") == "params" and name == "":
            target = dense.params
        elif name in dense.params_map.map:
            target = dense.params_map.map[name]
        else:
            raise BadRequest(f"Wrong input: Not existing vector name error: {name}")
        if d.HasField("hnsw_config"):
            target.hnsw_config.MergeFrom(d.hnsw_config)
        if d.HasField("on_disk"):
            target.on_disk = d.on_disk
        if d.HasField("quantization_config"):
            kind = d.quantization_config.WhichOneof("quantization")
            if kind == "disabled":
                target.ClearField("quantization_config")
            elif kind is not None:
                getattr(target.quantization_config, kind).CopyFrom(getattr(d.quantization_config, kind))
