"""RAM, disk and time for the full collection, extrapolated from what the sample measured.

Each component of the sample's shard (vectors, quantized vectors, HNSW graph, payload, payload
index, id tracker) is measured in allocated bytes, minus what an empty collection already holds,
and scaled per point to the full count; the fixed part (WAL, empty segments) is added once.
RAM counts the components Qdrant keeps resident under the settings (vectors unless on_disk, the
quantized copy when always_ram, the graph unless hnsw.on_disk, id tracker and payload indexes;
payload stays on disk by default) plus the anonymous memory the open shard measured, which already
holds the always_ram quantized copy (Qdrant reads it into memory on open), so that one is counted once.
Time: the measured load rate is linear in points; the HNSW build grows as n log n.
"""

from __future__ import annotations

import math
from typing import Any

from cortex.collection_config import CollectionConfig
from cortex.plan.experiment import COMPONENTS, TrialResult

GIB = 1024**3


def resident(config: CollectionConfig) -> set[str]:
    """Components Qdrant keeps in RAM under ``config``."""
    out = {"id_tracker", "payload_index", "other"}
    if not config.vectors.on_disk:
        out.add("vectors")
    q = config.quantization
    ram_q = q is not None and any(x is not None and x.always_ram is not False
                                  for x in (q.scalar, q.product, q.binary))
    if ram_q or (q is not None and not config.vectors.on_disk):
        out.add("quantized")
    if not (config.hnsw and config.hnsw.on_disk):
        out.add("hnsw")
    if config.on_disk_payload is False:
        out.add("payload")
    return out


def in_heap(config: CollectionConfig) -> set[str]:
    """Resident components Qdrant copies into the process's own memory when it opens the shard (quantized vectors
    with ``always_ram``: measured, the int8 codes of a 20k sample add their file's size to the heap). The measured
    heap already holds them, so their files are not counted again."""
    q = config.quantization
    return {"quantized"} if q is not None and any(x is not None and x.always_ram is True
                                                  for x in (q.scalar, q.product, q.binary)) else set()


def fit_fixed(full: TrialResult, half: TrialResult) -> dict[str, int]:
    """Fixed bytes per component (preallocated files, empty segments, index headers): the intercept of
    the line through two builds of the same settings at two sample sizes."""
    out = {}
    dn = full.points - half.points
    for c in COMPONENTS:
        b1, b0 = full.disk.get(c, 0), half.disk.get(c, 0)
        slope = max(0.0, (b1 - b0) / dn) if dn > 0 else 0.0
        out[c] = int(min(b1, max(0.0, b1 - slope * full.points)))
    a1, a0 = full.rss_anon_bytes, half.rss_anon_bytes  # the open shard's heap: fixed + per point, the same way
    slope = max(0.0, (a1 - a0) / dn) if dn > 0 else 0.0
    out["heap"] = int(min(a1, max(0.0, a1 - slope * full.points)))
    return out


def project(trial: TrialResult, config: CollectionConfig, fixed: dict[str, int], total: int,
            wal_bytes: int) -> dict[str, Any]:
    """Disk and RAM of ``total`` points under ``config`` from the sample's ``trial``; ``fixed`` as from
    :func:`fit_fixed` (components the fit has not seen are taken as purely per point)."""
    n = max(trial.points, 1)
    per_point = {c: max(0, trial.disk.get(c, 0) - fixed.get(c, 0)) / n for c in COMPONENTS}
    full = {c: int(per_point[c] * total + min(fixed.get(c, 0), trial.disk.get(c, 0))) for c in COMPONENTS}
    ram_set = resident(config)
    heap_fixed = min(fixed.get("heap", 0), trial.rss_anon_bytes)
    anon_per_point = (trial.rss_anon_bytes - heap_fixed) / n
    heap = int(anon_per_point * total) + heap_fixed
    ram = sum(full[c] for c in ram_set - in_heap(config)) + heap  # the heap was measured under the same quantization
    disk = sum(full.values()) + wal_bytes
    return {
        "points": total,
        "disk_bytes": disk,
        "ram_bytes": ram,
        "components": full,
        "resident": sorted(ram_set),
        "bytes_per_point": {c: round(v, 1) for c, v in per_point.items() if v},
        "heap_bytes": heap,
        "wal_bytes": wal_bytes,
        "sample_points": trial.points,
        "sample_disk_bytes": sum(trial.disk.values()) + trial.wal_bytes,
        "sample_rss_bytes": trial.rss_anon_bytes + trial.rss_file_bytes,
    }


def derive(base: dict[str, Any], name: str, config: CollectionConfig, dim: int) -> dict[str, Any]:
    """RAM and disk of an estimate-only candidate (``m32``, ``float16``, ``binary``) not built on the sample,
    from the defaults' projection ``base``: float16 halves the vector bytes; binary quantization adds one bit
    per dimension (in 64-bit words) per point; m 32 doubles the graph's links. The heap is the defaults'."""
    comp = dict(base["components"])
    pts = base["points"]
    if name == "float16":
        comp["vectors"] = comp["vectors"] // 2
    elif name == "binary":
        comp["quantized"] = pts * math.ceil(dim / 64) * 8
    elif name == "m32":
        comp["hnsw"] = comp["hnsw"] * 2
    ram_set = resident(config)
    ram = sum(comp[c] for c in ram_set) + base["heap_bytes"]
    return {**base, "components": comp, "resident": sorted(ram_set), "ram_bytes": ram,
            "disk_bytes": sum(comp.values()) + base["wal_bytes"], "bytes_per_point": {},
            "derived": f"not built on the sample: {name} derived from the defaults' measured components "
                       "(plan --all builds it)"}


def guide_formula(total: int, dim: int) -> dict[str, Any]:
    """The migration guide's rule of thumb: vectors x (1 + 2.5 'HNSW overhead'), x 1.5 headroom."""
    vector = total * dim * 4
    return {"vector_bytes": vector, "index_bytes": int(vector * 2.5), "total_bytes": int(vector * 3.5),
            "recommended_bytes": int(vector * 3.5 * 1.5),
            "formula": "vectors = n x dim x 4 B; HNSW overhead = 2.5 x vectors; total x 1.5 headroom"}


def _nlogn(n: float) -> float:
    return n * math.log(max(n, 2.0))


def time_estimate(trial: TrialResult, total: int, read_rate: float | None, vector_bytes: int | None = None,
                  indexing_threshold_kb: int = 10_000) -> dict[str, Any]:
    """Seconds to load and index ``total`` points. The load: reading the source and loading the engine share one
    interpreter (both are Python under the GIL), so their per-point times add up, each measured (the inventory's
    read rate, the sample's load rate). The build: the trial's own CPU seconds scaled as n log n (a two-point
    fixed + slope fit proved noise-sensitive: its intercept ate the growth), turned into wall time at the
    parallelism the sample's build reached."""
    load_rate = trial.points / trial.load_seconds if trial.load_seconds else None
    per_point = sum(1.0 / r for r in (load_rate, read_rate) if r)
    rate = 1.0 / per_point if per_point else None
    load = total / rate if rate else None
    parallel = trial.build_cpu_seconds / trial.build_seconds if trial.build_seconds > 0 else 1.0
    build_cpu = trial.build_cpu_seconds * _nlogn(total) / _nlogn(trial.points)
    build = build_cpu / max(parallel, 1e-3)  # wall = CPU / the parallelism the sample's build reached
    unindexed = vector_bytes is not None and vector_bytes < indexing_threshold_kb * 1024
    if unindexed:
        build = 0.0
    return {
        "load_rate": round(load_rate, 1) if load_rate else None,
        "read_rate": round(read_rate, 1) if read_rate else None,
        "load_seconds": round(load, 1) if load is not None else None,
        "build_seconds": round(build, 1),
        "total_seconds": round((load or 0) + build, 1),
        "build_cpu_seconds": round(build_cpu, 1),
        "build_parallelism": round(parallel, 2),
        "indexed": not unindexed,
        "scaling": (f"load: linear in points ({rate or 0:,.0f} points/s: reading the source and loading the "
                    f"engine, one after the other); HNSW build: n log n in CPU seconds from the "
                    f"{trial.points:,} sample points ({trial.build_cpu_seconds:.1f} CPU s "
                    f"in {trial.build_seconds:.1f} s, {parallel:.1f} cores busy), so {total:,} points take "
                    f"{build_cpu:.0f} CPU s, {build:.0f} s at that parallelism"
                    + (f" (none here: {total:,} vectors are under Qdrant's {indexing_threshold_kb:,} KB indexing "
                       "threshold, so the collection is searched exactly and no index is built)" if unindexed else "")),
    }


def grown(half: TrialResult, ref_half: TrialResult, ref_full: TrialResult) -> TrialResult:
    """``half`` (a build on the half sample) as if built on ``ref_full``'s points: the load linear in points, the
    build's CPU seconds times the reference's own growth between its two builds (the measured growth, cache effects
    included: on the bench's data the defaults' build grew x3.4 from 10k to 20k points, n log n says x2.15), wall
    time at ``half``'s parallelism."""
    from dataclasses import replace

    f = ref_full.points / max(half.points, 1)
    g = ref_full.build_cpu_seconds / ref_half.build_cpu_seconds if ref_half.build_cpu_seconds > 0 else \
        _nlogn(ref_full.points) / _nlogn(half.points)
    parallel = half.build_cpu_seconds / half.build_seconds if half.build_seconds > 0 else 1.0
    cpu = half.build_cpu_seconds * g
    return replace(half, points=ref_full.points, load_seconds=round(half.load_seconds * f, 3),
                   build_cpu_seconds=round(cpu, 3), build_seconds=round(cpu / max(parallel, 1e-3), 3))


def human_bytes(b: float | None) -> str:
    if b is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(b) < 1024 or unit == "TB":
            return f"{b:.0f} {unit}" if unit == "B" else f"{b:.1f} {unit}"
        b /= 1024
    return f"{b:.1f} TB"
