"""Load the sample into embedded Qdrant under one candidate config and measure it.

Every figure comes from the engine: load and HNSW build seconds, the shard's allocated bytes
per component (vectors, quantized vectors, HNSW graph, payload, payload index, id tracker, WAL),
the process's resident memory while the shard is open and queried, and recall@k against exact
numpy search with the candidate's query-time parameters.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cortex.collection_config import CollectionConfig, HnswConfig, Optimizers, SearchParams
from cortex.plan.inventory import Sample
from cortex.targets.edge import CONFIG_FILE, EdgeTarget

COMPONENTS = ("vectors", "quantized", "hnsw", "payload", "payload_index", "id_tracker", "other")


@dataclass
class Candidate:
    name: str
    config: CollectionConfig  # what plan.yaml would hold (name/size/distance filled in)
    searches: list[SearchParams]  # query-time variants measured on the same build
    why: str = ""
    tune: bool = True  # False: measured for the estimate only, never chosen


@dataclass
class SearchResult:
    params: dict[str, Any]
    recall: float
    p50_ms: float
    p95_ms: float
    mean_ms: float
    seconds: float = 0.0  # all of this search's queries (timed one at a time and batched) and its warm-up


@dataclass
class TrialResult:
    name: str
    points: int
    load_seconds: float
    build_seconds: float
    build_cpu_seconds: float  # CPU time of the build (all engine threads): steadier than wall time on a busy host
    disk: dict[str, int]  # component -> allocated bytes (WAL apart)
    wal_bytes: int
    rss_anon_bytes: int  # resident anonymous memory the open shard added (after the queries)
    rss_file_bytes: int  # resident file-backed pages (mmap) it added
    searches: list[SearchResult] = field(default_factory=list)
    indexed: int = 0
    segments: int = 0
    seconds: float = 0.0  # the whole trial: load, build, the fresh-process heap probe and the queries
    # not built: the figures of this in-RAM sibling's build (an on-disk variant: same graph, same quantized search
    # and rescore, so the same results; its RAM and disk are projected under its own settings)
    derived_from: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rss() -> tuple[int, int]:
    """(RssAnon, RssFile) of this process in bytes (Linux); (0, 0) elsewhere."""
    anon = filed = 0
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("RssAnon:"):
                    anon = int(line.split()[1]) * 1024
                elif line.startswith("RssFile:"):
                    filed = int(line.split()[1]) * 1024
    except OSError:
        pass
    return anon, filed


def cpu_seconds() -> float:
    """User + system CPU time of this process, every thread included (the engine builds in Rust threads)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def component(rel: Path) -> str:
    parts = rel.parts
    s = "/".join(parts)
    if parts and parts[0] == "wal":
        return "wal"
    if "quantized" in rel.name:
        return "quantized"
    if "vector_index" in s:
        return "hnsw"
    if "vector_storage" in s:
        return "vectors"
    if "payload_index" in s:
        return "payload_index"
    if "payload_storage" in s:
        return "payload"
    if rel.name.startswith("id_tracker") or "id_tracker" in s or "mutable_id_tracker" in s:
        return "id_tracker"
    return "other"


def disk_components(path: Path) -> dict[str, int]:
    """Allocated bytes (not apparent size: files are preallocated sparse) per component of a shard."""
    out = dict.fromkeys((*COMPONENTS, "wal"), 0)
    for f in path.rglob("*"):
        if f.is_file():
            st = f.stat()
            out[component(f.relative_to(path))] += getattr(st, "st_blocks", 0) * 512 or st.st_size
    return out


def experimental(config: CollectionConfig) -> CollectionConfig:
    """The candidate as the sample needs it: always indexed and searched through the graph, as the
    full collection will be (the sample alone would fall under Qdrant's size thresholds)."""
    h = (config.hnsw or HnswConfig()).model_copy(update={"full_scan_threshold": 1})
    o = (config.optimizers or Optimizers()).model_copy(update={"indexing_threshold": 1})
    return config.model_copy(update={"hnsw": h, "optimizers": o})


def exact_topk(vectors: np.ndarray, queries: np.ndarray, k: int, distance: str) -> np.ndarray:
    """Indices of the exact top-k rows for each query (numpy, in blocks)."""
    v, q = vectors, queries
    if distance == "cosine":
        v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-30)
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-30)
    out = np.empty((len(q), k), dtype=np.int64)
    for lo in range(0, len(q), 256):
        qb = q[lo:lo + 256]
        if distance in ("cosine", "dot"):
            score = qb @ v.T
        elif distance == "euclid":
            score = -((qb * qb).sum(1)[:, None] - 2 * qb @ v.T + (v * v).sum(1)[None, :])
        else:
            score = -np.abs(qb[:, None, :] - v[None, :, :]).sum(-1)
        kk = min(k, score.shape[1])
        part = np.argpartition(-score, kk - 1, axis=1)[:, :kk]
        order = np.take_along_axis(score, part, 1).argsort(axis=1)[:, ::-1]
        out[lo:lo + len(qb), :kk] = np.take_along_axis(part, order, 1)
    return out


def run_trial(cand: Candidate, sample: Sample, queries: np.ndarray, truth: np.ndarray, workdir: Path, *,
              k: int = 10, batch_size: int = 500, payload_indexes: dict[str, Any] | None = None,
              keep: bool = False, label: str | None = None, heap_probe: bool = True, heap: int | None = None,
              latency_queries: int | None = 100, probe_queries: int = 32,
              raw: tuple[Path, float] | None = None, searches: list[SearchParams] | None = None) -> TrialResult:
    """Build the sample's collection under ``cand`` in ``workdir`` and measure ``searches`` (default: all the
    candidate's) on it; ``keep``: the shard stays, for :func:`measure_kept`. Recall is over every query; latency
    over the first ``latency_queries`` (one at a time; the rest go in one batch per search, and with 0 the batch's
    mean time per query stands for p50 / p95; None: all). The heap comes from a fresh process that opens the shard
    and runs ``probe_queries`` queries under each of the candidate's searches (``heap_probe``), or is ``heap`` when
    given (measured on a build of the same memory layout), else the in-process delta. ``raw``: (a shard holding
    ``sample`` loaded with indexing deferred, its load seconds) from :func:`load_raw`, copied instead of loading the
    sample again."""
    cfg = experimental(cand.config)
    root = workdir / cand.name
    shutil.rmtree(root, ignore_errors=True)
    tgt = EdgeTarget(root)
    n = len(sample.ids)
    t_start = time.perf_counter()
    try:
        if raw is not None:  # the loaded, not yet indexed sample: its copy is indexed under this candidate
            root.mkdir(parents=True)
            copy_shard(raw[0], root / "s")
            (root / "s" / CONFIG_FILE).write_text(cfg.model_dump_json(exclude_none=True))
            load = raw[1]
        else:
            load = _create_and_load(tgt, cfg, sample, n, batch_size)
        for fld, idx in (payload_indexes or {}).items():
            tgt.create_payload_index("s", fld, idx.type, is_tenant=bool(idx.is_tenant))
        t0, c0 = time.perf_counter(), cpu_seconds()
        tgt.finish_load("s")
        build, build_cpu = time.perf_counter() - t0, cpu_seconds() - c0
        info = tgt.collection_info("s")
        tgt.close()
        disk = disk_components(root / "s")
        wal = disk.pop("wal")
        if heap is None and heap_probe:
            heap = heap_in_fresh_process(root, cand.searches, queries[:max(1, probe_queries)], k)
        a0, f0 = rss()
        tgt = EdgeTarget(root)
        tgt.count("s")
        results = measure_searches(tgt, cand.searches if searches is None else searches, sample, queries, truth,
                                   k=k, latency_queries=latency_queries)
        a1, f1 = rss()
        return TrialResult(name=label or cand.name, points=n, load_seconds=round(load, 3),
                           build_seconds=round(build, 3), build_cpu_seconds=round(build_cpu, 3),
                           disk=disk, wal_bytes=wal,
                           rss_anon_bytes=heap if heap is not None else max(0, a1 - a0), rss_file_bytes=max(0, f1 - f0),
                           searches=results, indexed=(info.indexed_vectors or 0) if info else 0,
                           segments=(info.segments or 0) if info else 0,
                           seconds=round(time.perf_counter() - t_start, 3))
    finally:
        tgt.close()
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def measure_searches(tgt: EdgeTarget, searches: list[SearchParams], sample: Sample, queries: np.ndarray,
                     truth: np.ndarray, *, k: int = 10, latency_queries: int | None = 100) -> list[SearchResult]:
    """Recall@k and latency of each search on the open collection "s" of ``tgt``: a warm-up, then the first
    ``latency_queries`` one at a time (timed) and the rest in one batch (see :func:`run_trial`)."""
    pos = {pid: i for i, pid in enumerate(sample.ids)}
    nl = len(queries) if latency_queries is None else min(latency_queries, len(queries))
    results = []
    for sp in searches:
        t_sp = time.perf_counter()
        tgt.search("s", queries[:5], k, params=sp)  # warm-up
        lat = []
        res = []
        for i in range(nl):
            t = time.perf_counter()
            res += tgt.search("s", queries[i:i + 1], k, params=sp)
            lat.append(time.perf_counter() - t)
        if nl < len(queries):
            t = time.perf_counter()
            res += tgt.search("s", queries[nl:], k, params=sp)
            if not lat:
                lat = [(time.perf_counter() - t) / (len(queries) - nl)]
        got = [[pos.get(pid, -1) for pid, _ in r] for r in res]
        rec = float(np.mean([len(set(g) & set(t.tolist())) / k for g, t in zip(got, truth, strict=True)]))
        ms = np.asarray(lat) * 1000
        results.append(SearchResult(params=sp.model_dump(exclude_none=True), recall=round(rec, 4),
                                    p50_ms=round(float(np.percentile(ms, 50)), 3),
                                    p95_ms=round(float(np.percentile(ms, 95)), 3),
                                    mean_ms=round(float(ms.mean()), 3),
                                    seconds=round(time.perf_counter() - t_sp, 3)))
    return results


def measure_kept(cand: Candidate, searches: list[SearchParams], sample: Sample, queries: np.ndarray,
                 truth: np.ndarray, workdir: Path, *, k: int = 10, latency_queries: int | None = 100
                 ) -> list[SearchResult]:
    """More searches on the shard :func:`run_trial` kept (``keep``) for ``cand`` in ``workdir``, measured the same
    way as its own."""
    tgt = EdgeTarget(workdir / cand.name)
    try:
        tgt.count("s")
        return measure_searches(tgt, searches, sample, queries, truth, k=k, latency_queries=latency_queries)
    finally:
        tgt.close()


def raw_key(cand: Candidate) -> str:
    """Candidates whose unindexed sample shard is the same (Edge refuses another vector datatype on load)."""
    return cand.config.vectors.datatype or "float32"


def load_raw(cand: Candidate, sample: Sample, half: int, workdir: Path, *, batch_size: int = 500
             ) -> dict[int, tuple[Path, float]]:
    """Load ``sample`` into embedded Qdrant once, indexing deferred, keeping a copy of the shard after its first
    ``half`` points: {points: (shard directory, load seconds)} for ``half`` and all of it. Each trial indexes a
    copy under its own settings (Edge applies HNSW, quantization and on-disk settings when the shard is opened
    with them), so the sample is loaded once, not once per candidate. The shard is created plain (no quantization,
    default HNSW, vectors in RAM) in ``cand``'s vector datatype."""
    plain = cand.config.vectors.model_copy(update={"on_disk": None})
    cfg = experimental(cand.config.model_copy(update={"vectors": plain, "quantization": None, "hnsw": None}))
    root = workdir / f"raw-{raw_key(cand)}"
    shutil.rmtree(root, ignore_errors=True)
    tgt = EdgeTarget(root)
    n = len(sample.ids)
    try:
        t_half = _create_and_load(tgt, cfg, sample, half, batch_size)
        tgt.close()
        copy_shard(root / "s", root / "half")
        t0 = time.perf_counter()
        _upsert(tgt, sample, half, n, batch_size)
        tgt.flush("s")
        t_full = t_half + time.perf_counter() - t0
    finally:
        tgt.close()
    return {half: (root / "half", t_half), n: (root / "s", t_full)}


def copy_shard(src: Path, dst: Path) -> None:
    """Copy a closed shard directory, keeping its files sparse (the WAL and payload files are preallocated: a plain
    copy would allocate them whole and change the measured disk)."""
    import subprocess

    try:
        subprocess.run(["cp", "-a", "--sparse=always", str(src), str(dst)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src, dst)


def _create_and_load(tgt: EdgeTarget, cfg: CollectionConfig, sample: Sample, n: int, batch_size: int) -> float:
    """Create collection "s" (indexing deferred) and load the first ``n`` sample points; the seconds it took."""
    t0 = time.perf_counter()
    tgt.create_collection("s", cfg.vectors.size, cfg.vectors.distance, defer_indexing=True, config=cfg)
    _upsert(tgt, sample, 0, n, batch_size)
    tgt.flush("s")
    return time.perf_counter() - t0


def _upsert(tgt: EdgeTarget, sample: Sample, lo: int, hi: int, batch_size: int) -> None:
    for a in range(lo, hi, batch_size):
        b = min(hi, a + batch_size)
        tgt.upsert("s", sample.ids[a:b], sample.vectors[a:b], _payloads(sample.payloads[a:b]))


_PROBE_SERVER = """
import json, os, sys
import numpy as np, qdrant_edge
from cortex.collection_config import SearchParams
from cortex.plan.experiment import rss
from cortex.targets.edge import EdgeTarget
print("ready", flush=True)
for line in sys.stdin:
    req = json.loads(line)
    pid = os.fork()
    if pid == 0:  # the child: this process never opened a shard, so the heap it measures is the shard's own
        try:
            qs = np.load(req["queries"])
            a0, _ = rss()
            t = EdgeTarget(req["root"])
            t.count("s")
            for p in req["params"]:
                sp = SearchParams.model_validate_json(p)
                for i in range(len(qs)):
                    t.search("s", qs[i:i + 1], req["k"], params=sp)
            a1, _ = rss()
            t.close()
            print(max(0, a1 - a0), flush=True)
        except BaseException:
            print("error", flush=True)
        os._exit(0)
    if os.waitpid(pid, 0)[1] != 0:  # killed before it answered
        print("error", flush=True)
"""


class _ProbeServer:
    """A Python process that imported the engine and never opens a shard; each probe is a fork of it (a fresh heap,
    without a new interpreter's start and imports, ~0.5 s each)."""

    proc: Any = None
    ready = False

    @classmethod
    def start(cls) -> None:
        import subprocess
        import sys

        if cls.proc is not None and cls.proc.poll() is None:
            return
        try:
            cls.proc = subprocess.Popen([sys.executable, "-c", _PROBE_SERVER], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=_probe_env())
        except OSError:
            cls.proc = None

    @classmethod
    def probe(cls, req: dict[str, Any]) -> int | None:
        import json

        p = cls.proc
        if p is None or p.poll() is not None:
            return None
        try:
            if not cls.ready:  # its imports done
                cls.ready = p.stdout.readline().strip() == "ready"
            p.stdin.write(json.dumps(req) + "\n")
            p.stdin.flush()
            return int(p.stdout.readline().strip())
        except (OSError, ValueError):
            cls.stop()
            return None

    @classmethod
    def stop(cls) -> None:
        import subprocess

        p, cls.proc, cls.ready = cls.proc, None, False
        if p is not None:
            try:
                p.stdin.close()
                p.wait(30)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                p.kill()
                p.wait()


def start_probe_server() -> None:
    """Start (in the background: it imports while the caller works) the process the heap probes fork from."""
    _ProbeServer.start()


def stop_probe_server() -> None:
    _ProbeServer.stop()


def heap_in_fresh_process(root: Path, searches: list[SearchParams], queries: np.ndarray, k: int) -> int | None:
    """Anonymous memory the open, queried shard adds, measured in a new process: in this one, heap freed by
    earlier trials is reused and hides it. A fork of the probe server (:func:`start_probe_server`) when it runs,
    else a new interpreter. None when the probe cannot run (the in-process delta is used)."""
    qfile = root / "queries.npy"
    np.save(qfile, np.asarray(queries, dtype=np.float32))
    req = {"root": str(root), "queries": str(qfile), "k": k,
           "params": [sp.model_dump_json(exclude_none=True) for sp in searches]}
    try:
        got = _ProbeServer.probe(req) if _ProbeServer.proc is not None else None
        return got if got is not None else _heap_in_new_interpreter(req)
    finally:
        qfile.unlink(missing_ok=True)


def _probe_env() -> dict[str, str]:
    import os

    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                                        os.environ.get("PYTHONPATH", "")])}


def _heap_in_new_interpreter(req: dict[str, Any]) -> int | None:
    """The probe server's script run for one request (a new interpreter: slower, the same figure)."""
    import json
    import subprocess
    import sys

    try:
        p = subprocess.run([sys.executable, "-c", _PROBE_SERVER], input=json.dumps(req) + "\n", capture_output=True,
                           text=True, env=_probe_env(), timeout=600)
        return int(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 else None
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return None


def _payloads(pls: list[dict[str, Any] | None]) -> list[dict[str, Any]] | None:
    return None if all(p is None for p in pls) else [p or {} for p in pls]
