"""LanceDB source: real LanceDB directories built with lancedb, migrated into embedded Qdrant."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from pathlib import Path

import lancedb
import numpy as np
import pyarrow as pa
import pytest
from lancedb.index import IvfFlat

from cortex.api import connect, migrate, verify
from cortex.errors import SourceError
from cortex.sources import SourceOptions, open_source
from cortex.sources.lancedb import LanceDBSource

N = 600
DIM = 16
RNG = np.random.default_rng(5)
X = RNG.standard_normal((N, DIM)).astype(np.float32)


def _fsl(x: np.ndarray) -> pa.Array:
    return pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), x.shape[1])


def _docs(lo: int, hi: int) -> pa.Table:
    ids = np.arange(lo, hi)
    return pa.table({
        "id": pa.array(ids, pa.int64()),
        "vector": _fsl(X[lo:hi]),
        "text": [f"text {i}" for i in ids],
        "meta": [{"n": int(i), "tags": ["a", f"t{i % 3}"]} for i in ids],
        "created": pa.array([dt.datetime(2024, 5, 1) + dt.timedelta(days=int(i)) for i in ids], pa.timestamp("us")),
    })


def _tree_hash(root: Path) -> dict[str, str]:
    return {str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(root.rglob("*")) if f.is_file()}


@pytest.fixture(scope="module")
def ldb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """docs (3 fragments, no index), items (IVF_FLAT dot index), noid, twovec, novec, empty."""
    root = tmp_path_factory.mktemp("lance") / "db"
    db = lancedb.connect(str(root))
    t = db.create_table("docs", _docs(0, 200))
    t.add(_docs(200, 400))
    t.add(_docs(400, N))
    items = db.create_table("items", pa.table({"id": [f"item-{i}" for i in range(300)], "emb": _fsl(X[:300]),
                                               "price": [i / 4 for i in range(300)]}))
    items.create_index("emb", config=IvfFlat(distance_type="dot", num_partitions=2))
    db.create_table("noid", pa.table({"v": _fsl(X[:10]), "label": [f"l{i}" for i in range(10)]}))
    db.create_table("twovec", pa.table({"id": [1, 2], "a": _fsl(X[:2, :4]), "b": _fsl(X[:2, :8])}))
    db.create_table("novec", pa.table({"id": [1], "name": ["x"]}))
    empty = pa.table({"id": pa.array([], pa.int64()), "vector": pa.array([], pa.list_(pa.float32(), 4))})
    db.create_table("empty", empty)
    return root


def _src(root: Path, **kw) -> LanceDBSource:
    return LanceDBSource(str(root), SourceOptions(**kw))


def _all(src: LanceDBSource, batch_size: int = 100, resume=None):
    ids, vecs, pays, curs = [], [], [], []
    for b in src.batches(batch_size, resume):
        ids += [int(i) if isinstance(i, np.integer) else i for i in b.ids]
        vecs.append(b.vectors)
        pays += b.payloads or []
        curs.append(b.cursor)
        assert not b.rejected
    return ids, np.concatenate(vecs), pays, curs


def test_detect(ldb):
    assert LanceDBSource.detect(str(ldb))
    assert LanceDBSource.detect(str(ldb / "docs.lance"))
    assert not LanceDBSource.detect(str(ldb.parent))
    with open_source(str(ldb), None, SourceOptions(table="docs")) as src:
        assert src.kind == "lancedb"


def test_several_tables_need_a_choice(ldb):
    listing = r"6 tables \(docs, empty, items, noid, novec, twovec\); choose one with --table"
    with pytest.raises(SourceError, match=listing):
        _src(ldb).info()
    with pytest.raises(SourceError, match="no LanceDB table 'nope'; tables: docs, empty"):
        _src(ldb, table="nope").info()


def test_info_batches_payload(ldb):
    src = _src(ldb, table="docs")
    info = src.info()
    assert (info.dim, info.count, info.distance) == (DIM, N, None)
    assert any("--distance" in w for w in info.warnings)
    ids, vecs, pays, curs = _all(src, 128)
    assert ids == list(range(N))
    np.testing.assert_array_equal(vecs, X)
    assert pays[7] == {"text": "text 7", "meta": {"n": 7, "tags": ["a", "t1"]}, "created": "2024-05-08T00:00:00"}
    assert curs[-1] == {"offset": N, "version": info.details["version"]}


def test_table_dir_as_path(ldb):
    src = LanceDBSource(str(ldb / "docs.lance"))
    assert src.info().count == N


def test_resume_pins_the_version(ldb, tmp_path):
    root = tmp_path / "db"
    shutil.copytree(ldb, root)
    src = _src(root, table="docs")
    it = src.batches(150)
    next(it)
    second = next(it)
    done = second.cursor["offset"]
    assert 150 < done <= 300  # batches stop at fragment ends
    lancedb.connect(str(root)).open_table("docs").delete("id < 100")  # the table changes after the cursor
    rest, vecs, _, curs = _all(_src(root, table="docs"), 100, resume=second.cursor)
    assert rest == list(range(done, N))  # same rows as the version the migration started on
    np.testing.assert_array_equal(vecs, X[done:])
    assert curs[-1]["version"] == second.cursor["version"]
    assert _src(root, table="docs").fingerprint()["version"] != src.fingerprint()["version"]


def test_index_metric_and_search(ldb):
    src = _src(ldb, table="items")
    info = src.info()
    assert info.distance == "dot" and info.details["indexes"][0]["metric"] == "dot"
    ids, vecs, pays, _ = _all(src, 64)
    assert ids[:2] == ["item-0", "item-1"] and pays[4] == {"price": 1.0}
    got, scores = src.search(X[[3, 9]], 5)
    exact = X[:300] @ X[[3, 9]].T
    for qi in range(2):
        top = np.argsort(-exact[:, qi])[:5]
        assert got[qi][0] == f"item-{top[0]}"
        np.testing.assert_allclose(scores[qi, 0], exact[top[0], qi], rtol=1e-4)


def test_search_without_index_uses_default_metric(ldb):
    src = _src(ldb, table="docs")
    got, scores = src.search(X[:1], 3)
    assert got[0][0] == 0 and abs(scores[0, 0] - 1.0) < 1e-5  # cosine similarity with itself
    src = LanceDBSource(str(ldb), SourceOptions(table="docs", distance="euclid"))
    got, scores = src.search(X[:1] + 1.0, 2)
    d = np.linalg.norm(X - (X[0] + 1.0), axis=1)
    assert got[0][0] == int(np.argmin(d))
    np.testing.assert_allclose(scores[0, 0], d.min(), rtol=1e-4)  # euclidean distance, not squared


def test_no_id_column_uses_offsets(ldb):
    src = _src(ldb, table="noid")
    assert any("row offsets" in w for w in src.info().warnings)
    ids, vecs, pays, _ = _all(src, 3)
    assert ids == list(range(10)) and pays[4] == {"label": "l4"}
    ids, _, _, _ = _all(src, 3, resume={"offset": 6, "version": src.info().details["version"]})
    assert ids == [6, 7, 8, 9]
    with pytest.raises(NotImplementedError):
        src.search(X[:1, :DIM], 2)


def test_vector_and_id_options(ldb):
    with pytest.raises(SourceError, match=r"several vector-like columns \(a, b\); choose one with --vector-column"):
        _src(ldb, table="twovec").info()
    src = _src(ldb, table="twovec", vector_column="b")
    assert src.info().dim == 8
    assert any("not migrated: a" in w for w in src.info().warnings)
    src = _src(ldb, table="docs", id_column="text")
    assert next(src.batches(2)).ids == ["text 0", "text 1"]
    with pytest.raises(SourceError, match="no id column 'nope'"):
        _src(ldb, table="docs", id_column="nope").info()
    with pytest.raises(SourceError, match="'text' is string, not a list of floats"):
        _src(ldb, table="docs", vector_column="text").info()


def test_read_only(ldb):
    before = _tree_hash(ldb)
    for name in ("docs", "items"):
        src = _src(ldb, table=name)
        src.info()
        src.fingerprint()
        list(src.batches(100))
        src.search(X[:2], 3)
        src.close()
    assert _tree_hash(ldb) == before


# -- bad inputs -----------------------------------------------------------------------------------


def test_bad_inputs(ldb, tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        _src(tmp_path / "missing").info()
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(SourceError, match="is a directory \\(the database\\), not a file|not a file"):
        LanceDBSource(str(f)).info()
    (tmp_path / "plain").mkdir()
    with pytest.raises(SourceError, match="no LanceDB tables"):
        _src(tmp_path / "plain").info()
    with pytest.raises(SourceError,
                       match=r"no vector-like column \(a list of float16/32/64\); columns are: id \(int64\), name"):
        _src(ldb, table="novec").info()
    with pytest.raises(SourceError, match="the table has no rows; nothing to migrate"):
        _src(ldb, table="empty").info()
    with pytest.raises(SourceError, match=f"holds {DIM}-dimensional vectors, not 3; fix --dimensions"):
        _src(ldb, table="docs", dimensions=3).info()


def test_corrupt_table(ldb, tmp_path):
    root = tmp_path / "db"
    shutil.copytree(ldb, root)
    for f in (root / "docs.lance" / "data").iterdir():
        f.write_bytes(f.read_bytes()[:100])  # truncate every data file
    src = _src(root, table="docs")
    with pytest.raises(SourceError, match="docs"):
        src.info()
        list(src.batches(100))
    shutil.rmtree(root / "items.lance" / "_versions")
    with pytest.raises(SourceError, match="cannot open LanceDB table 'items'|no LanceDB table 'items'"):
        _src(root, table="items").info()


# -- end to end -----------------------------------------------------------------------------------


def test_migrate_and_verify(ldb, tmp_path, qdrant_path):
    opts = SourceOptions(table="items")
    s = migrate(str(ldb), "items", path=str(qdrant_path), options=opts, batch_size=64,
                state_dir=str(tmp_path / "state"))
    assert (s.read, s.written, s.rejected) == (300, 300, 0)
    assert s.distance == "dot"
    r = verify("items", source=str(ldb), path=str(qdrant_path), options=opts, full=True)
    assert r.ok, r.problems
    from cortex.ids import map_id

    pid = map_id("item-12")[0]
    with connect(path=str(qdrant_path)) as t:
        p = t.retrieve("items", [pid], with_vectors=True)[pid]
    assert p.payload == {"price": 3.0, "source_id": "item-12"}
    np.testing.assert_allclose(p.vector, X[12], rtol=1e-6)


def test_cli_migrate_docs(ldb, cli, tmp_path):
    qd = tmp_path / "qd"
    res = cli("qdrant", "migrate", "--source", ldb, "--table", "docs", "--target", "docs", "--path", qd)
    assert res.exit_code == 0, res.output
    with connect(path=str(qd)) as t:
        assert t.count("docs") == N
        p = t.retrieve("docs", [5], with_vectors=False)[5]
    assert p.payload["text"] == "text 5"
    res = cli("qdrant", "migrate", "--source", ldb, "--target", "x", "--path", qd)
    assert res.exit_code == 2 and "choose one with --table" in res.output
