"""`cortex qdrant migrate` end to end into embedded Qdrant Edge, for the migration guide's three formats."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest
from helpers import payload, vectors, write_jsonl, write_npy_dir

from cortex.ids import CORTEX_NAMESPACE
from cortex.targets.edge import EdgeTarget


def _stored(qpath, name, ids):
    with EdgeTarget(qpath) as t:
        return t.retrieve(name, ids, with_vectors=True)


def test_jsonl_migrates_with_mapped_ids_payloads_and_vectors(cli, tmp_path, qdrant_path):
    vecs = vectors(1200, 32)
    src = write_jsonl(tmp_path / "export.jsonl", vecs, ids=[f"id{i}" if i % 2 else i for i in range(1200)])
    res = cli("qdrant", "migrate", "--source", src, "--target", "code_vectors", "--path", qdrant_path, "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert (summary["read"], summary["written"], summary["rejected"]) == (1200, 1200, 0)
    assert summary["counts_add_up"] and summary["created"] and summary["distance"] == "cosine"
    uid = str(uuid.uuid5(CORTEX_NAMESPACE, "id1"))
    got = _stored(qdrant_path, "code_vectors", [0, uid])
    assert got[0].payload == payload(0)  # an int id is kept, nothing added
    assert got[uid].payload == {**payload(1), "source_id": "id1"}
    want = vecs[1] / np.linalg.norm(vecs[1])  # cosine: Qdrant stores unit vectors
    np.testing.assert_allclose(got[uid].vector, want, atol=1e-6)
    with EdgeTarget(qdrant_path) as t:
        info = t.collection_info("code_vectors")
    assert info.points == 1200 and info.dim == 32 and info.status == "green"


def test_rerun_is_idempotent_and_restart_never_duplicates(cli, tmp_path, qdrant_path):
    src = write_jsonl(tmp_path / "e.jsonl", vectors(300, 8), ids=[f"k{i}" for i in range(300)])
    args = ("qdrant", "migrate", "--source", src, "--target", "c", "--path", qdrant_path)
    assert cli(*args).exit_code == 0
    again = cli(*args)
    assert again.exit_code == 0 and "already migrated" in again.output
    assert cli(*args, "--restart").exit_code == 0
    with EdgeTarget(qdrant_path) as t:
        assert t.count("c") == 300


def test_npy_dir_tree_with_sidecars(cli, tmp_path, qdrant_path):
    vecs = vectors(90, 16, seed=3)
    root = write_npy_dir(tmp_path / "vectors", vecs)
    (root / "ws-0" / "orphan.npy").write_bytes(b"not numpy")  # corrupt file -> dead letter
    res = cli("qdrant", "migrate", "--source", root, "--target", "files", "--path", qdrant_path, "--json",
              "--distance", "dot")
    assert res.exit_code == 5, res.output  # finished, with a rejected record
    s = json.loads(res.stdout)
    assert (s["read"], s["written"], s["rejected"]) == (91, 90, 1)
    dead = [json.loads(x) for x in Path(s["dead_letter"]).read_text().splitlines()]
    assert dead[0]["location"].endswith("orphan.npy") and dead[0]["id"] == "orphan"
    uid = str(uuid.uuid5(CORTEX_NAMESPACE, "chunk_00007"))
    got = _stored(qdrant_path, "files", [uid])[uid]
    assert got.payload == {**payload(7), "source_id": "chunk_00007"}
    np.testing.assert_allclose(got.vector, vecs[7], atol=1e-6)  # dot: stored as is
    assert cli("qdrant", "verify", "-c", "files", "-s", root, "--path", qdrant_path, "--full").exit_code == 0


def test_npy_matrix_with_ids_and_payloads(cli, tmp_path, qdrant_path):
    vecs = vectors(1000, 24, seed=5)
    np.save(tmp_path / "m.npy", vecs)
    (tmp_path / "ids.txt").write_text("\n".join(f"doc/{i}" for i in range(1000)) + "\n")
    with open(tmp_path / "meta.jsonl", "w") as f:
        for i in range(1000):
            f.write(json.dumps(payload(i)) + "\n")
    res = cli("qdrant", "migrate", "-s", tmp_path / "m.npy", "-t", "m", "--ids", tmp_path / "ids.txt",
              "--payloads", tmp_path / "meta.jsonl", "--path", qdrant_path, "--distance", "euclid", "--json",
              "--batch-size", "128", "--workers", "3")
    assert res.exit_code == 0, res.output
    uid = str(uuid.uuid5(CORTEX_NAMESPACE, "doc/999"))
    got = _stored(qdrant_path, "m", [uid])[uid]
    assert got.payload == {**payload(999), "source_id": "doc/999"}
    np.testing.assert_allclose(got.vector, vecs[999], atol=1e-6)
    v = cli("qdrant", "verify", "-c", "m", "-s", tmp_path / "m.npy", "--ids", tmp_path / "ids.txt",
            "--payloads", tmp_path / "meta.jsonl", "--path", qdrant_path, "--full", "--json")
    assert v.exit_code == 0, v.output
    rep = json.loads(v.stdout)
    assert rep["ok"] and rep["checked"] == 1000 and rep["expected_count"] == 1000


def test_plain_matrix_ids_are_row_numbers(cli, tmp_path, qdrant_path):
    np.save(tmp_path / "m.npy", vectors(50, 4))
    assert cli("qdrant", "migrate", "-s", tmp_path / "m.npy", "-t", "rows", "--path", qdrant_path).exit_code == 0
    got = _stored(qdrant_path, "rows", [0, 49])
    assert set(got) == {0, 49} and got[49].payload == {}


def test_export_then_migrate_equals_direct_migrate(cli, tmp_path, qdrant_path):
    vecs = vectors(200, 12, seed=9)
    root = write_npy_dir(tmp_path / "vectors", vecs)
    res = cli("qdrant", "export", "-s", root, "-o", tmp_path / "export.jsonl", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["written"] == 200
    assert cli("qdrant", "migrate", "-s", root, "-t", "direct", "--path", qdrant_path).exit_code == 0
    assert cli("qdrant", "migrate", "-s", tmp_path / "export.jsonl", "-t", "via", "--path", qdrant_path).exit_code == 0
    with EdgeTarget(qdrant_path) as t:
        a = {p.id: p for page in t.scroll("direct", with_vectors=True) for p in page}
        b = {p.id: p for page in t.scroll("via", with_vectors=True) for p in page}
    assert a.keys() == b.keys() and len(a) == 200
    for k in a:
        assert a[k].payload == b[k].payload
        np.testing.assert_array_equal(a[k].vector, b[k].vector)


def test_dry_run_writes_nothing(cli, tmp_path, qdrant_path):
    src = write_jsonl(tmp_path / "e.jsonl", vectors(40, 8))
    res = cli("qdrant", "migrate", "-s", src, "-t", "dry", "--path", qdrant_path, "--dry-run", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["read"] == 40
    assert not (qdrant_path / "dry").exists()


def test_status_and_optimize(cli, tmp_path, qdrant_path):
    np.save(tmp_path / "m.npy", vectors(3000, 64))
    args = ("qdrant", "migrate", "-s", tmp_path / "m.npy", "-t", "big", "--path", qdrant_path,
            "--no-defer-indexing")
    assert cli(*args).exit_code == 0
    res = cli("qdrant", "status", "--path", qdrant_path, "--detailed", "--json")
    assert res.exit_code == 0
    (info,) = json.loads(res.stdout)
    assert info["name"] == "big" and info["points"] == 3000 and info["dim"] == 64 and info["segments"] >= 1
    assert info["disk_bytes"] > 0
    res = cli("qdrant", "optimize", "big", "--wait", "--path", qdrant_path, "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["status"] == "green"
    text = cli("qdrant", "status", "--path", qdrant_path, "--detailed")
    assert "big" in text.stdout and "3,000" in text.stdout


def test_deferred_indexing_builds_hnsw_at_the_end(tmp_path, qdrant_path):
    from cortex.api import migrate

    np.save(tmp_path / "m.npy", vectors(8000, 384))  # 12 MB > the 10 MB indexing threshold
    s = migrate(str(tmp_path / "m.npy"), "idx", path=str(qdrant_path), state_dir=str(tmp_path / "st"))
    assert s.written == 8000
    with EdgeTarget(qdrant_path) as t:
        info = t.collection_info("idx")
    assert info.optimizer["indexing_threshold"] == 10_000 and info.indexed_vectors == 8000


@pytest.mark.parametrize("distance", ["cosine", "dot", "euclid", "manhattan"])
def test_verify_passes_for_every_distance(cli, tmp_path, qdrant_path, distance):
    src = write_jsonl(tmp_path / "e.jsonl", vectors(100, 8, seed=1) * 3)
    assert cli("qdrant", "migrate", "-s", src, "-t", "d", "--path", qdrant_path, "--distance", distance).exit_code == 0
    assert cli("qdrant", "verify", "-c", "d", "-s", src, "--path", qdrant_path, "--full").exit_code == 0
