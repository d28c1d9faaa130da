"""A full disk: checked before the engine runs out, one line saying how much is needed and where, exit 6.

Each test mounts a small tmpfs of its own (CI runs as root) and unmounts it.  A tmpfs behaves
like a full disk for the engine's mapped files (a write into a page it has no room for is a
SIGBUS), so these are the real failure.  If the mount is impossible the test fails: a skip
would hide the disk-full handling from CI.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from helpers import vectors

from cortex import disk_space
from cortex.api import migrate, status, verify
from cortex.errors import DiskFullError, ExitCode
from cortex.state import StateStore
from cortex.targets.edge import EdgeTarget

MIB = 1 << 20


class Tmpfs:
    def __init__(self, path: Path) -> None:
        self.path = path

    def mount(self, mib: int) -> None:
        self.path.mkdir(exist_ok=True)
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", str(self.path)],
                             capture_output=True, text=True)
        if res.returncode != 0:
            pytest.fail(f"cannot mount a tmpfs (run the tests as root): {res.stderr.strip()}")

    def resize(self, mib: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={mib}m", str(self.path)], check=True)

    def fill(self, leave: int) -> Path:
        """A ballast file that leaves ``leave`` bytes free."""
        ballast = self.path / "ballast"
        free = disk_space.free_bytes(self.path) + (ballast.stat().st_size if ballast.exists() else 0)
        with open(ballast, "wb") as f:
            f.truncate(0)
            chunk = b"\1" * MIB
            left = free - leave
            while left > 0:
                left -= f.write(chunk[: min(left, MIB)])
        return ballast


@pytest.fixture
def tmpfs(tmp_path: Path):
    fs = Tmpfs(tmp_path / "small-disk")
    yield fs
    subprocess.run(["umount", "-l", str(fs.path)], capture_output=True)


def _jsonl(path: Path, n: int, dim: int) -> Path:
    vecs = vectors(n, dim, seed=1)
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"id": i, "vector": vecs[i].round(5).tolist(), "payload": {"i": i}}) + "\n")
    return path


def test_no_room_for_a_new_collection_is_one_line_before_anything_is_written(tmpfs, tmp_path, cli):
    tmpfs.mount(20)
    src = _jsonl(tmp_path / "s.jsonl", 50, 8)
    res = cli("qdrant", "migrate", "-s", src, "-t", "c", "--path", tmpfs.path / "qd", "--state-dir", tmp_path / "st")
    assert res.exit_code == ExitCode.DISK_FULL == 6, res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert line == (f"Error: not enough disk space in {tmpfs.path / 'qd'}: creating collection 'c' needs 50.0 MiB "
                    f"free, {disk_space.human(disk_space.free_bytes(tmpfs.path))} available; free some space (or "
                    "use --path on a larger disk) and re-run")
    assert not (tmpfs.path / "qd" / "c" / "edge_config.json").exists()

    tmpfs.resize(120)  # room made: the same command works
    res = cli("qdrant", "migrate", "-s", src, "-t", "c", "--path", tmpfs.path / "qd", "--state-dir", tmp_path / "st")
    assert res.exit_code == 0, res.stderr


def test_read_only_commands_on_a_full_disk_answer_or_say_so_in_one_line(tmpfs, tmp_path, cli):
    tmpfs.mount(120)
    src = _jsonl(tmp_path / "s.jsonl", 50, 8)
    migrate(str(src), "c", path=str(tmpfs.path / "qd"), state_dir=str(tmp_path / "st"))
    tmpfs.fill(leave=0)  # completely full: the engine cannot even open a shard (it saves a small file)
    assert disk_space.free_bytes(tmpfs.path) == 0
    res = cli("qdrant", "status", "--path", tmpfs.path / "qd")
    assert res.exit_code == 6
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith(f"Error: not enough disk space in {tmpfs.path / 'qd' / 'c'}: opening collection 'c' "
                           "needs 1.0 MiB free, 0 B available; free some space")
    tmpfs.fill(leave=disk_space.OPEN_RESERVE_BYTES)  # nearly full: reading works
    for args in (["status"], ["status", "--detailed"], ["verify", "-c", "c", "-s", src, "--full"]):
        res = cli("qdrant", *args, "--path", tmpfs.path / "qd")
        assert res.exit_code == 0, (args, res.stderr)
    res = cli("qdrant", "migrations", "--state-dir", tmp_path / "st")
    assert res.exit_code == 0

    # A collection whose vector chunk was written but never mapped again (a tmpfs allocates it in full on open,
    # and a status would die of SIGBUS): refused in one line that says how much.
    fresh = tmpfs.path / "qd2"
    os.remove(tmpfs.path / "ballast")
    t = EdgeTarget(fresh)
    t.create_collection("d", 8, "cosine")
    t.upsert("d", list(range(50)), vectors(50, 8), None)
    t.close()
    tmpfs.fill(leave=disk_space.OPEN_RESERVE_BYTES)
    res = cli("qdrant", "status", "--path", fresh)
    assert res.exit_code == 6
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith(f"Error: not enough disk space in {fresh / 'd'}: opening collection 'd' needs 33.0 MiB")


def test_a_disk_filling_during_the_load_stops_with_the_checkpoint_and_resumes(tmpfs, tmp_path):
    n, dim = 8_000, 192  # 6 MiB of vectors (under the indexing threshold: no slow graph build); twice on disk
    src = _jsonl(tmp_path / "s.jsonl", n, dim)
    tmpfs.mount(56)
    qd, st = tmpfs.path / "qd", tmp_path / "st"
    with pytest.raises(DiskFullError, match=r"writing into 'c' needs .* free, .* available.*re-run the same command"):
        migrate(str(src), "c", path=str(qd), state_dir=str(st), batch_size=500, checkpoint_seconds=0)
    (rec,) = StateStore(st).all()
    assert rec.status == "failed" and rec.phase == "loading" and 0 < rec.counts["read"] < n
    assert rec.counts["read"] % 500 == 0  # stopped at a batch boundary, before the engine ran out
    assert disk_space.free_bytes(tmpfs.path) > disk_space.RESERVE_BYTES

    tmpfs.resize(400)
    events: list[str] = []
    s = migrate(str(src), "c", path=str(qd), state_dir=str(st), batch_size=500, on_event=events.append)
    assert (s.status, s.read, s.written, s.resumed_from) == ("done", n, n, rec.counts["read"])
    assert any(e.startswith(f"resuming at {rec.counts['read']:,}") for e in events)
    rep = verify("c", source=str(src), path=str(qd), full=True)
    assert rep.ok and rep.actual_count == n, rep.problems[:3]


class FillsUpBeforeTheBuild(EdgeTarget):
    """The real target; something else takes the disk while the load runs, leaving ``leave(need)`` bytes."""

    def __init__(self, path: Path, fs: Tmpfs, leave) -> None:
        super().__init__(path)
        self.fs, self.leave = fs, leave

    def finish_load(self, name: str) -> None:
        shard = self._open(name)
        shard.flush()
        need = disk_space.index_build_bytes(self._dir(name), shard.info().points_count, 256)
        self.needed = need
        self.fs.fill(leave=self.leave(need))
        super().finish_load(name)


def test_no_room_for_the_index_build_stops_in_the_indexing_phase_and_the_rerun_builds(tmpfs, tmp_path):
    n, dim = 12_000, 256  # over Qdrant's 10 MB indexing threshold: the HNSW graph is really built
    src = _jsonl(tmp_path / "s.jsonl", n, dim)
    tmpfs.mount(400)
    qd, st = tmpfs.path / "qd", tmp_path / "st"
    short = FillsUpBeforeTheBuild(qd, tmpfs, leave=lambda need: need // 2)
    with pytest.raises(DiskFullError, match=r"building the index of 'c' \(12,000 points\) needs .* free"):
        migrate(str(src), "c", target=short, state_dir=str(st))
    short.close()
    (rec,) = StateStore(st).all()
    assert rec.status == "failed" and rec.phase == "indexing" and rec.counts["read"] == n

    # Exactly the estimate free (plus a page): enough for the engine, which would refuse or crash otherwise.
    just = FillsUpBeforeTheBuild(qd, tmpfs, leave=lambda need: need + 4096)
    s = migrate(str(src), "c", target=just, state_dir=str(st))
    just.close()
    assert (s.status, s.read, s.written) == ("done", n, n)
    (info,) = status("c", path=str(qd))
    assert info.indexed_vectors == n and info.status == "green"
    rep = verify("c", source=str(src), path=str(qd), full=True)
    assert rep.ok, rep.problems[:3]


def test_out_of_space_writing_a_file_is_exit_6_not_a_traceback(tmpfs, tmp_path, cli):
    tmpfs.mount(5)
    src = tmp_path / "m.npy"
    np.save(src, vectors(20_000, 64))  # 5 MB as JSONL is more than the disk holds
    res = cli("qdrant", "export", "-s", src, "--output", tmpfs.path / "out.jsonl")
    assert res.exit_code == 6, res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("Error: ") and "no space left on the device; free some space and re-run" in line


def test_a_full_disk_under_the_state_dir_is_one_line_and_migrations_still_reads_it(tmpfs, tmp_path, cli):
    tmpfs.mount(120)
    src = _jsonl(tmp_path / "s.jsonl", 50, 8)
    st = tmpfs.path / "state"
    migrate(str(src), "c", path=str(tmp_path / "qd"), state_dir=str(st))
    tmpfs.fill(leave=0)
    res = cli("qdrant", "migrate", "-s", src, "-t", "d", "--path", tmp_path / "qd", "--state-dir", st)
    assert res.exit_code == 6
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith(f"Error: not enough disk space in {st} for the migration state")
    res = cli("qdrant", "migrations", "--state-dir", st, "--json")  # reading needs no space
    assert res.exit_code == 0, res.stderr
    (row,) = json.loads(res.stdout)
    assert (row["collection"], row["status"], row["progress"]) == ("c", "done", 50)
