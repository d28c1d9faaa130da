"""Incremental sync speed (issue #10): sync vs the source's plain read vs a full re-migrate, same run.

    python bench/bench_sync.py [--n 1000000] [--dim 384] [--changed 0.01] [--deleted 0.001] [--kind parquet]
                               [--repeat 3] [--index-n 100000] [--uuid-n 20000] [--no-remigrate]

A Parquet source (or ``--kind npy-matrix``: a .npy matrix + ids + payloads JSONL) of N x DIM
float32 vectors with a small payload per row (integer ids) is migrated into embedded Qdrant Edge.
Then 1% of the rows get a new vector or payload and 0.1% are deleted, and on the changed source:

* ``plain read``: iterating the source's batches (of ``READ_BATCH`` records, as sync reads), nothing
  else: the floor for any full scan;
* ``sync``: ``cortex.api.sync`` (read, validate, hash, compare with the state, upsert the changed
  rows, delete the gone ones, write the new state, flush and close the shard);
* ``re-migrate, load only``: ``cortex.api.migrate(..., build_index=False)`` of the changed source into
  a new collection: the lower bound of a re-migration (the collection cannot serve well yet);
* ``--index-n M`` (0: skipped): the same cycle at M rows, where the re-migrate is a real one,
  ``migrate`` with its default HNSW build (what a re-migration costs before it can serve); its sync
  is timed at M too, so that ratio compares like with like.  (An HNSW build of 1M x 384 takes hours
  on two shared cores, hence the smaller M.)

Read and sync are run ``--repeat`` times (the collection and its state restored from a copy before
each sync); the medians are compared, wall and CPU (``process_time``: every thread of the process).

Goals: sync <= 1.5x the plain read, >= 10x faster than re-migrating.  Also printed: the state's
bytes per point, for integer ids (this source) and for UUID ids (``--uuid-n`` rows with UUID ids,
migrated and synced the same way).  The load average is printed beside each figure: the machine
is shared.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np


def load() -> str:
    return "load " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def write_source(d: Path, kind: str, x: np.ndarray, ids: np.ndarray | list[str], titles: list[str],
                 nums: np.ndarray) -> str:
    d.mkdir(parents=True, exist_ok=True)
    if kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        p = d / "src.parquet"
        pq.write_table(pa.table({"id": pa.array(ids, pa.int64() if isinstance(ids, np.ndarray) else pa.string()),
                                 "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), x.shape[1]),
                                 "title": titles, "n": pa.array(nums, pa.int32())}), p, row_group_size=50_000)
        return str(p)
    import orjson

    np.save(d / "src.npy", x)
    np.save(d / "ids.npy", ids)
    with open(d / "meta.jsonl", "wb") as f:
        for t, k in zip(titles, nums.tolist(), strict=True):
            f.write(orjson.dumps({"title": t, "n": k}) + b"\n")
    return str(d / "src.npy")


class Cycle:
    """Source v1 migrated into collection ``c``; v2 = v1 with the changes."""

    def __init__(self, root: Path, n: int, dim: int, changed: float, deleted: float, kind: str,
                 uuid_ids: bool = False) -> None:
        from cortex import api

        self.root, self.kind = root, kind
        rng = np.random.default_rng(0)
        x = rng.standard_normal((n, dim), dtype=np.float32)
        ids: np.ndarray | list[str] = np.arange(n, dtype=np.int64)
        if uuid_ids:
            ids = [str(uuid.UUID(int=int(k))) for k in rng.integers(0, 2**63, size=n)]
        titles = [f"doc {i}" for i in range(n)]
        self.kw = dict(path=str(root / "q"), state_dir=str(root / ".cortex"))
        nums = np.arange(n) % 1000
        src1 = write_source(root / "v1", kind, x, ids, titles, nums)
        t = time.perf_counter()
        api.migrate(src1, "c", options=self.opts(root / "v1"), build_index=False, **self.kw)
        self.migrate_s = time.perf_counter() - t
        # half of the changed rows get a new vector, half a new payload; some rows are deleted
        self.n_changed, self.n_deleted = int(n * changed), int(n * deleted)
        pick = rng.choice(n, size=self.n_changed + self.n_deleted, replace=False)
        vec_rows, pl_rows, gone = pick[: self.n_changed // 2], pick[self.n_changed // 2: self.n_changed], \
            pick[self.n_changed:]
        x[vec_rows] += 0.25
        for i in pl_rows.tolist():
            titles[i] = f"edited {i}"
        keep = np.ones(n, bool)
        keep[gone] = False
        kept_ids = ids[keep] if isinstance(ids, np.ndarray) else [i for i, k in zip(ids, keep, strict=True) if k]
        self.src2 = write_source(root / "v2", kind, x[keep], kept_ids,
                                 [t_ for t_, k in zip(titles, keep, strict=True) if k], nums[keep])
        self.n_rows = int(keep.sum())

    def opts(self, d: Path):  # noqa: ANN201
        from cortex.sources import SourceOptions

        return SourceOptions(ids=str(d / "ids.npy"), payloads=str(d / "meta.jsonl")) \
            if self.kind == "npy-matrix" else None

    def read(self) -> tuple[float, float]:
        """(wall, CPU) seconds of the plain read."""
        from cortex.cutover.sync import READ_BATCH
        from cortex.sources import open_source

        c, t = time.process_time(), time.perf_counter()
        with open_source(self.src2, None, self.opts(self.root / "v2")) as s:
            n_read = sum(len(b) for b in s.batches(READ_BATCH))  # the batch size sync reads with
        assert n_read == self.n_rows
        return time.perf_counter() - t, time.process_time() - c

    def save(self) -> None:
        """Keep a copy of the collection and its state as migrated (each repeat syncs from there)."""
        for d in ("q", ".cortex"):
            shutil.copytree(self.root / d, self.root / f"{d}.orig")
        os.sync()

    def restore(self) -> None:
        for d in ("q", ".cortex"):
            shutil.rmtree(self.root / d)
            shutil.copytree(self.root / f"{d}.orig", self.root / d)
        os.sync()  # the copy's writeback does not land inside the timed runs

    def sync(self):  # noqa: ANN201
        """(wall, CPU, summary) of one sync of the changed source."""
        from cortex import api

        c, t = time.process_time(), time.perf_counter()
        s = api.sync(self.src2, "c", options=self.opts(self.root / "v2"), **self.kw)
        sec, cpu = time.perf_counter() - t, time.process_time() - c
        assert (s.added, s.changed, s.deleted) == (0, self.n_changed, self.n_deleted), s
        return sec, cpu, s

    def remigrate(self, build_index: bool, name: str = "c2") -> float:
        from cortex import api

        t = time.perf_counter()
        m = api.migrate(self.src2, name, options=self.opts(self.root / "v2"), build_index=build_index, **self.kw)
        sec = time.perf_counter() - t
        assert m.written == self.n_rows
        return sec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--changed", type=float, default=0.01)
    ap.add_argument("--deleted", type=float, default=0.001)
    ap.add_argument("--kind", choices=("parquet", "npy-matrix"), default="parquet")
    ap.add_argument("--index-n", type=int, default=0, help="Also run the cycle at this many rows with a real "
                    "re-migrate (load + HNSW build); 0 skips it.")
    ap.add_argument("--uuid-n", type=int, default=20_000, help="Rows of the UUID-id state measurement (0 skips).")
    ap.add_argument("--repeat", type=int, default=3, help="Read + sync this many times (the collection and "
                    "its state restored from a copy before each sync); medians printed.")
    ap.add_argument("--no-remigrate", action="store_true", help="Skip the load-only re-migrate at --n.")
    ap.add_argument("--keep", action="store_true", help="Keep the scratch directory.")
    a = ap.parse_args()

    base = Path(tempfile.mkdtemp(prefix="bench_sync_"))
    try:
        c = Cycle(base / "main", a.n, a.dim, a.changed, a.deleted, a.kind)
        print(f"initial migrate of {a.n:,} x {a.dim} ({a.kind}, load only): {c.migrate_s:.1f}s  [{load()}]")
        print(f"changed source: {c.n_rows:,} rows ({c.n_changed:,} changed: half vectors, half payloads; "
              f"{c.n_deleted:,} deleted)")
        reads, syncs = [], []
        if a.repeat > 1:
            c.save()
        for r in range(a.repeat):
            if r:
                c.restore()
            reads.append(c.read())
            print(f"  run {r + 1}: plain read {reads[-1][0]:6.2f}s (CPU {reads[-1][1]:6.2f}s)  [{load()}]")
            *t_sync, s = c.sync()
            syncs.append(tuple(t_sync))
            print(f"  run {r + 1}: sync       {syncs[-1][0]:6.2f}s (CPU {syncs[-1][1]:6.2f}s)  changed {s.changed:,} "
                  f"deleted {s.deleted:,} unchanged {s.unchanged:,}  [{load()}]")
        read_s, read_cpu = (float(np.median([x[i] for x in reads])) for i in (0, 1))
        sync_s, sync_cpu = (float(np.median([x[i] for x in syncs])) for i in (0, 1))
        best = min(x[0] for x in syncs) / min(x[0] for x in reads)
        print(f"plain read (median of {a.repeat})  {read_s:8.2f}s  CPU {read_cpu:6.2f}s")
        print(f"sync (median of {a.repeat})        {sync_s:8.2f}s  CPU {sync_cpu:6.2f}s")
        print(f"sync / plain read = {sync_s / read_s:.2f}x wall, medians (goal <= 1.5x); best / best {best:.2f}x; "
              f"CPU {sync_cpu / read_cpu:.2f}x")
        print(f"state, integer ids: {s.state_bytes:,} bytes for {s.state_points:,} points = "
              f"{s.state_bytes / max(1, s.state_points):.2f} bytes per point")
        if not a.no_remigrate:
            rm_s = c.remigrate(build_index=False)
            print(f"re-migrate, load only    {rm_s:8.2f}s  (no HNSW build: a lower bound)  [{load()}]")
            print(f"re-migrate (load only) / sync = {rm_s / sync_s:.1f}x (goal >= 10x)")
        shutil.rmtree(base / "main", ignore_errors=True)
        if a.uuid_n:
            u = Cycle(base / "uuid", a.uuid_n, a.dim, a.changed, a.deleted, "parquet", uuid_ids=True)
            *_, su = u.sync()
            print(f"state, UUID ids: {su.state_bytes:,} bytes for {su.state_points:,} points = "
                  f"{su.state_bytes / max(1, su.state_points):.2f} bytes per point")
            shutil.rmtree(base / "uuid", ignore_errors=True)
        if a.index_n:
            ix = Cycle(base / "index", a.index_n, a.dim, a.changed, a.deleted, a.kind)
            ix_read, _ = ix.read()
            ix_sync, _, _ = ix.sync()
            print(f"at {a.index_n:,} rows: plain read {ix_read:.2f}s, sync {ix_sync:.2f}s ({ix_sync / ix_read:.2f}x)"
                  f"  [{load()}]")
            ix_load = ix.remigrate(build_index=False)
            print(f"at {a.index_n:,} rows: re-migrate, load only {ix_load:.2f}s = {ix_load / ix_sync:.1f}x sync"
                  f"  [{load()}]")
            ix_full = ix.remigrate(build_index=True, name="c3")
            print(f"at {a.index_n:,} rows: re-migrate with its default HNSW build {ix_full:.2f}s = "
                  f"{ix_full / ix_sync:.1f}x sync (goal >= 10x)  [{load()}]")
    finally:
        if not a.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
