"""Reader throughput: FAISS Flat, FAISS IVFFlat (custom ids), hnswlib, vs the migration guide's export loop.

    python bench/bench_readers.py [--n 200000] [--dim 768] [--batch-size 500] [--seed-n 20000]
                                  [--only faiss-flat,faiss-ivf,hnswlib,seed] [--hnsw-n N]

Random float32 vectors are generated here and written as real index files into a temp dir;
each reader then streams every vector into a discarding sink (iterate the batches and count),
timed from opening the source to the last batch (warm page cache: the files were just
written).  The guide baseline is the guide's ``export_faiss_to_jsonl`` loop
(``index.reconstruct(i).tolist()`` + ``json.dumps`` per vector, written to /dev/null), timed on
``--seed-n`` vectors of the same Flat index.  Target: every reader >= 200k vectors/s and the
FAISS reader >= 50x the guide loop.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def build_faiss_flat(root: Path, x: np.ndarray, args: argparse.Namespace) -> tuple[str, str]:
    import faiss

    index = faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    path = root / "flat.index"
    faiss.write_index(index, str(path))
    return str(path), "IndexFlatL2"


def build_faiss_ivf(root: Path, x: np.ndarray, args: argparse.Namespace) -> tuple[str, str]:
    import faiss

    nlist = 256
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(x.shape[1]), x.shape[1], nlist)
    index.cp.niter = 4  # a few k-means rounds: the reader does not care about centroid quality
    index.train(x[: min(len(x), 40 * nlist)])
    index.add_with_ids(x, np.arange(len(x), dtype=np.int64) * 3 + 7)
    path = root / "ivf.index"
    faiss.write_index(index, str(path))
    return str(path), f"IndexIVFFlat nlist={nlist}, add_with_ids (custom ids)"


def build_hnswlib(root: Path, x: np.ndarray, args: argparse.Namespace) -> tuple[str, str]:
    import hnswlib

    n = min(len(x), args.hnsw_n) if args.hnsw_n else len(x)
    index = hnswlib.Index(space="l2", dim=x.shape[1])
    index.init_index(max_elements=n, M=4, ef_construction=8, random_seed=1)
    t0 = time.perf_counter()
    index.add_items(x[:n], np.arange(n), num_threads=-1)
    path = root / "hnsw.bin"
    index.save_index(str(path))
    return str(path), f"M=4, ef_construction=8, {n:,} points built in {time.perf_counter() - t0:.0f}s"


# name -> (builder, source kind, SourceOptions kwargs)
READERS: dict[str, tuple[Callable[[Path, np.ndarray, argparse.Namespace], tuple[str, str]], str, dict]] = {
    "faiss-flat": (build_faiss_flat, "faiss", {}),
    "faiss-ivf": (build_faiss_ivf, "faiss", {}),
    "hnswlib": (build_hnswlib, "hnswlib", {"distance": "euclid"}),
    # LEAD: add the Parquet reader here, e.g.
    #   "parquet": (build_parquet, "parquet", {}),
    # with build_parquet(root, x, args) writing root / "vectors.parquet" and returning (path, note);
    # then `--only parquet` runs it alone, and the default run includes it.
}


def read_all(path: str, kind: str, opts: dict, batch_size: int) -> tuple[int, float, float]:
    """(vectors, wall seconds, CPU seconds) to stream ``path`` into a discarding sink."""
    from cortex.sources import SourceOptions, open_source

    t0, c0 = time.perf_counter(), time.process_time()
    n = 0
    with open_source(path, kind, SourceOptions(**opts)) as src:
        src.info()
        for batch in src.batches(batch_size):
            n += len(batch.vectors)
    return n, time.perf_counter() - t0, time.process_time() - c0


def seed_loop(path: str, limit: int) -> tuple[int, float]:
    """The guide's export_faiss_to_jsonl, verbatim but for the row limit and /dev/null output."""
    import faiss

    t0 = time.perf_counter()
    index = faiss.read_index(path)
    metadata: dict = {}
    n = min(limit, index.ntotal)
    with open("/dev/null", "w") as f:
        for i in range(n):
            vector = index.reconstruct(i).tolist()
            point = {"id": str(i), "vector": vector, "payload": metadata.get(str(i), {})}
            f.write(json.dumps(point) + "\n")
    return n, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000, help="vectors per index")
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--batch-size", type=int, default=500, help="reader batch size (the CLI default is 500)")
    ap.add_argument("--seed-n", type=int, default=20_000, help="vectors for the guide baseline loop")
    ap.add_argument("--hnsw-n", type=int, default=0, help="build hnswlib over only this many vectors (0 = all)")
    ap.add_argument("--only", default="", help=f"comma list of: {', '.join([*READERS, 'seed'])}")
    args = ap.parse_args()
    only = [s.strip() for s in args.only.split(",") if s.strip()] or [*READERS, "seed"]
    unknown = set(only) - {*READERS, "seed"}
    if unknown:
        ap.error(f"unknown --only {', '.join(sorted(unknown))}")
    if "seed" in only and "faiss-flat" not in only:
        only.insert(0, "faiss-flat")  # the baseline reads the Flat file

    import faiss

    print(f"faiss {faiss.__version__}, {args.n:,} x {args.dim} float32, batch size {args.batch_size}")
    x = np.random.default_rng(0).standard_normal((args.n, args.dim), dtype=np.float32)
    rows: list[tuple[str, int, float, float, str]] = []
    rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="cortex-bench-") as d:
        root = Path(d)
        paths: dict[str, str] = {}
        for name in only:
            if name == "seed":
                continue
            build, kind, opts = READERS[name]
            t0 = time.perf_counter()
            path, note = build(root, x, args)
            paths[name] = path
            size = Path(path).stat().st_size / 2**20
            print(f"built {name}: {note} ({size:,.0f} MiB, {time.perf_counter() - t0:.1f}s)")
            n, wall, cpu = read_all(path, kind, opts, args.batch_size)
            rates[name] = n / wall
            rows.append((name, n, wall, cpu, note))
        if "seed" in only:
            n, wall = seed_loop(paths["faiss-flat"], args.seed_n)
            rates["seed"] = n / wall
            rows.append(("guide loop", n, wall, wall, "reconstruct(i).tolist() + json.dumps, to /dev/null"))

    print()
    print(f"{'reader':<12} {'vectors':>9} {'seconds':>8} {'cpu s':>7} {'vectors/s':>11}  target")
    for name, n, wall, cpu, _ in rows:
        key = "seed" if name == "guide loop" else name
        target = "" if key == "seed" else ("ok" if rates[key] >= 200_000 else "BELOW 200k/s")
        print(f"{name:<12} {n:>9,} {wall:>8.2f} {cpu:>7.2f} {rates[key]:>11,.0f}  {target}")
    if "seed" in rates:
        for name in ("faiss-flat", "faiss-ivf"):
            if name in rates:
                ratio = rates[name] / rates["seed"]
                verdict = "ok" if ratio >= 50 else "BELOW 50x"
                print(f"speedup {name} / guide loop: {ratio:,.0f}x  {verdict}")


if __name__ == "__main__":
    main()
