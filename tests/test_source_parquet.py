"""Parquet source: real pyarrow files (single file, directory, vector-io VDF export), into embedded Qdrant."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cortex.api import connect, migrate, verify
from cortex.errors import SourceError
from cortex.ids import map_id
from cortex.sources import SourceOptions, open_source
from cortex.sources.parquet import ParquetSource, list_to_matrix

DIM = 16
RNG = np.random.default_rng(3)


def _fsl(x: np.ndarray) -> pa.Array:
    return pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), x.shape[1])


def _table(lo: int, n: int, x: np.ndarray) -> pa.Table:
    ids = np.arange(lo, lo + n)
    return pa.table({
        "id": pa.array(ids, pa.int64()),
        "embedding": _fsl(x),
        "title": [f"doc {i}" for i in ids],
        "n": pa.array(ids % 7, pa.int32()),
        "score": ids / 4,
        "ok": ids % 2 == 0,
        "created": pa.array([dt.datetime(2024, 1, 1, 12) + dt.timedelta(hours=int(i)) for i in ids],
                            pa.timestamp("us", tz="UTC")),
        "day": pa.array([dt.date(2024, 3, 1)] * n),
        "price": pa.array([Decimal("1.25")] * n, pa.decimal128(6, 2)),
        "tags": [["a", f"t{i % 3}"] for i in ids],
        "meta": [{"k": int(i), "when": dt.datetime(2020, 1, 1)} for i in ids],
        "blob": [b"\x00\xff", ] * n,
    })


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("parquet")
    x = RNG.standard_normal((1000, DIM)).astype(np.float32)
    single = root / "single.parquet"
    pq.write_table(_table(0, 1000, x), single, row_group_size=128)
    # A directory of 3 files: natural order 2 < 10 (a plain sort would put 10 first).
    d = root / "dir"
    d.mkdir()
    parts = [(0, 300, "part-2.parquet"), (300, 400, "part-10.parquet"), (700, 300, "part-11.parquet")]
    for lo, n, name in parts:
        pq.write_table(_table(lo, n, x[lo:lo + n]), d / name, row_group_size=100)
    return {"root": root, "x": x, "single": single, "dir": d}


def _read_all(src, batch_size=100, resume=None):
    ids, vecs, pays, rej, cursors = [], [], [], [], []
    for b in src.batches(batch_size, resume):
        ids += [int(i) if not isinstance(i, str) else i for i in b.ids]
        vecs.append(b.vectors)
        pays += b.payloads or [None] * len(b)
        rej += b.rejected
        cursors.append(b.cursor)
    return ids, np.concatenate(vecs) if vecs else np.empty((0, DIM)), pays, rej, cursors


def test_detect(data):
    assert ParquetSource.detect(str(data["single"]))
    assert ParquetSource.detect(str(data["dir"]))
    noext = data["root"] / "noext"
    noext.write_bytes(data["single"].read_bytes())
    assert ParquetSource.detect(str(noext))  # PAR1 magic
    assert not ParquetSource.detect(str(data["root"] / "missing.parquet"))
    with open_source(str(data["dir"])) as src:
        assert src.kind == "parquet"


def test_single_file_info_and_batches(data):
    src = ParquetSource(str(data["single"]))
    info = src.info()
    assert (info.dim, info.count, info.distance) == (DIM, 1000, None)
    assert info.details["vector_column"] == "embedding" and info.details["id_column"] == "id"
    assert any("distance" in w for w in info.warnings)
    ids, vecs, pays, rej, cursors = _read_all(src, 128)
    assert ids == list(range(1000)) and not rej
    np.testing.assert_array_equal(vecs, data["x"])
    assert vecs.dtype == np.float32
    assert pays[5] == {
        "title": "doc 5", "n": 5, "score": 1.25, "ok": False, "created": "2024-01-01T17:00:00+00:00",
        "day": "2024-03-01", "price": 1.25, "tags": ["a", "t2"],
        "meta": {"k": 5, "when": "2020-01-01T00:00:00"}, "blob": "AP8=",
    }
    json.dumps(pays)  # plain JSON types only
    assert cursors[-1] == {"file": 0, "row": 1000}


def test_int_ids_come_as_numpy_array(data):
    b = next(ParquetSource(str(data["single"])).batches(50))
    assert isinstance(b.ids, np.ndarray) and b.ids.dtype.kind == "i"


def test_directory_natural_order_and_resume(data):
    src = ParquetSource(str(data["dir"]))
    assert src.info().count == 1000
    assert [f.name for f in src.layout()["files"]] == ["part-2.parquet", "part-10.parquet", "part-11.parquet"]
    ids, vecs, _, _, cursors = _read_all(src, 64)
    assert ids == list(range(1000))
    np.testing.assert_array_equal(vecs, data["x"])
    # Resume from every cursor: the rest is exactly what followed it.
    pos = 0
    seen = 0
    for b in src.batches(64):
        seen += len(b)
        pos += 1
        if pos % 3:
            continue
        rest, rvecs, _, _, _ = _read_all(ParquetSource(str(data["dir"])), 64, resume=b.cursor)
        assert rest == list(range(seen, 1000))
        np.testing.assert_array_equal(rvecs, data["x"][seen:])
    # A cursor in the middle of a row group and of a batch.
    rest, _, _, _, _ = _read_all(src, 50, resume={"file": 1, "row": 137})
    assert rest == list(range(437, 1000))


def test_no_id_column_uses_global_row_numbers(tmp_path):
    x = RNG.standard_normal((30, 4)).astype(np.float32)
    for i, (lo, hi) in enumerate([(0, 10), (10, 30)]):
        pq.write_table(pa.table({"vec": _fsl(x[lo:hi]), "label": [f"l{j}" for j in range(lo, hi)]}),
                       tmp_path / f"{i}.parquet")
    src = ParquetSource(str(tmp_path))
    info = src.info()
    assert info.details["id_column"] is None and any("row numbers" in w for w in info.warnings)
    ids, vecs, pays, _, _ = _read_all(src, 7)
    assert ids == list(range(30)) and pays[12] == {"label": "l12"}
    rest, _, _, _, _ = _read_all(src, 7, resume={"file": 1, "row": 5})
    assert rest == list(range(15, 30))


def test_list_vectors_bad_rows_rejected_with_location(tmp_path):
    x = RNG.standard_normal((20, 4))
    vecs = [list(map(float, r)) for r in x]
    vecs[3] = None
    vecs[7] = vecs[7][:3]
    vecs[11][1] = None
    f = tmp_path / "lists.parquet"
    pq.write_table(pa.table({"id": [f"k{i}" for i in range(20)], "vector": pa.array(vecs, pa.list_(pa.float64())),
                             "n": list(range(20))}), f)
    src = ParquetSource(str(f))
    assert src.info().dim == 4
    ids, got, pays, rej, _ = _read_all(src, 6)
    good = [i for i in range(20) if i not in (3, 7, 11)]
    assert ids == [f"k{i}" for i in good]
    np.testing.assert_allclose(got, x[good].astype(np.float32))
    assert [p["n"] for p in pays] == good
    assert [(r.location, r.id) for r in rej] == [(f"{f}:3", "k3"), (f"{f}:7", "k7"), (f"{f}:11", "k11")]
    assert "null" in rej[0].reason and "3 dimensions, expected 4" in rej[1].reason
    assert "null value" in rej[2].reason
    assert rej[1].raw["payload"] == {"n": 7}


def test_float16_and_null_ids(tmp_path):
    x = RNG.standard_normal((10, 8)).astype(np.float16)
    f = tmp_path / "half.parquet"
    pq.write_table(pa.table({"id": pa.array([1, 2, None] + list(range(4, 11)), pa.int64()), "v": _fsl(x)}), f)
    ids, got, _, rej, _ = _read_all(ParquetSource(str(f)), 4)
    assert ids == [1, 2] + list(range(4, 11))
    np.testing.assert_array_equal(got, np.delete(x, 2, axis=0).astype(np.float32))
    assert len(rej) == 1 and rej[0].location == f"{f}:2" and "id column 'id' is null" in rej[0].reason


def test_list_to_matrix_sliced_arrays_zero_copy():
    x = RNG.standard_normal((10, 4)).astype(np.float32)
    fsl = _fsl(x)
    m, bad = list_to_matrix(fsl.slice(3, 4), 4)
    assert not bad
    np.testing.assert_array_equal(m, x[3:7])
    m, _ = list_to_matrix(fsl, 4)
    assert np.shares_memory(m, np.frombuffer(fsl.values.buffers()[1], np.float32))  # no copy
    lst = pa.ListArray.from_arrays(pa.array(np.arange(0, 44, 4, dtype=np.int32)), pa.array(x.ravel()))
    m, bad = list_to_matrix(lst.slice(2, 5), 4)
    assert not bad
    np.testing.assert_array_equal(m, x[2:7])


def test_vector_and_id_column_options(tmp_path):
    x = RNG.standard_normal((12, 4)).astype(np.float32)
    y = RNG.standard_normal((12, 6)).astype(np.float32)
    f = tmp_path / "two.parquet"
    pq.write_table(pa.table({"key": [f"p{i}" for i in range(12)], "a": _fsl(x), "b": _fsl(y), "id": range(12)}), f)
    with pytest.raises(SourceError, match=r"several vector-like columns \(a, b\).*--vector-column"):
        ParquetSource(str(f)).info()
    src = ParquetSource(str(f), SourceOptions(vector_column="b", id_column="key"))
    info = src.info()
    assert info.dim == 6 and any("not migrated: a" in w for w in info.warnings)
    ids, got, pays, _, _ = _read_all(src, 5)
    assert ids == [f"p{i}" for i in range(12)] and pays[0] == {"id": 0}
    np.testing.assert_array_equal(got, y)
    with pytest.raises(SourceError, match="no column 'nope'"):
        ParquetSource(str(f), SourceOptions(vector_column="nope")).info()
    with pytest.raises(SourceError, match="'key' is string, not a list of floats"):
        ParquetSource(str(f), SourceOptions(vector_column="key")).info()
    with pytest.raises(SourceError, match="no id column 'nope'"):
        ParquetSource(str(f), SourceOptions(vector_column="a", id_column="nope")).info()


# -- bad inputs -------------------------------------------------------------------------------------------


def test_missing_path(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        ParquetSource(str(tmp_path / "nope.parquet")).info()


def test_not_parquet_and_truncated(data, tmp_path):
    junk = tmp_path / "junk.parquet"
    junk.write_text("id,vector\n1,2\n")
    with pytest.raises(SourceError, match=r"junk.parquet: not a readable Parquet file"):
        ParquetSource(str(junk)).info()
    cut = tmp_path / "cut.parquet"
    raw = data["single"].read_bytes()
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(SourceError, match=r"cut.parquet: not a readable Parquet file.*truncated"):
        ParquetSource(str(cut)).info()
    empty = tmp_path / "zero.parquet"
    empty.write_bytes(b"")
    with pytest.raises(SourceError, match="not a readable Parquet file"):
        ParquetSource(str(empty)).info()


def test_corrupt_data_page(tmp_path):
    x = RNG.standard_normal((2000, 8)).astype(np.float32)
    f = tmp_path / "corrupt.parquet"
    pq.write_table(pa.table({"id": range(2000), "v": _fsl(x)}), f, compression="snappy", use_dictionary=False)
    off = pq.ParquetFile(f).metadata.row_group(0).column(1).data_page_offset
    raw = bytearray(f.read_bytes())
    raw[off:off + 64] = b"\xde\xad\xbe\xef" * 16  # garble the vector column's page header, keep the footer
    f.write_bytes(bytes(raw))
    src = ParquetSource(str(f))
    src.info()
    with pytest.raises(SourceError, match=r"corrupt.parquet: cannot read rows.*corrupt"):
        list(src.batches(500))


def test_no_vector_column_and_empty(tmp_path):
    f = tmp_path / "novec.parquet"
    pq.write_table(pa.table({"id": [1, 2], "ints": [[1, 2], [3, 4]], "s": ["a", "b"]}), f)
    with pytest.raises(SourceError, match=r"no vector-like column.*ints \(list<\w+: int64>\)"):
        ParquetSource(str(f)).info()
    e = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"id": pa.array([], pa.int64()), "v": pa.array([], pa.list_(pa.float32(), 4))}), e)
    with pytest.raises(SourceError, match="no rows; nothing to migrate"):
        ParquetSource(str(e)).info()
    d = tmp_path / "emptydir"
    d.mkdir()
    with pytest.raises(SourceError, match="no .parquet files"):
        ParquetSource(str(d)).info()


def test_wrong_dimensions_flag(data):
    with pytest.raises(SourceError, match=f"have {DIM} dimensions, not 8; fix --dimensions"):
        ParquetSource(str(data["single"]), SourceOptions(dimensions=8)).info()


# -- vector-io VDF export ---------------------------------------------------------------------------------


def _vdf(root: Path, indexes: dict[str, tuple[np.ndarray, str]]) -> Path:
    """A directory laid out as vector-io's export writes it: VDF_META.json + <index>/<n>.parquet."""
    vdf = root / "vdf_20240101_120000_abcde"
    metas = {}
    for name, (x, metric) in indexes.items():
        (vdf / name).mkdir(parents=True)
        n = len(x)
        step = max(1, n // 11 + 1)
        for k, lo in enumerate(range(0, n, step), 1):  # 1.parquet .. 11.parquet, as save_vectors_to_parquet
            ids = [f"{name}-{i}" for i in range(lo, min(n, lo + step))]
            t = pa.table({"id": ids,
                          "vector": pa.array([list(map(float, r)) for r in x[lo:lo + step]], pa.list_(pa.float64())),
                          "text": [f"text {i}" for i in range(lo, min(n, lo + step))],
                          "__index_level_0__": range(len(ids))})
            pq.write_table(t, vdf / name / f"{k}.parquet")
        metas[name] = [{
            "namespace": "", "index_name": name, "total_vector_count": n, "exported_vector_count": n,
            "dimensions": x.shape[1], "model_name": "NOT_PROVIDED", "vector_columns": ["vector"],
            "data_path": name, "metric": metric, "index_config": None,
        }]
    meta = {"version": "0.1.300", "file_structure": [], "author": "test", "exported_from": "pinecone",
            "indexes": metas, "exported_at": "2024-01-01T12:00:00+00:00"}
    (vdf / "VDF_META.json").write_text(json.dumps(meta, indent=4))
    return vdf


def test_vdf_layout(tmp_path):
    x = RNG.standard_normal((120, 12)).astype(np.float32)
    y = RNG.standard_normal((5, 3)).astype(np.float32)
    vdf = _vdf(tmp_path, {"products": (x, "Cosine"), "small": (y, "Dot")})
    assert ParquetSource.detect(str(vdf))
    with pytest.raises(SourceError, match=r"several indexes/namespaces: products, small.*--source-collection"):
        ParquetSource(str(vdf)).info()
    with pytest.raises(SourceError, match="no index 'nope'.*it holds: products, small"):
        ParquetSource(str(vdf), SourceOptions(collection="nope")).info()
    src = ParquetSource(str(vdf), SourceOptions(collection="products"))
    info = src.info()
    assert (info.dim, info.distance, info.count) == (12, "cosine", 120)
    assert info.details["vdf_index"] == "products" and info.details["exported_from"] == "pinecone"
    assert [f.name for f in src.layout()["files"]][:3] == ["1.parquet", "2.parquet", "3.parquet"]
    ids, got, pays, rej, _ = _read_all(src, 25)
    assert ids == [f"products-{i}" for i in range(120)] and not rej
    np.testing.assert_allclose(got, x)
    assert pays[3] == {"text": "text 3"}  # pandas' index column is not payload
    small = ParquetSource(str(vdf), SourceOptions(table="small")).info()
    assert (small.dim, small.distance) == (3, "dot")


def test_vdf_migrate_end_to_end(tmp_path, qdrant_path):
    x = RNG.standard_normal((120, 12)).astype(np.float32)
    vdf = _vdf(tmp_path, {"products": (x, "Euclid")})
    opts = SourceOptions()
    s = migrate(str(vdf), "vdf", path=str(qdrant_path), options=opts, batch_size=50,
                state_dir=str(tmp_path / "state"))
    assert (s.read, s.written, s.rejected) == (120, 120, 0)
    assert s.distance == "euclid"
    r = verify("vdf", source=str(vdf), path=str(qdrant_path), options=opts, full=True)
    assert r.ok, r.problems
    with connect(path=str(qdrant_path)) as t:
        pid = map_id("products-7")[0]
        p = t.retrieve("vdf", [pid], with_vectors=True)[pid]
    assert p.payload == {"text": "text 7", "source_id": "products-7"}
    np.testing.assert_allclose(p.vector, x[7], rtol=1e-6)


# -- end to end -------------------------------------------------------------------------------------------


def test_migrate_and_verify_directory(data, tmp_path, qdrant_path):
    before = {f.name: f.read_bytes() for f in data["dir"].iterdir()}
    s = migrate(str(data["dir"]), "pq", path=str(qdrant_path), batch_size=128, distance="dot",
                state_dir=str(tmp_path / "state"))
    assert (s.read, s.written, s.rejected) == (1000, 1000, 0)
    r = verify("pq", source=str(data["dir"]), path=str(qdrant_path), full=True)
    assert r.ok, r.problems
    with connect(path=str(qdrant_path)) as t:
        info = t.collection_info("pq")
        assert (info.dim, info.distance, info.points) == (DIM, "dot", 1000)
        p = t.retrieve("pq", [321], with_vectors=True)[321]
    np.testing.assert_allclose(p.vector, data["x"][321], rtol=1e-6)
    assert p.payload["title"] == "doc 321" and p.payload["created"] == "2024-01-14T21:00:00+00:00"
    assert {f.name: f.read_bytes() for f in data["dir"].iterdir()} == before


def test_cli_bad_file_is_one_line_error(cli, tmp_path):
    junk = tmp_path / "bad.parquet"
    junk.write_bytes(b"PAR1 not really")
    res = cli("qdrant", "migrate", "--source", junk, "--target", "c", "--path", tmp_path / "qd")
    assert res.exit_code == 2
    out = res.output.strip()
    assert "bad.parquet: not a readable Parquet file" in out and "Traceback" not in out


def test_files_with_different_payload_columns(tmp_path):
    x = RNG.standard_normal((6, 4)).astype(np.float32)
    pq.write_table(pa.table({"id": [0, 1, 2], "v": _fsl(x[:3]), "a": ["x", "y", "z"]}), tmp_path / "1.parquet")
    pq.write_table(pa.table({"id": [3, 4, 5], "v": _fsl(x[3:]), "b": [1, 2, 3]}), tmp_path / "2.parquet")
    ids, got, pays, _, _ = _read_all(ParquetSource(str(tmp_path)), 10)
    assert ids == list(range(6)) and pays[0] == {"a": "x"} and pays[4] == {"b": 2}
    pq.write_table(pa.table({"key": [6], "v": _fsl(x[:1])}), tmp_path / "3.parquet")
    with pytest.raises(SourceError, match="3.parquet: has no column 'id'"):
        ParquetSource(str(tmp_path)).info()
