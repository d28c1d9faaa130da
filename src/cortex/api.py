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
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from cortex.errors import ConflictError, SourceError
from cortex.ids import DEFAULT_ID_FIELD
from cortex.pipeline import Counts, MigrationSummary, PipelineOptions, Progress, run
from cortex.retry import RetryPolicy
from cortex.sources import SourceOptions, open_source
from cortex.sources.base import Rejected
from cortex.state import DEFAULT_STATE_DIR, MigrationRecord, StateStore, migration_id
from cortex.targets import CollectionInfo, Target, open_target
from cortex.verify import VerifyReport, verify_against_source, verify_basic

Event = Callable[[str], None]


def connect(path: str | None = None, url: str | None = None, api_key: str | None = None,
            prefer_grpc: bool = True, grpc_port: int = 6334) -> Target:
    """Open the target: server when ``url``/``QDRANT_URL`` is set, else embedded at ``path``."""
    return open_target(path=path, url=url, api_key=api_key, prefer_grpc=prefer_grpc, grpc_port=grpc_port)


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
) -> MigrationSummary:
    """Migrate ``source`` into ``collection``, resuming a checkpointed run of the same pair."""
    say = on_event or (lambda _m: None)
    if batch_size < 1:
        raise SourceError("--batch-size must be at least 1")
    src = open_source(source, source_type, options)
    tgt, own = _target(target, dict(path=path, url=url, api_key=api_key, prefer_grpc=prefer_grpc,
                                    grpc_port=grpc_port))
    store = None if dry_run else StateStore(state_dir)
    mid = migration_id(source, tgt.location, collection)
    try:
        resume = None
        start = None
        dl_offset = None
        rec = store.get(mid) if store else None
        if store is not None:
            store.lock(mid, f"a migration of {source} into '{collection}'")
        fp = src.fingerprint()
        if rec is not None and restart:
            store.delete(mid)
            rec = None
        if rec is not None and rec.fingerprint != fp:
            raise ConflictError(
                f"{source} changed since the checkpoint of {_when(rec.updated, '%Y-%m-%d %H:%M')} "
                f"({rec.counts.get('read', 0):,} records done); resuming would mix two versions: "
                "re-run with --restart to migrate it from the beginning"
            )
        if rec is not None and rec.status == "done":
            from cortex.pipeline import prepare_collection

            info = src.info()
            dist = (distance or info.distance or "cosine").lower()
            prepare_collection(tgt, collection, info.dim or 0, dist, defer_indexing, dry_run=True)
            say(f"already migrated: {source} -> '{collection}' ({rec.counts.get('written', 0):,} points); "
                "use --restart to run it again")
            return _summary_from(rec, src.kind, tgt.location)
        if rec is not None and rec.cursor is not None:
            resume, start, dl_offset = rec.cursor, Counts(**rec.counts), rec.dead_letter_offset
            total = f" / {rec.total:,}" if rec.total else ""
            say(f"resuming at {start.read:,}{total} (checkpoint of {_when(rec.updated, '%H:%M:%S')})")
        dl_path = Path(dead_letter) if dead_letter else (store.dead_letter_path(mid, collection) if store else None)
        if rec is None and dl_path is not None and dl_path.exists() and store is not None and not dead_letter:
            dl_path.unlink()  # a fresh run starts a fresh dead-letter file
        if store is not None:
            rec = rec or MigrationRecord(
                id=mid, source=source, source_kind=src.kind, target=tgt.location, collection=collection,
                status="running", fingerprint=fp, cursor=None, counts=asdict(Counts()),
                dead_letter=str(dl_path) if dl_path else None, dead_letter_offset=0, total=None,
                created_collection=False, started=time.time(), updated=time.time(), pid=os.getpid(),
                command=command)
            rec.status, rec.pid, rec.error = "running", os.getpid(), None
            rec.command = command or rec.command
            store.put(rec)
        last_save = [time.monotonic()]
        pending: list[Any] = [None]

        def on_commit(cursor: Any, counts: Counts, dl_off: int) -> None:
            if store is None or rec is None:
                return
            rec.cursor, rec.counts, rec.dead_letter_offset = cursor, asdict(counts), dl_off
            pending[0] = True
            if time.monotonic() - last_save[0] >= checkpoint_seconds:
                store.put(rec)
                pending[0] = None
                last_save[0] = time.monotonic()

        def on_created() -> None:
            if store is not None and rec is not None:
                rec.created_collection = True
                store.put(rec)

        opts = PipelineOptions(batch_size=batch_size, workers=workers, id_field=id_field,
                               defer_indexing=defer_indexing, dry_run=dry_run, strict=strict,
                               retry=RetryPolicy(retries=retries, max_seconds=retry_max_seconds,
                                                 on_retry=lambda a, d, e: say(f"retry {a}/{retries} in {d:.1f}s: {e}")))
        if rec is not None:
            try:
                rec.total = src.info().count
            except SourceError:
                rec.total = None
        try:
            summary = run(src, tgt, collection, opts, distance=distance, dead_letter=dl_path, progress=progress,
                          resume=resume, start_counts=start, on_commit=on_commit, on_created=on_created,
                          stop=stop, dead_letter_offset=dl_offset)
        except BaseException as e:
            if store is not None and rec is not None:
                rec.status = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
                rec.error = str(e)[:500]
                store.put(rec)
            raise
        if store is not None and rec is not None:
            rec.status = summary.status
            rec.counts = {k: getattr(summary, k) for k in asdict(Counts())}
            store.put(rec)
        return summary
    finally:
        if store is not None:
            store.close()
        src.close()
        if own:
            tgt.close()


def _when(t: float, fmt: str) -> str:
    return time.strftime(fmt, time.localtime(t))


def _summary_from(rec: MigrationRecord, kind: str, location: str) -> MigrationSummary:
    s = MigrationSummary(source=rec.source, source_kind=kind, collection=rec.collection, target=location,
                         dim=0, distance="", status="done",
                         dead_letter=rec.dead_letter if rec.counts.get("rejected") else None)
    for k, v in rec.counts.items():
        setattr(s, k, v)
    return s


def migrations(state_dir: str = DEFAULT_STATE_DIR) -> list[dict[str, Any]]:
    """Known migrations with progress and state (running / interrupted / failed / done)."""
    if not Path(state_dir, "state.sqlite").exists():
        return []
    store = StateStore(state_dir)
    try:
        out = []
        for r in store.all():
            d = r.to_dict()
            if r.status == "running" and not store.is_locked(r.id):
                d["status"] = "interrupted"  # its process died without saying so (e.g. SIGKILL)
            out.append(d)
        return out
    finally:
        store.close()


def verify(collection: str, *, source: str | None = None, source_type: str | None = None,
           options: SourceOptions | None = None, target: Target | None = None, path: str | None = None,
           url: str | None = None, api_key: str | None = None, prefer_grpc: bool = True, grpc_port: int = 6334,
           sample: int = 100, full: bool = False, tolerance: float = 1e-5, id_field: str = DEFAULT_ID_FIELD,
           max_problems: int = 1000, progress: Any = None) -> VerifyReport:
    """Check a collection (alone, or against its source); ``.ok`` tells whether all holds."""
    tgt, own = _target(target, dict(path=path, url=url, api_key=api_key, prefer_grpc=prefer_grpc,
                                    grpc_port=grpc_port))
    try:
        if source is None:
            return verify_basic(tgt, collection, sample=3)
        with open_source(source, source_type, options) as src:
            return verify_against_source(tgt, collection, src, full=full, sample=sample, tolerance=tolerance,
                                         id_field=id_field, max_problems=max_problems, progress=progress)
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
           batch_size: int = 1000, progress: Progress | None = None) -> ExportSummary:
    """The seed's Step 2 for any source: JSONL of ``{id, vector, payload}`` with the original ids."""
    from cortex.pipeline import DeadLetter

    t0 = time.perf_counter()
    out = Path(output)
    summary = ExportSummary(source=source, output=str(out))
    dl = DeadLetter(out.with_name(out.name + ".rejected.jsonl"))
    with open_source(source, source_type, options) as src:
        info = src.info()
        if progress is not None:
            progress.start(info.count)
        tmp = out.with_name(out.name + ".partial")
        with open(tmp, "wb") as fh:
            for batch in src.batches(batch_size):
                summary.read += batch.read
                rejected = list(batch.rejected)
                vecs = np.asarray(batch.vectors, dtype=np.float32)
                ok = np.isfinite(vecs).all(axis=1) if len(batch) else np.ones(0, bool)
                if len(batch) and info.dim and vecs.shape[1] != info.dim:
                    ok[:] = False
                for i in range(len(batch)):
                    rid = batch.ids[i]
                    rid = rid.item() if isinstance(rid, np.generic) else rid
                    if not ok[i]:
                        rejected.append(Rejected(batch.location(i), "vector has a non-finite value or wrong dimension",
                                                 id=rid))
                        continue
                    pl = batch.payloads[i] if batch.payloads is not None else {}
                    fh.write(orjson.dumps({"id": rid, "vector": vecs[i], "payload": pl or {}},
                                          option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE))
                    summary.written += 1
                dl.write(rejected)
                summary.rejected += len(rejected)
                if progress is not None:
                    progress.advance(batch.read)
        tmp.replace(out)
    dl.close()
    if progress is not None:
        progress.stop()
    summary.dead_letter = str(dl.path) if dl.count else None
    summary.seconds = round(time.perf_counter() - t0, 3)
    return summary
