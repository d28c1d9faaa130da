"""Bulk upsert over gRPC from numpy, skipping qdrant-client's per-point model layer."""

from __future__ import annotations

from typing import Any

import numpy as np


def build_upsert(name: str, ids: list[int | str], vectors: np.ndarray,
                 payloads: list[dict[str, Any]] | None, wait: bool = True) -> Any:
    """The ``UpsertPoints`` protobuf message for one batch."""
    from qdrant_client import grpc as g
    from qdrant_client.conversions.conversion import payload_to_grpc
    from qdrant_client.uploader.grpc_uploader import convert_vector_struct

    vecs = np.ascontiguousarray(vectors, dtype=np.float32)
    points = []
    for i, pid in enumerate(ids):
        point_id = g.PointId(num=pid) if isinstance(pid, int) else g.PointId(uuid=pid)
        payload = payload_to_grpc(payloads[i]) if payloads is not None and payloads[i] else None
        points.append(g.PointStruct(id=point_id, vectors=convert_vector_struct(vecs[i]), payload=payload))
    return g.UpsertPoints(collection_name=name, points=points, wait=wait)


def upsert_grpc(client: Any, name: str, ids: list[int | str], vectors: np.ndarray,
                payloads: list[dict[str, Any]] | None, timeout: float | None = 120) -> None:
    """Send one batch with ``wait=True`` through the client's own gRPC channel (its auth headers)."""
    remote = client._client  # QdrantRemote: holds the channel and the api-key metadata
    remote.grpc_points.Upsert(build_upsert(name, ids, vectors, payloads), timeout=timeout)
