"""Free disk space for the embedded target: checked before Qdrant Edge could run out of it.

The engine maps its files (WAL segments, vector chunks, payload pages) at full size and
fills them as points arrive; a write into a mapped page the disk has no room for kills the
process with SIGBUS, no message (a tmpfs allocates a whole vector chunk when the shard is
opened).  So Cortex checks first and stops with one line
(:class:`~cortex.errors.DiskFullError`, exit 6) that says how much is needed and where:

* creating a collection needs what a new shard maps (:data:`NEW_SHARD_BYTES`);
* opening one needs the unfilled part of its vector chunks (a tmpfs allocates them on open), so
  a command that only reads (``status``, ``verify``) works on a full disk whenever it can;
* each write needs room for the batch (twice: WAL and storage) and a new vector chunk
  (:func:`check_write`, before the batch is written, so the checkpoint stays before it);
* the index build needs about a second copy of the segments plus the HNSW graph
  (:func:`index_build_bytes`).

Every write need includes :data:`RESERVE_BYTES` of headroom for the engine's own bookkeeping.
"""

from __future__ import annotations

import os
from pathlib import Path

from cortex.errors import DiskFullError

MIB = 1 << 20
RESERVE_BYTES = 16 * MIB
OPEN_RESERVE_BYTES = 1 * MIB  # opening to read writes next to nothing
CHUNK_BYTES = 32 * MIB  # a vector chunk file: mapped at full size, allocated in full by a tmpfs when opened
NEW_SHARD_BYTES = CHUNK_BYTES + 2 * MIB  # the first chunk, the WAL's and segment's first pages
HNSW_M = 16  # Qdrant's default; level 0 keeps 2*m links of 4 bytes per point


def free_bytes(path: str | Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem holding ``path`` (or its nearest parent)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    st = os.statvfs(p)
    return st.f_bavail * st.f_frsize


def unfilled_bytes(root: str | Path, only: str | None = None) -> int:
    """Apparent minus allocated size of the files under ``root`` (named ``only*`` if given): filling their holes."""
    total = 0
    for dirpath, _, filenames in os.walk(root):
        for f in filenames:
            if only is not None and not f.startswith(only):
                continue
            try:
                st = os.stat(os.path.join(dirpath, f))
            except FileNotFoundError:  # the engine replaced it meanwhile
                continue
            total += max(0, st.st_size - st.st_blocks * 512)
    return total


def allocated_bytes(root: str | Path) -> int:
    """Bytes the files under ``root`` really take on disk."""
    total = 0
    for dirpath, _, filenames in os.walk(root):
        for f in filenames:
            try:
                total += os.stat(os.path.join(dirpath, f)).st_blocks * 512
            except FileNotFoundError:
                continue
    return total


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def require(where: str | Path, needed: int, what: str) -> None:
    """Raise :class:`DiskFullError` unless ``needed`` bytes are free on the filesystem of ``where``."""
    free = free_bytes(where)
    if free < needed:
        raise DiskFullError(
            f"not enough disk space in {where}: {what} needs {human(needed)} free, {human(free)} available; "
            "free some space (or use --path on a larger disk) and re-run"
        )


def check_create(root: str | Path, name: str) -> None:
    require(root, NEW_SHARD_BYTES + RESERVE_BYTES, f"creating collection '{name}'")


def check_open(shard_dir: str | Path, name: str) -> None:
    """Loading a shard maps its vector chunks, and a tmpfs allocates them in full right then."""
    require(shard_dir, unfilled_bytes(shard_dir, only="chunk_") + OPEN_RESERVE_BYTES, f"opening collection '{name}'")


def index_build_bytes(shard_dir: str | Path, points: int, dims: int) -> int:
    """The index build writes a new, optimized copy of the segments and the graph before it drops the old ones.

    Qdrant's own check asks for twice what the segments take on disk (or twice the vectors, when
    they are not written out yet) before it optimizes, and refuses below that with a long error.
    """
    segments = Path(shard_dir) / "segments"
    data = 2 * max(allocated_bytes(segments) if segments.exists() else 0, points * dims * 4)
    graph = points * (2 * HNSW_M * 4 + 16)
    return data + graph + RESERVE_BYTES


def check_index_build(shard_dir: str | Path, name: str, points: int, dims: int) -> None:
    require(shard_dir, index_build_bytes(shard_dir, points, dims),
            f"building the index of '{name}' ({points:,} points)")


def check_write(shard_dir: str | Path, name: str, batch_bytes: int) -> None:
    """Before a batch is written: room for it (WAL + storage), a new vector chunk, and the reserve."""
    need = 2 * batch_bytes + CHUNK_BYTES + RESERVE_BYTES
    free = free_bytes(shard_dir)
    if free < need:
        raise DiskFullError(
            f"not enough disk space in {shard_dir}: writing into '{name}' needs {human(need)} free, "
            f"{human(free)} available; free some space (or use --path on a larger disk) and re-run"
        )
