"""Candidate collection settings, and the choice of the cheapest that meets the recall goal."""

from __future__ import annotations

import json
import math
from typing import Any

from cortex.collection_config import (
    BinaryQuantization,
    CollectionConfig,
    HnswConfig,
    Quantization,
    QuantizationSearch,
    ScalarQuantization,
    SearchParams,
    VectorParams,
)
from cortex.errors import CortexError
from cortex.plan.experiment import Candidate, TrialResult

EFS = (64, 128, 256, 384, 512)  # query-time hnsw_ef measured on the builds
EAGER_EF = 256  # above it, a tunable candidate's searches are measured only when needed: see deferred()


def _searches(rescore: QuantizationSearch | None = None, efs: tuple[int, ...] = EFS) -> list[SearchParams]:
    return [SearchParams(hnsw_ef=ef, quantization=rescore) for ef in efs]


OPTIMIZE_FOR = ("balanced", "time", "memory")
QUICK = ("defaults", "int8", "int8-ef32-ondisk")
DEFAULT = ("defaults", "int8", "int8-ef32", "int8-ef20", "int8-ondisk", "int8-ef32-ondisk", "int8-ef20-ondisk")
DERIVED = ("m32", "float16", "binary")  # estimated from the defaults' measured components unless ``measure_all``


def candidates(name: str, dim: int, distance: str, *, quick: bool = False, only: list[str] | None = None,
               measure_all: bool = False) -> list[Candidate]:
    """The candidates to build on the sample. Default: Qdrant's defaults, and scalar int8 with rescoring at
    ef_construct 100 / 32 / 20 with the vectors in RAM / on disk (a dearer graph built only when the cheaper one
    falls short of the recall goal: :func:`dominated`); int8 m 8, int8 ef_construct 64 and the
    estimate-only variants (m 32, float16 storage, binary quantization) only with ``measure_all`` (otherwise
    m 32, float16 and binary are derived from the defaults' build: :func:`cortex.plan.estimate.derive`).
    ``quick``: defaults, int8 and int8 ef_construct 32 on disk;
    ``only``: these names (Qdrant's defaults are always measured: they are the baseline)."""
    vec = VectorParams(size=dim, distance=distance)
    int8 = Quantization(scalar=ScalarQuantization(type="int8", always_ram=True))
    rescore2 = QuantizationSearch(rescore=True, oversampling=2.0)
    on_disk = vec.model_copy(update={"on_disk": True})

    def cc(**kw: Any) -> CollectionConfig:
        kw.setdefault("vectors", vec)
        return CollectionConfig(name=name, **kw)

    out = [
        Candidate("defaults", cc(hnsw=HnswConfig(m=16, ef_construct=100)), _searches(),
                  "Qdrant's defaults: float32 vectors in RAM, m 16, ef_construct 100"),
        Candidate("int8", cc(hnsw=HnswConfig(m=16, ef_construct=100), quantization=int8), _searches(rescore2),
                  "scalar int8 quantization in RAM, rescored with the original vectors (oversampling 2)"),
        Candidate("int8-ef32", cc(hnsw=HnswConfig(m=16, ef_construct=32), quantization=int8), _searches(rescore2),
                  "int8 + rescore with a cheap graph build (ef_construct 32): about half the build time of int8, "
                  "needs a higher hnsw_ef for the same recall"),
        Candidate("int8-ef20", cc(hnsw=HnswConfig(m=16, ef_construct=20), quantization=int8), _searches(rescore2),
                  "int8 + rescore with the cheapest graph build (ef_construct 20): needs hnsw_ef 384-512 for the "
                  "recall int8-ef32 has at 256"),
        Candidate("int8-ondisk", cc(vectors=on_disk, hnsw=HnswConfig(m=16, ef_construct=100), quantization=int8),
                  _searches(rescore2), "original vectors on disk (mmap), int8 copy in RAM, rescored from disk"),
        Candidate("int8-ef32-ondisk", cc(vectors=on_disk, hnsw=HnswConfig(m=16, ef_construct=32),
                                         quantization=int8), _searches(rescore2),
                  "ef_construct 32, original vectors on disk, int8 copy in RAM: the least RAM and a fast build"),
        Candidate("int8-ef20-ondisk", cc(vectors=on_disk, hnsw=HnswConfig(m=16, ef_construct=20),
                                         quantization=int8), _searches(rescore2),
                  "ef_construct 20, original vectors on disk, int8 copy in RAM: the least RAM and the fastest build"),
        Candidate("int8-m8", cc(hnsw=HnswConfig(m=8, ef_construct=64), quantization=int8), _searches(rescore2),
                  "int8 + rescore on a sparser graph (m 8, ef_construct 64): a smaller graph"),
        Candidate("int8-ef64", cc(hnsw=HnswConfig(m=16, ef_construct=64), quantization=int8), _searches(rescore2),
                  "int8 + rescore with a cheaper graph build (ef_construct 64)"),
        Candidate("m32", cc(hnsw=HnswConfig(m=32, ef_construct=200)), _searches(efs=(64, 128)),
                  "a denser graph (m 32, ef_construct 200): more recall per ef, more RAM and build time"),
        Candidate("float16", cc(vectors=vec.model_copy(update={"datatype": "float16"}),
                                hnsw=HnswConfig(m=16, ef_construct=100)), _searches(efs=(128,)),
                  "vectors stored as float16 (half the vector RAM, slight precision loss)", tune=False),
        Candidate("binary", cc(hnsw=HnswConfig(m=16, ef_construct=100),
                               quantization=Quantization(binary=BinaryQuantization(always_ram=True))),
                  _searches(QuantizationSearch(rescore=True, oversampling=4.0), efs=(128, 256)),
                  "binary quantization (1 bit per dimension) + rescore, oversampling 4", tune=False),
    ]
    if only:
        unknown = sorted(set(only) - {c.name for c in out})
        if unknown:
            raise CortexError(f"--candidates: unknown candidate(s) {', '.join(unknown)}; choose from "
                              f"{', '.join(c.name for c in out)}")
        return [c for c in out if c.name == "defaults" or c.name in only]
    if quick:
        return [c for c in out if c.name in QUICK]
    return out if measure_all else [c for c in out if c.name in DEFAULT]


def deferred(c: Candidate, measure_all: bool = False) -> list[SearchParams]:
    """The searches of ``c`` measured only when none at a lower hnsw_ef meets the recall goal (on the shard its trial
    kept): within one build every option costs the same under every ``--optimize-for`` and the lower hnsw_ef wins
    the tie, so a higher one can only be chosen then. None with ``measure_all``, nor for an estimate-only
    candidate."""
    if measure_all or not c.tune:
        return []
    return [s for s in c.searches if (s.hnsw_ef or 0) > EAGER_EF]


def eager(c: Candidate, measure_all: bool = False) -> list[SearchParams]:
    """The searches of ``c`` its trial measures (the rest: :func:`deferred`)."""
    later = deferred(c, measure_all)
    return [s for s in c.searches if s not in later]


def derived(name: str, dim: int, distance: str, measured: list[Candidate]) -> list[Candidate]:
    """The estimate-only candidates not measured: their RAM and disk are derived from the defaults' build."""
    have = {c.name for c in measured}
    return [c for c in candidates(name, dim, distance, measure_all=True) if c.name in DERIVED and c.name not in have]


def options(trials: list[TrialResult], cands: list[Candidate], estimates: dict[str, dict[str, Any]],
            ready: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """One row per (candidate, query params): recall, latency, build time, the projected RAM / disk and
    (``ready``) the projected seconds to a ready collection."""
    by_name = {c.name: c for c in cands}
    rows = []
    for t in trials:
        est = estimates.get(t.name, {})
        for s in t.searches:
            rows.append({"candidate": t.name, "search": s.params, "recall": s.recall, "p50_ms": s.p50_ms,
                         "p95_ms": s.p95_ms, "build_seconds": t.build_seconds,
                         "build_cpu_seconds": t.build_cpu_seconds, "ram_bytes": est.get("ram_bytes"),
                         "disk_bytes": est.get("disk_bytes"), "ready_seconds": (ready or {}).get(t.name),
                         "tunable": by_name[t.name].tune, "sample_points": t.points,
                         "derived_from": t.derived_from})
    return rows


def next_rungs(later: dict[str, str], short: list[str], built: list[Candidate]) -> dict[str, str]:
    """For each candidate of ``short`` (built, and falling short of the recall goal): the cheapest of those it held
    back (``later``: :func:`dominated`), the next rung of its ladder (int8 at ef_construct 20 -> 32 -> 100)."""
    ef = {c.name: _ef_construct(c) for c in built}
    return {d: min((b for b, held_by in later.items() if held_by == d), key=lambda b: ef[b]) for d in short}


def _ef_construct(c: Candidate) -> int:
    """The candidate's HNSW ef_construct (Qdrant's default, 100, when unset)."""
    return (c.config.hnsw.ef_construct if c.config.hnsw else None) or 100


def graph_key(c: Candidate) -> str:
    """Candidates that build the same graph (same m, ef_construct and quantization; on-disk or not) share
    one half-sample build for the recall projection."""
    h, q = c.config.hnsw, c.config.quantization
    return f"{h.m if h else None}/{h.ef_construct if h else None}/{q.model_dump_json() if q else None}"


def siblings(cands: list[Candidate]) -> dict[str, str]:
    """On-disk candidate -> its in-RAM sibling among ``cands`` (the same config but for ``vectors.on_disk``): the
    same graph searched the same way (quantized, rescored with the original vectors, which are the same bytes in RAM
    or mapped from disk), so it needs no build of its own; its RAM and disk are projected from the sibling's."""
    def key(c: Candidate) -> str:
        return c.config.model_copy(update={"vectors": c.config.vectors.model_copy(update={"on_disk": None})}
                                   ).model_dump_json(exclude_none=True)

    in_ram = {key(c): c.name for c in cands if not c.config.vectors.on_disk}
    return {c.name: in_ram[key(c)] for c in cands if c.config.vectors.on_disk and key(c) in in_ram}


def dominated(built: list[Candidate]) -> dict[str, str]:
    """Candidate -> the cheaper one among ``built`` that makes building it pointless as long as that one meets the
    recall goal: the same settings but a lower ef_construct. The graph's size is set by m, so RAM and disk are the
    same, and the build is cheaper, so it is cheaper under every ``--optimize-for``; the dearer one can only win
    when the cheaper one falls short of the recall goal (then it is built)."""
    def key(c: Candidate) -> str:
        h = c.config.hnsw.model_copy(update={"ef_construct": None}) if c.config.hnsw else None
        return c.config.model_copy(update={"hnsw": h}).model_dump_json(exclude_none=True)

    out = {}
    for b in built:
        cheaper = [a for a in built if a.tune and key(a) == key(b) and _ef_construct(a) < _ef_construct(b)]
        if b.tune and b.name != "defaults" and cheaper:
            out[b.name] = min(cheaper, key=_ef_construct).name
    return out


def miss_growth(pairs: list[tuple[TrialResult, TrialResult]], slots: int) -> tuple[float, float]:
    """How much HNSW's miss rate (1 - recall) at a fixed hnsw_ef grows when the graph doubles: the misses of every
    (half-sample build, full-sample build) pair of the same settings, at every hnsw_ef, pooled (one pair's few
    misses are too noisy: 2 against 16 read as x8 per doubling). Returns (the pooled ratio, its upper bound at two
    standard errors, the misses counted as Poisson over ``slots`` = queries x k per search). A pair's searches are
    matched by their parameters; one measured on one side only is left out. The bound is what the
    projection uses: on the bench's data the pooled ratio came out 1.40-1.65 between runs at 10k -> 20k points
    while the growth from 20k to 200k was 1.53-1.70, and the point estimate once projected 0.966 for a 0.9355.
    Never below 1."""
    half = full = 0.0
    for h, f in pairs:
        on_full = {_key(b.params): b for b in f.searches}
        for a in h.searches:
            if (b := on_full.get(_key(a.params))) is not None:
                half += max(0.0, 1 - a.recall)
                full += max(0.0, 1 - b.recall)
    if half <= 0:
        return 1.0, 1.0
    g = full / half
    n_half, n_full = half * slots, max(full * slots, 0.5)
    upper = g * math.exp(2 * math.sqrt(1 / n_half + 1 / n_full))
    return max(1.0, g), max(1.0, upper)


def project_recall(full: TrialResult, total: int, growth: float) -> dict[int | None, float]:
    """Per hnsw_ef, the recall expected on ``total`` points: the sample's miss rate times ``growth`` (see
    :func:`miss_growth`) per doubling from the sample to ``total``."""
    doublings = math.log2(total / full.points) if total > full.points else 0.0
    return {s.params.get("hnsw_ef"): round(max(0.0, 1 - min(1.0, max(0.0, 1 - s.recall) * growth ** doublings)), 4)
            for s in full.searches}


def choose(rows: list[dict[str, Any]], min_recall: float, optimize_for: str = "balanced"
           ) -> tuple[dict[str, Any] | None, str]:
    """The cheapest option meeting ``min_recall``. Cost, each relative to Qdrant's defaults: ``time`` the
    projected time to a ready collection (load + index build), ``memory`` the projected RAM, ``balanced``
    the mean of the two; then the other one, then query latency. None when nothing meets it."""
    if optimize_for not in OPTIMIZE_FOR:
        raise CortexError(f"--optimize-for {optimize_for}: choose one of {', '.join(OPTIMIZE_FOR)}")
    base = next((r for r in rows if r["candidate"] == "defaults"), rows[0] if rows else None)
    if base is None:
        return None, "no candidate was measured"
    ram0 = base["ram_bytes"] or 1
    time0 = base.get("ready_seconds") or base["build_cpu_seconds"] or base["build_seconds"] or 1e-9

    def cost(r: dict[str, Any]) -> tuple[float, float, int, float]:
        ram = (r["ram_bytes"] or ram0) / ram0
        ready = (r.get("ready_seconds") or r["build_cpu_seconds"] or r["build_seconds"]) / time0
        ef = r["search"].get("hnsw_ef") or 0  # within one build, the lowest ef meeting the goal (steadier than p50)
        if optimize_for == "time":
            return ready, ram, ef, r["p50_ms"]
        if optimize_for == "memory":
            return ram, ready, ef, r["p50_ms"]
        return (ram + ready) / 2, ready, ef, r["p50_ms"]

    ok = [r for r in rows if r["tunable"] and r.get("projected_recall", r["recall"]) >= min_recall]
    if not ok:
        best = max((r for r in rows if r["tunable"]), key=lambda r: r["recall"])
        return None, (f"no candidate reached recall@10 {min_recall} on the sample (best: {best['candidate']} "
                      f"{_params(best['search'])} at {best['recall']:.3f}); raise hnsw_ef or m, or lower --min-recall")
    pick = min(ok, key=cost)
    what = {"time": "projected time to a ready collection (load + index build)", "memory": "projected RAM",
            "balanced": "mean of the projected RAM and time-to-ready ratios"}[optimize_for]
    return pick, (f"cheapest of {len(ok)} option(s) meeting recall@10 >= {min_recall} (projected to the full "
                  f"count), optimized for {optimize_for}: {pick['candidate']} {_params(pick['search'])}, recall "
                  f"{pick['recall']:.3f} on the sample (projected {pick.get('projected_recall', pick['recall']):.3f}), "
                  f"cost {cost(pick)[0]:.2f}x the defaults' ({what})")


def _key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True)


def _params(p: dict[str, Any]) -> str:
    q = p.get("quantization") or {}
    s = f"hnsw_ef {p.get('hnsw_ef')}"
    if q:
        s += f", rescore {q.get('rescore')}, oversampling {q.get('oversampling')}"
    return s
