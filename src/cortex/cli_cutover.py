"""``cortex qdrant sync | cutover | rollback | aliases | retire``: blue-green with aliases (see cortex.cutover).

Imported by :mod:`cortex.cli` at start-up; the commands register themselves on ``qdrant``.
Exit codes as in :mod:`cortex.cli`: cutover exits 1 when a gate fails (the alias is unchanged);
retire exits 4 while an alias points to the collection.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from typing import Annotated, Any

import typer
from rich.table import Table

from cortex.cli import IdFieldOpt, JsonOpt, RichProgress, emit_json, err, handle_errors, out, qdrant
from cortex.cli_options import source_flags, target_flags
from cortex.errors import ExitCode

StateDirOpt = Annotated[str, typer.Option("--state-dir", help="Where migrate and sync keep their state.")]


def _delta_line(s: Any) -> str:
    return (f"round {s.round} {time.strftime('%H:%M:%S')}: added {s.added:,}  changed {s.changed:,}  deleted "
            f"{s.deleted:,}  unchanged {s.unchanged:,}  rejected {s.rejected:,}  ({s.seconds:.2f}s, {s.mode})")


# -- sync ---------------------------------------------------------------------------------------------
@qdrant.command(epilog="Example: cortex qdrant sync --source export.jsonl --collection code_vectors --watch 60")
@handle_errors
@source_flags
@target_flags
def sync(
    source: Annotated[str, typer.Option("--source", "-s", help="The source the collection was migrated from.")],
    collection: Annotated[str, typer.Option("--collection", "-c", help="Collection (or alias) to bring up "
                                            "to date.")],
    watch: Annotated[float | None, typer.Option("--watch", min=0.1, help="Repeat every SECONDS until Ctrl-C "
                                                "(one line per round).")] = None,
    no_delete: Annotated[bool, typer.Option("--no-delete", help="Keep points whose record is gone from the "
                                            "source.")] = False,
    since_column: Annotated[str | None, typer.Option("--since-column", help="pgvector: read only rows whose "
                                                     "COLUMN (e.g. updated_at) is >= the last sync's maximum, "
                                                     "plus the primary keys alone for deletions.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what is pending; write nothing.")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Points per upsert.")] = 500,
    id_field: IdFieldOpt = "source_id",
    state_dir: StateDirOpt = ".cortex",
    json_out: JsonOpt = False,
    source_type: Any = None, source_opts: Any = None, target_kw: Any = None,
) -> None:
    """Bring a migrated collection up to its source: upsert new and changed records, delete gone ones.

    Unchanged records are not written: each point's content hash (vector bytes + payload) is
    kept on disk by migrate and sync (16 bytes per point; 24 when ids are UUIDs). A collection
    without that state is synced once by hashing what the target holds (a full scan of the
    target). With --where only the points matching it are compared and deleted. Killed at any
    moment, a re-run converges on the source.
    """
    from cortex import api

    stop = threading.Event()
    got: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        if got:  # a second Ctrl-C: stop mid-round (safe: the next sync finishes it)
            raise KeyboardInterrupt
        got.append(signum)
        stop.set()
        err.print("stopping after this round (Ctrl-C again to stop now)", highlight=False)

    old = {}
    if watch and threading.current_thread() is threading.main_thread():
        for s_ in (signal.SIGINT, signal.SIGTERM):
            old[s_] = signal.signal(s_, on_signal)
    rounds: list[Any] = []

    def on_round(s: Any) -> None:
        rounds.append(s)
        if watch:
            if json_out:
                sys.stdout.write(_json_line(s.to_dict()))
                sys.stdout.flush()
            else:
                out.print(_delta_line(s), highlight=False)

    try:
        s = api.sync(source, collection, source_type=source_type, options=source_opts, watch=watch,
                     no_delete=no_delete, since_column=since_column, dry_run=dry_run, batch_size=batch_size,
                     id_field=id_field, state_dir=state_dir, progress=RichProgress(f"sync → {collection}"),
                     stop=stop, on_event=lambda m: err.print(m, highlight=False, soft_wrap=True), on_round=on_round,
                     **target_kw)
    except KeyboardInterrupt:
        err.print("Interrupted mid-round; nothing is lost: run the same sync again to finish it.")
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    finally:
        for s_, h in old.items():
            signal.signal(s_, h)
    for w in s.warnings:
        err.print(f"[yellow]warning:[/yellow] {w}", highlight=False)
    if watch:
        err.print(f"stopped after {len(rounds)} round(s)", highlight=False)
        return
    if json_out:
        emit_json(s.to_dict())
        return
    t = Table(title=f"sync {s.source} → {s.collection}" + (" (dry run: nothing written)" if dry_run else ""),
              show_header=False)
    for k in ("added", "changed", "deleted", "unchanged", "rejected", "seconds", "mode"):
        v = getattr(s, k)
        t.add_row(k, f"{v:,}" if isinstance(v, int) else str(v))
    if s.kept_deleted:
        t.add_row("kept (--no-delete)", f"{s.kept_deleted:,}")
    t.add_row("state", f"{s.state_points:,} points, {s.state_bytes:,} bytes")
    out.print(t)


def _json_line(d: dict[str, Any]) -> str:
    import orjson

    return orjson.dumps(d, default=str).decode() + "\n"


# -- cutover ------------------------------------------------------------------------------------------
@qdrant.command(epilog="Example: cortex qdrant cutover --alias code_live --collection code_v2 --source export.jsonl "
                       "--min-recall 0.95")
@handle_errors
@source_flags
@target_flags
def cutover(
    alias: Annotated[str, typer.Option("--alias", "-a", help="The alias your application queries.")],
    collection: Annotated[str, typer.Option("--collection", "-c", help="The collection to switch it to.")],
    source: Annotated[str | None, typer.Option("--source", "-s", help="The old system: adds the sync, verify "
                                               "--full and compare gates.")] = None,
    min_recall: Annotated[float, typer.Option("--min-recall", min=0.0, max=1.0, help="Compare gate: least "
                                              "recall@10.")] = 0.95,
    no_checks: Annotated[bool, typer.Option("--no-checks", help="Switch without the gates.")] = False,
    queries: Annotated[str | None, typer.Option("--queries", help="Query vectors for the compare gate (.npy, "
                                                ".json, .jsonl).")] = None,
    id_field: IdFieldOpt = "source_id",
    state_dir: StateDirOpt = ".cortex",
    json_out: JsonOpt = False,
    source_type: Any = None, source_opts: Any = None, target_kw: Any = None,
) -> None:
    """Gate, then point ALIAS at COLLECTION in one atomic operation; prints the rollback command.

    Gates, each shown with its figure: the collection exists and is fully indexed; with
    --source: a final sync finds nothing pending, verify --full passes, compare recall@10 >=
    --min-recall. Any failure exits 1 and leaves the alias as it was.
    """
    from cortex import api

    r = api.cutover(alias, collection, source=source, source_type=source_type,
                    options=source_opts if source else None, min_recall=min_recall, no_checks=no_checks,
                    queries=queries, id_field=id_field, state_dir=state_dir,
                    on_event=None if json_out else (lambda m: err.print(m, highlight=False)), **target_kw)
    if json_out:
        emit_json(r.to_dict())
    else:
        t = Table(title=f"cutover {alias} → {collection}")
        for c in ("gate", "result", "figure"):
            t.add_column(c)
        for g in r.gates:
            t.add_row(g.name, "[green]pass[/green]" if g.ok else "[red]FAIL[/red]", g.figure)
        out.print(t)
        if r.switched:
            was = f" (was {r.previous})" if r.previous else " (created)"
            out.print(f"[green]switched[/green]: {alias} → {collection}{was}", highlight=False)
            out.print(f"rollback: {r.rollback_command}", highlight=False, soft_wrap=True)
        else:
            now = f"'{r.previous}'" if r.previous else "nothing (not created)"
            out.print(f"[red]not switched[/red]: a gate failed; {alias} still points to {now}", highlight=False)
    if not r.switched:
        raise typer.Exit(ExitCode.CHECK_FAILED)


# -- rollback -----------------------------------------------------------------------------------------
@qdrant.command(epilog="Example: cortex qdrant rollback --alias code_live")
@handle_errors
@target_flags
def rollback(
    alias: Annotated[str, typer.Option("--alias", "-a", help="The alias to point back.")],
    to: Annotated[str | None, typer.Option("--to", help="Collection to point it at (default: the one before the "
                                           "last cutover).")] = None,
    state_dir: StateDirOpt = ".cortex",
    json_out: JsonOpt = False,
    target_kw: Any = None,
) -> None:
    """Point ALIAS back at the collection it pointed to before the last cutover (or --to), atomically.

    The newer collection is kept for investigation; `retire` deletes it when you are done.
    """
    from cortex import api

    r = api.rollback(alias, to=to, state_dir=state_dir, **target_kw)
    if json_out:
        emit_json(r.to_dict())
        return
    out.print(f"rolled back: {alias} → {r.collection} (was {r.previous}, kept)", highlight=False)
    out.print(f"to switch forward again: {r.rollback_command}", highlight=False, soft_wrap=True)


# -- aliases ------------------------------------------------------------------------------------------
@qdrant.command(epilog="Example: cortex qdrant aliases --alias code_live")
@handle_errors
@target_flags
def aliases(
    alias: Annotated[str | None, typer.Option("--alias", "-a", help="Only this alias.")] = None,
    state_dir: StateDirOpt = ".cortex",
    json_out: JsonOpt = False,
    target_kw: Any = None,
) -> None:
    """Each alias and the collection it points to, and the cutover / rollback history."""
    from cortex import api

    d = api.aliases(alias=alias, state_dir=state_dir, **target_kw)
    if json_out:
        emit_json(d)
        return
    t = Table(title=f"aliases ({d['target']})")
    t.add_column("alias")
    t.add_column("collection")
    for a, c in sorted(d["aliases"].items()):
        t.add_row(a, c)
    out.print(t)
    if d["history"]:
        h = Table(title="history")
        for c in ("time (UTC)", "action", "alias", "collection", "previous", "gates"):
            h.add_column(c)
        for e in d["history"]:
            passed = sum(1 for g in e["gates"] if g["ok"])
            gates = f"{passed}/{len(e['gates'])} passed" if e["gates"] else "-"
            h.add_row(e["at"], e["action"], e["alias"], e["collection"], e.get("previous") or "-", gates)
        out.print(h)
        out.print("gates and their figures: --json", highlight=False)


# -- retire -------------------------------------------------------------------------------------------
@qdrant.command(epilog="Example: cortex qdrant retire --collection code_v1 --snapshot archive/ --yes")
@handle_errors
@target_flags
def retire(
    collection: Annotated[str, typer.Option("--collection", "-c", help="The old collection to delete.")],
    snapshot: Annotated[str | None, typer.Option("--snapshot", help="Archive it into this directory first "
                                                 "(embedded: a tar + sha256; server: a snapshot).")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    state_dir: StateDirOpt = ".cortex",
    json_out: JsonOpt = False,
    target_kw: Any = None,
) -> None:
    """Decommission an old collection: optional archive, then delete. Refused while an alias points to it."""
    from cortex import api

    def confirm(question: str) -> bool:
        if not sys.stdin.isatty():
            return False
        return typer.confirm(question, default=False, err=True)

    r = api.retire(collection, snapshot=snapshot, yes=yes, confirm=confirm, state_dir=state_dir, **target_kw)
    if json_out:
        emit_json(r.to_dict())
        return
    if r.archive:
        out.print(f"archived: {r.archive} ({r.archive_bytes:,} bytes, sha256 {r.sha256})", highlight=False)
    out.print(f"retired: collection '{collection}' deleted", highlight=False)
