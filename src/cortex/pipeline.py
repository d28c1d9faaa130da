"""read -> validate -> map ids -> write, with batching, parallel writers and ordered checkpoints.

The pipeline knows sources and targets only through their contracts.  A reader thread
pulls columnar batches from the source, validates them with numpy (dimension, NaN/inf),
maps ids, and queues them (bounded, so memory stays flat); writer threads upsert them.
Batches are committed *in order*: ``on_commit`` sees a cursor only when every batch
before it is durable in the target, so a checkpoint never skips an unwritten batch.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cortex.collection_setup import create_payload_indexes, prepare_collection, resolve_distance, vector_config
from cortex.dead_letter import DeadLetter
from cortex.errors import (
    BatchTooLargeError,
    CortexError,
    RecordError,
    SourceError,
    TargetError,
    TransientTargetError,
)
from cortex.ids import DEFAULT_ID_FIELD
from cortex.retry import RetryPolicy, with_retries
from cortex.run_ahead import run_ahead
from cortex.seen_ids import RecordingSeen, SeenIds, SeenLog
from cortex.sources.base import Source, SourceInfo
from cortex.targets.base import Target
from cortex.validate import Counts, Prepared, validate


class Progress(Protocol):
    def start(self, total: int | None, done: int = 0) -> None: ...
    def advance(self, n: int) -> None: ...
    def stop(self) -> None: ...


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
    seconds: float = 0.0  # the whole run
    index_seconds: float = 0.0  # of which building the index after the load
    points_per_second: float = 0.0  # load rate: points written / (seconds - index_seconds)
    created: bool = False
    dry_run: bool = False
    resumed_from: int = 0
    dead_letter: str | None = None
    sparse_vectors: list[str] = field(default_factory=list)  # sparse vectors carried over, by name
    named_vectors: list[str] = field(default_factory=list)  # named dense vectors carried over besides ""
    payload_indexes: dict[str, str] = field(default_factory=dict)  # payload indexes created on the target
    duplicate_examples: list[Any] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    layout: str = "flat"  # the payload layout written (cortex.layouts)
    status: str = "done"  # done | interrupted | failed
    index_abandoned: bool = False  # interrupted while the index build ran: it is left to the process exit

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def counts_add_up(self) -> bool:
        return self.read == self.written + self.rejected + self.skipped


@dataclass
class Checkpoint:
    """What ``on_commit`` receives: everything up to ``cursor`` is durable in the target."""

    cursor: Any
    counts: Counts
    dead_letter_offset: int  # bytes of the dead-letter file that belong to the committed prefix
    seen_offset: int  # bytes of the seen-ids log that belong to it


def pause_for_test(point: str, stop: threading.Event | None = None) -> None:
    """Test hook: with ``CORTEX_TEST_PAUSE_AT=<point>`` print ``CORTEX_TEST_PAUSED <point>`` to stderr and wait.

    Lets a test kill a real ``cortex qdrant migrate`` at a known moment.  Points: ``create``
    (before the collection is created), ``created`` (just after, before the state records
    it), ``batch:N`` (after the N-th batch of this run committed) and ``finish_load`` (while
    the final index build runs).  Waits ``CORTEX_TEST_PAUSE_SECONDS`` (default 60) or until
    ``stop`` is set (a first SIGINT), then goes on.  Unset:
    does nothing.  With ``CORTEX_TEST_PAUSE_ONCE=FILE`` only the first process to get there pauses
    (it creates FILE holding its pid); later ones, such as a retried Ray task, go on.
    """
    at = os.environ.get("CORTEX_TEST_PAUSE_AT")
    if at and at == point:
        once = os.environ.get("CORTEX_TEST_PAUSE_ONCE")  # a file: only the first process to get here pauses
        if once:
            try:
                fd = os.open(once, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            except FileExistsError:
                return
            os.write(fd, str(os.getpid()).encode())  # who paused, for a test that kills it
            os.close(fd)
        print(f"CORTEX_TEST_PAUSED {point}", file=sys.stderr, flush=True)
        (stop or threading.Event()).wait(float(os.environ.get("CORTEX_TEST_PAUSE_SECONDS", "60")))


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
    config: Any = None  # a CollectionConfig (migrate --config): the collection is created with its settings
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    on_write: Callable[[int, float], None] | None = None  # (points, seconds) per batch written, e.g. metrics


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
    def produce() -> Iterator[Prepared]:
        for seq, batch in enumerate(source.batches(opts.batch_size, resume=resume)):
            if stop.is_set():
                break
            p = validate(batch, dim, opts.id_field, seq, seen, sparse_names, named_dims)
            if isinstance(seen, RecordingSeen):
                p.new_keys = seen.take()
            yield p

    yield from run_ahead(produce(), max(2, opts.workers * 2), "cortex-reader")


def write_batch(target: Target, collection: str, p: Prepared, policy: RetryPolicy,
                on_written: Callable[[int, float], None] | None = None) -> None:
    """Upsert with retries on transient faults; split batches the server finds too large.

    An unexpected exception from the target becomes a (permanent) :class:`TargetError`
    naming the batch, so the CLI reports it in one line and the checkpoint stays usable.
    ``on_written(points, seconds)`` hears how long the batch took, retries included.
    """
    t0 = time.perf_counter()

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
    if on_written is not None:
        on_written(len(p.ids), time.perf_counter() - t0)


def _finish_load(target: Target, collection: str, stop: threading.Event | None = None) -> str:
    """``target.finish_load`` (the index build, minutes on big collections) in a thread.

    The main thread only waits, so a first Ctrl-C (``stop``) ends the wait within a fraction of
    a second: ``"abandoned"`` when the build still runs (the engine cannot cancel it; it stops
    with the process, like a kill, and a re-run builds again), ``"interrupted"`` when it had just
    finished.  ``"built"`` otherwise.
    """
    stop = stop or threading.Event()  # none: wait for the build
    box: list[BaseException] = []

    def work() -> None:
        try:
            target.finish_load(collection)
        except BaseException as e:  # re-raised in the caller's thread
            box.append(e)

    t = threading.Thread(target=work, name="cortex-index", daemon=True)
    t.start()
    pause_for_test("finish_load", stop)  # stands for a long build: only a Ctrl-C ends it early
    while t.is_alive() and not stop.is_set():
        t.join(0.2)
    if box:
        raise box[0]
    if stop.is_set():
        return "abandoned" if t.is_alive() else "interrupted"
    return "built"


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
    on_batch: Callable[[Prepared], None] | None = None,
) -> MigrationSummary:
    """Migrate ``source`` into ``collection`` of ``target``; see :class:`MigrationSummary`.

    Resuming: ``resume`` (a source cursor), ``start_counts``, ``dead_letter_offset`` and
    ``seen_offset`` come from a :class:`Checkpoint` that ``on_commit`` received; the
    dead-letter file and the seen-ids log are truncated back to it.  ``on_phase`` hears
    ``creating`` (before the collection is created), ``loading`` and ``indexing`` (before
    the final index build).  Setting ``stop`` ends the run at the next batch boundary with
    status ``interrupted`` once the batches in flight have landed (or been abandoned while
    waiting to retry); during the index build it ends the wait for it (``index_abandoned``:
    the build goes on in a daemon thread until the process exits; a re-run builds again).
    ``on_batch`` sees each batch the target acknowledged, in source order, before its checkpoint
    (``cortex.cutover`` records content hashes from it).
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
                               dry_run=opts.dry_run, warnings=list(info.warnings),
                               layout=(info.details or {}).get("layout") or "flat")
    if distance and info.distance and distance.lower() != info.distance:
        summary.warnings.append(f"the source uses {info.distance} distance; migrating as {dist} as asked")
    sparse_cfg, named_cfg = vector_config(info)
    summary.sparse_vectors, summary.named_vectors = sorted(sparse_cfg), sorted(named_cfg)
    if target is not None:

        def before_create() -> None:
            phase("creating")
            pause_for_test("create", stop)

        summary.created = prepare_collection(target, collection, info.dim, dist, opts.defer_indexing,
                                             opts.dry_run, before_create, sparse=sparse_cfg, named=named_cfg,
                                             config=opts.config)
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
        seen = RecordingSeen() if seen_log is not None and not opts.dry_run else SeenIds()
        if isinstance(seen, RecordingSeen):
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
            if on_batch is not None and not opts.dry_run and target is not None:
                on_batch(q_)
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
                        inflight[pool.submit(write_batch, target, collection, p, policy, opts.on_write)] = p
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
            summary.payload_indexes = create_payload_indexes(target, collection, info, policy, summary.warnings,
                                                             config=opts.config)
            if opts.build_index:
                phase("indexing")
                t_index = time.perf_counter()
                outcome = _finish_load(target, collection, stop)
                summary.index_seconds = round(time.perf_counter() - t_index, 3)
                if outcome != "built":
                    status, summary.index_abandoned = "interrupted", outcome == "abandoned"
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
        load_seconds = summary.seconds - summary.index_seconds
        summary.points_per_second = round(moved / load_seconds, 1) if load_seconds > 0 else 0.0
        summary.dead_letter = str(dead_letter) if dead_letter is not None and dead_letter.exists() else None
    return summary
