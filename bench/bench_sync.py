"""Incremental sync speed (issue #10): sync vs the source's plain read vs a full re-migrate, same run.

    python bench/bench_sync.py [--n 1000000] [--dim 384] [--changed 0.01] [--deleted 0.001] [--kind parquet]

A Parquet source (or ``--kind npy-matrix``: a .npy matrix + ids + payloads JSONL) of N x DIM
float32 vectors with a small payload per row is migrated into embedded Qdrant Edge (the index
build skipped: the load is what is compared).  Then 1% of the rows get a new vector or payload
and 0.1% are deleted, and three things are timed on the changed source:

* ``plain read``: iterating the source's batches (of ``READ_BATCH`` records, as sync reads), nothing else
  (the floor for any full scan);
* ``sync``: ``cortex.api.sync`` (read, validate, hash, compare with the state, upsert the changed
  rows, delete the gone ones, write the new state);
* ``re-migrate``: ``cortex.api.migrate`` of the changed source into a new collection.

Goals: sync <= 1.5x the plain read, >= 10x faster than re-migrating.  Also printed: the state's
bytes per point.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def write_source(d: Path, kind: str, x: np.ndarray, ids: np.ndarray, titles: list[str]) -> str:
    if kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        p = d / "src.parquet"
        pq.write_table(pa.table({"id": pa.array(ids, pa.int64()),
                                 "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), x.shape[1]),
                                 "title": titles, "n": pa.array(ids % 1000, pa.int32())}), p, row_group_size=50_000)
        return str(p)
    import orjson

    np.save(d / "src.npy", x)
    np.save(d / "ids.npy", ids)
    with open(d / "meta.jsonl", "wb") as f:
        for i, t in zip(ids.tolist(), titles, strict=True):
            f.write(orjson.dumps({"title": t, "n": i % 1000}) + b"\n")
    return str(d / "src.npy")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--changed", type=float, default=0.01)
    ap.add_argument("--deleted", type=float, default=0.001)
    ap.add_argument("--kind", choices=("parquet", "npy-matrix"), default="parquet")
    ap.add_argument("--index", action="store_true", help="The re-migrate also builds the HNSW index (as a real "
                    "re-migration must before it serves queries; sync needs no rebuild).")
    ap.add_argument("--keep", action="store_true", help="Keep the scratch directory.")
    a = ap.parse_args()

    from cortex import api
    from cortex.sources import SourceOptions, open_source

    root = Path(tempfile.mkdtemp(prefix="bench_sync_"))
    try:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((a.n, a.dim), dtype=np.float32)
        ids = np.arange(a.n, dtype=np.int64)
        titles = [f"doc {i}" for i in range(a.n)]
        (root / "v1").mkdir()
        (root / "v2").mkdir()
        opts = lambda d: SourceOptions(ids=str(d / "ids.npy"), payloads=str(d / "meta.jsonl")) \
            if a.kind == "npy-matrix" else None  # noqa: E731
        src1 = write_source(root / "v1", a.kind, x, ids, titles)
        kw = dict(path=str(root / "q"), state_dir=str(root / ".cortex"), build_index=False)
        t = time.perf_counter()
        api.migrate(src1, "c", options=opts(root / "v1"), **kw)
        print(f"initial migrate of {a.n:,} x {a.dim}: {time.perf_counter() - t:.1f}s")
        # the changes: half of the changed rows get a new vector, half a new payload; some rows are deleted
        n_changed, n_deleted = int(a.n * a.changed), int(a.n * a.deleted)
        pick = rng.choice(a.n, size=n_changed + n_deleted, replace=False)
        vec_rows, pl_rows, gone = pick[: n_changed // 2], pick[n_changed // 2: n_changed], pick[n_changed:]
        x[vec_rows] += 0.25
        for i in pl_rows.tolist():
            titles[i] = f"edited {i}"
        keep = np.ones(a.n, bool)
        keep[gone] = False
        kept_titles = [t_ for t_, k in zip(titles, keep, strict=True) if k]
        src2 = write_source(root / "v2", a.kind, x[keep], ids[keep], kept_titles)
        del x
        # the collection's state was made from src1; sync reads src2 (another path, the same kind of source)
        from cortex.cutover.sync import READ_BATCH

        t = time.perf_counter()
        with open_source(src2, None, opts(root / "v2")) as s:
            n_read = sum(len(b) for b in s.batches(READ_BATCH))  # the batch size sync reads with
        read_s = time.perf_counter() - t
        t = time.perf_counter()
        s = api.sync(src2, "c", options=opts(root / "v2"), path=kw["path"], state_dir=kw["state_dir"])
        sync_s = time.perf_counter() - t
        assert (s.added, s.changed, s.deleted) == (0, n_changed, n_deleted), s
        t = time.perf_counter()
        m = api.migrate(src2, "c2", options=opts(root / "v2"), **{**kw, "build_index": a.index})
        remigrate_s = time.perf_counter() - t
        assert m.written == n_read
        print(f"source: {a.kind}, {n_read:,} rows after the change ({n_changed:,} changed, {n_deleted:,} deleted)")
        print(f"plain read  {read_s:8.2f}s")
        print(f"sync        {sync_s:8.2f}s   changed {s.changed:,}  deleted {s.deleted:,}  unchanged {s.unchanged:,}")
        print(f"re-migrate  {remigrate_s:8.2f}s   ({'load + HNSW build' if a.index else 'load only, no index build'})")
        print(f"sync / plain read = {sync_s / read_s:.2f}x (goal <= 1.5x); "
              f"re-migrate / sync = {remigrate_s / sync_s:.1f}x (goal >= 10x)")
        print(f"state: {s.state_bytes:,} bytes for {s.state_points:,} points = "
              f"{s.state_bytes / max(1, s.state_points):.0f} bytes per point")
    finally:
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
