"""Search parity: the same queries on the old system and on Qdrant, scored against exact ground truth.

Ground truth is an exact search over the *source's* vectors with the collection's distance,
computed in numpy in one streamed pass (per batch top-k, merged: memory stays at the
queries x one batch), or from memory when the vectors fit in ``memory_mb``.  Everything is
compared in Qdrant-id space (source ids go through :func:`cortex.ids.map_id`).

Score convention (Qdrant's, also what ``Source.search`` returns): cosine and dot are
similarities (higher is closer); euclid and manhattan are distances (qdrant_edge returns the
distance itself as ``score``, smaller is closer).  Internally results are ranked by a
"higher is better" value: the similarity, or minus the distance.

Recall@k of a system = |its top-k ∩ exact top-k| / k per query, averaged.  A returned id
outside the exact top-k still counts when its score ties the k-th exact score (within
1e-5 relative), so an exact system scores 1.0 whatever order it gives equidistant points.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from cortex.errors import SourceError, TargetError
from cortex.ids import DEFAULT_ID_FIELD, map_id
from cortex.seen_ids import SeenIds, id_keys
from cortex.sources.base import Source
from cortex.targets.base import Target, normalize_rows
from cortex.verify import _read_ahead

TIE_RTOL = 1e-5
Progress = Callable[[str], None]


# -- small helpers ---------------------------------------------------------------------------
def parse_filter(spec: str | None) -> dict[str, Any] | None:
    """``FIELD=VALUE`` -> {FIELD: VALUE}; VALUE becomes an int, float or bool when it reads as one."""
    if not spec:
        return None
    if "=" not in spec or not spec.split("=", 1)[0].strip():
        raise SourceError(f"--filter {spec!r}: expected FIELD=VALUE, e.g. --filter language=python")
    key, raw = spec.split("=", 1)
    value: Any = raw
    if raw.lower() in ("true", "false"):
        value = raw.lower() == "true"
    else:
        for cast in (int, float):
            try:
                value = cast(raw)
                break
            except ValueError:
                continue
    return {key.strip(): value}


def index_kind(value: Any) -> str:
    """Payload index type for a filter value."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    return "keyword"


def latency_stats(seconds: list[float], keep_samples: bool = True) -> dict[str, Any]:
    """The migration guide's block (min, max, avg, p50, p95, p99) in milliseconds, plus the samples."""
    if not seconds:
        return {"n": 0}
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    out: dict[str, Any] = {"n": len(ms), "min_ms": float(ms.min()), "max_ms": float(ms.max()),
                           "avg_ms": float(ms.mean())}
    for p in (50, 95, 99):
        out[f"p{p}_ms"] = float(np.percentile(ms, p))
    out = {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}
    if keep_samples:
        out["samples_ms"] = [round(float(v), 4) for v in ms]
    return out


def add_noise(vecs: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Each row plus Gaussian noise whose norm is ``noise`` times the row's norm."""
    v = np.asarray(vecs, dtype=np.float32)
    if noise <= 0 or not len(v):
        return v.copy()
    g = rng.standard_normal(v.shape).astype(np.float32)
    g /= np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
    return v + noise * np.linalg.norm(v, axis=1, keepdims=True) * g


def load_queries(path: str, dim: int) -> np.ndarray:
    """Query vectors from ``.npy`` (2-D), ``.json`` (list of vectors) or JSONL (a vector or {"vector": [...]})."""
    p = Path(path)
    if not p.is_file():
        raise SourceError(f"{path}: no such queries file; pass --queries a .npy, .json or .jsonl file")
    try:
        if p.suffix.lower() == ".npy":
            q = np.load(p, allow_pickle=False)
        elif p.suffix.lower() == ".json":
            q = np.asarray([_qvec(v) for v in orjson.loads(p.read_bytes())], dtype=np.float32)
        else:
            rows = []
            for n, line in enumerate(p.read_bytes().splitlines(), 1):
                if line.strip():
                    try:
                        rows.append(_qvec(orjson.loads(line)))
                    except (ValueError, TypeError) as e:
                        raise SourceError(f"{path}:{n}: not a query vector ({e}); expected [..] or "
                                          '{"vector": [..]}') from e
            q = np.asarray(rows, dtype=np.float32)
    except (ValueError, TypeError) as e:
        raise SourceError(f"{path}: cannot read query vectors ({e})") from e
    if q.ndim == 1 and len(q) == dim:
        q = q[None, :]
    if q.ndim != 2 or not len(q):
        raise SourceError(f"{path}: expected a list of query vectors, got shape {q.shape}")
    if q.shape[1] != dim:
        raise SourceError(f"{path}: queries have {q.shape[1]} dimensions, the collection has {dim}")
    if not np.isfinite(q).all():
        raise SourceError(f"{path}: a query vector has a NaN or infinite value")
    return q.astype(np.float32)


def _qvec(v: Any) -> list[float]:
    if isinstance(v, dict):
        v = v.get("vector")
    if not isinstance(v, list):
        raise ValueError("not a list of numbers")
    return v


def rank_values(q: np.ndarray, b: np.ndarray, distance: str, qsq: np.ndarray | None = None) -> np.ndarray:
    """(queries x points) "higher is closer" values; queries must be pre-normalized for cosine."""
    if distance in ("cosine", "dot"):
        return q @ b.T
    if distance == "euclid":
        qq = qsq if qsq is not None else np.einsum("ij,ij->i", q, q)
        bb = np.einsum("ij,ij->i", b, b)
        d2 = qq[:, None] + bb[None, :] - 2.0 * (q @ b.T)
        return -np.sqrt(np.maximum(d2, 0.0))
    out = np.empty((len(q), len(b)), dtype=np.float32)  # manhattan: chunked to bound memory
    step = max(1, 2_000_000 // max(1, b.size))
    for lo in range(0, len(q), step):
        out[lo:lo + step] = -np.abs(q[lo:lo + step, None, :] - b[None, :, :]).sum(axis=2)
    return out


def to_score(rank: np.ndarray, distance: str) -> np.ndarray:
    """Rank values -> Qdrant's score convention."""
    return rank if distance in ("cosine", "dot") else -rank


def to_rank(score: np.ndarray, distance: str) -> np.ndarray:
    return score if distance in ("cosine", "dot") else -score


class TopK:
    """A running exact top-k per query over batches of points."""

    def __init__(self, nq: int, k: int) -> None:
        self.k = k
        self.rank = np.full((nq, k), -np.inf, dtype=np.float32)
        self.keys = np.zeros((nq, k), dtype=np.uint64)

    def push(self, rank: np.ndarray, keys: np.ndarray) -> None:
        if not rank.shape[1]:
            return
        if rank.shape[1] > self.k:
            idx = np.argpartition(-rank, self.k - 1, axis=1)[:, :self.k]
            rank = np.take_along_axis(rank, idx, axis=1)
            bkeys = keys[idx]
        else:
            bkeys = np.broadcast_to(keys, rank.shape)
        allr = np.concatenate([self.rank, rank.astype(np.float32)], axis=1)
        allk = np.concatenate([self.keys, bkeys], axis=1)
        idx = np.argpartition(-allr, self.k - 1, axis=1)[:, :self.k]
        self.rank = np.take_along_axis(allr, idx, axis=1)
        self.keys = np.take_along_axis(allk, idx, axis=1)

    def drop(self, keys: np.ndarray) -> None:
        """Forget entries for ``keys`` (a later source record replaced them)."""
        if len(keys):
            self.rank[np.isin(self.keys, keys)] = -np.inf

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(keys, rank values), best first; missing entries have rank -inf."""
        order = np.argsort(-self.rank, axis=1, kind="stable")
        return np.take_along_axis(self.keys, order, axis=1), np.take_along_axis(self.rank, order, axis=1)


@dataclass
class _Data:
    """What one pass over the source produced."""

    gt_keys: np.ndarray
    gt_rank: np.ndarray
    matching: int  # points that pass the filter (all points without one)
    total: int
    matrix: np.ndarray | None = None  # kept (prepared) vectors when they fit in memory
    matrix_keys: np.ndarray | None = None


def _batches(source: Source, dim: int, id_field: str, flt: dict[str, Any] | None, batch_size: int
             ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(keys, vectors, filter match mask, keys superseded by this batch) per validated source batch."""
    seen = SeenIds()
    for p in _read_ahead(source, batch_size, dim, id_field, seen):
        if not p.ids:
            continue
        keys = id_keys(p.ids)
        if flt:
            pls = p.payloads or [None] * len(p.ids)
            match = np.fromiter((pl is not None and all(_eq(_field(pl, f), v) for f, v in flt.items())
                                 for pl in pls), dtype=bool, count=len(pls))
        else:
            match = np.ones(len(keys), dtype=bool)
        sup = id_keys([map_id(d)[0] for d in p.dup_ids]) if p.dup_ids else np.zeros(0, np.uint64)
        yield keys, np.asarray(p.vectors, dtype=np.float32), match, sup


def _field(payload: dict[str, Any], key: str) -> Any:
    """``payload[key]``, or along a dotted path (``metadata.lang``) as Qdrant's filters read it."""
    if key in payload or "." not in key:
        return payload.get(key)
    value: Any = payload
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _eq(a: Any, b: Any) -> bool:
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def sample_queries(source: Source, n: int, dim: int, id_field: str, seed: int,
                   batch_size: int = 8192) -> np.ndarray:
    """A uniform random sample of ``n`` source vectors (reservoir sampling over one stream)."""
    return sample_and_keep(source, n, dim, id_field, seed, 0.0, batch_size)[0]


Batch = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # what _batches yields


def sample_and_keep(source: Source, n: int, dim: int, id_field: str, seed: int, memory_mb: float,
                    batch_size: int = 8192) -> tuple[np.ndarray, list[Batch] | None]:
    """One pass: a uniform random sample of ``n`` source vectors (Algorithm R) and, when they fit in
    ``memory_mb``, the validated batches themselves, so the exact search needs no second read."""
    rng = np.random.default_rng(seed)
    res = np.zeros((n, dim), dtype=np.float32)
    kept: list[Batch] | None = [] if memory_mb > 0 else None
    budget, size = memory_mb * 2**20, 0
    seen = 0
    for batch in _batches(source, dim, id_field, None, batch_size):
        v = batch[1]
        m = len(v)
        fill = min(m, max(0, n - seen))
        res[seen:seen + fill] = v[:fill]
        if m > fill:  # Algorithm R over the rest of the batch: row at stream position p replaces a uniform slot
            j = rng.integers(0, np.arange(seen + fill, seen + m) + 1)  # in [0, p], kept when < n
            hit = np.flatnonzero(j < n)[::-1]  # newest first, so a slot hit twice keeps the later row
            slots, first = np.unique(j[hit], return_index=True)
            res[slots] = v[fill + hit[first]]
        seen += m
        if kept is not None:
            size += sum(a.nbytes for a in batch)
            if size > budget:
                kept = None
            else:
                kept.append(batch)
    if seen == 0:
        raise SourceError(f"{source.path}: no valid vectors to sample queries from")
    return res[:min(n, seen)], kept


def exact_search(source: Source, queries: np.ndarray, k: int, distance: str, dim: int, id_field: str,
                 flt: dict[str, Any] | None, memory_mb: float, batch_size: int = 8192,
                 batches: list[Batch] | None = None, keep: bool = True) -> _Data:
    """Exact top-k of every query over the source's vectors, streamed (or over ``batches`` already read,
    without a filter); keeps the vectors if they fit (and ``keep``)."""
    q = _prep_queries(queries, distance)
    qsq = np.einsum("ij,ij->i", q, q) if distance == "euclid" else None
    top = TopK(len(q), k)
    kept: list[np.ndarray] | None = [] if keep else None
    kept_keys: list[np.ndarray] = []
    budget = memory_mb * 2**20
    size = 0
    matching = total = 0
    stream = _consume(batches) if batches is not None and not flt else _batches(source, dim, id_field, flt,
                                                                                batch_size)
    for keys, vecs, match, sup in stream:
        top.drop(sup)
        b = normalize_rows(vecs) if distance == "cosine" else vecs
        total += len(keys)
        if not match.all():
            b, keys = b[match], keys[match]
        matching += len(keys)
        top.push(rank_values(q, b, distance, qsq), keys)
        if kept is not None:
            size += b.nbytes
            if size > budget:
                kept = None
            else:
                kept.append(b)
                kept_keys.append(keys)
    gk, gr = top.result()
    data = _Data(gk, gr, matching, total)
    if kept:
        data.matrix = np.concatenate(kept)
        data.matrix_keys = np.concatenate(kept_keys)
    return data


def _consume(batches: list[Batch]) -> Iterator[Batch]:
    """The batches in order, each dropped from ``batches`` once taken: the search's own copy of the vectors
    (normalized, kept for the next steps) grows while the one read with the queries shrinks."""
    batches.reverse()
    while batches:
        yield batches.pop()


def _prep_queries(queries: np.ndarray, distance: str) -> np.ndarray:
    q = np.asarray(queries, dtype=np.float32)
    return normalize_rows(q) if distance == "cosine" else q


def recall_per_query(gt_keys: np.ndarray, gt_rank: np.ndarray, got_keys: list[np.ndarray],
                     got_rank: list[np.ndarray]) -> np.ndarray:
    """Per query: hits / min(k, points that could match); ties with the k-th exact score count as hits."""
    out = np.ones(len(gt_keys), dtype=np.float64)
    for i in range(len(gt_keys)):
        valid = np.isfinite(gt_rank[i])
        m = int(valid.sum())
        if m == 0:
            continue
        truth = set(gt_keys[i][valid].tolist())
        kth = float(gt_rank[i][m - 1])
        tol = TIE_RTOL * max(1.0, abs(kth))
        hits = 0
        for key, r in zip(got_keys[i][:gt_keys.shape[1]].tolist(), got_rank[i][:gt_keys.shape[1]].tolist(),
                          strict=True):
            if key in truth or (m == gt_keys.shape[1] and abs(r - kth) <= tol):
                hits += 1
        out[i] = min(1.0, hits / m)
    return out


# -- result --------------------------------------------------------------------------------
@dataclass
class SideResult:
    method: str
    recall: float | None = None
    recall_min: float | None = None
    latency: dict[str, Any] = field(default_factory=dict)
    note: str = ""


@dataclass
class CompareResult:
    source: str
    collection: str
    target: str
    distance: str
    dim: int
    k: int
    num_queries: int
    queries_how: str
    ground_truth_how: str
    filter: dict[str, Any] | None
    ef: int | None
    min_recall: float
    old: SideResult
    qdrant: SideResult
    overlap: float | None = None
    overlap_min: float | None = None
    score_drift_mean: float | None = None
    score_drift_max: float | None = None
    matching_points: int = 0
    source_points: int = 0
    ok: bool = True
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _round(v: float | None, n: int = 4) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), n)


def _timed(fn: Callable[[int], Any], n: int, warmup: int = 3, budget: float | None = None,
           at_least: int = 20) -> tuple[list[Any], list[float]]:
    """Call fn(i) for i in range(n) one at a time; results and per-call seconds.

    ``budget``: stop once the timed calls took that many seconds in all, after ``at_least`` of them
    (a slow old system, e.g. a 200k-vector flat FAISS index at ~70 ms a query, need not run all ``n``).
    """
    for i in range(min(warmup, n)):
        fn(i)
    res, lat = [], []
    spent = 0.0
    for i in range(n):
        if budget is not None and spent >= budget and i >= at_least:
            break
        t0 = time.perf_counter()
        res.append(fn(i))
        lat.append(time.perf_counter() - t0)
        spent += lat[-1]
    return res, lat


SEARCH_CHUNK = 256  # queries per batched search call (results only; latency is timed on single calls)


def _in_chunks(fn: Callable[[np.ndarray], list[Any]], queries: np.ndarray, chunk: int = SEARCH_CHUNK) -> list[Any]:
    """``fn`` over ``queries`` in chunks of ``chunk`` rows, results concatenated (bounded memory per call)."""
    out: list[Any] = []
    for lo in range(0, len(queries), chunk):
        out.extend(fn(queries[lo:lo + chunk]))
    return out


def _source_results(source: Source, queries: np.ndarray, k: int) -> list[tuple[list[Any], np.ndarray]]:
    """The old system's own search over every query, batched: per query (ids, scores of those ids)."""
    def one_chunk(q: np.ndarray) -> list[tuple[list[Any], np.ndarray]]:
        ids, scores = source.search(q, k)
        return [(list(r), np.asarray(scores[j])[:len(r)]) for j, r in enumerate(ids)]

    return _in_chunks(one_chunk, queries)


def _brute_truth(got: list[tuple[list[Any], np.ndarray]], k: int, distance: str, total: int) -> _Data:
    """The ground truth from an exhaustive native search's results (best first), shaped as an exact pass's."""
    keys = np.zeros((len(got), k), dtype=np.uint64)
    rank = np.full((len(got), k), -np.inf, dtype=np.float32)
    for i, (ids, scores) in enumerate(got):
        m = min(k, len(ids))
        if m:
            keys[i, :m] = id_keys([map_id(x)[0] for x in ids[:m]])
            rank[i, :m] = to_rank(np.asarray(scores[:m], dtype=np.float32), distance)
    return _Data(keys, rank, total, total)


def _latency_note(n_lat: int, timed: int, budget: float | None) -> str:
    if timed < n_lat:
        return f"latency measured on {timed} of {n_lat} queries, one at a time (stopped at the {budget:g} s budget)"
    return f"latency measured on {timed} queries, one at a time"


def compare(target: Target, collection: str, source: Source, *, k: int = 10, num_queries: int = 200,
            queries: np.ndarray | None = None, queries_how: str | None = None, filter: dict[str, Any] | None = None,
            min_recall: float = 0.95, ef: int | None = None, noise: float = 0.1, seed: int = 0,
            id_field: str = DEFAULT_ID_FIELD, memory_mb: float = 1024.0, latency_queries: int = 100,
            latency_budget: float | None = 2.0, say: Progress | None = None, where: Any = None) -> CompareResult:
    """Run the same queries on the old system (``source``) and on Qdrant; see the module docstring.

    Recall comes from batched searches over every query; latency is timed on single calls, on the
    first ``latency_queries`` queries (each side stops early once its timed calls took ``latency_budget``
    seconds, after 20 of them).
    ``where`` (a :mod:`cortex.where` AST): the source is that subset (opened with it) and Qdrant's
    side searches with the same condition, so a rollout unit is compared on its own.
    """
    t0 = time.perf_counter()
    say = say or (lambda _m: None)
    if k < 1:
        raise SourceError("--k must be at least 1")
    info = target.collection_info(collection)
    if info is None:
        raise TargetError(f"collection '{collection}' does not exist at {target.location}; "
                          "run `cortex qdrant status` to list collections")
    sinfo = source.info()
    dim = info.dim or sinfo.dim or 0
    distance = info.distance or sinfo.distance or "cosine"
    warnings: list[str] = []
    if sinfo.distance and sinfo.distance != distance:
        warnings.append(f"the source uses {sinfo.distance} distance, the collection {distance}: ground truth "
                        f"uses {distance}; the old system's own search ranks by {sinfo.distance}")
    # the old system's search is brute force over the very vectors migrated: its results are the ground truth
    brute = not filter and where is None and sinfo.distance == distance and source.exhaustive_search()
    kept = None
    if queries is None:
        if num_queries < 1:
            raise SourceError("--num-queries must be at least 1")
        say(f"sampling {num_queries} queries from {source.path} ...")
        base = source.sample_vectors(num_queries, seed) if brute else None
        if base is None:
            base, kept = sample_and_keep(source, num_queries, dim, id_field, seed, 0.0 if filter else memory_mb)
        queries = add_noise(base, noise, np.random.default_rng(seed + 1))
        queries_how = (f"{len(queries)} source vectors sampled uniformly at random (seed {seed}), each plus "
                       f"Gaussian noise of norm {noise:g} x its own norm, so no query is a stored point")
    else:
        queries = np.asarray(queries, dtype=np.float32)
        queries_how = queries_how or f"{len(queries)} query vectors given by the caller"
    nq = len(queries)
    if filter:
        for f_, v in filter.items():
            if f_ not in info.payload_indexes:
                say(f"creating a {index_kind(v)} payload index on '{f_}' ...")
                target.create_payload_index(collection, f_, index_kind(v))
    native = brute
    if not filter and not brute:
        try:
            source.search(queries[:1], k)
            native = True
        except NotImplementedError:
            native = False
    got = None
    if brute:
        say(f"ground truth: {source.kind}'s own brute-force search ...")
        got = _source_results(source, queries, k)
        data = _brute_truth(got, k, distance, sinfo.count or 0)
        gt_how = (f"{source.kind}'s own search, brute force over all {data.total:,} source vectors (a flat index; "
                  "every vector valid, ids unique): exact")
    else:
        say(f"exact ground truth over {source.path} ...")
        # the old system's own search needs no copy of the vectors in memory (the numpy stand-in does)
        data = exact_search(source, queries, k, distance, dim, id_field, filter, memory_mb, batches=kept,
                            keep=not native)
        gt_how = (f"exact {distance} search in numpy over the {data.total:,} valid source vectors"
                  + (f" ({data.matching:,} match the filter)" if filter else "")
                  + (", held in memory" if data.matrix is not None else f", streamed (more than {memory_mb:g} MB)"))
    del kept
    if filter and data.matching == 0:
        f_, v = next(iter(filter.items()))
        raise SourceError(f"--filter {f_}={v}: no point of {source.path} has payload {f_} == {v!r}; the filter "
                          "applies to source payloads too (check the field name and the value's type)")
    if filter and data.matching < k:
        warnings.append(f"only {data.matching} source points match the filter: recall is over {data.matching}")

    # -- old system ----------------------------------------------------------------------------
    say("querying the old system ...")
    old_keys: list[np.ndarray]
    old_rank: list[np.ndarray]
    n_lat = min(nq, latency_queries)
    if native:
        got = got or _source_results(source, queries, k)
        old_keys = [id_keys([map_id(x)[0] for x in ids]) for ids, _ in got]
        old_rank = [to_rank(np.asarray(sc, dtype=np.float64), distance) for _, sc in got]
        _, lat = _timed(lambda i: source.search(queries[i:i + 1], k), n_lat, budget=latency_budget)
        old = SideResult(method=f"{source.kind} native search", latency=latency_stats(lat),
                         note=f"{source.kind}'s own search (results in batches of up to {SEARCH_CHUNK} queries"
                              + ("; brute force, so also the ground truth" if brute else "") + "); "
                              + _latency_note(n_lat, len(lat), latency_budget))
    else:
        old_keys = list(data.gt_keys)
        old_rank = list(data.gt_rank)
        for i in range(nq):  # drop the -inf padding (fewer matching points than k)
            ok_ = np.isfinite(old_rank[i])
            old_keys[i], old_rank[i] = old_keys[i][ok_], old_rank[i][ok_]
        why = "the filter is applied in numpy" if filter else f"the {source.kind} source has no search of its own"
        old = SideResult(method="exact numpy search", note=f"exact search over the source vectors ({why})")
        if data.matrix is not None:
            qp = _prep_queries(queries, distance)
            m_, mk = data.matrix, data.matrix_keys

            def one(i: int) -> None:
                r = rank_values(qp[i:i + 1], m_, distance)[0]
                kk = min(k, len(r))
                if kk:
                    top = np.argpartition(-r, kk - 1)[:kk]
                    mk[top[np.argsort(-r[top])]]

            _, lat = _timed(one, n_lat, budget=latency_budget)
            old.latency = latency_stats(lat)
            old.note += f"; {_latency_note(n_lat, len(lat), latency_budget)}, vectors in memory"
        else:
            old.note += "; no latency: the vectors do not fit in memory, so the search was one streamed pass"

    # -- Qdrant ------------------------------------------------------------------------------------
    say("querying Qdrant ...")
    qflt: Any = filter
    if where is not None:
        from cortex import where as w

        qflt = where if not filter else w.And((where, *(w.equals(f_, v) for f_, v in filter.items())))
    res_q = _in_chunks(lambda q: target.search(collection, q, k, ef=ef, filter=qflt), queries)
    _, lat_q = _timed(lambda i: target.search(collection, queries[i:i + 1], k, ef=ef, filter=qflt), n_lat,
                      budget=latency_budget)
    q_keys = [id_keys([pid for pid, _ in r]) for r in res_q]
    q_rank = [to_rank(np.asarray([s for _, s in r], dtype=np.float64), distance) for r in res_q]
    indexed = info.indexed_vectors or 0
    how = f"HNSW, hnsw_ef={ef or 'default'}" if indexed else "no HNSW index (segments below the indexing threshold)"
    qd = SideResult(method=f"Qdrant ({target.kind}; {how})", latency=latency_stats(lat_q),
                    note=f"target.search (results in batches of up to {SEARCH_CHUNK} queries); "
                         + _latency_note(n_lat, len(lat_q), latency_budget))
    if not indexed and info.points > 0:
        warnings.append("the collection has no HNSW index yet (small or deferred): Qdrant searched exactly")

    # -- metrics ------------------------------------------------------------------------------------
    for side, keys_, rank_ in ((old, old_keys, old_rank), (qd, q_keys, q_rank)):
        r = recall_per_query(data.gt_keys, data.gt_rank, keys_, rank_)
        side.recall, side.recall_min = _round(float(r.mean())), _round(float(r.min()))
    overlaps, drifts = [], []
    for i in range(nq):
        denom = max(1, min(k, len(old_keys[i])))
        overlaps.append(len(set(old_keys[i][:k].tolist()) & set(q_keys[i][:k].tolist())) / denom)
        n = min(len(old_rank[i]), len(q_rank[i]), k)
        if n:
            d = np.abs(to_score(old_rank[i][:n], distance) - to_score(q_rank[i][:n], distance))
            drifts.extend(d[np.isfinite(d)].tolist())
    result = CompareResult(
        source=source.path, collection=collection, target=target.location, distance=distance, dim=dim, k=k,
        num_queries=nq, queries_how=queries_how or "", ground_truth_how=gt_how, filter=filter, ef=ef,
        min_recall=min_recall, old=old, qdrant=qd, overlap=_round(float(np.mean(overlaps))),
        overlap_min=_round(float(np.min(overlaps))),
        score_drift_mean=_round(float(np.mean(drifts)), 6) if drifts else None,
        score_drift_max=_round(float(np.max(drifts)), 6) if drifts else None,
        matching_points=data.matching, source_points=data.total, warnings=warnings)
    result.ok = (qd.recall or 0.0) >= min_recall
    result.seconds = round(time.perf_counter() - t0, 3)
    return result
