"""Payload layouts: write what LangChain's, LlamaIndex's or Haystack's Qdrant integration writes.

``--layout flat|langchain|llamaindex|haystack`` (``SourceOptions.layout``; default: the
source's own framework layout for LangChain and LlamaIndex sources, ``flat`` otherwise).
One module per layout; :func:`apply_layout` wraps a source so every command sees the layout's
payloads (:mod:`cortex.layouts.source`).
"""

from __future__ import annotations

import importlib

from cortex.errors import SourceError
from cortex.layouts.base import Layout
from cortex.sources.base import Source

_REGISTRY: dict[str, str] = {
    "flat": "cortex.layouts.flat:FlatLayout",
    "langchain": "cortex.layouts.langchain:LangChainLayout",
    "llamaindex": "cortex.layouts.llamaindex:LlamaIndexLayout",
    "haystack": "cortex.layouts.haystack:HaystackLayout",
}
LAYOUTS = tuple(_REGISTRY)


def check_layout(name: str) -> str:
    n = name.strip().lower()
    if n not in _REGISTRY:
        raise SourceError(f"unknown --layout '{name}'; choose one of: {', '.join(LAYOUTS)}")
    return n


def make_layout(name: str, options: dict[str, str] | None = None, text_field: str = "text") -> Layout:
    """The layout ``name`` with its ``--source-opt`` settings; ``text_field``: the flat layout's text field."""
    module, _, cls = _REGISTRY[check_layout(name)].partition(":")
    return getattr(importlib.import_module(module), cls)(options, text_field)


def apply_layout(source: Source) -> Source:
    """``source`` wrapped so its batches carry payloads in ``source.options.layout`` (or its default)."""
    from cortex.layouts.source import LayoutSource

    requested = source.options.layout
    return LayoutSource(source, check_layout(requested) if requested else None, make_layout)
