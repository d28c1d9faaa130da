"""Migration state: checkpoints in SQLite, one row per (source, target, collection), plus locks.

What a checkpoint promises.  ``pipeline.run`` reports a batch only once the target has
acknowledged it (server: ``wait=True``; embedded: the update is in the shard's WAL, which
survives the death of the process, SIGKILL included) and every batch before it has been
acknowledged too.  The checkpoint is therefore never ahead of the target: resuming from it
re-sends at most the batches after it, which is harmless because upserts with
deterministic ids are idempotent.  Like Qdrant's own ``wait=True``, this guards against the
process dying (the tests SIGKILL it), not against the machine losing power: Cortex does not
flush (fsync) the shard before each checkpoint; doing so keeps the committing thread in
flushes for ~10% of the run and costs 1-5% of throughput (bench/bench_checkpoint.py,
``checkpoint+fsync``).  Instead a resume checks that the collection still holds at least
the points the checkpoint counts, which catches a collection that lost writes or was
changed or emptied since, and refuses with a message offering ``--restart``.

Alongside each row: the dead-letter file (rejected records) and the seen-ids log (8 bytes
per point id, for duplicate detection across a resume), both append-only; a checkpoint
records their sizes and a resume truncates them back to it, so they hold exactly the
records of the checkpointed prefix.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import os
import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from cortex.errors import CollectionBusyError, DiskFullError

DEFAULT_STATE_DIR = ".cortex"
SCHEMA_VERSION = 1
LOCK_WAIT_SECONDS = 0.5  # a lock held only briefly (a `migrations` listing probing it) is waited for


@dataclass
class MigrationRecord:
    id: str
    source: str
    source_kind: str
    target: str
    collection: str
    status: str  # running | interrupted | failed | done
    fingerprint: dict[str, Any]
    cursor: Any  # the source position after the last checkpointed batch (None: nothing yet)
    counts: dict[str, int]
    dead_letter: str | None
    dead_letter_offset: int
    total: int | None
    created_collection: bool
    started: float
    updated: float
    pid: int
    error: str | None = None
    command: str | None = None
    phase: str = "start"  # start | creating | loading | indexing | done
    seen_log: str | None = None
    seen_offset: int = 0
    where: str | None = None  # --where: this migration moves only that subset of the source

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MigrationRecord:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def migration_id(source: str, target: str, collection: str, where: str | None = None) -> str:
    """The identity of a migration; a ``--where`` subset (canonical text) is a migration of its own."""
    src = source if "://" in source else str(Path(source).resolve())
    tgt = target if "://" in target or target.startswith(("local:", ":memory:")) else str(Path(target).resolve())
    key = f"{src}\0{tgt}\0{collection}" + (f"\0where\0{where}" if where else "")
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def acquire_lock(path: Path, busy_message: str) -> int:
    """An exclusive ``flock`` on ``path`` (created when missing), holding our pid; its fd.

    The kernel drops the lock when the process dies, however it dies, so a SIGKILLed
    migration never leaves a stale lock behind.  ``busy_message`` may use ``{pid}``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise CollectionBusyError(busy_message.format(pid=holder or "?")) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def release_lock(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def is_locked(path: Path) -> bool:
    """Whether another process holds the lock at ``path`` (probes with a shared lock, at once released)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """``path`` opened for reading only; on a disk too full for SQLite's shared-memory file, as immutable."""
    for query in ("mode=ro", "immutable=1"):
        try:
            db = sqlite3.connect(f"file:{path}?{query}", uri=True, timeout=30, check_same_thread=False)
            db.execute("SELECT count(*) FROM migrations").fetchone()
            return db
        except sqlite3.OperationalError:
            if query == "immutable=1":
                raise
    raise AssertionError("unreachable")


class StateStore:
    """The state directory: ``state.sqlite``, ``locks/``, ``dead-letter/`` and ``seen/``."""

    def __init__(self, state_dir: str | Path = DEFAULT_STATE_DIR, read_only: bool = False) -> None:
        self.dir = Path(state_dir)
        self._locks: dict[str, int] = {}
        if read_only:  # a full disk must not stop anyone from reading the state
            self.db = _connect_read_only(self.dir / "state.sqlite")
            return
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.dir / "state.sqlite", timeout=30, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")  # durable across a process crash; see the module doc
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS migrations (id TEXT PRIMARY KEY, data TEXT NOT NULL, updated REAL)"
            )
            self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            self.db.commit()
        except (sqlite3.OperationalError, OSError) as e:
            from cortex import disk_space

            if disk_space.free_bytes(self.dir) < disk_space.MIB:
                raise DiskFullError(f"not enough disk space in {self.dir} for the migration state ({e}); free some "
                                    "space (or use --state-dir on another disk) and re-run") from e
            raise

    def get(self, mid: str) -> MigrationRecord | None:
        row = self.db.execute("SELECT data FROM migrations WHERE id = ?", (mid,)).fetchone()
        return MigrationRecord.from_dict(orjson.loads(row[0])) if row else None

    def put(self, rec: MigrationRecord) -> None:
        rec.updated = time.time()
        data = orjson.dumps(rec.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
        self.db.execute("INSERT OR REPLACE INTO migrations VALUES (?, ?, ?)", (rec.id, data.decode(), rec.updated))
        self.db.commit()

    def delete(self, mid: str) -> None:
        self.db.execute("DELETE FROM migrations WHERE id = ?", (mid,))
        self.db.commit()

    def all(self) -> list[MigrationRecord]:
        rows = self.db.execute("SELECT data FROM migrations ORDER BY updated DESC").fetchall()
        return [MigrationRecord.from_dict(orjson.loads(r[0])) for r in rows]

    def dead_letter_path(self, mid: str, collection: str) -> Path:
        return self.dir / "dead-letter" / f"{collection}-{mid}.jsonl"

    def seen_log_path(self, mid: str) -> Path:
        return self.dir / "seen" / f"{mid}.u64"

    # -- locking: one process per migration, and per embedded collection ----------------------
    def _lock_path(self, mid: str) -> Path:
        return self.dir / "locks" / f"{mid}.lock"

    def lock(self, mid: str, what: str) -> None:
        """Hold the lock of migration ``mid`` until :meth:`close`; ``what`` names it in the busy message."""
        self.lock_file(mid, self._lock_path(mid), f"{what} is already running (pid {{pid}}); "
                       "wait for it to finish or stop it first")

    def lock_file(self, key: str, path: Path, busy_message: str) -> None:
        """Hold a lock on any file (e.g. one next to an embedded collection) until :meth:`close`."""
        self._locks[key] = acquire_lock(path, busy_message)

    def unlock(self, key: str) -> None:
        fd = self._locks.pop(key, None)
        if fd is not None:
            release_lock(fd)

    def is_locked(self, mid: str) -> bool:
        """Whether migration ``mid`` is running (in this process or another one)."""
        return mid in self._locks or is_locked(self._lock_path(mid))

    def close(self) -> None:
        for key in list(self._locks):
            self.unlock(key)
        self.db.close()
