"""Rollout of N units: ``--parallel 2`` against one unit after another, same data, same run.

    python bench/bench_rollout.py [--units 8] [--per-unit 5000] [--dim 128] [--kind parquet|jsonl]

Each unit is a workspace of the source (``--where workspace_id = 'ws-i'``), migrated into embedded
Qdrant (Qdrant Edge) and verified in full; both runs write fresh storage.  Parquet pushes the
condition down (an arrow mask per record batch); JSONL filters while streaming, so every unit reads
the whole file.  Prints seconds and points/s of each run and the ratio.  The HNSW build, done once
after the last unit whatever the parallelism, is left out of both runs (``build_index=False``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from cortex import api  # noqa: E402


def make_source(root: Path, kind: str, units: int, per_unit: int, dim: int) -> tuple[str, int]:
    rng = np.random.default_rng(0)
    n = units * per_unit
    x = rng.standard_normal((n, dim)).astype(np.float32)
    ws = [f"ws-{i % units}" for i in range(n)]
    if kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        t = pa.table({"id": np.arange(n), "vector": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), dim),
                      "workspace_id": ws, "n": np.arange(n)})
        p = root / "chunks.parquet"
        pq.write_table(t, p, row_group_size=10_000)
        return str(p), n
    p = root / "chunks.jsonl"
    with open(p, "w") as f:
        for i in range(n):
            f.write(json.dumps({"id": i, "vector": x[i].tolist(), "payload": {"workspace_id": ws[i], "n": i}}) + "\n")
    return str(p), n


def one_run(source: str, kind: str, root: Path, parallel: int) -> float:
    state, storage = root / f"state-{parallel}", root / f"qs-{parallel}"
    opts = api.SourceOptions(id_column="id") if kind == "parquet" else None
    api.rollout_plan(source, by="workspace_id", collection="chunks", options=opts, state_dir=str(state),
                     path=str(storage))
    t0 = time.perf_counter()
    res = api.rollout_run(parallel=parallel, state_dir=str(state), batch_size=1000, build_index=False)
    dt = time.perf_counter() - t0
    assert res.ok, [u for u in res.units if u.status != "verified"]
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, default=8)
    ap.add_argument("--per-unit", type=int, default=5000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--kind", choices=("parquet", "jsonl"), default="parquet")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-rollout-") as tmp:
        root = Path(tmp)
        source, n = make_source(root, a.kind, a.units, a.per_unit, a.dim)
        seq = one_run(source, a.kind, root, 1)
        par = one_run(source, a.kind, root, 2)
    print(f"{a.units} units x {a.per_unit:,} points x {a.dim} dims ({a.kind}), migrate + verify --full each "
          "(index build excluded)")
    print(f"one unit after another: {seq:7.2f} s  {n / seq:9,.0f} points/s")
    print(f"--parallel 2          : {par:7.2f} s  {n / par:9,.0f} points/s")
    print(f"speed-up: {seq / par:.2f}x")


if __name__ == "__main__":
    main()
