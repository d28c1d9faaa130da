"""Snapshot and restore (embedded Qdrant Edge, real ``EdgeShard.unpack_snapshot``), and the server's refusals."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

from cortex import api
from cortex.errors import CheckFailed, CollectionBusyError, ConflictError, CortexError, TargetError
from cortex.snapshot.sparse_tar import add_file, data_regions
from tests.helpers import vectors, write_jsonl


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Migration state (.cortex) and ./qdrant_storage stay in the test's directory."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def migrated(tmp_path: Path) -> tuple[Path, Path]:
    src = write_jsonl(tmp_path / "src.jsonl", vectors(300, 16, seed=3))
    store = tmp_path / "qdrant_storage"
    api.migrate(str(src), "docs", path=str(store))
    return src, store


def test_snapshot_round_trip_equals_the_source(migrated, tmp_path):
    src, store = migrated
    snap = api.snapshot_create("docs", path=str(store))
    assert Path(snap.location).is_file() and snap.points == 300
    assert Path(snap.location + ".checksum").read_text().strip() == snap.checksum
    # Qdrant's shard-snapshot layout: the config, the WAL, and a tar per segment holding snapshot/files/...
    with tarfile.open(snap.location) as tar:
        names = tar.getnames()
        seg = [n for n in names if n.startswith("segments/") and n.endswith(".tar")]
        assert "edge_config.json" in names and seg
        with tarfile.open(fileobj=tar.extractfile(seg[0])) as inner:
            assert any(n.startswith("snapshot/files/") for n in inner.getnames())
    # Preallocated files go in as sparse members: the archive is a fraction of the shard on disk.
    assert snap.size < 0.25 * sum(f.stat().st_size for f in (store / "docs").rglob("*") if f.is_file())

    assert [s.name for s in api.snapshot_list("docs", path=str(store))] == [snap.name]
    r = api.snapshot_restore(snap.name, collection="docs_restored", from_collection="docs", path=str(store))
    assert r["points"] == 300 and r["checksum_checked"]
    rep = api.verify("docs_restored", source=str(src), full=True, path=str(store))
    assert rep.ok, rep.problems
    from cortex.targets.edge import EdgeTarget

    # The restored shard keeps working, updates of existing points included: the archive carries the WAL,
    # so operation numbers continue (without it Qdrant would silently skip updates of older points).
    t = EdgeTarget(store)
    old_id = next(iter(t.scroll("docs_restored", batch_size=1)))[0].id
    t.upsert("docs_restored", [10_000, old_id], vectors(2, 16, seed=9), [{"new": True}, {"updated": True}])
    t.flush("docs_restored")
    assert t.count("docs_restored") == 301
    assert t.retrieve("docs_restored", [old_id])[old_id].payload == {"updated": True}
    t.close()

    api.snapshot_delete(snap.name, collection="docs", path=str(store))
    assert api.snapshot_list("docs", path=str(store)) == []
    assert not Path(snap.location + ".checksum").exists()


def test_snapshot_cli_json_and_restore_refusals(migrated, tmp_path, cli):
    src, store = migrated
    r = cli("qdrant", "snapshot", "create", "--collection", "docs", "--path", store, "--output",
            tmp_path / "docs.snapshot", "--json")
    assert r.exit_code == 0, r.stderr
    made = json.loads(r.stdout)
    assert made["location"] == str(tmp_path / "docs.snapshot") and len(made["checksum"]) == 64
    listed = json.loads(cli("qdrant", "snapshot", "list", "--path", store, "--json").stdout)
    assert listed == []  # --output put it outside the snapshot directory

    # into an existing collection: a conflict, nothing touched
    r = cli("qdrant", "snapshot", "restore", "--snapshot", tmp_path / "docs.snapshot", "--collection", "docs",
            "--path", store)
    assert r.exit_code == 4 and "already exists" in r.stderr and len(r.stderr.strip().splitlines()) == 1

    # a wrong checksum: exit 1, one line, no collection created
    r = cli("qdrant", "snapshot", "restore", "--snapshot", tmp_path / "docs.snapshot", "--collection", "c2",
            "--path", store, "--checksum", "0" * 64)
    assert r.exit_code == 1 and "sha256 is" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (store / "c2").exists()

    # a flipped byte is caught by the .checksum beside the file
    data = bytearray((tmp_path / "docs.snapshot").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "docs.snapshot").write_bytes(bytes(data))
    r = cli("qdrant", "snapshot", "restore", "--snapshot", tmp_path / "docs.snapshot", "--collection", "c3",
            "--path", store)
    assert r.exit_code == 1 and "damaged" in r.stderr

    # not an archive at all (no checksum file): exit 2 naming the file
    bad = tmp_path / "bad.snapshot"
    bad.write_bytes(b"this is not a tar archive" * 40)
    r = cli("qdrant", "snapshot", "restore", "--snapshot", bad, "--collection", "c4", "--path", store)
    assert r.exit_code == 2 and str(bad) in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr

    # a tar that is not a shard snapshot
    other = tmp_path / "other.tar"
    with tarfile.open(other, "w") as tar:
        tar.add(str(src), "src.jsonl")
    r = cli("qdrant", "snapshot", "restore", "--snapshot", other, "--collection", "c5", "--path", store)
    assert r.exit_code == 2 and "not a shard snapshot" in r.stderr

    r = cli("qdrant", "snapshot", "create", "--collection", "nope", "--path", store)
    assert r.exit_code == 3 and "does not exist" in r.stderr
    assert "Example:" in cli("qdrant", "snapshot", "create", "--help").stdout


def test_snapshot_of_a_collection_in_use_elsewhere_is_refused(migrated, tmp_path):
    _, store = migrated
    ready = tmp_path / "holder.out"
    code = ("import sys, qdrant_edge; s = qdrant_edge.EdgeShard.load(sys.argv[1]); "
            "open(sys.argv[2], 'w').write('ready'); sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", code, str(store / "docs"), str(ready)], stdin=subprocess.PIPE)
    try:
        end = time.monotonic() + 60
        while not (ready.exists() and ready.read_text() == "ready"):
            assert holder.poll() is None, "the holder process exited"
            assert time.monotonic() < end, "the holder never opened the shard"
            time.sleep(0.05)
        with pytest.raises(CollectionBusyError, match="in use by another process"):
            api.snapshot_create("docs", path=str(store))
        assert api.snapshot_list("docs", path=str(store)) == []
    finally:
        holder.stdin.close()  # type: ignore[union-attr]
        holder.wait(timeout=60)
    assert api.snapshot_create("docs", path=str(store)).points == 300  # free again: it works


def test_server_local_mode_has_no_snapshots(tmp_path, cli):
    with pytest.raises(TargetError, match="local mode has no snapshots"):
        api.snapshot_create("c", url=f"local:{tmp_path / 'local'}")
    r = cli("qdrant", "snapshot", "list", "--url", f"local:{tmp_path / 'local'}")
    assert r.exit_code == 3 and "local mode has no snapshots" in r.stderr


def test_restore_missing_snapshot_is_one_line(tmp_path):
    with pytest.raises(CortexError, match="not found"):
        api.snapshot_restore("missing.snapshot", collection="x", path=str(tmp_path / "s"))
    with pytest.raises(CheckFailed):
        f = tmp_path / "x.snapshot"
        f.write_bytes(b"abc")
        api.snapshot_restore(str(f), collection="x", checksum="1" * 64, path=str(tmp_path / "s"))
    assert issubclass(ConflictError, CortexError)


def test_sparse_members_round_trip_with_many_holes(tmp_path):
    """More than four data regions needs GNU extension headers; tarfile must read back every byte."""
    f = tmp_path / "holey.bin"
    rng = np.random.default_rng(1)
    with open(f, "wb") as fh:
        fh.truncate(64 << 20)
        for k in range(30):  # 30 data islands in 64 MB of holes
            fh.seek(k * (2 << 20) + 4096)
            fh.write(rng.bytes(5000))
    regions = data_regions(f)
    if len(regions) == 1:  # a file system without holes: still a correct (regular) member
        assert regions == [(0, f.stat().st_size)]
    arc = tmp_path / "a.tar"
    with tarfile.open(arc, "w", format=tarfile.GNU_FORMAT) as tar:
        add_file(tar, f, "holey.bin")
    if len(regions) > 4:
        assert arc.stat().st_size < (4 << 20)
    with tarfile.open(arc) as tar:
        m = tar.getmember("holey.bin")
        assert m.size == f.stat().st_size
        assert tar.extractfile(m).read() == f.read_bytes()


def test_overwrite_replaces_only_after_the_snapshot_checks_out(migrated, tmp_path):
    src, store = migrated
    snap = api.snapshot_create("docs", path=str(store), output=str(tmp_path / "docs.snapshot"))
    other = write_jsonl(tmp_path / "other.jsonl", vectors(40, 16, seed=8))
    api.migrate(str(other), "target", path=str(store))
    broken = tmp_path / "broken.snapshot"
    broken.write_bytes(b"\0" * 4096)
    with pytest.raises(CortexError):
        api.snapshot_restore(str(broken), collection="target", overwrite=True, path=str(store))
    assert api.verify("target", source=str(other), full=True, path=str(store)).ok  # untouched
    r = api.snapshot_restore(snap.location, collection="target", overwrite=True, path=str(store))
    assert r["points"] == 300
    assert api.verify("target", source=str(src), full=True, path=str(store)).ok
    assert sorted(p.name for p in store.iterdir() if not p.name.startswith(".")) == ["docs", "target"]


def test_snapshot_and_restore_respect_the_migration_lock(migrated, tmp_path):
    """``migrate`` holds <path>/.cortex-locks/<collection>.lock; snapshot and restore wait for nobody."""
    from urllib.parse import quote

    from cortex.state import acquire_lock, release_lock

    _, store = migrated
    fd = acquire_lock(store / ".cortex-locks" / f"{quote('docs', safe='')}.lock", "held by the test")
    try:
        with pytest.raises(CollectionBusyError, match="being written by a migration"):
            api.snapshot_create("docs", path=str(store))
    finally:
        release_lock(fd)
    snap = api.snapshot_create("docs", path=str(store))
    fd = acquire_lock(store / ".cortex-locks" / "fresh.lock", "held by the test")
    try:
        with pytest.raises(CollectionBusyError):
            api.snapshot_restore(snap.location, collection="fresh", path=str(store))
        assert not (store / "fresh").exists()
    finally:
        release_lock(fd)


def test_snapshot_warns_when_a_migration_into_the_collection_is_unfinished(migrated, tmp_path, cli):
    import dataclasses

    from cortex.state import StateStore

    _, store = migrated
    state = StateStore(tmp_path / ".cortex")
    [rec] = StateStore(tmp_path / ".cortex").all()  # the fixture's migration, in the test's directory
    assert rec.collection == "docs" and rec.status == "done"
    state.put(dataclasses.replace(rec, status="interrupted"))
    state.close()
    r = cli("qdrant", "snapshot", "create", "--collection", "docs", "--path", store, "--state-dir",
            tmp_path / ".cortex")
    assert r.exit_code == 0, r.stderr
    assert "is interrupted" in r.stderr and "holds only what it wrote so far" in r.stderr
    assert api.snapshot_create("docs", path=str(store), output=str(tmp_path / "x.snapshot"),
                               state_dir=str(tmp_path / "nothing")).warnings == []
