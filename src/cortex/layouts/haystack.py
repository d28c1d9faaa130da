"""``haystack``: what qdrant-haystack's ``QdrantDocumentStore.write_documents`` writes.

``convert_haystack_documents_to_qdrant_points``: the payload is ``Document.to_dict(flatten=False)``
without the embedding, ``{id, content, blob, meta, score, sparse_embedding}``, and the point id
is ``uuid5(3896d314-..., document id)`` (so ``delete_documents`` and overwrites find it).  The
Haystack document id is the source id as a string; the vector is the unnamed dense vector.
"""

from __future__ import annotations

import uuid
from typing import Any

from cortex.layouts.base import Doc, Layout

UUID_NAMESPACE = uuid.UUID("3896d314-1e95-4a3a-b45a-945f9f0b541d")  # qdrant-haystack's converters.py
_FIELDS = ("id", "content", "blob", "meta", "score", "sparse_embedding")
_SIMILARITY = {"euclid": "l2", "dot": "dot_product"}


def convert_id(doc_id: str) -> str:
    """qdrant-haystack's ``convert_id``: the point id of a Haystack document id."""
    return str(uuid.uuid5(UUID_NAMESPACE, doc_id))


class HaystackLayout(Layout):
    name = "haystack"
    framework = "haystack_integrations.document_stores.qdrant.QdrantDocumentStore"

    def write(self, doc: Doc) -> dict[str, Any]:
        payload = {"id": self.doc_id(doc.id, doc.native), "content": doc.text, "blob": None, "meta": doc.metadata,
                   "score": None, "sparse_embedding": None}
        for k, v in doc.extra.items():
            payload.setdefault(k, v)  # Haystack reads other top-level fields into meta
        return payload

    @staticmethod
    def doc_id(source_id: Any, native: dict[str, Any] | None = None) -> str:
        if native and native.get("haystack_id") is not None:
            return str(native["haystack_id"])
        return str(source_id)

    def point_id(self, source_id: Any, payload: dict[str, Any] | None = None) -> Any:
        if payload is not None and self.owns(payload):
            return convert_id(str(payload["id"]))
        return convert_id(str(source_id))

    def needs_point_id(self, native: dict[str, Any] | None) -> bool:
        return True

    def owns(self, payload: dict[str, Any]) -> bool:
        return "id" in payload and "meta" in payload and "content" in payload

    def read(self, payload: dict[str, Any]) -> tuple[str | None, dict[str, Any], dict[str, Any], dict | None]:
        extra = {k: v for k, v in payload.items() if k not in _FIELDS}
        return payload.get("content"), dict(payload.get("meta") or {}), extra, {"haystack_id": payload["id"]}

    def field_path(self, key: str) -> str:
        return f"meta.{key}"

    def distance_hint(self, distance: str) -> str | None:
        s = _SIMILARITY.get(distance)
        return f'QdrantDocumentStore(..., similarity="{s}")' if s else None
