"""Candidate collection settings, and the choice of the cheapest that meets the recall goal."""

from __future__ import annotations

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

EFS = (64, 128, 256)  # query-time hnsw_ef measured on every build


def _searches(rescore: QuantizationSearch | None = None, efs: tuple[int, ...] = EFS) -> list[SearchParams]:
    return [SearchParams(hnsw_ef=ef, quantization=rescore) for ef in efs]


def candidates(name: str, dim: int, distance: str, *, quick: bool = False,
               only: list[str] | None = None) -> list[Candidate]:
    """Qdrant's defaults, scalar int8 with rescoring, other m / ef_construct, on-disk and the estimate-only
    variants (float16 storage, binary quantization, m 32). ``quick``: the first five only; ``only``: these
    names (Qdrant's defaults are always measured: they are the baseline)."""
    vec = VectorParams(size=dim, distance=distance)
    int8 = Quantization(scalar=ScalarQuantization(type="int8", always_ram=True))
    rescore2 = QuantizationSearch(rescore=True, oversampling=2.0)

    def cc(**kw: Any) -> CollectionConfig:
        kw.setdefault("vectors", vec)
        return CollectionConfig(name=name, **kw)

    out = [
        Candidate("defaults", cc(hnsw=HnswConfig(m=16, ef_construct=100)), _searches(),
                  "Qdrant's defaults: float32 vectors in RAM, m 16, ef_construct 100"),
        Candidate("int8", cc(hnsw=HnswConfig(m=16, ef_construct=100), quantization=int8), _searches(rescore2),
                  "scalar int8 quantization in RAM, rescored with the original vectors (oversampling 2)"),
        Candidate("int8-ef64", cc(hnsw=HnswConfig(m=16, ef_construct=64), quantization=int8), _searches(rescore2),
                  "int8 + rescore with a cheaper graph build (ef_construct 64)"),
        Candidate("int8-m8", cc(hnsw=HnswConfig(m=8, ef_construct=64), quantization=int8), _searches(rescore2),
                  "int8 + rescore on a sparser graph (m 8, ef_construct 64): the cheapest build, less RAM"),
        Candidate("int8-ondisk", cc(vectors=vec.model_copy(update={"on_disk": True}),
                                    hnsw=HnswConfig(m=16, ef_construct=100), quantization=int8), _searches(rescore2),
                  "original vectors on disk (mmap), int8 copy in RAM, rescored from disk"),
    ]
    out += [
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
    return out[:5] if quick else out


def options(trials: list[TrialResult], cands: list[Candidate], estimates: dict[str, dict[str, Any]]
            ) -> list[dict[str, Any]]:
    """One row per (candidate, query params): recall, latency, build time and the projected RAM / disk."""
    by_name = {c.name: c for c in cands}
    rows = []
    for t in trials:
        est = estimates.get(t.name, {})
        for s in t.searches:
            rows.append({"candidate": t.name, "search": s.params, "recall": s.recall, "p50_ms": s.p50_ms,
                         "p95_ms": s.p95_ms, "build_seconds": t.build_seconds,
                         "build_cpu_seconds": t.build_cpu_seconds, "ram_bytes": est.get("ram_bytes"),
                         "disk_bytes": est.get("disk_bytes"), "tunable": by_name[t.name].tune})
    return rows


def recall_drop(half: TrialResult, full: TrialResult, total: int) -> dict[int | None, float]:
    """Per hnsw_ef, how much recall the full collection is expected to lose against the sample: HNSW
    recall at a fixed ef falls as the graph grows; the loss measured from half the sample to all of it
    is extrapolated per doubling (log2) up to ``total`` points."""
    doublings = math.log2(total / full.points) if total > full.points else 0.0
    out: dict[int | None, float] = {}
    for a, b in zip(half.searches, full.searches, strict=False):
        out[b.params.get("hnsw_ef")] = round(max(0.0, a.recall - b.recall) * doublings, 4)
    return out


def choose(rows: list[dict[str, Any]], min_recall: float) -> tuple[dict[str, Any] | None, str]:
    """The cheapest option meeting ``min_recall``: cost = projected RAM and sample build time, each
    relative to Qdrant's defaults (equal weight; build in CPU seconds), then query latency. None when
    nothing meets it."""
    base = next((r for r in rows if r["candidate"] == "defaults"), rows[0] if rows else None)
    if base is None:
        return None, "no candidate was measured"
    ram0 = base["ram_bytes"] or 1
    build0 = base["build_cpu_seconds"] or base["build_seconds"] or 1e-9

    def cost(r: dict[str, Any]) -> tuple[float, float]:
        return ((r["ram_bytes"] or ram0) / ram0 + (r["build_cpu_seconds"] or r["build_seconds"]) / build0,
                r["p50_ms"])

    ok = [r for r in rows if r["tunable"] and r.get("projected_recall", r["recall"]) >= min_recall]
    if not ok:
        best = max((r for r in rows if r["tunable"]), key=lambda r: r["recall"])
        return None, (f"no candidate reached recall@10 {min_recall} on the sample (best: {best['candidate']} "
                      f"{_params(best['search'])} at {best['recall']:.3f}); raise hnsw_ef or m, or lower --min-recall")
    pick = min(ok, key=cost)
    r_cost = cost(pick)[0] / 2
    return pick, (f"cheapest of {len(ok)} option(s) meeting recall@10 >= {min_recall} (projected to the full "
                  f"count): {pick['candidate']} {_params(pick['search'])}, recall {pick['recall']:.3f} on the sample "
                  f"(projected {pick.get('projected_recall', pick['recall']):.3f}), cost {r_cost:.2f}x the "
                  "defaults' (mean of projected RAM and build-time ratios)")


def _params(p: dict[str, Any]) -> str:
    q = p.get("quantization") or {}
    s = f"hnsw_ef {p.get('hnsw_ef')}"
    if q:
        s += f", rescore {q.get('rescore')}, oversampling {q.get('oversampling')}"
    return s
