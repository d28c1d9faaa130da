"""Annoy source: real AnnoyIndex.save files parsed with numpy; --dimensions/--distance required and checked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from annoy import AnnoyIndex

from cortex.api import connect, migrate, verify
from cortex.errors import SourceError
from cortex.sources import SourceOptions, open_source
from cortex.sources.annoy import AnnoySource, node_geometry

F = 12
N = 500
X = np.random.default_rng(6).standard_normal((N, F)).astype(np.float32)
GAP = 7  # an item id never added


def _save(path: Path, metric: str, n: int = N, gap: int | None = GAP, f: int = F) -> Path:
    index = AnnoyIndex(f, metric)
    for i in range(n):
        if i != gap:
            index.add_item(i, X[i, :f].tolist())
    index.build(4, n_jobs=1)
    index.save(str(path))
    index.unload()
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("annoy")
    return {m: _save(root / f"{m}.ann", m) for m in ("angular", "euclidean", "manhattan", "dot")}


def _opts(metric: str, f: int = F) -> SourceOptions:
    return SourceOptions(dimensions=f, distance=metric)


def _read_all(src: AnnoySource, batch_size: int = 100) -> tuple[np.ndarray, np.ndarray]:
    ids, vecs = [], []
    for b in src.batches(batch_size):
        ids.append(np.asarray(b.ids))
        vecs.append(b.vectors)
    return np.concatenate(ids), np.concatenate(vecs)


def test_node_size_matches_file(files):
    for metric, p in files.items():
        s = node_geometry(metric, F)[0]
        assert p.stat().st_size % s == 0


def test_detect(files, tmp_path):
    assert AnnoySource.detect(str(files["angular"]))
    assert open_source(str(files["angular"]), options=_opts("angular")).kind == "annoy"
    assert not AnnoySource.detect(str(tmp_path))


@pytest.mark.parametrize("metric,distance", [("angular", "cosine"), ("euclidean", "euclid"),
                                             ("manhattan", "manhattan"), ("dot", "dot")])
def test_info_and_batches(files, metric, distance):
    with AnnoySource(str(files[metric]), _opts(metric)) as src:
        info = src.info()
        assert (info.dim, info.distance, info.count) == (F, distance, N - 1)
        assert any("never added" in w for w in info.warnings)
        ids, vecs = _read_all(src)
    assert GAP not in ids.tolist() and len(ids) == N - 1 and ids.tolist() == sorted(ids.tolist())
    np.testing.assert_array_equal(vecs, X[ids])


def test_cortex_distance_names_accepted(files):
    assert AnnoySource(str(files["angular"]), _opts("cosine")).info().distance == "cosine"
    assert AnnoySource(str(files["euclidean"]), _opts("euclid")).info().distance == "euclid"


def test_resume(files):
    with AnnoySource(str(files["dot"]), _opts("dot")) as src:
        all_ids, _ = _read_all(src, 64)
        first = next(src.batches(64))
        rest = list(src.batches(64, resume=first.cursor))
    np.testing.assert_array_equal(np.concatenate([first.ids] + [b.ids for b in rest]), all_ids)


def test_native_search(files):
    with AnnoySource(str(files["angular"]), _opts("angular")) as src:
        ids, scores = src.search(X[[1, 2]], 3)
    assert [r[0] for r in ids] == [1, 2]
    np.testing.assert_allclose(scores[:, 0], 1, atol=1e-4)  # cosine similarity to itself
    with AnnoySource(str(files["euclidean"]), _opts("euclidean")) as src:
        ids, scores = src.search(X[3], 2)
    assert ids[0][0] == 3 and scores[0, 0] < 1e-3


def test_hamming(tmp_path):
    bits = np.random.default_rng(3).integers(0, 2, (100, 70)).astype(np.float32)
    index = AnnoyIndex(70, "hamming")
    for i, b in enumerate(bits):
        index.add_item(i, b.tolist())
    index.build(2, n_jobs=1)
    p = tmp_path / "h.ann"
    index.save(str(p))
    with AnnoySource(str(p), SourceOptions(dimensions=70, distance="hamming")) as src:
        info = src.info()
        assert (info.dim, info.distance, info.count) == (70, "manhattan", 100)
        ids, vecs = _read_all(src)
    np.testing.assert_array_equal(vecs, bits[ids])


def test_migrate_and_verify(files, tmp_path, qdrant_path):
    opts = _opts("euclidean")
    s = migrate(str(files["euclidean"]), "a", path=str(qdrant_path), options=opts, batch_size=128,
                state_dir=str(tmp_path / "state"))
    assert (s.read, s.written, s.rejected, s.distance) == (N - 1, N - 1, 0, "euclid")
    r = verify("a", source=str(files["euclidean"]), path=str(qdrant_path), options=opts, full=True)
    assert r.ok, r.problems
    with connect(path=str(qdrant_path)) as t:
        got = t.retrieve("a", [11, GAP], with_vectors=True)
    assert list(got) == [11]
    np.testing.assert_array_equal(got[11].vector, X[11])


def test_cli_migrate(files, cli, tmp_path):
    qd = tmp_path / "qd"
    res = cli("qdrant", "migrate", "--source", files["angular"], "--target", "a", "--path", qd,
              "--dimensions", F, "--distance", "cosine")
    assert res.exit_code == 0, res.output
    with connect(path=str(qd)) as t:
        info = t.collection_info("a")
        assert (info.dim, info.distance, info.points) == (F, "cosine", N - 1)


# -- bad inputs ---------------------------------------------------------------------------------------


def test_missing_dimensions_or_distance(files):
    for opts in (SourceOptions(), SourceOptions(dimensions=F), SourceOptions(distance="angular")):
        with pytest.raises(SourceError) as e:
            AnnoySource(str(files["angular"]), opts).info()
        assert "pass --dimensions N and --distance angular|euclidean|dot|manhattan" in str(e.value)
    with pytest.raises(SourceError, match="unknown Annoy distance 'chebyshev'"):
        AnnoySource(str(files["angular"]), _opts("chebyshev")).info()


@pytest.mark.parametrize("metric", ["angular", "euclidean", "dot"])
@pytest.mark.parametrize("f", [1, 8, 11, 13, 16, 24, 48])
def test_wrong_dimensions(files, metric, f):
    with pytest.raises(SourceError) as e:
        AnnoySource(str(files[metric]), _opts(metric, f)).info()
    msg = str(e.value)
    assert f"--dimensions {f}" in msg and "does not fit" in msg and "\n" not in msg


def test_wrong_metric_family(files):
    with pytest.raises(SourceError, match="does not fit"):
        AnnoySource(str(files["angular"]), _opts("euclidean")).info()
    with pytest.raises(SourceError, match="does not fit"):
        AnnoySource(str(files["euclidean"]), _opts("angular")).info()


def test_truncated_and_empty(files, tmp_path):
    data = files["angular"].read_bytes()
    p = tmp_path / "cut.ann"
    p.write_bytes(data[: len(data) // 2 + 5])
    with pytest.raises(SourceError, match="cut.ann"):
        AnnoySource(str(p), _opts("angular")).info()
    p.write_bytes(data[: (len(data) // 2 // 60) * 60])  # whole nodes, but the roots are gone
    with pytest.raises(SourceError, match="cut.ann"):
        AnnoySource(str(p), _opts("angular")).info()
    p.write_bytes(b"")
    with pytest.raises(SourceError, match="empty"):
        AnnoySource(str(p), _opts("angular")).info()
    with pytest.raises(SourceError, match="no such file"):
        AnnoySource(str(tmp_path / "nope.ann"), _opts("angular")).info()


def test_cli_missing_dimensions_one_line(files, cli, tmp_path):
    res = cli("qdrant", "migrate", "--source", files["angular"], "--target", "a", "--path", tmp_path / "qd")
    assert res.exit_code == 2
    out = res.output.strip()
    assert "--dimensions" in out and "Traceback" not in out and len(out.splitlines()) == 1
