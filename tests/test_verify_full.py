"""`verify --full` against a real embedded collection: a clean migration passes, a corrupted one is caught exactly."""

from __future__ import annotations

import json
import uuid

import numpy as np
import orjson
import pytest
from helpers import payload, vectors, write_jsonl

from cortex.api import migrate, verify
from cortex.ids import CORTEX_NAMESPACE
from cortex.sources import SourceOptions, open_source
from cortex.targets.edge import EdgeTarget
from cortex.verify import verify_against_source

N, DIM = 1500, 48


def _uid(s: str) -> str:
    return str(uuid.uuid5(CORTEX_NAMESPACE, s))


@pytest.fixture
def migrated(tmp_path, qdrant_path):
    """A JSONL source (string + int ids, nested payloads) migrated into collection 'c'."""
    vecs = vectors(N, DIM, seed=3) * 5.0  # not unit length: cosine normalization must be accounted for
    ids = [f"doc-{i}" if i % 2 else i for i in range(N)]
    src = write_jsonl(tmp_path / "export.jsonl", vecs, ids=ids)
    s = migrate(str(src), "c", path=str(qdrant_path), state_dir=str(tmp_path / ".cortex"), batch_size=400)
    assert s.written == N
    return src, vecs, ids


def test_clean_migration_verifies_full(migrated, qdrant_path):
    src, _, _ = migrated
    rep = verify("c", source=str(src), path=str(qdrant_path), full=True)
    assert rep.ok, rep.problems[:5]
    assert (rep.mode, rep.checked, rep.expected_count, rep.actual_count) == ("full", N, N, N)
    assert rep.missing == rep.extra == rep.vector_mismatches == rep.payload_mismatches == 0
    assert rep.problems == []


def test_corrupted_target_is_caught_exactly(migrated, qdrant_path):
    src, vecs, _ = migrated
    import qdrant_edge as q

    deleted = [4, _uid("doc-7"), 1200]
    payload_changed = {10: "workspace_id", _uid("doc-11"): "n"}
    perturbed = {20: 1e-3, _uid("doc-21"): 0.5}
    within_tol = 30  # a change below the tolerance is not a mismatch
    extra = [10**12, _uid("not-in-source")]
    with EdgeTarget(qdrant_path) as t:
        shard = t._open("c")
        shard.update(q.UpdateOperation.delete_points(deleted))
        shard.update(q.UpdateOperation.set_payload([10], {"workspace_id": "ws-changed"}))
        shard.update(q.UpdateOperation.set_payload([_uid("doc-11")], {"n": 11.5}))
        for pid, eps in [*perturbed.items(), (within_tol, 2e-6)]:
            cur = t.retrieve("c", [pid], with_vectors=True)[pid]
            v = cur.vector.copy()
            v[3] += eps
            t.upsert("c", [pid], v[None, :], [cur.payload])
        t.upsert("c", extra, vectors(2, DIM, seed=9), [{}, {"x": 1}])
        t.flush("c")
    rep = verify("c", source=str(src), path=str(qdrant_path), full=True, tolerance=1e-5)
    assert not rep.ok
    by_kind: dict[str, set] = {}
    for p in rep.problems:
        by_kind.setdefault(p.kind, set()).add(p.id)
    assert by_kind["missing"] == set(deleted)
    assert by_kind["payload"] == set(payload_changed)
    assert by_kind["vector"] == set(perturbed)
    assert by_kind["extra"] == set(extra)
    assert (rep.missing, rep.payload_mismatches, rep.vector_mismatches, rep.extra) == (3, 2, 2, 2)
    assert rep.actual_count == N - 3 + 2 and rep.expected_count == N and rep.checked == N
    detail = {p.id: p.detail for p in rep.problems}
    assert "workspace_id" in detail[10] and "ws-changed" in detail[10]
    assert "n: source=11 qdrant=11.5" in detail[_uid("doc-11")]
    # the report's problem list is capped, the counts are not
    capped = verify("c", source=str(src), path=str(qdrant_path), full=True, max_problems=2)
    assert len(capped.problems) == 2 and capped.problems_truncated == 8  # 9 points + the count
    assert (capped.missing, capped.extra, capped.vector_mismatches, capped.payload_mismatches) == (3, 2, 2, 2)


@pytest.mark.parametrize("distance", ["dot", "euclid"])
def test_non_cosine_vectors_compare_raw(tmp_path, qdrant_path, distance):
    vecs = vectors(300, 16, seed=5) * 3.0
    src = write_jsonl(tmp_path / "e.jsonl", vecs, ids=list(range(300)))
    migrate(str(src), "c", path=str(qdrant_path), distance=distance, state_dir=str(tmp_path / ".c"))
    assert verify("c", source=str(src), path=str(qdrant_path), full=True).ok
    with EdgeTarget(qdrant_path) as t:
        t.upsert("c", [5], (vecs[5] / np.linalg.norm(vecs[5]))[None, :], [payload(5)])  # normalized: differs now
    rep = verify("c", source=str(src), path=str(qdrant_path), full=True)
    assert [(p.kind, p.id) for p in rep.problems] == [("vector", 5)]


def test_later_duplicate_wins_across_batches(tmp_path, qdrant_path):
    """A source id repeated in a later batch: Qdrant holds the later record, verify must not flag the earlier."""
    vecs = vectors(50, 8, seed=2)
    path = tmp_path / "d.jsonl"
    with open(path, "wb") as f:
        for i in range(40):
            f.write(orjson.dumps({"id": i, "vector": vecs[i].tolist(), "payload": {"v": 1}}) + b"\n")
        for i in (3, 17):  # same ids, new vectors and payloads, 2 batches later
            f.write(orjson.dumps({"id": i, "vector": vecs[40 + i % 10].tolist(), "payload": {"v": 2}}) + b"\n")
    migrate(str(path), "c", path=str(qdrant_path), batch_size=10, state_dir=str(tmp_path / ".c"))
    with EdgeTarget(qdrant_path) as t, open_source(str(path)) as src:
        rep = verify_against_source(t, "c", src, full=True, batch_size=10)
    assert rep.ok, rep.problems
    assert rep.source_duplicates == 2 and rep.expected_count == 40 and rep.problems == []
    with EdgeTarget(qdrant_path) as t:  # and a real problem on a duplicated id is still reported once
        t.upsert("c", [3], vecs[0][None, :], [{"v": 2}])
    with EdgeTarget(qdrant_path) as t, open_source(str(path)) as src:
        rep = verify_against_source(t, "c", src, full=True, batch_size=10)
    assert [(p.kind, p.id) for p in rep.problems] == [("vector", 3)] and rep.vector_mismatches == 1


def test_npy_source_with_payloads(tmp_path, qdrant_path):
    m = vectors(700, 24, seed=4)
    np.save(tmp_path / "v.npy", m)
    (tmp_path / "p.jsonl").write_text("".join(json.dumps({"i": i}) + "\n" for i in range(700)))
    opts = SourceOptions(payloads=str(tmp_path / "p.jsonl"))
    migrate(str(tmp_path / "v.npy"), "c", path=str(qdrant_path), options=opts, state_dir=str(tmp_path / ".c"))
    rep = verify("c", source=str(tmp_path / "v.npy"), path=str(qdrant_path), options=opts, full=True)
    assert rep.ok and rep.checked == 700


def test_cli_full_lists_first_20_and_reports_all(cli, migrated, qdrant_path, tmp_path):
    src, _, _ = migrated
    import qdrant_edge as q

    with EdgeTarget(qdrant_path) as t:
        t._open("c").update(q.UpdateOperation.set_payload(list(range(0, 60, 2)), {"language": "rust"}))
    out = tmp_path / "verify.html"
    res = cli("qdrant", "verify", "--collection", "c", "--source", src, "--path", qdrant_path, "--full",
              "--report", out)
    assert res.exit_code == 1, res.output
    assert "FAILED" in res.stdout and "payload mismatches" in res.stdout
    assert res.stdout.count("payload ") >= 20 and "10 more (all in" in res.stdout
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["payload_mismatches"] == 30 and len(data["problems"]) == 30
    assert {p["id"] for p in data["problems"]} == set(range(0, 60, 2))
    page = out.read_text()
    assert page.startswith("<!doctype html>") and "<svg" in page and "Problems by kind" in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")  # self-contained
    assert page.count("<tr>") >= 30
    ok = cli("qdrant", "verify", "--collection", "c", "--source", src, "--path", qdrant_path, "--json")
    assert ok.exit_code == 1 and json.loads(ok.stdout)["mode"] == "sample"


def test_server_target_generic_path(tmp_path):
    """The same checks through qdrant-client (local mode) instead of the embedded shard."""
    vecs = vectors(120, 8, seed=6)
    src = write_jsonl(tmp_path / "s.jsonl", vecs, ids=[f"k{i}" for i in range(120)])
    url = f"local:{tmp_path / 'local'}"
    migrate(str(src), "c", url=url, state_dir=str(tmp_path / ".c"))
    from cortex.targets.server import ServerTarget

    with ServerTarget(url) as t, open_source(str(src)) as s:
        assert verify_against_source(t, "c", s, full=True).ok
        t.upsert("c", [_uid("k5")], vecs[6][None, :], [{**payload(5), "source_id": "k5"}])
    with ServerTarget(url) as t, open_source(str(src)) as s:
        rep = verify_against_source(t, "c", s, full=True)
    assert [(p.kind, p.id) for p in rep.problems] == [("vector", _uid("k5"))]


def test_files_warmed_before_open_are_the_ram_loaded_ones(tmp_path, qdrant_path):
    """EdgeTarget reads the files the engine copies into RAM on open (quantized codes; vectors not on disk)."""
    from cortex.targets.edge import ram_loaded_files

    x = vectors(400, 16, seed=3)
    np.save(tmp_path / "v.npy", x)
    for name, extra in (("q", "  quantization: {scalar: {type: int8, always_ram: true}}\n"), ("plain", "")):
        on_disk = "true" if extra else "false"
        (tmp_path / f"{name}.yaml").write_text(
            f"version: 1\ncollections:\n- name: {name}\n  vectors: {{size: 16, distance: dot, on_disk: {on_disk}}}\n"
            f"  hnsw: {{m: 8, ef_construct: 16}}\n{extra}  optimizers: {{indexing_threshold: 1}}\n")
        migrate(str(tmp_path / "v.npy"), name, path=str(qdrant_path), config=str(tmp_path / f"{name}.yaml"),
                state_dir=str(tmp_path / f".{name}"))
    quantized = ram_loaded_files(qdrant_path / "q")
    assert [f.name for f in quantized] == ["quantized.data"]  # on-disk vectors: only the codes
    assert [f.name for f in ram_loaded_files(qdrant_path / "plain")] == ["matrix.dat"]  # indexed, in RAM
    assert ram_loaded_files(tmp_path / "nothing-here") == []
    for name in ("q", "plain"):  # opened after the warm-up, the collection still verifies in full
        rep = verify(name, source=str(tmp_path / "v.npy"), path=str(qdrant_path), full=True)
        assert rep.ok and rep.checked == 400, name
