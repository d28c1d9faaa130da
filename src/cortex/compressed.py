"""Transparent gzip / zstandard for JSONL files (``export.jsonl.gz``, ``export.jsonl.zst``).

Readers get a binary stream of the decompressed bytes; offsets (a resume cursor) count
decompressed bytes, and :func:`open_read` with ``offset`` skips forward to one by
decompressing (compressed streams cannot seek).  Writers pick the codec from the suffix.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import IO

_GZIP = (".gz", ".gzip")
_ZSTD = (".zst", ".zstd")


def codec(path: str | Path) -> str | None:
    """``"gzip"``, ``"zstd"`` or None (plain), from the file name."""
    name = str(path).lower()
    if name.endswith(_GZIP):
        return "gzip"
    if name.endswith(_ZSTD):
        return "zstd"
    return None


def inner_suffix(path: str | Path) -> str:
    """The suffix under the compression one: ``.jsonl`` for ``a.jsonl.gz`` (or ``a.jsonl``)."""
    p = Path(path)
    if codec(p):
        p = p.with_suffix("")
    return p.suffix.lower()


def open_read(path: str | Path, offset: int = 0) -> IO[bytes]:
    """The file's decompressed bytes, positioned at ``offset`` (of the decompressed stream)."""
    kind = codec(path)
    fh: IO[bytes]
    if kind == "gzip":
        fh = gzip.open(path, "rb")  # noqa: SIM115 - the caller closes it
    elif kind == "zstd":
        import zstandard

        fh = io.BufferedReader(zstandard.open(path, "rb"), buffer_size=1 << 20)  # type: ignore[arg-type]
    else:
        fh = open(path, "rb")  # noqa: SIM115
    if offset:
        if kind is None:
            fh.seek(offset)
        else:
            left = offset
            while left > 0 and (chunk := fh.read(min(left, 1 << 22))):
                left -= len(chunk)
    return fh


def open_write(path: str | Path, kind: str | None = None) -> IO[bytes]:
    """A binary stream that writes ``path`` compressed with ``kind`` (default: as its suffix says; plain)."""
    kind = kind or codec(path)
    if kind == "gzip":
        return gzip.open(path, "wb", compresslevel=6)  # noqa: SIM115
    if kind == "zstd":
        import zstandard

        return zstandard.open(path, "wb", cctx=zstandard.ZstdCompressor(level=3))  # type: ignore[return-value]
    return open(path, "wb")  # noqa: SIM115


def read_errors() -> tuple[type[BaseException], ...]:
    """Exceptions a corrupt or truncated compressed file raises while it is read."""
    errs: list[type[BaseException]] = [OSError, EOFError, gzip.BadGzipFile]
    try:
        import zstandard

        errs.append(zstandard.ZstdError)
    except ImportError:
        pass
    return tuple(errs)
