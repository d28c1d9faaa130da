"""Milvus Lite source: a real milvus-lite database, migrated into embedded Qdrant."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from cortex.api import connect, migrate, verify
from cortex.errors import SourceError
from cortex.ids import map_id
from cortex.sources import SourceOptions, open_source
from cortex.sources.milvus import MilvusLiteSource, _vectors

N = 300
DIM = 8


@pytest.fixture(scope="module")
def milvus_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """docs (INT64 pk, COSINE, scalar/JSON/array/dynamic fields), named (VARCHAR pk, L2, + sparse), empty."""
    from milvus_lite.server_manager import server_manager_instance
    from pymilvus import DataType, MilvusClient

    path = tmp_path_factory.mktemp("milvus") / "app.db"
    x = np.random.default_rng(11).standard_normal((N, DIM)).astype(np.float32)
    c = MilvusClient(str(path))

    s = c.create_schema(auto_id=False, enable_dynamic_field=True)
    s.add_field("pk", DataType.INT64, is_primary=True)
    s.add_field("embedding", DataType.FLOAT_VECTOR, dim=DIM)
    s.add_field("title", DataType.VARCHAR, max_length=64)
    s.add_field("score", DataType.DOUBLE)
    s.add_field("flag", DataType.BOOL)
    s.add_field("meta", DataType.JSON)
    s.add_field("tags", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=4, max_length=16)
    ip = c.prepare_index_params()
    ip.add_index("embedding", metric_type="COSINE", index_type="FLAT")
    c.create_collection("docs", schema=s, index_params=ip)
    rows = [{"pk": 1000 + i, "embedding": x[i], "title": f"title {i}", "score": i / 4, "flag": i % 2 == 0,
             "meta": {"lang": "en", "n": i}, "tags": ["a", f"t{i % 3}"]} for i in range(N)]
    for i in range(0, N, 7):
        rows[i]["extra"] = f"dyn{i}"  # a dynamic field on some rows
    c.insert("docs", rows)

    s = c.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field("name", DataType.VARCHAR, is_primary=True, max_length=32)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    s.add_field("sp", DataType.SPARSE_FLOAT_VECTOR)
    ip = c.prepare_index_params()
    ip.add_index("vec", metric_type="L2", index_type="FLAT")
    ip.add_index("sp", metric_type="IP", index_type="SPARSE_INVERTED_INDEX")
    c.create_collection("named", schema=s, index_params=ip)
    c.insert("named", [{"name": str(i) if i % 2 else f"item-{i}", "vec": x[i], "sp": {3: 0.5, i + 10: 1.5}}
                       for i in range(20)])

    s = c.create_schema(auto_id=False)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("v", DataType.FLOAT_VECTOR, dim=DIM)
    ip = c.prepare_index_params()
    ip.add_index("v", metric_type="IP", index_type="FLAT")
    c.create_collection("empty", schema=s, index_params=ip)
    c.close()
    server_manager_instance.release_server(str(path))
    return path, x


def _tree_hash(root: Path) -> dict[str, str]:
    return {str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(root.rglob("*")) if f.is_file()}


def _opts(name: str | None, **kw) -> SourceOptions:
    return SourceOptions(collection=name, **kw)


def test_detect(milvus_db, tmp_path):
    path, _ = milvus_db
    assert MilvusLiteSource.detect(str(path))
    assert not MilvusLiteSource.detect(str(tmp_path))
    assert open_source(str(path), None, _opts("docs")).kind == "milvus"


def test_several_collections_need_a_choice(milvus_db):
    path, _ = milvus_db
    with pytest.raises(SourceError, match=r"3 collections \(docs, empty, named\).*--source-collection"):
        MilvusLiteSource(str(path)).info()


def test_info(milvus_db):
    path, _ = milvus_db
    with MilvusLiteSource(str(path), _opts("docs")) as src:
        info = src.info()
        assert (info.dim, info.distance, info.count) == (DIM, "cosine", N)
        assert info.details["primary_key"] == "pk" and info.details["vector_field"] == "embedding"
        assert any("temporary copy" in w for w in info.warnings)
        tmp = src._tmp
    assert not Path(tmp).exists()
    with MilvusLiteSource(str(path), _opts("named")) as src:
        info = src.info()
        assert (info.distance, info.count) == ("euclid", 20)
        assert not any("'sp'" in w for w in info.warnings)  # sparse fields are migrated
        assert info.details["sparse_vectors"] == {"sp": {"modifier": None}}


def test_batches_payloads_and_resume(milvus_db):
    path, x = milvus_db
    with MilvusLiteSource(str(path), _opts("docs")) as src:
        batches = list(src.batches(128))
        assert [len(b) for b in batches] == [128, 128, 44]
        ids = np.concatenate([b.ids for b in batches])
        np.testing.assert_array_equal(ids, np.arange(1000, 1000 + N))  # int pks: a sorted int array
        np.testing.assert_array_equal(np.concatenate([b.vectors for b in batches]), x)
        assert batches[0].payloads[7] == {"title": "title 7", "score": 1.75, "flag": False,
                                          "meta": {"lang": "en", "n": 7}, "tags": ["a", "t1"], "extra": "dyn7"}
        assert "extra" not in batches[0].payloads[1]
        resumed = np.concatenate([b.ids for b in src.batches(128, resume=batches[1].cursor)])
        np.testing.assert_array_equal(resumed, ids[256:])


def test_varchar_ids_and_sparse(milvus_db):
    path, x = milvus_db
    with MilvusLiteSource(str(path), _opts("named")) as src:
        [b] = list(src.batches(100))
    assert b.ids == sorted(str(i) if i % 2 else f"item-{i}" for i in range(20))
    j = b.ids.index("item-4")
    np.testing.assert_array_equal(b.vectors[j], x[4])
    assert b.payloads[j] == {}
    assert b.sparse is not None and b.sparse["sp"][j] == ([3, 14], [0.5, 1.5])


def test_migrate_leaves_source_untouched(milvus_db, qdrant_path, tmp_path):
    path, x = milvus_db
    before = _tree_hash(path)
    s = migrate(str(path), "m", path=str(qdrant_path), options=_opts("docs"), batch_size=100,
                state_dir=str(tmp_path / "state"))
    assert (s.read, s.written, s.rejected, s.distance) == (N, N, 0, "cosine")
    assert verify("m", source=str(path), path=str(qdrant_path), options=_opts("docs"), full=True).ok
    s2 = migrate(str(path), "n", path=str(qdrant_path), options=_opts("named"), state_dir=str(tmp_path / "state"))
    assert (s2.written, s2.distance) == (20, "euclid")
    assert _tree_hash(path) == before  # loading writes index files: only into the temporary copy
    with connect(path=str(qdrant_path)) as t:
        p = t.retrieve("m", [1014], with_vectors=True)[1014]
        named = t.retrieve("n", [3, map_id("item-4")[0]], with_vectors=True)
    assert p.payload == {"title": "title 14", "score": 3.5, "flag": True, "meta": {"lang": "en", "n": 14},
                         "tags": ["a", "t2"], "extra": "dyn14"}
    np.testing.assert_allclose(p.vector, x[14] / np.linalg.norm(x[14]), atol=1e-6)
    assert named[3].payload == {}  # "3" is a numeric string: point id 3
    assert named[map_id("item-4")[0]].payload == {"source_id": "item-4"}


def test_search(milvus_db):
    path, x = milvus_db
    with MilvusLiteSource(str(path), _opts("docs")) as src:
        ids, scores = src.search(x[[3, 5]], 4)
    assert [r[0] for r in ids] == [1003, 1005]
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)  # cosine similarity
    with MilvusLiteSource(str(path), _opts("named")) as src:
        ids, d = src.search(x[:1] + 0.5, 1)
    assert ids == [["item-0"]] and d[0, 0] == pytest.approx(0.5 * np.sqrt(DIM), rel=1e-4)  # not squared


def test_bad_inputs(milvus_db, tmp_path):
    path, _ = milvus_db
    with pytest.raises(SourceError, match="no Milvus collection 'nope'; it holds: docs, empty, named"):
        MilvusLiteSource(str(path), _opts("nope")).info()
    with pytest.raises(SourceError, match="'empty' is empty; nothing to migrate"):
        MilvusLiteSource(str(path), _opts("empty")).info()
    with pytest.raises(SourceError, match="'vec2' is not a dense vector field of 'named'; dense vector fields: vec"):
        MilvusLiteSource(str(path), _opts("named", vector_column="vec2")).info()
    with pytest.raises(SourceError, match="no such file"):
        MilvusLiteSource(str(tmp_path / "missing.db")).info()
    (tmp_path / "plain").mkdir()
    with pytest.raises(SourceError, match="not a Milvus Lite database"):
        MilvusLiteSource(str(tmp_path / "plain")).info()


def test_corrupt_database(milvus_db, tmp_path):
    path, _ = milvus_db
    bad = tmp_path / "bad.db"
    shutil.copytree(path, bad)
    (bad / "collections" / "docs" / "schema.json").write_text("{ not json")
    want = r"bad.db: milvus-lite .* cannot list the collections .*bad.db/collections/docs/schema.json' is not valid"
    with pytest.raises(SourceError, match=want):
        MilvusLiteSource(str(bad), _opts("docs")).info()


def test_milvus_lite_2x_file_names_the_version(tmp_path):
    """milvus-lite 2.x wrote one SQLite file; 3.x cannot read it (its open fails with FileExistsError)."""
    old = tmp_path / "old.db"
    con = sqlite3.connect(old)
    con.execute("CREATE TABLE collection_meta (id INTEGER PRIMARY KEY, collection_name VARCHAR(1024), "
                "meta_type VARCHAR(1024), blob_field BLOB, string_field VARCHAR(1024))")
    con.execute('CREATE TABLE "docs" (id INTEGER PRIMARY KEY, milvus_id VARCHAR(1024), data BLOB)')
    con.commit()
    con.close()
    assert MilvusLiteSource.detect(str(old))
    with pytest.raises(SourceError, match=r"milvus-lite 2\.x database .* pip install 'milvus-lite>=2\.4,<3'"):
        MilvusLiteSource(str(old)).info()
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    assert not MilvusLiteSource.detect(str(other))  # an unrelated SQLite file


def test_16bit_and_binary_vectors_convert():
    """milvus-lite 2.x returns FLOAT16/BFLOAT16/BINARY rows as bytes (3.x cannot store them)."""
    from pymilvus import DataType

    x = np.random.default_rng(2).standard_normal((3, 16)).astype(np.float32)
    f16 = [[r.astype(np.float16).tobytes()] for r in x]
    np.testing.assert_array_equal(_vectors(f16, DataType.FLOAT16_VECTOR, 16), x.astype(np.float16).astype(np.float32))
    bf = (x.view(np.uint32) >> 16).astype(np.uint16)  # truncation to bfloat16
    got = _vectors([r.tobytes() for r in bf], DataType.BFLOAT16_VECTOR, 16)
    np.testing.assert_array_equal(got, (bf.astype(np.uint32) << 16).view(np.float32))
    assert np.abs(got - x).max() < 0.02
    bits = (x > 0).astype(np.uint8)
    packed = [[np.packbits(r).tobytes()] for r in bits]
    np.testing.assert_array_equal(_vectors(packed, DataType.BINARY_VECTOR, 16), bits.astype(np.float32))


def test_cli(milvus_db, cli, tmp_path):
    path, _ = milvus_db
    qd = tmp_path / "qd"
    res = cli("qdrant", "migrate", "--source", path, "--target", "m", "--path", qd, "--source-collection", "named")
    assert res.exit_code == 0, res.output
    res = cli("qdrant", "verify", "--collection", "m", "--source", path, "--path", qd,
              "--source-collection", "named", "--full")
    assert res.exit_code == 0, res.output
    res = cli("qdrant", "migrate", "--source", path, "--target", "x", "--path", qd, "--source-collection", "empty")
    assert res.exit_code == 2 and "is empty; nothing to migrate" in res.stderr and "Traceback" not in res.output


def test_warns_when_another_process_holds_the_database(milvus_db, tmp_path):
    from milvus_lite.server_manager import server_manager_instance
    from pymilvus import MilvusClient

    path, _ = milvus_db
    live = tmp_path / "live.db"
    shutil.copytree(path, live)
    c = MilvusClient(str(live))  # holds live.db/LOCK, like a running application
    try:
        with MilvusLiteSource(str(live), _opts("named")) as src:
            assert any("open in another process" in w for w in src.info().warnings)
    finally:
        c.close()
        server_manager_instance.release_server(str(live))
    with MilvusLiteSource(str(live), _opts("named")) as src:
        assert not any("open in another process" in w for w in src.info().warnings)
