"""LangChain FAISS source: folders written by the real ``FAISS.save_local``."""

from __future__ import annotations

import hashlib
import pickle
import shutil
import sys
import types
import uuid
import warnings
from pathlib import Path

import numpy as np
import pytest

from cortex.api import connect, migrate, verify
from cortex.errors import SourceError
from cortex.ids import map_id
from cortex.sources import SourceOptions, open_source
from cortex.sources.langchain import LangChainFaissSource

N = 200
DIM = 8
TRUST = SourceOptions(trust_pickle=True)
FLAT = SourceOptions(trust_pickle=True, layout="flat")  # Cortex's flat payload (the default is LangChain's layout)


def _save(path: Path, x: np.ndarray, ids: list[str] | None = None, inner_product: bool = False) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # langchain-community's sunset notice
        from langchain_community.vectorstores import FAISS
        from langchain_community.vectorstores.utils import DistanceStrategy
        from langchain_core.embeddings import DeterministicFakeEmbedding

    texts = [f"passage {i}" for i in range(len(x))]
    metas = [{"source": f"doc{i % 5}.pdf", "page": i, "year": 2000 + i % 3} for i in range(len(x))]
    strategy = DistanceStrategy.MAX_INNER_PRODUCT if inner_product else DistanceStrategy.EUCLIDEAN_DISTANCE
    store = FAISS.from_embeddings(list(zip(texts, x.tolist(), strict=True)), DeterministicFakeEmbedding(size=DIM),
                                  metadatas=metas, ids=ids, distance_strategy=strategy)
    store.save_local(str(path))


@pytest.fixture(scope="module")
def lc_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, list[str]]:
    root = tmp_path_factory.mktemp("langchain") / "faiss_index"
    x = np.random.default_rng(5).standard_normal((N, DIM)).astype(np.float32)
    _save(root, x)
    with open(root / "index.pkl", "rb") as fh:
        from cortex.sources.langchain import RestrictedUnpickler

        _, mapping = RestrictedUnpickler(fh).load()
    return root, x, [mapping[i] for i in range(N)]


def _tree_hash(root: Path) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(root.iterdir())}


def test_detect(lc_dir, tmp_path):
    root, _, _ = lc_dir
    assert LangChainFaissSource.detect(str(root))
    assert LangChainFaissSource.detect(str(root / "index.faiss"))
    shutil.copy(root / "index.faiss", tmp_path / "index.faiss")
    assert not LangChainFaissSource.detect(str(tmp_path))  # a bare FAISS index is the faiss source's
    assert open_source(str(root)).kind == "langchain"


def test_refuses_pickle_without_trust(lc_dir):
    root, _, _ = lc_dir
    with pytest.raises(SourceError) as e:
        LangChainFaissSource(str(root)).info()
    msg = str(e.value)
    assert "\n" not in msg and "pickle" in msg and "--trust-pickle" in msg and "trusted source" in msg


def test_info_and_batches(lc_dir):
    root, x, ids = lc_dir
    with open_source(str(root), "langchain", FLAT) as src:
        info = src.info()
        assert (info.dim, info.distance, info.count, info.lossy) == (DIM, "euclid", N, False)
        batches = list(src.batches(64))
        assert [len(b) for b in batches] == [64, 64, 64, 8]
        assert [i for b in batches for i in b.ids] == ids
        assert all(str(uuid.UUID(i)) == i for i in ids)  # LangChain's default ids are uuid4 strings
        np.testing.assert_array_equal(np.concatenate([b.vectors for b in batches]), x)
        assert batches[0].payloads[3] == {"source": "doc3.pdf", "page": 3, "year": 2000, "page_content": "passage 3"}
        resumed = [i for b in src.batches(64, resume=batches[2].cursor) for i in b.ids]
        assert resumed == ids[192:]


def test_migrate_verify_and_search(lc_dir, qdrant_path, tmp_path):
    root, x, ids = lc_dir
    before = _tree_hash(root)
    s = migrate(str(root), "lc", path=str(qdrant_path), options=FLAT, batch_size=50,
                state_dir=str(tmp_path / "state"))
    assert (s.read, s.written, s.rejected, s.distance) == (N, N, 0, "euclid")
    assert verify("lc", source=str(root), path=str(qdrant_path), options=FLAT, full=True).ok
    with connect(path=str(qdrant_path)) as t:
        p = t.retrieve("lc", [ids[7]], with_vectors=True)[ids[7]]
    assert p.payload == {"source": "doc2.pdf", "page": 7, "year": 2001, "page_content": "passage 7"}
    np.testing.assert_array_equal(p.vector, x[7])
    assert _tree_hash(root) == before
    with LangChainFaissSource(str(root), TRUST) as src:
        got, scores = src.search(x[[7]] + 0.5, 3)
    assert got[0][0] == ids[7]
    assert scores[0, 0] == pytest.approx(0.5 * np.sqrt(DIM), rel=1e-5)  # euclidean distance, not squared


def test_custom_ids_and_inner_product(tmp_path):
    x = np.random.default_rng(1).standard_normal((20, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    d = tmp_path / "ip"
    _save(d, x, ids=[f"chunk-{i}" for i in range(20)], inner_product=True)
    with LangChainFaissSource(str(d), TRUST) as src:
        info = src.info()
        assert info.distance == "dot"
        assert any("unit length" in w for w in info.warnings)
        b = next(iter(src.batches(100)))
        assert b.ids == [f"chunk-{i}" for i in range(20)]
        got, scores = src.search(x[:1], 1)
        assert got == [["chunk-0"]] and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    s = migrate(str(d), "ip", path=str(tmp_path / "q"), options=FLAT, state_dir=str(tmp_path / "state"))
    assert s.written == 20
    with connect(path=str(tmp_path / "q")) as t:
        p = t.retrieve("ip", [map_id("chunk-3")[0]])[map_id("chunk-3")[0]]
    assert p.payload["source_id"] == "chunk-3" and p.payload["page_content"] == "passage 3"


def test_old_pickle_paths_and_pydantic_v1_state(lc_dir, tmp_path, monkeypatch):
    """Folders saved by langchain 0.0.x reference langchain.schema / langchain.docstore classes."""
    root, _, ids = lc_dir
    schema = types.ModuleType("langchain.schema")
    in_memory = types.ModuleType("langchain.docstore.in_memory")

    class Document:  # pydantic v1 pickles as {"__dict__": fields, "__fields_set__": set}
        def __init__(self, page_content: str, metadata: dict) -> None:
            self.page_content, self.metadata = page_content, metadata

        def __getstate__(self) -> dict:
            return {"__dict__": dict(self.__dict__), "__fields_set__": {"page_content", "metadata"}}

    class InMemoryDocstore:
        def __init__(self, d: dict) -> None:
            self._dict = d

    Document.__module__, InMemoryDocstore.__module__ = schema.__name__, in_memory.__name__
    Document.__qualname__, InMemoryDocstore.__qualname__ = "Document", "InMemoryDocstore"
    schema.Document, in_memory.InMemoryDocstore = Document, InMemoryDocstore
    for parent in ("langchain", "langchain.docstore"):  # pickle imports the packages too
        monkeypatch.setitem(sys.modules, parent, sys.modules.get(parent) or types.ModuleType(parent))
    monkeypatch.setitem(sys.modules, "langchain.schema", schema)
    monkeypatch.setitem(sys.modules, "langchain.docstore.in_memory", in_memory)
    d = tmp_path / "old"
    d.mkdir()
    shutil.copy(root / "index.faiss", d / "index.faiss")
    store = InMemoryDocstore({i: Document(f"old {n}", {"n": n}) for n, i in enumerate(ids)})
    for protocol in (0, 2, 4):
        (d / "index.pkl").write_bytes(pickle.dumps((store, dict(enumerate(ids))), protocol=protocol))
        b = next(iter(LangChainFaissSource(str(d), TRUST).batches(10)))
        assert b.ids == ids[:10] and b.payloads[4] == {"n": 4} and b.texts[4] == "old 4"


class _Evil:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        import os

        return (os.system, (self.command,))


def test_restricted_unpickler_refuses_other_classes(lc_dir, tmp_path):
    root, _, _ = lc_dir
    d = tmp_path / "evil"
    d.mkdir()
    shutil.copy(root / "index.faiss", d / "index.faiss")
    marker = tmp_path / "pwned"
    (d / "index.pkl").write_bytes(pickle.dumps((_Evil(f"touch {marker}"), {0: "x"})))
    with pytest.raises(SourceError, match=r"references (posix|os)\.system, which is not a LangChain .* refuses"):
        LangChainFaissSource(str(d), TRUST).info()
    assert not marker.exists()
    (d / "index.pkl").write_bytes(pickle.dumps((eval, {0: "x"})))
    with pytest.raises(SourceError, match=r"references builtins\.eval"):
        LangChainFaissSource(str(d), TRUST).info()


def test_corrupt_and_empty(lc_dir, tmp_path):
    import faiss

    root, _, ids = lc_dir
    d = tmp_path / "bad"
    shutil.copytree(root, d)
    pkl = (d / "index.pkl").read_bytes()
    (d / "index.pkl").write_bytes(pkl[: len(pkl) // 2])
    with pytest.raises(SourceError, match="corrupt or truncated"):
        LangChainFaissSource(str(d), TRUST).info()
    (d / "index.pkl").write_bytes(pkl)
    idx = (d / "index.faiss").read_bytes()
    (d / "index.faiss").write_bytes(idx[:100])
    with pytest.raises(SourceError, match="index.faiss: not a readable FAISS index"):
        LangChainFaissSource(str(d), TRUST).info()
    faiss.write_index(faiss.IndexFlatL2(DIM), str(d / "index.faiss"))
    with pytest.raises(SourceError, match="holds no vectors; nothing to migrate"):
        LangChainFaissSource(str(d), TRUST).info()
    (d / "index.faiss").unlink()
    with pytest.raises(SourceError, match="index.faiss is missing"):
        LangChainFaissSource(str(d), TRUST).info()
    with pytest.raises(SourceError, match="no such file"):
        LangChainFaissSource(str(tmp_path / "missing"), TRUST).info()


def test_document_missing_from_docstore_is_rejected(lc_dir, tmp_path):
    from cortex.sources.langchain import RestrictedUnpickler

    root, _, ids = lc_dir
    d = tmp_path / "gap"
    shutil.copytree(root, d)
    mapping = dict(enumerate(ids))
    mapping[5] = "not-in-docstore"
    del mapping[6]
    # re-pickle with the real classes' module paths: load with langchain, then dump
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from langchain_community.docstore.in_memory import InMemoryDocstore
        from langchain_core.documents import Document
    with open(root / "index.pkl", "rb") as fh:
        stand_in, _ = RestrictedUnpickler(fh).load()
    real = InMemoryDocstore({k: Document(page_content=v.page_content, metadata=v.metadata)
                             for k, v in stand_in._dict.items()})
    (d / "index.pkl").write_bytes(pickle.dumps((real, mapping)))
    src = LangChainFaissSource(str(d), TRUST)
    assert any("1 FAISS rows have no docstore id" in w for w in src.info().warnings)
    batches = list(src.batches(100))
    assert sum(len(b) for b in batches) == N - 2
    reasons = sorted(r.reason for b in batches for r in b.rejected)
    assert reasons == ["FAISS row 6 has no docstore id in index.pkl",
                       "the docstore holds no document for id 'not-in-docstore' (LangChain itself fails on it)"]
    assert len(batches[0].vectors) == len(batches[0].ids) == 98


def test_cli(lc_dir, cli, tmp_path):
    root, _, _ = lc_dir
    qd = tmp_path / "qd"
    res = cli("qdrant", "migrate", "--source", root, "--target", "lc", "--path", qd)
    assert res.exit_code == 2 and "--trust-pickle" in res.stderr and "Traceback" not in res.output
    res = cli("qdrant", "migrate", "--source", root, "--target", "lc", "--path", qd, "--trust-pickle")
    assert res.exit_code == 0, res.output
    res = cli("qdrant", "verify", "--collection", "lc", "--source", root, "--path", qd, "--trust-pickle", "--full")
    assert res.exit_code == 0, res.output
