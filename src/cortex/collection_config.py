"""The collection config file, defined once: what ``plan --output`` writes, ``setup --config`` applies and
``migrate --config`` creates a collection from.

A file holds ``version: 1`` and a list of ``collections``; each is Qdrant's own collection settings
(vectors, HNSW, quantization, optimizers, sharding, payload indexes, aliases) plus the query-time
parameters the application must use (``search``) and, when ``plan`` wrote it, what it measured
(``expected``). Unknown keys and bad values are one line naming the key and its line in the file::

    version: 1
    collections:
      - name: code_chunks
        vectors: {size: 384, distance: cosine}
        hnsw: {m: 16, ef_construct: 100}
        quantization: {scalar: {type: int8, always_ram: true}}
        payload_indexes:
          workspace_id: {type: keyword, is_tenant: true}
          created_at: datetime
        search: {hnsw_ef: 128, quantization: {rescore: true, oversampling: 2.0}}

:func:`edge_config` and :func:`client_create_kwargs` turn a collection's settings into what Qdrant Edge
and qdrant-client take; :func:`edge_ignored` says which settings the embedded engine cannot keep.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cortex.errors import CortexError

Distance = Literal["cosine", "dot", "euclid", "manhattan"]
IndexKind = Literal["keyword", "integer", "float", "bool", "datetime", "text", "uuid", "geo"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class VectorParams(_Model):
    size: int = Field(gt=0)
    distance: Distance = "cosine"
    datatype: Literal["float32", "float16", "uint8"] | None = None
    on_disk: bool | None = None
    multivector: Literal["max_sim"] | None = None  # the comparator; None: one vector per point

    @field_validator("distance", mode="before")
    @classmethod
    def _distance(cls, v: Any) -> Any:
        aliases = {"l2": "euclid", "euclidean": "euclid", "ip": "dot", "inner_product": "dot", "angular": "cosine",
                   "manhattan": "manhattan", "l1": "manhattan"}
        return aliases.get(str(v).lower(), str(v).lower()) if v is not None else v


class SparseVectorParams(_Model):
    modifier: Literal["idf"] | None = None
    on_disk: bool | None = None


class HnswConfig(_Model):
    m: int | None = Field(default=None, ge=0)  # 0 disables the graph (the guide's bulk-load trick)
    ef_construct: int | None = Field(default=None, ge=4)
    full_scan_threshold: int | None = Field(default=None, ge=0)  # KB
    payload_m: int | None = Field(default=None, ge=0)
    on_disk: bool | None = None


class ScalarQuantization(_Model):
    type: Literal["int8"] = "int8"
    quantile: float | None = Field(default=None, gt=0.5, le=1.0)
    always_ram: bool | None = None


class ProductQuantization(_Model):
    compression: Literal["x4", "x8", "x16", "x32", "x64"] = "x16"
    always_ram: bool | None = None


class BinaryQuantization(_Model):
    always_ram: bool | None = None


class Quantization(_Model):
    """Exactly one of ``scalar``, ``product``, ``binary``."""

    scalar: ScalarQuantization | None = None
    product: ProductQuantization | None = None
    binary: BinaryQuantization | None = None

    @model_validator(mode="after")
    def _one(self) -> Quantization:
        if sum(x is not None for x in (self.scalar, self.product, self.binary)) != 1:
            raise ValueError("give exactly one of scalar, product, binary")
        return self


class Optimizers(_Model):
    indexing_threshold: int | None = Field(default=None, ge=0)  # KB; 0 disables indexing (bulk load)
    default_segment_number: int | None = Field(default=None, ge=0)
    max_segment_size: int | None = Field(default=None, ge=0)  # KB
    memmap_threshold: int | None = Field(default=None, ge=0)  # KB
    deleted_threshold: float | None = Field(default=None, ge=0, le=1)
    vacuum_min_vector_number: int | None = Field(default=None, ge=0)
    flush_interval_sec: int | None = Field(default=None, ge=0)


class PayloadIndex(_Model):
    type: IndexKind
    is_tenant: bool | None = None  # keyword/uuid: the field partitions the data (one workspace per query)
    is_principal: bool | None = None  # integer/float/datetime: most queries filter on it


class QuantizationSearch(_Model):
    rescore: bool | None = None
    oversampling: float | None = Field(default=None, ge=1.0)
    ignore: bool | None = None


class SearchParams(_Model):
    """Query-time parameters the application must pass for the recall the plan measured."""

    hnsw_ef: int | None = Field(default=None, ge=1)
    exact: bool | None = None
    quantization: QuantizationSearch | None = None


class Expected(_Model):
    """What ``plan`` measured on its sample with these settings (informational)."""

    recall_at_10: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    build_seconds: float | None = None
    ram_bytes: int | None = None
    disk_bytes: int | None = None
    sample: int | None = None


class CollectionConfig(_Model):
    name: str = Field(min_length=1, max_length=255, pattern=r"^[^/\\\x00]+$")
    vectors: VectorParams
    named_vectors: dict[str, VectorParams] = Field(default_factory=dict)
    sparse_vectors: dict[str, SparseVectorParams] = Field(default_factory=dict)
    hnsw: HnswConfig | None = None
    quantization: Quantization | None = None
    optimizers: Optimizers | None = None
    on_disk_payload: bool | None = None
    shard_number: int | None = Field(default=None, ge=1)
    replication_factor: int | None = Field(default=None, ge=1)
    write_consistency_factor: int | None = Field(default=None, ge=1)
    sharding_method: Literal["auto", "custom"] | None = None
    shard_keys: list[str] = Field(default_factory=list)  # with sharding_method: custom
    payload_indexes: dict[str, PayloadIndex] = Field(default_factory=dict)
    aliases: list[str] = Field(default_factory=list)
    search: SearchParams | None = None
    expected: Expected | None = None

    @field_validator("payload_indexes", mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        """``field: keyword`` is short for ``field: {type: keyword}``."""
        if isinstance(v, dict):
            return {k: ({"type": x} if isinstance(x, str) else x) for k, x in v.items()}
        return v

    @model_validator(mode="after")
    def _sharding(self) -> CollectionConfig:
        if self.shard_keys and self.sharding_method != "custom":
            raise ValueError("shard_keys need sharding_method: custom")
        for fld, idx in self.payload_indexes.items():
            if idx.is_tenant and idx.type not in ("keyword", "uuid"):
                raise ValueError(f"payload_indexes.{fld}: is_tenant applies to keyword or uuid indexes")
        return self


class ConfigFile(_Model):
    version: Literal[1] = 1
    collections: list[CollectionConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> ConfigFile:
        names = [c.name for c in self.collections]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"collection {dup[0]!r} is listed twice")
        return self

    def collection(self, name: str | None = None) -> CollectionConfig:
        """The named collection, or the only one when ``name`` is None."""
        if name is None:
            if len(self.collections) != 1:
                raise CortexError(f"the config lists {len(self.collections)} collections; name one")
            return self.collections[0]
        for c in self.collections:
            if c.name == name:
                return c
        have = ", ".join(c.name for c in self.collections)
        raise CortexError(f"the config has no collection '{name}' (it has {have})")


# -- reading and writing ---------------------------------------------------------------------
def _line_of(node: Any, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the YAML node at pydantic error location ``loc`` (as deep as it exists)."""
    import yaml

    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next(((k, v) for k, v in node.value if k.value == str(key)), None)
            if nxt is None:
                break
            line, node = nxt[0].start_mark.line + 1, nxt[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _describe(e: dict[str, Any]) -> str:
    loc = ".".join(str(x) for x in e["loc"] if not str(x).startswith("function-"))
    if e["type"] == "extra_forbidden":
        return f"unknown key '{loc}'"
    return f"'{loc}': {e['msg']}" if loc else e["msg"]


def parse_config(text: str, where: str = "config") -> ConfigFile:
    """Parse YAML (or JSON) text; errors are one line: ``where:LINE: key: what is wrong``."""
    import yaml

    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f":{mark.line + 1}" if mark is not None else ""
        raise CortexError(f"{where}{at}: not valid YAML ({getattr(e, 'problem', None) or e}); fix the syntax") from None
    if not isinstance(data, dict):
        raise CortexError(f"{where}: expected a mapping with 'version' and 'collections'")
    try:
        return ConfigFile.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        line = _line_of(node, tuple(first["loc"]))
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise CortexError(f"{where}{f':{line}' if line else ''}: {_describe(first)}{more}") from None


def load_config(path: str | Path) -> ConfigFile:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise CortexError(f"{p}: no such config file; check the --config path") from None
    except OSError as e:
        raise CortexError(f"{p}: cannot read ({e.strerror}); check the --config path") from None
    return parse_config(text, str(p))


def dump_config(cfg: ConfigFile) -> str:
    """YAML text of ``cfg`` without unset settings (round-trips through :func:`parse_config`)."""
    import yaml

    return yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True, exclude_defaults=False),
                          sort_keys=False, default_flow_style=False)


# -- into the engines' own config objects ---------------------------------------------------
_EDGE_DISTANCE = {"cosine": "Cosine", "dot": "Dot", "euclid": "Euclid", "manhattan": "Manhattan"}
_EDGE_DTYPE = {"float32": "Float32", "float16": "Float16", "uint8": "Uint8"}


def edge_ignored(c: CollectionConfig) -> list[str]:
    """Settings of ``c`` that an embedded Qdrant Edge shard cannot keep (one shard, no aliases, ...)."""
    out = [k for k in ("shard_number", "replication_factor", "write_consistency_factor", "sharding_method")
           if getattr(c, k) not in (None, 1, "auto")]
    if c.shard_keys:
        out.append("shard_keys")
    if c.aliases:
        out.append("aliases (kept by Cortex beside the shards, not by the engine)")
    if c.optimizers and c.optimizers.memmap_threshold is not None:
        out.append("optimizers.memmap_threshold")
    if c.optimizers and c.optimizers.flush_interval_sec is not None:
        out.append("optimizers.flush_interval_sec")
    return out


def edge_config(c: CollectionConfig, *, indexing_threshold: int | None = None) -> Any:
    """A ``qdrant_edge.EdgeConfig`` for ``c``; ``indexing_threshold`` overrides the file's (0 during a bulk load)."""
    import qdrant_edge as q

    def params(v: VectorParams) -> Any:
        kw: dict[str, Any] = {"size": v.size, "distance": getattr(q.Distance, _EDGE_DISTANCE[v.distance])}
        if v.on_disk is not None:
            kw["on_disk"] = v.on_disk
        if v.datatype:
            kw["datatype"] = getattr(q.VectorStorageDatatype, _EDGE_DTYPE[v.datatype])
        if v.multivector:
            kw["multivector_config"] = q.MultiVectorConfig(q.MultiVectorComparator.MaxSim)
        return q.EdgeVectorParams(**kw)

    vectors: Any = params(c.vectors)
    if c.named_vectors:
        vectors = {"": vectors, **{n: params(v) for n, v in c.named_vectors.items()}}
    sparse = {n: q.EdgeSparseVectorParams(modifier=q.Modifier.Idf if s.modifier == "idf" else None,
                                          on_disk=s.on_disk)
              for n, s in c.sparse_vectors.items()} or None
    hnsw = None
    if c.hnsw is not None:
        h = c.hnsw
        hnsw = q.HnswIndexConfig(m=16 if h.m is None else h.m, ef_construct=h.ef_construct or 100,
                                 full_scan_threshold=10_000 if h.full_scan_threshold is None else h.full_scan_threshold,
                                 on_disk=h.on_disk, payload_m=h.payload_m)
    quant = None
    if c.quantization is not None:
        z = c.quantization
        if z.scalar:
            quant = q.ScalarQuantizationConfig(q.ScalarType.Int8, quantile=z.scalar.quantile,
                                               always_ram=z.scalar.always_ram)
        elif z.product:
            quant = q.ProductQuantizationConfig(getattr(q.CompressionRatio, z.product.compression.upper()),
                                                always_ram=z.product.always_ram)
        elif z.binary:
            quant = q.BinaryQuantizationConfig(always_ram=z.binary.always_ram)
    o = c.optimizers or Optimizers()
    threshold = o.indexing_threshold if indexing_threshold is None else indexing_threshold
    optimizers = q.EdgeOptimizersConfig(indexing_threshold=threshold, deleted_threshold=o.deleted_threshold,
                                        vacuum_min_vector_number=o.vacuum_min_vector_number,
                                        default_segment_number=o.default_segment_number,
                                        max_segment_size=o.max_segment_size)
    return q.EdgeConfig(vectors=vectors, sparse_vectors=sparse, on_disk_payload=c.on_disk_payload,
                        hnsw_config=hnsw, quantization_config=quant, optimizers=optimizers)


def client_create_kwargs(c: CollectionConfig, *, indexing_threshold: int | None = None) -> dict[str, Any]:
    """Keyword arguments for qdrant-client's ``create_collection`` (``collection_name`` included)."""
    from qdrant_client import models as m

    dist = {"cosine": m.Distance.COSINE, "dot": m.Distance.DOT, "euclid": m.Distance.EUCLID,
            "manhattan": m.Distance.MANHATTAN}

    def params(v: VectorParams) -> Any:
        return m.VectorParams(
            size=v.size, distance=dist[v.distance], on_disk=v.on_disk,
            datatype=m.Datatype(v.datatype) if v.datatype else None,
            multivector_config=m.MultiVectorConfig(comparator=m.MultiVectorComparator.MAX_SIM)
            if v.multivector else None)

    vectors: Any = params(c.vectors)
    if c.named_vectors:
        vectors = {"": vectors, **{n: params(v) for n, v in c.named_vectors.items()}}
    kw: dict[str, Any] = {"collection_name": c.name, "vectors_config": vectors}
    if c.sparse_vectors:
        kw["sparse_vectors_config"] = {
            n: m.SparseVectorParams(modifier=m.Modifier.IDF if s.modifier == "idf" else None,
                                    index=m.SparseIndexParams(on_disk=s.on_disk) if s.on_disk is not None else None)
            for n, s in c.sparse_vectors.items()}
    if c.hnsw is not None:
        kw["hnsw_config"] = m.HnswConfigDiff(**c.hnsw.model_dump(exclude_none=True))
    if c.quantization is not None:
        z = c.quantization
        if z.scalar:
            kw["quantization_config"] = m.ScalarQuantization(scalar=m.ScalarQuantizationConfig(
                type=m.ScalarType.INT8, quantile=z.scalar.quantile, always_ram=z.scalar.always_ram))
        elif z.product:
            kw["quantization_config"] = m.ProductQuantization(product=m.ProductQuantizationConfig(
                compression=m.CompressionRatio(z.product.compression), always_ram=z.product.always_ram))
        elif z.binary:
            kw["quantization_config"] = m.BinaryQuantization(binary=m.BinaryQuantizationConfig(
                always_ram=z.binary.always_ram))
    opt = (c.optimizers or Optimizers()).model_dump(exclude_none=True)
    if indexing_threshold is not None:
        opt["indexing_threshold"] = indexing_threshold
    if opt:
        kw["optimizers_config"] = m.OptimizersConfigDiff(**opt)
    for k in ("on_disk_payload", "shard_number", "replication_factor", "write_consistency_factor"):
        if getattr(c, k) is not None:
            kw[k] = getattr(c, k)
    if c.sharding_method:
        kw["sharding_method"] = m.ShardingMethod.CUSTOM if c.sharding_method == "custom" else m.ShardingMethod.AUTO
    return kw


def client_search_params(s: SearchParams | None) -> Any:
    """qdrant-client ``SearchParams`` for the query-time settings (None when there are none)."""
    if s is None:
        return None
    from qdrant_client import models as m

    quant = m.QuantizationSearchParams(**s.quantization.model_dump(exclude_none=True)) if s.quantization else None
    return m.SearchParams(hnsw_ef=s.hnsw_ef, exact=bool(s.exact), quantization=quant)


def edge_search_params(s: SearchParams | None) -> Any:
    """``qdrant_edge.SearchParams`` for the query-time settings (None when there are none)."""
    if s is None:
        return None
    import qdrant_edge as q

    quant = q.QuantizationSearchParams(**s.quantization.model_dump(exclude_none=True)) if s.quantization else None
    return q.SearchParams(hnsw_ef=s.hnsw_ef, exact=bool(s.exact), quantization=quant)
