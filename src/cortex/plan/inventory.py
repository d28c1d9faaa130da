"""One streaming pass over a source: counts, vectors, ids, duplicates, payload schema, and a uniform sample.

Memory stays bounded: ids are kept as 64-bit keys in sorted runs (:class:`cortex.seen_ids.SeenIds`,
8 bytes per id), payloads are summarized by :class:`cortex.plan.schema.SchemaScan`, and the
sample is a reservoir of ``sample`` rows (Algorithm R, vectorized per batch).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cortex.ids import map_ids
from cortex.plan.schema import SchemaScan
from cortex.seen_ids import SeenIds, id_keys
from cortex.sources.base import Source, file_fingerprint, row_norms

MAX_EXAMPLES = 10
UNIT_TOL = 1e-3


@dataclass
class Sample:
    """A uniform sample of the source's valid rows (what the experiments load)."""

    vectors: np.ndarray  # (n, dim) float32
    ids: list[Any]  # Qdrant ids
    payloads: list[dict[str, Any] | None]


@dataclass
class Inventory:
    source: str
    kind: str
    count: int = 0  # rows read (valid + invalid)
    valid: int = 0  # rows with a finite vector of the right dimension
    dim: int | None = None
    dtype: str | None = None
    source_bytes: int | None = None
    source_distance: str | None = None
    lossy: bool = False
    id_kinds: dict[str, int] = field(default_factory=dict)  # unsigned_int / uuid / digit_string / other_string
    id_mapping: dict[str, str] = field(default_factory=dict)
    duplicate_ids: int = 0
    duplicate_examples: list[Any] = field(default_factory=list)
    nan_vectors: int = 0
    inf_vectors: int = 0
    zero_vectors: int = 0
    wrong_dim: int = 0
    unreadable: int = 0
    norms: dict[str, float] = field(default_factory=dict)
    unit_norm_fraction: float = 0.0
    distance: dict[str, Any] = field(default_factory=dict)
    schema: list[dict[str, Any]] = field(default_factory=list)
    payload_points: int = 0
    seconds: float = 0.0
    rows_per_second: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def _id_kind(sid: Any) -> str:
    if isinstance(sid, (int, np.integer)) and not isinstance(sid, bool):
        return "unsigned_int" if int(sid) >= 0 else "negative_int"
    s = str(sid)
    if s.isascii() and s.isdigit():
        return "digit_string" if s == "0" or s[0] != "0" else "other_string"
    if len(s) == 36 and s.count("-") == 4:
        return "uuid"
    return "other_string"


_MAPPING = {
    "unsigned_int": "kept as unsigned integer point ids",
    "uuid": "kept as UUID point ids",
    "digit_string": "digit strings become integer point ids (\"17\" -> 17)",
    "other_string": "become deterministic uuid5 point ids; the original is kept in the payload (source_id)",
    "negative_int": "become deterministic uuid5 point ids; the original is kept in the payload (source_id)",
}


class _Norms:
    """Streaming min / max / mean / std of vector norms (Welford over batches)."""

    def __init__(self) -> None:
        self.n, self.mean, self.m2 = 0, 0.0, 0.0
        self.lo, self.hi = float("inf"), 0.0
        self.unit = 0

    def add(self, norms: np.ndarray) -> None:
        if not len(norms):
            return
        k = len(norms)
        norms = norms.astype(np.float64, copy=False)  # a huge (finite) norm's square fits
        bm, bv = float(norms.mean()), float(norms.var())
        delta = bm - self.mean
        tot = self.n + k
        self.mean += delta * k / tot
        self.m2 += bv * k + delta * delta * self.n * k / tot
        self.n = tot
        self.lo, self.hi = min(self.lo, float(norms.min())), max(self.hi, float(norms.max()))
        self.unit += int((np.abs(norms - 1.0) <= UNIT_TOL).sum())

    def result(self) -> dict[str, float]:
        if not self.n:
            return {}
        return {"min": round(self.lo, 6), "max": round(self.hi, 6), "mean": round(self.mean, 6),
                "std": round(float(np.sqrt(self.m2 / self.n)), 6)}


def recommend_distance(source_distance: str | None, unit_fraction: float, norms: dict[str, float]) -> dict[str, Any]:
    """Which Qdrant distance to use, and why."""
    if unit_fraction >= 0.999:
        if source_distance in (None, "cosine", "dot"):
            return {"distance": "cosine" if source_distance != "dot" else "dot",
                    "why": "all vectors are unit length, so cosine == dot product: same ranking either way"}
        return {"distance": source_distance, "why": f"the source uses {source_distance}; vectors are unit length, "
                "so cosine would rank the same"}
    if source_distance:
        return {"distance": source_distance, "why": f"the source's own distance ({source_distance}); vectors are "
                "not unit length, so changing it changes the ranking"}
    spread = (norms.get("std", 0) / norms["mean"]) if norms.get("mean") else 0
    return {"distance": "cosine", "why": f"the source does not store a distance; norms vary (std/mean "
            f"{spread:.2f}): cosine unless the model was trained for dot product or euclid"}


def scan(source: Source, *, sample: int = 20_000, batch_size: int = 2000, seed: int = 0,
         progress: Any = None) -> tuple[Inventory, Sample]:
    """Read ``source`` once; returns the inventory and a uniform sample of at most ``sample`` valid rows."""
    t0 = time.perf_counter()
    info = source.info()
    inv = Inventory(source=str(source.path), kind=source.kind, dim=info.dim, source_distance=info.distance,
                    lossy=info.lossy, warnings=list(info.warnings))
    try:
        inv.source_bytes = file_fingerprint(source.path).get("size")
    except OSError:
        inv.source_bytes = None
    rng = np.random.default_rng(seed)
    seen = SeenIds()
    norms = _Norms()
    schema = SchemaScan()
    res_vecs: np.ndarray | None = None
    res_ids: list[Any] = []
    res_pl: list[dict[str, Any] | None] = []
    valid_seen = 0
    if progress is not None:
        progress.start(info.count)
    for batch in source.batches(batch_size):
        inv.count += batch.read
        inv.unreadable += len(batch.rejected)
        n = len(batch)
        if progress is not None:
            progress.advance(batch.read)
        if not n:
            continue
        raw = np.asarray(batch.vectors)
        if inv.dtype is None:
            inv.dtype = str(raw.dtype)
        vecs = raw.astype(np.float32, copy=False)
        if inv.dim is None and vecs.ndim == 2:
            inv.dim = vecs.shape[1]
        ok = np.ones(n, dtype=bool)
        if vecs.ndim != 2 or vecs.shape[1] != inv.dim:
            inv.wrong_dim += n
            continue
        with np.errstate(over="ignore", invalid="ignore"):  # one pass, no n x dim temporary
            sq = np.einsum("ij,ij->i", vecs, vecs)
        nan, inf = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        odd = np.flatnonzero(~np.isfinite(sq))  # a NaN or infinite value, or a squared norm past float32's range
        if len(odd):
            nan[odd] = np.isnan(vecs[odd]).any(axis=1)
            inf[odd] = np.isinf(vecs[odd]).any(axis=1) & ~nan[odd]
        inv.nan_vectors += int(nan.sum())
        inv.inf_vectors += int(inf.sum())
        ok &= ~(nan | inf)
        nrm = np.sqrt(np.where(ok, sq, 0))
        big = odd[ok[odd]]
        if len(big):
            nrm[big] = row_norms(vecs[big])
        zero = ok & (nrm == 0)
        inv.zero_vectors += int(zero.sum())
        norms.add(nrm[ok & ~zero])
        # ids: kinds, mapping, duplicates (on the Qdrant id they map to: that is what collides)
        ids = batch.ids
        if isinstance(ids, np.ndarray) and ids.dtype.kind in "iu":
            kinds = {"unsigned_int": n} if ids.dtype.kind == "u" or ids.min() >= 0 else None
        else:
            kinds = None
        if kinds is None:
            kinds = {}
            for sid in ids:
                k = _id_kind(sid)
                kinds[k] = kinds.get(k, 0) + 1
        for k, c in kinds.items():
            inv.id_kinds[k] = inv.id_kinds.get(k, 0) + c
        qids, _ = map_ids(ids)
        keys = id_keys(qids)
        _, first = np.unique(keys, return_index=True)
        in_batch_dup = np.ones(n, dtype=bool)
        in_batch_dup[first] = False
        dup = seen.contains(keys) | in_batch_dup
        if dup.any():
            inv.duplicate_ids += int(dup.sum())
            for i in np.flatnonzero(dup)[: MAX_EXAMPLES - len(inv.duplicate_examples)]:
                sid = ids[i]
                inv.duplicate_examples.append(sid.item() if isinstance(sid, np.generic) else sid)
        new = keys[~dup]
        if len(new):
            seen.add(new)
        pls = batch.payloads
        for i in range(n):
            schema.add(pls[i] if pls is not None else None)
        # reservoir sample over valid rows
        good = np.flatnonzero(ok)
        if len(good):
            pos = valid_seen + np.arange(len(good))  # 0-based index of each valid row in the stream
            valid_seen += len(good)
            if res_vecs is None:
                res_vecs = np.empty((sample, inv.dim), dtype=np.float32)
            fill = pos < sample
            for j in good[fill]:
                res_vecs[len(res_ids)] = vecs[j]
                res_ids.append(qids[j])
                res_pl.append(pls[j] if pls is not None else None)
            rest, rpos = good[~fill], pos[~fill]
            if len(rest):
                slot = (rng.random(len(rest)) * (rpos + 1)).astype(np.int64)
                for j, s in zip(rest[slot < sample], slot[slot < sample], strict=True):
                    res_vecs[s] = vecs[j]
                    res_ids[s] = qids[j]
                    res_pl[s] = pls[j] if pls is not None else None
    if progress is not None:
        progress.stop()
    inv.valid = valid_seen
    inv.norms = norms.result()
    inv.unit_norm_fraction = round(norms.unit / norms.n, 6) if norms.n else 0.0
    inv.distance = recommend_distance(info.distance, inv.unit_norm_fraction, inv.norms)
    inv.id_mapping = {k: _MAPPING.get(k, "") for k in inv.id_kinds}
    inv.schema = schema.result()
    inv.payload_points = schema.points
    inv.seconds = round(time.perf_counter() - t0, 3)
    inv.rows_per_second = round(inv.count / inv.seconds, 1) if inv.seconds else 0.0
    m = len(res_ids)
    smp = Sample(vectors=res_vecs[:m] if res_vecs is not None else np.zeros((0, inv.dim or 0), np.float32),
                 ids=res_ids, payloads=res_pl)
    return inv, smp
