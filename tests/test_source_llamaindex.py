"""LlamaIndex source: a persist directory written by the real llama-index-core."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import numpy as np
import orjson
import pytest

from cortex.api import connect, migrate, verify
from cortex.errors import SourceError
from cortex.ids import map_id
from cortex.sources import SourceOptions, open_source
from cortex.sources.llamaindex import LlamaIndexSource

FLAT = SourceOptions(layout="flat")  # Cortex's flat payload (the default is LlamaIndex's layout)

N = 250
DIM = 12


def _node_id(i: int) -> str:
    return str(uuid.UUID(int=i + 1)) if i % 2 == 0 else f"node-{i}"  # LlamaIndex ids are usually uuids


def _persist(path: Path, x: np.ndarray) -> None:
    from llama_index.core import VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode

    nodes = []
    for i in range(len(x)):
        n = TextNode(id_=_node_id(i), text=f"chunk {i}", embedding=x[i].tolist(),
                     metadata={"file": f"f{i % 7}.md", "page": i, "draft": i % 4 == 0})
        if i % 10 != 0:
            n.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=f"doc-{i // 10}")
        nodes.append(n)
    index = VectorStoreIndex(nodes, embed_model=MockEmbedding(embed_dim=x.shape[1]))
    index.storage_context.persist(str(path))


@pytest.fixture(scope="module")
def li_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    root = tmp_path_factory.mktemp("llamaindex") / "storage"
    x = np.random.default_rng(3).standard_normal((N, DIM)).astype(np.float32)
    _persist(root, x)
    return root, x


def test_detect(li_dir, tmp_path):
    root, _ = li_dir
    assert LlamaIndexSource.detect(str(root))
    assert not LlamaIndexSource.detect(str(root / "docstore.json"))
    assert not LlamaIndexSource.detect(str(tmp_path))
    with open_source(str(root)) as src:
        assert src.kind == "llamaindex"


def test_info(li_dir):
    root, _ = li_dir
    info = LlamaIndexSource(str(root)).info()
    assert (info.dim, info.distance, info.count, info.warnings) == (DIM, "cosine", N, [])


def test_batches_payloads_and_resume(li_dir):
    root, x = li_dir
    src = open_source(str(root), "llamaindex", FLAT)
    batches = list(src.batches(100))
    assert [len(b) for b in batches] == [100, 100, 50]
    got = {i: (v, p) for b in batches for i, v, p in zip(b.ids, b.vectors, b.payloads, strict=True)}
    assert list(got) == [_node_id(i) for i in range(N)]
    assert batches[0].vectors.dtype == np.float32
    np.testing.assert_array_equal(got[_node_id(3)][0], x[3])
    assert got[_node_id(3)][1] == {"file": "f3.md", "page": 3, "draft": False, "text": "chunk 3",
                                   "ref_doc_id": "doc-0"}
    assert got[_node_id(10)][1] == {"file": "f3.md", "page": 10, "draft": False, "text": "chunk 10"}  # no source
    resumed = [i for b in src.batches(100, resume=batches[1].cursor) for i in b.ids]
    assert resumed == list(got)[200:]


def test_migrate_and_verify(li_dir, qdrant_path, tmp_path):
    root, x = li_dir
    s = migrate(str(root), "li", path=str(qdrant_path), batch_size=64, state_dir=str(tmp_path / "state"),
                layout="flat")
    assert (s.read, s.written, s.rejected, s.distance) == (N, N, 0, "cosine")
    r = verify("li", source=str(root), path=str(qdrant_path), full=True, layout="flat")
    assert r.ok, r.problems
    with connect(path=str(qdrant_path)) as t:
        pts = t.retrieve("li", [_node_id(0), map_id(_node_id(1))[0]], with_vectors=True)
    assert pts[_node_id(0)].payload == {"file": "f0.md", "page": 0, "draft": True, "text": "chunk 0"}
    p1 = pts[map_id(_node_id(1))[0]]
    assert p1.payload["source_id"] == "node-1" and p1.payload["text"] == "chunk 1"
    np.testing.assert_allclose(p1.vector, x[1] / np.linalg.norm(x[1]), atol=1e-6)


def test_without_docstore_uses_vector_store_metadata(li_dir, tmp_path):
    root, _ = li_dir
    d = tmp_path / "nodoc"
    shutil.copytree(root, d)
    (d / "docstore.json").unlink()
    src = open_source(str(d), "llamaindex", FLAT)
    assert any("no docstore.json" in w for w in src.info().warnings)
    b = next(iter(src.batches(5)))
    assert b.payloads[1] == {"file": "f1.md", "page": 1, "draft": False, "ref_doc_id": "doc-0"}


def test_bad_dimension_record_is_rejected(li_dir, tmp_path):
    root, _ = li_dir
    d = tmp_path / "baddim"
    shutil.copytree(root, d)
    f = d / "default__vector_store.json"
    data = orjson.loads(f.read_bytes())
    data["embedding_dict"][_node_id(2)] = [1.0, 2.0]
    f.write_bytes(orjson.dumps(data))
    batches = list(LlamaIndexSource(str(d)).batches(1000))
    assert sum(len(b) for b in batches) == N - 1
    [rej] = [r for b in batches for r in b.rejected]
    assert rej.id == _node_id(2) and "2 values, expected 12" in rej.reason


def test_corrupt_json(li_dir, tmp_path):
    root, _ = li_dir
    d = tmp_path / "corrupt"
    shutil.copytree(root, d)
    f = d / "default__vector_store.json"
    f.write_bytes(f.read_bytes()[:1000])
    with pytest.raises(SourceError, match="default__vector_store.json: not valid JSON"):
        LlamaIndexSource(str(d)).info()
    f.write_bytes(b'{"something": "else"}')
    with pytest.raises(SourceError, match="not a SimpleVectorStore file"):
        LlamaIndexSource(str(d)).info()


def test_empty_index_and_unknown_namespace(tmp_path):
    d = tmp_path / "empty"
    _persist(d, np.empty((0, 4), np.float32))
    with pytest.raises(SourceError, match="holds no vectors; nothing to migrate"):
        LlamaIndexSource(str(d)).info()
    with pytest.raises(SourceError, match="no vector store namespace 'nope'; found: default, image"):
        LlamaIndexSource(str(d), SourceOptions(collection="nope")).info()
    with pytest.raises(SourceError, match="no such file"):
        LlamaIndexSource(str(tmp_path / "missing")).info()


def test_cli(li_dir, cli, tmp_path):
    root, _ = li_dir
    qd = tmp_path / "qd"
    res = cli("qdrant", "migrate", "--source", root, "--target", "li", "--path", qd)
    assert res.exit_code == 0, res.output
    res = cli("qdrant", "verify", "--collection", "li", "--source", root, "--path", qd, "--full")
    assert res.exit_code == 0, res.output
    res = cli("qdrant", "migrate", "--source", root, "--target", "x", "--path", qd, "--source-collection", "nope")
    assert res.exit_code == 2 and "no vector store namespace 'nope'" in res.stderr
    assert "Traceback" not in res.output
