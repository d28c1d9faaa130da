"""What sparse and named vectors cost: embedded ingest, validation and the gRPC request encoder.

    python bench/bench_sparse.py [--points 20000] [--dim 384] [--nnz 60] [--named-dim 128] [--batch-size 500]

(a) Ingest into Qdrant Edge through ``cortex.pipeline.run`` (validate, map ids, upsert; index
build excluded) of the same points three ways: dense only (the baseline, the untouched fast
path), dense + one sparse vector of ``--nnz`` entries, dense + sparse + one named dense vector.
Printed: points/s and the ratio to the dense-only run of this same invocation; and, for the
sparse case, the engine alone: ``shard.update`` of ``qdrant_edge.Point`` lists built beforehand
(building them timed apart), so the pipeline's own overhead shows.

(b) ``validate`` alone on the sparse batches: microseconds per row (the vectorized sparse check).

(c) The server target's gRPC request for one batch with sparse + named vectors: Cortex's raw
encoder (``encode_upsert``) against qdrant-client's own path (``PointStruct`` models ->
``RestToGrpc.convert_point_struct`` -> ``SerializeToString``), same bytes when parsed.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


def make(n: int, dim: int, nnz: int, named_dim: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    idx = np.sort(rng.integers(0, 30_000, size=(n, nnz)), axis=1)
    sparse = []
    for row, vals in zip(idx, rng.random((n, nnz), dtype=np.float32), strict=True):
        u, first = np.unique(row, return_index=True)
        sparse.append((u.tolist(), vals[first].tolist()))
    return {"vectors": rng.standard_normal((n, dim), dtype=np.float32), "sparse": sparse,
            "named": rng.standard_normal((n, named_dim), dtype=np.float32)}


def source(data: dict[str, Any], with_sparse: bool, with_named: bool, batch_size: int) -> Any:
    from cortex.sources.base import Batch, Source, SourceInfo

    class Mem(Source):
        kind = "mem"

        @classmethod
        def detect(cls, path: str) -> bool:
            return False

        def info(self) -> SourceInfo:
            details: dict[str, Any] = {}
            if with_sparse:
                details["sparse_vectors"] = {"bm25": {"modifier": "idf"}}
            if with_named:
                details["named_vectors"] = {"title": {"size": data["named"].shape[1], "distance": "cosine"}}
            return SourceInfo(kind="mem", name="mem", dim=data["vectors"].shape[1], distance="cosine",
                              count=len(data["vectors"]), details=details)

        def batches(self, bs: int, resume: Any = None) -> Iterator[Batch]:
            n = len(data["vectors"])
            for lo in range(0, n, bs):
                hi = min(n, lo + bs)
                yield Batch(ids=np.arange(lo, hi), vectors=data["vectors"][lo:hi], payloads=None,
                            sparse={"bm25": data["sparse"][lo:hi]} if with_sparse else None,
                            named={"title": data["named"][lo:hi]} if with_named else None, cursor=hi)

    return Mem("mem")


def ingest(root: Path, data: dict[str, Any], with_sparse: bool, with_named: bool, bs: int) -> float:
    from cortex.pipeline import PipelineOptions, run
    from cortex.targets.edge import EdgeTarget

    name = f"c{int(with_sparse)}{int(with_named)}"
    with EdgeTarget(root) as t:
        t0 = time.perf_counter()
        s = run(source(data, with_sparse, with_named, bs), t, name,
                PipelineOptions(batch_size=bs, workers=2, build_index=False, detect_duplicates=False))
        spent = time.perf_counter() - t0
        assert s.written == len(data["vectors"]), s
    shutil.rmtree(root / name)
    return len(data["vectors"]) / spent


def raw_sparse(root: Path, data: dict[str, Any], bs: int) -> tuple[float, float]:
    """(points/s of shard.update alone, points/s of building the Point objects) with dense + sparse."""
    import qdrant_edge as q

    from cortex.targets.edge import EdgeTarget

    n = len(data["vectors"])
    build = update = 0.0
    with EdgeTarget(root) as t:
        t.create_collection("raw", data["vectors"].shape[1], "cosine", sparse={"bm25": {"modifier": "idf"}})
        shard = t._open("raw")
        for lo in range(0, n, bs):
            v, sp = data["vectors"][lo:lo + bs].tolist(), data["sparse"][lo:lo + bs]
            t0 = time.perf_counter()
            pts = [q.Point(lo + k, {"": v[k], "bm25": q.SparseVector(*sp[k])}) for k in range(len(v))]
            t1 = time.perf_counter()
            shard.update(q.UpdateOperation.upsert_points(pts))
            build, update = build + t1 - t0, update + time.perf_counter() - t1
    shutil.rmtree(root / "raw")
    return n / update, n / build


def validate_us(data: dict[str, Any], bs: int) -> float:
    from cortex.sources.base import Batch
    from cortex.validate import validate

    n = len(data["vectors"])
    batches = [Batch(ids=np.arange(lo, min(n, lo + bs)), vectors=data["vectors"][lo:lo + bs],
                     sparse={"bm25": data["sparse"][lo:lo + bs]}) for lo in range(0, n, bs)]
    plain = [Batch(ids=b.ids, vectors=b.vectors) for b in batches]
    t0 = time.perf_counter()
    for b in plain:
        validate(b, data["vectors"].shape[1], "source_id", 0, None)
    base = time.perf_counter() - t0
    t0 = time.perf_counter()
    for b in batches:
        validate(b, data["vectors"].shape[1], "source_id", 0, None, {"bm25"}, {})
    return (time.perf_counter() - t0 - base) / n * 1e6


def encoders(data: dict[str, Any], bs: int, repeat: int = 5) -> tuple[float, float]:
    from qdrant_client import grpc as g
    from qdrant_client import models
    from qdrant_client.conversions.conversion import RestToGrpc

    from cortex.targets.grpc_upload import encode_upsert

    ids = list(range(bs))
    vecs, named, sparse = data["vectors"][:bs], {"title": data["named"][:bs]}, {"bm25": data["sparse"][:bs]}

    def client_path() -> bytes:
        pts = [RestToGrpc.convert_point_struct(models.PointStruct(id=i, vector={
            "": vecs[i].tolist(), "title": named["title"][i].tolist(),
            "bm25": models.SparseVector(indices=sparse["bm25"][i][0], values=sparse["bm25"][i][1])}))
            for i in ids]
        return g.UpsertPoints(collection_name="c", wait=True, points=pts).SerializeToString()

    ours = encode_upsert("c", ids, vecs, None, sparse=sparse, named=named)
    assert g.UpsertPoints.FromString(ours) == g.UpsertPoints.FromString(client_path())

    def best(fn: Any) -> float:
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return bs / min(times)

    return best(lambda: encode_upsert("c", ids, vecs, None, sparse=sparse, named=named)), best(client_path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=20_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--nnz", type=int, default=60)
    ap.add_argument("--named-dim", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=500)
    a = ap.parse_args()
    data = make(a.points, a.dim, a.nnz, a.named_dim)
    print(f"{a.points:,} points, {a.dim}-d dense, sparse ~{a.nnz} entries, named {a.named_dim}-d, "
          f"batch {a.batch_size}")
    root = Path(tempfile.mkdtemp(prefix="cortex-bench-sparse-"))
    try:
        base = ingest(root, data, False, False, a.batch_size)
        sp = ingest(root, data, True, False, a.batch_size)
        both = ingest(root, data, True, True, a.batch_size)
        raw_update, raw_build = raw_sparse(root, data, a.batch_size)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("(a) embedded ingest, points/s")
    print(f"    dense only (baseline)   {base:10,.0f}   1.00x")
    print(f"    + sparse                {sp:10,.0f}   {sp / base:.2f}x")
    print(f"    + sparse + named        {both:10,.0f}   {both / base:.2f}x")
    print(f"    engine alone, + sparse: shard.update {raw_update:,.0f}/s, building the Points {raw_build:,.0f}/s "
          f"(both: {1 / (1 / raw_update + 1 / raw_build):,.0f}/s in one thread)")
    print(f"(b) sparse validation: {validate_us(data, a.batch_size):.1f} us per row on top of the dense checks")
    ours, theirs = encoders(data, a.batch_size)
    print(f"(c) gRPC request, sparse + named, points/s: encode_upsert {ours:,.0f}, "
          f"qdrant-client models + conversion {theirs:,.0f} ({ours / theirs:.1f}x)")


if __name__ == "__main__":
    main()
