"""Ingest rate of the loopback Qdrant gRPC test server (tests/qdrant_grpc_server) against embedded Qdrant Edge.

    python bench/bench_test_server.py [--points 20000] [--dim 768] [--batch-size 500] [--threads 1,4]

Baseline: Cortex's embedded target (``EdgeTarget.upsert``, the same Edge engine in-process).  Contender:
``ServerTarget.upsert`` (Cortex's raw gRPC upload) into the test server, from N threads.  Prints points/s and
the ratio to the baseline, and checks every vector came back bit-exact (dot distance: stored as given).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent import futures
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def load(target, name: str, vecs: np.ndarray, bs: int, threads: int) -> float:
    target.create_collection(name, vecs.shape[1], "dot", defer_indexing=True)
    batches = [(list(range(lo, min(lo + bs, len(vecs)))), vecs[lo:lo + bs]) for lo in range(0, len(vecs), bs)]
    t0 = time.perf_counter()
    with futures.ThreadPoolExecutor(threads) as pool:
        for f in [pool.submit(target.upsert, name, ids, v, [{"n": ids[0]}] * len(ids)) for ids, v in batches]:
            f.result()
    dt = time.perf_counter() - t0
    found, got, _ = target.fetch_arrays(name, list(range(len(vecs))), vecs.shape[1])
    if len(found) != len(vecs) or got[np.argsort(found)].tobytes() != vecs.tobytes():
        raise SystemExit(f"{name}: the stored vectors differ from what was sent")
    return len(vecs) / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=20_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--threads", default="1,4")
    args = ap.parse_args()
    from grpc_server_fixture import QdrantGrpcServer

    from cortex.targets.edge import EdgeTarget

    vecs = np.random.default_rng(0).standard_normal((args.points, args.dim)).astype(np.float32)
    print(f"{args.points} x {args.dim} float32, batch {args.batch_size}, small payloads")
    rates = {}
    with tempfile.TemporaryDirectory() as d:
        with EdgeTarget(Path(d) / "edge") as t:
            base = rates["embedded EdgeTarget.upsert (baseline)"] = load(t, "base", vecs, args.batch_size, 1)
        with QdrantGrpcServer(Path(d) / "server") as server, server.target() as t:
            for n in (int(x) for x in args.threads.split(",")):
                rates[f"test server, ServerTarget.upsert, {n} thread(s)"] = load(t, f"s{n}", vecs, args.batch_size, n)
    width = max(map(len, rates))
    for label, r in rates.items():
        print(f"  {label:<{width}}  {r:>9,.0f} points/s  {r / base:5.2f}x")


if __name__ == "__main__":
    main()
