"""``flat``: the source's fields as top-level payload fields (Cortex's default for non-framework sources).

The text a source keeps apart (Chroma documents, LangChain ``page_content``, LlamaIndex node
text) goes in the source's usual field (``document``, ``page_content``, ``text``); LlamaIndex's
source document id in ``ref_doc_id``.  When a user field already has that name, the text goes
in a free name (``_document`` ...), chosen once from the first rows and reported; a later row
that collides with the chosen name is rejected with the fix, never overwritten.
"""

from __future__ import annotations

from typing import Any

from cortex.layouts.base import Collision, Doc, Layout, free_name

REF_DOC_FIELD = "ref_doc_id"


class FlatLayout(Layout):
    name = "flat"
    framework = "Cortex (flat payload)"
    option_keys = ("text_key",)

    def __init__(self, options: dict[str, str] | None = None, text_field: str = "text") -> None:
        super().__init__(options, text_field)
        self.text_key = self.opt("text_key", text_field)
        self.ref_key = REF_DOC_FIELD

    def prepare(self, sample: list[Doc]) -> list[str]:
        notes = []
        if any(d.text is not None for d in sample):
            taken = {k for d in sample for k in (*d.metadata, *d.extra)}
            chosen = self.text_key if "text_key" in self.options else free_name(self.text_key, taken)
            if chosen != self.text_key:
                notes.append(f"a user field is named '{self.text_key}': the document text goes in payload field "
                             f"'{chosen}' instead (set the name with --source-opt text_key=NAME)")
                self.text_key = chosen
        if any((d.native or {}).get("ref_doc_id") is not None for d in sample):
            taken = {k for d in sample for k in (*d.metadata, *d.extra)} | {self.text_key}
            chosen = free_name(REF_DOC_FIELD, taken)
            if chosen != REF_DOC_FIELD:
                notes.append(f"a user field is named '{REF_DOC_FIELD}': the LlamaIndex source document id goes in "
                             f"payload field '{chosen}' instead")
                self.ref_key = chosen
        return notes

    def write(self, doc: Doc) -> dict[str, Any]:
        payload = {**doc.metadata, **doc.extra}
        for key, value in ((self.text_key, doc.text), (self.ref_key, (doc.native or {}).get("ref_doc_id"))):
            if value is None:
                continue
            if key in payload:
                raise Collision(f"user field '{key}' has the name Cortex gives the "
                                f"{'text' if key == self.text_key else 'source document id'}; pass "
                                "--source-opt text_key=NAME with a name no record uses")
            payload[key] = value
        return payload
