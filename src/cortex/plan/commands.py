"""``plan``: inventory + schema in one pass, experiments on the sample, estimate, tuned config file."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from cortex.collection_config import ConfigFile, Expected, PayloadIndex, SearchParams, dump_config
from cortex.errors import CortexError, SourceError
from cortex.parity import add_noise
from cortex.plan import estimate as est
from cortex.plan import tune
from cortex.plan.experiment import (
    Candidate,
    TrialResult,
    exact_topk,
    load_raw,
    measure_kept,
    raw_key,
    run_trial,
    start_probe_server,
    stop_probe_server,
)
from cortex.plan.inventory import Sample, scan
from cortex.sources import SourceOptions, open_source

Event = Callable[[str], None]


@dataclass
class PlanResult:
    source: str
    collection: str
    min_recall: float
    sample: int
    inventory: dict[str, Any]
    payload_indexes: dict[str, dict[str, Any]]
    guide: dict[str, Any]
    estimates: dict[str, dict[str, Any]]  # candidate -> projected disk / RAM of the full collection
    time: dict[str, Any]  # projected load + build of the chosen config (and the defaults')
    trials: list[dict[str, Any]]
    options: list[dict[str, Any]]
    chosen: dict[str, Any] | None
    reason: str
    config: dict[str, Any] | None  # the collection config written to --output
    optimize_for: str = "balanced"
    # the miss rate's growth per doubling of the graph (recall projection): the pooled estimate, and the upper
    # bound (two standard errors) the projection uses
    miss_growth: dict[str, float] = field(default_factory=dict)
    output: str | None = None
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.chosen is not None

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        d = asdict(self)
        d["ok"] = self.ok
        return d


def _unique(sample: Sample) -> Sample:
    seen: set[Any] = set()
    keep = [i for i, pid in enumerate(sample.ids) if not (pid in seen or seen.add(pid))]
    if len(keep) == len(sample.ids):
        return sample
    return Sample(sample.vectors[keep], [sample.ids[i] for i in keep], [sample.payloads[i] for i in keep])


def plan(source: str, *, source_type: str | None = None, options: SourceOptions | None = None,
         collection: str | None = None, sample: int = 20_000, min_recall: float = 0.95, k: int = 10,
         num_queries: int = 400, noise: float = 0.1, quick: bool = False, candidates: list[str] | None = None,
         optimize_for: str = "balanced", measure_all: bool = False, output: str | None = None,
         workdir: str | None = None, seed: int = 0, batch_size: int = 2000, progress: Any = None,
         on_event: Event | None = None) -> PlanResult:
    """Measure ``source`` and write the tuned collection config (``output``, YAML) the other commands read."""
    if sample < 100:
        raise CortexError(f"--sample {sample}: use at least 100 points (20,000 is the default)")
    tune.candidates("x", 1, "cosine", only=candidates)  # an unknown --candidates name fails before the long read
    tune.choose([], min_recall, optimize_for)  # so does a bad --optimize-for
    start_probe_server()  # the heap probes' fork server: it imports in the background while the source is read
    try:
        return _plan(source, source_type=source_type, options=options, collection=collection, sample=sample,
                     min_recall=min_recall, k=k, num_queries=num_queries, noise=noise, quick=quick,
                     candidates=candidates, optimize_for=optimize_for, measure_all=measure_all, output=output,
                     workdir=workdir, seed=seed, batch_size=batch_size, progress=progress, on_event=on_event)
    finally:
        stop_probe_server()


def _plan(source: str, *, source_type: str | None, options: SourceOptions | None, collection: str | None,
          sample: int, min_recall: float, k: int, num_queries: int, noise: float, quick: bool,
          candidates: list[str] | None, optimize_for: str, measure_all: bool, output: str | None,
          workdir: str | None, seed: int, batch_size: int, progress: Any, on_event: Event | None) -> PlanResult:
    say = on_event or (lambda _m: None)
    t_start = time.perf_counter()
    phases: dict[str, float] = {}
    with open_source(source, source_type, options) as src:
        inv, smp = scan(src, sample=sample, batch_size=batch_size, seed=seed, progress=progress)
    phases["inventory"] = inv.seconds
    if inv.valid == 0 or not inv.dim:
        raise SourceError(f"{source}: no valid vectors to plan from ({inv.count:,} records read, "
                          f"{inv.nan_vectors + inv.inf_vectors:,} non-finite, {inv.wrong_dim:,} wrong dimension)")
    smp = _unique(smp)
    n = len(smp.ids)
    total = max(inv.valid - inv.duplicate_ids, n)
    name = collection or _default_name(source)
    distance = inv.distance["distance"]
    rng = np.random.default_rng(seed)
    nq = min(num_queries, n)
    queries = add_noise(smp.vectors[rng.choice(n, nq, replace=False)], noise, rng)
    t0 = time.perf_counter()
    truth = exact_topk(smp.vectors, queries, min(k, n), distance)
    indexes = {f["field"]: PayloadIndex(type=f["suggested_index"]["type"],
                                        is_tenant=f["suggested_index"].get("is_tenant"))
               for f in inv.schema if f.get("suggested_index")}
    cands = tune.candidates(name, inv.dim, distance, quick=quick, only=candidates, measure_all=measure_all)
    own_dir = workdir is None
    wd = Path(tempfile.mkdtemp(prefix="cortex-plan-")) if own_dir else Path(workdir)
    wd.mkdir(parents=True, exist_ok=True)
    trials: list[TrialResult] = []
    sib = tune.siblings(cands)  # on-disk variants: no build of their own, their in-RAM sibling's figures
    built = [c for c in cands if c.name not in sib]
    # a dearer variant of a cheaper graph (int8 at ef_construct 100 and 32 behind 20) is built only when the
    # cheaper one falls short of the recall goal; everything is built when the candidates are named, or with --all
    later = {} if (measure_all or candidates) else tune.dominated(built)
    first = [c for c in built if c.name not in later]
    # the half-sample build (fixed costs, how build time and recall change with size): the cheapest int8 build
    ref = next((c for c in first if c.name == "int8"), next((c for c in first if c.name != "defaults"), first[0]))
    # Qdrant's defaults (the baseline, a float32 build: the slowest) are built on the half sample only, when another
    # candidate gives the fixed costs; their build time at the full sample is projected with that candidate's growth
    base_half = ref.name != "defaults"
    k_ = min(k, n)
    kept: list[Path] = []  # trial shards kept for their deferred searches (removed at the end)
    try:
        half_n = n // 2
        half = Sample(smp.vectors[:half_n], smp.ids[:half_n], smp.payloads[:half_n])
        truth_half = exact_topk(half.vectors, queries, k_, distance)
        phases["ground_truth"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        say(f"[0/{len(first)}] {ref.name} on {half_n:,} points (fixed costs and how build time and recall grow) ...")
        raws: dict[str, dict[int, tuple[Path, float]]] = {}
        # a trial's searches above tune.EAGER_EF, measured on its kept shard only if the evaluation needs them
        pending: dict[str, tuple[Candidate, Sample, np.ndarray, list[SearchParams]]] = {}

        def raw(c: Candidate, points: int) -> tuple[Path, float]:  # the sample loaded once per vector datatype
            if raw_key(c) not in raws:
                raws[raw_key(c)] = load_raw(c, smp, half_n, wd)
            return raws[raw_key(c)][points]

        half_trial = run_trial(ref, half, queries, truth_half, wd, k=k_, payload_indexes=indexes,
                               label=f"{ref.name}@{half_n}", latency_queries=0, raw=raw(ref, half_n),
                               searches=tune.eager(ref, measure_all))
        halves = {tune.graph_key(ref): half_trial}
        heaps = {_layout(ref, half_n): half_trial.rss_anon_bytes}

        def measure(todo: list[Candidate]) -> None:
            for c in todo:  # one half-sample build per graph setting: how its recall falls as the graph grows
                if c.tune and tune.graph_key(c) not in halves and not (base_half and c.name == "defaults"):
                    say(f"      {c.name} on {half_n:,} points (how its recall falls as the graph grows) ...")
                    halves[tune.graph_key(c)] = run_trial(c, half, queries, truth_half, wd, k=k_,
                                                          label=f"{c.name}@{half_n}", heap_probe=False,
                                                          latency_queries=0, raw=raw(c, half_n),
                                                          searches=tune.eager(c, measure_all))
            for i, c in enumerate(todo, 1):
                on = half if base_half and c.name == "defaults" else smp
                say(f"[{i}/{len(todo)}] {c.name}: loading {len(on.ids):,} sample points and building the index ...")
                on_truth = truth_half if on is half else truth
                more = tune.deferred(c, measure_all)
                if more:  # its shard is kept until the evaluation says whether they are needed
                    kept.append(wd / c.name)
                    pending[c.name] = (c, on, on_truth, more)
                tr = run_trial(c, on, queries, on_truth, wd, k=k_, payload_indexes=indexes,
                               heap=heaps.get(_layout(c, len(on.ids))), raw=raw(c, len(on.ids)),
                               searches=tune.eager(c, measure_all), keep=bool(more))
                heaps.setdefault(_layout(c, len(on.ids)), tr.rss_anon_bytes)
                best = max(tr.searches, key=lambda s: s.recall)
                say(f"      load {tr.load_seconds:.1f} s, build {tr.build_seconds:.1f} s, best recall@{k} "
                    f"{best.recall:.3f} ({_p(best.params)})")
                trials.append(tr)

        def evaluate() -> _Evaluation:
            def ev() -> _Evaluation:
                return _evaluate(cands, sib, later, trials, halves, half_trial, ref, base_half, total, inv, name,
                                 nq * k_, min_recall, optimize_for)

            first_ev = ev()
            short = [nm for nm in pending if not first_ev.meets(nm, min_recall)]
            for nm in short:  # its deferred (higher hnsw_ef) searches, on the shard its trial kept
                c, on, on_truth, more = pending.pop(nm)
                say(f"      {nm} falls short of recall@{k} {min_recall} up to hnsw_ef {tune.EAGER_EF}: measuring "
                    f"hnsw_ef {', '.join(str(sp.hnsw_ef) for sp in more)} ...")
                tr = next(t for t in trials if t.name == nm)
                t_more = time.perf_counter()
                tr.searches += measure_kept(c, more, on, queries, on_truth, wd, k=k_)
                tr.seconds = round(tr.seconds + time.perf_counter() - t_more, 3)
            return ev() if short else first_ev

        measure(first)
        ev = evaluate()
        # up the ladder: while a cheaper graph falls short, build the next dearer one it held back
        while short := sorted({d for d in later.values() if not ev.meets(d, min_recall)}):
            rungs = tune.next_rungs(later, short, built)
            say(f"      {', '.join(short)} fell short of recall@{k} {min_recall}: building "
                f"{', '.join(rungs.values())} too ...")
            later = {b: rungs.get(d, d) for b, d in later.items() if b not in rungs.values()}
            measure([c for c in built if c.name in rungs.values()])
            ev = evaluate()
    finally:
        if own_dir:
            shutil.rmtree(wd, ignore_errors=True)
        else:
            for d in [*wd.glob("raw-*"), *kept]:
                shutil.rmtree(d, ignore_errors=True)
    phases["experiments"] = round(time.perf_counter() - t0, 3)
    estimates, per, rows, pick, reason = ev.estimates, ev.per, ev.rows, ev.pick, ev.reason
    times = {"defaults": per["defaults"]}
    cfg_dict = None
    chosen_cand: Candidate | None = None
    if pick is not None:
        chosen_cand = next(c for c in cands if c.name == pick["candidate"])
        times["chosen"] = per[chosen_cand.name]
        e = estimates[chosen_cand.name]
        cc = chosen_cand.config.model_copy(update={
            "payload_indexes": indexes,
            "search": SearchParams.model_validate(pick["search"]),
            "expected": Expected(recall_at_10=pick["projected_recall"], p50_ms=pick["p50_ms"], p95_ms=pick["p95_ms"],
                                 build_seconds=times["chosen"]["build_seconds"], ram_bytes=e["ram_bytes"],
                                 disk_bytes=e["disk_bytes"], sample=n),
        })
        cfg_dict = cc.model_dump(mode="json", exclude_none=True)
        if output:
            _write(output, ConfigFile(collections=[cc]), inv, pick, reason, total)
    result = PlanResult(
        source=source, collection=name, min_recall=min_recall, sample=n, inventory=inv.to_dict(),
        payload_indexes={f: i.model_dump(exclude_none=True) for f, i in indexes.items()},
        guide=est.guide_formula(total, inv.dim), estimates=estimates, time=times, optimize_for=optimize_for,
        trials=[t.to_dict() for t in [*halves.values(), *trials]], options=rows, chosen=pick, reason=reason,
        config=cfg_dict,
        output=output if pick is not None else None, phases=phases, warnings=list(inv.warnings),
        miss_growth={"estimate": round(ev.growth[0], 3), "used": round(ev.growth[1], 3)})
    result.seconds = round(time.perf_counter() - t_start, 3)
    return result


def _layout(c: Candidate, points: int) -> str:
    """What the open shard's heap depends on (not ef_construct: the graph's size is set by m)."""
    v, q = c.config.vectors, c.config.quantization
    return f"{points}/{c.config.hnsw.m if c.config.hnsw else None}/{v.datatype}/{v.on_disk}/" \
           f"{q.model_dump_json() if q else None}"


def _p(params: dict[str, Any]) -> str:
    q = params.get("quantization") or {}
    return f"hnsw_ef {params.get('hnsw_ef')}" + (f", oversampling {q.get('oversampling')}" if q else "")


def _default_name(source: str) -> str:
    import re

    stem = Path(source.rstrip("/")).stem or "collection"
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", stem) or "collection"


def _write(path: str, cfg: ConfigFile, inv: Any, pick: dict[str, Any], reason: str, total: int) -> None:
    head = [
        "# Written by `cortex qdrant plan` (apply with `cortex qdrant migrate --config` or `setup --config`).",
        f"# Source: {inv.source} ({total:,} points x {inv.dim}, {inv.kind}).",
        f"# {reason}.",
        "# `search` holds the query-time parameters the application must pass for the expected recall.",
    ]
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("\n".join(head) + "\n" + dump_config(cfg), encoding="utf-8")


@dataclass
class _Evaluation:
    estimates: dict[str, dict[str, Any]]
    per: dict[str, dict[str, Any]]  # candidate -> projected load + build time
    rows: list[dict[str, Any]]
    pick: dict[str, Any] | None
    reason: str
    growth: tuple[float, float]  # the miss rate's growth per doubling: the pooled estimate, the bound used

    def meets(self, candidate: str, min_recall: float) -> bool:
        return any(r["candidate"] == candidate and r["projected_recall"] >= min_recall for r in self.rows)


def _evaluate(cands: list[Candidate], sib: dict[str, str], later: dict[str, str], trials: list[TrialResult],
              halves: dict[str, TrialResult], half_trial: TrialResult, ref: Candidate, base_half: bool, total: int,
              inv: Any, name: str, slots: int, min_recall: float, optimize_for: str) -> _Evaluation:
    """What the builds so far say: the full count's RAM, disk and time per candidate, every option's projected
    recall, and the choice. A candidate not built (``later``, and its on-disk sibling) gets its cheaper twin's RAM
    and disk under its own settings, and no option."""
    by = {t.name: t for t in trials}
    for od, ram_sib in sib.items():
        if ram_sib in by:
            by[od] = replace(by[ram_sib], name=od, derived_from=ram_sib)
    ref_full = by[ref.name]
    fixed = est.fit_fixed(ref_full, half_trial)
    wal = max(t.wal_bytes for t in trials)
    estimates: dict[str, dict[str, Any]] = {}
    for c in cands:
        if c.name in by:
            estimates[c.name] = est.project(by[c.name], c.config, fixed, total, wal)
            if c.name in sib:
                estimates[c.name]["derived"] = (f"derived from {sib[c.name]}'s build (the same graph and quantized "
                                                "search + rescore; the original vectors stay on disk, not in RAM)")
            continue
        twin = later[sib.get(c.name, c.name)]
        estimates[c.name] = est.project(by[twin], c.config, fixed, total, wal)
        estimates[c.name]["derived"] = (f"not built: {twin} (the same graph size, a cheaper build) met the recall "
                                        f"goal, so {c.name} could not be cheaper; its RAM and disk are {twin}'s "
                                        "under its own settings (plan --all builds it)")
    for c in tune.derived(name, inv.dim, inv.distance["distance"], cands):
        estimates[c.name] = est.derive(estimates["defaults"], c.name, c.config, inv.dim)
    vbytes = total * inv.dim * 4
    per = {nm: est.time_estimate(t, total, inv.rows_per_second, vbytes) for nm, t in by.items()}
    if base_half:  # the defaults' full-sample build from the reference's growth
        per["defaults"] = est.time_estimate(est.grown(by["defaults"], half_trial, ref_full), total,
                                            inv.rows_per_second, vbytes)
        per["defaults"]["scaling"] = (f"built on {half_trial.points:,} points (half the sample), grown to "
                                      f"{ref_full.points:,} as {ref.name}'s build grew "
                                      f"({half_trial.build_cpu_seconds:.1f} -> {ref_full.build_cpu_seconds:.1f} "
                                      "CPU s); " + per["defaults"]["scaling"])
    measured = [c for c in cands if c.name in by]
    rows = tune.options([by[c.name] for c in measured], measured, estimates,
                        {nm: t["total_seconds"] for nm, t in per.items()})
    growth = tune.miss_growth([(halves[tune.graph_key(c)], by[c.name]) for c in measured
                               if c.name not in sib and tune.graph_key(c) in halves
                               and by[c.name].points > half_trial.points], slots)
    proj = {c.name: tune.project_recall(by[c.name], total, growth[1]) for c in measured}
    for r in rows:
        r["projected_recall"] = proj.get(r["candidate"], {}).get(r["search"].get("hnsw_ef"), r["recall"])
    pick, reason = tune.choose(rows, min_recall, optimize_for)
    return _Evaluation(estimates, per, rows, pick, reason, growth)
