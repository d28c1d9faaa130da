"""hnswlib source: real save_index files parsed with numpy, migrated into embedded Qdrant."""

from __future__ import annotations

from pathlib import Path

import faiss
import hnswlib
import numpy as np
import pytest

from cortex.api import connect, migrate, verify
from cortex.errors import SourceError
from cortex.sources import SourceOptions, open_source
from cortex.sources.hnswlib import HnswlibSource, parse_distance, read_header

DIM = 24
N = 800
X = np.random.default_rng(8).standard_normal((N, DIM)).astype(np.float32)
LABELS = np.arange(N, dtype=np.uint64) * 5 + 100
DELETED = LABELS[[0, 3, 400, N - 1]]


def _save(path: Path, space: str, deleted: np.ndarray = DELETED, n: int = N) -> Path:
    index = hnswlib.Index(space=space, dim=DIM)
    index.init_index(max_elements=n + 100, M=8, ef_construction=40, random_seed=1)
    if n:
        index.add_items(X[:n], LABELS[:n])
    for label in deleted:
        index.mark_deleted(int(label))
    index.save_index(str(path))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hnswlib")
    return {space: _save(root / f"{space}.bin", space) for space in ("l2", "ip", "cosine")}


def _read_all(src: HnswlibSource, batch_size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    ids, vecs = [], []
    for b in src.batches(batch_size):
        ids.append(np.asarray(b.ids))
        vecs.append(b.vectors)
    return np.concatenate(ids), np.concatenate(vecs)


def _rows(labels: np.ndarray) -> np.ndarray:
    return ((labels.astype(np.int64) - 100) // 5).astype(np.int64)


def test_header_layout(files):
    h = read_header(files["l2"])
    assert h.dim == DIM and h.count == N and h.m == 8 and h.max_m0 == 16 and h.ef_construction == 40
    assert h.offset_data == 16 * 4 + 4 and h.label_offset == h.offset_data + 4 * DIM


def test_detect(files, tmp_path):
    assert HnswlibSource.detect(str(files["l2"]))
    assert open_source(str(files["l2"])).kind == "hnswlib"
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 4)
    assert not HnswlibSource.detect(str(junk))
    other = tmp_path / "index.dat"  # right content, unknown suffix: not claimed
    other.write_bytes(files["l2"].read_bytes())
    assert not HnswlibSource.detect(str(other))
    fi = tmp_path / "faiss.bin"  # a FAISS index named .bin is the faiss source's
    index = faiss.IndexFlatL2(DIM)
    index.add(X[:10])
    faiss.write_index(index, str(fi))
    assert not HnswlibSource.detect(str(fi)) and open_source(str(fi)).kind == "faiss"


@pytest.mark.parametrize("space", ["l2", "ip"])
def test_info_and_batches_skip_deleted(files, space):
    with HnswlibSource(str(files[space])) as src:
        info = src.info()
        assert (info.dim, info.distance, info.count) == (DIM, "euclid", N - len(DELETED))
        assert any("does not store its space" in w for w in info.warnings)
        assert any("4 elements are marked deleted" in w for w in info.warnings)
        ids, vecs = _read_all(src)
    assert ids.dtype == np.uint64 and vecs.dtype == np.float32
    assert set(ids.tolist()) == set(LABELS.tolist()) - set(DELETED.tolist())
    np.testing.assert_array_equal(vecs, X[_rows(ids)])


def test_distance_option_and_cosine_hint(files):
    info = HnswlibSource(str(files["ip"]), SourceOptions(distance="ip")).info()
    assert info.distance == "dot" and not any("does not store" in w for w in info.warnings)
    info = HnswlibSource(str(files["cosine"])).info()
    assert info.distance == "euclid" and any("looks like a space='cosine'" in w for w in info.warnings)
    info = HnswlibSource(str(files["cosine"]), SourceOptions(distance="cosine")).info()
    assert info.distance == "cosine"
    ids, vecs = _read_all(HnswlibSource(str(files["cosine"])))
    ref = X[_rows(ids)]
    np.testing.assert_allclose(vecs, ref / np.linalg.norm(ref, axis=1, keepdims=True), atol=1e-6)
    assert parse_distance("angular") == "cosine" and parse_distance("L2") == "euclid"
    with pytest.raises(SourceError, match="unknown distance"):
        HnswlibSource(str(files["l2"]), SourceOptions(distance="chebyshev")).info()


def test_resume(files):
    with HnswlibSource(str(files["l2"])) as src:
        all_ids, _ = _read_all(src, 100)
        first = next(src.batches(100))
        rest = list(src.batches(100, resume=first.cursor))
    np.testing.assert_array_equal(np.concatenate([first.ids] + [b.ids for b in rest]), all_ids)


def test_native_search(files):
    with HnswlibSource(str(files["l2"])) as src:
        ids, scores = src.search(X[[1, 2, 3]], 5)  # row 3 is deleted
    assert [r[0] for r in ids[:2]] == LABELS[[1, 2]].tolist()
    assert int(DELETED[1]) not in ids[2]
    np.testing.assert_allclose(scores[:2, 0], 0, atol=1e-3)
    with HnswlibSource(str(files["cosine"]), SourceOptions(distance="cosine")) as src:
        ids, scores = src.search(X[[5]], 3)
    assert ids[0][0] == LABELS[5] and abs(scores[0, 0] - 1) < 1e-4


def test_migrate_and_verify(files, tmp_path, qdrant_path):
    opts = SourceOptions(distance="cosine")
    s = migrate(str(files["cosine"]), "h", path=str(qdrant_path), options=opts, distance="cosine", batch_size=128,
                state_dir=str(tmp_path / "state"))
    assert (s.read, s.written, s.rejected, s.distance) == (N - 4, N - 4, 0, "cosine")
    r = verify("h", source=str(files["cosine"]), path=str(qdrant_path), options=opts, full=True)
    assert r.ok, r.problems
    with connect(path=str(qdrant_path)) as t:
        got = t.retrieve("h", [int(LABELS[7]), int(DELETED[0])], with_vectors=True)
    assert list(got) == [int(LABELS[7])]
    v = X[7] / np.linalg.norm(X[7])
    np.testing.assert_allclose(got[int(LABELS[7])].vector, v, atol=1e-6)


def test_cli_migrate_l2(files, cli, tmp_path):
    qd = tmp_path / "qd"
    res = cli("qdrant", "migrate", "--source", files["l2"], "--target", "h", "--path", qd, "--distance", "euclid")
    assert res.exit_code == 0, res.output
    with connect(path=str(qd)) as t:
        info = t.collection_info("h")
        assert (info.dim, info.distance, info.points) == (DIM, "euclid", N - 4)
        p = t.retrieve("h", [int(LABELS[10])], with_vectors=True)[int(LABELS[10])]
    np.testing.assert_array_equal(p.vector, X[10])


# -- bad inputs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("frac", [0.0, 0.05, 0.5, 0.999])
def test_truncated(files, tmp_path, frac):
    data = files["l2"].read_bytes()
    p = tmp_path / "cut.bin"
    p.write_bytes(data[: int(len(data) * frac)])
    with pytest.raises(SourceError) as e:
        HnswlibSource(str(p)).info()
    assert "cut.bin: not a readable hnswlib index" in str(e.value) and "\n" not in str(e.value)


def test_corrupt_header(files, tmp_path):
    data = bytearray(files["l2"].read_bytes())
    data[40:48] = (7).to_bytes(8, "little")  # offsetData_
    p = tmp_path / "bad.bin"
    p.write_bytes(bytes(data))
    with pytest.raises(SourceError, match="bad.bin: not a readable hnswlib index"):
        HnswlibSource(str(p)).info()


def test_empty_and_all_deleted(tmp_path):
    with pytest.raises(SourceError, match="holds no elements"):
        HnswlibSource(str(_save(tmp_path / "empty.bin", "l2", deleted=np.array([]), n=0))).info()
    p = _save(tmp_path / "gone.bin", "l2", deleted=LABELS[:5], n=5)
    with pytest.raises(SourceError, match="all 5 elements .* deleted"):
        HnswlibSource(str(p)).info()


def test_wrong_dimensions_flag(files):
    with pytest.raises(SourceError, match="24-dimensional vectors but --dimensions is 32"):
        HnswlibSource(str(files["l2"]), SourceOptions(dimensions=32)).info()
    assert HnswlibSource(str(files["l2"]), SourceOptions(dimensions=DIM)).info().dim == DIM


def test_missing(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        HnswlibSource(str(tmp_path / "nope.bin")).info()


def test_cli_truncated_one_line(files, cli, tmp_path):
    p = tmp_path / "cut.bin"
    p.write_bytes(files["l2"].read_bytes()[:5000])
    res = cli("qdrant", "migrate", "--source", p, "--target", "h", "--path", tmp_path / "qd",
              "--source-type", "hnswlib")
    assert res.exit_code == 2
    out = res.output.strip()
    assert "cut.bin" in out and "Traceback" not in out and len(out.splitlines()) == 1
