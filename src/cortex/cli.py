"""The ``cortex`` command: ``cortex qdrant <command>``; each command is one call into ``cortex.api``.

Exit codes: 0 ok; 1 a check failed (verify/compare); 2 bad input or usage; 3 target
unreachable or refused; 4 conflict (collection differs, busy, source changed);
5 migrated but some records were rejected (see the dead-letter file); 130/143 interrupted.
"""

from __future__ import annotations

import errno
import functools
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from cortex import __version__
from cortex.cli_options import source_flags, target_flags
from cortex.errors import CortexError, ExitCode
from cortex.report import verify_page, write_report
from cortex.sources.base import redact_url

app = typer.Typer(help="Cortex: move vector collections into Qdrant, fast, resumable and provably intact.",
                  no_args_is_help=True, add_completion=False, rich_markup_mode="rich")
qdrant = typer.Typer(help="Migrate into Qdrant, then verify, inspect and optimize the result.",
                     no_args_is_help=True, rich_markup_mode="rich")
app.add_typer(qdrant, name="qdrant")

out = Console(width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 120)
PARTIAL = 5  # exit code: finished, but records were rejected

# -- shared options (the Source and Target panels are in cli_options.py) ----------------
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
IdFieldOpt = Annotated[str, typer.Option("--id-field", help="Payload field that keeps a remapped original id.")]
MetricsPortOpt = Annotated[int | None, typer.Option(
    "--metrics-port", envvar="CORTEX_METRICS_PORT", min=0,
    help="Serve Prometheus metrics of the run at http://0.0.0.0:PORT/metrics while it runs (0: a free port).")]


def start_metrics(port: int | None) -> Any:
    """``--metrics-port``: a serving :class:`cortex.deploy.metrics.MetricsReporter`, or None."""
    if port is None:
        return None
    from cortex.deploy.metrics import MetricsReporter

    m = MetricsReporter(port)
    err.print(f"metrics: {m.url}", highlight=False)
    return m


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Typed errors become ``Error: ...`` on stderr and their exit code; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CortexError as e:
            err.print(f"[red]Error:[/red] {e}", highlight=False, soft_wrap=True)
            raise typer.Exit(e.exit_code) from None
        except OSError as e:  # a file Cortex was asked to write or read: permission, missing folder, disk full
            where = f"{e.filename}: " if e.filename else ""
            if e.errno == errno.ENOSPC:
                err.print(f"[red]Error:[/red] {where}no space left on the device; free some space and re-run",
                          highlight=False, soft_wrap=True)
                raise typer.Exit(ExitCode.DISK_FULL) from None
            err.print(f"[red]Error:[/red] {where}{e.strerror or e}; check the path and its permissions",
                      highlight=False, soft_wrap=True)
            raise typer.Exit(ExitCode.BAD_INPUT) from None
        except KeyboardInterrupt:
            err.print("Interrupted.")
            raise typer.Exit(ExitCode.INTERRUPTED) from None

    return wrapper


def save_report(report: str | None, data: dict[str, Any], page: Callable[[dict[str, Any]], str]) -> None:
    """``--report FILE``: write the JSON and the HTML page that ``page`` builds from it."""
    if not report:
        return
    jpath, hpath = write_report(report, data, page(data))
    err.print(f"report: {hpath} (+ {jpath})", highlight=False)


def emit_json(obj: Any) -> None:
    sys.stdout.write(orjson.dumps(obj, default=str, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
                     .decode() + "\n")


class RichProgress:
    """A rich progress bar on stderr with rate (points/s) and ETA; silent when not a terminal."""

    def __init__(self, label: str, enabled: bool | None = None) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.enabled = err.is_terminal if enabled is None else enabled
        self._p = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                           TaskProgressColumn(), TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                           TextColumn("ETA"), TimeRemainingColumn(), console=err, disable=not self.enabled,
                           refresh_per_second=4)
        self.label = label
        self._task: Any = None

    def start(self, total: int | None, done: int = 0) -> None:
        self._p.start()
        self._task = self._p.add_task(self.label, total=total, completed=done, rate="")
        self._t0 = self._p.get_time()
        self._done0 = done

    def advance(self, n: int) -> None:
        self._p.advance(self._task, n)
        task = self._p.tasks[0]
        dt = self._p.get_time() - self._t0
        if dt > 0:
            self._p.update(self._task, rate=f"{(task.completed - self._done0) / dt:,.0f} pts/s")

    def stop(self) -> None:
        self._p.stop()




# -- migrate ------------------------------------------------------------------------------
@qdrant.command(epilog="Example: cortex qdrant migrate --source export.jsonl --target code_vectors --batch-size 500")
@handle_errors
@source_flags
@target_flags
def migrate(
    ctx: typer.Context,
    source: Annotated[str, typer.Option("--source", "-s", help="What to migrate: a file, directory or URL.")],
    target: Annotated[str, typer.Option("--target", "-t", help="Qdrant collection to write into.")],
    batch_size: Annotated[int, typer.Option("--batch-size", help="Points per upsert.", min=1)] = 500,
    workers: Annotated[int, typer.Option("--workers", help="Parallel writers.", min=1)] = 2,
    distance: Annotated[str | None, typer.Option("--distance", help="cosine|dot|euclid|manhattan (default: the "
                                                 "source's, else cosine).")] = None,
    id_field: IdFieldOpt = "source_id",
    defer_indexing: Annotated[bool, typer.Option("--defer-indexing/--no-defer-indexing",
                                                 help="Build the HNSW index once after the load.")] = True,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Read and validate everything; write nothing.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Stop at the first bad record.")] = False,
    dead_letter: Annotated[str | None, typer.Option("--dead-letter", help="Where rejected records go (JSONL; "
                                                    "default .cortex/dead-letter/).")] = None,
    state_dir: Annotated[str, typer.Option("--state-dir", help="Checkpoints and locks.")] = ".cortex",
    restart: Annotated[bool, typer.Option("--restart", help="Ignore the checkpoint and start over (a collection "
                                          "this migration created is recreated).")] = False,
    retries: Annotated[int, typer.Option("--retries", help="Retries of a transient target fault.")] = 8,
    retry_max_seconds: Annotated[float, typer.Option("--retry-max-seconds", help="Longest wait between "
                                                     "retries.")] = 30.0,
    checkpoint_seconds: Annotated[float, typer.Option("--checkpoint-seconds", min=0, help="Save the checkpoint "
                                                      "at most this often (it is always saved on exit).")] = 1.0,
    config: Annotated[str | None, typer.Option("--config", help="Create the collection from a config file "
                                               "(`cortex qdrant plan --output`): vectors, HNSW, quantization, "
                                               "payload indexes.")] = None,
    partitions: Annotated[int | None, typer.Option("--partitions", min=1, rich_help_panel="Scale out",
                                                   help="Split the source into N disjoint partitions.")] = None,
    partition: Annotated[int | None, typer.Option("--partition", min=0, rich_help_panel="Scale out",
                                                  help="Migrate partition I (0..N-1) only, as its own resumable "
                                                  "migration, e.g. --partition $JOB_COMPLETION_INDEX.")] = None,
    finish: Annotated[bool, typer.Option("--finish", rich_help_panel="Scale out",
                                         help="After every partition is done: build the index and check the "
                                         "point count.")] = False,
    engine: Annotated[str, typer.Option("--engine", rich_help_panel="Scale out",
                                        help="local, or ray: run the N partitions as Ray tasks, then finish "
                                        "(pip install 'cortex-qdrant[ray]').")] = "local",
    ray_address: Annotated[str | None, typer.Option("--ray-address", rich_help_panel="Scale out",
                                                    help="Ray cluster to join (default: start Ray locally).",
                                                    envvar="RAY_ADDRESS")] = None,
    metrics_port: MetricsPortOpt = None,
    json_out: JsonOpt = False,
    source_type: Any = None, source_opts: Any = None, target_kw: Any = None,
) -> None:
    """Migrate a vector store into a Qdrant collection (created when missing), resumably.

    Re-running the same command resumes from its checkpoint. Ctrl-C stops cleanly and
    prints the command that resumes.
    """
    from cortex import api

    opts = source_opts
    stop = threading.Event()
    got: list[int] = []
    command = _resume_command(ctx)

    def on_signal(signum: int, _frame: Any) -> None:
        if got:  # second signal: leave now; the last saved checkpoint stays usable
            os._exit(128 + signum)
        got.append(signum)
        stop.set()
        err.print(f"\n{signal.Signals(signum).name}: finishing the batches in flight and saving the checkpoint "
                  "(again to quit at once)", highlight=False)

    old = {}
    if threading.current_thread() is threading.main_thread():
        for s in (signal.SIGINT, signal.SIGTERM):
            old[s] = signal.signal(s, on_signal)
    metrics = start_metrics(metrics_port)
    try:
        summary = api.migrate(
            source, target, source_type=source_type, options=opts, batch_size=batch_size, workers=workers,
            distance=distance, id_field=id_field, defer_indexing=defer_indexing, dry_run=dry_run, strict=strict,
            dead_letter=dead_letter, state_dir=state_dir, restart=restart, retries=retries,
            retry_max_seconds=retry_max_seconds, checkpoint_seconds=checkpoint_seconds,
            progress=RichProgress(f"migrate → {target}"), stop=stop,
            on_event=lambda m: err.print(m, highlight=False, soft_wrap=True), command=command, config=config,
            metrics=metrics,
            partitions=partitions, partition=partition, finish=finish, engine=engine, ray_address=ray_address,
            **target_kw)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if metrics is not None:
            metrics.close()
    d = summary.to_dict()
    d["counts_add_up"] = summary.counts_add_up
    if json_out:
        emit_json(d)
    else:
        t = Table(title=f"{summary.source} → {summary.collection} ({summary.target})", show_header=False)
        for k in ("status", "read", "written", "rejected", "skipped", "duplicates", "seconds", "index_seconds",
                  "points_per_second"):
            label = {"points_per_second": "points per second (load)", "index_seconds": "index build seconds"}
            t.add_row(label.get(k, k), f"{d[k]:,}" if isinstance(d[k], int | float) else str(d[k]))
        if summary.layout != "flat":
            t.add_row("layout", summary.layout)
        for k in ("sparse_vectors", "named_vectors", "payload_indexes"):
            if d.get(k):
                t.add_row(k.replace("_", " "), ", ".join(map(str, d[k])))
        if summary.resumed_from:
            t.add_row("resumed from", f"{summary.resumed_from:,}")
        if summary.dry_run:
            t.add_row("dry run", "nothing was written")
        if summary.dead_letter:
            t.add_row("dead letter", summary.dead_letter)
        out.print(t)
    for w in summary.warnings:
        err.print(f"[yellow]warning:[/yellow] {w}", highlight=False)
    if summary.duplicates:
        err.print(f"[yellow]{summary.duplicates} duplicate id(s) in the source; the last one won[/yellow] "
                  f"(e.g. {', '.join(map(str, summary.duplicate_examples[:5]))})", highlight=False)
    if summary.status == "interrupted":
        code = 128 + (got[0] if got else signal.SIGINT)
        if summary.index_abandoned or summary.index_seconds:
            err.print(f"Interrupted during the index build; all {summary.read:,} records are saved. Build the index "
                      f"with (from {Path.cwd()}):\n  {command}", highlight=False, soft_wrap=True)
        else:
            err.print(f"Interrupted at {summary.read:,} records; the checkpoint is saved. Resume with (from "
                      f"{Path.cwd()}):\n  {command}", highlight=False, soft_wrap=True)
        if summary.index_abandoned:  # the engine's build thread cannot be stopped: leave without waiting for it
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        raise typer.Exit(code)
    if summary.rejected:
        err.print(f"[yellow]{summary.rejected} record(s) rejected[/yellow]; see {summary.dead_letter}",
                  highlight=False)
        raise typer.Exit(PARTIAL)


def _resume_command(ctx: typer.Context) -> str:
    """The running ``migrate`` command as typed, minus ``--restart`` and with the API key hidden.

    Rebuilt from the options given on the command line (not from ``sys.argv``), so it is
    right however cortex was started (console script, ``python -m cortex``, in-process).
    """
    parts = ["cortex", "qdrant", ctx.info_name or "migrate"]
    for p in ctx.command.params:
        if p.name in (None, "restart") or p.param_type_name != "option":
            continue
        src = ctx.get_parameter_source(p.name)
        if src is None or src.name != "COMMANDLINE":
            continue
        value = ctx.params[p.name]
        if getattr(p, "is_flag", False):
            flag = p.opts[0] if value else (p.secondary_opts[0] if p.secondary_opts else None)
            parts += [flag] if flag else []
            continue
        name = next((o for o in p.opts if o.startswith("--")), p.opts[0])
        for v in value if isinstance(value, list | tuple) else [value]:
            shown = redact_url(str(v)) if p.name == "source" else str(v)
            parts += [name, "<your-api-key>" if p.name == "api_key" else shown]
    return shlex.join(parts).replace("'<your-api-key>'", "<your-api-key>")


# -- verify -------------------------------------------------------------------------------
@qdrant.command(epilog="Example: cortex qdrant verify --collection code_vectors --source export.jsonl")
@handle_errors
@source_flags
@target_flags
def verify(
    collection: Annotated[str, typer.Option("--collection", "-c", help="Qdrant collection to check.")],
    source: Annotated[str | None, typer.Option("--source", "-s", help="Compare against this source.")] = None,
    sample: Annotated[int, typer.Option("--sample", help="Source points to compare (without --full).")] = 100,
    full: Annotated[bool, typer.Option("--full", help="Compare every point, and list extra ids.")] = False,
    tolerance: Annotated[float, typer.Option("--tolerance", help="Max abs vector difference.")] = 1e-5,
    report: Annotated[str | None, typer.Option("--report", help="Write every problem to a report: FILE.html "
                                               "(+ FILE.json beside it) or FILE.json (+ FILE.html).")] = None,
    id_field: IdFieldOpt = "source_id",
    json_out: JsonOpt = False,
    source_type: Any = None, source_opts: Any = None, target_kw: Any = None,
) -> None:
    """Check a collection: counts, sampled points and a search; with --source, that it equals the source.

    With --full every point is compared (missing and extra ids, vectors within --tolerance
    after Qdrant's cosine normalization, payloads); the first 20 problems are printed, all of
    them go to the --report file.
    """
    from cortex import api

    opts = source_opts
    rep = api.verify(collection, source=source, source_type=source_type, options=opts, sample=sample, full=full,
                     tolerance=tolerance, id_field=id_field, max_problems=1_000_000 if report else 1000,
                     progress=RichProgress(f"verify {collection}") if source else None,
                     **target_kw)
    d = rep.to_dict()
    save_report(report, d, verify_page)
    if json_out:
        emit_json(d)
    else:
        t = Table(title=f"verify {collection} ({rep.mode})", show_header=False)
        rows = [("result", "[green]OK[/green]" if rep.ok else "[red]FAILED[/red]"),
                ("expected count", rep.expected_count), ("actual count", rep.actual_count),
                ("checked points", rep.checked), ("missing", rep.missing), ("extra", rep.extra),
                ("vector mismatches", rep.vector_mismatches), ("payload mismatches", rep.payload_mismatches),
                ("invalid source records", rep.source_invalid), ("seconds", rep.seconds)]
        if rep.mode == "basic":
            rows = [r for r in rows if r[0] in ("result", "actual count", "checked points", "seconds")]
        for k, v in rows:
            if v is not None:
                t.add_row(k, f"{v:,}" if isinstance(v, int) else str(v))
        out.print(t)
        for s in rep.samples:
            out.print(f"  {s}", highlight=False)
        for p in rep.problems[:20]:
            out.print(f"  [red]{p.kind}[/red] {p.id if p.id is not None else ''} {p.detail}", highlight=False)
        more = len(rep.problems) - 20 + rep.problems_truncated
        if more > 0:
            out.print(f"  ... {more} more" + (f" (all in {report})" if report else " (use --report FILE)"))
    if not rep.ok:
        raise typer.Exit(ExitCode.CHECK_FAILED)


# -- status -------------------------------------------------------------------------------
@qdrant.command(epilog="Example: cortex qdrant status --detailed")
@handle_errors
@target_flags
def status(
    collection: Annotated[str | None, typer.Option("--collection", "-c", help="Only this collection.")] = None,
    detailed: Annotated[bool, typer.Option("--detailed", help="Segments, index and optimizer settings.")] = False,
    json_out: JsonOpt = False,
    target_kw: Any = None,
) -> None:
    """List collections with point count, vector size, distance and status."""
    from cortex import api

    infos = api.status(collection, **target_kw)
    if json_out:
        emit_json([i.to_dict() for i in infos])
        return
    t = Table(title="Qdrant collections")
    cols = ["collection", "points", "dim", "distance", "status"]
    if detailed:
        cols += ["segments", "indexed", "hnsw m/ef", "indexing threshold", "disk"]
    for c in cols:
        t.add_column(c)
    hints = []
    for i in infos:
        row = [i.name, f"{i.points:,}", str(i.dim), str(i.distance), i.status]
        if detailed:
            row += [str(i.segments), f"{i.indexed_vectors:,}" if i.indexed_vectors is not None else "?",
                    f"{i.hnsw.get('m', '?')}/{i.hnsw.get('ef_construct', '?')}",
                    f"{i.optimizer.get('indexing_threshold', 'default')} KB",
                    _human(i.disk_bytes) if i.disk_bytes is not None else "?"]
            if (i.segments or 0) > 50:
                hints.append(f"{i.name}: {i.segments} segments (> 50): run `cortex qdrant optimize {i.name} --wait`")
            if i.status == "grey":
                hints.append(f"{i.name}: indexing is deferred; run `cortex qdrant optimize {i.name} --wait`")
        t.add_row(*row)
    out.print(t)
    names = {i.name for i in infos}
    for a, c in sorted(api.aliases(**target_kw)["aliases"].items()):  # blue-green aliases (cortex.cutover)
        if c in names:
            out.print(f"alias {a} → {c}", highlight=False)
    for h in hints:
        out.print(f"[yellow]hint:[/yellow] {h}", highlight=False)


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PB"


# -- optimize -----------------------------------------------------------------------------
@qdrant.command(epilog="Example: cortex qdrant optimize code_vectors --wait")
@handle_errors
@target_flags
def optimize(
    collection: Annotated[str, typer.Argument(help="Collection to optimize.")],
    wait: Annotated[bool, typer.Option("--wait", help="Block until fully indexed (green).")] = False,
    json_out: JsonOpt = False,
    target_kw: Any = None,
) -> None:
    """Trigger optimization and indexing (HNSW build); --wait blocks until green."""
    from cortex import api

    with err.status(f"optimizing {collection} ...") if err.is_terminal else _null():
        info = api.optimize(collection, wait=wait, **target_kw,
                            progress=lambda i: err.print(f"  {i.status}: {i.indexed_vectors or 0:,} indexed"))
    if json_out:
        emit_json(info.to_dict())
    else:
        out.print(f"{collection}: {info.status}, {info.points:,} points, {info.indexed_vectors or 0:,} indexed "
                  f"vectors, {info.segments} segments")


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: object) -> None:
        return None


# -- export -------------------------------------------------------------------------------
@qdrant.command(epilog="Example: cortex qdrant export --source vectors.index --metadata metadata.json "
                       "--output export.jsonl")
@handle_errors
@source_flags
def export(
    source: Annotated[str, typer.Option("--source", "-s", help="What to export.")],
    output: Annotated[str, typer.Option("--output", "-o", help="File to write: .jsonl (.jsonl.gz or .jsonl.zst "
                                        "compressed) or .parquet.")],
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 1000,
    format: Annotated[str | None, typer.Option("--format", help="jsonl or parquet (lossless: ids, fixed-size "
                                               "vectors, payload columns); default: from the --output suffix.")
                      ] = None,
    json_out: JsonOpt = False,
    source_type: Any = None, source_opts: Any = None,
) -> None:
    """Export any source to the migration guide's JSONL of {id, vector, payload} (original ids kept), or to Parquet."""
    from cortex import api

    opts = source_opts
    s = api.export(source, output, source_type=source_type, options=opts, batch_size=batch_size,
                   progress=RichProgress(f"export → {output}"), format=format)
    if json_out:
        emit_json(s.to_dict())
    else:
        out.print(f"exported {s.written:,} of {s.read:,} records to {s.output} in {s.seconds}s"
                  + (f"; {s.rejected} rejected → {s.dead_letter}" if s.rejected else ""))
    if s.rejected:
        raise typer.Exit(PARTIAL)


# -- migrations ---------------------------------------------------------------------------
@qdrant.command(epilog="Example: cortex qdrant migrations --json")
@handle_errors
def migrations(
    state_dir: Annotated[str, typer.Option("--state-dir", help="Where migrate keeps its state.")] = ".cortex",
    json_out: JsonOpt = False,
) -> None:
    """List known migrations: source, target, progress, state, rejected count, dead-letter file."""
    from cortex import api

    rows = api.migrations(state_dir)
    if json_out:
        emit_json(rows)
        return
    if not rows:
        out.print(f"no migrations recorded in {state_dir}")
        return
    t = Table(title=f"migrations ({state_dir})")
    for c in ("source", "target", "collection", "state", "progress", "rejected", "dead letter", "updated"):
        t.add_column(c)
    for r in rows:
        read, total = r["progress"], r.get("total")
        progress = f"{read:,} / {total:,} ({100 * read / total:.0f}%)" if total else f"{read:,}"
        state = r["status"] + (f": {r['error']}" if r["status"] == "failed" and r.get("error") else "")
        part = r.get("partition")
        collection = r["collection"] + (f" [partition {part['i']}/{part['n']}]" if part else "")
        t.add_row(r["source"], r["target"], collection, state, progress, f"{r['rejected']:,}",
                  r["dead_letter"] if r["rejected"] else "-",
                  time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["updated"])))
    out.print(t)
    resumable = [r for r in rows if r["status"] in ("interrupted", "failed") and r.get("command")]
    for r in resumable:
        out.print(f"resume {r['collection']}: {r['command']}", highlight=False, soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        out.print(f"cortex {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Show the version.")] = False) -> None:
    """Cortex: move vector collections into Qdrant. Example: cortex qdrant migrate --source x.jsonl --target c"""
    try:
        from dotenv import load_dotenv

        load_dotenv(Path.cwd() / ".env", override=False)  # the migration guide keeps QDRANT_* in .env
    except ImportError:
        pass


def _register_command_modules() -> None:
    """Commands that live in their own modules register themselves on ``qdrant`` when imported."""
    import importlib

    for mod in ("cortex.cli_prove", "cortex.cli_rollout", "cortex.cli_plan", "cortex.cli_snapshot",
                "cortex.cli_deploy", "cortex.cli_cutover"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise


_register_command_modules()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
