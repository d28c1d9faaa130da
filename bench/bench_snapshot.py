"""Snapshot, restore and Parquet export on the embedded target, against same-run baselines.

    python bench/bench_snapshot.py [--points 20000] [--dim 768]

Loads N x D float32 points with small payloads into an embedded collection, then measures:

* ``snapshot create`` (sparse shard-snapshot tar + sha256): seconds and archive size, against
  the baseline of Python's ``tarfile`` over the same shard directory (holes read as zeros);
* ``snapshot restore`` (sha256 check + ``EdgeShard.unpack_snapshot`` + load): seconds;
* ``export --format parquet`` vs the JSONL export of the same source: bytes per point and seconds.
"""

from __future__ import annotations

import argparse
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=20_000)
    ap.add_argument("--dim", type=int, default=768)
    a = ap.parse_args()

    from cortex import api

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rng = np.random.default_rng(0)
        np.save(root / "v.npy", rng.standard_normal((a.points, a.dim), dtype=np.float32))
        with open(root / "p.jsonl", "wb") as f:
            for i in range(a.points):
                f.write(orjson.dumps({"workspace_id": f"ws-{i % 5}", "n": i, "title": f"doc {i}"}) + b"\n")
        from cortex.sources import SourceOptions

        opts = SourceOptions(payloads=str(root / "p.jsonl"))
        store = root / "qdrant_storage"
        api.migrate(str(root / "v.npy"), "c", path=str(store), options=opts)
        shard_disk = sum(f.stat().st_size for f in (store / "c").rglob("*") if f.is_file())

        t0 = time.perf_counter()
        snap = api.snapshot_create("c", path=str(store), output=str(root / "c.snapshot"))
        t_snap = time.perf_counter() - t0
        t0 = time.perf_counter()
        with tarfile.open(root / "plain.tar", "w") as tar:
            tar.add(str(store / "c"), "c")
        t_plain = time.perf_counter() - t0
        plain = (root / "plain.tar").stat().st_size
        (root / "plain.tar").unlink()

        t0 = time.perf_counter()
        r = api.snapshot_restore(snap.location, collection="c2", path=str(store))
        t_restore = time.perf_counter() - t0
        assert r["points"] == a.points

        t0 = time.perf_counter()
        api.export(str(root / "v.npy"), str(root / "e.jsonl"), options=opts)
        t_jsonl = time.perf_counter() - t0
        t0 = time.perf_counter()
        api.export(str(root / "v.npy"), str(root / "e.parquet"), options=opts, format="parquet")
        t_parquet = time.perf_counter() - t0
        js, pq = (root / "e.jsonl").stat().st_size, (root / "e.parquet").stat().st_size

    mb = 1 << 20
    print(f"{a.points:,} x {a.dim} points; shard directory {shard_disk / mb:.1f} MB (apparent size)")
    print(f"snapshot create: {t_snap:.2f} s, archive {snap.size / mb:.1f} MB | baseline tarfile of the shard: "
          f"{t_plain:.2f} s, {plain / mb:.1f} MB ({plain / snap.size:.1f}x larger)")
    print(f"snapshot restore (sha256 + unpack_snapshot + load): {t_restore:.2f} s")
    print(f"export: JSONL {js / a.points:,.0f} B/point in {t_jsonl:.2f} s | Parquet {pq / a.points:,.0f} B/point "
          f"in {t_parquet:.2f} s ({js / pq:.1f}x smaller)")


if __name__ == "__main__":
    main()
