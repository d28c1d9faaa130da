"""``cortex qdrant health``: healthy, missing and wrong-key targets, with the exit codes scripts rely on.

The server side runs against the loopback Qdrant gRPC server of tests/qdrant_grpc_server started with an API key:
like Qdrant, it answers HealthCheck without the key and refuses everything else (UNAUTHENTICATED); "missing" is a
loopback port nothing listens on.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from bench_server_upload import free_port  # noqa: E402
from grpc_server_fixture import QdrantGrpcServer  # noqa: E402


def health(cli, *target: str):
    res = cli("qdrant", "health", "--json", *target)
    return res, orjson.loads(res.stdout)


def test_embedded_healthy_then_a_damaged_collection(cli, tmp_path: Path) -> None:
    store = tmp_path / "qs"
    np.save(tmp_path / "v.npy", np.random.default_rng(1).standard_normal((50, 8)).astype(np.float32))
    assert cli("qdrant", "migrate", "-s", tmp_path / "v.npy", "-t", "c", "--path", store).exit_code == 0
    res, rep = health(cli, "--path", store)
    assert res.exit_code == 0, res.output
    assert rep["healthy"] and rep["free_disk_bytes"] > 0
    assert [(c["name"], c["status"], c["points"]) for c in rep["collections"]] == [("c", "green", 50)]
    assert {c["name"] for c in rep["checks"]} == {"storage", "free disk", "collections"}
    res = cli("qdrant", "health", "--path", store)
    assert "healthy: " in res.stdout and "ok   storage" in res.stdout

    (store / "c" / "edge_config.json").write_text("{not json")
    res, rep = health(cli, "--path", store)
    assert res.exit_code == 1 and not rep["healthy"]
    assert rep["collections"][0]["status"] == "unreadable"
    res = cli("qdrant", "health", "--path", store)
    assert res.exit_code == 1 and "damaged" in res.stderr and "Traceback" not in res.output


def test_embedded_storage_that_is_a_file_or_not_yet_created(cli, tmp_path: Path) -> None:
    res, rep = health(cli, "--path", tmp_path / "fresh")  # setup/migrate create it: fine
    assert res.exit_code == 0 and "does not exist yet" in rep["checks"][0]["detail"]
    (tmp_path / "afile").write_text("x")
    res, rep = health(cli, "--path", tmp_path / "afile")
    assert res.exit_code == 1 and "is a file" in rep["checks"][0]["detail"]
    res, rep = health(cli, "--path", tmp_path / "fresh", "--min-free-mb", 1e12)  # more than any disk holds
    assert res.exit_code == 1 and not [c for c in rep["checks"] if c["name"] == "free disk"][0]["ok"]


def test_server_healthy_wrong_key_and_missing(cli, tmp_path: Path) -> None:
    with QdrantGrpcServer(tmp_path / "server", api_key="s3cret") as ep:
        target = ["--url", ep.url, "--grpc-port", ep.port]
        c = ep.client()
        from qdrant_client import models

        c.create_collection("docs", vectors_config=models.VectorParams(size=4, distance=models.Distance.DOT))
        c.close()
        res, rep = health(cli, *target, "--api-key", "s3cret")
        assert res.exit_code == 0, res.output
        assert rep["reachable"] and rep["authenticated"] and rep["version"]
        assert [(x["name"], x["status"]) for x in rep["collections"]] == [("docs", "green")]

        res, rep = health(cli, *target, "--api-key", "wrong")
        assert res.exit_code == 3 and rep["reachable"] and rep["authenticated"] is False
        assert rep["version"]  # HealthCheck needs no key, as on a server: the version is still known
        res = cli("qdrant", "health", *target, "--api-key", "wrong")
        assert res.exit_code == 3 and "refused the API key" in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.output

    port = free_port()  # nothing listens there
    res, rep = health(cli, "--url", f"http://127.0.0.1:{port}", "--grpc-port", port)
    assert res.exit_code == 3 and not rep["reachable"]
    res = cli("qdrant", "health", "--url", f"http://127.0.0.1:{port}", "--grpc-port", port)
    assert res.exit_code == 3 and "cannot reach Qdrant" in res.stderr


def test_local_mode_is_healthy(cli, tmp_path: Path) -> None:
    res, rep = health(cli, "--url", f"local:{tmp_path / 'loc'}")
    assert res.exit_code == 0, res.output
    assert rep["authenticated"] and rep["free_disk_bytes"] > 0
