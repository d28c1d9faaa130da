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

Goal: ``checkpoint`` costs < 5% of the baseline's throughput.  Each round runs every variant
(order alternating between rounds) and each call is timed whole (source and target opening
included), by wall clock and by the process's CPU time (all threads; far less disturbed by
other load on a shared machine).  The overhead is the median over rounds of the ratio to the
same round's baseline.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench_data import write_matrix

FLUSH_SECONDS: list[float] = []  # time the committing thread spent in shard flushes (fsync variant)




def baseline(npy: Path, root: Path, bs: int) -> tuple[float, float]:
    from cortex.pipeline import PipelineOptions, run
    from cortex.sources import open_source
    from cortex.targets.edge import EdgeTarget

    t0, c0 = time.perf_counter(), time.process_time()
    with open_source(str(npy)) as src, EdgeTarget(root / "qd") as tgt:
        s = run(src, tgt, "c", PipelineOptions(batch_size=bs, build_index=False))
    assert s.written == s.read
    return time.perf_counter() - t0, time.process_time() - c0


def checkpointed(npy: Path, root: Path, bs: int, every_batch: bool = False,
                 fsync: bool = False) -> tuple[float, float]:
    from cortex import api
    from cortex.targets.edge import EdgeTarget

    original = api._Checkpointer.save

    def save(self) -> None:  # the fsync variant: flush the shard before each checkpoint save
        if self.rec.phase in ("loading", "indexing"):  # the collection exists
            t = time.perf_counter()
            tgt.flush("c")
            FLUSH_SECONDS.append(time.perf_counter() - t)
        original(self)

    if fsync:
        api._Checkpointer.save = save
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        with EdgeTarget(root / "qd") as tgt:
            s = api.migrate(str(npy), "c", target=tgt, batch_size=bs, state_dir=str(root / "state"),
                            build_index=False, checkpoint_seconds=0 if every_batch else 1.0)
        elapsed = time.perf_counter() - t0, time.process_time() - c0
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
    wall: dict[str, list[float]] = {k: [] for k in variants}
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    print(f"{a.points:,} x {a.dim} float32 .npy -> embedded Qdrant Edge, batch size {a.batch_size}, "
          f"{a.repeat} rounds (index build excluded)")
    warm = work / "warm-up"  # imports, page cache: the first run of anything is slower
    shutil.rmtree(warm, ignore_errors=True)
    warm.mkdir()
    checkpointed(npy, warm, a.batch_size)
    shutil.rmtree(warm, ignore_errors=True)
    names = list(variants)
    for i in range(a.repeat):
        for name in names if i % 2 == 0 else names[::-1]:  # alternate the order: drift hits all alike
            root = work / f"run-{name}-{i}"
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir()
            try:
                w, c = variants[name](root)
            finally:
                shutil.rmtree(root, ignore_errors=True)
            wall[name].append(w)
            cpu[name].append(c)
            print(f"  round {i + 1} {name:24s} {w:6.2f} s wall {a.points / w:9,.0f} pts/s   {c:6.2f} s CPU", flush=True)

    def overhead(t: dict[str, list[float]], name: str) -> float:
        """Median over rounds of the time ratio to the baseline of the same round, as % of throughput lost."""
        return 100 * (1 - statistics.median(b / v for b, v in zip(t["baseline"], t[name], strict=True)))

    print(f"\n{'variant':24s} {'median pts/s':>12s} {'throughput lost (wall)':>23s} {'(CPU time)':>11s}")
    for name in names:
        rate = a.points / statistics.median(wall[name])
        print(f"{name:24s} {rate:12,.0f} {overhead(wall, name):22.1f}% {overhead(cpu, name):10.1f}%")
    flushed = sum(FLUSH_SECONDS) / a.repeat
    print(f"\ncheckpoint+fsync: the committing thread spent {flushed:.2f} s per run in shard flushes, "
          f"{100 * flushed / statistics.median(wall['checkpoint+fsync']):.0f}% of the run: batches are not "
          "handed to the writers meanwhile")
    over_wall, over_cpu = overhead(wall, "checkpoint"), overhead(cpu, "checkpoint")
    print(f"\ncheckpointing (default: at most every 1 s) costs {over_wall:.1f}% of throughput by wall time, "
          f"{over_cpu:.1f}% by CPU time (goal < 5%): {'OK' if max(over_wall, over_cpu) < 5 else 'ABOVE GOAL'}")
    if not a.dir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
