"""--layout langchain, proven with langchain_qdrant.QdrantVectorStore against qdrant-client local mode.

Sources: a LangChain FAISS folder (the real FAISS.save_local), a Chroma directory and a
LangChain PGVector table (real PostgreSQL).  The app opens the migrated collection exactly as
it would open one langchain-qdrant wrote, and gets the same documents in the same order.
"""

from __future__ import annotations

import json
import uuid
import warnings
from pathlib import Path

import numpy as np
import pytest
from pg_fixture import PgServer, pg_server, pg_url  # noqa: F401  (session fixtures)

from cortex.api import migrate, verify
from cortex.sources import SourceOptions

DIM = 16
N = 60
LANGS = ("rust", "go", "python")
QUERIES = ["passage 3 about rust", "a question about go", "zzz", "passage 41 about go", "python tips"]


def _emb():
    from langchain_core.embeddings import DeterministicFakeEmbedding

    return DeterministicFakeEmbedding(size=DIM)


def _docs(n: int = N) -> tuple[list[str], list[dict]]:
    texts = [f"passage {i} about {LANGS[i % 3]}" for i in range(n)]
    metas = [{"lang": LANGS[i % 3], "page": i, "tags": ["a", str(i % 2)], "nested": {"x": i / 4}} for i in range(n)]
    return texts, metas


def _faiss(path: Path, normalize: bool = False):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from langchain_community.vectorstores import FAISS

    texts, metas = _docs()
    store = FAISS.from_texts(texts, _emb(), metadatas=metas, normalize_L2=normalize)
    store.save_local(str(path))
    return store


def _vec(v: list[float]) -> str:
    return "[" + ",".join(repr(float(x)) for x in v) + "]"


def _strip(meta: dict) -> dict:
    """langchain-qdrant adds _id and _collection_name to every Document it returns."""
    return {k: v for k, v in meta.items() if k not in ("_id", "_collection_name")}


def _store(qpath: Path, name: str, **kw):
    from langchain_qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    client = QdrantClient(path=str(qpath))
    return client, QdrantVectorStore(client=client, collection_name=name, embedding=_emb(), **kw)


def _lang(value: str):
    from qdrant_client import models

    return models.Filter(must=[models.FieldCondition(key="metadata.lang", match=models.MatchValue(value=value))])


@pytest.fixture(scope="module")
def faiss_l2(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("lc") / "faiss_index"
    return root, _faiss(root)


def test_faiss_l2_into_langchain_layout(faiss_l2, tmp_path):
    from qdrant_client import models

    root, faiss = faiss_l2
    qpath = tmp_path / "qdrant_local"
    s = migrate(str(root), "lc", url=f"local:{qpath}", options=SourceOptions(trust_pickle=True),
                state_dir=str(tmp_path / "state"))
    assert (s.layout, s.written, s.distance) == ("langchain", N, "euclid")  # the source's framework by default
    # norms differ: the L2 distance is kept and the summary gives the exact argument the app must pass
    assert any("not unit length" in w and "distance=Distance.EUCLID" in w for w in s.warnings), s.warnings
    assert verify("lc", source=str(root), url=f"local:{qpath}", options=SourceOptions(trust_pickle=True),
                  full=True).ok

    client, qs = _store(qpath, "lc", distance=models.Distance.EUCLID)
    try:
        for q in QUERIES:
            want = faiss.similarity_search_with_score(q, k=5)
            got = qs.similarity_search_with_score(q, k=5)
            assert [(d.page_content, d.metadata) for d, _ in want] == \
                [(d.page_content, _strip(d.metadata)) for d, _ in got]
            # FAISS reports squared L2, Qdrant the euclidean distance
            np.testing.assert_allclose([np.sqrt(sc) for _, sc in want], [sc for _, sc in got], rtol=1e-4, atol=1e-5)
            want_f = faiss.similarity_search(q, k=5, filter={"lang": "rust"}, fetch_k=N)
            got_f = qs.similarity_search(q, k=5, filter=_lang("rust"))
            assert [(d.page_content, d.metadata) for d in want_f] == [(d.page_content, _strip(d.metadata))
                                                                      for d in got_f]
            assert all(d.metadata["lang"] == "rust" for d in got_f) and len(got_f) == 5

        # byte for byte: langchain-qdrant writing the same documents itself
        ids = [faiss.index_to_docstore_id[i] for i in range(N)]
        texts = [faiss.docstore.search(i).page_content for i in ids]
        metas = [faiss.docstore.search(i).metadata for i in ids]
        client.create_collection("ref", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.EUCLID))
        _, ref = None, qs.__class__(client=client, collection_name="ref", embedding=_emb(),
                                    distance=models.Distance.EUCLID)
        ref.add_texts(texts, metadatas=metas, ids=ids)
        mine = {str(p.id): p for p in client.retrieve("lc", ids, with_vectors=True)}
        theirs = {str(p.id): p for p in client.retrieve("ref", ids, with_vectors=True)}
        assert mine.keys() == theirs.keys() == set(ids)
        for i in ids:
            assert json.dumps(mine[i].payload) == json.dumps(theirs[i].payload)
            np.testing.assert_allclose(mine[i].vector, theirs[i].vector, rtol=1e-6)
        assert client.get_collection("lc").config.params.vectors == client.get_collection("ref").config.params.vectors

        # a document the app adds after the migration lands in the same layout
        [new_id] = qs.add_texts(["added later"], metadatas=[{"lang": "go", "page": 999}])
        added = client.retrieve("lc", [new_id])[0].payload
        assert list(added) == list(mine[ids[0]].payload) == ["page_content", "metadata"]
        assert qs.similarity_search("added later", k=1, filter=_lang("go"))[0].page_content == "added later"
    finally:
        client.close()


def test_unit_vectors_offer_cosine(tmp_path):
    root = tmp_path / "unit"
    faiss = _faiss(root, normalize=True)
    qpath = tmp_path / "q"
    opts = SourceOptions(trust_pickle=True)
    s = migrate(str(root), "lc", url=f"local:{qpath}", options=opts, state_dir=str(tmp_path / "s"), dry_run=True)
    assert any("norm 1" in w and "--distance cosine" in w for w in s.warnings), s.warnings
    s = migrate(str(root), "lc", url=f"local:{qpath}", options=opts, state_dir=str(tmp_path / "s"), distance="cosine")
    assert (s.distance, s.written) == ("cosine", N)
    client, qs = _store(qpath, "lc")  # the app's defaults (COSINE) now open it
    try:
        for q in QUERIES:
            want = faiss.similarity_search(q, k=5)
            got = qs.similarity_search(q, k=5)
            assert [(d.page_content, d.metadata) for d in want] == [(d.page_content, _strip(d.metadata)) for d in got]
    finally:
        client.close()


def test_custom_keys_and_colliding_metadata(tmp_path):
    """content_key / metadata_key as the app sets them; metadata named like the layout's keys survives."""
    from langchain_qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient, models

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from langchain_community.vectorstores import FAISS
    metas = [{"page_content": f"user {i}", "metadata": {"m": i}, "source_id": f"u{i}", "body": i} for i in range(10)]
    root = tmp_path / "f"
    FAISS.from_texts([f"text {i}" for i in range(10)], _emb(), metadatas=metas,
                     ids=[f"chunk-{i}" for i in range(10)]).save_local(str(root))
    qpath = tmp_path / "q"
    opts = SourceOptions(trust_pickle=True, extra={"content_key": "body", "metadata_key": "meta"})
    s = migrate(str(root), "lc", url=f"local:{qpath}", options=opts, state_dir=str(tmp_path / "s"))
    assert (s.written, s.rejected) == (10, 0)
    client = QdrantClient(path=str(qpath))
    try:
        qs = QdrantVectorStore(client=client, collection_name="lc", embedding=_emb(), content_payload_key="body",
                               metadata_payload_key="meta", distance=models.Distance.EUCLID)
        d = qs.similarity_search("text 4", k=1)[0]
        assert (d.page_content, _strip(d.metadata)) == ("text 4", metas[4])
        pt = client.scroll("lc", limit=100)[0][0]
        # the non-uuid LangChain id is kept beside the layout's keys, where LangChain does not look
        assert set(pt.payload) == {"body", "meta", "source_id"} and pt.payload["source_id"].startswith("chunk-")
    finally:
        client.close()


def test_chroma_into_langchain_layout(tmp_path):
    import chromadb
    from chromadb.config import Settings

    texts, metas = _docs(40)
    emb = _emb()
    croot = tmp_path / "chroma"
    c = chromadb.PersistentClient(path=str(croot), settings=Settings(anonymized_telemetry=False))
    col = c.create_collection("docs", metadata={"hnsw:space": "cosine"})
    col.add(ids=[f"d{i}" for i in range(40)], embeddings=np.asarray(emb.embed_documents(texts)),
            documents=texts, metadatas=[{k: v for k, v in m.items() if k in ("lang", "page")} for m in metas])
    expected = {}
    for q in QUERIES:
        r = col.query(query_embeddings=[emb.embed_query(q)], n_results=5)
        rf = col.query(query_embeddings=[emb.embed_query(q)], n_results=5, where={"lang": "go"})
        expected[q] = ([(t, m) for t, m in zip(r["documents"][0], r["metadatas"][0], strict=True)],
                       [(t, m) for t, m in zip(rf["documents"][0], rf["metadatas"][0], strict=True)])
    del col, c
    qpath = tmp_path / "q"
    s = migrate(str(croot), "from_chroma", url=f"local:{qpath}", options=SourceOptions(layout="langchain"),
                state_dir=str(tmp_path / "s"))
    assert (s.layout, s.distance, s.written) == ("langchain", "cosine", 40)
    client, qs = _store(qpath, "from_chroma")
    try:
        for q, (want, want_f) in expected.items():
            assert want == [(d.page_content, _strip(d.metadata)) for d in qs.similarity_search(q, k=5)]
            assert want_f == [(d.page_content, _strip(d.metadata))
                              for d in qs.similarity_search(q, k=5, filter=_lang("go"))]
    finally:
        client.close()


def test_pgvector_langchain_table_into_langchain_layout(pg_server: PgServer, tmp_path):  # noqa: F811
    """langchain-postgres's PGVector table, made by hand (the package is not installed): id, collection_id,
    embedding, document, cmetadata."""
    import psycopg

    texts, metas = _docs(300)  # more than the rows sampled ahead: the sample stops the COPY half-way
    vecs = _emb().embed_documents(texts)
    coll = uuid.UUID(int=7)
    with psycopg.connect(pg_server.url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS langchain_pg_embedding")
        cur.execute(f"""CREATE TABLE langchain_pg_embedding (id varchar PRIMARY KEY, collection_id uuid,
                        embedding vector({DIM}), document varchar, cmetadata jsonb)""")
        cur.executemany("INSERT INTO langchain_pg_embedding VALUES (%s, %s, %s::vector, %s, %s::jsonb)",
                        [(str(uuid.UUID(int=1000 + i)), str(coll), _vec(vecs[i]), texts[i], json.dumps(metas[i]))
                         for i in range(300)])
        cur.execute("CREATE INDEX ON langchain_pg_embedding USING hnsw (embedding vector_cosine_ops)")
        expected = {}
        for q in QUERIES:
            qv = _vec(_emb().embed_query(q))
            cur.execute("SELECT document, cmetadata FROM langchain_pg_embedding ORDER BY embedding <=> %s::vector, id "
                        "LIMIT 5", (qv,))
            expected[q] = [tuple(r) for r in cur.fetchall()]
    qpath = tmp_path / "q"
    opts = SourceOptions(table="langchain_pg_embedding", layout="langchain")
    s = migrate(pg_server.url, "from_pg", url=f"local:{qpath}", options=opts, state_dir=str(tmp_path / "s"))
    assert (s.layout, s.distance, s.written) == ("langchain", "cosine", 300)
    assert verify("from_pg", source=pg_server.url, url=f"local:{qpath}", options=opts, full=True).ok
    client, qs = _store(qpath, "from_pg")
    try:
        for q, want in expected.items():
            assert want == [(d.page_content, _strip(d.metadata)) for d in qs.similarity_search(q, k=5)]
        pt = client.retrieve("from_pg", [str(uuid.UUID(int=1003))])[0]
        assert pt.payload == {"page_content": texts[3], "metadata": metas[3], "collection_id": str(coll)}
    finally:
        client.close()
