"""``cortex qdrant backup``: the migration guide's "Backup Current Data", before anything moves.

* File-based sources (JSONL, .npy, FAISS, hnswlib, Annoy, USearch, Parquet, LangChain and LlamaIndex
  folders): the files as they are, in ``DIR/<name>-<UTC time>.tar`` with ``MANIFEST.json`` (size and
  sha256 of every file, hashed while it is archived).
* Databases and stores (pgvector, Qdrant, Chroma, LanceDB, Milvus): a lossless Parquet export
  (:mod:`cortex.snapshot.parquet_format`), ``DIR/<name>-<UTC time>.parquet``, readable by pyarrow and
  as a Cortex source.

Beside each is ``<file>.sha256`` in ``sha256sum`` format (``sha256sum -c`` checks it too).
``verify_backup`` re-reads a backup and checks every checksum; any difference is exit 1.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cortex.errors import CheckFailed, CortexError, SourceError
from cortex.snapshot.model import partial_file, sha256_file, sha256_stream, write_sha256_sidecar
from cortex.sources import SourceOptions, detect_kind

FILE_KINDS = {"jsonl", "npy-dir", "npy-matrix", "faiss", "hnswlib", "usearch", "annoy", "parquet", "langchain",
              "llamaindex"}
MANIFEST = "MANIFEST.json"


@dataclass
class BackupSummary:
    source: str
    kind: str
    archive: str
    format: str  # "tar" or "parquet"
    files: int = 0
    records: int | None = None
    bytes: int = 0
    sha256: str = ""
    verified: bool = False
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Hashing(io.RawIOBase):
    """Reads a file while hashing it (so the manifest describes exactly the bytes archived)."""

    def __init__(self, fh: Any) -> None:
        self.fh, self.h, self.n = fh, hashlib.sha256(), 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        b = self.fh.read(size)
        self.h.update(b)
        self.n += len(b)
        return b


def _label(source: str, options: SourceOptions) -> str:
    base = options.table or options.collection or (Path(source.rstrip("/")).stem if "://" not in source else "")
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", base or source.split("://")[0]).strip("._") or "backup"


def _files(source: str, options: SourceOptions) -> list[tuple[Path, str]]:
    """(path, name in the archive) of every file the source reads: its path and the side files the options name."""
    root = Path(source)
    out: list[tuple[Path, str]] = []
    if root.is_dir():
        out += [(p, f"{root.name}/{p.relative_to(root).as_posix()}") for p in sorted(root.rglob("*")) if p.is_file()]
    else:
        out.append((root, root.name))
    for name in ("ids", "payloads", "metadata"):
        side = getattr(options, name)
        if side:
            out.append((Path(side), f"_{name}/{Path(side).name}"))
    return out


def backup(source: str, output: str, *, source_type: str | None = None, options: SourceOptions | None = None,
           verify: bool = False, batch_size: int = 1000, progress: Any = None) -> BackupSummary:
    t0 = time.perf_counter()
    options = options or SourceOptions()
    kind = source_type or detect_kind(source)
    out_dir = Path(output)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    name = f"{_label(source, options)}-{stamp}"
    if kind in FILE_KINDS and Path(source).exists():
        summary = _backup_files(source, kind, options, out_dir / f"{name}.tar", progress)
    else:
        from cortex.snapshot.parquet_format import write_parquet

        dest = out_dir / f"{name}.parquet"
        s = write_parquet(source, dest, source_type=kind, options=options, batch_size=batch_size, progress=progress)
        if s.rejected:
            dest.unlink(missing_ok=True)  # an incomplete backup is not left where it could be trusted
            raise SourceError(f"{source}: {s.rejected} record(s) could not be exported (see {s.dead_letter}); "
                              "a backup must be complete: fix them or back the files up by hand")
        summary = BackupSummary(source=source, kind=kind, archive=str(dest), format="parquet", files=1,
                                records=s.written, bytes=dest.stat().st_size, sha256=write_sha256_sidecar(dest))
    if verify:
        checked = verify_backup(summary.archive)
        summary.verified, summary.problems = checked.verified, checked.problems
    summary.seconds = round(time.perf_counter() - t0, 3)
    return summary


def _backup_files(source: str, kind: str, options: SourceOptions, dest: Path, progress: Any) -> BackupSummary:
    files = _files(source, options)
    for p, _ in files:
        if not p.is_file():
            raise SourceError(f"{p}: not found; check the path")
    total = sum(p.stat().st_size for p, _ in files)
    entries = []
    if progress is not None:
        progress.start(total)
    try:
        with partial_file(dest) as tmp, tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            for p, arc in files:
                info = tar.gettarinfo(str(p), arc)
                with open(p, "rb") as fh:
                    reader = _Hashing(fh)
                    tar.addfile(info, reader)
                if reader.n != info.size:
                    raise CortexError(f"{p}: changed size while it was archived; back up when nothing writes to it")
                entries.append({"path": arc, "size": info.size, "sha256": reader.h.hexdigest(), "source": str(p)})
                if progress is not None:
                    progress.advance(info.size)
            manifest = json.dumps({"format": 1, "source": source, "kind": kind,
                                   "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                   "files": entries}, indent=2).encode()
            mi = tarfile.TarInfo(MANIFEST)
            mi.size, mi.mtime = len(manifest), int(time.time())
            tar.addfile(mi, io.BytesIO(manifest))
    finally:
        if progress is not None:
            progress.stop()
    return BackupSummary(source=source, kind=kind, archive=str(dest), format="tar", files=len(entries),
                         bytes=dest.stat().st_size, sha256=write_sha256_sidecar(dest))


def verify_backup(archive: str) -> BackupSummary:
    """Re-read ``archive`` and check every checksum; raises :class:`CheckFailed` (exit 1) naming what differs."""
    t0 = time.perf_counter()
    path = Path(archive)
    if not path.is_file():
        raise CortexError(f"{path}: no such backup; pass the .tar or .parquet file `cortex qdrant backup` wrote")
    fmt = "parquet" if path.suffix == ".parquet" else "tar"
    summary = BackupSummary(source="", kind="", archive=str(path), format=fmt, bytes=path.stat().st_size)
    # the files inside first (the most useful line names the damaged file), then the archive's own sha256
    problems = _verify_members(path, summary) if fmt == "tar" else _verify_parquet(path, summary)
    side = Path(str(path) + ".sha256")
    got = sha256_file(path)
    summary.sha256 = got
    if side.exists():
        words = side.read_text().split()
        if not words or words[0].lower() != got:
            problems.append(f"sha256 of the file is {got}, {side.name} says {words[0] if words else '(empty)'}")
    else:
        problems.append(f"{side.name} is missing: the archive's own checksum cannot be checked")
    summary.problems = problems
    summary.seconds = round(time.perf_counter() - t0, 3)
    if problems:
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        raise CheckFailed(f"{path}: backup damaged: {problems[0]}{more}; take a new backup, this one cannot be "
                          "trusted")
    summary.verified = True
    return summary


def _verify_members(path: Path, summary: BackupSummary) -> list[str]:
    problems: list[str] = []
    try:
        with tarfile.open(path, "r:") as tar:
            try:
                manifest = json.load(tar.extractfile(MANIFEST))  # type: ignore[arg-type]
            except KeyError:
                return [f"no {MANIFEST} in the archive"]
            summary.source, summary.kind = manifest.get("source", ""), manifest.get("kind", "")
            want = {e["path"]: e for e in manifest.get("files", [])}
            seen = set()
            for m in tar:
                if not m.isfile() or m.name == MANIFEST:
                    continue
                seen.add(m.name)
                e = want.get(m.name)
                if e is None:
                    problems.append(f"{m.name} is not in {MANIFEST}")
                    continue
                fh = tar.extractfile(m)
                assert fh is not None
                got = sha256_stream(fh)
                if got != e["sha256"] or m.size != e["size"]:
                    problems.append(f"{m.name}: sha256 {got[:16]}... differs from the manifest's "
                                    f"{e['sha256'][:16]}...")
            problems += [f"{n} is in {MANIFEST} but not in the archive" for n in want if n not in seen]
            summary.files = len(seen)
    except (tarfile.TarError, EOFError, ValueError, OSError) as e:
        problems.append(f"the tar cannot be read ({e})")
    return problems


def _verify_parquet(path: Path, summary: BackupSummary) -> list[str]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        rows = 0
        for rb in pf.iter_batches(batch_size=8192):
            rows += rb.num_rows
        summary.records, summary.files = rows, 1
        if rows != pf.metadata.num_rows:
            return [f"read {rows} rows, the footer says {pf.metadata.num_rows}"]
    except Exception as e:  # pyarrow raises several kinds on damaged pages
        return [f"pyarrow cannot read it ({str(e).splitlines()[0] if str(e) else type(e).__name__})"]
    return []
