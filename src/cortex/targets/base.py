"""The contract both targets implement: embedded Qdrant Edge and a Qdrant server.

The pipeline, verify and the ops commands talk only to this interface.  Ids passed in
are already Qdrant ids (unsigned ints or UUID strings, see ``cortex.ids``); vectors are
2-D float32 arrays.  Every write returns only once the target holds it durably (server:
``wait=True``; embedded: WAL-logged), which is what checkpoints rely on.
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
    named_vectors: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StoredPoint:
    id: int | str
    vector: np.ndarray | None
    payload: dict[str, Any] | None


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
    def create_collection(self, name: str, dim: int, distance: str, defer_indexing: bool = True) -> None: ...

    @abstractmethod
    def delete_collection(self, name: str) -> None: ...

    @abstractmethod
    def upsert(self, name: str, ids: list[int | str], vectors: np.ndarray,
               payloads: list[dict[str, Any]] | None) -> None:
        """Write points; returns when they are durable."""

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
               with_payload: bool = True) -> Iterator[list[StoredPoint]]: ...

    @abstractmethod
    def search(self, name: str, queries: np.ndarray, k: int, ef: int | None = None,
               exact: bool = False, filter: dict[str, Any] | None = None) -> list[list[tuple[Any, float]]]:
        """Per query, the top-k (id, score). ``filter`` is {field: value} equality."""

    @abstractmethod
    def count(self, name: str, exact: bool = True) -> int: ...

    def create_payload_index(self, name: str, field_name: str, kind: str = "keyword") -> None:  # noqa: B027
        """Index a payload field for filtered search (keyword | integer | float | bool | datetime)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the target (file locks, connections)."""

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def normalize_rows(v: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as Qdrant stores cosine vectors."""
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)
