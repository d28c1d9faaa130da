"""``sync``: bring a migrated collection up to its source's current state, writing only the diff.

Per collection, the state directory holds ``cutover/<key>/`` (key: target + collection):

* ``state.cx``: the content hash of every point (see :mod:`.content_hashes`), written by
  ``migrate`` (through the pipeline's ``on_batch`` sink) and replaced (atomically) by each sync;
* ``meta.json``: which source and mode made it, and the incremental markers (pgvector's
  ``--since-column`` high-water mark, LanceDB's table fingerprint with its version);
* ``dirty.log``: while a sync runs, the ids it is about to upsert or delete (written before
  the target call).  A sync killed at any moment (SIGKILL included) leaves the previous state
  in place plus this log; the next sync re-sends those ids when the source still has them and
  deletes them when it does not, so it converges on the source.

A delete set is computed only once the whole new state is known (every id the source holds
now), so a point still in the source is never deleted.  Modes: ``state`` (one streaming scan
of the source, hashes compared with the state), ``target scan`` (no state: the target's points
are hashed first, a full scan of the target, once), ``since column`` (pgvector: only rows
with ``column >= last high-water mark`` plus the primary keys alone), ``unchanged`` (LanceDB:
same table version as the last sync, nothing read).

The scan is a three-stage pipeline so the two cores share it: a reader thread (read +
validate), a hashing thread (columnar content hashes, numpy) and this thread (``searchsorted``
lookups in the memory-mapped state; the changed rows gathered into full upsert batches).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import orjson

from cortex.collection_setup import vector_config
from cortex.cutover import content_hashes as ch
from cortex.errors import SourceError, TargetError
from cortex.ids import DEFAULT_ID_FIELD, map_ids
from cortex.pipeline import pause_for_test, write_batch
from cortex.retry import RetryPolicy
from cortex.run_ahead import run_ahead
from cortex.sources import SourceOptions, open_source
from cortex.sources.base import Source, redact_url
from cortex.state import DEFAULT_STATE_DIR, StateStore
from cortex.targets.base import Target, normalize_rows
from cortex.validate import Prepared

Event = Callable[[str], None]
DELETE_BATCH = 1000
READ_BATCH = 8192  # records per source batch (upserts still go --batch-size at a time)


@dataclass
class SyncSummary:
    source: str
    collection: str
    target: str
    mode: str = "state"
    added: int = 0
    changed: int = 0
    deleted: int = 0
    unchanged: int = 0
    rejected: int = 0
    read: int = 0
    seconds: float = 0.0
    dry_run: bool = False
    kept_deleted: int = 0  # gone from the source but kept (--no-delete)
    state_points: int = 0
    state_bytes: int = 0
    round: int = 1
    dead_letter: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def pending(self) -> int:
        return self.added + self.changed + self.deleted

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["pending"] = self.pending
        return d


# -- where a collection's state lives --------------------------------------------------------------
def _location_key(location: str) -> str:
    loc = location if "://" in location or location.startswith(("local:", ":memory:")) else \
        str(Path(location).resolve())
    if loc.startswith("local:"):
        loc = "local:" + str(Path(loc[len("local:"):]).resolve())
    return loc


def state_dir_for(state_dir: str | Path, location: str, collection: str) -> Path:
    key = hashlib.sha256(f"{_location_key(location)}\0{collection}".encode()).hexdigest()[:16]
    return Path(state_dir) / "cutover" / f"{quote(collection, safe='')}-{key}"


def read_meta(d: Path) -> dict[str, Any] | None:
    f = d / "meta.json"
    if not f.exists():
        return None
    try:
        return orjson.loads(f.read_bytes())
    except ValueError:
        return None


def write_meta(d: Path, meta: dict[str, Any]) -> None:
    tmp = d / "meta.json.tmp"
    tmp.write_bytes(orjson.dumps(meta, default=str, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, d / "meta.json")


def forget_state(state_dir: str | Path, location: str, collection: str) -> None:
    """Remove a collection's content-hash state (after ``retire``)."""
    import shutil

    d = state_dir_for(state_dir, location, collection)
    if d.exists():
        shutil.rmtree(d)


def _json_plain(v: Any) -> Any:
    return orjson.loads(orjson.dumps(v, default=str, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS))


class MigrateRecorder:
    """The pipeline sink ``migrate`` uses: logs each acknowledged batch's hashes; :meth:`finish` sorts them."""

    def __init__(self, state_dir: str | Path, location: str, collection: str, mid: str, fresh: bool,
                 whole: bool = True) -> None:
        self.dir = state_dir_for(state_dir, location, collection)
        self.location, self.collection = location, collection
        # A piece of the source (a --where subset, a partition) writes only part of the collection: it leaves the
        # collection without state, and the next sync hashes what the target holds once (and says so).
        self.whole = whole
        if fresh or not whole:  # the collection is being (re)written: until this migration finishes, no state
            (self.dir / "meta.json").unlink(missing_ok=True)
            ch.remove_state(self.dir / "state")
        self.log = ch.EntryLog(self.dir / f"migrate-{mid}.log", fresh=fresh)

    def add(self, p: Prepared) -> None:
        if p.ids:
            self.log.add(ch.entries(p.ids, ch.content_hashes(p.vectors, p.payloads, p.sparse, p.named), p.keys))

    def finish(self, source: Source, shown: str) -> None:
        self.log.close()
        if not self.whole:
            self.log.path.unlink(missing_ok=True)
            return
        w = ch.StateWriter(self.dir / "state.new")
        for chunk in ch.log_chunks(self.log.path):
            w.add(chunk)
        st = w.finish()
        n = len(st)
        st.close()
        ch.replace_state(self.dir / "state.new", self.dir / "state")
        write_meta(self.dir, {"collection": self.collection, "target": self.location, "source": shown,
                              "source_kind": source.kind, "made_by": "migrate", "points": n, "updated": time.time(),
                              "state_format": ch.FORMAT,
                              "fingerprint": _json_plain(source.fingerprint()) if source.kind == "lancedb" else None})
        (self.dir / "dirty.log").unlink(missing_ok=True)
        self.log.path.unlink(missing_ok=True)

    def close(self) -> None:
        self.log.close()


# -- sync ---------------------------------------------------------------------------------------------
def sync(source: str, collection: str, *, target: Target, source_type: str | None = None,
         options: SourceOptions | None = None, watch: float | None = None, no_delete: bool = False,
         since_column: str | None = None, dry_run: bool = False, batch_size: int = 500,
         id_field: str = DEFAULT_ID_FIELD, state_dir: str = DEFAULT_STATE_DIR, progress: Any = None,
         stop: threading.Event | None = None, on_event: Event | None = None,
         on_round: Callable[[SyncSummary], None] | None = None) -> SyncSummary:
    """Sync once (or every ``watch`` seconds until ``stop`` is set); returns the last round's summary."""
    say = on_event or (lambda _m: None)
    stop = stop or threading.Event()
    if batch_size < 1:
        raise SourceError("--batch-size must be at least 1")
    real = target.resolve(collection)
    if target.collection_info(real) is None:
        raise TargetError(f"collection '{collection}' does not exist at {target.location}; migrate it first "
                          "(`cortex qdrant migrate --source ... --target ...`)")
    if real != collection:
        say(f"'{collection}' is an alias of '{real}': syncing '{real}'")
    store = StateStore(state_dir)
    try:
        d = state_dir_for(state_dir, target.location, real)
        store.lock_file("sync", d.with_name(d.name + ".lock"), f"a sync of '{real}' is already running (pid {{pid}}); "
                        "wait for it to finish or stop it first")
        if target.kind == "embedded":
            store.lock_file("collection", Path(target.location) / ".cortex-locks" / f"{quote(real, safe='')}.lock",
                            f"collection '{real}' in {target.location} is being written by another process "
                            "(pid {pid}); wait for it to finish or stop it first")
        n = 0
        while True:
            n += 1
            s = _sync_once(source, real, target, d, source_type=source_type, options=options, no_delete=no_delete,
                           since_column=since_column, dry_run=dry_run, batch_size=batch_size, id_field=id_field,
                           progress=progress if n == 1 else None, stop=stop, say=say)
            s.round = n
            if on_round is not None:
                on_round(s)
            if not watch or stop.is_set() or stop.wait(watch):
                return s
    finally:
        store.close()


def _prepared(src: Source, dim: int, batch_size: int, id_field: str, sparse: set[str],
              named: dict[str, int], stop: threading.Event) -> Iterator[Prepared]:
    """Validated batches, read and validated ahead in the pipeline's reader thread (bounded queue).

    No cross-batch duplicate tracking: sync writes batch after batch, so the last record of an id
    still wins, in the target and in the state (its entry comes last).
    """
    from cortex.pipeline import PipelineOptions, _read_ahead

    opts = PipelineOptions(batch_size=batch_size, workers=2, id_field=id_field)
    yield from _read_ahead(src, opts, dim, None, threading.Event(), None, sparse, named)


def _comparable(vectors: np.ndarray, payloads: list[Any] | None, cosine: bool) -> np.ndarray:
    """Hashes that match between a source record and the same point read back from Qdrant (no state yet):
    cosine vectors normalized as Qdrant stores them, rounded to 5 decimals; the payload as is."""
    v = np.asarray(vectors, dtype=np.float32)
    if cosine:
        v = normalize_rows(v)
    return ch.content_hashes(np.round(v, 5).astype(np.float32) + np.float32(0.0), payloads)


def _scan_target(target: Target, collection: str, dim: int, cosine: bool, path: Path, where: Any = None) -> ch.State:
    w = ch.StateWriter(path)
    for pts in target.scroll(collection, batch_size=1000, with_vectors=True, with_payload=True, filter=where):
        from cortex.targets.base import stack_vectors

        vecs = stack_vectors([p.vector for p in pts], dim)
        w.add(ch.entries([p.id for p in pts], _comparable(vecs, [p.payload or {} for p in pts], cosine)))
    return w.finish()


def _sync_once(source: str, real: str, target: Target, d: Path, *, source_type: str | None,
               options: SourceOptions | None, no_delete: bool, since_column: str | None, dry_run: bool,
               batch_size: int, id_field: str, progress: Any, stop: threading.Event, say: Event) -> SyncSummary:
    t0 = time.perf_counter()
    shown = redact_url(source)
    s = SyncSummary(source=shown, collection=real, target=target.location, dry_run=dry_run)
    d.mkdir(parents=True, exist_ok=True)
    meta = read_meta(d)
    cinfo = target.collection_info(real)
    assert cinfo is not None
    cosine = (cinfo.distance or "") == "cosine" and target.normalizes_cosine
    src = open_source(source, source_type, options)
    writers: list[ch.StateWriter] = []
    try:
        sinfo = src.info()
        if sinfo.dim and cinfo.dim and sinfo.dim != cinfo.dim:
            raise SourceError(f"{shown}: vectors have {sinfo.dim} dimensions, collection '{real}' has {cinfo.dim}; "
                              "sync the source this collection was migrated from")
        s.warnings += sinfo.warnings
        fp = _json_plain(src.fingerprint()) if src.kind == "lancedb" else None
        old_base = d / "state"
        where_text = options.where if options is not None and options.where else None
        where = None
        if where_text:
            from cortex.where import parse

            where = parse(where_text)
        subset = (meta or {}).get("subset")  # the state covers only the points matching this --where
        if meta is not None and subset is not None and subset != where_text:
            say(f"the content-hash state of '{real}' covers only --where {subset!r}: hashing what the target holds")
            meta = None
        if meta is not None and meta.get("state_format") != ch.FORMAT:
            say(f"the content-hash state of '{real}' was written by an older Cortex (state format "
                f"{meta.get('state_format', 1)}, now {ch.FORMAT}): it is rebuilt once")
            meta = None
            ch.remove_state(old_base)
        if meta is None:
            s.mode = "target scan"
            say(f"no content-hash state for '{real}' (not written by Cortex, or its state is lost): hashing what "
                f"the target holds first, a full scan of {cinfo.points:,} points; later syncs use the state")
            old = _scan_target(target, real, cinfo.dim or sinfo.dim or 0, cosine, d / "scan", where)
            subset = where_text  # the new state covers the subset only
        else:
            old = ch.State(old_base)
            if fp is not None and meta.get("fingerprint") == fp and not (d / "dirty.log").exists():
                s.mode = "unchanged"
                s.unchanged = s.state_points = len(old)
                s.state_bytes = old.nbytes
                s.seconds = round(time.perf_counter() - t0, 3)
                say(f"{shown}: same table version as the last sync; nothing to read")
                return s
        dirty_entries = ch.read_log(d / "dirty.log")
        dirty_w = ch.StateWriter(d / "dirty.sorted")
        ch.remove_state(d / "dirty.sorted")
        if len(dirty_entries):
            dirty_w.add(dirty_entries)
            dirty_w.finish()
        dirty = ch.State(d / "dirty.sorted")  # empty (no file, no fsync) when nothing was interrupted
        if len(dirty):
            say(f"an earlier sync of '{real}' was interrupted: re-checking the {len(dirty):,} point(s) it was writing")
        incremental = None
        if since_column:
            if src.kind != "pgvector":
                raise SourceError(f"--since-column works with a pgvector source, not {src.kind}; drop it (other "
                                  "sources are synced by one streaming scan)")
            hwm = src.max_of(since_column)  # type: ignore[attr-defined]
            last = ((meta or {}).get("since") or {})
            if meta is not None and last.get("column") == since_column and last.get("value") is not None:
                incremental = last["value"]
                s.mode = "since column"
                base = src
                while getattr(base, "inner", None) is not None:  # through the layout / --where wrappers
                    base = base.inner
                base.since = (since_column, incremental)  # type: ignore[attr-defined]
            else:
                say(f"--since-column {since_column}: no high-water mark recorded yet; this sync reads the whole "
                    "table once and records it")
        sparse_cfg, named_cfg = vector_config(sinfo)
        log = None if dry_run else ch.EntryLog(d / "dirty.log")
        policy = RetryPolicy()
        new_w = ch.StateWriter(d / ("state.scan" if incremental is not None else "state.new"))
        writers += [new_w, dirty_w]
        written = 0
        if progress is not None:
            progress.start(None if incremental is not None else sinfo.count)
        try:
            pending = _Pending()

            def send(final: bool = False) -> None:
                nonlocal written
                while pending.n >= batch_size or (final and pending.n):
                    part, e_part, existed = pending.take(batch_size)
                    assert log is not None
                    log.add(e_part)  # before the write: a kill after it re-checks these ids
                    target.before_overwrite(real, [part.ids[i] for i in np.flatnonzero(existed).tolist()])
                    pause_for_test(f"sync-overwrite:{written + 1}")  # a test kills it here
                    write_batch(target, real, part, policy)
                    written += 1
                    pause_for_test(f"sync-batch:{written}")  # a test kills it here

            batches = _prepared(src, cinfo.dim or sinfo.dim or 0, max(batch_size, READ_BATCH), id_field,
                                set(sparse_cfg), {k: v["size"] for k, v in named_cfg.items()}, stop)
            for p, e, cmp in run_ahead(_mapped(_hasher(s.mode == "target scan", cosine), batches), 4,
                                       "cortex-sync-hash"):
                s.read += p.counts.read
                s.rejected += p.counts.rejected
                if progress is not None:
                    progress.advance(p.counts.read)
                if not p.ids:
                    continue
                found, oldh = old.lookup(e["k"])
                differs = found & (oldh != cmp)
                if s.mode == "target scan" and cosine and differs.any():
                    differs[differs] = ~_same_in_target(target, real, p, np.flatnonzero(differs))
                if len(dirty):
                    differs |= found & dirty.contains(e["k"])
                n_new = len(found) - int(found.sum())
                n_diff = int(differs.sum())
                s.added += n_new
                s.changed += n_diff
                s.unchanged += len(found) - n_new - n_diff
                if (n_new or n_diff) and not dry_run:
                    if not pending.fits(p):
                        send(final=True)
                    pending.add(p, np.flatnonzero(~found | differs), e, found)
                    send()
                new_w.add(e)
            if not dry_run:
                send(final=True)
        finally:
            if progress is not None:
                progress.stop()
        if incremental is not None:
            # rows not changed since the mark are as they were: carry their entries over while the primary
            # keys still exist; the ids alone tell what was deleted
            pk = _primary_keys(src, batch_size, d / "pk")
            changed = new_w.finish()
            final_w = ch.StateWriter(d / "state.new")
            writers.append(final_w)
            for c in old.chunks():
                final_w.add(c[pk.contains(c["k"])])
            for c in changed.chunks():  # added after the carried-over entries: they win
                final_w.add(c)
            changed.close()
            new = final_w.finish()
            s.unchanged = len(new) - s.added - s.changed
            gone_src = pk
        else:
            new = new_w.finish()
            gone_src = new
        gone = list(old.missing_from(gone_src)) + [c[~old.contains(c["k"])] for c in dirty.missing_from(gone_src)]
        if where is not None and subset is None:
            # --where against a whole-collection state: only points the target holds in the subset may go; the
            # state's other entries are carried over as they are
            in_subset = _target_ids(target, real, where, d / "subset")
            carried = [c[~in_subset.contains(c["k"])] for c in old.missing_from(new)]
            gone = [g for g in (c[in_subset.contains(c["k"])] for c in gone) if len(g)]
            if any(len(c) for c in carried):
                carry_w = ch.StateWriter(d / "state.carry")
                writers.append(carry_w)
                for c in carried:
                    carry_w.add(c)
                for c in new.chunks():  # after the carried entries: they win
                    carry_w.add(c)
                new.close()
                carry_w.finish().close()
                ch.replace_state(d / "state.carry", d / "state.new")
                new = ch.State(d / "state.new")
        n_gone = sum(len(c) for c in gone)
        if no_delete:
            s.kept_deleted = n_gone
            if n_gone:
                keep_w = ch.StateWriter(d / "state.keep")
                writers.append(keep_w)
                for c in new.chunks():
                    keep_w.add(c)
                for c in gone:
                    keep_w.add(c)
                new.close()
                new = keep_w.finish()
                ch.replace_state(d / "state.keep", d / "state.new")
                new = ch.State(d / "state.new")
        else:
            for c in gone:
                for lo in range(0, len(c), DELETE_BATCH):
                    part = c[lo:lo + DELETE_BATCH]
                    if not dry_run:
                        assert log is not None
                        log.add(part)
                        target.delete_ids(real, ch.point_ids(part))
                    s.deleted += len(part)
                    if not dry_run:
                        pause_for_test(f"sync-delete:{-(-s.deleted // DELETE_BATCH)}")
        s.state_points, s.state_bytes = len(new), new.nbytes
        if s.mode == "target scan":
            s.warnings.append("synced by hashing what the target holds (a full scan of the target); "
                              "later syncs of this collection read only the source")
        if not dry_run:
            if log is not None:
                log.close()
            target.flush(real)
            new.close()
            old.close()
            ch.replace_state(d / "state.new", old_base)
            m = dict(meta or {})
            m.update(collection=real, target=target.location, source=shown, source_kind=src.kind, made_by="sync",
                     state_format=ch.FORMAT, points=s.state_points, updated=time.time(), fingerprint=fp)
            if since_column:
                m["since"] = {"column": since_column, "value": hwm}
            m["subset"] = subset
            write_meta(d, m)
            (d / "dirty.log").unlink(missing_ok=True)
        else:
            ch.remove_state(d / "state.new")
        s.seconds = round(time.perf_counter() - t0, 3)
        return s
    finally:
        src.close()
        for w in writers:
            w.discard()
        for tmp in ("scan", "pk", "subset", "dirty.sorted", "state.keep", "state.scan", "state.carry"):
            ch.remove_state(d / tmp)


COSINE_ATOL = 1e-6  # normalized components: float32 rounding of Qdrant's normalization differs by a few ulps


def _same_in_target(target: Target, collection: str, p: Prepared, idx: np.ndarray) -> np.ndarray:
    """For rows ``idx`` whose rounded hashes differ from the target's (no state yet, cosine): is the target's
    point the same after all?  Vectors within ``COSINE_ATOL`` of the source's normalized one (Qdrant normalizes
    in float32, Cortex's numpy may differ in the last bit, and a value next to a rounding boundary then rounds
    the other way), payloads equal as canonical JSON."""
    ids = [p.ids[i] for i in idx.tolist()]
    stored = target.retrieve(collection, ids, with_vectors=True)
    src = normalize_rows(np.asarray(p.vectors[idx], dtype=np.float32))
    same = np.zeros(len(idx), bool)
    for j, (pid, i) in enumerate(zip(ids, idx.tolist(), strict=True)):
        sp = stored.get(pid)
        if sp is None or sp.vector is None or p.sparse or p.named:
            continue
        v = np.asarray(sp.vector, dtype=np.float32)
        pl = p.payloads[i] if p.payloads is not None else None
        same[j] = (v.shape == src[j].shape and bool(np.allclose(v, src[j], rtol=0, atol=COSINE_ATOL))
                   and orjson.dumps(pl or {}, option=ch._JSON) == orjson.dumps(sp.payload or {}, option=ch._JSON))
    return same


def _mapped(fn: Callable[[Any], Any], items: Iterator[Any]) -> Iterator[Any]:
    """``fn`` of each item; closing this closes ``items`` (the reader thread behind them stops too)."""
    with contextlib.closing(items):  # type: ignore[type-var]
        for it in items:
            yield fn(it)


def _hasher(target_scan: bool, cosine: bool) -> Callable[[Prepared], tuple[Prepared, np.ndarray, np.ndarray]]:
    """Per batch: (batch, its state entries, the hashes to compare with the old state)."""
    def run(p: Prepared) -> tuple[Prepared, np.ndarray, np.ndarray]:
        if not p.ids:
            return p, np.zeros(0, ch.ENTRY), np.zeros(0, np.uint64)
        hashes = ch.content_hashes(p.vectors, p.payloads, p.sparse, p.named)
        cmp = _comparable(p.vectors, p.payloads, cosine) if target_scan else hashes
        return p, ch.entries(p.ids, hashes, p.keys), cmp
    return run


class _Pending:
    """The new and changed rows of several batches, gathered into upserts of ``--batch-size`` points,
    with their state entries and whether each point exists in the target already."""

    def __init__(self) -> None:
        self.parts: list[tuple[Prepared, np.ndarray, np.ndarray]] = []
        self.n = 0

    @staticmethod
    def _shape(p: Prepared) -> tuple[Any, ...]:
        return (p.payloads is None, tuple(sorted(p.sparse or ())), tuple(sorted(p.named or ())))

    def fits(self, p: Prepared) -> bool:
        """Whether ``p``'s rows can join the gathered ones in one upsert (same payload / vector kinds)."""
        return not self.parts or self._shape(self.parts[0][0]) == self._shape(p)

    def add(self, p: Prepared, idx: np.ndarray, e: np.ndarray, existed: np.ndarray) -> None:
        self.parts.append((_subset(p, idx), e[idx], existed[idx]))
        self.n += len(idx)

    def take(self, most: int) -> tuple[Prepared, np.ndarray, np.ndarray]:
        """Up to ``most`` gathered rows (in source order) as one batch, with their state entries and flags."""
        out: list[tuple[Prepared, np.ndarray, np.ndarray]] = []
        got = 0
        while self.parts and got < most:
            p, e, x = self.parts[0]
            k = min(most - got, len(p.ids))
            if k < len(p.ids):
                idx = np.arange(len(p.ids))
                self.parts[0] = (_subset(p, idx[k:]), e[k:], x[k:])
                p, e, x = _subset(p, idx[:k]), e[:k], x[:k]
            else:
                self.parts.pop(0)
            out.append((p, e, x))
            got += k
        self.n -= got
        first = out[0][0]
        if len(out) == 1:
            return first, out[0][1], out[0][2]
        ps = [p for p, _, _ in out]
        joined = replace(first, ids=[i for p in ps for i in p.ids], vectors=np.concatenate([p.vectors for p in ps]),
                         payloads=None if first.payloads is None else [x for p in ps for x in p.payloads or ()],
                         sparse={k: [r for p in ps for r in (p.sparse or {})[k]] for k in first.sparse}
                         if first.sparse else None,
                         named={k: np.concatenate([(p.named or {})[k] for p in ps]) for k in first.named}
                         if first.named else None, keys=None)
        return joined, np.concatenate([e for _, e, _ in out]), np.concatenate([x for _, _, x in out])


def _subset(p: Prepared, idx: np.ndarray) -> Prepared:
    take = idx.tolist()
    return replace(p, ids=[p.ids[i] for i in take], vectors=p.vectors[idx],
                   payloads=[p.payloads[i] for i in take] if p.payloads is not None else None,
                   sparse={k: [v[i] for i in take] for k, v in p.sparse.items()} if p.sparse else None,
                   named={k: a[idx] for k, a in p.named.items()} if p.named else None,
                   keys=p.keys[idx] if p.keys is not None else None)


def _target_ids(target: Target, collection: str, where: Any, path: Path) -> ch.State:
    """The ids of the target's points matching a --where expression (ids only: no vectors, no payloads)."""
    w = ch.StateWriter(path)
    for pts in target.scroll(collection, batch_size=1000, with_vectors=False, with_payload=False, filter=where):
        w.add(ch.entries([p.id for p in pts], np.zeros(len(pts), np.uint64)))
    return w.finish()


def _primary_keys(src: Source, batch_size: int, path: Path) -> ch.State:
    w = ch.StateWriter(path)
    for ids in src.id_batches(max(batch_size, 10_000)):  # type: ignore[attr-defined]
        qids, _ = map_ids(ids)
        w.add(ch.entries(qids, np.zeros(len(qids), np.uint64)))
    return w.finish()
