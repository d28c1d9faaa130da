"""``rollout plan | run | status | promote | revert``: the API calls behind ``cortex qdrant rollout``."""

from __future__ import annotations

import collections
import dataclasses
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cortex.errors import ConflictError, CortexError
from cortex.rollout.state import RUNNABLE, Plan, PlannedUnit, Rollout, UnitState, resolve
from cortex.sources import SourceOptions, open_source
from cortex.sources.base import redact_url
from cortex.state import DEFAULT_STATE_DIR, StateStore, migration_id
from cortex.targets import Target
from cortex.where import And, equals, parse, to_text

_PLAIN_OPTIONS = ("ids", "payloads", "metadata", "dimensions", "distance", "collection", "table", "query",
                  "vector_column", "id_column", "trust_pickle", "extra")


def _unit_where(plan_base: str | None, by: str, value: Any) -> str:
    cond = equals(by, value)
    base = parse(plan_base)
    return to_text(And((base, cond)) if base is not None else cond)


def _target_kw(plan: Plan | None, kw: dict[str, Any]) -> dict[str, Any]:
    """The command's target flags; when it names none, the target the plan was made for."""
    if plan is not None and not kw.get("path") and not kw.get("url"):
        return {**kw, **{k: v for k, v in plan.target.items() if v is not None}}
    return kw


def _connect(kw: dict[str, Any]) -> Target:
    from cortex.api import connect

    return connect(**{k: kw.get(k) for k in ("path", "url", "api_key")},
                   prefer_grpc=kw.get("prefer_grpc", True), grpc_port=kw.get("grpc_port", 6334))


# -- plan ---------------------------------------------------------------------------------------
def rollout_plan(source: str, *, by: str, collection: str | None = None, name: str | None = None,
                 source_type: str | None = None, options: SourceOptions | None = None, path: str | None = None,
                 url: str | None = None, api_key: str | None = None, prefer_grpc: bool = True,
                 grpc_port: int = 6334, state_dir: str = DEFAULT_STATE_DIR, tenant_index: bool = True,
                 shard_key_field: str | None = None, replace: bool = False, batch_size: int = 2000,
                 progress: Any = None) -> Plan:
    """One unit per distinct value of payload field ``by`` (with its record count), recorded.

    Re-planning the same source and field refreshes the counts and adds new values as pending
    units; the units' own state is kept.  A different source or field needs ``replace``.
    """
    opts = options or SourceOptions()
    base = to_text(parse(opts.where)) if parse(opts.where) is not None else None
    coll = collection or _default_collection(source, opts)
    rname = name or coll
    r = Rollout(state_dir, rname)
    old = r.plan() if r.exists() else None
    if old is not None and not replace and (old.source != _no_password(source) or old.by != by
                                            or old.base_where != base or old.collection != coll):
        raise ConflictError(f"rollout '{rname}' is planned for {old.source} by {old.by} into '{old.collection}'; "
                            "pass --replace to plan it anew, or --name to plan another rollout")
    counts: collections.Counter[Any] = collections.Counter()
    shard_keys: dict[Any, set[Any]] = collections.defaultdict(set)
    missing = 0
    with open_source(source, source_type, opts) as src:
        info = src.info()
        if progress is not None:
            progress.start(info.count)
        for b in src.batches(batch_size):
            for pl in b.payloads or [None] * len(b.ids):
                v = (pl or {}).get(by)
                if v is None or isinstance(v, (dict, list)):
                    missing += 1
                else:
                    counts[v] += 1
                    if shard_key_field:
                        shard_keys[v].add((pl or {}).get(shard_key_field))
            if progress is not None:
                progress.advance(b.read)
    if progress is not None:
        progress.stop()
    if not counts:
        raise CortexError(f"{redact_url(source)}: no record has a payload field '{by}'; choose the field that "
                          "names a workspace or tenant with --by")
    units = [PlannedUnit(name=str(v), value=v, where=_unit_where(base, by, v), count=n,
                         shard_key=_one_key(shard_keys[v], v, by, shard_key_field) if shard_key_field else None)
             for v, n in sorted(counts.items(), key=lambda kv: str(kv[0]))]
    names = [u.name for u in units]
    if len(set(names)) != len(names):
        raise CortexError(f"field '{by}' has values that read the same as text (e.g. 1 and '1'); "
                          "split by a field whose values are all text or all numbers")
    plan_options = {k: getattr(opts, k) for k in _PLAIN_OPTIONS if getattr(opts, k)}
    target = {"path": path, "url": url, "prefer_grpc": prefer_grpc, "grpc_port": grpc_port}
    plan = Plan(name=rname, source=_no_password(source), source_type=source_type, options=plan_options,
                base_where=base, by=by, collection=coll, target=target, tenant_index=tenant_index,
                shard_key_field=shard_key_field, units=units, missing=missing)
    r.save_plan(plan)
    for u in units:
        cur = r.unit(u.name)
        if cur is None or replace:
            with r.units.lock(u.name, f"unit {u.name} of rollout '{rname}'"):
                r.save_unit(UnitState(name=u.name, value=u.value, where=u.where, planned=u.count))
        elif cur.planned != u.count:
            with r.units.lock(u.name, f"unit {u.name} of rollout '{rname}'"):
                r.save_unit(cur.model_copy(update={"planned": u.count}))
    return plan


def _one_key(keys: set[Any], value: Any, by: str, field: str) -> str | int:
    """The one shard key of a unit: its records' value of ``field`` (text or an unsigned integer)."""
    if len(keys) != 1:
        shown = ", ".join(sorted(map(repr, keys))[:5])
        raise CortexError(f"unit {by} = {value!r} has {len(keys)} values of --shard-key-field {field} ({shown}); "
                          "a unit goes to one shard key: use a field with one value per unit (e.g. the --by field)")
    key = next(iter(keys))
    if isinstance(key, bool) or not isinstance(key, str | int) or (isinstance(key, int) and key < 0):
        raise CortexError(f"unit {by} = {value!r}: shard key {key!r} of field {field} is neither text nor an "
                          "unsigned integer; Qdrant's custom shard keys are one of these")
    return key


def _no_password(source: str) -> str:
    """The source without a password in its URL: the plan file keeps no secret (libpq then reads
    PGPASSWORD or ~/.pgpass; or pass ``--source`` with the full URL to ``run``)."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1@", source)


def _default_collection(source: str, opts: SourceOptions) -> str:
    if opts.table:
        return opts.table.split(".")[-1]
    if opts.collection:
        return opts.collection
    stem = Path(source.rstrip("/")).stem if "://" not in source else "rollout"
    return "".join(c if c.isalnum() or c in "_-." else "_" for c in stem) or "rollout"


# -- run ------------------------------------------------------------------------------------------
@dataclass
class UnitRun:
    name: str
    status: str
    read: int = 0
    written: int = 0
    rejected: int = 0
    skipped: int = 0
    resumed_from: int = 0
    seconds: float = 0.0
    verify_ok: bool | None = None
    error: str | None = None


@dataclass
class RunResult:
    rollout: str
    collection: str
    target: str
    parallel: int
    units: list[UnitRun] = field(default_factory=list)
    seconds: float = 0.0
    index_seconds: float = 0.0
    status: str = "done"  # done | interrupted | failed

    @property
    def ok(self) -> bool:
        return self.status == "done" and all(u.status == "verified" for u in self.units)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "ok": self.ok}


class _SharedProgress:
    """The progress of one unit's migration, added to a bar shared by all units."""

    def __init__(self, bar: Any, lock: threading.Lock) -> None:
        self.bar, self.lock = bar, lock

    def start(self, total: int | None, done: int = 0) -> None:
        if done:
            self.advance(done)

    def advance(self, n: int) -> None:
        with self.lock:
            self.bar.advance(n)

    def stop(self) -> None:
        pass


def rollout_run(name: str | None = None, *, units: list[str] | None = None, parallel: int = 1,
                state_dir: str = DEFAULT_STATE_DIR, source: str | None = None, path: str | None = None,
                url: str | None = None, api_key: str | None = None, prefer_grpc: bool = True, grpc_port: int = 6334,
                target: Target | None = None, batch_size: int = 500, workers: int = 2, full_verify: bool = True,
                build_index: bool = True, checkpoint_seconds: float = 1.0, stop: threading.Event | None = None,
                progress: Any = None, on_event: Any = None) -> RunResult:
    """Migrate, then verify, each unit (default: every unit not yet verified or live), ``parallel`` at a time.

    Each unit is ``migrate --where <its condition>`` (its own checkpoint: a killed unit resumes)
    followed by ``verify --where ... --full``; its state goes to its unit file.  The collection
    is created first (with a tenant index on the unit field); the index is built once at the end.
    ``source``: the full source URL (the plan keeps it without a password).
    """
    from cortex import api
    from cortex.collection_setup import prepare_collection, resolve_distance, vector_config

    t0 = time.perf_counter()
    say = on_event or (lambda _m: None)
    stop = stop or threading.Event()
    if parallel < 1:
        raise CortexError("--parallel must be at least 1")
    r = resolve(state_dir, name)
    plan = r.plan()
    src_path = source or plan.source
    chosen = [plan.unit(u) for u in units] if units else [
        u for u in plan.units if (s := r.unit(u.name)) is None or r.effective_status(s) in RUNNABLE]
    kw = _target_kw(plan, dict(path=path, url=url, api_key=api_key, prefer_grpc=prefer_grpc, grpc_port=grpc_port))
    tgt, own = (target, False) if target is not None else (_connect(kw), True)
    res = RunResult(rollout=r.name, collection=plan.collection, target=tgt.location, parallel=parallel)
    store = StateStore(state_dir)
    try:
        if tgt.kind == "embedded":  # one process writes the shard; the units share it from threads
            store.lock_file("collection", Path(tgt.location) / ".cortex-locks" /
                            f"{quote(plan.collection, safe='')}.lock",
                            f"collection '{plan.collection}' in {tgt.location} is being written by another "
                            "migration (pid {pid}); wait for it to finish or stop it first")
        with open_source(src_path, plan.source_type, plan.source_options()) as src:
            info = src.info()
        sparse, named = vector_config(info)
        if plan.shard_key_field:
            from cortex.rollout.sharding import require_sharding

            require_sharding(tgt)
            if tgt.collection_info(plan.collection) is None:
                tgt.create_collection(plan.collection, info.dim or 0, resolve_distance(info, None),  # type: ignore[call-arg]
                                      defer_indexing=True, sparse=sparse or None, named=named or None,
                                      custom_sharding=True)
                say(f"created collection '{plan.collection}' at {tgt.location} (custom sharding by "
                    f"{plan.shard_key_field})")
            for pu in chosen:
                if tgt.create_shard_key(plan.collection, pu.shard_key):  # type: ignore[attr-defined]
                    say(f"shard key {pu.shard_key!r} for unit {pu.name}")
        if prepare_collection(tgt, plan.collection, info.dim or 0, resolve_distance(info, None), True, False,
                              sparse=sparse, named=named):
            say(f"created collection '{plan.collection}' at {tgt.location}")
        _tenant_setup(tgt, plan, say)
        if not chosen:
            say("nothing to run: every unit is verified or live (name units with --unit to run them again)")
        lock = threading.Lock()
        if progress is not None:
            progress.start(sum(u.count for u in chosen))

        def one(pu: PlannedUnit) -> UnitRun:
            if stop.is_set():
                return UnitRun(pu.name, "pending")
            return _run_unit(api, r, plan, pu, src_path, tgt, state_dir, dict(
                batch_size=batch_size, workers=workers, checkpoint_seconds=checkpoint_seconds), full_verify, stop,
                _SharedProgress(progress, lock) if progress is not None else None, say)

        with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="cortex-unit") as pool:
            res.units = list(pool.map(one, chosen))
        if progress is not None:
            progress.stop()
        if stop.is_set():
            res.status = "interrupted"
        elif any(u.status == "failed" for u in res.units):
            res.status = "failed"
        if build_index and any(u.written for u in res.units) and not stop.is_set():
            say("units loaded; building the collection's index ...")
            ti = time.perf_counter()
            tgt.finish_load(plan.collection)
            res.index_seconds = round(time.perf_counter() - ti, 3)
    finally:
        store.close()
        if own:
            tgt.close()
    res.seconds = round(time.perf_counter() - t0, 3)
    return res


def _tenant_setup(tgt: Target, plan: Plan, say: Any) -> None:
    """The unit field as a tenant index (keyword values), so each unit's points are stored together."""
    if not plan.tenant_index:
        return
    info = tgt.collection_info(plan.collection)
    if info is None or plan.by in info.payload_indexes:
        return
    text = all(isinstance(u.value, str) for u in plan.units)
    kind = "keyword" if text else ("integer" if all(isinstance(u.value, int) for u in plan.units) else None)
    if kind is None:
        return
    tgt.create_payload_index(plan.collection, plan.by, kind, is_tenant=text)
    if getattr(tgt, "local", False):
        say(f"qdrant-client's local mode keeps no payload indexes: '{plan.by}' is filtered by scanning")
    else:
        say(f"payload index on '{plan.by}' ({kind}{', is_tenant' if text else ''})")


def _run_unit(api: Any, r: Rollout, plan: Plan, pu: PlannedUnit, src_path: str, tgt: Target, state_dir: str,
              migrate_kw: dict[str, Any], full_verify: bool, stop: threading.Event, progress: Any,
              say: Any) -> UnitRun:
    t0 = time.perf_counter()
    out = UnitRun(pu.name, "failed")
    opts = plan.source_options(pu.where)
    with r.units.lock(pu.name, f"unit {pu.name} of rollout '{r.name}'"):
        u = r.unit(pu.name) or UnitState(name=pu.name, value=pu.value, where=pu.where, planned=pu.count)
        mid = migration_id(src_path, tgt.location, plan.collection, pu.where)
        u = u.moved_to("migrating", started=time.time(), error=None, migration_id=mid, verify=None)
        r.save_unit(u)
        unit_target: Any = tgt
        if pu.shard_key is not None and plan.shard_key_field:
            from cortex.rollout.sharding import ShardKeyTarget

            unit_target = ShardKeyTarget(tgt, pu.shard_key)
        try:
            s = api.migrate(src_path, plan.collection, source_type=plan.source_type, options=opts, target=unit_target,
                            **migrate_kw, build_index=False, state_dir=state_dir,
                            stop=stop, progress=progress, lock_collection=False,
                            on_event=lambda m: say(f"{pu.name}: {m}"),
                            command=f"cortex qdrant rollout run --name {r.name} --unit {pu.name}")
            out.read, out.written, out.rejected, out.skipped = s.read, s.written, s.rejected, s.skipped
            out.resumed_from = s.resumed_from
            counts = {k: getattr(s, k) for k in ("read", "written", "rejected", "skipped", "duplicates")}
            if s.status != "done":
                out.status = "interrupted"
                r.save_unit(u.moved_to("interrupted", counts=counts))
                return out
            u = u.moved_to("migrating", counts=counts, migrated=time.time())
            r.save_unit(u)
            rep = api.verify(plan.collection, source=src_path, source_type=plan.source_type, options=opts,
                             target=tgt, full=full_verify)
            out.verify_ok = rep.ok
            v = {"ok": rep.ok, "mode": rep.mode, "expected": rep.expected_count, "actual": rep.actual_count,
                 "missing": rep.missing, "extra": rep.extra, "vector_mismatches": rep.vector_mismatches,
                 "payload_mismatches": rep.payload_mismatches, "seconds": rep.seconds}
            if rep.ok:
                out.status = "verified"
                r.save_unit(u.moved_to("verified", verify=v, verified=time.time()))
            else:
                first = rep.problems[0] if rep.problems else None
                out.error = f"verify failed: {first.kind} {first.id if first.id is not None else ''} {first.detail}" \
                    if first else "verify failed"
                r.save_unit(u.moved_to("failed", verify=v, error=out.error))
            say(f"{pu.name}: {out.status}: {s.written:,} points" + (f" ({s.skipped:,} skipped)" if s.skipped else ""))
        except KeyboardInterrupt:
            r.save_unit(u.moved_to("interrupted"))
            raise
        except Exception as e:
            out.error = str(e)[:500]
            r.save_unit(u.moved_to("failed", error=out.error))
            say(f"{pu.name}: failed: {out.error}")
            if not isinstance(e, CortexError):
                raise
        finally:
            out.seconds = round(time.perf_counter() - t0, 3)
    return out


# -- status / promote / revert ------------------------------------------------------------------
def rollout_status(name: str | None = None, *, state_dir: str = DEFAULT_STATE_DIR) -> dict[str, Any]:
    """The plan and every unit's state (pending / migrating / interrupted / failed / verified / live / reverted)."""
    r = resolve(state_dir, name)
    plan = r.plan()
    have = r.all_units()
    rows = []
    for pu in plan.units:
        u = have.get(pu.name) or UnitState(name=pu.name, value=pu.value, where=pu.where, planned=pu.count)
        d = u.model_dump()
        d["status"] = r.effective_status(u)
        rows.append(d)
    by_status = collections.Counter(d["status"] for d in rows)
    return {"rollout": r.name, "source": plan.source, "by": plan.by, "collection": plan.collection,
            "target": plan.target, "missing": plan.missing, "summary": dict(by_status), "units": rows}


def rollout_promote(unit: str, *, name: str | None = None, state_dir: str = DEFAULT_STATE_DIR,
                    force: bool = False) -> UnitState:
    """Mark a verified unit live: from now on the router answers its queries from Qdrant."""
    r = resolve(state_dir, name)
    pu = r.plan().unit(unit)
    with r.units.lock(pu.name, f"unit {unit} of rollout '{r.name}'"):
        u = r.unit(pu.name)
        status = r.effective_status(u) if u is not None else "pending"
        if u is not None and status == "live":
            return u
        if u is None or (status != "verified" and not (force and status == "reverted" and u.verified)):
            raise ConflictError(f"unit {unit} is {status}, not verified: run `cortex qdrant rollout run --unit "
                                f"{unit}` first (promote only sends a unit's queries to Qdrant once it verified)")
        u = u.moved_to("live", promoted=time.time())
        r.save_unit(u)
        return u


def rollout_revert(unit: str, *, name: str | None = None, delete: bool = False, state_dir: str = DEFAULT_STATE_DIR,
                   path: str | None = None, url: str | None = None, api_key: str | None = None,
                   prefer_grpc: bool = True, grpc_port: int = 6334, target: Target | None = None) -> dict[str, Any]:
    """Send a unit's queries back to the old system; ``delete``: also remove its points from Qdrant.

    Only the unit's points go (delete by its condition); the other units' points stay.  The
    unit's migration checkpoint is dropped with them, so a later ``rollout run`` moves it again.
    """
    r = resolve(state_dir, name)
    plan = r.plan()
    pu = plan.unit(unit)
    deleted = None
    with r.units.lock(pu.name, f"unit {unit} of rollout '{r.name}'"):
        u = r.unit(pu.name) or UnitState(name=pu.name, value=pu.value, where=pu.where, planned=pu.count)
        if delete:
            kw = _target_kw(plan, dict(path=path, url=url, api_key=api_key, prefer_grpc=prefer_grpc,
                                       grpc_port=grpc_port))
            tgt, own = (target, False) if target is not None else (_connect(kw), True)
            store = StateStore(state_dir)
            try:
                if tgt.kind == "embedded":
                    store.lock_file("collection", Path(tgt.location) / ".cortex-locks" /
                                    f"{quote(plan.collection, safe='')}.lock",
                                    f"collection '{plan.collection}' in {tgt.location} is being written by "
                                    "another migration (pid {pid}); wait for it to finish or stop it first")
                if tgt.collection_info(plan.collection) is not None:
                    expr = parse(pu.where)
                    deleted = tgt.count(plan.collection, exact=True, filter=expr)
                    if plan.shard_key_field and pu.shard_key is not None:  # the unit lives in its own shard key
                        tgt.delete_points(plan.collection, expr, shard_key=pu.shard_key)  # type: ignore[call-arg]
                    else:
                        tgt.delete_points(plan.collection, expr)
                mid = u.migration_id or migration_id(plan.source, tgt.location, plan.collection, pu.where)
                rec = store.get(mid)
                if rec is not None:
                    if rec.seen_log:
                        Path(rec.seen_log).unlink(missing_ok=True)
                    store.delete(mid)
            finally:
                store.close()
                if own:
                    tgt.close()
        changes: dict[str, Any] = {"reverted": time.time()}
        if delete:
            changes.update(counts={}, verify=None, migrated=None, verified=None)
        u = u.moved_to("reverted", **changes)
        r.save_unit(u)
    return {"unit": u.model_dump(), "deleted_points": deleted}
