"""``migrate --engine ray``: partitions as Ray tasks (a local Ray cluster) into the real-engine gRPC test
server; a Ray worker SIGKILLed mid-partition is retried by Ray and resumes, and the copy is exact."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers import vectors, write_jsonl

N, DIM = 4000, 16


@pytest.fixture(scope="module")
def ray_local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A local Ray cluster whose workers pause once at their 3rd batch (the file says which pid paused)."""
    import ray

    once = tmp_path_factory.mktemp("ray") / "paused-pid"
    env = {"CORTEX_TEST_PAUSE_AT": "batch:3", "CORTEX_TEST_PAUSE_ONCE": str(once),
           "CORTEX_TEST_PAUSE_SECONDS": "300", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             configure_logging=False, runtime_env={"env_vars": env})
    try:
        yield once
    finally:
        ray.shutdown()


def test_ray_worker_killed_mid_partition_then_exact(ray_local: Path, qdrant_server, tmp_path: Path) -> None:
    from cortex.api import migrate, verify
    from cortex.deploy.metrics import MetricsReporter

    src = write_jsonl(tmp_path / "x.jsonl", vectors(N, DIM, seed=9))
    box: dict = {}
    metrics = MetricsReporter()  # the driver's, as --metrics-port serves it: fed by every task

    def run() -> None:
        try:
            box["summary"] = migrate(str(src), "rayc", url=qdrant_server.url, grpc_port=qdrant_server.port,
                                     engine="ray", partitions=3, batch_size=100, checkpoint_seconds=0,
                                     state_dir=str(tmp_path / "state"), metrics=metrics)
        except BaseException as e:  # noqa: BLE001 - re-raised by the test below
            box["error"] = e

    t = threading.Thread(target=run)
    t.start()
    while not ray_local.exists() or not ray_local.read_text():
        assert t.is_alive(), box
        t.join(0.1)
    pid = int(ray_local.read_text())
    os.kill(pid, signal.SIGKILL)  # the worker is paused after its 3rd batch: mid-partition
    t.join(600)
    assert not t.is_alive()
    if "error" in box:
        raise box["error"]
    s = box["summary"]
    assert (s.read, s.written, s.rejected, s.duplicates) == (N, N, 0, 0)
    assert s.counts_add_up
    records = [json.loads(p.read_text()) for p in sorted((tmp_path / "state" / "pieces").rglob("*-of-*.json"))]
    assert len(records) == 3 and all(r["status"] == "done" for r in records)
    report = verify("rayc", source=str(src), full=True, url=qdrant_server.url, grpc_port=qdrant_server.port)
    assert report.ok, report.problems
    value = metrics.registry.get_sample_value
    assert value("cortex_migration_records_written_total", {"collection": "rayc"}) == N
    assert value("cortex_migration_records_read_total", {"collection": "rayc"}) == N
    # every batch upsert of every task reached the driver (the killed worker's batches too, so >=)
    assert value("cortex_migration_batch_seconds_count", {"collection": "rayc"}) >= N // 100
    assert value("cortex_migration_phase", {"collection": "rayc", "phase": "done"}) == 1


def test_cli_engine_ray_adds_up(ray_local: Path, qdrant_server, cli, tmp_path: Path) -> None:
    np.save(tmp_path / "m.npy", vectors(1000, DIM, seed=2))
    r = cli("qdrant", "migrate", "--source", "m.npy", "--target", "c", "--engine", "ray", "--partitions", "2",
            "--json", *qdrant_server.cortex_args)
    assert r.exit_code == 0, r.stderr
    d = json.loads(r.stdout)
    assert (d["read"], d["written"], d["counts_add_up"]) == (1000, 1000, True)
    r = cli("qdrant", "verify", "--collection", "c", "--source", "m.npy", "--full", *qdrant_server.cortex_args)
    assert r.exit_code == 0, r.stdout


def test_engine_ray_with_a_config_file(ray_local: Path, qdrant_server, cli, tmp_path: Path) -> None:
    """--config with --engine ray: the driver creates the collection from the file, --finish adds its indexes."""
    write_jsonl(tmp_path / "x.jsonl", vectors(600, DIM, seed=5))
    (tmp_path / "c.yaml").write_text(
        "version: 1\ncollections:\n  - name: rcfg\n"
        f"    vectors: {{size: {DIM}, distance: dot}}\n"
        "    hnsw: {m: 8, ef_construct: 40}\n"
        "    payload_indexes:\n      language: keyword\n")
    r = cli("qdrant", "migrate", "--source", "x.jsonl", "--target", "rcfg", "--engine", "ray", "--partitions", "2",
            "--config", "c.yaml", "--json", *qdrant_server.cortex_args)
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["written"] == 600
    client = qdrant_server.client()
    try:
        info = client.get_collection("rcfg")
        assert info.points_count == 600 and str(info.config.params.vectors.distance).lower().endswith("dot")
        assert (info.config.hnsw_config.m, info.config.hnsw_config.ef_construct) == (8, 40)
        assert str(info.payload_schema["language"].data_type).lower().endswith("keyword")
    finally:
        client.close()
    (tmp_path / "bad.yaml").write_text((tmp_path / "c.yaml").read_text().replace(f"size: {DIM}", "size: 3"))
    r = cli("qdrant", "migrate", "--source", "x.jsonl", "--target", "rbad", "--engine", "ray", "--partitions", "2",
            "--config", "bad.yaml", *qdrant_server.cortex_args)
    assert r.exit_code == 2 and "vectors.size is 3" in r.stderr
