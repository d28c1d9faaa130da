"""Sparse and named vectors and payload indexes, end to end on real engines.

A Qdrant Edge shard with a default vector, two named dense vectors (dot and cosine), two
sparse vectors (one with the IDF modifier) and payload indexes is migrated into embedded
Qdrant and into a server target (qdrant-client local mode); pgvector ``sparsevec`` columns
and Milvus Lite sparse fields (plain and BM25-function output) arrive as sparse vectors;
malformed sparse rows from a source go to the dead letter.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from helpers import vectors, write_jsonl
from pg_fixture import PgServer, pg_server  # noqa: F401  (session fixture)
from qdrant_client import grpc as g
from qdrant_client import models
from qdrant_client.conversions.conversion import RestToGrpc

from cortex.api import migrate, verify
from cortex.errors import BatchTooLargeError, SourceError
from cortex.pipeline import PipelineOptions, run
from cortex.sources import SourceOptions
from cortex.sources.base import Batch, Source, SourceInfo
from cortex.targets.edge import EdgeTarget
from cortex.targets.grpc_upload import encode_upsert
from cortex.targets.server import ServerTarget
from cortex.validate import validate

N, DIM = 240, 8
NAMED = {"title": {"size": 4, "distance": "dot"}, "img": {"size": 3, "distance": "cosine"}}
SPARSE = {"bm25": {"modifier": "idf"}, "splade": {"modifier": None}}
INDEXES = {"lang": "keyword", "n": "integer", "body": "text", "score": "float"}


def _data(n: int = N, seed: int = 5) -> dict[str, Any]:
    """Dense, named (NaN rows: the point has none) and sparse (None: none) columns with payloads."""
    rng = np.random.default_rng(seed)
    title = rng.standard_normal((n, 4)).astype(np.float32)
    title[::7] = np.nan  # every 7th point has no 'title'
    img = rng.standard_normal((n, 3)).astype(np.float32)
    bm25: list[Any] = []
    splade: list[Any] = []
    for i in range(n):
        k = int(rng.integers(1, 12))
        idx = rng.choice(2**32 - 1, size=k, replace=False)  # the whole u32 range, unsorted
        bm25.append(None if i % 5 == 0 else (idx.tolist(), rng.random(k).astype(np.float32).tolist()))
        splade.append(([], []) if i % 11 == 0 else ([i, i + 1000], [0.5, float(i)]))
    payloads = [{"lang": ["en", "de"][i % 2], "n": i, "body": f"text number {i}", "score": i / 3} for i in range(n)]
    return {"ids": list(range(n)), "vectors": rng.standard_normal((n, DIM)).astype(np.float32),
            "named": {"title": title, "img": img}, "sparse": {"bm25": bm25, "splade": splade}, "payloads": payloads}


@pytest.fixture(scope="module")
def shard(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A Qdrant Edge collection with everything a point can hold, as a source shard directory."""
    root = tmp_path_factory.mktemp("edge_src")
    d = _data()
    with EdgeTarget(root) as t:
        t.create_collection("rich", DIM, "cosine", defer_indexing=False, sparse=SPARSE, named=NAMED)
        t.upsert("rich", d["ids"], d["vectors"], d["payloads"], sparse=d["sparse"], named=d["named"])
        for f, kind in INDEXES.items():
            t.create_payload_index("rich", f, kind)
        t.flush("rich")
    return root / "rich", d


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _check_points(t: Any, collection: str, d: dict[str, Any]) -> None:
    """Every point holds exactly the source's vectors (cosine ones unit-length, as the source shard stores
    them; Qdrant sorts sparse indices)."""
    got = t.retrieve(collection, d["ids"])
    assert len(got) == len(d["ids"])
    for i in d["ids"]:
        p = got[i]
        np.testing.assert_allclose(p.vector, _unit(d["vectors"][i]), atol=1e-6)
        title = d["named"]["title"][i]
        if np.isnan(title).all():
            assert "title" not in (p.named or {})
        else:
            np.testing.assert_allclose(p.named["title"], title, atol=1e-6)  # dot: kept as given
        img = d["named"]["img"][i]
        np.testing.assert_allclose(p.named["img"], _unit(img), atol=1e-6)
        for name, rows in d["sparse"].items():
            want = rows[i]
            have = (p.sparse or {}).get(name)
            if want is None:
                assert have is None, (i, name)
                continue
            order = np.argsort(want[0])
            assert have[0] == np.asarray(want[0])[order].tolist(), (i, name)
            np.testing.assert_array_equal(np.float32(have[1]), np.float32(want[1])[order])


def test_edge_source_to_embedded_everything_arrives(cli, shard, tmp_path):
    src, d = shard
    other = tmp_path / "other"
    res = cli("qdrant", "migrate", "-s", src, "-t", "copy", "--path", other, "--json", "--batch-size", "64")
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert s["written"] == N and s["rejected"] == 0
    assert s["sparse_vectors"] == ["bm25", "splade"] and s["named_vectors"] == ["img", "title"]
    assert s["payload_indexes"] == INDEXES
    assert not any("payload index" in w for w in s["warnings"])
    res = cli("qdrant", "verify", "-c", "copy", "-s", src, "--path", other, "--full", "--json")
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["ok"] and rep["checked"] == N and rep["vector_mismatches"] == 0
    with EdgeTarget(other) as t:
        info = t.collection_info("copy")
        assert info.named_vectors == NAMED
        assert info.sparse_vectors == SPARSE
        assert info.payload_indexes == INDEXES
        assert (info.dim, info.distance, info.status) == (DIM, "cosine", "green")
        _check_points(t, "copy", d)
        # the sparse index answers a query with the IDF modifier on
        q = __import__("qdrant_edge")
        want = d["sparse"]["bm25"][1]
        hits = t._open("copy").query(q.QueryRequest(limit=3, query=q.Query.Nearest(
            q.SparseVector(want[0][:1], [1.0]), using="bm25")))
        assert hits and hits[0].id == 1


def test_edge_source_to_server_target(cli, shard, tmp_path):
    src, d = shard
    url = "local:" + str(tmp_path / "server_db")
    res = cli("qdrant", "migrate", "-s", src, "-t", "prod", "--url", url, "--json", "--batch-size", "100")
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert s["written"] == N and s["payload_indexes"] == INDEXES
    res = cli("qdrant", "verify", "-c", "prod", "-s", src, "--url", url, "--full", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["checked"] == N
    t = ServerTarget(url)
    try:
        info = t.collection_info("prod")
        assert info.named_vectors == NAMED and info.sparse_vectors == SPARSE
        params = t.client.get_collection("prod").config.params
        assert params.sparse_vectors["bm25"].modifier == models.Modifier.IDF
        _check_points(t, "prod", d)
        # qdrant-client's local mode keeps no payload index (it says so); a server reports them in payload_schema
    finally:
        t.close()


def test_verify_catches_a_corrupted_sparse_value_and_named_vector(cli, shard, tmp_path):
    src, d = shard
    other = tmp_path / "other"
    assert cli("qdrant", "migrate", "-s", src, "-t", "c", "--path", other).exit_code == 0
    with EdgeTarget(other) as t:
        p = t.retrieve("c", [3, 8])
        sp3 = {k: [v] for k, v in p[3].sparse.items()}
        sp3["bm25"] = [(sp3["bm25"][0][0], [x + 0.01 for x in sp3["bm25"][0][1]])]  # values off by 0.01
        t.upsert("c", [3], p[3].vector[None], [d["payloads"][3]], sparse=sp3,
                 named={k: v[None] for k, v in p[3].named.items()})
        named8 = {k: v[None].copy() for k, v in p[8].named.items()}
        named8["title"][0, 0] += 1.0
        t.upsert("c", [8], p[8].vector[None], [d["payloads"][8]], named=named8,
                 sparse={k: [v] for k, v in p[8].sparse.items()})
        t.flush("c")
    res = cli("qdrant", "verify", "-c", "c", "-s", src, "--path", other, "--full", "--json")
    assert res.exit_code == 1, res.output
    rep = json.loads(res.stdout)
    assert rep["vector_mismatches"] == 2 and rep["payload_mismatches"] == 0 and rep["missing"] == 0
    by_id = {p["id"]: p["detail"] for p in rep["problems"]}
    assert "sparse vector 'bm25': value at index" in by_id[3]
    assert "named vector 'title': max abs difference 1 " in by_id[8]
    # sample mode compares the extra vectors too
    rep = verify("c", source=str(src), path=str(other), sample=N)
    assert not rep.ok and rep.vector_mismatches == 2


def test_existing_collection_without_the_sparse_vector_is_a_conflict(cli, shard, tmp_path):
    src, _ = shard
    other = tmp_path / "other"
    with EdgeTarget(other) as t:
        t.create_collection("c", DIM, "cosine", named=NAMED)  # no sparse vectors
    res = cli("qdrant", "migrate", "-s", src, "-t", "c", "--path", other)
    assert res.exit_code == 4 and "has no sparse vector 'bm25'" in res.stderr, res.output  # names in sorted order
    with EdgeTarget(other) as t:
        t.create_collection("d", DIM, "cosine", sparse=SPARSE, named={**NAMED, "title": {"size": 5,
                                                                                          "distance": "dot"}})
    res = cli("qdrant", "migrate", "-s", src, "-t", "d", "--path", other)
    assert res.exit_code == 4 and "named vector 'title' as 5-dim dot" in res.stderr, res.output


def test_only_named_vectors_pick_the_main_one(tmp_path):
    root = tmp_path / "src"
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((20, 3)).astype(np.float32), rng.standard_normal((20, 5)).astype(np.float32)
    import qdrant_edge as q

    cfg = q.EdgeConfig(vectors={"a": q.EdgeVectorParams(size=3, distance=q.Distance.Dot),
                                "b": q.EdgeVectorParams(size=5, distance=q.Distance.Euclid)})
    shard = q.EdgeShard.create(str(root / "two"), cfg)
    shard.update(q.UpdateOperation.upsert_points(
        [q.Point(i, {"a": a[i].tolist(), "b": b[i].tolist()}, {"i": i}) for i in range(20)]))
    shard.close()
    s = migrate(str(root / "two"), "m", path=str(tmp_path / "t"), state_dir=str(tmp_path / "st"),
                options=SourceOptions(vector_column="b"))
    assert (s.written, s.dim, s.distance, s.named_vectors) == (20, 5, "euclid", ["a"])
    with EdgeTarget(tmp_path / "t") as t:
        p = t.retrieve("m", [4])[4]
        np.testing.assert_allclose(p.vector, b[4])
        np.testing.assert_allclose(p.named["a"], a[4])
    s = migrate(str(root / "two"), "m2", path=str(tmp_path / "t"), state_dir=str(tmp_path / "st"))
    assert (s.dim, s.named_vectors) == (3, ["b"])  # the first by name
    assert any("'a' becomes the target's default vector" in w for w in s.warnings)
    assert verify("m2", source=str(root / "two"), path=str(tmp_path / "t"), full=True).ok
    with pytest.raises(SourceError, match="no dense vector 'zz'"):
        migrate(str(root / "two"), "m3", path=str(tmp_path / "t"), state_dir=str(tmp_path / "st"),
                options=SourceOptions(vector_column="zz"))


# -- malformed rows, dedupe and batch splitting through the pipeline ---------------------------
class RowsSource(Source):
    """A source that yields given rows: one batch per list, with sparse and named columns."""

    kind = "rows"

    def __init__(self, batches: list[dict[str, Any]]) -> None:
        super().__init__("rows.test")
        self._batches = batches

    @classmethod
    def detect(cls, path: str) -> bool:
        return False

    def info(self) -> SourceInfo:
        return SourceInfo(kind=self.kind, name="rows", dim=3, distance="dot", count=None,
                          details={"sparse_vectors": {"sp": {"modifier": None}},
                                   "named_vectors": {"t": {"size": 2, "distance": "euclid"}},
                                   "payload_indexes": {"tag": "keyword", "where": "geo-ish"}})

    def batches(self, batch_size: int, resume: Any = None) -> Iterator[Batch]:
        for k, b in enumerate(self._batches):
            n = len(b["ids"])
            yield Batch(ids=b["ids"], vectors=np.ones((n, 3), np.float32) * np.arange(n)[:, None],
                        payloads=[{"tag": f"t{i}"} for i in b["ids"]], sparse={"sp": b["sp"]},
                        named={"t": np.asarray(b["t"], dtype=np.float32)},
                        locations=[f"rows.test:{k}:{j}" for j in range(n)], cursor=k)


BAD = [
    (([1, 1], [0.5, 0.5]), "duplicate index 1"),
    (([-3, 2], [0.5, 0.5]), "negative index (-3)"),
    (([2**32], [0.5]), "above 2**32-1"),
    (([1, 2], [0.5, float("nan")]), "non-finite value (nan) for index 2"),
    (([1, 2], [0.5, 1e39]), "non-finite value"),  # overflows float32
    (([1, 2, 3], [0.5]), "3 indices but 1 values"),
    (([1.5], [0.5]), "not an integer"),
    ((["a"], [0.5]), "not an integer"),
    ("junk", "not an (indices, values) pair"),
    (([1], [0.5], [2]), "not an (indices, values) pair"),
]


def test_malformed_sparse_rows_go_to_the_dead_letter(tmp_path):
    good_t = [0.5, 0.25]
    rows = [{"ids": [f"g{i}" for i in range(3)] + [f"b{i}" for i in range(len(BAD))] + ["n1", "f1"],
             "sp": [([5, 1], [1.0, 2.0]), None, ([], [])] + [b for b, _ in BAD] + [([1], [1.0]), ([2.0, 3.0], [1, 2])],
             "t": [good_t] * (3 + len(BAD)) + [[0.5, float("inf")], [float("nan")] * 2]}]
    dl = tmp_path / "dead.jsonl"
    with EdgeTarget(tmp_path / "q") as t:
        s = run(RowsSource(rows), t, "c", PipelineOptions(batch_size=100), dead_letter=dl)
        assert (s.read, s.written, s.rejected) == (len(rows[0]["ids"]), 4, len(BAD) + 1)
        assert s.counts_add_up
        assert any("payload index on 'where' (geo-ish) not created" in w for w in s.warnings)
        assert s.payload_indexes == {"tag": "keyword"} and t.collection_info("c").payload_indexes == s.payload_indexes
        recs = [orjson.loads(line) for line in dl.read_bytes().splitlines()]
        reasons = {r["id"]: r["reason"] for r in recs}
        for k, (_, why) in enumerate(BAD):
            assert "sparse vector 'sp' " in reasons[f"b{k}"] and why in reasons[f"b{k}"], reasons[f"b{k}"]
            assert "fix or drop this record" in reasons[f"b{k}"]
        assert "named vector 't' has a non-finite value (inf) at position 1" in reasons["n1"]
        by_loc = {r["id"]: r for r in recs}
        assert by_loc["b0"]["location"] == "rows.test:0:3" and by_loc["b0"]["record"]["sparse"]["sp"] == [[1, 1],
                                                                                                         [0.5, 0.5]]
        from cortex.ids import map_id

        got = t.retrieve("c", [map_id(x)[0] for x in ("g0", "g1", "g2", "f1")])
        sp = {p.payload["source_id"]: (p.sparse or {}).get("sp") for p in got.values()}
        assert sp == {"g0": ([1, 5], [2.0, 1.0]), "g1": None, "g2": ([], []), "f1": ([2, 3], [1.0, 2.0])}
        named = {p.payload["source_id"]: (p.named or {}).get("t") for p in got.values()}
        assert named["f1"] is None and named["g0"].tolist() == good_t  # all-NaN row: no 't' vector


def test_undeclared_sparse_name_is_a_source_error():
    b = Batch(ids=[1], vectors=np.zeros((1, 2), np.float32), sparse={"zz": [([1], [1.0])]})
    with pytest.raises(SourceError, match="sparse vector 'zz' that it did not declare"):
        validate(b, 2, "source_id", 0, None, sparse_names={"sp"}, named_dims={})
    b = Batch(ids=[1, 2], vectors=np.zeros((2, 2), np.float32), sparse={"sp": [([1], [1.0])]})
    with pytest.raises(SourceError, match="has 1 rows for 2 ids"):
        validate(b, 2, "source_id", 0, None)


class SplittingEdge(EdgeTarget):
    """Real Qdrant Edge that refuses batches above 3 points, as a server refuses large messages."""

    def upsert(self, name, ids, vectors, payloads, *, sparse=None, named=None) -> None:
        if len(ids) > 3:
            raise BatchTooLargeError(f"{len(ids)} points is too many")
        super().upsert(name, ids, vectors, payloads, sparse=sparse, named=named)


def test_duplicates_and_split_batches_keep_sparse_rows_with_their_points(tmp_path):
    ids = [1, 2, 3, 2, 4, 5, 6, 7, 8, 1]  # 1 and 2 twice: the last one wins
    rows = [{"ids": ids, "sp": [([i], [float(k)]) for k, i in enumerate(ids)],
             "t": [[k, -k] for k in range(len(ids))]}]
    with SplittingEdge(tmp_path / "q") as t:
        s = run(RowsSource(rows), t, "c", PipelineOptions(batch_size=100))
        assert (s.written, s.duplicates) == (10, 2)  # duplicates count as written (overwrites)
        got = t.retrieve("c", sorted(set(ids)))
    for i, p in got.items():
        k = len(ids) - 1 - ids[::-1].index(i)  # the position of the last record of id i
        assert p.sparse == {"sp": ([i], [float(k)])}, i
        assert p.named["t"].tolist() == [k, -k], i
        np.testing.assert_array_equal(p.vector, [k, k, k])


# -- the gRPC request encoder with named and sparse vectors ----------------------------------------
def test_encoded_named_and_sparse_request_equals_qdrant_clients_own():
    d = _data(40, seed=9)
    ids = [i if i % 2 else f"00000000-0000-0000-0000-{i:012d}" for i in d["ids"]]
    pls = [p if i % 3 else None for i, p in enumerate(d["payloads"])]
    got = g.UpsertPoints.FromString(encode_upsert("c", ids, d["vectors"], pls, sparse=d["sparse"], named=d["named"]))
    pts = []
    for k, pid in enumerate(ids):
        vec: dict[str, Any] = {"": d["vectors"][k].tolist()}
        for name, a in d["named"].items():
            if not np.isnan(a[k]).all():
                vec[name] = a[k].tolist()
        for name, rows in d["sparse"].items():
            if rows[k] is not None:
                vec[name] = models.SparseVector(indices=rows[k][0], values=rows[k][1])
        pts.append(RestToGrpc.convert_point_struct(models.PointStruct(id=pid, vector=vec, payload=pls[k])))
    assert got == g.UpsertPoints(collection_name="c", wait=True, points=pts)
    assert got.points[0].vectors.vectors.vectors["splade"].HasField("sparse")  # an empty sparse vector is kept
    assert "bm25" not in got.points[0].vectors.vectors.vectors  # None: left out


def test_named_and_sparse_points_over_real_grpc_with_split_batches():
    """The raw request bytes pass a real gRPC server's protobuf parsing; oversized batches are halved."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from bench_server_upload import NullEndpoint

    from cortex.pipeline import write_batch
    from cortex.retry import RetryPolicy

    d = _data(200, seed=4)
    with NullEndpoint(seconds=60, max_receive=20_000) as ep:
        t = ServerTarget(ep.url, grpc_port=ep.port)
        try:
            t.create_collection("c", DIM, "cosine", sparse=SPARSE, named=NAMED)
            t.upsert("c", d["ids"][:10], d["vectors"][:10], d["payloads"][:10],
                     sparse={k: v[:10] for k, v in d["sparse"].items()},
                     named={k: v[:10] for k, v in d["named"].items()})
            assert ep.count() == 10
            with pytest.raises(BatchTooLargeError):
                t.upsert("c", d["ids"], d["vectors"], d["payloads"], sparse=d["sparse"], named=d["named"])
            b = Batch(ids=[i + 1000 for i in d["ids"]], vectors=d["vectors"], payloads=d["payloads"],
                      sparse=d["sparse"], named=d["named"])
            write_batch(t, "c", validate(b, DIM, "source_id", 0, None), RetryPolicy(retries=0))
            assert ep.count() == 210
        finally:
            t.close()


# -- pgvector sparsevec ------------------------------------------------------------------------------
def test_pgvector_sparsevec_columns_arrive_as_sparse_vectors(pg_server: PgServer, tmp_path):  # noqa: F811
    import psycopg

    rng = np.random.default_rng(3)
    rows = []
    for i in range(150):
        k = int(rng.integers(1, 6))
        idx = sorted(rng.choice(30000, size=k, replace=False).tolist())
        val = rng.standard_normal(k).astype(np.float32).tolist()
        sv = None if i % 9 == 0 else "{" + ",".join(f"{j + 1}:{v!r}" for j, v in zip(idx, val, strict=True)) + "}/30000"
        rows.append((i, "[" + ",".join(repr(float(x)) for x in rng.standard_normal(4)) + "]", sv, f"doc {i}",
                     (idx, val)))
    with psycopg.connect(pg_server.url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS sparse_docs")
        cur.execute("CREATE TABLE sparse_docs (id int PRIMARY KEY, emb vector(4), sp sparsevec(30000), body text)")
        cur.executemany("INSERT INTO sparse_docs VALUES (%s, %s::vector, %s::sparsevec, %s)",
                        [r[:4] for r in rows])
    opts = SourceOptions(table="sparse_docs")
    s = migrate(pg_server.url, "pg", path=str(tmp_path / "q"), options=opts, state_dir=str(tmp_path / "st"),
                batch_size=64, distance="dot")
    assert (s.written, s.rejected, s.sparse_vectors) == (150, 0, ["sp"])
    assert not any("sparse" in w for w in s.warnings)
    assert verify("pg", source=pg_server.url, options=opts, path=str(tmp_path / "q"), full=True).ok
    with EdgeTarget(tmp_path / "q") as t:
        assert t.collection_info("pg").sparse_vectors == {"sp": {"modifier": None}}
        got = t.retrieve("pg", list(range(150)))
    for i, *_, (idx, val) in rows:
        if i % 9 == 0:
            assert got[i].sparse is None  # NULL: no sparse vector
        else:
            assert got[i].sparse["sp"][0] == idx  # pgvector's 1-based text indices are 0-based inside
            np.testing.assert_array_equal(np.float32(got[i].sparse["sp"][1]), np.float32(val))


# -- Milvus Lite sparse fields -------------------------------------------------------------------------
def test_milvus_sparse_and_bm25_fields_arrive(tmp_path):
    from milvus_lite.server_manager import server_manager_instance
    from pymilvus import DataType, Function, FunctionType, MilvusClient

    path = tmp_path / "m.db"
    c = MilvusClient(str(path))
    s = c.create_schema(auto_id=False)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("text", DataType.VARCHAR, max_length=200, enable_analyzer=True)
    s.add_field("v", DataType.FLOAT_VECTOR, dim=4)
    s.add_field("sp", DataType.SPARSE_FLOAT_VECTOR)
    s.add_field("bm", DataType.SPARSE_FLOAT_VECTOR)
    s.add_function(Function(name="bm25", function_type=FunctionType.BM25, input_field_names=["text"],
                            output_field_names=["bm"]))
    ip = c.prepare_index_params()
    ip.add_index("v", metric_type="IP", index_type="FLAT")
    ip.add_index("sp", metric_type="IP", index_type="SPARSE_INVERTED_INDEX")
    ip.add_index("bm", metric_type="BM25", index_type="SPARSE_INVERTED_INDEX")
    c.create_collection("docs", schema=s, index_params=ip)
    x = np.random.default_rng(2).standard_normal((30, 4)).astype(np.float32)
    c.insert("docs", [{"id": i, "text": f"word{i} common words here", "v": x[i],
                       "sp": {7: 0.5, 100 + i: 1.5}} for i in range(30)])  # Milvus refuses empty sparse rows
    c.close()
    server_manager_instance.release_server(str(path))
    opts = SourceOptions(collection="docs")
    summary = migrate(str(path), "mv", path=str(tmp_path / "q"), options=opts, state_dir=str(tmp_path / "st"))
    assert (summary.written, summary.sparse_vectors) == (30, ["bm", "sp"])
    assert any("BM25 function 'bm25'" in w for w in summary.warnings)
    assert verify("mv", source=str(path), options=opts, path=str(tmp_path / "q"), full=True).ok
    with EdgeTarget(tmp_path / "q") as t:
        assert t.collection_info("mv").sparse_vectors == {"bm": {"modifier": "idf"}, "sp": {"modifier": None}}
        got = t.retrieve("mv", [0, 5])
    assert got[5].sparse["sp"] == ([7, 105], [0.5, 1.5]) and got[0].sparse["sp"] == ([7, 100], [0.5, 1.5])
    assert len(got[5].sparse["bm"][0]) == 4 and all(v >= 1 for v in got[5].sparse["bm"][1])  # term frequencies


def test_dense_only_source_keeps_a_plain_collection(cli, tmp_path, qdrant_path):
    """A dense-only source still creates a plain collection (no named/sparse config, fast path)."""
    src = write_jsonl(tmp_path / "e.jsonl", vectors(50, 6))
    res = cli("qdrant", "migrate", "-s", src, "-t", "plain", "--path", qdrant_path, "--json")
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert (s["sparse_vectors"], s["named_vectors"], s["payload_indexes"]) == ([], [], {})
    with EdgeTarget(qdrant_path) as t:
        info = t.collection_info("plain")
        assert (info.named_vectors, info.sparse_vectors) == ({}, {})
    cfg = json.loads((qdrant_path / "plain" / "edge_config.json").read_text())
    assert list(cfg["vectors"]) == [""] and not cfg.get("sparse_vectors")
