"""Prove a collection matches its source: counts, ids, vectors, payloads.

Without a source: the seed's checks (count, a sample of points with dimension and payload
keys, a search returns results).  With a source, the source is streamed once and its
points are looked up in the target in batches: with ``full`` every point is compared and
ids present in Qdrant but not in the source are listed; otherwise a uniform random sample
(reservoir) of ``sample`` points is compared and the counts must match.
Vectors are compared after the same normalization Qdrant applies (cosine: unit length).
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from cortex.errors import TargetError
from cortex.ids import DEFAULT_ID_FIELD, map_id
from cortex.payload_compare import payload_equal
from cortex.pipeline import validate
from cortex.seen_ids import SeenIds, id_keys
from cortex.sources.base import Source
from cortex.targets.base import Target, normalize_rows


@dataclass
class Problem:
    kind: str  # missing | extra | vector | payload | count | dimension | search | empty
    id: Any = None
    detail: str = ""


@dataclass
class VerifyReport:
    collection: str
    target: str
    source: str | None = None
    mode: str = "basic"  # basic | sample | full
    ok: bool = True
    expected_count: int | None = None
    actual_count: int = 0
    checked: int = 0
    missing: int = 0
    extra: int = 0
    vector_mismatches: int = 0
    payload_mismatches: int = 0
    source_invalid: int = 0
    source_duplicates: int = 0
    tolerance: float = 1e-5
    distance: str | None = None
    dim: int | None = None
    seconds: float = 0.0
    points_per_second: float = 0.0
    samples: list[dict[str, Any]] = field(default_factory=list)  # basic mode: what the seed prints
    problems: list[Problem] = field(default_factory=list)
    problems_truncated: int = 0

    def problem(self, p: Problem, limit: int) -> None:
        if len(self.problems) < limit:
            self.problems.append(p)
        else:
            self.problems_truncated += 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def verify_basic(target: Target, collection: str, sample: int = 3) -> VerifyReport:
    """The seed's Step 4 checks, without a source to compare against."""
    t0 = time.perf_counter()
    info = _info(target, collection)
    rep = VerifyReport(collection=collection, target=target.location, mode="basic", actual_count=info.points,
                       distance=info.distance, dim=info.dim)
    if info.points == 0:
        rep.ok = False
        rep.problems.append(Problem("empty", detail="the collection has no points"))
        return rep
    first = next(target.scroll(collection, batch_size=max(1, sample), with_vectors=True), [])
    for p in first[:sample]:
        dim = len(p.vector) if p.vector is not None else 0
        rep.samples.append({"id": p.id, "dim": dim, "payload_keys": sorted((p.payload or {}).keys())})
        rep.checked += 1
        if info.dim and dim != info.dim:
            rep.ok = False
            rep.problems.append(Problem("dimension", p.id, f"vector has {dim} dims, collection {info.dim}"))
    if first and first[0].vector is not None:
        hits = target.search(collection, np.asarray([first[0].vector]), k=10)[0]
        if not hits:
            rep.ok = False
            rep.problems.append(Problem("search", detail="a search for a stored vector returned nothing"))
        rep.samples.append({"search_results": len(hits)})
    rep.seconds = round(time.perf_counter() - t0, 3)
    return rep


def _info(target: Target, collection: str):
    info = target.collection_info(collection)
    if info is None:
        raise TargetError(f"collection '{collection}' does not exist at {target.location}; "
                          "run `cortex qdrant status` to list collections")
    return info


def verify_against_source(target: Target, collection: str, source: Source, *, full: bool = False,
                          sample: int = 100, tolerance: float = 1e-5, id_field: str = DEFAULT_ID_FIELD,
                          batch_size: int = 1000, max_problems: int = 1000, seed: int = 0,
                          progress: Any = None) -> VerifyReport:
    """Compare ``collection`` with ``source``; ``report.ok`` is True only when everything holds."""
    t0 = time.perf_counter()
    info = _info(target, collection)
    rep = VerifyReport(collection=collection, target=target.location, source=source.path,
                       mode="full" if full else "sample", actual_count=info.points, tolerance=tolerance,
                       distance=info.distance, dim=info.dim)
    cosine = info.distance == "cosine"
    seen = SeenIds()
    rng = random.Random(seed)
    reservoir: list[tuple[Any, np.ndarray, dict[str, Any] | None]] = []
    streamed = 0
    sinfo = source.info()
    if progress is not None:
        progress.start(sinfo.count)
    dim = info.dim or sinfo.dim or 0
    for seq, batch in enumerate(source.batches(batch_size)):
        p = validate(batch, dim, id_field, seq, seen)  # same mapping and checks as the migration
        rep.source_invalid += len(p.rejected)
        rep.source_duplicates += p.counts.duplicates
        if progress is not None:
            progress.advance(batch.read)
        if full:
            _compare(target, collection, rep, p.ids, p.vectors, p.payloads, cosine, tolerance, max_problems)
            continue
        if p.after_duplicate:  # a later record replaces an earlier one: sample the later one
            dup = {map_id(d)[0] for d in p.dup_ids}
            reservoir = [r for r in reservoir if r[0] not in dup]
        for i, qid in enumerate(p.ids):  # reservoir sampling (Algorithm R) over the stream
            streamed += 1
            item = (qid, p.vectors[i], p.payloads[i] if p.payloads is not None else None)
            if len(reservoir) < sample:
                reservoir.append(item)
            elif (j := rng.randrange(streamed)) < sample:
                reservoir[j] = item
    distinct = seen.count
    if not full and reservoir:
        ids = [r[0] for r in reservoir]
        vecs = np.stack([r[1] for r in reservoir])
        pls = [r[2] for r in reservoir] if any(r[2] is not None for r in reservoir) else None
        _compare(target, collection, rep, ids, vecs, pls, cosine, tolerance, max_problems)
    rep.expected_count = distinct
    if full:
        for page in target.scroll(collection, batch_size=5000, with_vectors=False, with_payload=False):
            keys = id_keys([sp.id for sp in page])
            for j in np.flatnonzero(~seen.contains(keys)):
                rep.extra += 1
                rep.problem(Problem("extra", page[j].id, "in Qdrant but not in the source"), max_problems)
    if rep.actual_count != distinct:
        rep.problem(Problem("count", detail=f"source has {distinct} distinct valid points, "
                                            f"the collection has {rep.actual_count}"), max_problems)
    rep.ok = (rep.actual_count == distinct and rep.missing == 0 and rep.extra == 0
              and rep.vector_mismatches == 0 and rep.payload_mismatches == 0)
    if progress is not None:
        progress.stop()
    rep.seconds = round(time.perf_counter() - t0, 3)
    rep.points_per_second = round(rep.checked / rep.seconds, 1) if rep.seconds else 0.0
    return rep


def _compare(target: Target, collection: str, rep: VerifyReport, ids: list[Any], vecs: np.ndarray,
             payloads: list[dict[str, Any]] | None, cosine: bool, tol: float, max_problems: int) -> None:
    if not len(ids):
        return
    stored = target.retrieve(collection, list(ids), with_vectors=True)
    rep.checked += len(ids)
    expect = normalize_rows(np.asarray(vecs, dtype=np.float32)) if cosine else np.asarray(vecs, dtype=np.float32)
    got = np.zeros_like(expect)
    present = np.zeros(len(ids), dtype=bool)
    for i, qid in enumerate(ids):
        sp = stored.get(qid)
        if sp is None:
            rep.missing += 1
            rep.problem(Problem("missing", qid, "in the source but not in Qdrant"), max_problems)
            continue
        present[i] = True
        if sp.vector is not None and sp.vector.shape == expect[i].shape:
            got[i] = sp.vector
        else:
            got[i] = np.nan
        want_pl = (payloads[i] if payloads is not None else None) or {}
        if not payload_equal(sp.payload or {}, want_pl):
            rep.payload_mismatches += 1
            rep.problem(Problem("payload", qid, _payload_diff(want_pl, sp.payload or {})), max_problems)
    diff = np.abs(got - expect).max(axis=1, initial=0.0)
    bad = present & ~(diff <= tol)
    for i in np.flatnonzero(bad):
        rep.vector_mismatches += 1
        rep.problem(Problem("vector", ids[i], f"max abs difference {float(diff[i]):.3g} > {tol}"), max_problems)


def _payload_diff(want: dict[str, Any], got: dict[str, Any]) -> str:
    keys = sorted(set(want) | set(got))
    diffs = [f"{k}: source={want.get(k, '<absent>')!r} qdrant={got.get(k, '<absent>')!r}"
             for k in keys if want.get(k, object()) != got.get(k, object())]
    text = "; ".join(diffs[:3])
    return text[:300] + (" ..." if len(diffs) > 3 or len(text) > 300 else "")
