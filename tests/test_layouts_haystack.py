"""--layout haystack, proven with qdrant-haystack's QdrantDocumentStore (qdrant-client local mode).

A Chroma collection is migrated; QdrantDocumentStore returns the same documents (id, content,
meta) in Chroma's order, filters on meta, deletes by document id, and writes new documents in
the same layout, byte for byte what its own write_documents writes.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from cortex.api import compare, migrate, verify
from cortex.layouts.haystack import convert_id
from cortex.sources import SourceOptions

DIM = 12
N = 50


@pytest.fixture(scope="module")
def chroma_src(tmp_path_factory: pytest.TempPathFactory):
    import chromadb
    from chromadb.config import Settings

    root = tmp_path_factory.mktemp("hs") / "chroma"
    x = np.random.default_rng(3).standard_normal((N, DIM)).astype(np.float32)
    c = chromadb.PersistentClient(path=str(root), settings=Settings(anonymized_telemetry=False))
    col = c.create_collection("docs", metadata={"hnsw:space": "cosine"})
    metas = [{"lang": ("rust", "go")[i % 2], "n": i} for i in range(N)]
    col.add(ids=[f"doc-{i}" for i in range(N)], embeddings=x, documents=[f"text {i}" for i in range(N)],
            metadatas=metas)
    queries = x[:5] + 0.3
    expected = [col.query(query_embeddings=[q], n_results=5)["ids"][0] for q in queries]
    return root, x, metas, queries, expected


def _store(**kw):
    from haystack_integrations.document_stores.qdrant import QdrantDocumentStore

    return QdrantDocumentStore(embedding_dim=DIM, progress_bar=False, **kw)


def test_chroma_into_haystack_layout(chroma_src, tmp_path):
    from haystack import Document
    from haystack_integrations.components.retrievers.qdrant import QdrantEmbeddingRetriever

    root, x, metas, queries, expected = chroma_src
    qpath = tmp_path / "qdrant_local"
    opts = SourceOptions(layout="haystack")
    s = migrate(str(root), "Document", url=f"local:{qpath}", options=opts, state_dir=str(tmp_path / "s"))
    assert (s.layout, s.written, s.distance) == ("haystack", N, "cosine")
    assert verify("Document", source=str(root), url=f"local:{qpath}", options=opts, full=True).ok
    # compare maps Chroma's own search results to Haystack's point ids
    res = compare("Document", source=str(root), url=f"local:{qpath}", layout="haystack", num_queries=10, k=5)
    assert res.ok and res.old.method == "chroma native search" and res.overlap >= 0.9, res

    store = _store(path=str(qpath), index="Document")
    try:
        docs = {d.id: d for d in store.filter_documents()}
        assert docs.keys() == {f"doc-{i}" for i in range(N)}
        assert all((d.content, d.meta) == (f"text {int(i[4:])}", metas[int(i[4:])]) for i, d in docs.items())
        retriever = QdrantEmbeddingRetriever(document_store=store, top_k=5)
        for q, want in zip(queries, expected, strict=True):
            assert [d.id for d in retriever.run(query_embedding=q.tolist())["documents"]] == want
        go = store.filter_documents(filters={"field": "meta.lang", "operator": "==", "value": "go"})
        assert sorted(d.id for d in go) == sorted(f"doc-{i}" for i in range(1, N, 2))

        # byte for byte: QdrantDocumentStore.write_documents of the same documents
        ref = _store(location=":memory:", index="Document")
        ref.write_documents([Document(id=f"doc-{i}", content=f"text {i}", meta=metas[i], embedding=x[i].tolist())
                             for i in range(N)])
        pids = [convert_id(f"doc-{i}") for i in range(N)]
        mine = {str(p.id): p.payload for p in store._client.retrieve("Document", pids)}
        theirs = {str(p.id): p.payload for p in ref._client.retrieve("Document", pids)}
        assert mine.keys() == theirs.keys() == set(pids)
        for p in pids:  # Chroma itself returns metadata keys in no stable order: the top-level order must match
            assert list(mine[p]) == list(theirs[p])
            assert json.dumps(mine[p], sort_keys=True) == json.dumps(theirs[p], sort_keys=True)

        # deleting by document id finds the migrated point; a new document lands in the same layout
        store.delete_documents(["doc-3"])
        assert store.count_documents() == N - 1
        store.write_documents([Document(id="new", content="added later", meta={"lang": "go", "n": 99},
                                        embedding=x[0].tolist())])
        added = store._client.retrieve("Document", [convert_id("new")])[0].payload
        assert list(added) == list(mine[pids[0]])
    finally:
        store.close() if hasattr(store, "close") else None
