"""Chroma source: a real persistent Chroma directory, migrated into embedded Qdrant."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from cortex.api import connect, migrate, verify
from cortex.errors import SourceError
from cortex.ids import map_id
from cortex.sources import SourceOptions, open_source
from cortex.sources.chroma import ChromaSource

N = 300
DIM = 16


def _client(path: Path):
    import chromadb
    from chromadb.config import Settings

    return chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))


@pytest.fixture(scope="module")
def chroma_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """docs (cosine, 300 rows with metadata and documents), dots (ip), plain (default l2), configured, empty."""
    root = tmp_path_factory.mktemp("chroma") / "db"
    rng = np.random.default_rng(7)
    x = rng.standard_normal((N, DIM)).astype(np.float32)
    c = _client(root)
    docs = c.create_collection("docs", metadata={"hnsw:space": "cosine"})
    ids = [str(i) if i % 3 == 0 else f"doc-{i}" for i in range(N)]  # "0" -> point 0, "doc-1" -> uuid5
    metas = [{"n": i, "tag": "even" if i % 2 == 0 else "odd", "score": i / 10, "ok": i % 5 == 0} if i != 4 else None
             for i in range(N)]
    texts = [f"text number {i}" if i != 5 else None for i in range(N)]
    for s in range(0, N, 100):
        docs.add(ids=ids[s : s + 100], embeddings=x[s : s + 100], metadatas=metas[s : s + 100],
                 documents=texts[s : s + 100])
    c.create_collection("dots", metadata={"hnsw:space": "ip"}).add(ids=["a", "b"], embeddings=x[:2])
    c.create_collection("plain").add(ids=["p"], embeddings=x[:1])
    c.create_collection("empty")
    # chromadb >= 1.0 also takes the distance as configuration (no hnsw:space metadata then)
    c.create_collection("configured", configuration={"hnsw": {"space": "cosine"}}).add(ids=["q"], embeddings=x[:1])
    c.close()
    return root, x


def _tree_hash(root: Path) -> dict[str, str]:
    return {str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(root.rglob("*")) if f.is_file()}


def _opts(name: str | None) -> SourceOptions:
    return SourceOptions(collection=name)


def test_detect(chroma_dir):
    root, _ = chroma_dir
    assert ChromaSource.detect(str(root))
    assert ChromaSource.detect(str(root / "chroma.sqlite3"))
    assert not ChromaSource.detect(str(root.parent))
    with open_source(str(root), None, _opts("docs")) as src:
        assert src.kind == "chroma"


def test_several_collections_need_a_choice(chroma_dir):
    root, _ = chroma_dir
    want = r"5 collections \(configured, docs, dots, empty, plain\).*--source-collection"
    with pytest.raises(SourceError, match=want):
        ChromaSource(str(root)).info()


def test_info_and_distances(chroma_dir):
    root, _ = chroma_dir
    expect = {"docs": ("cosine", N), "dots": ("dot", 2), "plain": ("euclid", 1), "configured": ("cosine", 1)}
    for name, (dist, count) in expect.items():
        with ChromaSource(str(root), _opts(name)) as src:
            info = src.info()
            assert (info.dim, info.distance, info.count) == (DIM, dist, count)
            assert any("temporary copy" in w for w in info.warnings)
            tmp = src._tmp
            assert tmp and Path(tmp).exists()
        assert not Path(tmp).exists()  # the copy is removed on close


def test_batches_payloads_and_resume(chroma_dir):
    root, x = chroma_dir
    with open_source(str(root), "chroma", _opts("docs")) as src:
        batches = list(src.batches(128))
        assert [len(b) for b in batches] == [128, 128, 44]
        ids = [i for b in batches for i in b.ids]
        assert len(set(ids)) == N
        got = {i: (v, p) for b in batches for i, v, p in zip(b.ids, b.vectors, b.payloads, strict=True)}
        assert batches[0].vectors.dtype == np.float32
        np.testing.assert_allclose(got["doc-1"][0], x[1], rtol=1e-6)  # Chroma may round by 1 ulp
        assert got["doc-1"][1] == {"n": 1, "tag": "odd", "score": 0.1, "ok": False, "document": "text number 1"}
        assert got["doc-4"][1] == {"document": "text number 4"}  # no metadata
        assert "document" not in got["doc-5"][1]  # no document
        resumed = [i for b in src.batches(128, resume=batches[0].cursor) for i in b.ids]
        assert resumed == ids[128:]


def test_migrate_leaves_source_untouched(chroma_dir, qdrant_path, tmp_path):
    root, x = chroma_dir
    before = _tree_hash(root)
    s = migrate(str(root), "c", path=str(qdrant_path), options=_opts("docs"), batch_size=100,
                state_dir=str(tmp_path / "state"))
    assert (s.read, s.written, s.rejected) == (N, N, 0)
    assert s.distance == "cosine"
    r = verify("c", source=str(root), path=str(qdrant_path), options=_opts("docs"), full=True)
    assert r.ok, r.problems
    assert _tree_hash(root) == before  # neither migrate nor verify wrote to the user's directory
    with connect(path=str(qdrant_path)) as t:
        pts = t.retrieve("c", [0, map_id("doc-1")[0]], with_vectors=True)
    assert pts[0].payload == {"n": 0, "tag": "even", "score": 0.0, "ok": True, "document": "text number 0"}
    p1 = pts[map_id("doc-1")[0]]
    assert p1.payload["source_id"] == "doc-1"  # non-numeric string ids keep the original in the payload
    np.testing.assert_allclose(p1.vector, x[1] / np.linalg.norm(x[1]), atol=1e-6)


def test_search_scores(chroma_dir):
    root, x = chroma_dir
    with ChromaSource(str(root), _opts("docs")) as src:
        ids, scores = src.search(x[[1, 2]], 5)
    assert ids[0][0] == "doc-1" and ids[1][0] == "doc-2"
    assert scores.shape == (2, 5)
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-4)  # cosine similarity of a vector with itself
    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first
    with ChromaSource(str(root), _opts("plain")) as src:
        _, d = src.search(x[:1] + 1.0, 1)
    assert d[0, 0] == pytest.approx(4.0, rel=1e-4)  # euclidean distance, not Chroma's squared one


def test_missing_and_empty_collection(chroma_dir):
    root, _ = chroma_dir
    want = "no Chroma collection 'nope'; it holds: configured, docs, dots, empty, plain"
    with pytest.raises(SourceError, match=want):
        ChromaSource(str(root), _opts("nope")).info()
    with pytest.raises(SourceError, match="'empty' is empty; nothing to migrate"):
        ChromaSource(str(root), _opts("empty")).info()


def test_corrupt_and_missing(chroma_dir, tmp_path):
    root, _ = chroma_dir
    with pytest.raises(SourceError, match="no such file"):
        ChromaSource(str(tmp_path / "nothing")).info()
    bad = tmp_path / "garbage"
    bad.mkdir()
    (bad / "chroma.sqlite3").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(SourceError, match="not a SQLite database"):
        ChromaSource(str(bad)).info()
    trunc = tmp_path / "truncated"
    shutil.copytree(root, trunc)
    db = trunc / "chroma.sqlite3"
    db.write_bytes(db.read_bytes()[:8192])
    with pytest.raises(SourceError, match="truncated|cannot open|holds no collection|cannot read"):
        src = ChromaSource(str(trunc), _opts("docs"))
        src.info()
        list(src.batches(100))


def test_no_collections(tmp_path):
    root = tmp_path / "db"
    _client(root).close()
    with pytest.raises(SourceError, match="holds no collection"):
        ChromaSource(str(root)).info()


def test_cli(chroma_dir, cli, tmp_path):
    root, _ = chroma_dir
    qd = tmp_path / "qd"
    res = cli("qdrant", "migrate", "--source", root, "--target", "docs", "--path", qd, "--source-collection", "docs")
    assert res.exit_code == 0, res.output
    res = cli("qdrant", "verify", "--collection", "docs", "--source", root, "--path", qd,
              "--source-collection", "docs", "--full")
    assert res.exit_code == 0, res.output
    res = cli("qdrant", "migrate", "--source", root, "--target", "x", "--path", qd)
    assert res.exit_code == 2
    assert "Error:" in res.stderr and "--source-collection NAME" in res.stderr and "Traceback" not in res.output
