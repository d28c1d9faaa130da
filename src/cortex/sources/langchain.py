"""A LangChain FAISS folder written by ``FAISS.save_local``: ``index.faiss`` + ``index.pkl``.

``index.faiss`` is a plain FAISS index (``IndexFlatL2`` by default, ``IndexFlatIP`` for the
inner-product and cosine strategies).  ``index.pkl`` is a pickle of
``(InMemoryDocstore, {faiss position: docstore id})``.  Unpickling can run code, so it is
read only with ``options.trust_pickle``; even then a restricted unpickler maps LangChain's
``InMemoryDocstore`` and ``Document`` classes (current and older module paths) to small
local stand-ins and refuses every other class, so LangChain need not be installed.

The docstore id (usually a uuid string) is the point id; ``page_content`` is the row's text
(``Batch.texts``) and the document's metadata its payload; the layout (by default LangChain's,
see :mod:`cortex.layouts`) places both.
"""

from __future__ import annotations

import gc
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from cortex.errors import SourceError
from cortex.sources.base import Batch, Rejected, Source, SourceInfo, check_exists, plain, require, row_norms

TEXT_FIELD = "page_content"
DEFAULT_INDEX_NAME = "index"
INDEX_NAME_FLAG = "--source-collection"  # the CLI flag that sets SourceOptions.collection


class StandInDocstore:
    """Accepts the pickled state of LangChain's InMemoryDocstore (``{"_dict": {id: Document}}``)."""

    _dict: dict[str, Any]

    def __setstate__(self, state: Any) -> None:
        _set_state(self, state)


class StandInDocument:
    """Accepts the pickled state of LangChain's Document (pydantic v1 or v2)."""

    page_content: str
    metadata: dict[str, Any]

    def __setstate__(self, state: Any) -> None:
        _set_state(self, state)


def _set_state(obj: object, state: Any) -> None:
    if isinstance(state, tuple) and len(state) == 2:  # (dict state, slots state)
        state = {**(state[0] or {}), **(state[1] or {})}
    if not isinstance(state, dict):
        raise pickle.UnpicklingError(f"unexpected pickled state for {type(obj).__name__}")
    # pydantic v2: {"__dict__": fields, "__pydantic_extra__", ...}; v1: {"__dict__", "__fields_set__"}
    fields = state.get("__dict__", state)
    if not isinstance(fields, dict):
        raise pickle.UnpicklingError(f"unexpected pickled state for {type(obj).__name__}")
    obj.__dict__.update(fields)


_DOCSTORE_PATHS = [
    ("langchain_community.docstore.in_memory", "InMemoryDocstore"),
    ("langchain.docstore.in_memory", "InMemoryDocstore"),
    ("langchain_classic.docstore.in_memory", "InMemoryDocstore"),
]
_DOCUMENT_PATHS = [
    ("langchain_core.documents.base", "Document"),
    ("langchain_core.documents", "Document"),
    ("langchain.schema", "Document"),
    ("langchain.schema.document", "Document"),
    ("langchain.docstore.document", "Document"),
    ("langchain_classic.schema", "Document"),
    ("langchain_classic.docstore.document", "Document"),
]
_SAFE = {
    ("datetime", "datetime"), ("datetime", "date"), ("datetime", "time"), ("datetime", "timedelta"),
    ("datetime", "timezone"), ("uuid", "UUID"), ("decimal", "Decimal"), ("collections", "OrderedDict"),
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "complex"),
    # protocols 0-1 rebuild objects with copyreg._reconstructor(cls, object, state): cls is still checked
    ("copyreg", "_reconstructor"), ("builtins", "object"),
}
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}  # protocols 0-2 may name these
ALLOWED: dict[tuple[str, str], Any] = {
    **{k: StandInDocstore for k in _DOCSTORE_PATHS},
    **{k: StandInDocument for k in _DOCUMENT_PATHS},
}


class RefusedClass(pickle.UnpicklingError):
    """The pickle names a class outside the allow-list."""


class RestrictedUnpickler(pickle.Unpickler):
    """Instantiates only LangChain's docstore/document (as stand-ins) and a few value types."""

    def find_class(self, module: str, name: str) -> Any:
        module = _PY2_MODULES.get(module, module)
        if (module, name) in ALLOWED:
            return ALLOWED[(module, name)]
        if (module, name) in _SAFE:
            return super().find_class(module, name)
        raise RefusedClass(f"index.pkl references {module}.{name}, which is not a LangChain "
                                     "docstore or document class; cortex refuses to load it")


def load_docstore(pkl: Path) -> tuple[dict[str, Any], dict[int, str]]:
    """({docstore id: document}, {faiss position: docstore id}) from a LangChain ``index.pkl``."""
    gc_was_on = gc.isenabled()
    gc.disable()  # millions of small objects: cyclic GC passes would cost more than the load (2.8 s -> 1.1 s)
    try:
        with open(pkl, "rb") as fh:
            obj = RestrictedUnpickler(fh).load()
    except RefusedClass as e:
        raise SourceError(f"{pkl}: {e}") from e
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            OverflowError) as e:
        raise SourceError(f"{pkl}: not a readable LangChain docstore pickle ({type(e).__name__}: {e}); "
                          "the file is corrupt or truncated, save the store again with save_local") from e
    finally:
        if gc_was_on:
            gc.enable()
    if not (isinstance(obj, tuple) and len(obj) == 2):
        raise SourceError(f"{pkl}: expected the pickle of (docstore, index_to_docstore_id) that "
                          "FAISS.save_local writes")
    store, mapping = obj
    docs = getattr(store, "_dict", None)
    if not isinstance(docs, dict) or not isinstance(mapping, dict):
        raise SourceError(f"{pkl}: the docstore is not an InMemoryDocstore; cortex reads LangChain's "
                          "default docstore only")
    return docs, mapping


def _pairs(root: Path) -> list[str]:
    """Index names with both ``<name>.faiss`` and ``<name>.pkl`` in ``root``."""
    try:
        names = {p.name for p in root.iterdir()}
    except OSError:
        return []
    return sorted(n[:-6] for n in names if n.endswith(".faiss") and n[:-6] + ".pkl" in names)


class LangChainFaissSource(Source):
    kind = "langchain"
    extra = "langchain"
    description = "a LangChain FAISS folder (index.faiss + index.pkl from save_local)"

    def __init__(self, path: str, options: Any = None) -> None:
        super().__init__(path, options)
        self._index: Any = None
        self._docs: dict[str, Any] | None = None
        self._mapping: dict[int, str] | None = None

    @classmethod
    def detect(cls, path: str) -> bool:
        p = Path(path)
        if p.is_file():
            return p.suffix == ".faiss" and p.with_suffix(".pkl").is_file()
        return p.is_dir() and bool(_pairs(p))

    def _files(self) -> tuple[Path, Path]:
        p = check_exists(self.path)
        if p.is_file():
            if p.suffix != ".faiss" or not p.with_suffix(".pkl").is_file():
                raise SourceError(f"{self.path}: the langchain source needs the folder given to save_local "
                                  "(with index.faiss and index.pkl)")
            return p, p.with_suffix(".pkl")
        names = _pairs(p)
        want = self.options.collection
        if want is None:
            if DEFAULT_INDEX_NAME in names or not names:
                want = DEFAULT_INDEX_NAME
            elif len(names) == 1:
                want = names[0]
            else:
                raise SourceError(f"{self.path}: several LangChain indexes ({', '.join(names)}); "
                                  f"choose one with {INDEX_NAME_FLAG} NAME")
        faiss_file, pkl = p / f"{want}.faiss", p / f"{want}.pkl"
        for f in (faiss_file, pkl):
            if not f.is_file():
                raise SourceError(f"{self.path}: {f.name} is missing; FAISS.save_local writes {want}.faiss and "
                                  f"{want}.pkl side by side")
        return faiss_file, pkl

    def _open(self) -> tuple[Any, dict[str, Any], dict[int, str]]:
        if self._index is not None:
            assert self._docs is not None and self._mapping is not None
            return self._index, self._docs, self._mapping
        faiss_file, pkl = self._files()
        if not self.options.trust_pickle:
            raise SourceError(f"{pkl}: LangChain stores its docstore as a Python pickle, and loading a pickle can "
                              "run code; pass --trust-pickle if this folder comes from a trusted source")
        faiss = require("faiss", self.extra, "LangChain FAISS")
        docs, mapping = load_docstore(pkl)
        flag = getattr(faiss, "IO_FLAG_MMAP_IFC", 0)  # map flat codes instead of reading them into memory
        try:
            try:
                index = faiss.read_index(str(faiss_file), flag)
            except RuntimeError:
                index = faiss.read_index(str(faiss_file))
        except RuntimeError as e:
            msg = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            raise SourceError(f"{faiss_file}: not a readable FAISS index ({msg}); the file is corrupt or "
                              "truncated, save the store again with save_local") from e
        self._index, self._docs, self._mapping = index, docs, mapping
        return index, docs, mapping

    def _distance(self, index: Any) -> str:
        faiss = require("faiss", self.extra, "LangChain FAISS")
        metric = index.metric_type
        if metric == faiss.METRIC_L2:
            return "euclid"
        if metric == faiss.METRIC_INNER_PRODUCT:
            return "dot"
        raise SourceError(f"{self.path}: FAISS metric {metric} has no Qdrant equivalent; pass --distance")

    def info(self) -> SourceInfo:
        index, docs, mapping = self._open()
        n = int(index.ntotal)
        if n == 0:
            raise SourceError(f"{self.path}: the FAISS index holds no vectors; nothing to migrate")
        warnings: list[str] = []
        dist = self._distance(index)
        if dist == "dot":
            sample = self._vectors(index, 0, min(n, 1000))
            norms = row_norms(sample)
            if np.allclose(norms, 1.0, atol=1e-3):
                warnings.append("vectors are unit length (LangChain's COSINE strategy or normalize_L2): dot "
                                "equals cosine here; pass --distance cosine to say so in Qdrant")
        unmapped = n - sum(1 for i in range(n) if i in mapping)
        if unmapped:
            warnings.append(f"{unmapped} FAISS rows have no docstore id in index.pkl; they will be rejected")
        lossy = type(index).__name__ not in ("IndexFlat", "IndexFlatL2", "IndexFlatIP", "IndexIDMap")
        if lossy:
            warnings.append(f"{type(index).__name__} is not a flat index: vectors are reconstructed and may be "
                            "approximations of the originals")
        return SourceInfo(kind=self.kind, name=self.path, dim=int(index.d), distance=dist, count=n,
                          warnings=warnings, lossy=lossy,
                          details={"index_type": type(index).__name__, "documents": len(docs),
                                   "layout": "langchain", "text_field": TEXT_FIELD})

    @staticmethod
    def _vectors(index: Any, start: int, stop: int) -> np.ndarray:
        return np.asarray(index.reconstruct_n(start, stop - start), dtype=np.float32)

    def batches(self, batch_size: int, resume: Any = None) -> Iterator[Batch]:
        index, docs, mapping = self._open()
        n = int(index.ntotal)
        start = int(resume["offset"]) if resume else 0
        for s in range(start, n, batch_size):
            e = min(n, s + batch_size)
            vecs = self._vectors(index, s, e)
            keep: list[int] = []
            ids: list[str] = []
            payloads: list[dict[str, Any]] = []
            texts: list[str | None] = []
            rejected: list[Rejected] = []
            for pos in range(s, e):
                where = f"{self.path}#{pos}"
                did = mapping.get(pos)
                if did is None:
                    rejected.append(Rejected(where, f"FAISS row {pos} has no docstore id in index.pkl"))
                    continue
                doc = docs.get(did)
                if doc is None:
                    rejected.append(Rejected(where, f"the docstore holds no document for id {did!r} "
                                                    "(LangChain itself fails on it)", id=did))
                    continue
                keep.append(pos - s)
                ids.append(did)
                meta = getattr(doc, "metadata", None) or {}
                payloads.append({str(k): plain(v) for k, v in meta.items()} if isinstance(meta, dict) else {})
                texts.append(getattr(doc, "page_content", None))
            if len(keep) < e - s:
                vecs = vecs[keep]
            yield Batch(ids=ids, vectors=vecs, payloads=payloads, rejected=rejected, texts=texts,
                        locations=[f"{self.path}#{s + k}" for k in keep], cursor={"offset": e})

    def search(self, queries: np.ndarray, k: int) -> tuple[list[list[Any]], np.ndarray]:
        """FAISS search; scores in Qdrant's convention: dot product, or euclidean distance (sqrt of L2²)."""
        index, _, mapping = self._open()
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        d, idx = index.search(q, k)
        scores = np.asarray(d, dtype=np.float64)
        if index.metric_type == require("faiss", self.extra, "LangChain FAISS").METRIC_L2:
            scores = np.sqrt(np.maximum(scores, 0.0))
        scores[idx < 0] = np.nan
        ids = [[mapping.get(int(i)) for i in row if i >= 0] for row in idx]
        return ids, scores

    def close(self) -> None:
        self._index, self._docs, self._mapping = None, None, None
