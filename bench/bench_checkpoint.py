"""What checkpointing costs (issue #3): the same migration with and without it, embedded target.

    python bench/bench_checkpoint.py [--points 200000] [--dim 384] [--batch-size 500] [--repeat 3] [--dir DIR]

A .npy matrix (no payloads: the smallest work per batch, so the largest relative overhead)
is migrated into a fresh Qdrant Edge collection, the final HNSW build left out (it does not
depend on checkpointing and would dominate the time).  Variants, run interleaved ``--repeat``
times, median reported:

- ``baseline``: ``pipeline.run`` alone: no state store, no lock, no fingerprint, no
  checkpoint, no seen-ids log (nothing that makes a run resumable);
- ``checkpoint``: ``cortex.api.migrate`` as the CLI runs it: fingerprint, locks, a checkpoint
  at most every second (default), seen-ids log appended at every batch;
- ``checkpoint-every-batch``: the same with ``checkpoint_seconds=0`` (a SQLite commit per batch);
- ``checkpoint+fsync``: the default, plus a shard flush (fsync) before each save: what
  power-loss-proof checkpoints would cost (not what Cortex does; see ``cortex.state``).

Goal: ``checkpoint`` costs < 5% of the baseline's throughput.  Wall time of each call,
source and target opening included.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def write_matrix(path: Path, n: int, dim: int) -> None:
    rng = np.random.default_rng(0)
    m = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
    for lo in range(0, n, 50_000):
        hi = min(n, lo + 50_000)
        m[lo:hi] = rng.standard_normal((hi - lo, dim), dtype=np.float32)
    m.flush()
    del m


def baseline(npy: Path, root: Path, bs: int) -> float:
    from cortex.pipeline import PipelineOptions, run
    from cortex.sources import open_source
    from cortex.targets.edge import EdgeTarget

    t0 = time.perf_counter()
    with open_source(str(npy)) as src, EdgeTarget(root / "qd") as tgt:
        s = run(src, tgt, "c", PipelineOptions(batch_size=bs, build_index=False))
    assert s.written == s.read
    return time.perf_counter() - t0


def checkpointed(npy: Path, root: Path, bs: int, every_batch: bool = False, fsync: bool = False) -> float:
    from cortex import api
    from cortex.targets.edge import EdgeTarget

    original = api._Checkpointer.save

    def save(self) -> None:  # the fsync variant: flush the shard before each checkpoint save
        if self.rec.phase in ("loading", "indexing"):  # the collection exists
            tgt.flush("c")
        original(self)

    if fsync:
        api._Checkpointer.save = save
    try:
        t0 = time.perf_counter()
        with EdgeTarget(root / "qd") as tgt:
            s = api.migrate(str(npy), "c", target=tgt, batch_size=bs, state_dir=str(root / "state"),
                            build_index=False, checkpoint_seconds=0 if every_batch else 1.0)
        elapsed = time.perf_counter() - t0
    finally:
        api._Checkpointer.save = original
    assert s.written == s.read and s.status == "done"
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", help="work directory (default: a temporary one)")
    a = ap.parse_args()
    work = Path(a.dir) if a.dir else Path(tempfile.mkdtemp(prefix="cortex-bench-ckpt-"))
    work.mkdir(parents=True, exist_ok=True)
    npy = work / f"m-{a.points}x{a.dim}.npy"
    if not npy.exists():
        write_matrix(npy, a.points, a.dim)
    variants = {
        "baseline": lambda root: baseline(npy, root, a.batch_size),
        "checkpoint": lambda root: checkpointed(npy, root, a.batch_size),
        "checkpoint-every-batch": lambda root: checkpointed(npy, root, a.batch_size, every_batch=True),
        "checkpoint+fsync": lambda root: checkpointed(npy, root, a.batch_size, fsync=True),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    print(f"{a.points:,} x {a.dim} float32 .npy -> embedded Qdrant Edge, batch size {a.batch_size}, "
          f"{a.repeat} interleaved runs each (index build excluded)")
    warm = work / "warm-up"  # imports, page cache: the first run of anything is slower
    shutil.rmtree(warm, ignore_errors=True)
    warm.mkdir()
    checkpointed(npy, warm, a.batch_size)
    shutil.rmtree(warm, ignore_errors=True)
    for i in range(a.repeat):
        for name, fn in variants.items():
            root = work / f"run-{name}-{i}"
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir()
            try:
                times[name].append(fn(root))
            finally:
                shutil.rmtree(root, ignore_errors=True)
            print(f"  run {i + 1} {name:24s} {times[name][-1]:7.2f} s  {a.points / times[name][-1]:9,.0f} pts/s",
                  flush=True)
    base = a.points / statistics.median(times["baseline"])
    print(f"\n{'variant':24s} {'median pts/s':>12s} {'overhead':>9s}")
    for name, ts in times.items():
        rate = a.points / statistics.median(ts)
        print(f"{name:24s} {rate:12,.0f} {100 * (1 - rate / base):8.1f}%")
    over = 100 * (1 - a.points / statistics.median(times["checkpoint"]) / base)
    print(f"\ncheckpointing overhead (default, 1 s): {over:.1f}% of throughput (goal < 5%): "
          f"{'OK' if over < 5 else 'ABOVE GOAL'}")
    if not a.dir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
