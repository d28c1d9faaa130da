"""Route each workspace's queries during a rolling migration: Qdrant for live units, the old system otherwise.

    from cortex.router import Router
    router = Router.open(".cortex")                    # the rollout's plan: its source and its collection
    res = router.search(query_vector, k=10, workspace="ws-stdlib-json")
    res.side, res.hits                                 # "qdrant" once the unit is promoted, else "old"

The router reads the rollout's unit files (:mod:`cortex.rollout.state`) and re-reads them whenever
one changes (their modification times are checked on every query), so ``rollout promote`` and
``rollout revert`` take effect at the next query, without a restart.  Both sides answer in the
workspace only: Qdrant with a filter on the unit field, the old system with its own search over the
unit's ``--where`` subset (pgvector runs it in SQL) or, for stores without a filtered search, exact
search over that subset (the same adapters ``compare`` uses).  Ids are Qdrant ids on both sides
(source ids mapped as the migration maps them, :func:`cortex.ids.map_id`).  Per-side latency is
kept (:meth:`Router.latency`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cortex.ids import DEFAULT_ID_FIELD, map_id
from cortex.rollout.state import Rollout, resolve
from cortex.sources import Source, SourceOptions, open_source
from cortex.targets import Target
from cortex.where import equals


@dataclass
class RoutedResult:
    side: str  # "qdrant" | "old"
    unit: str
    hits: list[tuple[Any, float]]  # (Qdrant id, score), best first
    ms: float


class OldSystem:
    """The old system's search, one workspace at a time (a ``--where`` subset of the source per unit)."""

    def __init__(self, source: str, source_type: str | None = None, options: SourceOptions | None = None,
                 distance: str | None = None, id_field: str = DEFAULT_ID_FIELD) -> None:
        self.source, self.source_type = source, source_type
        self.options = options or SourceOptions()
        self.distance, self.id_field = distance, id_field
        self._subsets: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _subset(self, where: str) -> Any:
        with self._lock:
            if where not in self._subsets:
                src = open_source(self.source, self.source_type, SourceOptions(**{**self.options.__dict__,
                                                                                 "where": where}))
                self._subsets[where] = _Subset(src, self.distance, self.id_field)
            return self._subsets[where]

    def search(self, vector: np.ndarray, k: int, where: str) -> list[tuple[Any, float]]:
        return self._subset(where).search(np.asarray(vector, dtype=np.float32).reshape(1, -1), k)

    def close(self) -> None:
        for s in self._subsets.values():
            s.source.close()
        self._subsets.clear()


class _Subset:
    """One unit's records: the store's own search when it can search the subset, else exact numpy search."""

    def __init__(self, source: Source, distance: str | None, id_field: str) -> None:
        self.source, self.id_field = source, id_field
        self.info = source.info()
        self.distance = distance or self.info.distance or "cosine"
        self.native: bool | None = None
        self.keys: list[Any] = []
        self.matrix: np.ndarray | None = None

    def search(self, q: np.ndarray, k: int) -> list[tuple[Any, float]]:
        if self.native is not False:
            try:
                ids, scores = self.source.search(q, k)
                self.native = True
                return [(map_id(i)[0], float(s)) for i, s in zip(ids[0], scores[0][:len(ids[0])], strict=True)]
            except NotImplementedError:
                self.native = False
        return self._exact(q, k)

    def _exact(self, q: np.ndarray, k: int) -> list[tuple[Any, float]]:
        from cortex.parity import _prep_queries, rank_values, to_score
        from cortex.targets.base import normalize_rows

        if self.matrix is None:  # the unit's vectors, read once (a unit is a workspace: it fits in memory)
            keys, rows = [], []
            for b in self.source.batches(4096):
                if len(b.ids):
                    keys += [map_id(i.item() if isinstance(i, np.generic) else i)[0] for i in b.ids]
                    rows.append(np.asarray(b.vectors, dtype=np.float32))
            m = np.concatenate(rows) if rows else np.zeros((0, self.info.dim or q.shape[1]), np.float32)
            self.keys, self.matrix = keys, normalize_rows(m) if self.distance == "cosine" else m
        if not len(self.matrix):
            return []
        r = rank_values(_prep_queries(q, self.distance), self.matrix, self.distance)[0]
        kk = min(k, len(r))
        top = np.argpartition(-r, kk - 1)[:kk]
        top = top[np.argsort(-r[top], kind="stable")]
        sc = to_score(r[top], self.distance)
        return [(self.keys[i], float(s)) for i, s in zip(top, sc, strict=True)]


@dataclass
class _Latency:
    seconds: list[float] = field(default_factory=list)


class Router:
    """``search(vector, k, workspace=...)`` from Qdrant for live units, from the old system otherwise."""

    def __init__(self, rollout_state: Rollout | str | Path, old: OldSystem | Any, new: tuple[Target, str],
                 *, name: str | None = None) -> None:
        self.rollout = rollout_state if isinstance(rollout_state, Rollout) else resolve(rollout_state, name)
        self.plan = self.rollout.plan()
        self.old = old
        self.target, self.collection = new
        self._mtimes: dict[str, tuple[int, int, int]] | None = None
        self._live: set[str] = set()
        self._where: dict[str, str] = {u.name: u.where for u in self.plan.units}
        self._value: dict[str, Any] = {u.name: u.value for u in self.plan.units}
        self._lock = threading.Lock()
        self._lat = {"qdrant": _Latency(), "old": _Latency()}
        self.reloads = 0

    @classmethod
    def open(cls, state_dir: str | Path = ".cortex", name: str | None = None, *, source: str | None = None,
             path: str | None = None, url: str | None = None, api_key: str | None = None) -> Router:
        """A router for the rollout in ``state_dir``: its planned source, and its collection on its target."""
        from cortex.api import connect

        r = resolve(state_dir, name)
        plan = r.plan()
        kw = {k: v for k, v in plan.target.items() if v is not None}
        if path or url:
            kw = {"path": path, "url": url}
        tgt = connect(**{k: kw.get(k) for k in ("path", "url")}, api_key=api_key,
                      prefer_grpc=kw.get("prefer_grpc", True), grpc_port=kw.get("grpc_port", 6334))
        info = tgt.collection_info(plan.collection)
        old = OldSystem(source or plan.source, plan.source_type, plan.source_options(),
                        distance=info.distance if info is not None else None)
        return cls(r, old, (tgt, plan.collection))

    def _refresh(self) -> None:
        m = self.rollout.units.mtimes()
        if m == self._mtimes:
            return
        with self._lock:
            units = self.rollout.all_units()
            self._live = {n for n, u in units.items() if u.status == "live"}
            self._mtimes = m
            self.reloads += 1

    def is_live(self, workspace: Any) -> bool:
        self._refresh()
        return str(workspace) in self._live

    def search(self, vector: Any, k: int = 10, *, workspace: Any) -> RoutedResult:
        """The top ``k`` of ``workspace`` for ``vector``, from whichever side serves that unit now."""
        unit = str(workspace)
        q = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        live = self.is_live(unit)
        t0 = time.perf_counter()
        if live:
            flt = equals(self.plan.by, self._value.get(unit, workspace))
            hits = self.target.search(self.collection, q, k, filter=flt)[0]
            side = "qdrant"
        else:
            where = self._where.get(unit) or _where_for(self.plan.by, workspace)
            hits = self.old.search(q[0], k, where) if isinstance(self.old, OldSystem) else self.old(q[0], k, unit)
            side = "old"
        dt = time.perf_counter() - t0
        self._lat[side].seconds.append(dt)
        return RoutedResult(side, unit, list(hits), round(dt * 1000.0, 4))

    def latency(self) -> dict[str, Any]:
        """Per side: queries, min/avg/p50/p95/p99/max in milliseconds."""
        from cortex.parity import latency_stats

        return {side: latency_stats(v.seconds, keep_samples=False) for side, v in self._lat.items()}

    def close(self) -> None:
        if isinstance(self.old, OldSystem):
            self.old.close()
        self.target.close()


def _where_for(by: str, workspace: Any) -> str:
    from cortex.where import to_text

    return to_text(equals(by, workspace))
