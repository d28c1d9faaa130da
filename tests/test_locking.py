"""Two migrations never write the same embedded collection or the same state at once.

Real processes: the first ``cortex qdrant migrate`` is held mid-run (``CORTEX_TEST_PAUSE_AT``),
the second must refuse at once with exit 4 and a message naming the collection (or the
migration) and the holder's pid; the first then finishes and the collection is exactly its source.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import orjson
import pytest
from cortex_proc import Run, state

from cortex.errors import CollectionBusyError
from cortex.state import StateStore, acquire_lock, is_locked, release_lock

N, DIM = 4_000, 16


def _jsonl(path: Path, seed: int) -> Path:
    vecs = np.random.default_rng(seed).normal(size=(N, DIM)).astype(np.float32)
    path.write_bytes(b"".join(orjson.dumps({"id": i, "vector": vecs[i], "payload": {"seed": seed}},
                                           option=orjson.OPT_SERIALIZE_NUMPY) + b"\n" for i in range(N)))
    return path


@pytest.fixture
def two_sources(tmp_path: Path) -> tuple[Path, Path]:
    return _jsonl(tmp_path / "a.jsonl", 1), _jsonl(tmp_path / "b.jsonl", 2)


def _args(source: Path, *extra: str) -> list[str]:
    return ["qdrant", "migrate", "--source", str(source), "--target", "c", "--path", "qd", "--batch-size", "100",
            *extra]


def _refused(tmp_path: Path, args: list[str]) -> str:
    r = Run(tmp_path, args)
    assert r.wait() == 4, r.stderr  # refused, not waiting for the lock (the holder is paused for a minute)
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("Error:"), err
    return err


def test_second_migration_into_the_same_embedded_collection_is_refused(two_sources, tmp_path, cli):
    a, b = two_sources
    first = Run(tmp_path, _args(a), pause="batch:5")
    first.wait_for("CORTEX_TEST_PAUSED batch:5")

    # Another source into the same collection, with its own state dir: the collection lock refuses it.
    err = _refused(tmp_path, _args(b, "--state-dir", "other-state"))
    assert "collection 'c' in qd is being written by another migration" in err and f"pid {first.pid}" in err
    # The same migration again (same state): refused as already running.
    err = _refused(tmp_path, _args(a))
    assert f"a migration of {a} into 'c' is already running (pid {first.pid})" in err
    # Reading the collection meanwhile is refused too (the shard is open in the first process).
    res = cli("qdrant", "status", "--path", str(tmp_path / "qd"))
    assert res.exit_code == 4 and "in use by another process" in res.stderr

    first.kill(signal.SIGTERM)  # ends the pause; the first migration stops cleanly
    assert first.wait() == 143
    assert "SIGTERM: finishing the batches in flight" in first.stderr and "Resume with" in first.stderr
    done = Run(tmp_path, [*_args(a), "--json"])
    assert done.wait() == 0, done.stderr
    assert json.loads(done.stdout)["read"] == N
    rep = cli("qdrant", "verify", "-c", "c", "--source", str(a), "--path", str(tmp_path / "qd"), "--full", "--json")
    assert rep.exit_code == 0 and json.loads(rep.stdout)["ok"]


def test_a_killed_migration_leaves_no_stale_lock(two_sources, tmp_path):
    a, _ = two_sources
    first = Run(tmp_path, _args(a, "--checkpoint-seconds", "0"), pause="batch:5")
    first.wait_for("CORTEX_TEST_PAUSED batch:5")
    first.kill()
    first.wait()
    rec = state(tmp_path)
    assert rec["pid"] == first.pid and rec["status"] == "running"
    again = Run(tmp_path, [*_args(a), "--json"])
    assert again.wait() == 0, again.stderr
    assert "resuming at 500 / 4,000" in again.stderr
    assert json.loads(again.stdout)["read"] == N


def test_lock_primitives(tmp_path: Path):
    path = tmp_path / "locks" / "x.lock"
    assert not is_locked(path)
    fd = acquire_lock(path, "busy (pid {pid})")
    try:
        assert path.read_text() == str(os.getpid())
        # flock locks belong to the open file: a second open in this process conflicts like another process would
        with pytest.raises(CollectionBusyError, match=r"busy \(pid \d+\)"):
            acquire_lock(path, "busy (pid {pid})")
    finally:
        release_lock(fd)
    release_lock(acquire_lock(path, "busy"))  # free again

    store = StateStore(tmp_path / "state")
    try:
        store.lock("m1", "migration m1")
        assert store.is_locked("m1") and not store.is_locked("m2")
        other = StateStore(tmp_path / "state")
        with pytest.raises(CollectionBusyError, match="migration m1 is already running"):
            other.lock("m1", "migration m1")
        other.close()
    finally:
        store.close()
    assert not StateStore(tmp_path / "state").is_locked("m1")
