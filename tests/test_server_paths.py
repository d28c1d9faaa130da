"""The server paths of resume, verify --full, compare, benchmark and export / migrate from a server source,
each run against qdrant-client's local mode and against the loopback Qdrant gRPC server on Qdrant Edge
(``qdrant_endpoint``); then what needs a real server: cosine vectors stored as Qdrant normalizes them, four
client processes writing one collection at once, and Cortex's errors for what the server refuses.
"""

from __future__ import annotations

import json
import signal

import numpy as np
import orjson
import pytest
from cortex_proc import Run, state
from grpc_server_fixture import QdrantGrpcServer
from helpers import payload, vectors, write_jsonl

from cortex.api import benchmark, compare, migrate
from cortex.ids import map_id
from cortex.targets.edge import EdgeTarget


def _summary(res) -> dict:
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_sigkill_mid_migration_then_rerun_equals_the_source(qdrant_endpoint, tmp_path, cli):
    # small: qdrant-client's local mode takes seconds per batch
    src = write_jsonl(tmp_path / "src.jsonl", vectors(1000, 16, seed=1))
    args = ["qdrant", "migrate", "-s", str(src), "-t", "c", "--batch-size", "100", "--distance", "dot",
            "--checkpoint-seconds", "0", "--json", *qdrant_endpoint.cortex_args]
    run = Run(tmp_path, args, pause="batch:3")
    run.wait_for("CORTEX_TEST_PAUSED batch:3")
    run.kill(signal.SIGKILL)
    assert run.wait() == -signal.SIGKILL
    checkpoint = state(tmp_path)["counts"]["read"]
    assert checkpoint >= 300  # a checkpoint after every batch
    with qdrant_endpoint.target() as t:
        assert 300 <= t.count("c") < 1000  # three batches acknowledged, the rest not sent
    again = Run(tmp_path, args)
    assert again.wait() == 0, again.stderr
    s = json.loads(again.stdout)
    assert s["read"] == s["written"] + s["rejected"] + s["skipped"] == 1000 and s["resumed_from"] == checkpoint
    res = cli("qdrant", "verify", "-c", "c", "-s", src, "--full", "--tolerance", "0", "--json",
              *qdrant_endpoint.cortex_args)
    v = _summary(res)
    assert v["ok"] and v["checked"] == 1000 and v["extra"] == 0


def test_compare_and_benchmark(qdrant_endpoint, tmp_path, cli):
    np.save(tmp_path / "v.npy", vectors(300, 16, seed=2))
    migrate(str(tmp_path / "v.npy"), "c", distance="dot", state_dir=str(tmp_path / ".c"), **qdrant_endpoint.api_kwargs)
    r = compare("c", source=str(tmp_path / "v.npy"), num_queries=30, k=10, **qdrant_endpoint.api_kwargs)
    assert r.old.recall == 1.0 and r.qdrant.recall == 1.0 and r.overlap == 1.0 and r.ok
    assert r.score_drift_max is not None and r.score_drift_max < 1e-3
    b = benchmark("c", num_queries=30, concurrency=[1, 2], **qdrant_endpoint.api_kwargs)
    assert [run["concurrency"] for run in b.runs] == [1, 2] and all(run["qps"] > 0 for run in b.runs)
    res = cli("qdrant", "benchmark", "-c", "c", "--num-queries", "20", "--json", *qdrant_endpoint.cortex_args)
    assert _summary(res)["seed_block"]["min_ms"] > 0


def test_export_and_migrate_from_a_server_source(qdrant_endpoint, tmp_path, cli):
    vecs = vectors(200, 8, seed=3)
    src = write_jsonl(tmp_path / "src.jsonl", vecs)
    _summary(cli("qdrant", "migrate", "-s", src, "-t", "c", "--distance", "dot", "--json",
                 *qdrant_endpoint.cortex_args))
    source = qdrant_endpoint.source_args("c")
    res = cli("qdrant", "export", "-s", *source, "-o", tmp_path / "out.jsonl", "--json")
    assert res.exit_code == 0, res.output
    got = {r["payload"]["source_id"]: r for r in map(orjson.loads, (tmp_path / "out.jsonl").read_bytes().splitlines())}
    assert len(got) == 200
    for i in (0, 17, 199):
        r = got[f"doc-{i}"]
        assert r["id"] == map_id(f"doc-{i}")[0]
        assert np.asarray(r["vector"], np.float32).tobytes() == vecs[i].tobytes()
        assert {k: v for k, v in r["payload"].items() if k != "source_id"} == payload(i)
    # server -> embedded, proven against the original file
    _summary(cli("qdrant", "migrate", "-s", *source, "-t", "back", "--path", tmp_path / "qd", "--json"))
    res = cli("qdrant", "verify", "-c", "back", "-s", src, "--path", tmp_path / "qd", "--full", "--tolerance", "0")
    assert res.exit_code == 0, res.output


# -- what needs the real engine ----------------------------------------------------------------------
def test_cosine_vectors_are_stored_as_qdrant_normalizes_them(qdrant_server, tmp_path, cli):
    """verify --full on the server, and the stored floats equal bit for bit what embedded Qdrant stores."""
    vecs = vectors(500, 24, seed=4)
    src = write_jsonl(tmp_path / "src.jsonl", vecs)
    _summary(cli("qdrant", "migrate", "-s", src, "-t", "c", "--json", *qdrant_server.cortex_args))
    _summary(cli("qdrant", "migrate", "-s", src, "-t", "c", "--path", tmp_path / "qd", "--json"))
    res = cli("qdrant", "verify", "-c", "c", "-s", src, "--full", "--tolerance", "1e-6", *qdrant_server.cortex_args)
    assert res.exit_code == 0, res.output
    ids = [map_id(f"doc-{i}")[0] for i in range(500)]
    with qdrant_server.target() as server, EdgeTarget(tmp_path / "qd") as embedded:
        f1, v1, p1 = server.fetch_arrays("c", ids, 24)
        f2, v2, p2 = embedded.fetch_arrays("c", ids, 24)
    order1, order2 = np.argsort([str(i) for i in f1]), np.argsort([str(i) for i in f2])
    assert len(f1) == 500 and v1[order1].tobytes() == v2[order2].tobytes()
    assert np.allclose(np.linalg.norm(v1, axis=1), 1.0, atol=1e-6)
    assert [p1[i] for i in order1] == [p2[i] for i in order2]


def test_four_processes_migrate_four_parts_into_one_collection(qdrant_server, tmp_path, cli):
    n, dim = 8000, 32
    vecs = vectors(n, dim, seed=5)
    src = write_jsonl(tmp_path / "all.jsonl", vecs)
    lines = src.read_bytes().splitlines(keepends=True)
    parts = []
    for k in range(4):  # four disjoint parts, interleaved so every process writes all over the id space
        part = tmp_path / f"part{k}.jsonl"
        part.write_bytes(b"".join(lines[k::4]))
        parts.append(part)
    with qdrant_server.target() as t:  # created once up front: four creates at once would race
        t.create_collection("c", dim, "cosine", defer_indexing=True)
    runs = [Run(tmp_path, ["qdrant", "migrate", "-s", str(p), "-t", "c", "--batch-size", "250", "--json",
                           *qdrant_server.cortex_args]) for p in parts]
    for r in runs:
        assert r.wait(timeout=300) == 0, r.stderr
    assert sum(json.loads(r.stdout)["written"] for r in runs) == n
    res = cli("qdrant", "verify", "-c", "c", "-s", src, "--full", "--json", *qdrant_server.cortex_args)
    v = _summary(res)
    assert v["ok"] and v["checked"] == n and v["actual_count"] == n and v["extra"] == 0


def test_wrong_key_missing_collection_and_oversized_batch_get_one_line_errors(tmp_path, cli):
    src = write_jsonl(tmp_path / "src.jsonl", vectors(50, 512, seed=6))  # one point is ~2.3 kB on the wire
    with QdrantGrpcServer(tmp_path / "srv", api_key="s3cret", max_message_bytes=2000) as server:
        def one_error_line(res, code: int) -> str:
            assert res.exit_code == code, res.output
            assert "Traceback" not in res.output
            errors = [ln for ln in res.stderr.splitlines() if ln.startswith("Error:")]
            assert len(errors) == 1, res.stderr
            return errors[0]

        url = ["--url", server.url, "--grpc-port", str(server.port)]
        line = one_error_line(cli("qdrant", "migrate", "-s", src, "-t", "c", *url, "--api-key", "wrong"), 3)
        assert "refused the API key" in line and "--api-key" in line
        line = one_error_line(cli("qdrant", "status", *url), 3)  # no key at all
        assert "refused the API key" in line
        line = one_error_line(cli("qdrant", "verify", "-c", "missing", *server.cortex_args), 3)
        assert "missing" in line
        line = one_error_line(cli("qdrant", "migrate", "-s", src, "-t", "c", *server.cortex_args), 3)
        assert "larger than the server accepts" in line
        with server.target() as t:  # the collection was created; no point got in
            assert t.count("c") == 0


@pytest.mark.parametrize("raw", [True, False], ids=["raw-grpc-upload", "qdrant-client-upsert"])
def test_both_upload_paths_store_the_same_points(qdrant_server_module, raw, tmp_path):
    """Cortex's pre-serialized requests and qdrant-client's own upsert, read back from the engine."""
    qdrant_server_module.reset()
    vecs = vectors(300, 12, seed=7)
    vecs[0] = [-0.0, np.finfo(np.float32).max, np.finfo(np.float32).smallest_subnormal, -1e-38, 1.0, 0, 0, 0, 0,
               0, 0, 0]
    ids = list(range(299)) + ["7c9e6679-7425-40de-944b-e07fc1f90ae7"]
    payloads = [{**payload(i), "unicode": "日本語 ✓", "big": 2**63 - 1, "neg": -(2**63), "none": None}
                for i in range(300)]
    with qdrant_server_module.target(raw_grpc_upload=raw) as t:
        t.create_collection("c", 12, "dot", defer_indexing=False)
        t.upsert("c", ids, vecs, payloads)
        found, got, pls = t.fetch_arrays("c", ids, 12)
        assert t.count("c") == 300
    order = [found.index(i) for i in ids]
    assert got[order].tobytes() == vecs.tobytes()  # bit-exact: -0.0, subnormals, max float
    assert [pls[k] for k in order] == payloads


@pytest.mark.parametrize("kind", ["embedded", "edge-grpc"])
def test_search_filter_on_a_boolean_payload_field(kind, qdrant_server_module, tmp_path):
    """Qdrant Edge's Python binding reads ``MatchValue(True)`` as the integer 1: both targets must still match."""
    vecs = vectors(40, 4, seed=8)
    if kind == "embedded":
        target = EdgeTarget(tmp_path / "qd")
    else:
        qdrant_server_module.reset()
        target = qdrant_server_module.target()
    with target as t:
        t.create_collection("b", 4, "dot", defer_indexing=False)
        t.upsert("b", list(range(40)), vecs, [{"flag": i % 4 == 0, "n": i} for i in range(40)])
        [hits] = t.search("b", vecs[:1], k=40, filter={"flag": True})
        assert sorted(pid for pid, _ in hits) == list(range(0, 40, 4))
        [hits] = t.search("b", vecs[:1], k=40, filter={"flag": False, "n": 5})
        assert [pid for pid, _ in hits] == [5]
