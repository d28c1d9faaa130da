"""Partitions of every source kind are disjoint and cover the source (ids compared); partition runs
resume on their own, refuse a changed split, and ``--finish`` builds the index and checks the whole."""

from __future__ import annotations

import json
import uuid
import warnings
from itertools import chain
from pathlib import Path

import numpy as np
import pytest
from helpers import vectors, write_jsonl, write_npy_dir
from pg_fixture import PgServer, pg_server  # noqa: F401  (session fixture)

from cortex.ids import map_id
from cortex.scale.partitions import HashPartition, Piece, partition_source
from cortex.sources import SourceOptions, open_source

N, DIM = 240, 8
X = vectors(N, DIM, seed=3)


def _ids(src) -> list:
    out = []
    with src:
        for b in src.batches(64):
            out.extend(map_id(i)[0] for i in (b.ids.tolist() if isinstance(b.ids, np.ndarray) else b.ids))
    return out


def _check(path: str, n: int = 3, kind: str | None = None, opts: SourceOptions | None = None,
           structural: bool = True) -> None:
    full = _ids(open_source(path, kind, opts))
    assert full, "the fixture has no points"
    parts = []
    for i in range(n):
        src = partition_source(open_source(path, kind, opts), Piece(n, i))
        assert isinstance(src, HashPartition) is not structural
        parts.append(_ids(src))
    assert sorted(map(str, chain(*parts))) == sorted(map(str, full))  # union is the source, nothing twice
    assert sum(len(set(p)) for p in parts) == len(set(full))  # disjoint
    if len(full) >= 3 * n:
        assert all(parts), "a partition came out empty"


# -- file formats that split by their own structure ---------------------------------------------------
def test_jsonl_byte_ranges_align_to_lines(tmp_path: Path) -> None:
    p = write_jsonl(tmp_path / "x.jsonl", X)
    for n in (1, 2, 3, 7, N + 5):
        _check(str(p), n)
    src = partition_source(open_source(str(p)), Piece(3, 1))
    b = next(src.batches(10))
    first = int(b.locations[0].rsplit(":", 1)[1])
    assert json.loads(p.read_text().splitlines()[first - 1])["id"] == b.ids[0]  # line numbers stay true


def test_npy_matrix_rows_with_payloads(tmp_path: Path) -> None:
    np.save(tmp_path / "m.npy", X)
    (tmp_path / "p.jsonl").write_text("".join(json.dumps({"n": i}) + "\n" for i in range(N)))
    opts = SourceOptions(payloads=str(tmp_path / "p.jsonl"))
    _check(str(tmp_path / "m.npy"), 4, opts=opts)
    src = partition_source(open_source(str(tmp_path / "m.npy"), None, opts), Piece(4, 2))
    b = next(src.batches(5))
    assert [int(i) for i in b.ids] == [p["n"] for p in b.payloads] == list(range(120, 125))


def test_npy_dir_files(tmp_path: Path) -> None:
    _check(str(write_npy_dir(tmp_path / "v", X[:50])), 3)


def test_parquet_rows_across_files(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = tmp_path / "pq"
    d.mkdir()
    for k, (lo, hi) in enumerate([(0, 100), (100, 110), (110, N)]):
        pq.write_table(pa.table({"id": list(range(lo, hi)), "vector": pa.FixedSizeListArray.from_arrays(
            pa.array(X[lo:hi].ravel()), DIM)}), d / f"part-{k}.parquet", row_group_size=30)
    for n in (2, 5):
        _check(str(d), n)


@pytest.mark.parametrize("spec", ["Flat", "IVF4,Flat", "IDMap,Flat"])
def test_faiss_positions_or_inverted_lists(tmp_path: Path, spec: str) -> None:
    import faiss

    index = faiss.index_factory(DIM, spec)
    index.train(X)
    if spec.startswith("IDMap"):
        index.add_with_ids(X, np.arange(N, dtype=np.int64) * 7 + 3)
    else:
        index.add(X)
    faiss.write_index(index, str(tmp_path / "x.index"))
    _check(str(tmp_path / "x.index"), 3)


# -- kinds split by a hash of the point id ----------------------------------------------------------
def test_hnswlib(tmp_path: Path) -> None:
    import hnswlib

    index = hnswlib.Index(space="l2", dim=DIM)
    index.init_index(max_elements=N, M=8, ef_construction=40, random_seed=1)
    index.add_items(X, np.arange(N) + 100)
    index.mark_deleted(105)
    index.save_index(str(tmp_path / "x.bin"))
    _check(str(tmp_path / "x.bin"), 3, opts=SourceOptions(distance="l2"), structural=False)


def test_usearch(tmp_path: Path) -> None:
    from usearch.index import Index

    index = Index(ndim=DIM, metric="l2sq", dtype="f32")
    index.add(np.arange(N, dtype=np.uint64) * 3, X)
    index.save(str(tmp_path / "x.usearch"))
    _check(str(tmp_path / "x.usearch"), 3, structural=False)


def test_annoy(tmp_path: Path) -> None:
    from annoy import AnnoyIndex

    index = AnnoyIndex(DIM, "euclidean")
    for i in range(N):
        index.add_item(i, X[i].tolist())
    index.build(2, n_jobs=1)
    index.save(str(tmp_path / "x.ann"))
    index.unload()
    _check(str(tmp_path / "x.ann"), 3, opts=SourceOptions(dimensions=DIM, distance="euclidean"), structural=False)


def test_chroma(tmp_path: Path) -> None:
    import chromadb
    from chromadb.config import Settings

    c = chromadb.PersistentClient(path=str(tmp_path / "db"), settings=Settings(anonymized_telemetry=False))
    c.create_collection("docs").add(ids=[f"d{i}" for i in range(N)], embeddings=X,
                                    metadatas=[{"n": i} for i in range(N)])
    c.close() if hasattr(c, "close") else None
    _check(str(tmp_path / "db"), 3, structural=False)


def test_lancedb(tmp_path: Path) -> None:
    import lancedb
    import pyarrow as pa

    db = lancedb.connect(str(tmp_path / "ldb"))
    def rows(lo: int, hi: int) -> pa.Table:
        return pa.table({"id": list(range(lo, hi)),
                         "vector": pa.FixedSizeListArray.from_arrays(pa.array(X[lo:hi].ravel()), DIM)})

    t = db.create_table("docs", rows(0, 100))
    t.add(rows(100, N))  # two fragments
    _check(str(tmp_path / "ldb"), 3, opts=SourceOptions(table="docs"))
    _check(str(tmp_path / "ldb"), 7, opts=SourceOptions(table="docs"))


def test_milvus(tmp_path: Path) -> None:
    from milvus_lite.server_manager import server_manager_instance
    from pymilvus import DataType, MilvusClient

    path = tmp_path / "m.db"
    c = MilvusClient(str(path))
    s = c.create_schema(auto_id=False)
    s.add_field("pk", DataType.INT64, is_primary=True)
    s.add_field("v", DataType.FLOAT_VECTOR, dim=DIM)
    ip = c.prepare_index_params()
    ip.add_index("v", metric_type="L2", index_type="FLAT")
    c.create_collection("docs", schema=s, index_params=ip)
    c.insert("docs", [{"pk": i, "v": X[i]} for i in range(N)])
    c.close()
    server_manager_instance.release_server(str(path))
    _check(str(path), 3, opts=SourceOptions(collection="docs"), structural=False)


def test_langchain(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from langchain_community.vectorstores import FAISS
        from langchain_core.embeddings import DeterministicFakeEmbedding

    store = FAISS.from_embeddings([(f"t{i}", X[i].tolist()) for i in range(N)], DeterministicFakeEmbedding(size=DIM))
    store.save_local(str(tmp_path / "lc"))
    _check(str(tmp_path / "lc"), 3, opts=SourceOptions(trust_pickle=True), structural=False)


def test_llamaindex(tmp_path: Path) -> None:
    from llama_index.core import VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.schema import TextNode

    nodes = [TextNode(id_=str(uuid.UUID(int=i + 1)), text=f"c{i}", embedding=X[i].tolist()) for i in range(N)]
    VectorStoreIndex(nodes, embed_model=MockEmbedding(embed_dim=DIM)).storage_context.persist(str(tmp_path / "li"))
    _check(str(tmp_path / "li"), 3, structural=False)


def test_qdrant_embedded_shard(tmp_path: Path) -> None:
    from cortex.api import migrate

    write_jsonl(tmp_path / "x.jsonl", X)
    migrate(str(tmp_path / "x.jsonl"), "src", path=str(tmp_path / "q"), state_dir=str(tmp_path / "st"))
    _check(str(tmp_path / "q" / "src"), 3, structural=False)


def test_pgvector(pg_server: PgServer) -> None:  # noqa: F811
    import psycopg

    pg_server.sql("DROP TABLE IF EXISTS parts")
    pg_server.sql("CREATE TABLE parts (id bigint PRIMARY KEY, v vector(8))")
    with psycopg.connect(pg_server.url, autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO parts VALUES (%s, %s::vector)",
                        [(i * 3, "[" + ",".join(map(str, X[i].tolist())) + "]") for i in range(N)])
    _check(pg_server.url, 3, opts=SourceOptions(table="parts"))  # primary-key ranges
    _check(pg_server.url, 7, opts=SourceOptions(table="parts"))
    pg_server.sql("DROP TABLE IF EXISTS pairs2")
    pg_server.sql("CREATE TABLE pairs2 (t int, d text, v vector(2), PRIMARY KEY (t, d))")
    pg_server.sql("INSERT INTO pairs2 SELECT t, 'd' || d, '[1,2]' FROM generate_series(1, 5) t, "
                  "generate_series(1, 9) d")
    _check(pg_server.url, 4, opts=SourceOptions(table="pairs2"))  # a composite key: ranges of (t, d)
    _check(pg_server.url, 50, opts=SourceOptions(table="pairs2"), structural=False)  # fewer rows than pieces


# -- running partitions -------------------------------------------------------------------------------
def test_partition_runs_then_finish(tmp_path: Path, cli) -> None:
    np.save(tmp_path / "m.npy", X)
    for i in (2, 0, 1):
        r = cli("qdrant", "migrate", "--source", "m.npy", "--target", "c", "--partitions", "3", "--partition", i,
                "--json")
        assert r.exit_code == 0, r.stderr
        assert json.loads(r.stdout)["written"] == len(range(*[N * i // 3, N * (i + 1) // 3]))
    r = cli("qdrant", "migrations", "--json")
    assert sorted(row["partition"]["i"] for row in json.loads(r.stdout)) == [0, 1, 2]
    r = cli("qdrant", "migrate", "--source", "m.npy", "--target", "c", "--partitions", "3", "--finish", "--json")
    assert r.exit_code == 0, r.stderr
    d = json.loads(r.stdout)
    assert (d["read"], d["written"], d["status"]) == (N, N, "done")
    r = cli("qdrant", "verify", "--collection", "c", "--source", "m.npy", "--full")
    assert r.exit_code == 0, r.stdout


def test_changed_split_and_unfinished_pieces_are_refused(tmp_path: Path, cli) -> None:
    write_jsonl(tmp_path / "x.jsonl", X)
    assert cli("qdrant", "migrate", "--source", "x.jsonl", "--target", "c", "--partitions", "2",
               "--partition", "0").exit_code == 0
    r = cli("qdrant", "migrate", "--source", "x.jsonl", "--target", "c", "--partitions", "3", "--partition", "1")
    assert r.exit_code == 4
    assert "split into 2 partitions before" in r.stderr and "--partitions 2" in r.stderr
    r = cli("qdrant", "migrate", "--source", "x.jsonl", "--target", "c", "--partitions", "2", "--finish")
    assert r.exit_code == 4 and "1: not started" in r.stderr
    r = cli("qdrant", "migrate", "--source", "x.jsonl", "--target", "c", "--partitions", "2", "--partition", "2")
    assert r.exit_code == 2 and "out of range" in r.stderr
    r = cli("qdrant", "migrate", "--source", "x.jsonl", "--target", "c", "--engine", "ray", "--partitions", "2")
    assert r.exit_code == 2 and "needs a Qdrant server" in r.stderr


def test_killed_partition_resumes_alone(tmp_path: Path) -> None:
    import signal

    from cortex_proc import Run

    write_jsonl(tmp_path / "x.jsonl", vectors(3000, DIM, seed=4))
    base = ["qdrant", "migrate", "--source", "x.jsonl", "--target", "c", "--batch-size", "100", "--partitions", "2",
            "--checkpoint-seconds", "0"]
    assert Run(tmp_path, [*base, "--partition", "0"]).wait() == 0
    run = Run(tmp_path, [*base, "--partition", "1"], pause="batch:3")
    run.wait_for("CORTEX_TEST_PAUSED batch:3")
    run.kill(signal.SIGKILL)
    run.wait()
    again = Run(tmp_path, [*base, "--partition", "1"])
    assert again.wait() == 0, again.stderr
    assert "resuming at" in again.stderr
    fin = Run(tmp_path, [*base, "--finish"])
    assert fin.wait() == 0, fin.stderr
    check = Run(tmp_path, ["qdrant", "verify", "--collection", "c", "--source", "x.jsonl", "--full"])
    assert check.wait() == 0, check.stdout


def test_sync_after_a_partitioned_migration_hashes_the_target_once(tmp_path: Path) -> None:
    """A partition writes part of the collection, so it leaves no sync state; the first sync hashes the target."""
    from cortex.api import migrate, sync

    src = write_jsonl(tmp_path / "x.jsonl", X)
    kw = dict(path=str(tmp_path / "q"), state_dir=str(tmp_path / "st"))
    for i in range(2):  # dot: what the target holds is bit-for-bit what was sent (cosine would be normalized)
        migrate(str(src), "c", partitions=2, partition=i, distance="dot", **kw)
    migrate(str(src), "c", partitions=2, finish=True, **kw)
    said: list[str] = []
    s = sync(str(src), "c", on_event=said.append, **kw)
    assert (s.pending, s.unchanged, s.deleted) == (0, N, 0), s
    assert any("hash" in m for m in said), said


def test_partitions_of_a_where_subset_then_finish(tmp_path: Path, cli) -> None:
    """Two subsets share a collection; one is split into partitions and finished on its own."""
    write_jsonl(tmp_path / "x.jsonl", X)
    base = ["qdrant", "migrate", "--source", "x.jsonl", "--target", "c", "--json"]
    go = [*base, "--where", "language = 'go'"]
    py = [*base, "--where", "language = 'python'", "--partitions", "2"]
    assert cli(*go).exit_code == 0
    for i in (1, 0):
        r = cli(*py, "--partition", i)
        assert r.exit_code == 0, r.stderr
    r = cli(*py, "--finish")
    assert r.exit_code == 0, r.stderr
    d = json.loads(r.stdout)
    assert (d["read"], d["written"], d["status"]) == (N // 2, N // 2, "done")
    assert not d["warnings"], d["warnings"]  # the go points already there are not counted as the subset's
    r = cli("qdrant", "migrate", "--source", "x.jsonl", "--target", "c", "--partitions", "2", "--finish")
    assert r.exit_code == 4 and "0: not started" in r.stderr  # the whole source was never split
    r = cli("qdrant", "verify", "--collection", "c", "--source", "x.jsonl", "--full")
    assert r.exit_code == 0, r.stdout
