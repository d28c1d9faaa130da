"""``langchain``: what ``langchain_qdrant.QdrantVectorStore`` writes: ``{page_content, metadata: {...}}``.

langchain-qdrant's ``_build_payloads`` writes ``{content_payload_key: text, metadata_payload_key:
metadata}`` (``page_content`` / ``metadata`` by default; set them with ``--source-opt
content_key=...`` / ``metadata_key=...`` as the app passes ``content_payload_key`` /
``metadata_payload_key``), with the unnamed dense vector.  User metadata lives inside
``metadata``, so it never collides with the layout's own keys; Cortex's ``source_id`` (a
remapped id) and other source columns stay at the top level, where LangChain does not look.
"""

from __future__ import annotations

from typing import Any

from cortex.layouts.base import Doc, Layout

CONTENT_KEY = "page_content"
METADATA_KEY = "metadata"
_DISTANCE = {"euclid": "EUCLID", "dot": "DOT", "manhattan": "MANHATTAN"}


class LangChainLayout(Layout):
    name = "langchain"
    framework = "langchain_qdrant.QdrantVectorStore"
    option_keys = ("content_key", "metadata_key")

    def __init__(self, options: dict[str, str] | None = None, text_field: str = "text") -> None:
        super().__init__(options, text_field)
        self.content_key = self.opt("content_key", CONTENT_KEY)
        self.metadata_key = self.opt("metadata_key", METADATA_KEY)

    def prepare(self, sample: list[Doc]) -> list[str]:
        missing = sum(1 for d in sample if d.text is None)
        if missing:
            return [f"{missing} of the first {len(sample)} records have no text: their {self.content_key} is empty "
                    "(name the payload field that holds it with --text-column NAME)"]
        return []

    def write(self, doc: Doc) -> dict[str, Any]:
        payload = {self.content_key: doc.text if doc.text is not None else "", self.metadata_key: doc.metadata}
        for k, v in doc.extra.items():
            payload.setdefault(k, v)  # a column named like the layout's keys: only when it is the same key
        return payload

    def owns(self, payload: dict[str, Any]) -> bool:
        return self.content_key in payload and isinstance(payload.get(self.metadata_key), dict | None) \
            and self.metadata_key in payload

    def read(self, payload: dict[str, Any]) -> tuple[str | None, dict[str, Any], dict[str, Any], dict | None]:
        extra = {k: v for k, v in payload.items() if k not in (self.content_key, self.metadata_key)}
        return payload.get(self.content_key), dict(payload.get(self.metadata_key) or {}), extra, None

    def field_path(self, key: str) -> str:
        return f"{self.metadata_key}.{key}"

    def distance_hint(self, distance: str) -> str | None:
        d = _DISTANCE.get(distance)
        return (f"QdrantVectorStore(client, collection_name, embedding, distance=Distance.{d}) "
                "(from qdrant_client.models import Distance)") if d else None
