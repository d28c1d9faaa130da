"""``cortex qdrant snapshot create|list|restore|delete`` and ``cortex qdrant backup``.

Imported by :mod:`cortex.cli` at start-up; the commands register themselves on ``qdrant``.
Exit codes as in :mod:`cortex.cli`: 1 a checksum differs (damaged snapshot or backup), 2 bad input
(not a snapshot, missing file), 3 the target refused (no snapshots in local mode), 4 the collection
exists or is in use by another process.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from cortex.cli import JsonOpt, RichProgress, emit_json, err, handle_errors, out, qdrant
from cortex.cli_options import source_flags, target_flags

snapshot = typer.Typer(help="Snapshots of a collection: create, list, restore (then verify), delete.",
                       epilog="Example: cortex qdrant snapshot create --collection code_chunks",
                       no_args_is_help=True, rich_markup_mode="rich")
qdrant.add_typer(snapshot, name="snapshot")

SnapshotDirOpt = Annotated[str | None, typer.Option(
    "--snapshot-dir", help="Embedded: where snapshots are kept (default <path>/.snapshots/<collection>).")]


class ByteProgress:
    """A progress bar in bytes (size, rate, ETA) on stderr; silent when not a terminal."""

    def __init__(self, label: str) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._p = Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
                           TransferSpeedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=err,
                           disable=not err.is_terminal, refresh_per_second=4)
        self.label = label
        self._task: Any = None

    def start(self, total: int | None, done: int = 0) -> None:
        self._p.start()
        self._task = self._p.add_task(self.label, total=total, completed=done)

    def advance(self, n: int) -> None:
        self._p.advance(self._task, n)

    def stop(self) -> None:
        self._p.stop()


def _kv(title: str, rows: dict[str, Any]) -> None:
    t = Table(title=title, show_header=False)
    for k, v in rows.items():
        t.add_row(k, f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v))
    out.print(t)


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


@snapshot.command("create", epilog="Example: cortex qdrant snapshot create --collection code_chunks")
@handle_errors
@target_flags
def create(
    collection: Annotated[str, typer.Option("--collection", "-c", help="The collection to snapshot.")],
    output: Annotated[str | None, typer.Option("--output", "-o", help="Embedded: the archive to write (default in "
                                               "--snapshot-dir). Server: download the snapshot to this file.")
                      ] = None,
    snapshot_dir: SnapshotDirOpt = None,
    state_dir: Annotated[str, typer.Option("--state-dir", help="Where migrate keeps its state (to warn about an "
                                           "unfinished migration into the collection).")] = ".cortex",
    json_out: JsonOpt = False,
    target_kw: Any = None,
) -> None:
    """Take a consistent snapshot of a collection, with its sha256.

    Embedded: the flushed shard as one archive in Qdrant's shard-snapshot layout, sha256 in
    NAME.checksum; a collection in use by another process is refused (exit 4). Server: a collection
    snapshot on the server, downloaded and checked against its sha256 with --output.
    """
    from cortex import api

    s = api.snapshot_create(collection, output=output, snapshot_dir=snapshot_dir, state_dir=state_dir,
                            progress=ByteProgress(f"snapshot {collection}"), **target_kw)
    for w in s.warnings:
        err.print(f"[yellow]warning:[/yellow] {w}", highlight=False, soft_wrap=True)
    if json_out:
        emit_json(s.to_dict())
        return
    _kv(f"snapshot of {collection} ({s.target})", {"name": s.name, "location": s.location,
                                                   "size": _size(s.size), "sha256": s.checksum or "-",
                                                   "points": s.points if s.points is not None else "-",
                                                   **({"downloaded": s.downloaded} if s.downloaded else {})})


@snapshot.command("list", epilog="Example: cortex qdrant snapshot list --collection code_chunks --json")
@handle_errors
@target_flags
def list_(
    collection: Annotated[str | None, typer.Option("--collection", "-c", help="Only this collection's.")] = None,
    snapshot_dir: SnapshotDirOpt = None,
    json_out: JsonOpt = False,
    target_kw: Any = None,
) -> None:
    """List snapshots: name, collection, size, time, sha256."""
    from cortex import api

    rows = api.snapshot_list(collection, snapshot_dir=snapshot_dir, **target_kw)
    if json_out:
        emit_json([r.to_dict() for r in rows])
        return
    if not rows:
        out.print("no snapshots" + (f" of {collection}" if collection else ""))
        return
    t = Table(title="snapshots")
    for c in ("collection", "name", "size", "created (UTC)", "sha256"):
        t.add_column(c)
    for r in rows:
        t.add_row(r.collection, r.name, _size(r.size), str(r.created or "-"), (r.checksum or "-")[:16])
    out.print(t)


@snapshot.command("restore", epilog="Example: cortex qdrant snapshot restore --snapshot code_chunks.snapshot "
                                    "--collection code_chunks_restored")
@handle_errors
@target_flags
def restore(
    snapshot_: Annotated[str, typer.Option("--snapshot", help="A snapshot file, a name from `snapshot list` "
                                           "(with --from-collection), or (server) an http(s):// or file:// URL.")],
    collection: Annotated[str, typer.Option("--collection", "-c", help="The collection to restore into "
                                            "(must not exist unless --overwrite).")],
    from_collection: Annotated[str | None, typer.Option("--from-collection", help="Whose snapshot a bare name "
                                                        "is (default: --collection).")] = None,
    checksum: Annotated[str | None, typer.Option("--checksum", help="Expected sha256 (default: NAME.checksum "
                                                 "beside the file, when there is one).")] = None,
    priority: Annotated[str | None, typer.Option("--priority", help="Server: snapshot | replica | no_sync.")
                        ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the collection if it exists.")] = False,
    snapshot_dir: SnapshotDirOpt = None,
    json_out: JsonOpt = False,
    target_kw: Any = None,
) -> None:
    """Restore a snapshot into a new collection, after checking its sha256.

    Then prove it: `cortex qdrant verify --collection C --source SRC --full`. Exit 1 when the
    sha256 differs, 2 when the file is not a snapshot, 4 when the collection exists.
    """
    from cortex import api

    r = api.snapshot_restore(snapshot_, collection=collection, checksum=checksum, priority=priority,
                             from_collection=from_collection, overwrite=overwrite, snapshot_dir=snapshot_dir,
                             progress=ByteProgress("sha256 check"), **target_kw)
    if json_out:
        emit_json(r)
        return
    _kv(f"{collection} restored from a snapshot", {k: v for k, v in r.items() if k != "collection"})


@snapshot.command("delete", epilog="Example: cortex qdrant snapshot delete --snapshot NAME --collection code_chunks")
@handle_errors
@target_flags
def delete(
    snapshot_: Annotated[str, typer.Option("--snapshot", help="A snapshot file or a name from `snapshot list`.")],
    collection: Annotated[str | None, typer.Option("--collection", "-c", help="The collection it belongs to.")
                          ] = None,
    snapshot_dir: SnapshotDirOpt = None,
    json_out: JsonOpt = False,
    target_kw: Any = None,
) -> None:
    """Delete a snapshot (and its .checksum)."""
    from cortex import api

    r = api.snapshot_delete(snapshot_, collection=collection, snapshot_dir=snapshot_dir, **target_kw)
    if json_out:
        emit_json(r)
    else:
        out.print(f"deleted {r['deleted']}", highlight=False)


@qdrant.command(epilog="Example: cortex qdrant backup --source examples/code_chunks --output backups --verify")
@handle_errors
@source_flags
def backup(
    source: Annotated[str | None, typer.Option("--source", "-s", help="What to back up.")] = None,
    output: Annotated[str | None, typer.Option("--output", "-o", help="Directory for the backup.")] = None,
    verify: Annotated[bool, typer.Option("--verify", help="Re-read the backup and check every checksum.")] = False,
    check: Annotated[str | None, typer.Option("--check", help="Only verify an existing backup (a .tar or "
                                              ".parquet written by this command).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 1000,
    json_out: JsonOpt = False,
    source_type: Any = None, source_opts: Any = None,
) -> None:
    """Back up the current data before migrating (the migration guide's "Backup Current Data").

    Files (JSONL, .npy, FAISS, hnswlib, Annoy, USearch, Parquet, LangChain, LlamaIndex) go into a tar
    with MANIFEST.json (sha256 of every file); databases and stores (pgvector, Qdrant, Chroma,
    LanceDB, Milvus) into lossless Parquet. Beside it, FILE.sha256 (`sha256sum -c` reads it).
    Exit 1 when a checksum differs.
    """
    from cortex import api

    label = check or source or ""
    progress = RichProgress(f"backup {label}") if source and not check else None
    if source and not check:
        from cortex.snapshot.backup import FILE_KINDS
        from cortex.sources import detect_kind

        if (source_type or detect_kind(source)) in FILE_KINDS:
            progress = ByteProgress(f"backup {label}")  # type: ignore[assignment]
    s = api.backup(source, output, source_type=source_type, options=source_opts, verify=verify, check=check,
                   batch_size=batch_size, progress=progress)
    if json_out:
        emit_json(s.to_dict())
        return
    rows: dict[str, Any] = {"archive": s.archive, "format": s.format, "files": s.files}
    if s.records is not None:
        rows["records"] = s.records
    rows.update({"size": _size(s.bytes), "sha256": s.sha256,
                 "verified": "yes, every checksum" if s.verified else "no (pass --verify)"})
    _kv(f"backup of {s.source or label}", rows)
