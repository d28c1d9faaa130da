"""Prove a collection matches its source: counts, ids, vectors, payloads.

Without a source: the migration guide's checks (count, a sample of points with dimension and payload
keys, a search returns results).  With a source, the source is streamed once and its
points are looked up in the target in batches: with ``full`` every point is compared and
ids present in Qdrant but not in the source are listed; otherwise a uniform random sample
(reservoir) of ``sample`` points is compared and the counts must match.
Vectors are compared after the same normalization Qdrant applies (cosine: unit length, on
both sides, so a target that keeps vectors as given, like qdrant-client's local mode, compares too).
Named dense vectors are compared the same way; sparse vectors by their set of indices (Qdrant
keeps them sorted) and values within the tolerance, an empty one equal to none.  A point
whose vectors differ counts once as a vector mismatch; the detail names each vector that differs.
"""

from __future__ import annotations

import contextlib
import gc
import random
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from cortex.errors import TargetError
from cortex.ids import DEFAULT_ID_FIELD, map_id
from cortex.payload_compare import payload_equal
from cortex.run_ahead import run_ahead
from cortex.seen_ids import SeenIds, id_keys
from cortex.sources.base import Source
from cortex.targets.base import StoredPoint, Target, normalize_rows, stack_vectors
from cortex.validate import Prepared, validate


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
    samples: list[dict[str, Any]] = field(default_factory=list)  # basic mode: what the migration guide prints
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
    """The migration guide's Step 4 checks, without a source to compare against."""
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
                          batch_size: int = 2048, max_problems: int = 1000, seed: int = 0,
                          progress: Any = None, where: Any = None) -> VerifyReport:
    """Compare ``collection`` with ``source``; ``report.ok`` is True only when everything holds.

    ``where`` (a :mod:`cortex.where` AST; the source is that subset too): only the collection's
    points matching it are counted and searched for extra ids, so one rollout unit verifies
    on its own while other units' points share the collection.

    The source is read and validated in a reader thread (bounded queue) while this thread
    looks the points up in the target, so memory stays at a few batches whatever the size.
    """
    t0 = time.perf_counter()
    info = _info(target, collection)
    in_scope = {"filter": where} if where is not None else {}  # plain calls when there is no subset
    points = target.count(collection, exact=True, **in_scope) if where is not None else info.points
    rep = VerifyReport(collection=collection, target=target.location, source=source.path,
                       mode="full" if full else "sample", actual_count=points, tolerance=tolerance,
                       distance=info.distance, dim=info.dim)
    cosine = info.distance == "cosine"
    seen = SeenIds()
    rng = random.Random(seed)
    sinfo = source.info()
    if progress is not None:
        progress.start(sinfo.count)
    dim = info.dim or sinfo.dim or 0
    log = _Problems(rep, max_problems)
    named_cosine = frozenset(n for n, v in info.named_vectors.items() if v.get("distance") == "cosine")
    with _fewer_gc_passes():
        reservoir = _stream(target, collection, source, rep, log, seen, full, sample, rng, batch_size, dim, id_field,
                cosine, tolerance, progress, named_cosine)
    distinct = seen.count
    if not full and reservoir:
        ids = [r[0] for r in reservoir]
        vecs = np.stack([r[1] for r in reservoir])
        pls = [r[2] for r in reservoir] if any(r[2] is not None for r in reservoir) else None
        sparse = {k: [r[3][k] for r in reservoir] for k in reservoir[0][3]} if reservoir[0][3] else None
        named = {k: np.stack([r[4][k] for r in reservoir]) for k in reservoir[0][4]} if reservoir[0][4] else None
        _compare(target, collection, log, 0, ids, vecs, pls, cosine, tolerance, dim, normalized=cosine,
                 sparse=sparse, named=named, named_cosine=named_cosine)
    rep.expected_count = distinct
    if full and rep.missing == 0 and target.count(collection, exact=True, **in_scope) == distinct:
        rep.actual_count = distinct  # every source id is there and the counts match: no extra ids possible
    elif full:
        for page in target.scroll(collection, batch_size=10_000, with_vectors=False, with_payload=False,
                                  **in_scope):
            keys = id_keys([sp.id for sp in page])
            for j in np.flatnonzero(~seen.contains(keys)):
                log.add(Problem("extra", page[j].id, "in Qdrant but not in the source"), "extra", -1)
    log.finish()
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


def _stream(target: Target, collection: str, source: Source, rep: VerifyReport, log: _Problems, seen: SeenIds,
            full: bool, sample: int, rng: random.Random, batch_size: int, dim: int, id_field: str, cosine: bool,
            tolerance: float, progress: Any, named_cosine: frozenset[str] = frozenset()) -> list[tuple[Any, ...]]:
    """One pass over the source: compare every batch (full) or fill and return the reservoir (sample).

    A reservoir item: (id, vector, payload, {sparse name: row}, {named vector name: row}).
    """
    reservoir: list[tuple[Any, ...]] = []
    streamed = 0
    # cosine: the reader thread normalizes the expected vectors (numpy runs there without the GIL)
    for p in _read_ahead(source, max(1, batch_size), dim, id_field, seen, normalize=cosine):
        rep.source_invalid += len(p.rejected)
        rep.source_duplicates += p.counts.duplicates
        if progress is not None:
            progress.advance(p.counts.read)
        if full:
            if p.dup_ids:  # a later record replaces an earlier one (last one wins, as in the migration)
                log.supersede(id_keys([map_id(d)[0] for d in p.dup_ids]), p.seq)
            _compare(target, collection, log, p.seq, p.ids, p.vectors, p.payloads, cosine, tolerance, dim,
                     normalized=cosine, sparse=p.sparse, named=p.named, named_cosine=named_cosine)
            continue
        if p.after_duplicate:  # a later record replaces an earlier one: sample the later one
            dup = {map_id(d)[0] for d in p.dup_ids}
            reservoir = [r for r in reservoir if r[0] not in dup]
        for i, qid in enumerate(p.ids):  # reservoir sampling (Algorithm R) over the stream
            streamed += 1
            item = (qid, p.vectors[i], p.payloads[i] if p.payloads is not None else None,
                    {k: rows[i] for k, rows in (p.sparse or {}).items()},
                    {k: a[i] for k, a in (p.named or {}).items()})
            if len(reservoir) < sample:
                reservoir.append(item)
            elif (j := rng.randrange(streamed)) < sample:
                reservoir[j] = item
    return reservoir


@contextlib.contextmanager
def _fewer_gc_passes() -> Iterator[None]:
    """Raise the cyclic GC's first threshold while streaming, then restore it.

    Every vector read from qdrant_edge arrives as a new Python list (a GC-tracked container),
    so the default threshold (700) runs a collection every few points; none of them finds
    garbage here (lists of floats hold no cycles).  Measured: 10-30% more points/s.
    """
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], 50_000), *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)


_COUNTERS = {"missing": "missing", "extra": "extra", "vector": "vector_mismatches", "payload": "payload_mismatches"}


class _Problems:
    """Problem counts and the first ``limit`` problems, with retraction for superseded duplicates.

    When a source id appears again in a later batch, the later record is what Qdrant holds
    (the migration's last-one-wins rule), so problems found for the earlier record are withdrawn.
    """

    def __init__(self, rep: VerifyReport, limit: int) -> None:
        self.rep, self.limit = rep, limit
        self.keys: list[tuple[int, int]] = []  # (id key, batch seq) per listed problem
        self.flagged: dict[int, list[tuple[str, int]]] = {}  # id key -> (kind, seq), for retraction
        self.superseded: dict[int, int] = {}

    def add(self, p: Problem, kind: str, seq: int, key: int | None = None) -> None:
        counter = _COUNTERS[kind]
        setattr(self.rep, counter, getattr(self.rep, counter) + 1)
        if key is not None and len(self.flagged) < 1_000_000:
            self.flagged.setdefault(key, []).append((kind, seq))
        if len(self.rep.problems) < self.limit:
            self.rep.problems.append(p)
            self.keys.append((key if key is not None else -1, seq))
        else:
            self.rep.problems_truncated += 1

    def supersede(self, keys: np.ndarray, seq: int) -> None:
        for k in keys.tolist():
            for kind, s in self.flagged.pop(k, ()):
                if s < seq:
                    counter = _COUNTERS[kind]
                    setattr(self.rep, counter, getattr(self.rep, counter) - 1)
                    self.superseded[k] = seq

    def finish(self) -> None:
        if not self.superseded:
            return
        keep = [i for i, (k, s) in enumerate(self.keys) if not (k in self.superseded and s < self.superseded[k])]
        self.rep.problems = [self.rep.problems[i] for i in keep]
        self.keys = [self.keys[i] for i in keep]
        r = self.rep
        r.problems_truncated = max(0, r.missing + r.extra + r.vector_mismatches + r.payload_mismatches
                                   - len(r.problems))


def _read_ahead(source: Source, batch_size: int, dim: int, id_field: str, seen: SeenIds,
                normalize: bool = False) -> Iterator[Prepared]:
    """Read and validate the source in a thread, a few batches ahead (bounded queue).

    With ``normalize``, vectors come out scaled to unit length (as Qdrant stores cosine vectors).
    """
    def produce() -> Iterator[Prepared]:
        for seq, batch in enumerate(source.batches(batch_size)):
            p = validate(batch, dim, id_field, seq, seen)  # same mapping and checks as the migration
            if normalize and len(p.ids):
                p.vectors = normalize_rows(np.asarray(p.vectors, dtype=np.float32))
            yield p

    yield from run_ahead(produce(), 4, "cortex-verify-reader")


def fetch_points(target: Target, collection: str, ids: list[Any], dim: int, extras: bool = False
                 ) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any] | None], list[StoredPoint] | None]:
    """Look ``ids`` up: (position in ``ids`` of each point found, their vectors (n, dim) float32, payloads,
    and with ``extras`` the stored points themselves, for their sparse and named vectors)."""
    pos = {qid: i for i, qid in enumerate(ids)}
    stored: list[StoredPoint] | None = None
    if extras:
        stored = list(target.retrieve(collection, list(ids), with_vectors=True).values())
        rec_ids, got, payloads = [sp.id for sp in stored], stack_vectors([sp.vector for sp in stored], dim), \
            [sp.payload for sp in stored]
    else:
        rec_ids, got, payloads = target.fetch_arrays(collection, ids, dim)
    found = np.fromiter((pos.get(i, -1) for i in rec_ids), dtype=np.int64, count=len(rec_ids))
    if (found < 0).any():  # ids the target normalized differently (should not happen): treat as absent
        keep = np.flatnonzero(found >= 0)
        found, got, payloads = found[keep], got[keep], [payloads[i] for i in keep]
        stored = [stored[i] for i in keep] if stored is not None else None
    return found, got, payloads, stored


def _compare(target: Target, collection: str, log: _Problems, seq: int, ids: list[Any], vecs: np.ndarray,
             payloads: list[dict[str, Any]] | None, cosine: bool, tol: float, dim: int,
             normalized: bool = False, sparse: dict[str, list[Any]] | None = None,
             named: dict[str, np.ndarray] | None = None, named_cosine: frozenset[str] = frozenset()) -> None:
    if not len(ids):
        return
    log.rep.checked += len(ids)
    found, got, got_payloads, stored = fetch_points(target, collection, ids, dim, extras=bool(sparse or named))
    if len(found) < len(ids):
        absent = np.ones(len(ids), dtype=bool)
        absent[found] = False
        miss = np.flatnonzero(absent)
        mkeys = id_keys([ids[i] for i in miss]).tolist()
        for i, k in zip(miss.tolist(), mkeys, strict=True):
            log.add(Problem("missing", ids[i], "in the source but not in Qdrant"), "missing", seq, k)
    if not len(found):
        return
    expect = np.asarray(vecs, dtype=np.float32)
    if len(found) != len(expect) or (found != np.arange(len(found))).any():  # usually every point, in order
        expect = expect[found]
    if cosine and not normalized:
        expect = normalize_rows(expect)
    if cosine and not target.normalizes_cosine:  # Qdrant stores unit vectors; qdrant-client's local mode
        unreadable = np.isnan(got).any(axis=1)        # keeps them as given: compare directions
        got = normalize_rows(got)
        got[unreadable] = np.nan
    with np.errstate(invalid="ignore"):
        d = np.subtract(got, expect)
        diff = np.abs(d, out=d).max(axis=1, initial=0.0)  # one n x dim temporary, not two
    bad_vec = np.flatnonzero(~(diff <= tol))  # NaN (unreadable stored vector) counts as a mismatch
    differ: dict[int, list[str]] = {}  # j -> what differs, one entry per vector
    for j in bad_vec.tolist():
        differ[j] = ["stored vector missing or of another dimension" if np.isnan(diff[j]) else
                     f"max abs difference {float(diff[j]):.3g} > {tol}"]
    if stored is not None:
        for name, arr in (named or {}).items():
            for j, d in _named_diffs(name, np.asarray(arr, dtype=np.float32)[found], stored, tol,
                                     name in named_cosine, target.normalizes_cosine):
                differ.setdefault(j, []).append(d)
        for name, rows in (sparse or {}).items():
            for j, i in enumerate(found.tolist()):
                have = stored[j].sparse.get(name) if stored[j].sparse else None
                d = _sparse_diff(name, rows[i], have, tol)
                if d:
                    differ.setdefault(j, []).append(d)
    for j in sorted(differ):
        i = int(found[j])
        log.add(Problem("vector", ids[i], "; ".join(differ[j])), "vector", seq, int(id_keys([ids[i]])[0]))
    for j, i in enumerate(found.tolist()):
        want = (payloads[i] if payloads is not None else None) or {}
        have = got_payloads[j] or {}
        if have != want and not payload_equal(have, want):  # exact equality first: cheap, and the rule
            log.add(Problem("payload", ids[i], _payload_diff(want, have)), "payload", seq,
                    int(id_keys([ids[i]])[0]))


def _named_diffs(name: str, expect: np.ndarray, stored: list[StoredPoint], tol: float, cosine: bool,
                 target_normalizes: bool) -> Iterator[tuple[int, str]]:
    """(row, detail) for each stored point whose named vector ``name`` differs from ``expect`` (all-NaN: none)."""
    dim = expect.shape[1] if expect.ndim == 2 else 0
    got = stack_vectors([(sp.named or {}).get(name) for sp in stored], dim)
    want_none, got_none = np.isnan(expect).all(axis=1), np.isnan(got).all(axis=1)
    if cosine:
        expect = normalize_rows(np.nan_to_num(expect))
        if not target_normalizes:
            got = normalize_rows(np.nan_to_num(got))
    with np.errstate(invalid="ignore"):
        diff = np.abs(got - expect).max(axis=1, initial=0.0)
    for j in np.flatnonzero(want_none != got_none).tolist():
        yield j, (f"named vector '{name}' missing in Qdrant or of another dimension" if got_none[j] else
                  f"named vector '{name}' in Qdrant but not in the source")
    for j in np.flatnonzero(~want_none & ~got_none & ~(diff <= tol)).tolist():
        yield j, f"named vector '{name}': max abs difference {float(diff[j]):.3g} > {tol}"


def _sparse_diff(name: str, want: Any, have: Any, tol: float) -> str | None:
    """What differs between a source sparse row and the stored one (None or empty: no vector), or None."""
    if want == have:
        return None
    wi = np.asarray(want[0] if want is not None else [], dtype=np.int64)
    hi = np.asarray(have[0] if have is not None else [], dtype=np.int64)
    wv = np.asarray(want[1] if want is not None else [], dtype=np.float32)
    hv = np.asarray(have[1] if have is not None else [], dtype=np.float32)
    ow, oh = np.argsort(wi, kind="stable"), np.argsort(hi, kind="stable")
    wi, wv, hi, hv = wi[ow], wv[ow], hi[oh], hv[oh]
    if len(wi) != len(hi) or (wi != hi).any():
        missing, extra = np.setdiff1d(wi, hi), np.setdiff1d(hi, wi)
        eg = f"index {int(missing[0])} missing in Qdrant" if len(missing) else \
            f"index {int(extra[0])} only in Qdrant" if len(extra) else "repeated indices"
        return f"sparse vector '{name}': {len(wi)} entries in the source, {len(hi)} in Qdrant ({eg})"
    d = float(np.abs(wv - hv).max(initial=0.0))
    if not d <= tol:
        j = int(np.argmax(np.abs(wv - hv)))
        return f"sparse vector '{name}': value at index {int(wi[j])} differs by {d:.3g} > {tol}"
    return None


def _payload_diff(want: dict[str, Any], got: dict[str, Any]) -> str:
    keys = sorted(set(want) | set(got))
    diffs = [f"{k}: source={want.get(k, '<absent>')!r} qdrant={got.get(k, '<absent>')!r}"
             for k in keys if want.get(k, object()) != got.get(k, object())]
    text = "; ".join(diffs[:3])
    return text[:300] + (" ..." if len(diffs) > 3 or len(text) > 300 else "")
