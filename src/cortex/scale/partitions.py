"""Partitions: N deterministic, disjoint pieces of one source whose union is the source.

A source that can split itself by its own structure does (``Source.split(n)``: row ranges of a ``.npy``
matrix, files of an npy directory, byte ranges of a JSONL file aligned to lines, row ranges of a Parquet
dataset, positions or inverted lists of a FAISS index). Every other kind is split by a stable hash of
each point's Qdrant id (:class:`HashPartition`): each partition then reads the whole source and keeps its
share, which costs N reads but needs nothing from the store. A duplicate id always lands in the same
hash partition; under a structural split two copies of an id may sit in two partitions, which
``--finish`` reports (which copy won is then undefined).

Each partition is its own resumable migration. Its state is one small JSON file in the shared state
directory (``<state-dir>/pieces/<migration>/<i>-of-<n>.json``), replaced atomically, with one writer each
(the process that runs that partition), so partitions run on many machines need no cross-machine lock:
the files are merged by reading them all. Rollout units are the same kind of piece (one file per unit).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cortex.atomic_file import read_json, write_json
from cortex.errors import ConflictError, CortexError
from cortex.ids import map_id
from cortex.sources.base import Batch, Source, SourceInfo
from cortex.state import MigrationRecord, StateStore, is_locked


@dataclass(frozen=True)
class Piece:
    """Partition ``i`` (0-based) of ``n``."""

    n: int
    i: int

    @classmethod
    def of(cls, partitions: int | None, partition: int | None) -> Piece | None:
        if partitions is None and partition is None:
            return None
        if partitions is None or partitions < 1:
            raise CortexError("--partition needs --partitions N (the number of partitions, at least 1)")
        if partition is None:
            raise CortexError(f"--partitions {partitions} needs --partition I (0 to {partitions - 1}), "
                              "or --engine ray to run them all")
        if not 0 <= partition < partitions:
            raise CortexError(f"--partition {partition} is out of range: with --partitions {partitions} it is "
                              f"0 to {partitions - 1}")
        return cls(partitions, partition)

    @property
    def name(self) -> str:
        return f"{self.i:04d}-of-{self.n:04d}"

    @property
    def label(self) -> str:
        return f"{self.i}/{self.n}"


# -- splitting a source --------------------------------------------------------------------
def bucket_of(qid: int | str, n: int) -> int:
    """The hash partition of a Qdrant point id: stable across runs, machines and Python versions."""
    return zlib.crc32(str(qid).encode()) % n


def _buckets(ids: Any, n: int) -> np.ndarray:
    if isinstance(ids, np.ndarray) and ids.dtype.kind in "iu" and (not len(ids) or ids.min() >= 0):
        return np.fromiter((bucket_of(int(x), n) for x in ids.tolist()), np.int64, len(ids))
    return np.fromiter((bucket_of(map_id(x)[0], n) for x in ids), np.int64, len(ids))


class HashPartition(Source):
    """The rows of ``inner`` whose point id hashes to partition ``i`` of ``n`` (rejected records: by location)."""

    kind = "partition"

    def __init__(self, inner: Source, piece: Piece) -> None:
        super().__init__(inner.path, inner.options)
        self.inner, self.piece = inner, piece
        self.kind = inner.kind  # type: ignore[misc]  # messages and state name the real kind

    @classmethod
    def detect(cls, path: str) -> bool:
        return False

    def info(self) -> SourceInfo:
        info = self.inner.info()
        info.count = None  # unknown until read: about count / n
        return info

    def fingerprint(self) -> dict[str, Any]:
        return self.inner.fingerprint()

    def batches(self, batch_size: int, resume: Any = None) -> Iterator[Batch]:
        n, i = self.piece.n, self.piece.i
        for b in self.inner.batches(batch_size, resume=resume):
            keep = np.flatnonzero(_buckets(b.ids, n) == i) if len(b.ids) else np.empty(0, np.int64)
            rej = [r for r in b.rejected if zlib.crc32(r.location.encode()) % n == i]
            ids = b.ids[keep] if isinstance(b.ids, np.ndarray) else [b.ids[k] for k in keep]
            sel = keep.tolist()
            yield Batch(ids=ids, vectors=b.vectors[keep] if len(b.vectors) else b.vectors,
                        payloads=[b.payloads[k] for k in sel] if b.payloads is not None else None,
                        rejected=rej, locations=[b.locations[k] for k in sel] if b.locations is not None else None,
                        cursor=b.cursor,
                        sparse={k: [v[j] for j in sel] for k, v in b.sparse.items()} if b.sparse else None,
                        named={k: v[keep] for k, v in b.named.items()} if b.named else None)

    def search(self, queries: np.ndarray, k: int) -> tuple[list[list[Any]], np.ndarray]:
        return self.inner.search(queries, k)

    def close(self) -> None:
        self.inner.close()


def partition_source(src: Source, piece: Piece) -> Source:
    """``src`` limited to ``piece``: by its own structure when it can split, else by id hash."""
    scopes = src.split(piece.n)
    if scopes is not None:
        if len(scopes) != piece.n:
            raise CortexError(f"{src.path}: split into {len(scopes)} pieces, not {piece.n}")
        src.scope = scopes[piece.i]
        return src
    return HashPartition(src, piece)


# -- the state of partitions: one small file each ----------------------------------------------
class PieceStore(StateStore):
    """A :class:`StateStore` that keeps one migration record per partition in its own JSON file.

    Locks, dead letters and seen-id logs stay where :class:`StateStore` keeps them (named by the
    partition's own migration id). A partition never owns the collection: ``--restart`` of one
    partition resets its checkpoint but never deletes the collection the others write to.
    """

    def __init__(self, state_dir: str | Path, base_id: str, piece: Piece) -> None:
        self.dir = Path(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.base_id, self.piece = base_id, piece
        self.pieces = pieces_dir(state_dir, base_id)
        self._locks: dict[str, int] = {}
        check_partition_count(state_dir, base_id, piece.n)

    @property
    def record_id(self) -> str:
        return f"{self.base_id}-{self.piece.name}"

    def _file(self, mid: str) -> Path:
        return self.pieces / f"{mid.removeprefix(self.base_id + '-')}.json"

    def get(self, mid: str) -> MigrationRecord | None:
        d = read_json(self._file(mid))
        return MigrationRecord.from_dict(d) if d else None

    def put(self, rec: MigrationRecord) -> None:
        import time

        rec.updated = time.time()
        rec.created_collection = False
        d = rec.to_dict()
        d["partition"] = {"n": self.piece.n, "i": self.piece.i}
        write_json(self._file(rec.id), d)

    def delete(self, mid: str) -> None:
        self._file(mid).unlink(missing_ok=True)

    def all(self) -> list[MigrationRecord]:
        return [MigrationRecord.from_dict(d) for d in piece_records(self.dir, self.base_id)]

    def close(self) -> None:
        for key in list(self._locks):
            self.unlock(key)


def pieces_dir(state_dir: str | Path, base_id: str) -> Path:
    return Path(state_dir) / "pieces" / base_id


def piece_records(state_dir: str | Path, base_id: str) -> list[dict[str, Any]]:
    """Every partition record of migration ``base_id`` (any partition count), in partition order."""
    d = pieces_dir(state_dir, base_id)
    if not d.is_dir():
        return []
    return [r for f in sorted(d.glob("*-of-*.json")) if (r := read_json(f))]


def check_partition_count(state_dir: str | Path, base_id: str, n: int) -> None:
    """Refuse to mix two splits of one migration (the pieces would overlap)."""
    others = sorted({r["partition"]["n"] for r in piece_records(state_dir, base_id)
                     if r.get("partition", {}).get("n") != n})
    if others:
        raise ConflictError(
            f"this migration was split into {others[0]} partitions before (state in "
            f"{pieces_dir(state_dir, base_id)}); pieces of two different splits would overlap: run with "
            f"--partitions {others[0]}, or delete that folder and start the partitions over")


def all_pieces(state_dir: str | Path) -> list[dict[str, Any]]:
    """Every partition record under ``state_dir`` (for ``cortex qdrant migrations``), live status resolved."""
    root = Path(state_dir) / "pieces"
    out: list[dict[str, Any]] = []
    if not root.is_dir():
        return out
    for base in sorted(p for p in root.iterdir() if p.is_dir()):
        for r in piece_records(state_dir, base.name):
            if r.get("status") == "running" and not is_locked(Path(state_dir) / "locks" / f"{r['id']}.lock"):
                r["status"] = "interrupted"
            out.append(r)
    return out
