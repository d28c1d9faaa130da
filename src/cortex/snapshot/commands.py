"""The ``cortex.api`` functions of ``snapshot create|list|restore|delete``, ``backup`` and parquet export.

Each opens the target from the same keywords as the CLI flags (``path``/``url``/``api_key``/...)
and dispatches on its kind: embedded (Qdrant Edge) or server (qdrant-client).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cortex.snapshot import edge_snapshot, server_snapshot
from cortex.snapshot.backup import BackupSummary, verify_backup
from cortex.snapshot.backup import backup as _backup
from cortex.snapshot.model import SnapshotInfo
from cortex.sources import SourceOptions
from cortex.state import DEFAULT_STATE_DIR
from cortex.targets import Target, open_target
from cortex.targets.edge import EdgeTarget


def _open(target: Target | None, path: str | None, url: str | None, api_key: str | None, prefer_grpc: bool,
          grpc_port: int) -> tuple[Target, bool]:
    if target is not None:
        return target, False
    return open_target(path=path, url=url, api_key=api_key, prefer_grpc=prefer_grpc, grpc_port=grpc_port), True


def snapshot_create(collection: str, *, output: str | None = None, snapshot_dir: str | None = None,
                    state_dir: str = DEFAULT_STATE_DIR, target: Target | None = None, path: str | None = None,
                    url: str | None = None, api_key: str | None = None, prefer_grpc: bool = True,
                    grpc_port: int = 6334, progress: Any = None) -> SnapshotInfo:
    """Embedded: a shard snapshot archive (+ ``.checksum``). Server: a collection snapshot, downloaded with --output.

    The snapshot is consistent either way; ``warnings`` says when a migration into the collection
    is recorded (in ``state_dir``) as not finished, i.e. the snapshot holds part of its source."""
    tgt, own = _open(target, path, url, api_key, prefer_grpc, grpc_port)
    try:
        if isinstance(tgt, EdgeTarget):
            info = edge_snapshot.create(tgt, collection, output, snapshot_dir, progress)
        else:
            info = server_snapshot.create(tgt, collection, output, progress,
                                          api_key=api_key or os.environ.get("QDRANT_API_KEY"))
        info.warnings += _unfinished(tgt, collection, state_dir)
        return info
    finally:
        if own:
            tgt.close()


def _unfinished(tgt: Target, collection: str, state_dir: str) -> list[str]:
    from cortex.api import migrations

    here = tgt.location if "://" in tgt.location else str(Path(tgt.location).resolve())
    out = []
    for m in migrations(state_dir):
        there = m["target"] if "://" in m["target"] else str(Path(m["target"]).resolve())
        if m["collection"] == collection and there == here and m["status"] != "done":
            out.append(f"the migration of {m['source']} into '{collection}' is {m['status']} "
                       f"({m['progress']:,} records read): this snapshot holds only what it wrote so far")
    return out


def snapshot_list(collection: str | None = None, *, snapshot_dir: str | None = None, target: Target | None = None,
                  path: str | None = None, url: str | None = None, api_key: str | None = None,
                  prefer_grpc: bool = True, grpc_port: int = 6334) -> list[SnapshotInfo]:
    tgt, own = _open(target, path, url, api_key, prefer_grpc, grpc_port)
    try:
        if isinstance(tgt, EdgeTarget):
            return edge_snapshot.list_snapshots(tgt, collection, snapshot_dir)
        return server_snapshot.list_snapshots(tgt, collection)
    finally:
        if own:
            tgt.close()


def snapshot_restore(snapshot: str, *, collection: str, checksum: str | None = None, priority: str | None = None,
                     from_collection: str | None = None, overwrite: bool = False, snapshot_dir: str | None = None,
                     target: Target | None = None, path: str | None = None, url: str | None = None,
                     api_key: str | None = None, prefer_grpc: bool = True, grpc_port: int = 6334,
                     progress: Any = None) -> dict[str, Any]:
    """Restore ``snapshot`` (a file, a name among ``from_collection``'s snapshots, a server URL) as ``collection``."""
    tgt, own = _open(target, path, url, api_key, prefer_grpc, grpc_port)
    try:
        if isinstance(tgt, EdgeTarget):
            return edge_snapshot.restore(tgt, snapshot, collection, checksum, snapshot_dir, from_collection,
                                         overwrite, progress)
        return server_snapshot.restore(tgt, snapshot, collection, checksum, priority, overwrite, progress)
    finally:
        if own:
            tgt.close()


def snapshot_delete(snapshot: str, *, collection: str | None = None, snapshot_dir: str | None = None,
                    target: Target | None = None, path: str | None = None, url: str | None = None,
                    api_key: str | None = None, prefer_grpc: bool = True, grpc_port: int = 6334) -> dict[str, Any]:
    tgt, own = _open(target, path, url, api_key, prefer_grpc, grpc_port)
    try:
        if isinstance(tgt, EdgeTarget):
            gone = edge_snapshot.delete(tgt, snapshot, collection, snapshot_dir)
            return {"deleted": str(gone), "collection": collection}
        server_snapshot.delete(tgt, collection, snapshot)  # type: ignore[arg-type]
        return {"deleted": snapshot, "collection": collection}
    finally:
        if own:
            tgt.close()


def backup(source: str | None = None, output: str | None = None, *, source_type: str | None = None,
           options: SourceOptions | None = None, verify: bool = False, check: str | None = None,
           batch_size: int = 1000, progress: Any = None) -> BackupSummary:
    """Back ``source`` up into the directory ``output``; ``check=FILE`` only re-verifies an existing backup."""
    from cortex.errors import CortexError

    if check:
        return verify_backup(check)
    if not source or not output:
        raise CortexError("backup needs --source and --output (or --check FILE to verify an existing backup)")
    return _backup(source, output, source_type=source_type, options=options, verify=verify,
                   batch_size=batch_size, progress=progress)
