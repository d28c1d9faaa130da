"""`cortex qdrant compare`: real engines on both sides (FAISS, numpy-exact, embedded Qdrant), recall gate."""

from __future__ import annotations

import json

import faiss
import numpy as np
import pytest
import qdrant_edge as q
from helpers import payload, vectors, write_jsonl

from cortex.api import compare, migrate
from cortex.errors import SourceError
from cortex.parity import TopK, _source_results, parse_filter, recall_per_query
from cortex.sources import SourceOptions, open_source
from cortex.targets.edge import EdgeTarget


def _faiss_source(tmp_path, n=1500, dim=24, metric=faiss.METRIC_L2):
    x = vectors(n, dim, seed=7)
    index = faiss.index_factory(dim, "Flat", metric)
    index.add(x)
    path = tmp_path / "vectors.index"
    faiss.write_index(index, str(path))
    return path, x


@pytest.mark.parametrize("metric", [faiss.METRIC_L2, faiss.METRIC_INNER_PRODUCT])
def test_exact_faiss_source_has_recall_one(tmp_path, qdrant_path, metric):
    path, _ = _faiss_source(tmp_path, metric=metric)
    migrate(str(path), "c", path=str(qdrant_path), state_dir=str(tmp_path / ".c"))
    r = compare("c", source=str(path), path=str(qdrant_path), num_queries=150, k=10)
    assert "native search" in r.old.method and r.old.recall == 1.0
    # recall over all 150 queries (batched calls); latency on the first 100, one call each (fewer only if
    # 100 tiny searches took the 2 s budget, which the note then says)
    assert r.old.latency["n"] == 100 or "budget" in r.old.note
    assert r.qdrant.latency["n"] == 100 or "budget" in r.qdrant.note
    assert r.old.recall == 1.0 and r.old.recall_min == 1.0  # an exact source is exact
    assert r.qdrant.recall == 1.0  # small collection: no HNSW yet, Qdrant searched exactly too
    assert r.overlap == 1.0 and r.ok
    assert r.score_drift_max is not None and r.score_drift_max < 1e-3  # same score convention on both sides
    assert r.distance == ("euclid" if metric == faiss.METRIC_L2 else "dot")
    assert "noise" in r.queries_how and r.num_queries == 150


def test_source_without_search_uses_exact_numpy(tmp_path, qdrant_path):
    np.save(tmp_path / "v.npy", vectors(800, 16, seed=1))
    migrate(str(tmp_path / "v.npy"), "c", path=str(qdrant_path), state_dir=str(tmp_path / ".c"))
    r = compare("c", source=str(tmp_path / "v.npy"), path=str(qdrant_path), num_queries=50)
    assert r.old.method == "exact numpy search" and r.old.recall == 1.0 and r.qdrant.recall == 1.0
    assert "held in memory" in r.ground_truth_how and r.old.latency["n"] == 50
    streamed = compare("c", source=str(tmp_path / "v.npy"), path=str(qdrant_path), num_queries=50, memory_mb=0.01)
    assert "streamed" in streamed.ground_truth_how and streamed.old.latency == {} and streamed.qdrant.recall == 1.0


def _low_quality_collection(root, x, distance=q.Distance.Cosine):
    """A collection indexed with a deliberately poor HNSW graph (m=2, ef_construct=4)."""
    cfg = q.EdgeConfig(vectors=q.EdgeVectorParams(size=x.shape[1], distance=distance),
                       hnsw_config=q.HnswIndexConfig(m=2, ef_construct=4, full_scan_threshold=1),
                       optimizers=q.EdgeOptimizersConfig(indexing_threshold=1))
    shard = q.EdgeShard.create(str(root / "c"), cfg)
    shard.update(q.UpdateOperation.upsert_points([q.Point(i, x[i].tolist(), None) for i in range(len(x))]))
    shard.optimize()
    shard.close()


def test_low_quality_hnsw_fails_the_recall_gate(cli, tmp_path, qdrant_path):
    x = vectors(3000, 32, seed=0)
    np.save(tmp_path / "v.npy", x)
    _low_quality_collection(qdrant_path, x)
    with EdgeTarget(qdrant_path) as t:
        assert t.collection_info("c").indexed_vectors == 3000  # HNSW really built
    base = ("qdrant", "compare", "--source", tmp_path / "v.npy", "--collection", "c", "--path", qdrant_path,
            "--num-queries", "100")
    res = cli(*base, "--min-recall", "0.95", "--report", tmp_path / "parity.json")
    assert res.exit_code == 1, res.output
    assert "FAILED" in res.stdout and "Qdrant recall@10" in res.stdout
    data = json.loads((tmp_path / "parity.json").read_text())
    assert data["ok"] is False and data["qdrant"]["recall"] < 0.5 and data["old"]["recall"] == 1.0
    page = (tmp_path / "parity.html").read_text()
    assert "Recall@10 vs exact ground truth" in page and "Latency distribution" in page and page.count("<svg") >= 2
    assert "<script" not in page and "https://" not in page
    ok = cli(*base, "--min-recall", "0.0", "--json")
    assert ok.exit_code == 0 and json.loads(ok.stdout)["ok"] is True


def test_a_brute_force_faiss_index_is_the_ground_truth(tmp_path, qdrant_path):
    """A flat FAISS index searches by brute force over exactly the vectors migrated: compare takes its results as
    the ground truth (no exact pass over the source; queries by random access), and Qdrant's recall is the one
    an exact numpy pass over the same vectors gives."""
    x = vectors(3000, 32, seed=0)
    flat = faiss.IndexFlatIP(32)
    flat.add(x)
    faiss.write_index(flat, str(tmp_path / "v.index"))
    np.save(tmp_path / "v.npy", x)
    _low_quality_collection(qdrant_path, x, distance=q.Distance.Dot)
    qs = x[:80] + 0.1 * vectors(80, 32, seed=5)
    brute = compare("c", source=str(tmp_path / "v.index"), path=str(qdrant_path), queries=qs)
    exact = compare("c", source=str(tmp_path / "v.npy"), path=str(qdrant_path), queries=qs)
    assert "brute force" in brute.ground_truth_how and "exact dot search in numpy" in exact.ground_truth_how
    assert brute.old.recall == 1.0 and "also the ground truth" in brute.old.note and brute.source_points == 3000
    assert brute.qdrant.recall < 0.9  # the poor graph misses: the two ground truths are really compared
    assert brute.qdrant.recall == pytest.approx(exact.qdrant.recall, abs=2 / 800)  # at most 2 tied slots apart
    sampled = compare("c", source=str(tmp_path / "v.index"), path=str(qdrant_path), num_queries=100)
    assert sampled.num_queries == 100 and "brute force" in sampled.ground_truth_how and sampled.old.recall == 1.0

    def brute_force(index, **opts):
        faiss.write_index(index, str(tmp_path / "o.index"))
        with open_source(str(tmp_path / "o.index"), None, SourceOptions(**opts)) as src:
            assert (src.sample_vectors(5, 0) is None) != src.exhaustive_search()
            return src.exhaustive_search()

    dup = faiss.IndexIDMap2(faiss.IndexFlatIP(32))
    dup.add_with_ids(x[:10], np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 8], dtype=np.int64))
    nan = faiss.IndexFlatIP(32)
    nan.add(np.vstack([x[:9], np.full((1, 32), np.nan, dtype=np.float32)]))
    ivf = faiss.index_factory(32, "IVF4,Flat", faiss.METRIC_INNER_PRODUCT)
    ivf.train(x)
    ivf.add(x)
    ok = faiss.IndexIDMap2(faiss.IndexFlatL2(32))
    ok.add_with_ids(x[:10], np.arange(100, 110, dtype=np.int64))
    assert brute_force(ok) and brute_force(flat)
    assert not brute_force(dup) and not brute_force(nan) and not brute_force(ivf)
    assert not brute_force(flat, distance="euclid")  # ranked by another distance than faiss's own


def test_filtered_queries_use_a_payload_index(tmp_path, qdrant_path):
    x = vectors(1200, 16, seed=4)
    src = write_jsonl(tmp_path / "e.jsonl", x, ids=list(range(1200)))
    migrate(str(src), "c", path=str(qdrant_path), state_dir=str(tmp_path / ".c"))
    r = compare("c", source=str(src), path=str(qdrant_path), num_queries=60, filter="language=go")
    assert r.filter == {"language": "go"} and r.matching_points == 600 and r.source_points == 1200
    assert r.qdrant.recall == 1.0 and r.old.recall == 1.0 and "filter is applied" in r.old.note
    with EdgeTarget(qdrant_path) as t:
        assert t.collection_info("c").payload_indexes == {"language": "keyword"}
        hits = t.search("c", x[:5], 10, filter={"language": "go"})
    assert all(payload(pid)["language"] == "go" for row in hits for pid, _ in row)
    r = compare("c", source=str(src), path=str(qdrant_path), num_queries=20, filter="n=7", k=5)
    assert r.matching_points == 1 and r.qdrant.recall == 1.0  # integer filter, one matching point
    with pytest.raises(SourceError, match="no point of .* has payload language == 'rust'"):
        compare("c", source=str(src), path=str(qdrant_path), num_queries=5, filter="language=rust")


def test_queries_file_and_bad_input(cli, tmp_path, qdrant_path):
    x = vectors(500, 8, seed=2)
    np.save(tmp_path / "v.npy", x)
    migrate(str(tmp_path / "v.npy"), "c", path=str(qdrant_path), state_dir=str(tmp_path / ".c"))
    (tmp_path / "q.jsonl").write_text("".join(json.dumps({"vector": v.tolist()}) + "\n" for v in x[:7] + 0.01))
    r = compare("c", source=str(tmp_path / "v.npy"), path=str(qdrant_path), queries=str(tmp_path / "q.jsonl"))
    assert r.num_queries == 7 and "q.jsonl" in r.queries_how and r.qdrant.recall == 1.0
    np.save(tmp_path / "bad.npy", vectors(3, 9))
    base = ("qdrant", "compare", "--source", tmp_path / "v.npy", "--collection", "c", "--path", qdrant_path)
    res = cli(*base, "--queries", tmp_path / "bad.npy")
    assert res.exit_code == 2 and "queries have 9 dimensions, the collection has 8" in res.stderr
    assert "Traceback" not in res.output
    res = cli(*base, "--filter", "nofield")
    assert res.exit_code == 2 and "expected FIELD=VALUE" in res.stderr
    res = cli(*base, "--collection", "nope")
    assert res.exit_code == 3 and "does not exist" in res.stderr


def test_topk_merge_and_recall_ties():
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((4, 50)).astype(np.float32)
    keys = np.arange(50, dtype=np.uint64)
    top = TopK(4, 5)
    for lo in range(0, 50, 7):  # batches of 7 merge to the global top-5
        top.push(scores[:, lo:lo + 7], keys[lo:lo + 7])
    k_, r_ = top.result()
    want = np.argsort(-scores, axis=1)[:, :5]
    assert (k_ == want).all()
    # a tie with the 5th exact score counts; a worse id does not
    gt_k = np.array([[1, 2, 3, 4, 5]], dtype=np.uint64)
    gt_r = np.array([[0.9, 0.8, 0.7, 0.6, 0.5]], dtype=np.float32)
    tie = recall_per_query(gt_k, gt_r, [np.array([1, 2, 3, 4, 99], np.uint64)], [np.array([.9, .8, .7, .6, .5])])
    worse = recall_per_query(gt_k, gt_r, [np.array([1, 2, 3, 4, 99], np.uint64)], [np.array([.9, .8, .7, .6, .4])])
    assert tie[0] == 1.0 and worse[0] == 0.8
    assert parse_filter("n=3") == {"n": 3} and parse_filter("ok=true") == {"ok": True}
    assert parse_filter("lang=go") == {"lang": "go"} and parse_filter("x=1.5") == {"x": 1.5}


def _native_sources(root):
    """Real indexes of a few kinds whose own search compare batches: (path, options, k); the FAISS ones give
    ragged rows (IVF probing 32 of 256 lists finds fewer than k) and -1 padding (fewer points than k)."""
    import chromadb
    import hnswlib
    from annoy import AnnoyIndex
    from chromadb.config import Settings
    from usearch.index import Index

    x = vectors(300, 16, seed=11)
    ids = np.arange(1000, 1300, dtype=np.int64)
    out = {}
    flat = faiss.IndexIDMap2(faiss.IndexFlatIP(16))
    flat.add_with_ids(x[:6], ids[:6])  # 6 points, k=8: two -1 labels per query
    faiss.write_index(flat, str(root / "few.index"))
    out["faiss-few"] = (root / "few.index", None, 8)
    ivf = faiss.index_factory(16, "IVF256,Flat")
    ivf.train(x)
    ivf.add_with_ids(x, ids)
    faiss.write_index(ivf, str(root / "ivf.index"))
    out["faiss-ivf"] = (root / "ivf.index", None, 50)
    h = hnswlib.Index(space="l2", dim=16)
    h.init_index(max_elements=300, ef_construction=50, M=8, random_seed=1)
    h.add_items(x, ids)
    h.save_index(str(root / "h.bin"))
    out["hnswlib"] = (root / "h.bin", SourceOptions(distance="l2"), 8)
    u = Index(ndim=16, metric="cos")
    u.add(ids, x)
    u.save(str(root / "u.usearch"))
    out["usearch"] = (root / "u.usearch", None, 8)
    a = AnnoyIndex(16, "euclidean")
    for i, v in enumerate(x):
        a.add_item(i, v.tolist())
    a.build(4, n_jobs=1)
    a.save(str(root / "a.ann"))
    out["annoy"] = (root / "a.ann", SourceOptions(dimensions=16, distance="euclidean"), 8)
    client = chromadb.PersistentClient(path=str(root / "chroma"), settings=Settings(anonymized_telemetry=False))
    client.create_collection("docs").add(ids=[f"d{i}" for i in range(300)], embeddings=x)
    out["chroma"] = (root / "chroma", SourceOptions(collection="docs"), 8)
    return out, x


def test_batched_native_search_equals_single_queries(tmp_path):
    """compare takes the old system's results from batched calls: each row must be what a single call gives."""
    sources, x = _native_sources(tmp_path)
    queries = x[:40] + 0.05 * vectors(40, 16, seed=12)
    for name, (path, opts, k) in sources.items():
        with open_source(str(path), None, opts) as src:
            batched = _source_results(src, queries, k)
            assert len(batched) == len(queries), name
            for i in range(len(queries)):
                ids, scores = src.search(queries[i:i + 1], k)
                single = np.asarray(scores[0], dtype=np.float64)[:len(ids[0])]
                assert batched[i][0] == list(ids[0]), (name, i)
                np.testing.assert_allclose(batched[i][1], single, rtol=1e-4, atol=1e-5, err_msg=f"{name} {i}")
                assert np.isfinite(batched[i][1]).all(), (name, i)  # no padding left in the scores
        if name == "faiss-few":
            assert all(len(ids) == 6 for ids, _ in batched)  # -1 labels dropped, scores cut to match
        if name == "faiss-ivf":
            assert len({len(ids) for ids, _ in batched}) > 1 and min(len(ids) for ids, _ in batched) < k  # ragged
