"""``cortex qdrant setup`` and ``cortex qdrant health``: stand up the target the way the migration guide's Step 1 does.

Imported by :mod:`cortex.cli` at start-up; the commands register themselves on ``qdrant``.
Exit codes: setup 0 (applied or no changes), 2 bad config file, 3 target unreachable/refused,
4 a setting Qdrant cannot change in place (nothing was changed); health 0 healthy, 1 unhealthy,
3 unreachable or the API key refused.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cortex.cli import JsonOpt, emit_json, err, handle_errors, out, qdrant
from cortex.cli_options import target_flags
from cortex.errors import ConflictError, ExitCode


@qdrant.command(epilog="Example: cortex qdrant setup --config deploy/collections.example.yaml --dry-run")
@handle_errors
@target_flags
def setup(
    config: Annotated[str, typer.Option("--config", "-c", help="Collections file (YAML; the format "
                                        "`cortex qdrant plan --output` writes).")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would change; change nothing.")] = False,
    json_out: JsonOpt = False,
    target_kw: Any = None,
) -> None:
    """Create or update every collection in the file: idempotent, a diff for what changes in place.

    Settings Qdrant can change in place (HNSW, quantization, optimizers, on-disk flags, replication,
    payload indexes, aliases) are shown as a diff and applied. A changed vector size, distance or
    shard number is refused (nothing is changed): create a new collection and switch with
    `cortex qdrant cutover`. A second run reports "no changes".
    """
    from cortex import api

    report = api.setup(config, dry_run=dry_run, **target_kw)
    if json_out:
        emit_json(report.to_dict())
    else:
        for line in report.lines():
            out.print(line, highlight=False, soft_wrap=True, markup=False)
        if report.refused:
            out.print("nothing was changed", highlight=False)
        elif not report.changed:
            out.print(f"no changes: {report.target} matches {report.config}", highlight=False)
        elif dry_run:
            out.print("dry run: nothing was changed (run without --dry-run to apply)", highlight=False)
        else:
            out.print(f"applied to {report.target}", highlight=False)
    if report.refused:
        raise ConflictError(f"{', '.join(c.name for c in report.refused)}: {report.refused[0].fix}; "
                            "nothing was changed")


@qdrant.command(epilog="Example: cortex qdrant health --url http://localhost:6333 --json")
@handle_errors
@target_flags
def health(
    min_free_mb: Annotated[float, typer.Option("--min-free-mb", min=0, help="Unhealthy below this much free disk "
                                               "(where it can be known).")] = 512,
    json_out: JsonOpt = False,
    target_kw: Any = None,
) -> None:
    """Is the target usable? Reachable, version, API key accepted, collections' status, free disk.

    Embedded: storage writable, free disk, every collection opens. Exits 0 when healthy, 1 when
    something is unhealthy, 3 when the server cannot be reached or refuses the API key, so scripts
    and container healthchecks can use it.
    """
    from cortex import api

    report = api.health(min_free_mb=min_free_mb, **target_kw)
    if json_out:
        emit_json(report.to_dict())
    else:
        for c in report.checks:
            mark = "[green]ok[/green]  " if c.ok else "[red]FAIL[/red]"
            out.print(f"{mark} {c.name}: {c.detail}", highlight=False, soft_wrap=True)
        for c in report.collections:
            pts = f", {c['points']:,} points" if c.get("points") is not None else ""
            out.print(f"     collection {c['name']}: {c['status']}{pts}", highlight=False)
        out.print(("healthy" if report.healthy else "UNHEALTHY") + f": {report.target}", highlight=False)
    if report.exit_code != ExitCode.OK:
        failed = next((c for c in report.checks if not c.ok), None)
        if failed is not None:
            err.print(f"[red]Error:[/red] {failed.detail}", highlight=False, soft_wrap=True)
        raise typer.Exit(report.exit_code)
