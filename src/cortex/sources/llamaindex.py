"""A LlamaIndex persist directory written by ``storage_context.persist()`` (plain JSON).

``<namespace>__vector_store.json`` (SimpleVectorStore: ``embedding_dict`` node id ->
vector, ``metadata_dict``, ``text_id_to_ref_doc_id``) holds the vectors; ``docstore.json``
(``docstore/data`` node id -> ``{"__type__", "__data__": {"text", "metadata", ...}}``)
holds the texts.  The node id is the point id, its metadata the payload, its text the row's
text (``Batch.texts``) and the docstore node with its source document id the row's
``Batch.native`` record, from which the LlamaIndex layout (the default, :mod:`cortex.layouts`)
writes what LlamaIndex's QdrantVectorStore writes; the flat layout puts the text in ``text``
and the document id in ``ref_doc_id``.

The files are JSON, so they are loaded whole (orjson); vectors are converted to float32
one batch at a time.  SimpleVectorStore searches by cosine similarity.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from cortex.errors import SourceError
from cortex.sources.base import Batch, Rejected, Source, SourceInfo, check_exists

VECTOR_STORE_SUFFIX = "vector_store.json"
NAMESPACE_SEP = "__"
DEFAULT_NAMESPACE = "default"
DOCSTORE = "docstore.json"
COLLECTION_FLAG = "--source-collection"  # the CLI flag that sets SourceOptions.collection
TEXT_FIELD = "text"
REF_DOC_FIELD = "ref_doc_id"
# keys SimpleVectorStore adds to each node's metadata_dict entry; not user metadata
_INTERNAL_KEYS = ("_node_content", "_node_type", "document_id", "doc_id", "ref_doc_id")


def vector_store_files(root: Path) -> dict[str, Path]:
    """namespace -> vector store file (``vector_store.json`` of old versions is ``default``)."""
    out: dict[str, Path] = {}
    try:
        names = sorted(p.name for p in root.iterdir())
    except OSError:
        return out
    for name in names:
        if name == VECTOR_STORE_SUFFIX:
            out.setdefault(DEFAULT_NAMESPACE, root / name)
        elif name.endswith(NAMESPACE_SEP + VECTOR_STORE_SUFFIX):
            out[name[: -len(NAMESPACE_SEP + VECTOR_STORE_SUFFIX)]] = root / name
    return out


def _load_json(path: Path) -> Any:
    gc_was_on = gc.isenabled()
    gc.disable()  # millions of floats and dicts: cyclic GC passes during the parse only cost time
    try:
        return orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as e:
        raise SourceError(f"{path}: not valid JSON ({e}); the LlamaIndex persist directory is corrupt or "
                          "truncated, persist the index again") from e
    except OSError as e:
        raise SourceError(f"{path}: cannot read ({e})") from e
    finally:
        if gc_was_on:
            gc.enable()


class LlamaIndexSource(Source):
    kind = "llamaindex"
    extra = "llamaindex"
    description = "a LlamaIndex persist directory (default__vector_store.json + docstore.json)"

    def __init__(self, path: str, options: Any = None) -> None:
        super().__init__(path, options)
        self._loaded: tuple[list[str], dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]] | None = None
        self._warnings: list[str] = []

    @classmethod
    def detect(cls, path: str) -> bool:
        p = Path(path)
        return p.is_dir() and (p / DOCSTORE).is_file() and bool(vector_store_files(p))

    def _load(self) -> tuple[list[str], dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
        """(node ids, embedding_dict, metadata_dict, ref doc ids, docstore nodes), loaded once."""
        if self._loaded is not None:
            return self._loaded
        root = check_exists(self.path)
        if not root.is_dir():
            raise SourceError(f"{self.path}: the llamaindex source needs the persist directory "
                              "(the persist_dir given to storage_context.persist)")
        stores = vector_store_files(root)
        if not stores:
            raise SourceError(f"{self.path}: no *{VECTOR_STORE_SUFFIX} here; only indexes persisted with "
                              "LlamaIndex's default SimpleVectorStore keep their vectors in this directory")
        ns = self.options.collection
        if ns is None:
            ns = DEFAULT_NAMESPACE if DEFAULT_NAMESPACE in stores else sorted(stores)[0]
        if ns not in stores:
            raise SourceError(f"{self.path}: no vector store namespace '{ns}'; found: {', '.join(sorted(stores))}")
        vs = _load_json(stores[ns])
        if not isinstance(vs, dict) or not isinstance(vs.get("embedding_dict"), dict):
            raise SourceError(f"{stores[ns]}: not a SimpleVectorStore file (no \"embedding_dict\" object)")
        emb: dict[str, Any] = vs["embedding_dict"]
        if not emb:
            others = [n for n, f in stores.items() if n != ns and f.stat().st_size > 80]
            hint = f"; other namespaces: {', '.join(others)} (choose one with {COLLECTION_FLAG})" if others else ""
            raise SourceError(f"{stores[ns]}: the vector store '{ns}' holds no vectors; nothing to migrate{hint}")
        metas = vs.get("metadata_dict") or {}
        refs = vs.get("text_id_to_ref_doc_id") or {}
        docs: dict[str, Any] = {}
        ds_path = root / DOCSTORE
        if ds_path.is_file():
            ds = _load_json(ds_path)
            docs = (ds.get("docstore/data") or {}) if isinstance(ds, dict) else {}
            if not isinstance(docs, dict):
                raise SourceError(f"{ds_path}: \"docstore/data\" is not an object; persist the index again")
        else:
            self._warnings.append(f"{self.path}: no {DOCSTORE}; node texts are not migrated, only vectors "
                                  "and metadata")
        self._loaded = (list(emb), emb, metas, refs, docs)
        return self._loaded

    def info(self) -> SourceInfo:
        keys, emb, _, _, docs = self._load()
        first = emb[keys[0]]
        if not isinstance(first, list) or not first:
            raise SourceError(f"{self.path}: node '{keys[0]}' has no embedding list; the vector store is corrupt")
        warnings = list(self._warnings)
        if docs:
            missing = sum(1 for k in keys if k not in docs)
            if missing:
                warnings.append(f"{missing} of {len(keys)} nodes are not in {DOCSTORE}; they migrate without text")
        return SourceInfo(kind=self.kind, name=self.path, dim=len(first), distance="cosine", count=len(keys),
                          warnings=warnings, details={"namespace": self.options.collection or DEFAULT_NAMESPACE,
                                                      "layout": "llamaindex", "text_field": TEXT_FIELD})

    def batches(self, batch_size: int, resume: Any = None) -> Iterator[Batch]:
        keys, emb, metas, refs, docs = self._load()
        start = int(resume["offset"]) if resume else 0
        dim = len(emb[keys[0]])
        for s in range(start, len(keys), batch_size):
            chunk = keys[s : s + batch_size]
            ids: list[str] = []
            rows: list[Any] = []
            payloads: list[dict[str, Any]] = []
            texts: list[str | None] = []
            native: list[dict[str, Any] | None] = []
            rejected: list[Rejected] = []
            for nid in chunk:
                vec = emb[nid]
                if not isinstance(vec, list) or len(vec) != dim:
                    got = len(vec) if isinstance(vec, list) else type(vec).__name__
                    rejected.append(Rejected(f"{self.path}#{nid}", f"embedding has {got} values, expected {dim}",
                                             id=nid))
                    continue
                ids.append(nid)
                rows.append(vec)
                meta, text, rec = self._row(nid, metas, refs, docs)
                payloads.append(meta)
                texts.append(text)
                native.append(rec)
            try:
                vecs = np.asarray(rows, dtype=np.float32) if rows else np.empty((0, dim), np.float32)
            except (TypeError, ValueError):
                keep = self._numeric_rows(ids, rows, rejected)
                vecs = np.stack([np.asarray(rows[i], dtype=np.float32) for i in keep]) if keep else \
                    np.empty((0, dim), np.float32)
                ids, payloads = [ids[i] for i in keep], [payloads[i] for i in keep]
                texts, native = [texts[i] for i in keep], [native[i] for i in keep]
            yield Batch(ids=ids, vectors=vecs, payloads=payloads, rejected=rejected, texts=texts, native=native,
                        locations=[f"{self.path}#{i}" for i in ids], cursor={"offset": s + len(chunk)})

    def _numeric_rows(self, ids: list[str], rows: list[Any], rejected: list[Rejected]) -> list[int]:
        """Positions of the rows whose embedding is numeric; the others are rejected."""
        keep = []
        for i, r in enumerate(rows):
            try:
                np.asarray(r, dtype=np.float32)
                keep.append(i)
            except (TypeError, ValueError):
                rejected.append(Rejected(f"{self.path}#{ids[i]}", "embedding holds a non-numeric value", id=ids[i]))
        return keep

    @staticmethod
    def _row(nid: str, metas: dict[str, Any], refs: dict[str, Any], docs: dict[str, Any]
             ) -> tuple[dict[str, Any], str | None, dict[str, Any]]:
        """(metadata, text, native record) of one node."""
        node = docs.get(nid)
        data = node.get("__data__") if isinstance(node, dict) else None
        if isinstance(data, str):  # some versions store the node as a JSON string
            try:
                data = orjson.loads(data)
            except orjson.JSONDecodeError:
                data = None
        payload: dict[str, Any] = {}
        text = None
        if isinstance(data, dict):
            payload.update(data.get("metadata") or {})
            text = data.get("text")
            if text is None and isinstance(data.get("text_resource"), dict):
                text = data["text_resource"].get("text")
        else:
            data = None
            meta = metas.get(nid) or {}
            payload.update({k: v for k, v in meta.items() if k not in _INTERNAL_KEYS})
        ref = refs.get(nid)
        if ref is None:
            ref = (metas.get(nid) or {}).get("ref_doc_id")
        rec = {"node": data, "node_type": node.get("__type__") if isinstance(node, dict) else None,
               "ref_doc_id": ref if ref is not None and ref != "None" else None}
        return payload, text, rec
