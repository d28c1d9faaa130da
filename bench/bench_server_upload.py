"""Client-side upload speed into a Qdrant server over gRPC: 50k x 768 float32 into a discarding endpoint.

    python bench/bench_server_upload.py [--points 50000] [--dim 768] [--batch-size 500] [--workers 1,2,4]
    python bench/bench_server_upload.py --serve PORT [--seconds S] [--api-key K] [--max-receive BYTES]

The endpoint (``--serve``) answers the gRPC calls a migration makes and throws the points away
after counting them, so only the client side is measured: it is no stand-in for Qdrant.
Compared, each against a fresh endpoint, with ``wait=True`` everywhere:

- seed: the migration guide's loop (``PointStruct`` per point, ``upsert`` of ``--batch-size``)
- batch-tolist: ``upsert(Batch(ids, vectors.tolist()))``
- upload_collection: qdrant-client's ``upload_collection`` from the numpy matrix (``parallel=1``)
- cortex-upsert wN: ``ServerTarget.upsert`` (pre-serialized gRPC requests) from N threads
- cortex-migrate wN: ``cortex.api.migrate`` of a ``.npy`` file with ``--workers N`` (read, validate, write)

Prints points/s and the ratio to upload_collection; every run checks the endpoint counted every point.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent import futures
from pathlib import Path

import numpy as np


# -- the discarding endpoint ---------------------------------------------------------------------
def serve(port: int, seconds: float = 3600, api_key: str | None = None, max_receive: int = 256 * 2**20) -> None:
    """A gRPC endpoint on 127.0.0.1:PORT that counts upserted points and stores nothing.

    It keeps collection configs (so creating, reading and updating them behaves), refuses calls
    without ``api-key: API_KEY`` when one is set, and rejects requests over ``max_receive`` bytes.
    """
    import grpc
    from qdrant_client import grpc as g

    collections: dict[str, g.CollectionConfig] = {}
    OPTIMIZER_DEFAULTS = g.OptimizersConfigDiff(  # noqa: N806 - what a server reports for a new collection
        deleted_threshold=0.2, vacuum_min_vector_number=1000, default_segment_number=0, indexing_threshold=10000,
        flush_interval_sec=5)
    points = {"n": 0}
    lock = threading.Lock()

    def done() -> g.CollectionOperationResponse:
        return g.CollectionOperationResponse(result=True, time=0.0)

    def applied() -> g.PointsOperationResponse:
        return g.PointsOperationResponse(result=g.UpdateResult(operation_id=0, status=g.UpdateStatus.Completed))

    class Root(g.QdrantServicer):
        def HealthCheck(self, request, context):  # noqa: N802 - gRPC method names
            return g.HealthCheckReply(title="null endpoint", version="1.16.0")

    class Collections(g.CollectionsServicer):
        def Create(self, request, context):  # noqa: N802
            collections[request.collection_name] = g.CollectionConfig(
                params=g.CollectionParams(vectors_config=request.vectors_config),
                hnsw_config=g.HnswConfigDiff(m=16, ef_construct=100, full_scan_threshold=10000),
                optimizer_config=OPTIMIZER_DEFAULTS,
                wal_config=g.WalConfigDiff(wal_capacity_mb=32, wal_segments_ahead=0, wal_retain_closed=1))
            collections[request.collection_name].optimizer_config.MergeFrom(request.optimizers_config)
            return done()

        def Get(self, request, context):  # noqa: N802
            if request.collection_name not in collections:
                context.abort(grpc.StatusCode.NOT_FOUND, f"Collection `{request.collection_name}` doesn't exist!")
            return g.GetCollectionInfoResponse(result=g.CollectionInfo(
                status=g.CollectionStatus.Green, optimizer_status=g.OptimizerStatus(ok=True), segments_count=1,
                config=collections[request.collection_name], points_count=points["n"]), time=0.0)

        def CollectionExists(self, request, context):  # noqa: N802
            return g.CollectionExistsResponse(result=g.CollectionExists(exists=request.collection_name in collections))

        def List(self, request, context):  # noqa: N802
            return g.ListCollectionsResponse(collections=[g.CollectionDescription(name=n) for n in collections])

        def Update(self, request, context):  # noqa: N802
            if request.collection_name in collections and request.HasField("optimizers_config"):
                collections[request.collection_name].optimizer_config.MergeFrom(request.optimizers_config)
            return done()

        def Delete(self, request, context):  # noqa: N802
            collections.pop(request.collection_name, None)
            return done()

    class Points(g.PointsServicer):
        def Upsert(self, request, context):  # noqa: N802
            with lock:
                points["n"] += len(request.points)
            return applied()

        def Count(self, request, context):  # noqa: N802
            return g.CountResponse(result=g.CountResult(count=points["n"]))

    class KeyCheck(grpc.ServerInterceptor):
        def intercept_service(self, continuation, details):
            if api_key is None or dict(details.invocation_metadata).get("api-key") == api_key:
                return continuation(details)
            return grpc.unary_unary_rpc_method_handler(
                lambda request, context: context.abort(grpc.StatusCode.UNAUTHENTICATED, "Invalid api-key"))

    opts = [("grpc.max_receive_message_length", max_receive), ("grpc.max_send_message_length", 256 * 2**20)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), options=opts, interceptors=[KeyCheck()])
    g.add_QdrantServicer_to_server(Root(), server)
    g.add_CollectionsServicer_to_server(Collections(), server)
    g.add_PointsServicer_to_server(Points(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("ready", flush=True)
    server.wait_for_termination(timeout=seconds)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NullEndpoint:
    """``serve`` in a subprocess on a free loopback port; ``with NullEndpoint() as ep: ep.port``."""

    def __init__(self, seconds: float = 600, api_key: str | None = None, max_receive: int | None = None) -> None:
        self.port = free_port()
        self.api_key = api_key
        cmd = [sys.executable, __file__, "--serve", str(self.port), "--seconds", str(seconds)]
        cmd += ["--api-key", api_key] if api_key else []
        cmd += ["--max-receive", str(max_receive)] if max_receive else []
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.proc.kill()
            raise RuntimeError(f"the null endpoint did not start (said {line!r})")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self):
        from qdrant_client import QdrantClient

        return QdrantClient(url=self.url, grpc_port=self.port, prefer_grpc=True, check_compatibility=False,
                            api_key=self.api_key)

    def count(self) -> int:
        c = self.client()
        try:
            return c.count("any").count
        finally:
            c.close()

    def __enter__(self) -> NullEndpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


# -- the contenders -------------------------------------------------------------------------------
def make_collection(client, name: str, dim: int) -> None:
    from qdrant_client import models

    client.create_collection(name, vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE))


def seed_loop(ep: NullEndpoint, vecs: np.ndarray, bs: int) -> None:
    from qdrant_client.models import PointStruct

    client = ep.client()
    make_collection(client, "seed", vecs.shape[1])
    points = []
    for i, v in enumerate(vecs):
        points.append(PointStruct(id=i, vector=v.tolist(), payload={}))
        if len(points) >= bs:
            client.upsert(collection_name="seed", points=points)
            points = []
    if points:
        client.upsert(collection_name="seed", points=points)
    client.close()


def batch_tolist(ep: NullEndpoint, vecs: np.ndarray, bs: int) -> None:
    from qdrant_client import models

    client = ep.client()
    make_collection(client, "batch", vecs.shape[1])
    for lo in range(0, len(vecs), bs):
        chunk = vecs[lo:lo + bs]
        client.upsert("batch", points=models.Batch(ids=list(range(lo, lo + len(chunk))), vectors=chunk.tolist()),
                      wait=True)
    client.close()


def upload_collection(ep: NullEndpoint, vecs: np.ndarray, bs: int, parallel: int = 1) -> None:
    client = ep.client()
    make_collection(client, "upload", vecs.shape[1])
    client.upload_collection("upload", vectors=vecs, ids=range(len(vecs)), batch_size=bs, parallel=parallel,
                             wait=True)
    client.close()


def cortex_upsert(ep: NullEndpoint, vecs: np.ndarray, bs: int, workers: int) -> None:
    from cortex.targets.server import ServerTarget

    t = ServerTarget(ep.url, grpc_port=ep.port, prefer_grpc=True)
    t.create_collection("cortex", vecs.shape[1], "cosine")
    with futures.ThreadPoolExecutor(workers) as pool:
        jobs = [pool.submit(t.upsert, "cortex", list(range(lo, min(lo + bs, len(vecs)))), vecs[lo:lo + bs], None)
                for lo in range(0, len(vecs), bs)]
        for j in jobs:
            j.result()
    t.close()


def cortex_migrate(ep: NullEndpoint, npy: Path, bs: int, workers: int, state: Path) -> None:
    from cortex.api import migrate

    s = migrate(str(npy), "migrated", url=ep.url, grpc_port=ep.port, prefer_grpc=True, batch_size=bs,
                workers=workers, state_dir=str(state / f"w{workers}"))
    assert s.status == "done", s


def timed(label: str, n: int, fn: Callable[[NullEndpoint], None]) -> float:
    with NullEndpoint() as ep:
        t0 = time.perf_counter()
        fn(ep)
        dt = time.perf_counter() - t0
        got = ep.count()
    if got != n:
        raise SystemExit(f"{label}: the endpoint counted {got} points, expected {n}")
    return n / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=50_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--skip-slow", action="store_true", help="skip the guide loop and Batch(tolist)")
    args = ap.parse_args()
    n, bs = args.points, args.batch_size
    vecs = np.random.default_rng(0).standard_normal((n, args.dim)).astype(np.float32)
    workers = [int(w) for w in args.workers.split(",")]
    print(f"{n} x {args.dim} float32, batch {bs}, wait=True, into a discarding gRPC endpoint on loopback")

    rates: dict[str, float] = {}
    if not args.skip_slow:
        rates["guide loop (PointStruct + upsert)"] = timed("seed", n, lambda ep: seed_loop(ep, vecs, bs))
        rates["upsert(Batch(tolist))"] = timed("batch", n, lambda ep: batch_tolist(ep, vecs, bs))
    base = rates["upload_collection (numpy, parallel=1)"] = timed(
        "upload_collection", n, lambda ep: upload_collection(ep, vecs, bs))
    for w in workers:
        rates[f"cortex ServerTarget.upsert, {w} worker(s)"] = timed(
            "cortex-upsert", n, lambda ep, w=w: cortex_upsert(ep, vecs, bs, w))
    with tempfile.TemporaryDirectory() as d:
        npy = Path(d) / "vectors.npy"
        np.save(npy, vecs)
        for w in workers:
            rates[f"cortex migrate .npy --workers {w}"] = timed(
                "cortex-migrate", n, lambda ep, w=w: cortex_migrate(ep, npy, bs, w, Path(d)))
    width = max(map(len, rates))
    for label, r in rates.items():
        print(f"  {label:<{width}}  {r:>9,.0f} points/s  {r / base:5.2f}x upload_collection")


def serve_main() -> None:
    ap = argparse.ArgumentParser(description="the discarding endpoint alone")
    ap.add_argument("--serve", type=int, metavar="PORT", required=True)
    ap.add_argument("--seconds", type=float, default=3600)
    ap.add_argument("--api-key")
    ap.add_argument("--max-receive", type=int, default=256 * 2**20)
    args = ap.parse_args()
    serve(args.serve, args.seconds, args.api_key, args.max_receive)


if __name__ == "__main__":
    serve_main() if "--serve" in sys.argv else main()
