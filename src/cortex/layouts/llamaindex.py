"""``llamaindex``: what ``llama_index.vector_stores.qdrant.QdrantVectorStore`` writes for a node.

``node_to_metadata_dict(node, remove_text=False)``: the node's metadata as top-level fields, then
``_node_content`` (the node's JSON, ``json.dumps(node.model_dump(mode="json"), ensure_ascii=False)``
with ``embedding`` null), ``_node_type`` (its class name), and ``document_id``, ``doc_id``,
``ref_doc_id`` (the source document's id, or ``"None"``).  ``delete(ref_doc_id=...)`` deletes by
``doc_id``; retrieval rebuilds the node from ``_node_content``.  The vector is the unnamed
dense vector (what the store creates by default and detects in an existing collection).

From a LlamaIndex persist directory the node is the one in ``docstore.json``, byte for byte.
From other sources Cortex builds the ``TextNode`` LlamaIndex would (its field order and
defaults); ``--source-opt ref_doc_key=FIELD`` names the metadata field that holds the document
id (so ``delete(ref_doc_id=...)`` works).  A user field named like one of the five keys keeps
its value in the node's metadata (what the app sees as ``node.metadata``); the top-level key
holds LlamaIndex's value, as LlamaIndex itself writes it, and the summary says so.
"""

from __future__ import annotations

import json
from typing import Any

from cortex.layouts.base import Doc, Layout

NODE_KEYS = ("_node_content", "_node_type", "document_id", "doc_id", "ref_doc_id")
_TYPES = {"1": "TextNode", "2": "ImageNode", "3": "IndexNode", "4": "Document"}


def text_node(node_id: str, text: str, metadata: dict[str, Any], ref_doc_id: str | None) -> dict[str, Any]:
    """``TextNode(id_=..., text=..., metadata=...).model_dump(mode="json")`` (llama-index-core 0.14)."""
    rel = {"1": {"node_id": ref_doc_id, "node_type": None, "metadata": {}, "hash": None,
                 "class_name": "RelatedNodeInfo"}} if ref_doc_id is not None else {}
    return {"id_": node_id, "embedding": None, "metadata": metadata, "excluded_embed_metadata_keys": [],
            "excluded_llm_metadata_keys": [], "relationships": rel, "metadata_template": "{key}: {value}",
            "metadata_separator": "\n", "text": text, "mimetype": "text/plain", "start_char_idx": None,
            "end_char_idx": None, "text_template": "{metadata_str}\n\n{content}", "class_name": "TextNode"}


def _ref_of(node: dict[str, Any]) -> str | None:
    src = (node.get("relationships") or {}).get("1")
    if isinstance(src, dict):
        return src.get("node_id")
    if isinstance(src, list) and src and isinstance(src[0], dict):
        return src[0].get("node_id")
    return None


class LlamaIndexLayout(Layout):
    name = "llamaindex"
    framework = "llama_index.vector_stores.qdrant.QdrantVectorStore"
    option_keys = ("ref_doc_key",)

    def __init__(self, options: dict[str, str] | None = None, text_field: str = "text") -> None:
        super().__init__(options, text_field)
        self.ref_doc_key = self.options.get("ref_doc_key") or None

    def prepare(self, sample: list[Doc]) -> list[str]:
        hit = sorted({k for d in sample for k in d.metadata if k in NODE_KEYS})
        if hit:
            return [f"user metadata field(s) {', '.join(hit)} are also LlamaIndex's own payload keys: the top-level "
                    "key holds LlamaIndex's value (as LlamaIndex writes it), the user's value is kept in the node "
                    "(node.metadata)"]
        return []

    def needs_point_id(self, native: dict[str, Any] | None) -> bool:
        return not isinstance((native or {}).get("node"), dict)  # a node Cortex builds is named by its point id

    def node(self, doc: Doc) -> tuple[dict[str, Any], str | None]:
        """(the node's JSON-able dict, its ref doc id)."""
        rec = doc.native or {}
        data = rec.get("node")
        if isinstance(data, dict):
            node = dict(data)
            node["embedding"] = None
            ref = rec.get("ref_doc_id") or _ref_of(node)
            return node, ref
        ref = rec.get("ref_doc_id")
        if ref is None and self.ref_doc_key and doc.metadata.get(self.ref_doc_key) is not None:
            ref = str(doc.metadata[self.ref_doc_key])
        return text_node(str(doc.point_id), doc.text if doc.text is not None else "", doc.metadata, ref), ref

    def write(self, doc: Doc) -> dict[str, Any]:
        node, ref = self.node(doc)
        rec = doc.native or {}
        node_type = node.get("class_name") or _TYPES.get(str(rec.get("node_type")), "TextNode")
        payload = dict(node.get("metadata") or doc.metadata)
        payload["_node_content"] = json.dumps(node, ensure_ascii=False)
        payload["_node_type"] = node_type
        payload["document_id"] = payload["doc_id"] = payload["ref_doc_id"] = ref if ref is not None else "None"
        for k, v in doc.extra.items():
            payload.setdefault(k, v)
        return payload

    def distance_hint(self, distance: str) -> str | None:
        return "QdrantVectorStore(client=client, collection_name=...) as it is: it searches with the collection's " \
               "own distance"

    def owns(self, payload: dict[str, Any]) -> bool:
        return isinstance(payload.get("_node_content"), str) and "_node_type" in payload

    def read(self, payload: dict[str, Any]) -> tuple[str | None, dict[str, Any], dict[str, Any], dict | None]:
        node = json.loads(payload["_node_content"])
        meta = dict(node.get("metadata") or {})
        ref = payload.get("ref_doc_id")
        extra = {k: v for k, v in payload.items() if k not in meta and k not in NODE_KEYS}
        return node.get("text"), meta, extra, {"node": node, "node_type": None,
                                                "ref_doc_id": ref if ref not in (None, "None") else None}
