"""`cortex qdrant benchmark`: the migration guide's latency block, QPS per concurrency, ef sweep, old vs Qdrant."""

from __future__ import annotations

import json
import re

import faiss
import numpy as np
import qdrant_edge as q
from helpers import vectors

from cortex.api import benchmark, migrate


def _faiss(tmp_path, n=2000, dim=16):
    index = faiss.index_factory(dim, "HNSW16", faiss.METRIC_L2)
    index.add(vectors(n, dim, seed=8))
    path = tmp_path / "vectors.index"
    faiss.write_index(index, str(path))
    return path


def test_seed_block_and_qps_per_concurrency(cli, tmp_path, qdrant_path):
    np.save(tmp_path / "v.npy", vectors(1000, 16))
    migrate(str(tmp_path / "v.npy"), "c", path=str(qdrant_path), state_dir=str(tmp_path / ".c"))
    res = cli("qdrant", "benchmark", "--collection", "c", "--path", qdrant_path, "--num-queries", "200",
              "--concurrency", "1,2")
    assert res.exit_code == 0, res.output
    for label in ("Min", "Max", "Avg", "P50", "P95", "P99"):
        assert re.search(rf"^{label} latency:  \d+\.\d\d ms$", res.stdout, re.M), label
    assert "QPS" in res.stdout and "sampled uniformly from the collection" in res.stdout
    d = json.loads(cli("qdrant", "benchmark", "--collection", "c", "--path", qdrant_path, "--num-queries", "50",
                       "--concurrency", "1,2", "--json").stdout)
    assert [r["concurrency"] for r in d["runs"]] == [1, 2] and all(r["qps"] > 0 for r in d["runs"])
    assert d["seed_block"]["min_ms"] <= d["seed_block"]["p50_ms"] <= d["seed_block"]["p99_ms"] <= \
        d["seed_block"]["max_ms"]
    assert len(d["runs"][0]["samples_ms"]) == 50


def test_random_queries_and_bad_flags(cli, tmp_path, qdrant_path):
    np.save(tmp_path / "v.npy", vectors(300, 12))
    migrate(str(tmp_path / "v.npy"), "c", path=str(qdrant_path), state_dir=str(tmp_path / ".c"))
    r = benchmark("c", path=str(qdrant_path), num_queries=30, dimensions=12)
    assert "random vectors of 12 dimensions" in r.queries_how and r.runs[0]["n"] == 30
    base = ("qdrant", "benchmark", "--collection", "c", "--path", qdrant_path, "--num-queries", "10")
    res = cli(*base, "--dimensions", "1536")
    assert res.exit_code == 2 and "holds 12-dim vectors" in res.stderr and "Traceback" not in res.output
    res = cli(*base, "--concurrency", "one")
    assert res.exit_code == 2 and "comma-separated integers" in res.stderr
    assert cli(*base, "--ef", "0").exit_code == 2


def test_ef_sweep_shows_the_tradeoff_on_an_indexed_collection(tmp_path, qdrant_path):
    x = vectors(3000, 32, seed=0)
    cfg = q.EdgeConfig(vectors=q.EdgeVectorParams(size=32, distance=q.Distance.Cosine),
                       hnsw_config=q.HnswIndexConfig(m=4, ef_construct=16, full_scan_threshold=1),
                       optimizers=q.EdgeOptimizersConfig(indexing_threshold=1))
    shard = q.EdgeShard.create(str(qdrant_path / "c"), cfg)
    shard.update(q.UpdateOperation.upsert_points([q.Point(i, x[i].tolist(), None) for i in range(3000)]))
    shard.optimize()
    shard.close()
    r = benchmark("c", path=str(qdrant_path), num_queries=150, ef=[4, 32, 512])
    recalls = [s["recall"] for s in r.ef_sweep]
    assert [s["ef"] for s in r.ef_sweep] == [4, 32, 512]
    assert recalls[0] < 0.9 and recalls[0] < recalls[-1]  # more ef, more recall
    assert all(s["p50_ms"] > 0 for s in r.ef_sweep) and "pick the smallest ef" in r.ef_note


def test_performance_comparison_with_a_faiss_source(cli, tmp_path, qdrant_path):
    src = _faiss(tmp_path)
    migrate(str(src), "c", path=str(qdrant_path), state_dir=str(tmp_path / ".c"))
    out = tmp_path / "bench.html"
    res = cli("qdrant", "benchmark", "--collection", "c", "--path", qdrant_path, "--num-queries", "100",
              "--ef", "16,64", "--source", src, "--report", out)
    assert res.exit_code == 0, res.output
    assert "Performance Comparison" in res.stdout and "Search latency (P95)" in res.stdout
    data = json.loads(out.with_suffix(".json").read_text())
    rows = {c["metric"]: c for c in data["comparison"]}
    assert set(rows) == {"Search latency (P95)", "Indexing throughput", "Memory usage", "Storage size"}
    assert rows["Search latency (P95)"]["old"] > 0 and rows["Search latency (P95)"]["qdrant"] > 0
    assert rows["Indexing throughput"]["old"] > 0 and rows["Indexing throughput"]["qdrant"] > 0
    assert "clone of the FAISS index" in rows["Indexing throughput"]["meaning"]
    assert rows["Storage size"]["old"] == src.stat().st_size and rows["Storage size"]["qdrant"] > 0
    assert all(c["meaning"] for c in data["comparison"])
    assert "no HNSW index" in data["ef_note"]  # 2,000 x 16 is below the indexing threshold: exact throughout
    assert all(s["recall"] == 1.0 for s in data["ef_sweep"])
    page = out.read_text()
    for title in ("Latency and throughput", "ef sweep", "Performance comparison", "Recall vs latency per hnsw_ef",
                  "Latency distribution"):
        assert title in page, title
    assert page.count("<svg") >= 4 and "<script" not in page
