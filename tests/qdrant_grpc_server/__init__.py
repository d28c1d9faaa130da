"""A loopback Qdrant server for tests: Qdrant's own gRPC API on top of Qdrant Edge shards.

No Qdrant server binary or container can run on the test machines; this speaks the protocol
qdrant-client ships (``qdrant_client.grpc``: the ``Qdrant``, ``Collections``, ``Points`` and
``Snapshots`` services) and stores every collection in a real Qdrant Edge shard (Qdrant's Rust
engine: WAL, segments, HNSW, payload indexes, filters), so what a client writes is stored, read
back, filtered and searched by Qdrant's code.  Many client processes can use one server at once
(a gRPC thread pool; each collection has its own lock).

    python -m tests.qdrant_grpc_server --port 6334 --storage /tmp/q [--api-key K] [--max-message-bytes N]

Connect with gRPC preferred: ``QdrantClient(url="http://127.0.0.1:P", grpc_port=P, prefer_grpc=True,
check_compatibility=False)``, or for Cortex ``--url http://127.0.0.1:P --grpc-port P`` (gRPC is
Cortex's default; its server target then makes every call over gRPC and skips the REST version
check).  In pytest, use the fixtures of ``tests/grpc_server_fixture.py``.

Implemented: HealthCheck; collections Create / Get / List / Exists / Update / Delete; UpdateAliases
(atomic: all actions or none), ListAliases, ListCollectionAliases, aliases resolved on every call;
points Upsert, Get, Scroll (filter, offset, limit, order_by, with_payload / with_vectors), Count,
Delete (ids or filter), Set/Overwrite/Delete/ClearPayload, UpdateVectors, DeleteVectors, UpdateBatch
(applied in order under one hold of the collection lock), Query (nearest by vector or id, dense /
sparse / multi-vector, prefetch + RRF / DBSF fusion, order_by, sample, recommend), QueryBatch,
Search, SearchBatch, CreateFieldIndex, DeleteFieldIndex; snapshots Create / List / Delete; custom
sharding: CreateShardKey / DeleteShardKey / ListShardKeys, one Edge shard per shard key, writes to the
keys their ``shard_key_selector`` names, reads of the named keys or (no selector) of all of them merged
(scroll pages in id order, query hits by score as the distance orders them, counts summed).
Errors a server gives: NOT_FOUND (missing collection, alias or point), INVALID_ARGUMENT (wrong
dimension, bad id, bad config), ALREADY_EXISTS, UNAUTHENTICATED (wrong or missing ``api-key`` /
``authorization: Bearer`` when started with ``--api-key``; HealthCheck is open, as on a server),
RESOURCE_EXHAUSTED (a request over ``--max-message-bytes``, default 64 MiB), UNIMPLEMENTED for the rest.

Where it differs from a real Qdrant server:
- gRPC only, no REST port: qdrant-client's REST-only calls (``prefer_grpc=False``, snapshot upload /
  download / recover, ``info()`` over REST, the version check) do not work.
- One node, one Edge shard per collection (per shard key with custom sharding): ``shard_number``,
  ``replication_factor``, ``write_consistency_factor``, the shard keys' ``shards_number`` / placement and the
  WAL settings are stored or accepted but change nothing; the cluster RPCs are refused (UNIMPLEMENTED).
  ``order_by`` over several shard keys is refused; a new shard key gets the payload indexes (types only); an
  update by ids over several shard keys goes by a has-id filter, so an id found in no shard is no error.
- Writes are applied before the call returns, whatever ``wait`` says (``wait=false`` answers
  ``Acknowledged``).  ``Update`` runs the optimizers synchronously (a server does it in the background),
  so a collection is always reported ``green``.
- Update can change optimizers, HNSW, quantization, collection params and per-vector HNSW /
  quantization / on_disk; changing a sparse vector's modifier and strict mode are refused.
- Snapshots are tar archives of the flushed Edge shard directory, not a server's snapshot format.
- Not implemented: inference (documents / images), formula / MMR / discover / context queries,
  ``lookup_from``, groups, facets, matrix search, strict mode, named-vector creation / deletion.
- Errors carry a server's status codes and message style, not always its exact wording.
"""

from .services import build_server
from .store import Store

__all__ = ["Store", "build_server"]
