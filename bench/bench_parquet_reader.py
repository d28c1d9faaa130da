"""Throughput of the Parquet reader: 200k x 768 float32 vectors into a discarding sink.

    python bench/bench_parquet_reader.py [--rows 200000] [--dim 768] [--batch-size 4096]

Writes the file into a temp dir (fixed-size-list vectors, int64 ids, one short text column),
then times ``ParquetSource.batches`` end to end and prints vectors/s (target >= 200k/s).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def write(path: Path, rows: int, dim: int, list_type: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    writer = None
    chunk = 50_000
    for lo in range(0, rows, chunk):
        n = min(chunk, rows - lo)
        flat = pa.array(rng.random(n * dim, dtype=np.float32))
        if list_type == "fixed":
            vec = pa.FixedSizeListArray.from_arrays(flat, dim)
        else:
            vec = pa.ListArray.from_arrays(pa.array(np.arange(0, (n + 1) * dim, dim, dtype=np.int32)), flat)
        t = pa.table({"id": pa.array(np.arange(lo, lo + n, dtype=np.int64)), "vector": vec,
                      "title": pa.array([f"doc {i}" for i in range(lo, lo + n)])})
        writer = writer or pq.ParquetWriter(path, t.schema)
        writer.write_table(t, row_group_size=chunk)
    assert writer is not None
    writer.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--list-type", choices=["fixed", "list"], default="fixed")
    args = ap.parse_args()

    from cortex.sources.parquet import ParquetSource

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "vectors.parquet"
        t0 = time.perf_counter()
        write(path, args.rows, args.dim, args.list_type)
        print(f"wrote {args.rows} x {args.dim} ({path.stat().st_size / 2**20:.0f} MiB) "
              f"in {time.perf_counter() - t0:.1f}s")
        src = ParquetSource(str(path))
        src.info()
        t0 = time.perf_counter()
        c0 = time.process_time()
        n = 0
        checksum = 0.0
        for b in src.batches(args.batch_size):
            n += len(b)
            checksum += float(b.vectors[0, 0])  # touch the data; the sink discards it
        dt = time.perf_counter() - t0
        cpu = time.process_time() - c0
        assert n == args.rows, (n, args.rows)
        rate = n / dt
        print(f"read {n} vectors in {dt:.2f}s: {rate:,.0f} vectors/s "
              f"({n * args.dim * 4 / dt / 2**20:,.0f} MiB/s) [{'ok' if rate >= 200_000 else 'BELOW'} target 200k/s]; "
              f"process CPU {cpu:.2f}s = {n / cpu:,.0f} vectors per CPU-second (load-independent)")


if __name__ == "__main__":
    main()
