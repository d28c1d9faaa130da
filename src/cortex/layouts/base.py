"""The layout contract: how one document (id, text, metadata) becomes a Qdrant payload, and back.

A layout writes exactly what a framework's own Qdrant integration writes when it adds a
document itself, so the application opens the migrated collection unchanged.  Layouts see
documents as :class:`Doc` rows, built from a source batch by :class:`cortex.layouts.source.LayoutSource`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from cortex.errors import SourceError


@dataclass
class Doc:
    """One document as a layout sees it."""

    id: Any  # the source id
    point_id: Any  # the Qdrant point id it gets (None unless the layout needs it: Layout.needs_point_id)
    text: str | None
    metadata: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)  # other source fields, kept beside the layout's own
    native: dict[str, Any] | None = None  # the framework's own record of the row (LlamaIndex node)


class Collision(Exception):
    """A row whose user field has the name of a field the layout writes; the message says the fix."""


class Layout(ABC):
    """One payload layout; ``options`` are the ``--source-opt KEY=VALUE`` pairs."""

    name: ClassVar[str]
    framework: ClassVar[str] = ""  # how the app opens it, for messages
    #: the ``--source-opt`` keys this layout reads
    option_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(self, options: dict[str, str] | None = None, text_field: str = "text") -> None:
        self.options = dict(options or {})
        self.text_field = text_field  # the flat layout's name for the text (the source's convention)

    def opt(self, key: str, default: str) -> str:
        v = self.options.get(key)
        if v is not None and not v.strip():
            raise SourceError(f"--source-opt {key}= needs a value (a payload field name)")
        return v.strip() if v else default

    def prepare(self, sample: list[Doc]) -> list[str]:
        """Look at the first documents before writing (choose free field names); returns notes for the summary."""
        return []

    @abstractmethod
    def write(self, doc: Doc) -> dict[str, Any]:
        """The payload of ``doc``; raises :class:`Collision` when a user field would be overwritten."""

    def owns(self, payload: dict[str, Any]) -> bool:
        """True when ``payload`` is already in this layout (re-migrating an app-ready collection)."""
        return False

    def read(self, payload: dict[str, Any]) -> tuple[str | None, dict[str, Any], dict[str, Any], dict | None]:
        """The inverse of :meth:`write`: (text, metadata, extra fields, native record) of a payload it owns."""
        return None, dict(payload), {}, None

    def point_id(self, source_id: Any, payload: dict[str, Any] | None = None) -> Any:
        """The point id the framework gives this document (default: Cortex's own mapping, done later)."""
        return source_id

    def needs_point_id(self, native: dict[str, Any] | None) -> bool:
        """Whether :meth:`write` reads ``Doc.point_id`` for a row with this native record (it costs a uuid5)."""
        return False

    def field_path(self, key: str) -> str:
        """Where a user metadata field lands in the payload (for filters): ``metadata.lang`` ..."""
        return key

    def distance_hint(self, distance: str) -> str | None:
        """What the app must pass to open a collection of this (non-cosine) distance, or None."""
        return None

    def describe(self) -> dict[str, Any]:
        """Name and settings, for the fingerprint and the summary."""
        return {"layout": self.name, **{k: self.options[k] for k in self.option_keys if k in self.options}}


def free_name(base: str, taken: set[str]) -> str:
    """``base`` when no user field has that name, else ``_base``, ``_base_2`` ...: a name no sampled row uses."""
    if base not in taken:
        return base
    name, n = f"_{base}", 2
    while name in taken:
        name, n = f"_{base}_{n}", n + 1
    return name
