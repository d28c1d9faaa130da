"""What the snapshot and backup commands return, and the checksum they use."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class SnapshotInfo:
    name: str
    collection: str
    location: str  # a file (embedded, or a downloaded server snapshot) or the server's URL
    size: int | None = None
    created: str | None = None
    checksum: str | None = None  # sha256 hex
    points: int | None = None
    target: str = "embedded"
    downloaded: str | None = None  # server: the local copy, when --output was given
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sha256_stream(fh: Any, chunk: int = 1 << 20, progress: Any = None) -> str:
    """Hex sha256 of what is left to read in the binary file object ``fh``, in chunks; ``progress.advance`` counts
    bytes."""
    h = hashlib.sha256()
    while block := fh.read(chunk):
        h.update(block)
        if progress is not None:
            progress.advance(len(block))
    return h.hexdigest()


def sha256_file(path: str | Path, chunk: int = 1 << 20, progress: Any = None) -> str:
    """Hex sha256 of a file, read in chunks; ``progress`` (start/advance/stop) counts bytes."""
    if progress is not None:
        progress.start(Path(path).stat().st_size)
    try:
        with open(path, "rb") as fh:
            return sha256_stream(fh, chunk, progress)
    finally:
        if progress is not None:
            progress.stop()


def write_sha256_sidecar(path: Path) -> str:
    """Write ``<path>.sha256`` in ``sha256sum`` format (``sha256sum -c`` checks it); returns the hex digest."""
    digest = sha256_file(path)
    Path(str(path) + ".sha256").write_text(f"{digest}  {path.name}\n")
    return digest


@contextlib.contextmanager
def partial_file(dest: Path) -> Iterator[Path]:
    """Write ``dest`` through ``dest.partial``: the block writes the yielded path, which is renamed to ``dest``
    when the block succeeds and removed when anything (an interrupt too) stops it."""
    tmp = dest.with_name(dest.name + ".partial")
    try:
        yield tmp
        tmp.replace(dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
