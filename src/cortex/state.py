"""Migration state: checkpoints in SQLite, one row per (source, target, collection), plus a lock.

A checkpoint is written only for batches the target acknowledged as durable, in source
order (see ``pipeline.run``), so resuming from it never skips data; batches after it are
re-sent, which is harmless because upserts with deterministic ids are idempotent.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cortex.errors import CollectionBusyError

DEFAULT_STATE_DIR = ".cortex"
SCHEMA_VERSION = 1


@dataclass
class MigrationRecord:
    id: str
    source: str
    source_kind: str
    target: str
    collection: str
    status: str  # running | interrupted | failed | done
    fingerprint: dict[str, Any]
    cursor: Any
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def migration_id(source: str, target: str, collection: str) -> str:
    src = source if "://" in source else str(Path(source).resolve())
    tgt = target if "://" in target or target.startswith(("local:", ":memory:")) else str(Path(target).resolve())
    return hashlib.sha256(f"{src}\0{tgt}\0{collection}".encode()).hexdigest()[:16]


class StateStore:
    def __init__(self, state_dir: str | Path = DEFAULT_STATE_DIR) -> None:
        self.dir = Path(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.dir / "state.sqlite", timeout=30, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS migrations (id TEXT PRIMARY KEY, data TEXT NOT NULL, updated REAL)"
        )
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        self.db.commit()
        self._locks: dict[str, int] = {}

    def get(self, mid: str) -> MigrationRecord | None:
        row = self.db.execute("SELECT data FROM migrations WHERE id = ?", (mid,)).fetchone()
        return MigrationRecord(**json.loads(row[0])) if row else None

    def put(self, rec: MigrationRecord) -> None:
        rec.updated = time.time()
        self.db.execute("INSERT OR REPLACE INTO migrations VALUES (?, ?, ?)",
                        (rec.id, json.dumps(rec.to_dict(), default=str), rec.updated))
        self.db.commit()

    def delete(self, mid: str) -> None:
        self.db.execute("DELETE FROM migrations WHERE id = ?", (mid,))
        self.db.commit()

    def all(self) -> list[MigrationRecord]:
        rows = self.db.execute("SELECT data FROM migrations ORDER BY updated DESC").fetchall()
        return [MigrationRecord(**json.loads(r[0])) for r in rows]

    def dead_letter_path(self, mid: str, collection: str) -> Path:
        return self.dir / "dead-letter" / f"{collection}-{mid}.jsonl"

    # -- locking: one process per migration --------------------------------------------
    def lock(self, mid: str, what: str) -> None:
        (self.dir / "locks").mkdir(exist_ok=True)
        fd = os.open(self.dir / "locks" / f"{mid}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise CollectionBusyError(
                f"{what} is already running (pid {holder or '?'}); wait for it or stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._locks[mid] = fd

    def unlock(self, mid: str) -> None:
        fd = self._locks.pop(mid, None)
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def is_locked(self, mid: str) -> bool:
        path = self.dir / "locks" / f"{mid}.lock"
        if mid in self._locks or not path.exists():
            return mid in self._locks
        fd = os.open(path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    def close(self) -> None:
        for mid in list(self._locks):
            self.unlock(mid)
        self.db.close()
