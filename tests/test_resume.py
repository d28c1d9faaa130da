"""Kill a real ``cortex qdrant migrate`` anywhere, run it again: the collection equals the source.

Every test runs the real command in a subprocess (``python -m cortex``) against embedded
Qdrant, interrupts it (SIGKILL / SIGINT) at a known point (``CORTEX_TEST_PAUSE_AT``, see
``cortex.pipeline.pause_for_test``) or at a seeded random moment, re-runs it, then checks
with ``cortex qdrant verify --full`` (count, every id, vectors, payloads) and that the final
counts and dead-letter file equal those of an uninterrupted run.
"""

from __future__ import annotations

import json
import random
import shlex
import shutil
import signal
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import orjson
import pytest
from cortex_proc import Run, state

from cortex.api import migrate
from cortex.errors import ConflictError
from cortex.targets.edge import EdgeTarget

N, DIM, BATCH = 20_000, 64, 200
COUNT_KEYS = ("read", "written", "rejected", "duplicates", "batches", "skipped")


def _write_jsonl(path: Path, n: int, seed: int = 0) -> None:
    """N records with payloads, plus what makes counts interesting: 3 bad lines and 4 duplicate ids."""
    vecs = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    lines = [orjson.dumps({"id": i, "vector": vecs[i], "payload": {"k": i % 7, "name": f"doc-{i}", "tags": [i % 3]}},
                          option=orjson.OPT_SERIALIZE_NUMPY) for i in range(n)]
    late = n * 3 // 4
    for j, i in enumerate((5, 777, 4321)):  # an id seen in an earlier batch: the last one wins
        lines[late + j] = orjson.dumps({"id": i, "vector": vecs[late + j], "payload": {"name": f"dup-{i}"}},
                                       option=orjson.OPT_SERIALIZE_NUMPY)
    lines[101] = orjson.dumps({"id": 100, "vector": vecs[101], "payload": {"name": "same batch"}},
                              option=orjson.OPT_SERIALIZE_NUMPY)
    lines[n // 8] = b'{"id": 2500, "vector": [1, 2'  # malformed JSON
    lines[n // 2] = orjson.dumps({"id": n // 2, "vector": [1.0] * (DIM - 1)})  # wrong dimension
    lines[n * 5 // 8] = b'{"id": 12345, "vector": [NaN]}'
    path.write_bytes(b"\n".join(lines) + b"\n")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("resume-data")
    _write_jsonl(d / "src.jsonl", N)
    vecs = np.random.default_rng(7).normal(size=(N, DIM)).astype(np.float32)
    np.save(d / "m.npy", vecs)
    (d / "meta.jsonl").write_bytes(b"".join(orjson.dumps({"row": i, "text": f"t{i}"}) + b"\n" for i in range(N)))
    return d


@pytest.fixture(scope="module")
def baseline(data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Counts and dead-letter records of an uninterrupted run of the JSONL source."""
    d = tmp_path_factory.mktemp("baseline")
    s = migrate(str(data / "src.jsonl"), "c", path=str(d / "qd"), state_dir=str(d / "state"), batch_size=BATCH,
                build_index=False)
    assert (s.rejected, s.duplicates) == (3, 4)
    return {"counts": {k: getattr(s, k) for k in COUNT_KEYS}, "dead_letter": _dead_letter(Path(s.dead_letter))}


def _dead_letter(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def migrate_args(source: Path, *extra: str) -> list[str]:
    return ["qdrant", "migrate", "--source", str(source), "--target", "c", "--path", "qd", "--batch-size",
            str(BATCH), *extra]


def finish(cwd: Path, args: list[str]) -> dict:
    """Run to completion with --json; the summary."""
    r = Run(cwd, [*args, "--json"])
    code = r.wait()
    assert code in (0, 5), r.stderr  # 5: done, with rejected records
    return json.loads(r.stdout)


def assert_exact(cli, cwd: Path, source: Path, *extra: str) -> None:
    """``cortex qdrant verify --full``: count, every id, vector and payload equal the source."""
    res = cli("qdrant", "verify", "--collection", "c", "--source", str(source), "--path", str(cwd / "qd"),
              "--full", "--json", *extra)
    rep = json.loads(res.stdout)
    assert res.exit_code == 0 and rep["ok"], rep["problems"][:5]
    assert rep["missing"] == rep["extra"] == rep["vector_mismatches"] == rep["payload_mismatches"] == 0


def assert_same_as_uninterrupted(summary: dict, baseline: dict, cwd: Path) -> None:
    assert {k: summary[k] for k in COUNT_KEYS} == baseline["counts"]
    assert summary["status"] == "done"
    assert _dead_letter(cwd / summary["dead_letter"]) == baseline["dead_letter"]


@pytest.mark.parametrize("point", ["create", "created", "batch:3", "batch:60"])
def test_sigkill_at_a_point_then_rerun_gives_exactly_the_source(point, data, baseline, tmp_path, cli):
    src = data / "src.jsonl"
    args = migrate_args(src, "--checkpoint-seconds", "0" if point == "batch:60" else "1")
    r = Run(tmp_path, args, pause=point)
    r.wait_for(f"CORTEX_TEST_PAUSED {point}")
    r.kill()
    assert r.wait() == -signal.SIGKILL
    rec = state(tmp_path)
    assert rec["status"] == "running"  # it never said otherwise: it was killed
    if point == "created":
        # As if killed inside EdgeShard.create while it laid out the WAL: a shard that no longer loads.
        for f in (tmp_path / "qd" / "c" / "wal").iterdir():
            f.write_bytes(b"")
    if point == "batch:60":
        assert rec["counts"]["read"] >= 60 * BATCH  # a checkpoint after every batch
    summary = finish(tmp_path, args)
    assert_same_as_uninterrupted(summary, baseline, tmp_path)
    if point == "batch:60":
        assert summary["resumed_from"] == rec["counts"]["read"]
    assert_exact(cli, tmp_path, src)


def test_sigkill_during_the_final_index_build(data, tmp_path, cli):
    """6,000 x 512 is above Qdrant's indexing threshold (10 MB): finish_load really builds HNSW (~1.5 s here)."""
    n = 6_000
    npy = tmp_path / "big.npy"
    np.save(npy, np.random.default_rng(5).normal(size=(n, 512)).astype(np.float32))
    args = ["qdrant", "migrate", "--source", str(npy), "--target", "c", "--path", "qd", "--batch-size", "500"]
    r = Run(tmp_path, args, pause="finish_load")  # the build runs in a thread while the main thread pauses
    r.wait_for("CORTEX_TEST_PAUSED finish_load")
    r.kill()  # at once: the build started in its thread just before the pause, and it takes ~1.5 s
    r.wait()
    rec = state(tmp_path)
    assert rec["phase"] == "indexing" and rec["counts"]["read"] == n  # all data checkpointed before the build
    shutil.copytree(tmp_path / "qd", tmp_path / "qd-at-kill")  # look at a copy: the re-run gets the shard as left
    with EdgeTarget(tmp_path / "qd-at-kill") as t:
        assert (t.collection_info("c").indexed_vectors or 0) < n  # killed before the index was complete
    summary = finish(tmp_path, args)
    assert (summary["read"], summary["written"], summary["resumed_from"]) == (n, n, n)
    with EdgeTarget(tmp_path / "qd") as t:
        info = t.collection_info("c")
        assert (info.points, info.indexed_vectors, info.status) == (n, n, "green")
    assert_exact(cli, tmp_path, npy)


def test_sigkill_repeatedly_at_random_moments(data, tmp_path, cli):
    """Several kills of the same migration (npy matrix + payloads) at seeded random progress points and times."""
    rnd = random.Random(20260125)
    args = ["qdrant", "migrate", "--source", str(data / "m.npy"), "--payloads", str(data / "meta.jsonl"),
            "--target", "c", "--path", "qd", "--batch-size", str(BATCH), "--checkpoint-seconds", "0"]
    thresholds = sorted(rnd.sample(range(1_000, N - 2_000, BATCH), 3))
    for at in thresholds:  # kill once the checkpoint passes a random point
        r = Run(tmp_path, args)
        while r.proc.poll() is None:
            try:
                if state(tmp_path)["counts"]["read"] >= at:
                    break
            except (sqlite3.Error, AssertionError):
                pass  # not created yet
            time.sleep(0.005)
        r.kill()
        r.wait()
        assert state(tmp_path)["counts"]["read"] >= at
    r = Run(tmp_path, args)  # and once after a random delay, wherever it is then
    time.sleep(rnd.uniform(0.5, 2.0))
    r.kill()
    r.wait()
    summary = finish(tmp_path, args)
    assert (summary["read"], summary["written"], summary["rejected"], summary["duplicates"]) == (N, N, 0, 0)
    assert summary["batches"] == N // BATCH
    assert_exact(cli, tmp_path, data / "m.npy", "--payloads", str(data / "meta.jsonl"))


def test_sigint_saves_checkpoint_and_prints_the_command_that_resumes(data, baseline, tmp_path, cli):
    src = data / "src.jsonl"
    r = Run(tmp_path, migrate_args(src, "--checkpoint-seconds", "30"), pause="batch:40")
    r.wait_for("CORTEX_TEST_PAUSED batch:40")
    r.kill(signal.SIGINT)
    assert r.wait() == 130
    err = r.stderr
    assert "SIGINT: finishing the batches in flight" in err
    rec = state(tmp_path)
    assert rec["status"] == "interrupted" and rec["counts"]["read"] >= 40 * BATCH  # saved on exit, not every 30 s
    assert rec["counts"]["read"] < N  # stopped at a batch boundary, not at the end
    lines = err.splitlines()
    command = lines[next(i for i, line in enumerate(lines) if line.startswith("Interrupted at")) + 1].strip()
    assert command.startswith("cortex qdrant migrate --source")
    assert "--restart" not in command

    # `cortex qdrant migrations` shows it as interrupted, with progress, rejects and the resume command.
    res = cli("qdrant", "migrations", "--json")
    (row,) = json.loads(res.stdout)
    assert (row["status"], row["progress"], row["total"]) == ("interrupted", rec["counts"]["read"], N)
    assert row["collection"] == "c" and row["source"] == str(src) and row["command"] == command
    assert row["rejected"] == rec["counts"]["rejected"] and row["dead_letter"].endswith(".jsonl")
    table = cli("qdrant", "migrations").stdout
    assert "interrupted" in table and f"{rec['counts']['read']:,} / {N:,}" in table

    resumed = Run(tmp_path, [*shlex.split(command)[1:], "--json"])  # the printed command, as printed
    assert resumed.wait() == 5, resumed.stderr  # 5: done, with the 3 rejected records
    assert f"resuming at {rec['counts']['read']:,} / {N:,}" in resumed.stderr
    summary = json.loads(resumed.stdout)
    assert_same_as_uninterrupted(summary, baseline, tmp_path)
    assert_exact(cli, tmp_path, src)
    (row,) = json.loads(cli("qdrant", "migrations", "--json").stdout)
    assert row["status"] == "done" and row["progress"] == N

    again = finish(tmp_path, migrate_args(src))  # done: not migrated twice
    assert {k: again[k] for k in COUNT_KEYS} == baseline["counts"]


def test_first_sigint_during_the_index_build_exits_130_and_the_rerun_builds(tmp_path, cli):
    """Ctrl-C during the final index build does not wait for it: exit 130, phase indexing; the re-run builds.

    6,000 x 512 is over the indexing threshold, so a real HNSW build runs in its thread; the
    pause stands for a build of hours (600 s here): only the Ctrl-C can end the wait for it.
    """
    n = 6_000
    npy = tmp_path / "big.npy"
    np.save(npy, np.random.default_rng(6).normal(size=(n, 512)).astype(np.float32))
    args = ["qdrant", "migrate", "--source", str(npy), "--target", "c", "--path", "qd", "--batch-size", "500"]
    r = Run(tmp_path, args, pause="finish_load", CORTEX_TEST_PAUSE_SECONDS="600")
    r.wait_for("CORTEX_TEST_PAUSED finish_load")
    r.kill(signal.SIGINT)
    assert r.wait(timeout=120) == 130, r.stderr  # a generous bound, far below the 600 s "build"
    assert f"Interrupted during the index build; all {n:,} records are saved" in r.stderr
    rec = state(tmp_path)
    assert (rec["status"], rec["phase"], rec["counts"]["read"]) == ("interrupted", "indexing", n)
    summary = finish(tmp_path, args)
    assert (summary["read"], summary["written"], summary["resumed_from"]) == (n, n, n)
    with EdgeTarget(tmp_path / "qd") as t:
        info = t.collection_info("c")
        assert (info.points, info.indexed_vectors, info.status) == (n, n, "green")
    assert_exact(cli, tmp_path, npy)


def test_changed_source_is_refused_then_restart_migrates_the_new_one(data, tmp_path, cli):
    src = tmp_path / "src.jsonl"
    _write_jsonl(src, N)
    args = migrate_args(src, "--checkpoint-seconds", "0")
    r = Run(tmp_path, args, pause="batch:50")
    r.wait_for("CORTEX_TEST_PAUSED batch:50")
    r.kill()
    r.wait()
    _write_jsonl(src, N - 5_000, seed=1)  # fewer records, other vectors: stale points must not survive
    refused = Run(tmp_path, args)
    assert refused.wait() == 4
    err = refused.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert f"{src} changed since the checkpoint" in err and "--restart" in err
    assert state(tmp_path)["counts"]["read"] >= 50 * BATCH  # the refusal changed nothing

    summary = finish(tmp_path, [*args, "--restart"])
    assert summary["read"] == N - 5_000 and summary["resumed_from"] == 0
    assert_exact(cli, tmp_path, src)  # no point of the old version left (extra == 0)


class _Progress:
    """A progress sink that sets ``event`` once ``n`` records are done: an in-process Ctrl-C."""

    def __init__(self, event, n: int) -> None:
        self.event, self.n, self.done = event, n, 0

    def start(self, total, done=0) -> None:
        self.done = done

    def advance(self, k: int) -> None:
        self.done += k
        if self.done >= self.n:
            self.event.set()

    def stop(self) -> None:
        pass


def test_resume_refuses_a_collection_that_lost_points_and_restarts_a_deleted_one(data, tmp_path):
    src, qd, st = str(data / "src.jsonl"), str(tmp_path / "qd"), str(tmp_path / "state")
    ev = threading.Event()
    s = migrate(src, "c", path=qd, state_dir=st, batch_size=BATCH, stop=ev, progress=_Progress(ev, 6_000))
    assert s.status == "interrupted" and s.read >= 6_000

    with EdgeTarget(qd) as t:  # the collection is emptied behind the migration's back
        t.delete_collection("c")
        t.create_collection("c", DIM, "cosine")
    with pytest.raises(ConflictError, match=r"holds 0 points but .* were written into it .* --restart"):
        migrate(src, "c", path=qd, state_dir=st, batch_size=BATCH)

    with EdgeTarget(qd) as t:  # deleted: nothing to mix with, so it starts over
        t.delete_collection("c")
    events: list[str] = []
    s = migrate(src, "c", path=qd, state_dir=st, batch_size=BATCH, on_event=events.append, build_index=False)
    assert any("no longer exists" in e for e in events) and s.resumed_from == 0 and s.read == N
