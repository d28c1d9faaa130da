"""Bulk upsert over gRPC: the serialized ``UpsertPoints`` request built straight from numpy.

qdrant-client turns every point into protobuf objects before serializing them; here the
request bytes are written directly (the wire format is stable, the field numbers come from
qdrant's ``points.proto``) and sent through the client's own channels with an identity
serializer, so its interceptors (api-key / bearer headers, retry-after) still apply.

Wire layout of one point (``PointStruct``)::

    1: id       PointId  { 1: num (varint) | 2: uuid (string) }
    3: payload  map<string, Value>      (only when the payload is non-empty)
    4: vectors  Vectors { 1: vector Vector { 101: dense DenseVector { 1: data (packed float) } } }

Everything before the floats of ``vectors`` is the same for every point of a dimension, so it
is cut once from a serialized zero vector (the trick ``qdrant_client.uploader.grpc_uploader``
uses for its ``DenseVector`` prefix) and the float32 rows are appended as raw bytes.

With named or sparse vectors a point's ``vectors`` is the map form, as qdrant-client sends
a ``{"": [...], name: ...}`` vector::

    4: vectors  Vectors { 2: vectors NamedVectors { 1: map<string, Vector> } }
       Vector { 101: dense DenseVector { 1: data (packed float) }
              | 102: sparse SparseVector { 1: values (packed float), 2: indices (packed uint32) } }
"""

from __future__ import annotations

import itertools
from functools import lru_cache
from typing import Any

import numpy as np

from cortex.errors import TargetError, TransientTargetError

UPSERT_METHOD = "/qdrant.Points/Upsert"


def _varint(n: int) -> bytes:
    if n < 0x80:
        if n < 0:
            raise ValueError(f"point id {n} is negative; Qdrant ids are unsigned 64-bit integers or UUIDs")
        return bytes((n,))
    if n > 0xFFFF_FFFF_FFFF_FFFF:
        raise ValueError(f"point id {n} exceeds 2**64-1; Qdrant ids are unsigned 64-bit integers or UUIDs")
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


@lru_cache(maxsize=64)
def _vectors_prefix(dim: int) -> bytes:
    """What ``PointStruct`` writes before the floats of its one dense vector of ``dim`` floats."""
    from qdrant_client import grpc as g

    zero = g.PointStruct(vectors=g.Vectors(vector=g.Vector(dense=g.DenseVector(data=[0.0] * dim))))
    s = zero.SerializeToString()
    return s[: len(s) - 4 * dim]


def _id_field(pid: Any) -> bytes:
    """``PointStruct.id`` (field 1) for an unsigned int or a UUID string."""
    if isinstance(pid, str):
        u = pid.encode()
        inner = b"\x12" + _varint(len(u)) + u
    elif isinstance(pid, (int, np.integer)) and not isinstance(pid, (bool, np.bool_)):
        inner = b"\x08" + _varint(int(pid))
    else:
        raise ValueError(f"point id {pid!r} is neither an unsigned integer nor a UUID string")
    return b"\x0a" + _varint(len(inner)) + inner


def _payload_field(payload: dict[str, Any]) -> bytes:
    """``PointStruct.payload`` (field 3) entries, serialized by protobuf from qdrant-client's conversion."""
    from qdrant_client import grpc as g
    from qdrant_client.conversions.conversion import payload_to_grpc

    return g.PointStruct(payload=payload_to_grpc(payload)).SerializeToString()


def _field(tag: bytes, body: bytes) -> bytes:
    """A length-delimited field: its tag, the body's length, the body."""
    return tag + _varint(len(body)) + body


def _named_vectors(n: int, vecs: np.ndarray, sparse: dict[str, list[Any]] | None,
                   named: dict[str, np.ndarray] | None) -> list[bytes]:
    """Per point, the ``PointStruct.vectors`` field (4) in the map form: default, named dense and sparse vectors."""
    dense: list[tuple[bytes, np.ndarray, np.ndarray]] = [(b"", vecs, np.ones(n, dtype=bool))]
    for nm, arr in (named or {}).items():
        a = np.ascontiguousarray(arr, dtype="<f4")
        if a.ndim != 2 or a.shape[0] != n:
            raise ValueError(f"named vector '{nm}' of shape {a.shape} for {n} ids")
        dense.append((nm.encode(), a, ~np.isnan(a).all(axis=1)))
    for nm, rows in (sparse or {}).items():
        if len(rows) != n:
            raise ValueError(f"sparse vector '{nm}' has {len(rows)} rows for {n} ids")
    keys = [(_field(b"\x0a", k), a, present) for k, a, present in dense]
    sparse_keys = [(_field(b"\x0a", nm.encode()), rows) for nm, rows in (sparse or {}).items()]
    out = []
    for i in range(n):
        entries = []
        for key, a, present in keys:
            if present[i]:
                row = a[i].tobytes()
                vector = _field(b"\xaa\x06", _field(b"\x0a", row) if row else b"")  # 101: dense
                entries.append(_field(b"\x0a", key + _field(b"\x12", vector)))
        for key, rows in sparse_keys:
            row = rows[i]
            if row is None:
                continue
            idx, val = row
            body = b""
            if len(val):
                body += _field(b"\x0a", np.asarray(val, dtype="<f4").tobytes())
            if len(idx):
                body += _field(b"\x12", b"".join(_varint(int(j)) for j in idx))
            entries.append(_field(b"\x0a", key + _field(b"\x12", _field(b"\xb2\x06", body))))  # 102: sparse
        out.append(_field(b"\x22", _field(b"\x12", b"".join(entries))))
    return out


def encode_upsert(name: str, ids: list[Any], vectors: np.ndarray, payloads: list[dict[str, Any]] | None,
                  wait: bool = True, *, sparse: dict[str, list[Any]] | None = None,
                  named: dict[str, np.ndarray] | None = None) -> bytes:
    """The serialized ``UpsertPoints`` request for one batch (``qdrant.UpsertPoints.FromString`` reads it).

    ``sparse`` / ``named``: extra vectors as in ``Batch.sparse`` / ``Batch.named`` (a ``None``
    sparse row or an all-NaN named row is left out of that point).
    """
    vecs = np.ascontiguousarray(vectors, dtype="<f4")
    if vecs.ndim != 2 or vecs.shape[0] != len(ids):
        raise ValueError(f"vectors of shape {vecs.shape} for {len(ids)} ids")
    if payloads is not None and len(payloads) != len(ids):
        raise ValueError(f"{len(payloads)} payloads for {len(ids)} ids")
    if sparse or named:
        nm = name.encode()
        parts = [b"\x0a", _varint(len(nm)), nm, b"\x10\x01" if wait else b""]
        for i, vf in enumerate(_named_vectors(len(ids), vecs, sparse, named)):
            p = payloads[i] if payloads is not None else None
            parts.append(_field(b"\x1a", _id_field(ids[i]) + (_payload_field(p) if p else b"") + vf))
        return b"".join(parts)
    dim = vecs.shape[1]
    row = 4 * dim
    vp = _vectors_prefix(dim)
    fixed = len(vp) + row
    rows = memoryview(vecs).cast("B")
    nm = name.encode()
    parts: list[Any] = [b"\x0a", _varint(len(nm)), nm]
    if wait:
        parts.append(b"\x10\x01")
    append = parts.extend
    for i, pid in enumerate(ids):
        idf = _id_field(pid)
        p = payloads[i] if payloads is not None else None
        if p:
            pf = _payload_field(p)
            append((b"\x1a", _varint(len(idf) + len(pf) + fixed), idf, pf, vp, rows[i * row:(i + 1) * row]))
        else:
            append((b"\x1a", _varint(len(idf) + fixed), idf, vp, rows[i * row:(i + 1) * row]))
    return b"".join(parts)


class GrpcUploader:
    """Sends pre-serialized upserts round-robin over the channel pool of a remote ``QdrantClient``."""

    def __init__(self, client: Any, timeout: float | None = 120) -> None:
        from qdrant_client import grpc as g

        remote = client._client  # QdrantRemote: channels carry its api-key metadata interceptor
        remote._init_grpc_channel()
        self._ok, self._timed_out = g.UpdateStatus.Completed, g.UpdateStatus.WaitTimeout
        self._calls = [ch.unary_unary(UPSERT_METHOD, request_serializer=_identity,
                                      response_deserializer=g.PointsOperationResponse.FromString)
                       for ch in remote._grpc_channel_pool]
        self._next = itertools.count()
        self.timeout = timeout

    def upsert(self, name: str, ids: list[Any], vectors: np.ndarray,
               payloads: list[dict[str, Any]] | None, *, sparse: dict[str, list[Any]] | None = None,
               named: dict[str, np.ndarray] | None = None, shard_key: str | int | None = None) -> None:
        """One batch with ``wait=True``: returns once the server has applied it (into ``shard_key``'s shard)."""
        request = encode_upsert(name, ids, vectors, payloads, wait=True, sparse=sparse, named=named)
        if shard_key is not None:
            request += shard_key_field(shard_key)
        call = self._calls[next(self._next) % len(self._calls)]
        response = call(request, timeout=self.timeout)
        status = response.result.status
        if status == self._timed_out:  # accepted but not applied in time: an idempotent retry is safe
            raise TransientTargetError(f"upsert into '{name}': the server timed out waiting for the write")
        if status != self._ok:
            raise TargetError(f"upsert into '{name}' was not applied (update status {status})")


def shard_key_field(key: str | int) -> bytes:
    """``UpsertPoints.shard_key_selector`` (field 5) for one custom shard key; appended, protobuf merges it."""
    from qdrant_client import grpc as g

    sk = g.ShardKey(keyword=key) if isinstance(key, str) else g.ShardKey(number=int(key))
    return g.UpsertPoints(shard_key_selector=g.ShardKeySelector(shard_keys=[sk])).SerializeToString()


def _identity(b: bytes) -> bytes:
    return b
