"""--layout llamaindex, proven with llama_index.vector_stores.qdrant.QdrantVectorStore (qdrant-client local mode).

A real LlamaIndex pipeline (documents -> SentenceSplitter -> VectorStoreIndex -> persist) is migrated;
the app opens it with VectorStoreIndex.from_vector_store and gets the same nodes, texts, metadata
and ref_doc_ids in the same order, and delete(ref_doc_id=...) removes exactly that document's nodes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import orjson
import pytest

from cortex.api import migrate, verify
from cortex.layouts.llamaindex import NODE_KEYS
from cortex.sources import SourceOptions

DIM = 16
QUERIES = ["rust ownership", "go channels", "python typing", "nothing in particular", "chapter 3"]


def _vec(text: str) -> list[float]:
    seed = int(hashlib.sha256(text.encode()).hexdigest()[:16], 16)
    return np.random.default_rng(seed).standard_normal(DIM).tolist()


def _emb():
    from llama_index.core.embeddings import BaseEmbedding

    class HashEmbedding(BaseEmbedding):
        def _get_query_embedding(self, query: str) -> list[float]:
            return _vec(query)

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return _vec(query)

        def _get_text_embedding(self, text: str) -> list[float]:
            return _vec(text)

    return HashEmbedding(model_name="hash")


@pytest.fixture(scope="module")
def persisted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter

    root = tmp_path_factory.mktemp("li") / "storage"
    langs = ("rust", "go", "python")
    docs = [Document(text=" ".join(f"Chapter {j}.{k} on {langs[j % 3]} ünïcode." for k in range(12)),
                     metadata={"lang": langs[j % 3], "chapter": j}, doc_id=f"doc{j}") for j in range(6)]
    index = VectorStoreIndex.from_documents(docs, embed_model=_emb(),
                                            transformations=[SentenceSplitter(chunk_size=60, chunk_overlap=0)])
    index.storage_context.persist(str(root))
    return root


def _loaded(root: Path):
    from llama_index.core import StorageContext, load_index_from_storage

    return load_index_from_storage(StorageContext.from_defaults(persist_dir=str(root)), embed_model=_emb())


def _view(results) -> list[tuple]:
    return [(r.node.node_id, r.node.get_content(), r.node.metadata, r.node.ref_doc_id) for r in results]


def test_persist_dir_into_llamaindex_layout(persisted, tmp_path):
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    original = _loaded(persisted)
    nodes = list(original.storage_context.docstore.docs.values())
    assert len(nodes) > 12 and len({n.ref_doc_id for n in nodes}) == 6
    qpath = tmp_path / "qdrant_local"
    s = migrate(str(persisted), "li", url=f"local:{qpath}", state_dir=str(tmp_path / "state"))
    assert (s.layout, s.written, s.distance) == ("llamaindex", len(nodes), "cosine")  # its framework's by default
    assert verify("li", source=str(persisted), url=f"local:{qpath}", full=True).ok

    client = QdrantClient(path=str(qpath))
    try:
        vs = QdrantVectorStore(collection_name="li", client=client)
        app = VectorStoreIndex.from_vector_store(vs, embed_model=_emb())
        for q in QUERIES:
            want = original.as_retriever(similarity_top_k=5).retrieve(q)
            got = app.as_retriever(similarity_top_k=5).retrieve(q)
            assert _view(got) == _view(want)
            np.testing.assert_allclose([r.score for r in got], [r.score for r in want], atol=1e-5)

        # byte for byte: LlamaIndex's QdrantVectorStore.add of the same nodes
        simple = original.storage_context.vector_store
        for n in nodes:
            n.embedding = simple.get(n.node_id)
        ref = QdrantVectorStore(collection_name="ref", client=client)
        ref.add(nodes)
        ids = [n.node_id for n in nodes]
        mine = {str(p.id): p for p in client.retrieve("li", ids, with_vectors=True)}
        theirs = {str(p.id): p for p in client.retrieve("ref", ids, with_vectors=True)}
        assert mine.keys() == theirs.keys() == set(ids)
        for i in ids:
            assert json.dumps(mine[i].payload) == json.dumps(theirs[i].payload)
        assert client.get_collection("li").config.params.vectors == client.get_collection("ref").config.params.vectors

        # delete(ref_doc_id=...) removes exactly that document's nodes (what delete_ref_doc and refresh use)
        doc2 = {n.node_id for n in nodes if n.ref_doc_id == "doc2"}
        vs.delete(ref_doc_id="doc2")
        left = {str(p.id) for p in client.scroll("li", limit=1000)[0]}
        assert left == set(ids) - doc2 and doc2

        # a document the app inserts after the migration lands in the same layout
        app.insert(Document(text="added later about go", metadata={"lang": "go", "chapter": 99}, doc_id="docNew"))
        new = [p for p in client.scroll("li", limit=1000)[0] if p.payload["doc_id"] == "docNew"]
        old = mine[ids[0]].payload
        assert new and list(new[0].payload) == list(old)  # same keys, same order
        assert set(old) - {"lang", "chapter"} == set(NODE_KEYS)
        assert new[0].payload["_node_type"] == old["_node_type"] == "TextNode"
    finally:
        client.close()


def test_other_source_into_llamaindex_layout(tmp_path):
    """A JSONL export (text in a column) becomes LlamaIndex TextNodes; a user field named doc_id survives."""
    from llama_index.core import VectorStoreIndex
    from llama_index.core.vector_stores import MetadataFilter, MetadataFilters
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    src = tmp_path / "export.jsonl"
    rows = [{"id": f"chunk-{i}", "vector": _vec(f"body {i}"),
             "payload": {"body": f"body {i}", "file": f"f{i % 4}.md", "doc_id": f"user-{i}"}} for i in range(40)]
    src.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    qpath = tmp_path / "q"
    opts = SourceOptions(layout="llamaindex", text_column="body", extra={"ref_doc_key": "file"})
    s = migrate(str(src), "li", url=f"local:{qpath}", options=opts, state_dir=str(tmp_path / "s"))
    assert (s.written, s.rejected) == (40, 0)
    assert any("doc_id" in w and "node.metadata" in w for w in s.warnings), s.warnings
    assert verify("li", source=str(src), url=f"local:{qpath}", options=opts, full=True).ok
    client = QdrantClient(path=str(qpath))
    try:
        vs = QdrantVectorStore(collection_name="li", client=client)
        app = VectorStoreIndex.from_vector_store(vs, embed_model=_emb())
        top = app.as_retriever(similarity_top_k=3).retrieve("body 7")[0].node
        assert (top.get_content(), top.metadata, top.ref_doc_id) == \
            ("body 7", {"file": "f3.md", "doc_id": "user-7"}, "f3.md")  # the user's doc_id survives
        flt = MetadataFilters(filters=[MetadataFilter(key="file", value="f1.md")])
        hits = app.as_retriever(similarity_top_k=20, filters=flt).retrieve("body 1")
        assert len(hits) == 10 and all(h.node.metadata["file"] == "f1.md" for h in hits)
        vs.delete(ref_doc_id="f1.md")
        left = client.scroll("li", limit=100)[0]
        assert len(left) == 30 and all(p.payload["ref_doc_id"] != "f1.md" for p in left)
    finally:
        client.close()
