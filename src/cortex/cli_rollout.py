"""``cortex qdrant rollout plan|run|status|promote|revert``: a rolling migration, one unit (workspace) at a time.

Imported by :mod:`cortex.cli` at start-up; the sub-app registers itself on ``qdrant``.
Exit codes as in :mod:`cortex.cli`: ``run`` exits 1 when a unit fails to verify, 5 when records were
rejected, 130/143 when interrupted (re-run resumes); ``promote`` of an unverified unit exits 4.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Annotated, Any

import typer
from rich.table import Table

from cortex.cli import PARTIAL, JsonOpt, RichProgress, emit_json, err, handle_errors, out, qdrant
from cortex.cli_options import source_flags, target_flags
from cortex.errors import ExitCode

rollout = typer.Typer(help="Rolling migration: plan units (one per workspace), migrate and verify them, "
                           "promote or revert each one.", no_args_is_help=True, rich_markup_mode="rich",
                      epilog="Example: cortex qdrant rollout plan --source export.jsonl --by workspace_id")
qdrant.add_typer(rollout, name="rollout")

NameOpt = Annotated[str | None, typer.Option("--name", help="The rollout (default: the only one in --state-dir).")]
StateOpt = Annotated[str, typer.Option("--state-dir", help="Checkpoints, locks and rollout state.")]


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"


@rollout.command("plan", epilog="Example: cortex qdrant rollout plan --source export.jsonl --by workspace_id "
                                "--collection code_chunks")
@handle_errors
@source_flags
@target_flags
def plan(
    source: Annotated[str, typer.Option("--source", "-s", help="What to migrate: a file, directory or URL.")],
    by: Annotated[str, typer.Option("--by", help="Payload field whose values are the units (workspace, "
                                    "tenant ...).")],
    collection: Annotated[str | None, typer.Option("--collection", "-c", help="Qdrant collection to write into "
                                                   "(default: the source's name).")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Name of the rollout (default: the collection).")] = None,
    tenant_index: Annotated[bool, typer.Option("--tenant-index/--no-tenant-index", help="Index the unit field as "
                                               "a tenant (is_tenant) on the collection.")] = True,
    shard_key_field: Annotated[str | None, typer.Option("--shard-key-field", help="Server: route each unit to a "
                                                        "custom shard key named by this field's value.")] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Plan anew (another source or field); unit state "
                                          "starts over.")] = False,
    state_dir: StateOpt = ".cortex",
    json_out: JsonOpt = False,
    source_type: Any = None, source_opts: Any = None, target_kw: Any = None,
) -> None:
    """List the units (one per distinct value of --by, with counts) and record them as pending."""
    from cortex import api

    p = api.rollout_plan(source, by=by, collection=collection, name=name, source_type=source_type,
                         options=source_opts, state_dir=state_dir, tenant_index=tenant_index,
                         shard_key_field=shard_key_field, replace=replace, progress=RichProgress("plan"),
                         **target_kw)
    if json_out:
        emit_json(p.model_dump())
        return
    t = Table(title=f"rollout '{p.name}': {p.source} by {p.by} → {p.collection}")
    for c in ("unit", "records", "where"):
        t.add_column(c)
    for u in p.units:
        t.add_row(u.name, f"{u.count:,}", u.where)
    out.print(t)
    if p.missing:
        err.print(f"[yellow]warning:[/yellow] {p.missing:,} record(s) have no '{p.by}': no unit moves them",
                  highlight=False)
    out.print(f"{len(p.units)} units planned; next: cortex qdrant rollout run --name {p.name}", highlight=False)


@rollout.command("run", epilog="Example: cortex qdrant rollout run --unit ws-1 --unit ws-2 --parallel 2")
@handle_errors
@target_flags
def run(
    unit: Annotated[list[str] | None, typer.Option("--unit", "-u", help="Run this unit (repeatable; default: "
                                                   "every unit not yet verified or live).")] = None,
    parallel: Annotated[int, typer.Option("--parallel", min=1, help="Units at a time.")] = 1,
    source: Annotated[str | None, typer.Option("--source", "-s", help="The source URL, when the plan keeps it "
                                               "without its password.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Points per upsert.")] = 500,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Parallel writers per unit.")] = 2,
    checkpoint_seconds: Annotated[float, typer.Option("--checkpoint-seconds", min=0, help="Save each unit's "
                                                      "checkpoint at most this often.")] = 1.0,
    full: Annotated[bool, typer.Option("--full/--sample", help="Verify every point of each unit (or a "
                                       "sample).")] = True,
    name: NameOpt = None,
    state_dir: StateOpt = ".cortex",
    json_out: JsonOpt = False,
    target_kw: Any = None,
) -> None:
    """Migrate and verify units: each is its own resumable migration (--where its condition)."""
    from cortex import api

    stop = threading.Event()
    got: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        if got:
            os._exit(128 + signum)
        got.append(signum)
        stop.set()
        err.print(f"\n{signal.Signals(signum).name}: finishing the units' batches in flight and saving their "
                  "checkpoints (again to quit at once)", highlight=False)

    old = {}
    if threading.current_thread() is threading.main_thread():
        for s in (signal.SIGINT, signal.SIGTERM):
            old[s] = signal.signal(s, on_signal)
    try:
        res = api.rollout_run(name, units=unit, parallel=parallel, state_dir=state_dir, source=source,
                              batch_size=batch_size, workers=workers, full_verify=full, stop=stop,
                              checkpoint_seconds=checkpoint_seconds,
                              progress=RichProgress("rollout"),
                              on_event=lambda m: err.print(m, highlight=False, soft_wrap=True), **target_kw)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if json_out:
        emit_json(res.to_dict())
    else:
        t = Table(title=f"rollout '{res.rollout}' → {res.collection} ({res.target}), parallel {res.parallel}")
        for c in ("unit", "status", "read", "written", "skipped", "rejected", "seconds", "note"):
            t.add_column(c)
        for u in res.units:
            note = u.error or (f"resumed from {u.resumed_from:,}" if u.resumed_from else "")
            t.add_row(u.name, u.status, f"{u.read:,}", f"{u.written:,}", f"{u.skipped:,}", f"{u.rejected:,}",
                      f"{u.seconds:.2f}", note)
        out.print(t)
        out.print(f"{res.seconds:.2f} s (index build {res.index_seconds:.2f} s)", highlight=False)
    if res.status == "interrupted":
        err.print(f"Interrupted; each unit's checkpoint is saved. Resume with: cortex qdrant rollout run --name "
                  f"{res.rollout}", highlight=False)
        raise typer.Exit(128 + (got[0] if got else signal.SIGINT))
    if any(u.status == "failed" for u in res.units):
        raise typer.Exit(ExitCode.CHECK_FAILED)
    if any(u.rejected for u in res.units):
        raise typer.Exit(PARTIAL)


@rollout.command("status", epilog="Example: cortex qdrant rollout status --json")
@handle_errors
def status(name: NameOpt = None, state_dir: StateOpt = ".cortex", json_out: JsonOpt = False) -> None:
    """Each unit's state (pending / migrating / interrupted / failed / verified / live / reverted), counts, times."""
    from cortex import api

    st = api.rollout_status(name, state_dir=state_dir)
    if json_out:
        emit_json(st)
        return
    t = Table(title=f"rollout '{st['rollout']}': {st['source']} by {st['by']} → {st['collection']}")
    for c in ("unit", "status", "planned", "written", "verified", "updated", "note"):
        t.add_column(c)
    for u in st["units"]:
        v = u.get("verify") or {}
        ver = "-" if not v else ("OK" if v.get("ok") else "FAILED") + f" ({v.get('actual', 0):,})"
        t.add_row(u["name"], u["status"], f"{u['planned']:,}", f"{u['counts'].get('written', 0):,}", ver,
                  _when(u.get("updated")), u.get("error") or "")
    out.print(t)
    out.print(", ".join(f"{k}: {v}" for k, v in sorted(st["summary"].items())), highlight=False)


@rollout.command("promote", epilog="Example: cortex qdrant rollout promote ws-1")
@handle_errors
def promote(
    unit: Annotated[str, typer.Argument(help="The unit (a value of the --by field).")],
    name: NameOpt = None,
    state_dir: StateOpt = ".cortex",
    json_out: JsonOpt = False,
) -> None:
    """Mark a verified unit live: the router answers its queries from Qdrant from now on."""
    from cortex import api

    u = api.rollout_promote(unit, name=name, state_dir=state_dir)
    if json_out:
        emit_json(u.model_dump())
    else:
        out.print(f"unit {u.name} is live: its queries go to Qdrant", highlight=False)


@rollout.command("revert", epilog="Example: cortex qdrant rollout revert ws-1 --delete")
@handle_errors
@target_flags
def revert(
    unit: Annotated[str, typer.Argument(help="The unit (a value of the --by field).")],
    delete: Annotated[bool, typer.Option("--delete", help="Also delete the unit's points from Qdrant (the "
                                         "other units' points stay).")] = False,
    name: NameOpt = None,
    state_dir: StateOpt = ".cortex",
    json_out: JsonOpt = False,
    target_kw: Any = None,
) -> None:
    """Send a unit's queries back to the old system (partial rollback); --delete removes its points."""
    from cortex import api

    r = api.rollout_revert(unit, name=name, delete=delete, state_dir=state_dir, **target_kw)
    if json_out:
        emit_json(r)
    else:
        gone = f"; {r['deleted_points']:,} points deleted from Qdrant" if r["deleted_points"] is not None else ""
        out.print(f"unit {unit} reverted: its queries go to the old system{gone}", highlight=False)
