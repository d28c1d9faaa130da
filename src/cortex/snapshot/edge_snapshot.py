"""Snapshots of embedded (Qdrant Edge) collections: one tar per shard, in Qdrant's shard-snapshot layout.

The archive is what a Qdrant server's shard snapshot holds and what ``EdgeShard.unpack_snapshot``
reads::

    edge_config.json                 the shard's configuration
    wal/...                          the write-ahead log (keeps the operation numbers going)
    segments/<uuid>.tar              one tar per segment: snapshot/files/<the segment's files>

A snapshot is taken holding the collection's lock file (the one ``migrate`` holds, so a running
migration refuses it and it refuses a migration) with the shard open in this process (Qdrant Edge's
own lock refuses any other process), flushed first: it is consistent. A collection another process
holds is refused (exit 4), never copied half-written. ``restore`` holds the destination's lock too.
Beside ``NAME.snapshot`` is ``NAME.snapshot.checksum`` (sha256 hex), as a Qdrant server writes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cortex.errors import CheckFailed, ConflictError, CortexError, TargetError
from cortex.snapshot.model import SnapshotInfo, partial_file, sha256_file
from cortex.snapshot.sparse_tar import add_file, add_tree, data_regions
from cortex.state import acquire_lock, release_lock
from cortex.targets.edge import EdgeTarget

SUFFIX = ".snapshot"
SNAPSHOT_DIR = ".snapshots"  # under the storage root; not a collection (no edge_config.json)


@contextlib.contextmanager
def collection_lock(target: EdgeTarget, collection: str, doing: str) -> Iterator[None]:
    """The per-collection lock file ``migrate`` holds (``<path>/.cortex-locks/<collection>.lock``)."""
    fd = acquire_lock(target.root / ".cortex-locks" / f"{quote(collection, safe='')}.lock",
                      f"collection '{collection}' in {target.root} is being written by a migration (pid {{pid}}); "
                      f"{doing} when it has finished")
    try:
        yield
    finally:
        release_lock(fd)


def snapshot_dir(target: EdgeTarget, collection: str, where: str | Path | None = None) -> Path:
    return Path(where) if where else target.root / SNAPSHOT_DIR / collection


def _stored_bytes(root: Path) -> int:
    return sum(n for f in root.rglob("*") if f.is_file() for _, n in data_regions(f))


def create(target: EdgeTarget, collection: str, output: str | Path | None = None,
           snapshot_dir_: str | Path | None = None, progress: Any = None) -> SnapshotInfo:
    """Flush ``collection`` and write its shard snapshot; returns where it is and its sha256."""
    if collection not in target.list_collections():
        raise TargetError(f"collection '{collection}' does not exist in {target.root}; "
                          "list them with `cortex qdrant status`")
    with collection_lock(target, collection, "take the snapshot"):
        return _create(target, collection, output, snapshot_dir_, progress)


def _create(target: EdgeTarget, collection: str, output: str | Path | None, snapshot_dir_: str | Path | None,
            progress: Any) -> SnapshotInfo:
    shard = target._open(collection)  # takes Qdrant Edge's lock: a collection in use elsewhere is refused
    shard.flush()
    d = target._dir(collection)
    stamp = time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime())
    default = snapshot_dir(target, collection, snapshot_dir_) / f"{collection}-{stamp}{SUFFIX}"
    path = Path(output) if output else default
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        raise ConflictError(f"{path} already exists; choose another --output or delete it first")
    if progress is not None:
        progress.start(_stored_bytes(d))
    try:
        with partial_file(path) as tmp:
            with tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as tar:
                for entry in sorted(d.iterdir()):  # edge_config.json, wal/ (and whatever else the shard keeps)
                    if entry.name == "segments":
                        continue
                    if entry.is_dir():
                        _advance(progress, add_tree(tar, entry, entry.name))
                    elif entry.is_file():
                        add_file(tar, entry, entry.name)
                tar.add(str(d / "segments"), "segments", recursive=False)
                for seg in sorted((d / "segments").iterdir()):
                    if not seg.is_dir():
                        continue
                    seg_tar = path.with_name(f".{path.name}.{seg.name}.tar")
                    try:
                        with tarfile.open(seg_tar, "w", format=tarfile.GNU_FORMAT) as st:
                            st.add(str(seg), "snapshot", recursive=False)
                            n = add_tree(st, seg, "snapshot/files")
                        tar.add(str(seg_tar), f"segments/{seg.name}.tar")
                    finally:
                        seg_tar.unlink(missing_ok=True)
                    _advance(progress, n)
            checksum = sha256_file(tmp)
        Path(str(path) + ".checksum").write_text(checksum + "\n")
    finally:
        if progress is not None:
            progress.stop()
    info = target.collection_info(collection)
    return SnapshotInfo(name=path.name, collection=collection, location=str(path), size=path.stat().st_size,
                        created=stamp, checksum=checksum, points=info.points if info else None, target="embedded")


def _advance(progress: Any, n: int) -> None:
    if progress is not None:
        progress.advance(n)


def list_snapshots(target: EdgeTarget, collection: str | None = None,
                   snapshot_dir_: str | Path | None = None) -> list[SnapshotInfo]:
    if snapshot_dir_:
        dirs = [(collection or "", Path(snapshot_dir_))]
    else:
        base = target.root / SNAPSHOT_DIR
        names = [collection] if collection else sorted(p.name for p in base.iterdir()) if base.is_dir() else []
        dirs = [(c, base / c) for c in names]
    rows = []
    for c, dd in dirs:
        if not dd.is_dir():
            continue
        for f in sorted(dd.glob(f"*{SUFFIX}")):
            ck = Path(str(f) + ".checksum")
            st = f.stat()
            rows.append(SnapshotInfo(name=f.name, collection=c, location=str(f), size=st.st_size,
                                     created=time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(st.st_mtime)),
                                     checksum=ck.read_text().strip() if ck.exists() else None, target="embedded"))
    return rows


def resolve(target: EdgeTarget, snapshot: str, collection: str | None,
            snapshot_dir_: str | Path | None = None) -> Path:
    """A snapshot given as a file path, or as a name in the collection's snapshot directory."""
    p = Path(snapshot)
    if p.is_file():
        return p
    if collection:
        q = snapshot_dir(target, collection, snapshot_dir_) / snapshot
        if q.is_file():
            return q
    raise CortexError(f"snapshot {snapshot!r} not found (neither a file nor a snapshot of "
                      f"{collection or 'the collection'}); list them with `cortex qdrant snapshot list`")


def delete(target: EdgeTarget, snapshot: str, collection: str | None,
           snapshot_dir_: str | Path | None = None) -> Path:
    p = resolve(target, snapshot, collection, snapshot_dir_)
    p.unlink()
    Path(str(p) + ".checksum").unlink(missing_ok=True)
    return p


def expected_checksum(path: Path, checksum: str | None) -> tuple[str | None, str]:
    if checksum:
        return checksum.strip().lower(), "--checksum"
    ck = Path(str(path) + ".checksum")
    words = ck.read_text().split() if ck.exists() else []
    if words:
        return words[0].lower(), ck.name
    return None, ""


def check_archive(path: Path) -> None:
    """One line naming the file when it is not a shard snapshot (exit 2); nothing is written before."""
    fix = "pass a file made by `cortex qdrant snapshot create` (or a Qdrant shard snapshot)"
    try:
        with tarfile.open(path, "r:") as tar:
            names = tar.getnames()
    except (tarfile.TarError, EOFError, OSError) as e:
        raise CortexError(f"{path}: not a readable snapshot archive ({e}); {fix}") from e
    for n in names:
        if n.startswith("/") or ".." in Path(n).parts:
            raise CortexError(f"{path}: unsafe member path {n!r} in the archive; {fix}")
    if "segments" not in {n.split("/")[0] for n in names} or "edge_config.json" not in names:
        raise CortexError(f"{path}: not a shard snapshot (no edge_config.json and segments/); {fix}")


def restore(target: EdgeTarget, snapshot: str, collection: str, checksum: str | None = None,
            snapshot_dir_: str | Path | None = None, source_collection: str | None = None,
            overwrite: bool = False, progress: Any = None) -> dict[str, Any]:
    """Check the sha256, unpack with ``EdgeShard.unpack_snapshot`` beside the storage, load it, move it in place."""
    with collection_lock(target, collection, "restore into it"):
        return _restore(target, snapshot, collection, checksum, snapshot_dir_, source_collection, overwrite, progress)


def _restore(target: EdgeTarget, snapshot: str, collection: str, checksum: str | None,
             snapshot_dir_: str | Path | None, source_collection: str | None, overwrite: bool,
             progress: Any) -> dict[str, Any]:
    import qdrant_edge

    t0 = time.perf_counter()
    path = resolve(target, snapshot, source_collection or collection, snapshot_dir_)
    want, where = expected_checksum(path, checksum)
    got = sha256_file(path, progress=progress)
    if want is not None and got != want:
        raise CheckFailed(f"{path}: sha256 is {got}, expected {want} ({where}); the snapshot is damaged or "
                          "not the one meant: restore another copy")
    check_archive(path)
    dest = target._dir(collection)
    exists = collection in target.list_collections()
    if exists and overwrite:
        target._open(collection)  # refused (exit 4) while another process uses it
    elif exists or (dest.exists() and any(dest.iterdir())):
        raise ConflictError(f"collection '{collection}' already exists in {target.root}; restore into a new "
                            "name (--collection), or pass --overwrite to replace it")
    # staged beside the snapshots (not a direct child of the storage root, so never listed as a collection)
    staging = target.root / SNAPSHOT_DIR / f".restore-{collection}-{uuid.uuid4().hex[:8]}"
    staging.parent.mkdir(parents=True, exist_ok=True)
    try:
        try:
            qdrant_edge.EdgeShard.unpack_snapshot(str(path), str(staging))
            qdrant_edge.EdgeShard.load(str(staging)).close()
        except Exception as e:  # the binding raises a bare Exception
            raise CortexError(f"{path}: Qdrant Edge cannot restore this snapshot ({e}); "
                              "take a new snapshot or restore another copy") from e
        if exists:  # --overwrite: only now that the snapshot has unpacked and loaded
            target.delete_collection(collection)
        elif dest.exists():
            dest.rmdir()
        os.replace(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    info = target.collection_info(collection)
    return {"collection": collection, "snapshot": str(path), "sha256": got, "checksum_checked": want is not None,
            "points": info.points if info else None, "target": str(target.root),
            "seconds": round(time.perf_counter() - t0, 3)}
