"""The contract both targets implement: embedded Qdrant Edge and a Qdrant server.

The pipeline, verify and the ops commands talk only to this interface.  Ids passed in
are already Qdrant ids (unsigned ints or UUID strings, see ``cortex.ids``); vectors are
2-D float32 arrays.  The main vector is Qdrant's default (unnamed, ``""``) one; a collection
may also hold extra named dense vectors and sparse vectors (``create_collection(sparse=,
named=)``, ``upsert(sparse=, named=)``, in the shapes of ``Batch.sparse`` / ``Batch.named``).
Every write returns only once the target holds it durably (server: ``wait=True``; embedded:
WAL-logged), which is what checkpoints rely on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass
class CollectionInfo:
    name: str
    dim: int | None
    distance: str | None  # cosine | dot | euclid | manhattan
    points: int
    status: str = "green"  # green | yellow | grey | red
    segments: int | None = None
    indexed_vectors: int | None = None
    hnsw: dict[str, Any] = field(default_factory=dict)
    optimizer: dict[str, Any] = field(default_factory=dict)
    disk_bytes: int | None = None
    payload_indexes: dict[str, str] = field(default_factory=dict)
    named_vectors: dict[str, dict[str, Any]] = field(default_factory=dict)  # besides "": {size, distance}
    sparse_vectors: dict[str, dict[str, Any]] = field(default_factory=dict)  # {name: {"modifier": "idf"|None}}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StoredPoint:
    id: int | str
    vector: np.ndarray | None  # the default ("") vector
    payload: dict[str, Any] | None
    sparse: dict[str, tuple[list[int], list[float]]] | None = None  # sparse vectors the point has
    named: dict[str, np.ndarray] | None = None  # named dense vectors the point has (not "")


class Target(ABC):
    """A place Qdrant collections live."""

    kind: str  # "embedded" | "server"

    @property
    @abstractmethod
    def location(self) -> str:
        """Where it is, for messages: a directory or a URL."""

    @abstractmethod
    def list_collections(self) -> list[str]: ...

    @abstractmethod
    def collection_info(self, name: str) -> CollectionInfo | None:
        """None when the collection does not exist."""

    @abstractmethod
    def create_collection(self, name: str, dim: int, distance: str, defer_indexing: bool = True, *,
                          sparse: dict[str, dict[str, Any]] | None = None,
                          named: dict[str, dict[str, Any]] | None = None, config: Any = None) -> None:
        """A collection with a default vector of ``dim``; ``sparse`` / ``named`` as in SourceInfo.details.

        ``config``: a :class:`cortex.collection_config.CollectionConfig` (``migrate --config``); its
        vectors, HNSW, quantization and optimizer settings are used instead of the defaults.
        """

    @abstractmethod
    def delete_collection(self, name: str) -> None: ...

    @abstractmethod
    def upsert(self, name: str, ids: list[int | str], vectors: np.ndarray,
               payloads: list[dict[str, Any]] | None, *,
               sparse: dict[str, list[tuple[list[int], list[float]] | None]] | None = None,
               named: dict[str, np.ndarray] | None = None) -> None:
        """Write points; returns when they are durable.

        ``sparse`` / ``named`` are validated columns (``Batch.sparse`` / ``Batch.named``):
        a ``None`` sparse row or an all-NaN named row leaves that vector out of the point.
        """

    def flush(self, name: str) -> None:  # noqa: B027 - servers acknowledge with wait=True
        """Make every acknowledged write durable on disk (embedded); a no-op for servers."""

    @abstractmethod
    def finish_load(self, name: str) -> None:
        """After a bulk load: re-enable indexing deferred by ``create_collection``."""

    @abstractmethod
    def optimize(self, name: str, wait: bool = True, progress: Any = None) -> CollectionInfo:
        """Trigger optimization/indexing; with wait, block until green."""

    @abstractmethod
    def retrieve(self, name: str, ids: list[int | str], with_vectors: bool = True) -> dict[Any, StoredPoint]:
        """Points by id (missing ids are absent from the result)."""

    @abstractmethod
    def scroll(self, name: str, batch_size: int = 1000, with_vectors: bool = False,
               with_payload: bool = True, filter: Any = None) -> Iterator[list[StoredPoint]]:
        """Every point (``filter``: only those matching a :mod:`cortex.where` expression)."""

    @abstractmethod
    def search(self, name: str, queries: np.ndarray, k: int, ef: int | None = None,
               exact: bool = False, filter: Any = None, params: Any = None) -> list[list[tuple[Any, float]]]:
        """Per query, the top-k (id, score). ``filter``: {field: value} equality or a :mod:`cortex.where` AST.

        ``params``: a :class:`cortex.collection_config.SearchParams` (hnsw_ef, quantization rescore /
        oversampling), the query-time settings of a config file; ``ef`` / ``exact`` override its values.
        """

    @abstractmethod
    def count(self, name: str, exact: bool = True, filter: Any = None) -> int:
        """Points (``filter``: matching a :mod:`cortex.where` expression)."""

    def delete_points(self, name: str, filter: Any) -> None:
        """Delete the points matching ``filter`` (a :mod:`cortex.where` AST); returns when durable."""
        raise NotImplementedError(f"{self.kind} target cannot delete by filter")

    #: whether cosine vectors come back unit-length (Qdrant does; qdrant-client's local mode does not)
    normalizes_cosine: bool = True

    def fetch_arrays(self, name: str, ids: list[int | str], dim: int
                     ) -> tuple[list[Any], np.ndarray, list[dict[str, Any] | None]]:
        """Points by id as arrays: (ids found, their vectors (n, dim) float32, payloads).

        Missing ids are left out; a vector of another shape comes back as a row of NaN.
        """
        stored = self.retrieve(name, list(ids), with_vectors=True)
        return list(stored), stack_vectors([sp.vector for sp in stored.values()], dim), \
            [sp.payload for sp in stored.values()]

    def create_payload_index(self, name: str, field_name: str, kind: str = "keyword",  # noqa: B027
                             is_tenant: bool = False) -> None:
        """Index a payload field for filtered search (one of ``PAYLOAD_INDEX_KINDS``).

        ``is_tenant`` (keyword/uuid fields): the field partitions the collection by tenant, and Qdrant
        lays out storage so that one tenant's points sit together (its multitenancy guide).
        """

    def delete_ids(self, name: str, ids: list[int | str]) -> None:
        """Delete points by id; returns when durable (see ``cortex.cutover.sync``)."""
        raise NotImplementedError

    def before_overwrite(self, name: str, ids: list[int | str]) -> None:  # noqa: B027 - optional hook
        """Called by ``sync`` just before it upserts new versions of points that exist (``ids``).

        Default: nothing (on a server an upsert replaces a point atomically, and readers must never miss
        it). The embedded engine deletes them first, see :meth:`cortex.targets.edge.EdgeTarget.before_overwrite`.
        """

    # -- aliases (see ``cortex.cutover``): a name a command takes may be an alias ------------
    def list_aliases(self) -> dict[str, str]:
        """``{alias: collection}``."""
        return {}

    def switch_aliases(self, changes: dict[str, str | None]) -> None:
        """Point each alias at its collection (None: delete the alias), all in one atomic operation."""
        raise NotImplementedError

    def resolve(self, name: str) -> str:
        """The collection ``name`` stands for: itself, or the collection the alias ``name`` points to."""
        return self.list_aliases().get(name, name)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the target (file locks, connections)."""

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def qdrant_filter(filter: Any, flavor: str) -> Any:
    """A {field: value} dict or a :mod:`cortex.where` AST as a Qdrant ``Filter`` (None for none)."""
    if not filter:
        return None
    from cortex import where

    expr = filter if not isinstance(filter, dict) else where.And(tuple(where.equals(f, v) for f, v in filter.items()))
    return where.to_qdrant(expr, flavor)
def merged_search_params(params: Any, ef: int | None, exact: bool) -> Any:
    """A config file's SearchParams (or None) with an explicit ``ef`` / ``exact`` applied over it."""
    if params is None and ef is None and not exact:
        return None
    from cortex.collection_config import SearchParams

    p = params.model_copy() if params is not None else SearchParams()
    if ef is not None:
        p.hnsw_ef = ef
    if exact:
        p.exact = True
    return p


def normalize_rows(v: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as Qdrant stores cosine vectors."""
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)


def stack_vectors(vecs: list[Any], dim: int) -> np.ndarray:
    """Vectors (lists, arrays or {name: vector}) as an (n, dim) float32 array; unusable rows are NaN."""
    out = np.full((len(vecs), dim), np.nan, dtype=np.float32)
    for i, v in enumerate(vecs):
        if isinstance(v, dict):
            v = v.get("")
        if v is not None and len(v) == dim:
            out[i] = np.asarray(v, dtype=np.float32)
    return out


def split_vectors(v: Any) -> tuple[np.ndarray | None, dict[str, tuple[list[int], list[float]]] | None,
                                   dict[str, np.ndarray] | None]:
    """A stored point's vector(s) as (default vector, sparse {name: (indices, values)}, named {name: array}).

    Qdrant returns a plain list when the point holds only the default vector, else a dict
    whose values are lists (dense), sparse-vector objects (``.indices``/``.values``) or
    lists of lists (multi-vectors, left out here).
    """
    if v is None:
        return None, None, None
    if not isinstance(v, dict):
        return np.asarray(v, dtype=np.float32), None, None
    main = None
    sparse: dict[str, tuple[list[int], list[float]]] = {}
    named: dict[str, np.ndarray] = {}
    for k, x in v.items():
        if hasattr(x, "indices"):
            sparse[k] = (list(x.indices), list(x.values))
        elif k == "":
            main = np.asarray(x, dtype=np.float32)
        elif len(x) == 0 or not isinstance(x[0], (list, tuple)):
            named[k] = np.asarray(x, dtype=np.float32)
    return main, sparse or None, named or None
