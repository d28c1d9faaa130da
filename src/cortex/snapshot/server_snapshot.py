"""Collection snapshots on a Qdrant server, through qdrant-client (create, list, download, recover, delete).

Downloads go over the REST API (``GET /collections/{c}/snapshots/{name}``) and are checked
against the sha256 the server reports. Recovery takes a URL the server can fetch (``http(s)://``,
``file://`` on the server's disk) or a local file, which is uploaded
(``POST /collections/{c}/snapshots/upload``), with a priority (``snapshot``, ``replica``, ``no_sync``).
qdrant-client's local mode has no snapshots and is refused with one line.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cortex.errors import CheckFailed, ConflictError, CortexError, TargetError
from cortex.snapshot.model import SnapshotInfo, sha256_file

PRIORITIES = ("snapshot", "replica", "no_sync")


def _check(target: Any) -> None:
    if getattr(target, "local", False):
        raise TargetError(f"{target.url}: qdrant-client's local mode has no snapshots; snapshot the embedded "
                          "target (no --url) or a Qdrant server")


def _info(target: Any, collection: str, d: Any) -> SnapshotInfo:
    return SnapshotInfo(name=d.name, collection=collection, location=f"{target.url}/collections/{collection}/"
                        f"snapshots/{d.name}", size=d.size, created=d.creation_time, checksum=d.checksum,
                        target="server")


def _rest_base(target: Any) -> str:
    return str(target.url).rstrip("/")


def _headers(api_key: str | None) -> dict[str, str]:
    return {"api-key": api_key} if api_key else {}


def create(target: Any, collection: str, output: str | Path | None = None, progress: Any = None,
           api_key: str | None = None) -> SnapshotInfo:
    _check(target)
    d = target._call(f"create a snapshot of '{collection}'",
                     lambda: target.client.create_snapshot(collection_name=collection, wait=True))
    if d is None:
        raise TargetError(f"{target.url}: the server did not return the snapshot of '{collection}'")
    info = _info(target, collection, d)
    if output:
        info.downloaded = str(download(target, collection, d.name, Path(output), d.checksum, d.size, progress,
                                            api_key))
    return info


def download(target: Any, collection: str, name: str, output: Path, checksum: str | None = None,
             size: int | None = None, progress: Any = None, api_key: str | None = None) -> Path:
    """Stream a snapshot to ``output`` (via ``.partial``), then check its sha256; writes ``output.checksum``."""
    import httpx

    url = f"{_rest_base(target)}/collections/{quote(collection)}/snapshots/{quote(name)}"
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".partial")
    if progress is not None:
        progress.start(size)
    try:
        with httpx.stream("GET", url, headers=_headers(api_key), timeout=target.timeout) as r:
            if r.status_code != 200:
                raise TargetError(f"{url}: HTTP {r.status_code} while downloading the snapshot")
            with open(tmp, "wb") as fh:
                for chunk in r.iter_bytes(1 << 20):
                    fh.write(chunk)
                    if progress is not None:
                        progress.advance(len(chunk))
    except httpx.HTTPError as e:
        tmp.unlink(missing_ok=True)
        raise TargetError(f"{url}: cannot download the snapshot ({e}); check that the REST port is reachable") from e
    finally:
        if progress is not None:
            progress.stop()
    got = sha256_file(tmp)
    if checksum and got != checksum:
        tmp.unlink(missing_ok=True)
        raise CheckFailed(f"{url}: downloaded sha256 {got} differs from the server's {checksum}; download again")
    tmp.replace(output)
    Path(str(output) + ".checksum").write_text(got + "\n")
    return output


def list_snapshots(target: Any, collection: str | None = None) -> list[SnapshotInfo]:
    _check(target)
    names = [collection] if collection else target.list_collections()
    rows = []
    for c in names:
        for d in target._call(f"list the snapshots of '{c}'", lambda c=c: target.client.list_snapshots(c)):
            rows.append(_info(target, c, d))
    return rows


def delete(target: Any, collection: str, snapshot: str) -> None:
    _check(target)
    if collection is None:
        raise CortexError("deleting a server snapshot needs --collection (the collection it belongs to)")
    target._call(f"delete snapshot {snapshot!r} of '{collection}'",
                 lambda: target.client.delete_snapshot(collection_name=collection, snapshot_name=snapshot, wait=True))


def restore(target: Any, snapshot: str, collection: str, checksum: str | None = None,
            priority: str | None = None, overwrite: bool = False, progress: Any = None) -> dict[str, Any]:
    """Recover ``collection`` from a URL the server can read, or upload a local snapshot file."""
    from qdrant_client.http.models import SnapshotPriority

    _check(target)
    t0 = time.perf_counter()
    if priority is not None and priority not in PRIORITIES:
        raise CortexError(f"--priority {priority!r}: choose one of {', '.join(PRIORITIES)}")
    prio = SnapshotPriority(priority) if priority else None
    if not overwrite and target.collection_info(collection) is not None:
        raise ConflictError(f"collection '{collection}' already exists on {target.url}; restore into a new name "
                            "(--collection) or pass --overwrite to replace it")
    p = Path(snapshot)
    if snapshot.startswith(("http://", "https://", "file://")):
        target._call(f"recover '{collection}' from {snapshot}", lambda: target.client.recover_snapshot(
            collection_name=collection, location=snapshot, checksum=checksum, priority=prio, wait=True))
        how = "recovered from URL"
    elif p.is_file():
        if checksum is None and Path(str(p) + ".checksum").exists():
            checksum = Path(str(p) + ".checksum").read_text().split()[0]
        got = sha256_file(p, progress=progress)
        if checksum and got != checksum.lower():
            raise CheckFailed(f"{p}: sha256 is {got}, expected {checksum}; the snapshot is damaged: "
                              "restore another copy")
        with open(p, "rb") as fh:
            target._call(f"upload {p} into '{collection}'", lambda: target.client.http.snapshots_api
                         .recover_from_uploaded_snapshot(collection_name=collection, wait=True, priority=prio,
                                                         checksum=checksum, snapshot=fh))
        how = "uploaded"
    else:
        raise CortexError(f"snapshot {snapshot!r}: not a local file nor an http(s):// or file:// URL; "
                          "pass the file `snapshot create --output` wrote, or a URL the server can read")
    info = target.collection_info(collection)
    return {"collection": collection, "snapshot": snapshot, "how": how, "checksum_checked": bool(checksum),
            "points": info.points if info else None, "target": target.url,
            "seconds": round(time.perf_counter() - t0, 3)}
