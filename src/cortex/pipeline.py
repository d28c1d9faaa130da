"""read -> validate -> map ids -> write, with batching, parallel writers and ordered checkpoints.

The pipeline knows sources and targets only through their contracts.  A reader thread
pulls columnar batches from the source, validates them with numpy (dimension, NaN/inf),
maps ids, and queues them (bounded, so memory stays flat); writer threads upsert them.
Batches are committed *in order*: ``on_commit`` sees a cursor only when every batch
before it is durable in the target, so a checkpoint never skips an unwritten batch.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from itertools import chain
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import orjson

from cortex.errors import (
    BatchTooLargeError,
    ConflictError,
    CortexError,
    RecordError,
    SourceError,
    TargetError,
    TransientTargetError,
)
from cortex.ids import DEFAULT_ID_FIELD, map_ids
from cortex.retry import RetryPolicy, with_retries
from cortex.seen_ids import SeenIds, id_keys
from cortex.sources.base import PAYLOAD_INDEX_KINDS, Batch, Rejected, Source, SourceInfo, parse_distance
from cortex.targets.base import Target


class Progress(Protocol):
    def start(self, total: int | None, done: int = 0) -> None: ...
    def advance(self, n: int) -> None: ...
    def stop(self) -> None: ...


@dataclass
class Counts:
    read: int = 0
    written: int = 0
    rejected: int = 0
    skipped: int = 0
    duplicates: int = 0
    batches: int = 0

    def add(self, other: Counts) -> None:
        for k, v in asdict(other).items():
            setattr(self, k, getattr(self, k) + v)


@dataclass
class MigrationSummary:
    source: str
    source_kind: str
    collection: str
    target: str
    dim: int
    distance: str
    read: int = 0
    written: int = 0
    rejected: int = 0
    skipped: int = 0
    duplicates: int = 0
    batches: int = 0
    seconds: float = 0.0
    points_per_second: float = 0.0
    created: bool = False
    dry_run: bool = False
    resumed_from: int = 0
    dead_letter: str | None = None
    sparse_vectors: list[str] = field(default_factory=list)  # sparse vectors carried over, by name
    named_vectors: list[str] = field(default_factory=list)  # named dense vectors carried over besides ""
    payload_indexes: dict[str, str] = field(default_factory=dict)  # payload indexes created on the target
    duplicate_examples: list[Any] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    status: str = "done"  # done | interrupted | failed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def counts_add_up(self) -> bool:
        return self.read == self.written + self.rejected + self.skipped


@dataclass
class Prepared:
    """A validated batch ready to write: Qdrant ids, float32 vectors, payloads (and sparse/named vectors).

    ``sparse`` rows are ``(list[int], list[float])`` or None; ``named`` arrays are float32 with
    all-NaN rows for points without that vector (see ``Batch``).
    """

    seq: int
    ids: list[int | str]
    vectors: np.ndarray
    payloads: list[dict[str, Any]] | None
    rejected: list[Rejected]
    cursor: Any
    counts: Counts
    dup_ids: list[Any]
    after_duplicate: bool  # holds an id seen in an earlier batch: write after earlier ones land
    new_keys: np.ndarray | None = None  # id keys this batch added to the seen set (logged at commit)
    sparse: dict[str, list[tuple[list[int], list[float]] | None]] | None = None
    named: dict[str, np.ndarray] | None = None


@dataclass
class Checkpoint:
    """What ``on_commit`` receives: everything up to ``cursor`` is durable in the target."""

    cursor: Any
    counts: Counts
    dead_letter_offset: int  # bytes of the dead-letter file that belong to the committed prefix
    seen_offset: int  # bytes of the seen-ids log that belong to it


class SeenLog:
    """Append-only log of the seen id keys (8 bytes each), so duplicates are still detected after a resume.

    Opening truncates the log to ``offset`` (the checkpoint's); :meth:`load` puts its keys
    back into a :class:`SeenIds`; :meth:`write` appends the keys of each committed batch
    (unbuffered: a checkpoint never counts bytes still in a buffer).  Chosen over re-reading
    the already migrated part of the source on resume: 8 bytes per id, no second read.
    """

    def __init__(self, path: Path, offset: int) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(path, "ab", buffering=0)  # noqa: SIM115 - closed in close()
        if self._fh.seek(0, os.SEEK_END) < offset:
            offset = 0  # the log was deleted: duplicates across this resume go uncounted (ordering is unaffected)
        self._fh.truncate(offset)
        self.offset = offset

    def load(self, seen: SeenIds) -> None:
        keys = np.fromfile(self.path, dtype=np.uint64, count=self.offset // 8)
        if len(keys):
            seen.add(keys)

    def write(self, keys: np.ndarray | None) -> None:
        if keys is not None and len(keys):
            self.offset += self._fh.write(np.ascontiguousarray(keys, dtype=np.uint64).tobytes())

    def close(self) -> None:
        self._fh.close()


class _RecordingSeen(SeenIds):
    """SeenIds that remembers the keys each ``validate`` call added, to log them when the batch commits."""

    def __init__(self) -> None:
        super().__init__()
        self.added: list[np.ndarray] = []

    def add(self, keys: np.ndarray) -> None:
        super().add(keys)
        self.added.append(keys)

    def take(self) -> np.ndarray | None:
        out = np.concatenate(self.added) if self.added else None
        self.added = []
        return out


def pause_for_test(point: str, stop: threading.Event | None = None) -> None:
    """Test hook: with ``CORTEX_TEST_PAUSE_AT=<point>`` print ``CORTEX_TEST_PAUSED <point>`` to stderr and wait.

    Lets a test kill a real ``cortex qdrant migrate`` at a known moment.  Points: ``create``
    (before the collection is created), ``created`` (just after, before the state records
    it), ``batch:N`` (after the N-th batch of this run committed) and ``finish_load`` (while
    the final index build runs).  Waits ``CORTEX_TEST_PAUSE_SECONDS`` (default 60) or until
    ``stop`` is set (a first SIGINT; not passed for ``finish_load``), then goes on.  Unset:
    does nothing.
    """
    at = os.environ.get("CORTEX_TEST_PAUSE_AT")
    if at and at == point:
        print(f"CORTEX_TEST_PAUSED {point}", file=sys.stderr, flush=True)
        (stop or threading.Event()).wait(float(os.environ.get("CORTEX_TEST_PAUSE_SECONDS", "60")))


class DeadLetter:
    """Rejected records, one JSON object per line; the file is created on first use."""

    def __init__(self, path: Path | None, truncate_to: int | None = None) -> None:
        self.path = path
        self._fh: Any = None
        self.count = 0
        self.offset = 0  # bytes in the file: a checkpoint records it, a resume truncates to it
        if path is not None and path.exists():
            if truncate_to is not None:
                with open(path, "r+b") as fh:
                    fh.truncate(truncate_to)
            self.offset = path.stat().st_size

    def write(self, rejected: list[Rejected]) -> None:
        if not rejected or self.path is None:
            return
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "ab")  # noqa: SIM115 - closed in close()
        for r in rejected:
            rec = {"location": r.location, "reason": r.reason, "id": r.id, "record": r.raw}
            self._fh.write(orjson.dumps(rec, default=str, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")
        self._fh.flush()
        self.offset = self._fh.tell()
        self.count += len(rejected)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


def validate(batch: Batch, dim: int, id_field: str, seq: int, seen: SeenIds | None,
             sparse_names: Collection[str] | None = None, named_dims: dict[str, int] | None = None) -> Prepared:
    """Columnar checks: shape, dimension, finiteness; then id mapping and in-batch dedupe.

    Sparse and named vectors (``batch.sparse`` / ``batch.named``) are checked too (a bad row
    goes to the dead letter) and sliced along with every row filter.  ``sparse_names`` /
    ``named_dims``, when given, are what the source declared: another name is a source bug.
    """
    rejected = list(batch.rejected)
    n = len(batch.ids)
    vecs = batch.vectors
    if n and (vecs.ndim != 2 or vecs.shape[0] != n):
        raise SourceError(f"source produced a malformed batch (vectors shape {vecs.shape} for {n} ids)")
    keep = np.ones(n, dtype=bool)
    if n and vecs.shape[1] != dim:
        keep[:] = False
        reason = f"vector has {vecs.shape[1]} dimensions, the collection has {dim}"
        rejected += [Rejected(batch.location(i), reason, id=_plain(batch.ids[i])) for i in range(n)]
    elif n:
        with np.errstate(over="ignore", invalid="ignore"):
            vecs = vecs.astype(np.float32, copy=False)
        finite = np.isfinite(vecs).all(axis=1)
        if not finite.all():
            for i in np.flatnonzero(~finite):
                j = int(np.flatnonzero(~np.isfinite(vecs[i]))[0])
                rejected.append(Rejected(batch.location(i), f"vector has a non-finite value ({vecs[i, j]}) at "
                                         f"position {j}; fix or drop this record", id=_plain(batch.ids[i]),
                                         raw=_raw(batch, i)))
            keep &= finite
    sparse, named = _check_extras(batch, keep, rejected, sparse_names, named_dims) if n else (None, None)
    idx = np.flatnonzero(keep)
    src_ids = batch.ids if keep.all() else _take(batch.ids, idx)
    vecs = vecs if keep.all() else vecs[idx]
    payloads = batch.payloads if (batch.payloads is None or keep.all()) else [batch.payloads[i] for i in idx]
    if not keep.all():
        sparse, named = _take_extras(sparse, named, idx)
    qids, kept = map_ids(src_ids)
    if not all(kept):
        payloads = list(payloads) if payloads is not None else [{} for _ in qids]
        for i, k in enumerate(kept):
            if not k:
                payloads[i] = {**(payloads[i] or {}), id_field: _plain(src_ids[i])}
    counts = Counts(read=batch.read, written=len(qids), rejected=len(rejected), batches=1)
    dup_ids: list[Any] = []
    after_dup = False
    if len(qids):
        keys = id_keys(qids)
        uniq, first_rev = np.unique(keys[::-1], return_index=True)
        if len(uniq) < len(keys):  # duplicates inside the batch: the last one wins
            last = np.sort(len(keys) - 1 - first_rev)
            dropped = np.setdiff1d(np.arange(len(keys)), last)
            dup_ids += [_plain(src_ids[i]) for i in dropped]
            counts.duplicates += len(dropped)
            qids = [qids[i] for i in last]
            src_ids = _take(src_ids, last)
            vecs = vecs[last]
            payloads = [payloads[i] for i in last] if payloads is not None else None
            sparse, named = _take_extras(sparse, named, last)
            keys = keys[last]
        if seen is not None:
            hit = seen.contains(keys)
            if hit.any():
                after_dup = True
                counts.duplicates += int(hit.sum())
                dup_ids += [_plain(src_ids[i]) for i in np.flatnonzero(hit)]
                seen.add(keys[~hit])
            else:
                seen.add(keys)
    return Prepared(seq, qids, vecs, payloads, rejected, batch.cursor, counts, dup_ids, after_dup,
                    sparse=sparse, named=named)


def _take(ids: Any, idx: np.ndarray) -> Any:
    return ids[idx] if isinstance(ids, np.ndarray) else [ids[i] for i in idx]


def _take_extras(sparse: dict[str, list[Any]] | None, named: dict[str, np.ndarray] | None, idx: np.ndarray
                 ) -> tuple[dict[str, list[Any]] | None, dict[str, np.ndarray] | None]:
    """The sparse rows and named vectors of the rows ``idx``."""
    if sparse is not None:
        sparse = {k: [rows[i] for i in idx] for k, rows in sparse.items()}
    if named is not None:
        named = {k: a[idx] for k, a in named.items()}
    return sparse, named


MAX_SPARSE_INDEX = 2**32 - 1  # Qdrant's sparse indices are u32


def _check_extras(batch: Batch, keep: np.ndarray, rejected: list[Rejected], sparse_names: Collection[str] | None,
                  named_dims: dict[str, int] | None
                  ) -> tuple[dict[str, list[Any]] | None, dict[str, np.ndarray] | None]:
    """Check ``batch.sparse`` / ``batch.named``: clear ``keep`` and add a dead-letter record for each bad row.

    Returns the columns normalized: sparse rows as ``(list[int], list[float])`` or None, named
    vectors as float32 arrays.
    """
    n = len(batch.ids)
    bad: dict[int, str] = {}
    sparse = None
    if batch.sparse:
        sparse = {}
        for name, rows in batch.sparse.items():
            if sparse_names is not None and name not in sparse_names:
                raise SourceError(f"the source produced sparse vector '{name}' that it did not declare "
                                  f"(declared: {', '.join(sparse_names) or 'none'})")
            if len(rows) != n:
                raise SourceError(f"source produced a malformed batch (sparse vector '{name}' has {len(rows)} rows "
                                  f"for {n} ids)")
            sparse[name], errs = _check_sparse_rows(rows, keep)
            for i, why in errs.items():
                bad.setdefault(i, f"sparse vector '{name}' {why}")
    named = None
    if batch.named:
        named = {}
        for name, arr in batch.named.items():
            if named_dims is not None and name not in named_dims:
                raise SourceError(f"the source produced named vector '{name}' that it did not declare "
                                  f"(declared: {', '.join(named_dims) or 'none'})")
            a = np.asarray(arr)
            if a.ndim != 2 or a.shape[0] != n:
                raise SourceError(f"source produced a malformed batch (named vector '{name}' of shape {a.shape} "
                                  f"for {n} ids)")
            with np.errstate(over="ignore", invalid="ignore"):
                a = a.astype(np.float32, copy=False)
            want = (named_dims or {}).get(name)
            if want is not None and a.shape[1] != want:
                for i in np.flatnonzero(keep).tolist():
                    bad.setdefault(i, f"named vector '{name}' has {a.shape[1]} dimensions, the collection has {want}")
            else:
                finite = np.isfinite(a)
                partial = ~finite.all(axis=1) & ~np.isnan(a).all(axis=1)  # all-NaN: the point has no such vector
                for i in np.flatnonzero(partial & keep).tolist():
                    j = int(np.flatnonzero(~finite[i])[0])
                    bad.setdefault(i, f"named vector '{name}' has a non-finite value ({a[i, j]}) at position {j}")
            named[name] = a
    for i in sorted(bad):
        if keep[i]:
            keep[i] = False
            rejected.append(Rejected(batch.location(i), f"{bad[i]}; fix or drop this record",
                                     id=_plain(batch.ids[i]), raw=_raw(batch, i)))
    return sparse, named


def _check_sparse_rows(rows: list[Any], keep: np.ndarray) -> tuple[list[Any], dict[int, str]]:
    """Sparse rows as ``(list[int], list[float])`` (None stays None) and {row: what is wrong} for bad ones.

    Vectorized over the batch (one concatenation of all indices and values); only rows found
    bad are looked at one by one, for the message.
    """
    out = list(rows)
    present = [i for i, r in enumerate(rows) if r is not None and keep[i]]
    if not present:
        return out, {}
    flagged: set[int] = set()
    convert_all = False
    try:
        idxs = [rows[i][0] for i in present]
        vals = [rows[i][1] for i in present]
        li = np.fromiter(map(len, idxs), np.int64, len(present))
        lv = np.fromiter(map(len, vals), np.int64, len(present))
        flat_i = np.array(list(chain.from_iterable(idxs)))
        flat_v = np.array(list(chain.from_iterable(vals)), dtype=np.float64)
        if any(len(rows[i]) != 2 for i in present) or (flat_i.size and flat_i.dtype.kind not in "iu"):
            raise TypeError
        rows_i = np.repeat(np.arange(len(present)), li)
        rows_v = np.repeat(np.arange(len(present)), lv)
        hit = [np.flatnonzero(li != lv), rows_i[(flat_i < 0) | (flat_i > MAX_SPARSE_INDEX)]]
        if flat_i.size > 1:
            order = np.lexsort((flat_i, rows_i))
            si, sr = flat_i[order], rows_i[order]
            hit.append(sr[1:][(si[1:] == si[:-1]) & (sr[1:] == sr[:-1])])
        with np.errstate(over="ignore", invalid="ignore"):
            hit.append(rows_v[~np.isfinite(flat_v.astype(np.float32))])
        flagged = {present[j] for j in np.unique(np.concatenate(hit)).tolist()}
    except (TypeError, ValueError, IndexError, KeyError):  # not pairs of int/float lists somewhere: each row
        flagged = set(present)
        convert_all = True
    errs: dict[int, str] = {}
    for i in flagged:
        why = _sparse_problem(rows[i])
        if why:
            errs[i] = why
    for i in present:
        if i in errs:
            continue
        idx, val = rows[i]
        if convert_all or type(idx) is not list or type(val) is not list:
            out[i] = (np.asarray(idx).astype(np.int64).tolist(), np.asarray(val, dtype=np.float64).tolist())
    return out, errs


def _sparse_problem(row: Any) -> str | None:
    """What is wrong with one sparse row, or None when it is fine."""
    try:
        idx, val = row
        ia, va = np.asarray(idx), np.asarray(val)
    except (TypeError, ValueError):
        return "is not an (indices, values) pair"
    if ia.ndim != 1 or va.ndim != 1:
        return "is not an (indices, values) pair of flat lists"
    if len(ia) != len(va):
        return f"has {len(ia)} indices but {len(va)} values"
    if not len(ia):
        return None
    if ia.dtype.kind not in "iu":
        if ia.dtype.kind == "f" and np.isfinite(ia).all() and (ia == np.floor(ia)).all():
            ia = ia.astype(np.int64)
        else:
            j = next((k for k, x in enumerate(idx) if not isinstance(x, (int, np.integer)) or isinstance(x, bool)), 0)
            return f"has an index that is not an integer ({idx[j]!r} at position {j})"
    if ia.min() < 0:
        return f"has a negative index ({int(ia.min())})"
    if ia.max() > MAX_SPARSE_INDEX:
        return f"has an index above 2**32-1 ({int(ia.max())})"
    u, c = np.unique(ia, return_counts=True)
    if (c > 1).any():
        return f"has duplicate index {int(u[c > 1][0])}"
    if va.dtype.kind not in "iuf":
        return "has values that are not numbers"
    with np.errstate(over="ignore", invalid="ignore"):
        nonfinite = np.flatnonzero(~np.isfinite(va.astype(np.float32)))
    if len(nonfinite):
        j = int(nonfinite[0])
        return f"has a non-finite value ({va[j]}) for index {int(ia[j])}"
    return None


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _raw(batch: Batch, i: int) -> dict[str, Any]:
    raw = {"id": _plain(batch.ids[i]), "vector": batch.vectors[i].tolist(),
           "payload": batch.payloads[i] if batch.payloads is not None else None}
    if batch.sparse:
        raw["sparse"] = {k: rows[i] for k, rows in batch.sparse.items()}
    if batch.named:
        raw["named"] = {k: np.asarray(a[i]).tolist() for k, a in batch.named.items()}
    return raw


@dataclass
class PipelineOptions:
    batch_size: int = 500
    workers: int = 2
    id_field: str = DEFAULT_ID_FIELD
    defer_indexing: bool = True
    dry_run: bool = False
    strict: bool = False
    detect_duplicates: bool = True
    build_index: bool = True  # False: leave a deferred index for a later `cortex qdrant optimize`
    retry: RetryPolicy = field(default_factory=RetryPolicy)


class _Stop(Exception):
    pass


class _Either:
    """Set when either event is: the retry wait ends on a user interrupt or on an error elsewhere."""

    def __init__(self, a: threading.Event, b: threading.Event) -> None:
        self.a, self.b = a, b

    def is_set(self) -> bool:
        return self.a.is_set() or self.b.is_set()

    def wait(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while not self.is_set() and (left := end - time.monotonic()) > 0:
            self.a.wait(min(left, 0.1))
        return self.is_set()


def _read_ahead(source: Source, opts: PipelineOptions, dim: int, resume: Any, stop: threading.Event,
                seen: SeenIds | None, sparse_names: Collection[str] | None = None,
                named_dims: dict[str, int] | None = None) -> Iterator[Prepared]:
    """Run the reader + validator in a thread; yield prepared batches through a bounded queue.

    The reader stops at the next batch boundary once ``stop`` (a user interrupt) is set, or
    when the consumer leaves early (an error downstream, or the interrupt seen there first).
    """
    q: queue.Queue[Any] = queue.Queue(maxsize=max(2, opts.workers * 2))
    done = object()
    abandoned = threading.Event()

    def put(item: Any) -> None:
        while not abandoned.is_set():
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stop

    def produce() -> None:
        try:
            for seq, batch in enumerate(source.batches(opts.batch_size, resume=resume)):
                if stop.is_set():
                    break
                p = validate(batch, dim, opts.id_field, seq, seen, sparse_names, named_dims)
                if isinstance(seen, _RecordingSeen):
                    p.new_keys = seen.take()
                put(p)
            put(done)
        except _Stop:
            pass
        except BaseException as e:  # handed to the consumer, raised there
            with contextlib.suppress(_Stop):
                put(e)

    t = threading.Thread(target=produce, name="cortex-reader", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        abandoned.set()
        t.join(timeout=5)


def write_batch(target: Target, collection: str, p: Prepared, policy: RetryPolicy) -> None:
    """Upsert with retries on transient faults; split batches the server finds too large.

    An unexpected exception from the target becomes a (permanent) :class:`TargetError`
    naming the batch, so the CLI reports it in one line and the checkpoint stays usable.
    """

    def upsert(ids: list[Any], vecs: np.ndarray, pls: list[dict[str, Any]] | None,
               sparse: dict[str, list[Any]] | None, named: dict[str, np.ndarray] | None) -> None:
        try:
            if sparse or named:
                target.upsert(collection, ids, vecs, pls, sparse=sparse, named=named)
            else:  # the plain call: targets that predate sparse/named vectors keep working
                target.upsert(collection, ids, vecs, pls)
        except CortexError:
            raise
        except Exception as e:
            raise TargetError(f"writing {len(ids)} points into '{collection}' at {target.location} failed: "
                              f"{type(e).__name__}: {e}") from e

    def send(ids: list[Any], vecs: np.ndarray, pls: list[dict[str, Any]] | None,
             sparse: dict[str, list[Any]] | None, named: dict[str, np.ndarray] | None) -> None:
        try:
            with_retries(lambda: upsert(ids, vecs, pls, sparse, named), policy, what=f"upsert of {len(ids)} points")
        except BatchTooLargeError:
            if len(ids) <= 1:
                raise
            h = len(ids) // 2
            for part in (slice(None, h), slice(h, None)):
                send(ids[part], vecs[part], pls[part] if pls is not None else None,
                     {k: rows[part] for k, rows in sparse.items()} if sparse else None,
                     {k: a[part] for k, a in named.items()} if named else None)

    send(p.ids, p.vectors, p.payloads, p.sparse, p.named)


def vector_config(info: SourceInfo) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The (sparse, named) vectors a source declares in ``info.details`` (see ``SourceInfo``), normalized."""
    d = info.details or {}
    sparse = {str(k): {"modifier": "idf" if str((v or {}).get("modifier") or "").lower() == "idf" else None}
              for k, v in (d.get("sparse_vectors") or {}).items()}
    named = {str(k): {"size": int(v["size"]), "distance": parse_distance(v.get("distance") or "cosine",
                                                                          f"named vector '{k}'")}
             for k, v in (d.get("named_vectors") or {}).items()}
    return sparse, named


def prepare_collection(target: Target, collection: str, dim: int, distance: str, defer_indexing: bool,
                       dry_run: bool, before_create: Callable[[], None] | None = None, *,
                       sparse: dict[str, dict[str, Any]] | None = None,
                       named: dict[str, dict[str, Any]] | None = None) -> bool:
    """Create the collection, or check an existing one matches. Returns True when created.

    ``sparse`` / ``named``: the extra vectors the source brings (:func:`vector_config`); an
    existing collection must hold each of them with the same size, distance and modifier.
    """
    info = target.collection_info(collection)
    if info is None:
        if not dry_run:
            if before_create is not None:
                before_create()
            if sparse or named:
                target.create_collection(collection, dim, distance, defer_indexing=defer_indexing,
                                         sparse=sparse or None, named=named or None)
            else:
                target.create_collection(collection, dim, distance, defer_indexing=defer_indexing)
        return True
    where = f"collection '{collection}' at {target.location}"
    fix = "migrate into a new --target name, or delete the collection first"
    for name, want in sorted((named or {}).items()):
        have = info.named_vectors.get(name)
        if have is None:
            raise ConflictError(f"{where} has no named vector '{name}', which the source brings; {fix}")
        if have.get("size") != want["size"] or (have.get("distance") or want["distance"]) != want["distance"]:
            raise ConflictError(f"{where} holds named vector '{name}' as {have.get('size')}-dim "
                                f"{have.get('distance')}, the source as {want['size']}-dim {want['distance']}; {fix}")
    for name, want in sorted((sparse or {}).items()):
        have = info.sparse_vectors.get(name)
        if have is None:
            raise ConflictError(f"{where} has no sparse vector '{name}', which the source brings; {fix}")
        if have.get("modifier") != want.get("modifier"):
            raise ConflictError(f"{where} holds sparse vector '{name}' with modifier {have.get('modifier')}, the "
                                f"source with {want.get('modifier')}; {fix}")
    if info.dim is not None and info.dim != dim:
        raise ConflictError(
            f"collection '{collection}' at {target.location} holds {info.dim}-dim vectors but the source has "
            f"{dim}; migrate into a new --target name, or delete the collection first"
        )
    if info.distance is not None and info.distance != distance:
        raise ConflictError(
            f"collection '{collection}' at {target.location} uses {info.distance} distance but this "
            f"migration asks for {distance}; pass --distance {info.distance} or choose another --target"
        )
    return False


def resolve_distance(info: SourceInfo, distance: str | None) -> str:
    """The distance to create the collection with: asked, else the source's, else cosine."""
    return parse_distance(distance) if distance else (info.distance or "cosine")


def create_payload_indexes(target: Target, collection: str, info: SourceInfo, policy: RetryPolicy,
                           warnings: list[str]) -> dict[str, str]:
    """Create on the target the payload indexes the source declares (``details["payload_indexes"]``).

    Fields already indexed with the same kind are left alone (a resumed run); kinds Qdrant
    has no index for are reported in ``warnings``.  Returns {field: kind} of the indexes in place.
    """
    wanted = (info.details or {}).get("payload_indexes") or {}
    if not wanted:
        return {}
    current = target.collection_info(collection)
    have = current.payload_indexes if current is not None else {}
    done: dict[str, str] = {}
    for fld, kind in wanted.items():
        kind = str(kind).lower()
        if kind not in PAYLOAD_INDEX_KINDS:
            warnings.append(f"payload index on '{fld}' ({kind}) not created: Cortex creates "
                            f"{', '.join(PAYLOAD_INDEX_KINDS)} indexes")
            continue
        if have.get(fld) != kind:
            def make(f: str = fld, k: str = kind) -> None:
                try:
                    target.create_payload_index(collection, f, k)
                except CortexError:
                    raise
                except Exception as e:
                    raise TargetError(f"creating the {k} payload index on '{f}' of '{collection}' at "
                                      f"{target.location} failed: {type(e).__name__}: {e}") from e

            with_retries(make, policy, what=f"payload index on '{fld}'")
        done[fld] = kind
    return done


def _finish_load(target: Target, collection: str) -> None:
    """``target.finish_load`` (the index build, minutes on big collections) in a thread.

    The main thread only waits, so it keeps handling signals: a second Ctrl-C exits at once
    even in the middle of the build (a re-run resumes at the end of the data and builds again).
    """
    box: list[BaseException] = []

    def work() -> None:
        try:
            target.finish_load(collection)
        except BaseException as e:  # re-raised in the caller's thread
            box.append(e)

    t = threading.Thread(target=work, name="cortex-index", daemon=True)
    t.start()
    pause_for_test("finish_load")  # not cut short by a first Ctrl-C: it stands for a long build
    while t.is_alive():
        t.join(0.2)
    if box:
        raise box[0]


def run(
    source: Source,
    target: Target | None,
    collection: str,
    opts: PipelineOptions,
    *,
    distance: str | None = None,
    dead_letter: Path | None = None,
    progress: Progress | None = None,
    resume: Any = None,
    start_counts: Counts | None = None,
    on_commit: Callable[[Checkpoint], None] | None = None,
    dead_letter_offset: int = 0,
    seen_log: Path | None = None,
    seen_offset: int = 0,
    on_phase: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
    info: SourceInfo | None = None,
) -> MigrationSummary:
    """Migrate ``source`` into ``collection`` of ``target``; see :class:`MigrationSummary`.

    Resuming: ``resume`` (a source cursor), ``start_counts``, ``dead_letter_offset`` and
    ``seen_offset`` come from a :class:`Checkpoint` that ``on_commit`` received; the
    dead-letter file and the seen-ids log are truncated back to it.  ``on_phase`` hears
    ``creating`` (before the collection is created), ``loading`` and ``indexing`` (before
    the final index build).  Setting ``stop`` ends the run at the next batch boundary with
    status ``interrupted`` once the batches in flight have landed (or been abandoned while
    waiting to retry).
    """
    t0 = time.perf_counter()
    stop = stop or threading.Event()
    phase = on_phase or (lambda _p: None)
    info = info or source.info()
    if not info.dim:
        raise SourceError(f"{source.path}: cannot tell the vector dimension (is the source empty?)")
    dist = resolve_distance(info, distance)
    summary = MigrationSummary(source=source.path, source_kind=source.kind, collection=collection,
                               target=target.location if target else "-", dim=info.dim, distance=dist,
                               dry_run=opts.dry_run, warnings=list(info.warnings))
    if distance and info.distance and distance.lower() != info.distance:
        summary.warnings.append(f"the source uses {info.distance} distance; migrating as {dist} as asked")
    sparse_cfg, named_cfg = vector_config(info)
    summary.sparse_vectors, summary.named_vectors = sorted(sparse_cfg), sorted(named_cfg)
    if target is not None:

        def before_create() -> None:
            phase("creating")
            pause_for_test("create", stop)

        summary.created = prepare_collection(target, collection, info.dim, dist, opts.defer_indexing,
                                             opts.dry_run, before_create, sparse=sparse_cfg, named=named_cfg)
        if summary.created:
            pause_for_test("created", stop)
    if not opts.dry_run:
        phase("loading")
    counts = Counts()
    if start_counts is not None:
        counts.add(start_counts)
        summary.resumed_from = start_counts.read
    if dead_letter is not None and dead_letter.exists():
        size = dead_letter.stat().st_size
        if dead_letter_offset == 0:
            dead_letter.unlink()  # a fresh start: the rejects of an earlier run are not this run's
        elif size < dead_letter_offset:
            dead_letter_offset = size  # cut short by hand: keep what is there (truncate would pad with zeros)
    dl = DeadLetter(dead_letter, truncate_to=dead_letter_offset)
    seen: SeenIds | None = None
    log: SeenLog | None = None
    if opts.detect_duplicates:
        seen = _RecordingSeen() if seen_log is not None and not opts.dry_run else SeenIds()
        if isinstance(seen, _RecordingSeen):
            log = SeenLog(seen_log, seen_offset)
            log.load(seen)
            seen.added.clear()  # the loaded keys are logged already
    if progress is not None:
        progress.start(info.count, done=counts.read)

    pending: dict[int, Prepared] = {}  # finished, waiting for earlier batches to finish
    next_commit = 0
    inflight: dict[Future[None], Prepared] = {}
    abort = threading.Event()  # an error: writers waiting to retry give up at once
    policy = replace(opts.retry, stop=_Either(stop, abort))

    def commit(p: Prepared) -> None:
        nonlocal next_commit
        pending[p.seq] = p
        while next_commit in pending:
            q_ = pending.pop(next_commit)
            counts.add(q_.counts)
            dl.write(q_.rejected)
            if log is not None:
                log.write(q_.new_keys)
            if len(summary.duplicate_examples) < 20:
                summary.duplicate_examples += q_.dup_ids[: 20 - len(summary.duplicate_examples)]
            if on_commit is not None and not opts.dry_run:
                on_commit(Checkpoint(q_.cursor, counts, dl.offset, log.offset if log is not None else 0))
            if progress is not None:
                progress.advance(q_.counts.read)
            next_commit += 1
            pause_for_test(f"batch:{next_commit}", stop)

    def reap(block: bool) -> None:
        if not inflight:
            return
        done, _ = wait(list(inflight), return_when=FIRST_COMPLETED, timeout=None if block else 0)
        for f in done:
            p = inflight.pop(f)
            f.result()  # raises the writer's error
            commit(p)

    status = "done"
    try:
        try:
            with ThreadPoolExecutor(max_workers=max(1, opts.workers), thread_name_prefix="cortex-writer") as pool:
                try:
                    for p in _read_ahead(source, opts, info.dim, resume, stop, seen, set(sparse_cfg),
                                         {k: v["size"] for k, v in named_cfg.items()}):
                        if stop.is_set():
                            break  # interrupted: send nothing more
                        if p.rejected and opts.strict:
                            r = p.rejected[0]
                            dl.write(p.rejected)
                            raise RecordError(f"{r.location}: {r.reason} (--strict stops at the first bad record; "
                                              "drop --strict to skip such records into the dead-letter file)")
                        if p.after_duplicate:
                            while inflight:  # last one wins: earlier batches land first
                                reap(block=True)
                        if opts.dry_run or target is None or not p.ids:
                            commit(p)
                            continue
                        while len(inflight) >= max(1, opts.workers):
                            reap(block=True)
                        inflight[pool.submit(write_batch, target, collection, p, policy)] = p
                        reap(block=False)
                    while inflight:
                        reap(block=True)
                except BaseException:
                    # Let the batches already sent land, so the checkpoint covers them, then re-raise.
                    abort.set()
                    for f in list(inflight):
                        p = inflight.pop(f)
                        try:
                            f.result()
                        except Exception:
                            continue
                        commit(p)
                    raise
        except TransientTargetError:
            if not stop.is_set():
                raise
            # Interrupted while a batch waited to be retried: it is abandoned, the checkpoint stays before it.
        if stop.is_set():
            status = "interrupted"
        elif target is not None and not opts.dry_run:
            # before the HNSW build: Qdrant links the graph along indexed payload fields as it builds
            summary.payload_indexes = create_payload_indexes(target, collection, info, policy, summary.warnings)
            if opts.build_index:
                phase("indexing")
                _finish_load(target, collection)
    except BaseException as e:
        status = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
        raise
    finally:
        dl.close()
        if log is not None:
            log.close()
        if progress is not None:
            progress.stop()
        for k, v in asdict(counts).items():
            setattr(summary, k, v)
        summary.status = status
        summary.seconds = round(time.perf_counter() - t0, 3)
        moved = counts.written - (start_counts.written if start_counts else 0)
        summary.points_per_second = round(moved / summary.seconds, 1) if summary.seconds > 0 else 0.0
        summary.dead_letter = str(dead_letter) if dead_letter is not None and dead_letter.exists() else None
    return summary
