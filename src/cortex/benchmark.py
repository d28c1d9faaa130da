"""The migration guide's search benchmark, plus QPS per concurrency, an hnsw_ef sweep and the old-vs-Qdrant table.

Latency is the wall time of one ``Target.search`` call for one query, as an application in
this process sees it (embedded: the engine runs in-process; server: includes the network).
QPS at concurrency c = queries / wall time with c threads issuing queries back to back.

The ef sweep runs the same queries at each ``hnsw_ef`` and scores recall@limit against
Qdrant's own exact search (``exact=True``) on the same collection, so it isolates the HNSW
approximation from anything the migration did.

With a source, the migration guide's Performance Comparison table is measured here, in this process:
search latency p95 (old system's own search, or exact numpy when it has none), indexing
throughput (points/s to load *and index* the same sample of source vectors into a fresh
store of each kind), memory (growth of this process's resident set, VmRSS, while opening
and querying each system) and storage (bytes on disk).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cortex.errors import SourceError, TargetError
from cortex.ids import DEFAULT_ID_FIELD
from cortex.parity import add_noise, latency_stats, recall_per_query, to_rank
from cortex.seen_ids import id_keys
from cortex.sources.base import Source
from cortex.targets.base import Target

Say = Callable[[str], None]


@dataclass
class BenchmarkResult:
    collection: str
    target: str
    points: int
    dim: int
    distance: str
    indexed_vectors: int | None
    limit: int
    num_queries: int
    queries_how: str
    seed_block: dict[str, Any] = field(default_factory=dict)  # the migration guide's min/max/avg/p50/p95/p99 (ms)
    runs: list[dict[str, Any]] = field(default_factory=list)  # per concurrency: latency stats + qps
    ef_sweep: list[dict[str, Any]] = field(default_factory=list)
    ef_note: str = ""
    source: str | None = None
    comparison: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rss_bytes() -> int:
    """Resident set size of this process (VmRSS from /proc; 0 where unavailable)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def disk_bytes(path: str | Path) -> int | None:
    p = Path(path)
    if not p.exists():
        return None
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def collection_queries(target: Target, collection: str, n: int, dim: int, seed: int, noise: float
                       ) -> tuple[np.ndarray, str]:
    """``n`` stored vectors picked uniformly (reservoir over the ids, then fetched), plus noise."""
    rng = np.random.default_rng(seed)
    picked: list[Any] = []
    seen = 0
    for page in target.scroll(collection, batch_size=10_000, with_vectors=False, with_payload=False):
        for sp in page:
            if len(picked) < n:
                picked.append(sp.id)
            else:
                j = int(rng.integers(0, seen + 1))
                if j < n:
                    picked[j] = sp.id
            seen += 1
    if not picked:
        raise TargetError(f"collection '{collection}' is empty: nothing to benchmark")
    got = target.retrieve(collection, picked, with_vectors=True)
    vecs = np.stack([got[i].vector for i in picked if i in got and got[i].vector is not None])
    if len(vecs) < n:  # fewer points than queries: reuse them (each copy gets its own noise)
        vecs = vecs[np.arange(n) % len(vecs)]
    q = add_noise(vecs, noise, rng)
    return q, (f"{n} vectors sampled uniformly from the collection (seed {seed}), each plus Gaussian noise of "
               f"norm {noise:g} x its own norm")


def random_queries(n: int, dim: int, seed: int) -> tuple[np.ndarray, str]:
    q = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return q, f"{n} random vectors of {dim} dimensions (standard normal, seed {seed}), as in the migration guide"


def _run(target: Target, collection: str, queries: np.ndarray, limit: int, concurrency: int,
         ef: int | None = None) -> tuple[dict[str, Any], list[list[tuple[Any, float]]]]:
    """Every query once, ``concurrency`` threads back to back; latency per query and overall QPS."""
    n = len(queries)
    lat = [0.0] * n
    res: list[Any] = [None] * n
    errors: list[BaseException] = []

    def worker(idx: range) -> None:
        try:
            for i in idx:
                t0 = time.perf_counter()
                res[i] = target.search(collection, queries[i:i + 1], limit, ef=ef)[0]
                lat[i] = time.perf_counter() - t0
        except BaseException as e:  # surfaced after join
            errors.append(e)

    for i in range(min(10, n)):  # warm-up: caches, lazy loads
        target.search(collection, queries[i:i + 1], limit, ef=ef)
    threads = [threading.Thread(target=worker, args=(range(t, n, concurrency),), daemon=True)
               for t in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise errors[0]
    stats = latency_stats(lat)
    stats.update(concurrency=concurrency, qps=round(n / wall, 1) if wall else None, seconds=round(wall, 3))
    return stats, res


def benchmark(target: Target, collection: str, *, num_queries: int = 1000, dimensions: int | None = None,
              limit: int = 10, concurrency: list[int] | None = None, ef: list[int] | None = None,
              source: Source | None = None, seed: int = 0, noise: float = 0.1, build_sample: int = 20_000,
              id_field: str = DEFAULT_ID_FIELD, say: Say | None = None) -> BenchmarkResult:
    """Benchmark ``collection``; see the module docstring for what each number means."""
    t_start = time.perf_counter()
    say = say or (lambda _m: None)
    concurrency = sorted(set(concurrency or [1]))
    if num_queries < 1 or limit < 1 or any(c < 1 for c in concurrency) or any(e < 1 for e in ef or []):
        raise SourceError("--num-queries, --limit, --concurrency and --ef must be positive")
    info = target.collection_info(collection)
    if info is None:
        raise TargetError(f"collection '{collection}' does not exist at {target.location}; "
                          "run `cortex qdrant status` to list collections")
    dim, distance = info.dim or 0, info.distance or "cosine"
    if dimensions is not None and dimensions != dim:
        raise SourceError(f"--dimensions {dimensions}: collection '{collection}' holds {dim}-dim vectors; "
                          f"pass --dimensions {dim} or omit it to sample queries from the collection")
    if dimensions is not None:
        queries, how = random_queries(num_queries, dim, seed)
    else:
        say(f"sampling {num_queries} query vectors from '{collection}' ...")
        queries, how = collection_queries(target, collection, num_queries, dim, seed, noise)
    res = BenchmarkResult(collection=collection, target=target.location, points=info.points, dim=dim,
                          distance=distance, indexed_vectors=info.indexed_vectors, limit=limit,
                          num_queries=num_queries, queries_how=how, source=source.path if source else None)
    for c in concurrency:
        say(f"{num_queries} queries at concurrency {c} ...")
        stats, _ = _run(target, collection, queries, limit, c)
        res.runs.append(stats)
    first = res.runs[0]
    res.seed_block = {k: first.get(k) for k in ("min_ms", "max_ms", "avg_ms", "p50_ms", "p95_ms", "p99_ms")}
    if ef:
        say("exact search for the ef sweep's ground truth ...")
        exact = target.search(collection, queries, limit, exact=True)
        gt_keys = np.zeros((len(exact), limit), dtype=np.uint64)
        gt_rank = np.full((len(exact), limit), -np.inf, dtype=np.float32)
        for i, r in enumerate(exact):
            if r:
                gt_keys[i, :len(r)] = id_keys([p for p, _ in r])
                gt_rank[i, :len(r)] = to_rank(np.asarray([s for _, s in r], dtype=np.float32), distance)
        for e in sorted(set(ef)):
            say(f"hnsw_ef={e} ...")
            stats, out = _run(target, collection, queries, limit, 1, ef=e)
            keys = [id_keys([p for p, _ in r]) for r in out]
            rank = [to_rank(np.asarray([s for _, s in r], dtype=np.float64), distance) for r in out]
            rec = recall_per_query(gt_keys, gt_rank, keys, rank)
            stats.update(ef=e, recall=round(float(rec.mean()), 4), recall_min=round(float(rec.min()), 4))
            res.ef_sweep.append(stats)
        if not info.indexed_vectors:
            res.ef_note = ("The collection has no HNSW index (small, or indexing deferred): every ef searches "
                           "exactly, so recall is 1.0 throughout. Run `cortex qdrant optimize` on a collection "
                           "above the indexing threshold to tune ef.")
        else:
            res.ef_note = (f"Recall@{limit} against Qdrant's exact search on the same {num_queries} queries; "
                           "pick the smallest ef whose recall meets your target.")
    if source is not None:
        res.comparison = _comparison(target, collection, source, queries, limit, res, id_field,
                                     build_sample, distance, dim, say, res.warnings)
    res.seconds = round(time.perf_counter() - t_start, 3)
    return res


# -- old system vs Qdrant -------------------------------------------------------------------------
def _comparison(target: Target, collection: str, source: Source, queries: np.ndarray, limit: int,
                res: BenchmarkResult, id_field: str, build_sample: int, distance: str, dim: int, say: Say,
                warnings: list[str]) -> list[dict[str, Any]]:
    from cortex.parity import exact_search, rank_values

    rows: list[dict[str, Any]] = []
    q_p95 = res.runs[0].get("p95_ms")
    # memory, Qdrant: reopen the collection and run the queries, measuring resident growth
    q_mem = None
    if target.kind == "embedded":
        target.close()
        before = rss_bytes()
        target.collection_info(collection)
        for i in range(min(len(queries), 200)):
            target.search(collection, queries[i:i + 1], limit)
        q_mem = max(0, rss_bytes() - before)
    # old system: its own search, else exact numpy over the vectors held in memory
    say(f"querying the old system ({source.kind}) ...")
    before = rss_bytes()
    old_method = f"{source.kind} native search"
    try:
        source.search(queries[:1], limit)
        old_mem = max(0, rss_bytes() - before)
        lat = []
        for i in range(len(queries)):
            t0 = time.perf_counter()
            source.search(queries[i:i + 1], limit)
            lat.append(time.perf_counter() - t0)
    except NotImplementedError:
        old_method = "exact numpy search (the source has no search of its own)"
        data = exact_search(source, queries[:1], limit, distance, dim, id_field, None, memory_mb=4096)
        if data.matrix is None:
            raise SourceError(f"{source.path}: more than 4 GB of vectors and no search of its own: "
                              "nothing to benchmark on the old side") from None
        old_mem = data.matrix.nbytes
        qp = queries if distance != "cosine" else queries / np.maximum(
            np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
        lat = []
        for i in range(min(len(queries), 100)):
            t0 = time.perf_counter()
            r = rank_values(qp[i:i + 1], data.matrix, distance)[0]
            np.argpartition(-r, min(limit, len(r)) - 1)[:limit]
            lat.append(time.perf_counter() - t0)
        del data
    old_p95 = latency_stats(lat, keep_samples=False).get("p95_ms")
    rows.append(_row("Search latency (P95)", old_p95, q_p95, "ms", lower_better=True,
                     meaning=f"p95 of one query at a time, limit {limit}: old = {old_method}; Qdrant = "
                             f"{target.kind} target.search at concurrency 1"))
    # indexing throughput on the same sample, into fresh stores
    say(f"indexing throughput on a sample of up to {build_sample:,} source vectors ...")
    vecs = _sample_vectors(source, build_sample, dim, id_field)
    q_rate, indexed = _qdrant_build_rate(vecs, distance)
    old_rate, old_how = _old_build_rate(source, vecs, distance)
    q_how = ("upsert + HNSW build (m=16, ef_construct=100)" if indexed else
             "upsert only: the sample is below Qdrant's indexing threshold (10,000 KB), so no HNSW was built")
    rows.append(_row("Indexing throughput", old_rate, q_rate, "points/s", lower_better=False,
                     meaning=f"{len(vecs):,} source vectors loaded and indexed into a fresh, empty store, in this "
                             f"process: Qdrant = embedded shard, {q_how}; old = {old_how}"))
    rows.append(_row("Memory usage", old_mem, q_mem, "bytes", lower_better=True,
                     meaning="growth of this process's resident memory (VmRSS) while opening and querying each "
                             "system; embedded Qdrant counts the mmap'd pages it touched"
                             + ("" if q_mem is not None else "; a Qdrant server's memory is not visible from here")))
    side_files = [f for f in (source.options.payloads, source.options.ids, source.options.metadata) if f]
    old_disk = disk_bytes(source.path)
    if old_disk is not None:  # the files that come with it (payloads, ids, metadata) count too
        old_disk += sum(disk_bytes(f) or 0 for f in side_files)
    q_disk = target.collection_info(collection).disk_bytes  # type: ignore[union-attr]
    rows.append(_row("Storage size", old_disk, q_disk, "bytes", lower_better=True,
                     meaning="bytes on disk: the source path (with its payload/ids/metadata files) vs the "
                             "collection's directory (segments, HNSW "
                             "graph, payload indexes, and the write-ahead log, which preallocates 32 MB files)"))
    if old_disk is None:
        warnings.append(f"{source.path} is not a local path: its storage size is not measured")
    return rows


def _row(metric: str, old: float | None, new: float | None, unit: str, lower_better: bool,
         meaning: str) -> dict[str, Any]:
    return {"metric": metric, "old": old, "qdrant": new, "unit": unit, "old_text": _fmt(old, unit),
            "qdrant_text": _fmt(new, unit), "improvement": _improvement(old, new, lower_better, unit),
            "meaning": meaning}


def _fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "n/a"
    if unit == "bytes":
        for u in ("B", "KB", "MB", "GB", "TB"):
            if abs(v) < 1024:
                return f"{v:.0f} {u}" if u == "B" else f"{v:.1f} {u}"
            v /= 1024
        return f"{v:.1f} PB"
    if unit == "ms":
        return f"{v:.2f} ms"
    return f"{v:,.0f} {unit}"


def _improvement(old: float | None, new: float | None, lower_better: bool, unit: str) -> str:
    if old is None or new is None or old <= 0 or new <= 0:
        return "n/a"
    if unit in ("bytes",):
        change = (old - new) / old
        return f"{change:.0%} reduction" if change >= 0 else f"{-change:.0%} more"
    ratio = old / new if lower_better else new / old
    return f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"


def _sample_vectors(source: Source, n: int, dim: int, id_field: str) -> np.ndarray:
    """The first ``n`` valid source vectors (same validation as the migration)."""
    from cortex.parity import _batches

    out: list[np.ndarray] = []
    got = 0
    for _keys, vecs, _m, _s in _batches(source, dim, id_field, None, 4096):
        out.append(vecs[:n - got])
        got += len(out[-1])
        if got >= n:
            break
    if not got:
        raise SourceError(f"{source.path}: no valid vectors to benchmark indexing with")
    return np.concatenate(out)


def _qdrant_build_rate(vecs: np.ndarray, distance: str) -> tuple[float, int]:
    """Points/s to upsert ``vecs`` into a fresh embedded shard and index it; also how many got indexed."""
    from cortex.targets.edge import EdgeTarget

    tmp = tempfile.mkdtemp(prefix="cortex-bench-")
    try:
        t = EdgeTarget(tmp)
        t0 = time.perf_counter()
        t.create_collection("bench", vecs.shape[1], distance, defer_indexing=True)
        for lo in range(0, len(vecs), 1000):
            t.upsert("bench", list(range(lo, min(len(vecs), lo + 1000))), vecs[lo:lo + 1000], None)
        t.finish_load("bench")  # builds HNSW when the segment is above the indexing threshold
        rate = len(vecs) / (time.perf_counter() - t0)
        indexed = (t.collection_info("bench").indexed_vectors or 0)  # type: ignore[union-attr]
        t.close()
        return round(rate, 1), indexed
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _old_build_rate(source: Source, vecs: np.ndarray, distance: str) -> tuple[float | None, str]:
    """Points/s to rebuild the old system's index from the same vectors, where this kind can be rebuilt."""
    kind = source.kind
    n = len(vecs)
    try:
        if kind == "faiss":
            import faiss

            t0 = time.perf_counter()
            idx = faiss.clone_index(faiss.read_index(str(source.path)))
            idx.reset()
            if not idx.is_trained:
                idx.train(vecs)
            idx.add(np.ascontiguousarray(vecs))
            return round(n / (time.perf_counter() - t0), 1), "a clone of the FAISS index (same type, already " \
                                                             "trained), emptied, then add()"
        if kind == "hnswlib":
            import hnswlib

            space = {"euclid": "l2", "dot": "ip", "cosine": "cosine"}.get(distance, "l2")
            t0 = time.perf_counter()
            idx = hnswlib.Index(space=space, dim=vecs.shape[1])
            idx.init_index(max_elements=n, M=16, ef_construction=100)
            idx.add_items(vecs, np.arange(n))
            return round(n / (time.perf_counter() - t0), 1), "a new hnswlib index (M=16, ef_construction=100)"
        if kind == "chroma":
            import chromadb

            space = {"euclid": "l2", "dot": "ip", "cosine": "cosine"}.get(distance, "l2")
            t0 = time.perf_counter()
            client = chromadb.EphemeralClient()
            col = client.get_or_create_collection(f"cortex_bench_{os.getpid()}", metadata={"hnsw:space": space})
            step = 5000
            for lo in range(0, n, step):
                col.add(ids=[str(i) for i in range(lo, min(n, lo + step))], embeddings=vecs[lo:lo + step])
            rate = n / (time.perf_counter() - t0)
            client.delete_collection(col.name)
            return round(rate, 1), "a new in-memory Chroma collection, add() in batches of 5,000"
    except Exception as e:  # a library quirk must not sink the whole benchmark
        return None, f"not measured ({type(e).__name__}: {str(e)[:120]})"
    return None, f"not measured: cortex does not know how to rebuild a {kind} store from its vectors " \
                 "(flat files have no index to build)"


def seed_lines(block: dict[str, Any]) -> list[str]:
    """The migration guide's output block, verbatim format."""
    names = (("Min", "min_ms"), ("Max", "max_ms"), ("Avg", "avg_ms"), ("P50", "p50_ms"), ("P95", "p95_ms"),
             ("P99", "p99_ms"))
    return [f"{label} latency:  {block[key]:.2f} ms" for label, key in names
            if isinstance(block.get(key), float) and not math.isnan(block[key])]

