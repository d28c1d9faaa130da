"""Add files to a tar archive as GNU sparse members, so preallocated files cost only their data.

Qdrant preallocates its WAL and storage files (32 MB each, mostly holes). Python's ``tarfile``
reads holes as zeros, so a snapshot of a tiny shard would be ~130 MB. A file with holes is
written here as an old-GNU sparse member (type ``S``): the data regions (found with
``SEEK_DATA``/``SEEK_HOLE``) and a map of where they go. GNU tar, Python's ``tarfile`` and
the Rust ``tar`` crate (which ``EdgeShard.unpack_snapshot`` uses) read it back, holes included.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

BLOCK = 512
_MAX_OCTAL = 8**11 - 1  # a 12-byte octal field; larger files fall back to a regular member


def data_regions(path: Path) -> list[tuple[int, int]]:
    """``[(offset, length)]`` of the parts of ``path`` that hold data (the whole file when unknown)."""
    size = path.stat().st_size
    if not hasattr(os, "SEEK_DATA") or size == 0:
        return [(0, size)]
    regions: list[tuple[int, int]] = []
    fd = os.open(path, os.O_RDONLY)
    try:
        pos = 0
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole is left
                break
            end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
            regions.append((start, end - start))
            pos = end
    except OSError:  # the file system cannot tell: treat the file as all data
        return [(0, size)]
    finally:
        os.close(fd)
    return regions


def _octal(n: int) -> bytes:
    return b"%011o\0" % n


def _entries(block: bytearray, at: int, entries: list[tuple[int, int]]) -> None:
    for k, (off, length) in enumerate(entries):
        block[at + 24 * k:at + 24 * k + 12] = _octal(off)
        block[at + 24 * k + 12:at + 24 * k + 24] = _octal(length)


def add_file(tar: tarfile.TarFile, path: Path, arcname: str) -> None:
    """Add ``path`` as ``arcname``: a sparse member when it has holes, else a regular one."""
    size = path.stat().st_size
    regions = data_regions(path)
    stored = sum(n for _, n in regions)
    if stored == size or size > _MAX_OCTAL or tar.format != tarfile.GNU_FORMAT:
        tar.add(str(path), arcname, recursive=False)
        return
    entries = list(regions)
    if not entries or entries[-1][0] + entries[-1][1] < size:
        entries.append((size, 0))  # a trailing hole: the reader extends the file to its real size
    info = tar.gettarinfo(str(path), arcname)
    info.size = stored
    buf = bytearray(info.tobuf(tarfile.GNU_FORMAT, tar.encoding, tar.errors))
    head = len(buf) - BLOCK  # any long-name blocks come first; the member's own header is the last block
    hdr = buf[head:]
    hdr[156:157] = tarfile.GNUTYPE_SPARSE
    _entries(hdr, 386, entries[:4])
    rest = entries[4:]
    hdr[482] = 1 if rest else 0
    hdr[483:495] = _octal(size)
    hdr[148:156] = b" " * 8
    hdr[148:156] = b"%06o\0 " % sum(hdr)
    buf[head:] = hdr
    for i in range(0, len(rest), 21):  # extension blocks: 21 entries each, then an "is extended" flag
        ext = bytearray(BLOCK)
        _entries(ext, 0, rest[i:i + 21])
        ext[504] = 1 if i + 21 < len(rest) else 0
        buf += ext
    fh = tar.fileobj
    assert fh is not None
    fh.write(bytes(buf))
    with open(path, "rb") as src:
        for off, length in regions:
            src.seek(off)
            left = length
            while left:
                chunk = src.read(min(left, 1 << 20))
                if not chunk:
                    raise OSError(f"{path}: file shrank while it was archived")
                fh.write(chunk)
                left -= len(chunk)
    pad = (-stored) % BLOCK
    if pad:
        fh.write(b"\0" * pad)
    tar.offset += len(buf) + stored + pad
    info.offset = tar.offset
    tar.members.append(info)


def add_tree(tar: tarfile.TarFile, root: Path, arcname: str) -> int:
    """Add the directory ``root`` (recursively, in name order) as ``arcname``; returns the bytes of data read."""
    total = 0
    tar.add(str(root), arcname, recursive=False)
    for p in sorted(root.iterdir()):
        name = f"{arcname}/{p.name}"
        if p.is_dir() and not p.is_symlink():
            total += add_tree(tar, p, name)
        elif p.is_file():
            add_file(tar, p, name)
            total += p.stat().st_size
    return total
