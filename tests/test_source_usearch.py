"""USearch source: real Index.save files (f32/f16/bf16/i8/b1), memory-mapped, migrated into embedded Qdrant."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from usearch.index import Index

from cortex.api import connect, migrate, verify
from cortex.errors import SourceError
from cortex.sources import SourceOptions, open_source
from cortex.sources.usearch import USearchSource, looks_like_usearch

DIM = 16
N = 600
X = np.random.default_rng(2).standard_normal((N, DIM)).astype(np.float32)
KEYS = np.arange(N, dtype=np.uint64) * 3 + 10
REMOVED = KEYS[[1, 50]]


def _save(path: Path, metric: str, dtype: str, n: int = N, remove: np.ndarray = REMOVED) -> Path:
    index = Index(ndim=DIM, metric=metric, dtype=dtype)
    if n:
        index.add(KEYS[:n], X[:n])
    if len(remove):
        index.remove(remove)
    index.save(str(path))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("usearch")
    specs = {"f32": ("l2sq", "f32"), "f16": ("cos", "f16"), "bf16": ("ip", "bf16"), "i8": ("cos", "i8"),
             "f64": ("ip", "f64")}
    return {k: _save(root / f"{k}.usearch", m, d) for k, (m, d) in specs.items()}


def _read_all(src: USearchSource, batch_size: int = 100) -> tuple[np.ndarray, np.ndarray]:
    ids, vecs = [], []
    for b in src.batches(batch_size):
        ids.append(np.asarray(b.ids))
        vecs.append(b.vectors)
    return np.concatenate(ids), np.concatenate(vecs)


def _rows(keys: np.ndarray) -> np.ndarray:
    return ((keys.astype(np.int64) - 10) // 3).astype(np.int64)


def test_detect(files, tmp_path):
    assert USearchSource.detect(str(files["f32"])) and open_source(str(files["f32"])).kind == "usearch"
    other = tmp_path / "vectors.idx"  # found by the 'usearch' magic after the matrix
    other.write_bytes(files["f16"].read_bytes())
    assert looks_like_usearch(other) and open_source(str(other)).kind == "usearch"
    junk = tmp_path / "junk.idx"
    junk.write_bytes(b"\x01\x00\x00\x00" * 50)
    assert not USearchSource.detect(str(junk))


@pytest.mark.parametrize("kind,distance,tol,lossy", [
    ("f32", "euclid", 0, False), ("f16", "cosine", 1e-3, False), ("bf16", "dot", 1e-2, False),
    ("f64", "dot", 0, False), ("i8", "cosine", 0.05, True)])
def test_info_and_batches(files, kind, distance, tol, lossy):
    with USearchSource(str(files[kind])) as src:
        meta = src.metadata()
        assert meta["dimensions"] == DIM
        info = src.info()
        assert (info.dim, info.distance, info.count, info.lossy) == (DIM, distance, N - 2, lossy)
        assert any("2 removed" in w for w in info.warnings)
        ids, vecs = _read_all(src)
    assert vecs.dtype == np.float32 and vecs.shape == (N - 2, DIM)
    assert set(ids.tolist()) == set(KEYS.tolist()) - set(REMOVED.tolist())
    ref = X[_rows(ids)]
    if kind == "i8":  # quantized directions: compare unit vectors
        ref = ref / np.linalg.norm(ref, axis=1, keepdims=True)
        assert any("i8" in w and "norms are lost" in w for w in info.warnings)
    err = np.linalg.norm(vecs - ref, axis=1).mean() / np.linalg.norm(ref, axis=1).mean()
    assert err <= tol + 1e-7


def test_resume(files):
    with USearchSource(str(files["f32"])) as src:
        all_ids, _ = _read_all(src, 64)
        first = next(src.batches(64))
        rest = list(src.batches(64, resume=first.cursor))
    np.testing.assert_array_equal(np.concatenate([first.ids] + [b.ids for b in rest]), all_ids)


def test_native_search(files):
    with USearchSource(str(files["f32"])) as src:
        ids, scores = src.search(X[[2, 3]], 3)
    assert [r[0] for r in ids] == KEYS[[2, 3]].tolist()
    np.testing.assert_allclose(scores[:, 0], 0, atol=1e-3)
    with USearchSource(str(files["f16"])) as src:
        ids, scores = src.search(X[4], 2)
    assert ids[0][0] == KEYS[4] and abs(scores[0, 0] - 1) < 1e-3


def test_binary_b1(tmp_path):
    bits = np.random.default_rng(1).integers(0, 2, (200, 64)).astype(np.uint8)
    index = Index(ndim=64, metric="hamming", dtype="b1")
    index.add(np.arange(200), np.packbits(bits, axis=1))
    p = tmp_path / "bits.usearch"
    index.save(str(p))
    with USearchSource(str(p)) as src:
        info = src.info()
        assert (info.dim, info.distance) == (64, "manhattan")
        assert any("Hamming" in w for w in info.warnings)
        ids, vecs = _read_all(src)
        np.testing.assert_array_equal(vecs, bits[ids.astype(np.int64)].astype(np.float32))
        found, scores = src.search(bits[:2].astype(np.float32), 2)
    assert [f[0] for f in found] == [0, 1] and np.all(scores[:, 0] == 0)


def test_multi_vector_rejected(tmp_path):
    index = Index(ndim=DIM, multi=True, dtype="f32")
    index.add(np.array([1, 1, 2]), X[:3])
    p = tmp_path / "multi.usearch"
    index.save(str(p))
    with pytest.raises(SourceError, match="multi-vector USearch index"):
        USearchSource(str(p)).info()


def test_unmappable_metric_needs_distance(tmp_path):
    index = Index(ndim=DIM, metric="pearson", dtype="f32")
    index.add(np.arange(10), X[:10])
    p = tmp_path / "pearson.usearch"
    index.save(str(p))
    with pytest.raises(SourceError, match="pearson metric.*--distance"):
        USearchSource(str(p)).info()
    assert USearchSource(str(p), SourceOptions(distance="cosine")).info().distance == "cosine"


def test_migrate_and_verify(files, tmp_path, qdrant_path):
    s = migrate(str(files["f16"]), "u", path=str(qdrant_path), batch_size=128, state_dir=str(tmp_path / "state"))
    assert (s.read, s.written, s.rejected, s.distance) == (N - 2, N - 2, 0, "cosine")
    r = verify("u", source=str(files["f16"]), path=str(qdrant_path), full=True)
    assert r.ok, r.problems
    with connect(path=str(qdrant_path)) as t:
        got = t.retrieve("u", [int(KEYS[9]), int(REMOVED[0])], with_vectors=True)
    assert list(got) == [int(KEYS[9])]
    v = X[9] / np.linalg.norm(X[9])  # cosine collections store unit vectors
    np.testing.assert_allclose(got[int(KEYS[9])].vector, v, atol=2e-3)


def test_cli_migrate(files, cli, tmp_path):
    qd = tmp_path / "qd"
    res = cli("qdrant", "migrate", "--source", files["f32"], "--target", "u", "--path", qd)
    assert res.exit_code == 0, res.output
    with connect(path=str(qd)) as t:
        info = t.collection_info("u")
        assert (info.dim, info.distance, info.points) == (DIM, "euclid", N - 2)
        p = t.retrieve("u", [int(KEYS[5])], with_vectors=True)[int(KEYS[5])]
    np.testing.assert_array_equal(p.vector, X[5])


# -- bad inputs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("frac", [0.0, 0.01, 0.5, 0.99])
def test_truncated(files, tmp_path, frac):
    data = files["f32"].read_bytes()
    p = tmp_path / "cut.usearch"
    p.write_bytes(data[: int(len(data) * frac)])
    with pytest.raises(SourceError) as e:
        USearchSource(str(p)).info()
    assert "cut.usearch: not a readable USearch index" in str(e.value) and "\n" not in str(e.value)


def test_empty(tmp_path):
    p = _save(tmp_path / "empty.usearch", "cos", "f32", n=0, remove=np.array([]))
    with pytest.raises(SourceError, match="holds no vectors"):
        USearchSource(str(p)).info()


def test_missing(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        USearchSource(str(tmp_path / "nope.usearch")).info()


def test_cli_corrupt_one_line(cli, tmp_path):
    p = tmp_path / "bad.usearch"
    p.write_bytes(b"garbage" * 100)
    res = cli("qdrant", "migrate", "--source", p, "--target", "u", "--path", tmp_path / "qd")
    assert res.exit_code == 2
    out = res.output.strip()
    assert "bad.usearch" in out and "Traceback" not in out and len(out.splitlines()) == 1
