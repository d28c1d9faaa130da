"""Cortex's Python API: one function per CLI command, same names and keyword arguments.

    from cortex.api import migrate, verify
    summary = migrate("export.jsonl", "code_vectors")          # embedded Qdrant in ./qdrant_storage
    assert verify("code_vectors", source="export.jsonl").ok

Target selection everywhere: ``url`` (or ``QDRANT_URL``) for a server, else ``path`` (or
``QDRANT_PATH``, default ``./qdrant_storage``) for embedded Qdrant Edge; or pass ``target``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import orjson

from cortex.deploy.hooks import PipelineHooks
from cortex.errors import ConflictError, DiskFullError, SourceError, TargetError
from cortex.ids import DEFAULT_ID_FIELD
from cortex.pipeline import Checkpoint, MigrationSummary, PipelineOptions, Progress, run
from cortex.retry import RetryPolicy
from cortex.sources import SourceOptions, open_source
from cortex.sources.base import redact_url
from cortex.state import DEFAULT_STATE_DIR, MigrationRecord, StateStore, migration_id
from cortex.targets import CollectionInfo, Target, open_target
from cortex.validate import Counts
from cortex.verify import VerifyReport, verify_against_source, verify_basic

Event = Callable[[str], None]


def connect(path: str | None = None, url: str | None = None, api_key: str | None = None,
            prefer_grpc: bool = True, grpc_port: int = 6334) -> Target:
    """Open the target: server when ``url``/``QDRANT_URL`` is set, else embedded at ``path``."""
    return open_target(path=path, url=url, api_key=api_key, prefer_grpc=prefer_grpc, grpc_port=grpc_port)


def with_layout(options: SourceOptions | None, layout: str | None) -> SourceOptions | None:
    """``options`` with ``layout`` (the ``layout=`` keyword of the commands) when it is given."""
    if layout is None:
        return options
    from dataclasses import replace

    return replace(options or SourceOptions(), layout=layout)


def _target(target: Target | None, kw: dict[str, Any]) -> tuple[Target, bool]:
    if target is not None:
        return target, False
    return connect(**kw), True


def migrate(
    source: str,
    collection: str,
    *,
    source_type: str | None = None,
    options: SourceOptions | None = None,
    target: Target | None = None,
    path: str | None = None,
    url: str | None = None,
    api_key: str | None = None,
    prefer_grpc: bool = True,
    grpc_port: int = 6334,
    batch_size: int = 500,
    workers: int = 2,
    distance: str | None = None,
    id_field: str = DEFAULT_ID_FIELD,
    defer_indexing: bool = True,
    build_index: bool = True,
    dry_run: bool = False,
    strict: bool = False,
    dead_letter: str | None = None,
    state_dir: str = DEFAULT_STATE_DIR,
    restart: bool = False,
    retries: int = 8,
    retry_max_seconds: float = 30.0,
    checkpoint_seconds: float = 1.0,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    on_event: Event | None = None,
    command: str | None = None,
    lock_collection: bool = True,
    config: Any = None,
    partitions: int | None = None,
    partition: int | None = None,
    finish: bool = False,
    engine: str = "local",
    ray_address: str | None = None,
    metrics: Any = None,
    layout: str | None = None,
) -> MigrationSummary:
    """Migrate ``source`` into ``collection``, resuming a checkpointed run of the same pair.

    State lives in ``state_dir`` (see :mod:`cortex.state`): the checkpoint is saved at most
    every ``checkpoint_seconds`` and whenever the run stops.  A changed source is refused
    (``restart=True`` starts over, recreating the collection when this migration created
    it); a finished migration is not redone.  ``build_index=False`` leaves a deferred index
    for a later :func:`optimize`.  Setting ``stop`` ends the run cleanly at a batch boundary
    (status ``interrupted``, checkpoint saved).  ``options.where`` migrates a subset, its own
    resumable migration.  ``lock_collection=False``: the caller holds the embedded collection's
    lock (a rollout running several subsets into one collection from one process).  ``config``: a
    config file (``plan --output``) or a :class:`~cortex.collection_config.CollectionConfig`; a new
    collection gets its settings and payload indexes.

    Partitions (:mod:`cortex.scale`): ``partitions=N, partition=I`` migrates piece I of N as its own
    resumable migration (its index is built by ``finish=True`` once every piece is done);
    ``engine="ray"`` runs all N pieces as Ray tasks, then finishes.

    ``metrics``: a :class:`cortex.deploy.metrics.MetricsReporter` fed as the run goes (``--metrics-port``).
    """
    say = on_event or (lambda _m: None)
    coll_cfg = None
    if config is not None:
        from cortex.plan.apply import config_for

        coll_cfg = config_for(config, collection)
    shown = redact_url(source)  # no password in messages
    if batch_size < 1:
        raise SourceError("--batch-size must be at least 1")
    options = with_layout(options, layout)  # --layout travels in the source options (partitions, Ray tasks too)
    args = {k: v for k, v in locals().items() if k not in ("say", "shown", "coll_cfg", "layout")}
    if engine not in ("local", "ray"):
        raise SourceError(f"--engine {engine!r}: choose local or ray")
    if engine == "ray":
        from cortex.scale.ray_engine import migrate_with_ray

        return migrate_with_ray(**args)
    if finish:
        from cortex.scale.finish import finish_partitions

        return finish_partitions(**args)
    from cortex.scale.partitions import Piece, PieceStore, partition_source

    piece = Piece.of(partitions, partition)
    build_index = build_index and piece is None  # a partition leaves the index to --finish
    src = open_source(source, source_type, options)
    if piece is not None:
        src = partition_source(src, piece)
    tgt: Target | None = None
    own = False
    store: StateStore | None = None
    try:
        tgt, own = _target(target, dict(path=path, url=url, api_key=api_key, prefer_grpc=prefer_grpc,
                                        grpc_port=grpc_port))
        where = _where_text(options)
        mid = migration_id(source, tgt.location, collection, where)
        if dry_run:
            store = None
        elif piece is not None:
            store = PieceStore(state_dir, mid, piece)
            mid = store.record_id
        else:
            store = StateStore(state_dir)
        if store is not None:
            _lock(store, mid, source, tgt, collection, lock_collection)
        rec = store.get(mid) if store is not None else None
        fp = orjson.loads(orjson.dumps(src.fingerprint(), option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS))
        if rec is not None and restart:
            _start_over(store, rec, tgt, say, "--restart")
            rec = None
        if rec is not None and rec.fingerprint != fp:
            done = f"{rec.counts.get('read', 0):,} records done"
            raise ConflictError(
                f"{shown} changed since it was migrated ({_when(rec.updated)}, {done}); re-run with --restart to "
                "migrate it again" if rec.status == "done" else
                f"{shown} changed since the checkpoint of {_when(rec.updated)} ({done}); resuming would mix two "
                "versions of it: re-run with --restart to migrate it from the beginning"
            )
        info = src.info()
        if coll_cfg is not None:
            from cortex.plan.apply import check_fits
            from cortex.sources.base import parse_distance

            if info.dim:
                check_fits(coll_cfg, str(config) if not hasattr(config, "name") else "--config", info.dim,
                           parse_distance(distance) if distance else None)
            distance = coll_cfg.vectors.distance
        if rec is not None:
            rec = _check_target(store, rec, tgt, say)
        if rec is not None and rec.status == "done":
            from cortex.collection_setup import prepare_collection, resolve_distance, vector_config

            sparse_cfg, named_cfg = vector_config(info)
            prepare_collection(tgt, collection, info.dim or 0, resolve_distance(info, distance), defer_indexing,
                               dry_run=True, sparse=sparse_cfg, named=named_cfg)  # the collection still fits
            say(f"already migrated: {shown} -> '{collection}' ({rec.counts.get('written', 0):,} points); "
                "use --restart to run it again")
            return _summary_from(rec, src.kind, tgt.location)
        resume = start = None
        if rec is not None and rec.cursor is not None:
            resume, start = rec.cursor, Counts(**rec.counts)
            total = f" / {rec.total:,}" if rec.total else ""
            say(f"resuming at {start.read:,}{total} (checkpoint of {_when(rec.updated)})")
        dl_path = Path(dead_letter) if dead_letter else None
        if store is not None:
            if rec is not None and resume is not None and rec.dead_letter and dl_path is not None \
                    and dl_path.resolve() != Path(rec.dead_letter).resolve():
                say(f"--dead-letter {dead_letter} ignored: this resumed migration keeps writing to {rec.dead_letter}")
                dl_path = None
            dl_path = dl_path or (Path(rec.dead_letter) if rec is not None and rec.dead_letter
                                  else store.dead_letter_path(mid, collection))
            if rec is None:
                rec = MigrationRecord(
                    id=mid, source=redact_url(source), source_kind=src.kind, target=tgt.location, collection=collection,
                    status="running", fingerprint=fp, cursor=None, counts=asdict(Counts()), dead_letter=None,
                    dead_letter_offset=0, total=None, created_collection=False, started=time.time(),
                    updated=time.time(), pid=os.getpid(), where=where)
            if resume is None:  # a fresh start (kept: the record of a run that died before its first checkpoint)
                rec.counts, rec.dead_letter_offset, rec.seen_offset = asdict(Counts()), 0, 0
                rec.started = time.time()
            rec.status, rec.pid, rec.error, rec.total = "running", os.getpid(), None, info.count
            rec.command = command or rec.command
            rec.dead_letter = str(dl_path)
            rec.seen_log = str(store.seen_log_path(mid))
            store.put(rec)
        saver = _Checkpointer(store, rec, checkpoint_seconds, flush=lambda: tgt.flush(collection))
        hooks = PipelineHooks(metrics, tgt, collection, info.count, saver if rec is not None else None, start)
        opts = PipelineOptions(batch_size=batch_size, workers=workers, id_field=id_field,
                               defer_indexing=defer_indexing, build_index=build_index, dry_run=dry_run,
                               strict=strict, config=coll_cfg, on_write=hooks.batch_written,
                               retry=RetryPolicy(retries=retries, max_seconds=retry_max_seconds,
                                                 on_retry=hooks.retried(
                                                     lambda a, d, e: say(f"retry {a}/{retries} in {d:.2f}s: {e}"))))
        from cortex.cutover.sync import MigrateRecorder  # per-point content hashes, for `sync`

        whole = piece is None and not (options is not None and options.where)  # the whole source into the collection
        hashes = MigrateRecorder(state_dir, tgt.location, collection, mid, fresh=resume is None,
                                 whole=whole) if rec else None
        try:
            summary = run(src, tgt, collection, opts, distance=distance, dead_letter=dl_path, progress=progress,
                          resume=resume, start_counts=start, stop=stop, info=info,
                          on_batch=hashes.add if hashes is not None else None,
                          on_commit=hooks.commit(saver.commit if rec is not None else None),
                          on_phase=lambda name: (hooks.phase(name),
                                                 _on_phase(name, saver if rec is not None else None, say)),
                          dead_letter_offset=rec.dead_letter_offset if rec is not None else 0,
                          seen_log=Path(rec.seen_log) if rec is not None and rec.seen_log else None,
                          seen_offset=rec.seen_offset if rec is not None else 0)
        except BaseException as e:
            hooks.finish("interrupted" if isinstance(e, KeyboardInterrupt) else "failed")
            if hashes is not None:
                hashes.close()
            if rec is not None:
                saver.finish("interrupted" if isinstance(e, KeyboardInterrupt) else "failed", error=str(e)[:500])
                if isinstance(e, (TargetError, DiskFullError)) and rec.cursor is not None:
                    raise type(e)(f"{e} (progress is checkpointed at {rec.counts.get('read', 0):,} records: "
                                  "re-run the same command to resume)") from e
            raise
        if summary.index_abandoned:  # the engine still builds: no flush or close (they would wait for it)
            saver.flush = lambda: None
            own = False
        if rec is not None:
            saver.finish(summary.status)
        hooks.finish(summary.status, summary)
        if hashes is not None and summary.status == "done":
            hashes.finish(src, redact_url(source))
        elif hashes is not None:
            hashes.close()
        summary.source = redact_url(summary.source)
        return summary
    finally:
        if store is not None:
            store.close()
        src.close()
        if own and tgt is not None:
            tgt.close()


class _Checkpointer:
    """Keeps the migration's record in step with the pipeline; saves it at most every ``seconds``."""

    def __init__(self, store: StateStore | None, rec: MigrationRecord | None, seconds: float,
                 flush: Callable[[], None] = lambda: None) -> None:
        self.store, self.rec, self.seconds, self.flush = store, rec, seconds, flush
        self.last = time.monotonic()

    def save(self) -> None:
        assert self.store is not None and self.rec is not None
        if self.rec.cursor is not None and self.rec.phase in ("loading", "indexing"):
            self.flush()  # the checkpoint may only cover what is on disk, not just in the WAL buffer
        self.store.put(self.rec)
        self.last = time.monotonic()

    def commit(self, ck: Checkpoint) -> None:
        rec = self.rec
        assert rec is not None
        rec.cursor, rec.counts = ck.cursor, asdict(ck.counts)
        rec.dead_letter_offset, rec.seen_offset = ck.dead_letter_offset, ck.seen_offset
        if time.monotonic() - self.last >= self.seconds:
            self.save()

    def phase(self, name: str) -> None:
        assert self.rec is not None
        if name == "loading" and self.rec.phase == "creating":
            self.rec.created_collection = True
        self.rec.phase = name
        self.save()

    def finish(self, status: str, error: str | None = None) -> None:
        rec = self.rec
        assert rec is not None
        rec.status, rec.error = status, error
        if status == "done":
            rec.phase = "done"
            if rec.seen_log:  # a finished migration never resumes: the seen-ids log is not needed any more
                Path(rec.seen_log).unlink(missing_ok=True)
                rec.seen_offset = 0
        self.save()


def _on_phase(name: str, saver: _Checkpointer | None, say: Event) -> None:
    if name == "indexing":
        say("load done; optimizing the collection (the HNSW build takes minutes on large collections) ...")
    if saver is not None:
        saver.phase(name)


def _where_expr(options: SourceOptions | None) -> Any:
    from cortex.where import parse

    return parse(options.where) if options is not None else None


def _where_text(options: SourceOptions | None) -> str | None:
    """The canonical text of ``options.where`` (so spacing and case of keywords name the same subset)."""
    from cortex.where import parse, to_text

    expr = parse(options.where) if options is not None else None
    return to_text(expr) if expr is not None else None


def _lock(store: StateStore, mid: str, source: str, tgt: Target, collection: str, collection_too: bool = True) -> None:
    """One process per migration (state lock) and, embedded, per collection (a lock file next to it)."""
    store.lock(mid, f"a migration of {redact_url(source)} into '{collection}'")
    if tgt.kind == "embedded" and collection_too:
        store.lock_file("collection", Path(tgt.location) / ".cortex-locks" / f"{quote(collection, safe='')}.lock",
                        f"collection '{collection}' in {tgt.location} is being written by another migration "
                        "(pid {pid}); wait for it to finish or stop it first")


def _start_over(store: StateStore | None, rec: MigrationRecord, tgt: Target, say: Event, why: str) -> None:
    """Forget a migration's checkpoint; a collection it created is deleted, so the new run yields exactly the source."""
    assert store is not None
    if rec.where and rec.phase != "creating" and rec.collection in tgt.list_collections():
        from cortex.where import parse

        # a --where subset shares the collection with other subsets: only its own points go
        say(f"{why}: deleting the points of '{rec.collection}' where {rec.where} to start this subset over")
        tgt.delete_points(rec.collection, parse(rec.where))
    elif (rec.created_collection or rec.phase == "creating") and rec.collection in tgt.list_collections():
        say(f"{why}: deleting collection '{rec.collection}' (created by this migration) to start over")
        tgt.delete_collection(rec.collection)
    if rec.seen_log:
        Path(rec.seen_log).unlink(missing_ok=True)
    store.delete(rec.id)


def _check_target(store: StateStore | None, rec: MigrationRecord, tgt: Target, say: Event) -> MigrationRecord | None:
    """The record, when the collection still holds what it says; None to start over; else ConflictError."""
    assert store is not None
    coll = rec.collection
    if rec.phase == "creating":
        # The last run died while creating the collection: nothing acknowledged lives there, and an
        # embedded shard killed half-way may not even load.  Remove it and start from the beginning.
        if coll in tgt.list_collections():  # embedded: possibly a directory that no longer loads
            say(f"removing collection '{coll}' left half-created by the interrupted run")
            tgt.delete_collection(coll)
        store.delete(rec.id)
        return None
    if rec.cursor is None:
        return rec
    info = tgt.collection_info(coll)
    if info is None:
        say(f"collection '{coll}' no longer exists at {tgt.location}; migrating {rec.source} from the beginning")
        _start_over(store, rec, tgt, say, "collection gone")
        return None
    expected = rec.counts.get("written", 0) - rec.counts.get("duplicates", 0)
    have = tgt.count(coll, exact=True)
    if have < expected:
        raise ConflictError(
            f"collection '{coll}' at {tgt.location} holds {have:,} points but {expected:,} were written into it "
            f"by this migration: it was changed since ({_when(rec.updated)}); re-run with --restart to migrate "
            f"{rec.source} from the beginning"
        )
    return rec


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def _summary_from(rec: MigrationRecord, kind: str, location: str) -> MigrationSummary:
    s = MigrationSummary(source=rec.source, source_kind=kind, collection=rec.collection, target=location,
                         dim=0, distance="", status="done",
                         dead_letter=rec.dead_letter if rec.counts.get("rejected") else None)
    for k, v in rec.counts.items():
        setattr(s, k, v)
    return s


def migrations(state_dir: str = DEFAULT_STATE_DIR) -> list[dict[str, Any]]:
    """Known migrations, newest first: source, target, progress, state (running / interrupted / failed / done).

    A record left ``running`` by a process that died without saying so (SIGKILL, power loss)
    shows as ``interrupted``: its lock is free.
    """
    from cortex.scale.partitions import all_pieces

    pieces = []
    for d in all_pieces(state_dir):  # partitions: one file each
        d["rejected"] = d.get("counts", {}).get("rejected", 0)
        d["progress"] = d.get("counts", {}).get("read", 0)
        pieces.append(d)
    if not Path(state_dir, "state.sqlite").exists():
        return pieces
    store = StateStore(state_dir, read_only=True)
    try:
        out = pieces
        for r in store.all():
            d = r.to_dict()
            if r.status == "running" and not store.is_locked(r.id):
                d["status"] = "interrupted"
            d["rejected"] = r.counts.get("rejected", 0)
            d["progress"] = r.counts.get("read", 0)
            out.append(d)
        return out
    finally:
        store.close()


def verify(collection: str, *, source: str | None = None, source_type: str | None = None,
           options: SourceOptions | None = None, target: Target | None = None, path: str | None = None,
           url: str | None = None, api_key: str | None = None, prefer_grpc: bool = True, grpc_port: int = 6334,
           sample: int = 100, full: bool = False, tolerance: float = 1e-5, id_field: str = DEFAULT_ID_FIELD,
           max_problems: int = 1000, progress: Any = None, layout: str | None = None) -> VerifyReport:
    """Check a collection (alone, or against its source); ``.ok`` tells whether all holds."""
    tgt, own = _target(target, dict(path=path, url=url, api_key=api_key, prefer_grpc=prefer_grpc,
                                    grpc_port=grpc_port))
    try:
        if source is None:
            return verify_basic(tgt, collection, sample=3)
        with open_source(source, source_type, with_layout(options, layout)) as src:
            return verify_against_source(tgt, collection, src, full=full, sample=sample, tolerance=tolerance,
                                         id_field=id_field, max_problems=max_problems, progress=progress,
                                         where=_where_expr(options))
    finally:
        if own:
            tgt.close()


def status(collection: str | None = None, *, target: Target | None = None, path: str | None = None,
           url: str | None = None, api_key: str | None = None, prefer_grpc: bool = True,
           grpc_port: int = 6334) -> list[CollectionInfo]:
    """Collections with point count, dimension, distance, status, segments and index state."""
    tgt, own = _target(target, dict(path=path, url=url, api_key=api_key, prefer_grpc=prefer_grpc,
                                    grpc_port=grpc_port))
    try:
        names = [collection] if collection else tgt.list_collections()
        out = []
        for n in names:
            info = tgt.collection_info(n)
            if info is None:
                from cortex.errors import TargetError

                raise TargetError(f"collection '{n}' does not exist at {tgt.location}")
            out.append(info)
        return out
    finally:
        if own:
            tgt.close()


def optimize(collection: str, *, wait: bool = False, target: Target | None = None, path: str | None = None,
             url: str | None = None, api_key: str | None = None, prefer_grpc: bool = True, grpc_port: int = 6334,
             progress: Callable[[CollectionInfo], None] | None = None) -> CollectionInfo:
    """Trigger optimization (indexing); with ``wait``, return once the collection is green."""
    tgt, own = _target(target, dict(path=path, url=url, api_key=api_key, prefer_grpc=prefer_grpc,
                                    grpc_port=grpc_port))
    try:
        if tgt.collection_info(collection) is None:
            from cortex.errors import TargetError

            raise TargetError(f"collection '{collection}' does not exist at {tgt.location}")
        return tgt.optimize(collection, wait=wait, progress=progress)
    finally:
        if own:
            tgt.close()


@dataclass
class ExportSummary:
    source: str
    output: str
    read: int = 0
    written: int = 0
    rejected: int = 0
    skipped: int = 0
    seconds: float = 0.0
    dead_letter: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def export(source: str, output: str, *, source_type: str | None = None, options: SourceOptions | None = None,
           batch_size: int = 1000, progress: Progress | None = None, format: str | None = None,
           layout: str | None = None) -> Any:
    """The migration guide's Step 2 for any source: JSONL of ``{id, vector, payload}`` with the original ids.

    ``output`` ending in ``.gz`` or ``.zst`` is written compressed. ``format="parquet"`` (or an output ending in
    ``.parquet``) writes lossless Parquet instead (:mod:`cortex.snapshot.parquet_format`).
    """
    from contextlib import contextmanager

    from cortex import compressed
    from cortex.dead_letter import dumps
    from cortex.export_rows import py_id, stream_export

    if (format or ("parquet" if output.endswith(".parquet") else "jsonl")) == "parquet":
        from cortex.snapshot.parquet_format import write_parquet

        return write_parquet(source, output, source_type=source_type, options=with_layout(options, layout),
                             batch_size=batch_size, progress=progress)
    if format not in (None, "jsonl"):
        raise SourceError(f"--format {format!r}: choose jsonl or parquet")

    t0 = time.perf_counter()
    out = Path(output)
    summary = ExportSummary(source=source, output=str(out))

    @contextmanager
    def jsonl(tmp: Path) -> Iterator[Any]:
        with compressed.open_write(tmp, compressed.codec(out)) as fh:
            def write(batch: Any, vecs: np.ndarray, keep: list[int]) -> None:
                fh.write(b"".join(dumps({"id": py_id(batch.ids[i]), "vector": vecs[i],
                                         "payload": (batch.payloads[i] if batch.payloads is not None else None) or {}})
                                  + b"\n" for i in keep))
            yield write

    with open_source(source, source_type, with_layout(options, layout)) as src:
        stream_export(src, out, summary, jsonl, dim=src.info().dim, batch_size=batch_size, progress=progress)
    summary.seconds = round(time.perf_counter() - t0, 3)
    return summary


def compare(collection: str, *, source: str, source_type: str | None = None, options: SourceOptions | None = None,
            target: Target | None = None, path: str | None = None, url: str | None = None,
            api_key: str | None = None, prefer_grpc: bool = True, grpc_port: int = 6334, k: int = 10,
            num_queries: int = 200, queries: str | np.ndarray | None = None,
            filter: str | dict[str, Any] | None = None, min_recall: float = 0.95, ef: int | None = None,
            noise: float = 0.1, seed: int = 0, id_field: str = DEFAULT_ID_FIELD, memory_mb: float = 1024.0,
            on_event: Event | None = None, config: Any = None, layout: str | None = None) -> Any:
    """Same queries on the old system and on Qdrant: recall@k vs exact truth, latency, overlap, score drift.

    Returns a :class:`cortex.parity.CompareResult`; ``.ok`` is False when Qdrant's recall is
    below ``min_recall``.  ``queries``: a .npy/.json/.jsonl file or an array (default: sampled
    source vectors plus noise); ``filter``: ``"FIELD=VALUE"`` or ``{field: value}``; ``config``: a config
    file whose query-time parameters (hnsw_ef, quantization rescore / oversampling) Qdrant's searches use.
    """
    from cortex import parity
    from cortex.plan.apply import with_search_params

    flt = parity.parse_filter(filter) if isinstance(filter, str) else filter
    tgt, own = _target(target, dict(path=path, url=url, api_key=api_key, prefer_grpc=prefer_grpc,
                                    grpc_port=grpc_port))
    inner = tgt
    try:
        tgt, sp = with_search_params(tgt, config, collection)
        if sp is not None:
            ef = ef or sp.hnsw_ef
            if on_event:
                on_event(f"searching with the config's query parameters: {sp.model_dump(exclude_none=True)}")
        info = tgt.collection_info(collection)
        if info is None:
            raise TargetError(f"collection '{collection}' does not exist at {tgt.location}; "
                              "run `cortex qdrant status` to list collections")
        qv, how = None, None
        if isinstance(queries, str):
            qv, how = parity.load_queries(queries, info.dim or 0), f"query vectors read from {queries}"
        elif queries is not None:
            qv = np.asarray(queries, dtype=np.float32)
        with open_source(source, source_type, with_layout(options, layout)) as src:
            if flt and hasattr(src, "field_path"):  # a metadata field, where the layout keeps it (metadata.lang)
                flt = {src.field_path(k): v for k, v in flt.items()}
            return parity.compare(tgt, collection, src, k=k, num_queries=num_queries, queries=qv, queries_how=how,
                                  filter=flt, min_recall=min_recall, ef=ef, noise=noise, seed=seed,
                                  id_field=id_field, memory_mb=memory_mb, say=on_event, where=_where_expr(options))
    finally:
        if own:
            inner.close()


def benchmark(collection: str, *, num_queries: int = 1000, dimensions: int | None = None, limit: int = 10,
              concurrency: list[int] | None = None, ef: list[int] | None = None, source: str | None = None,
              source_type: str | None = None, options: SourceOptions | None = None, target: Target | None = None,
              path: str | None = None, url: str | None = None, api_key: str | None = None, prefer_grpc: bool = True,
              grpc_port: int = 6334, seed: int = 0, build_sample: int = 20_000, id_field: str = DEFAULT_ID_FIELD,
              on_event: Event | None = None, config: Any = None) -> Any:
    """The migration guide's latency benchmark, QPS per concurrency, an ef sweep and, with ``source``, old vs Qdrant.

    Returns a :class:`cortex.benchmark.BenchmarkResult`.  Queries are sampled from the
    collection (plus noise) unless ``dimensions`` asks for random vectors, as the migration guide does.
    ``config``: search with a config file's query-time parameters (``--ef`` values still sweep hnsw_ef).
    """
    from cortex import benchmark as bench
    from cortex.plan.apply import with_search_params

    tgt, own = _target(target, dict(path=path, url=url, api_key=api_key, prefer_grpc=prefer_grpc,
                                    grpc_port=grpc_port))
    inner = tgt
    try:
        tgt, sp = with_search_params(tgt, config, collection)
        if sp is not None and on_event:
            on_event(f"searching with the config's query parameters: {sp.model_dump(exclude_none=True)}")
        if source is None:
            return bench.benchmark(tgt, collection, num_queries=num_queries, dimensions=dimensions, limit=limit,
                                   concurrency=concurrency, ef=ef, seed=seed, id_field=id_field, say=on_event)
        with open_source(source, source_type, options) as src:
            return bench.benchmark(tgt, collection, num_queries=num_queries, dimensions=dimensions, limit=limit,
                                   concurrency=concurrency, ef=ef, source=src, seed=seed, build_sample=build_sample,
                                   id_field=id_field, say=on_event)
    finally:
        if own:
            inner.close()


from cortex.cutover.commands import aliases, cutover, resolve, retire, rollback, sync  # noqa: E402,F401
from cortex.deploy.health import health  # noqa: E402,F401
from cortex.deploy.setup import setup_collections as setup  # noqa: E402,F401
from cortex.plan.commands import plan  # noqa: E402,F401
from cortex.rollout.commands import (  # noqa: E402,F401
    rollout_plan,
    rollout_promote,
    rollout_revert,
    rollout_run,
    rollout_status,
)
from cortex.snapshot.commands import (  # noqa: E402,F401
    backup,
    snapshot_create,
    snapshot_delete,
    snapshot_list,
    snapshot_restore,
)
