"""Scale-out on these 2 cores: Ray with 1 and 2 workers vs the single-process path, same run, same data.

    python bench/bench_scale.py [--n 100000] [--dim 768] [--partitions 4] [--batch-size 500]

Each run migrates the same ``.npy`` into a fresh collection of the real-engine gRPC test server
(tests/qdrant_grpc_server: Qdrant Edge behind Qdrant's gRPC API, in its own process), and checks the
collection holds every point. Printed: wall time, points/s, and each ratio to the single-process run.
On one 2-core machine the server shares the cores with the writers, so this shows the overhead and
the scaling of Cortex's side, not a cluster's throughput (docs/scale.md has the paper model). The index
is left deferred in every run (``build_index=False``): the load is what is compared.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "bench"), str(ROOT / "src")]

from bench_data import write_matrix  # noqa: E402
from grpc_server_fixture import QdrantGrpcServer  # noqa: E402


def _run(label: str, server: QdrantGrpcServer, src: Path, n: int, state: Path, **kw) -> float:
    from cortex.api import migrate

    collection = label.replace(" ", "-")
    t0 = time.perf_counter()
    s = migrate(str(src), collection, url=server.url, grpc_port=server.port, state_dir=str(state / collection),
                build_index=False, **kw)
    dt = time.perf_counter() - t0
    have = server.target().count(collection)
    assert s.written == n and have == n, (label, s.written, have)
    print(f"{label:<22} {dt:8.1f} s  {n / dt:10,.0f} pts/s", flush=True)
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=500)
    a = ap.parse_args()
    import ray

    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        d = Path(tmp)
        src = d / "m.npy"
        write_matrix(src, a.n, a.dim)
        print(f"{a.n:,} x {a.dim} float32, {a.partitions} partitions, batch {a.batch_size}")
        times = {}
        with QdrantGrpcServer(d / "server") as server:
            times["single process"] = _run("single process", server, src, a.n, d / "state", workers=2,
                                           batch_size=a.batch_size)
            for workers in (1, 2):
                ray.init(num_cpus=workers, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
                         configure_logging=False)
                try:
                    label = f"ray {workers} worker{'s' if workers > 1 else ''}"
                    times[label] = _run(label, server, src, a.n, d / "state", engine="ray",
                                        partitions=a.partitions, workers=1, batch_size=a.batch_size)
                finally:
                    ray.shutdown()
        base = times["single process"]
        print("\nratios of wall time to the single-process run (lower is faster):")
        for k, v in times.items():
            print(f"  {k:<22} {v / base:5.2f}x")
        print(f"  ray 2 vs 1 worker      {times['ray 2 workers'] / times['ray 1 worker']:5.2f}x")


if __name__ == "__main__":
    main()
