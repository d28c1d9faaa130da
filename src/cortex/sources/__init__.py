"""Source registry: one module per kind, imported lazily; auto-detection from the path.

To add a kind: write ``sources/<kind>.py`` with a :class:`~cortex.sources.base.Source`
subclass named in ``_REGISTRY`` below.  Detection tries kinds in registry order, so more
specific layouts (LangChain's ``index.faiss`` + ``index.pkl``) come before generic ones.
"""

from __future__ import annotations

import importlib

from cortex.errors import SourceError
from cortex.sources.base import Batch, Rejected, Source, SourceInfo, SourceOptions

__all__ = ["Batch", "Rejected", "Source", "SourceInfo", "SourceOptions", "open_source", "source_kinds"]

# kind -> "module:Class"; order matters for detection.
_REGISTRY: dict[str, str] = {
    "qdrant": "cortex.sources.qdrant:QdrantSource",
    "pgvector": "cortex.sources.pgvector:PgvectorSource",
    "langchain": "cortex.sources.langchain:LangChainFaissSource",
    "llamaindex": "cortex.sources.llamaindex:LlamaIndexSource",
    "chroma": "cortex.sources.chroma:ChromaSource",
    "lancedb": "cortex.sources.lancedb:LanceDBSource",
    "milvus": "cortex.sources.milvus:MilvusLiteSource",
    "faiss": "cortex.sources.faiss:FaissSource",
    "hnswlib": "cortex.sources.hnswlib:HnswlibSource",
    "usearch": "cortex.sources.usearch:USearchSource",
    "annoy": "cortex.sources.annoy:AnnoySource",
    "parquet": "cortex.sources.parquet:ParquetSource",
    "jsonl": "cortex.sources.jsonl:JsonlSource",
    "npy-matrix": "cortex.sources.npy_matrix:NpyMatrixSource",
    "npy-dir": "cortex.sources.npy_dir:NpyDirSource",
}


def _load(kind: str) -> type[Source] | None:
    target = _REGISTRY[kind]
    module, _, cls = target.partition(":")
    try:
        return getattr(importlib.import_module(module), cls)
    except ModuleNotFoundError as e:
        if e.name == module:  # this kind's reader is not written (yet)
            return None
        raise


def source_kinds() -> list[str]:
    """Kinds whose reader is available in this installation."""
    return [k for k in _REGISTRY if _load(k) is not None]


def source_class(kind: str) -> type[Source]:
    if kind not in _REGISTRY or (cls := _load(kind)) is None:
        raise SourceError(f"unknown source type '{kind}'; choose one of: {', '.join(source_kinds())}")
    return cls


def detect_kind(path: str) -> str:
    from cortex.sources.base import check_exists

    if not path.startswith(("postgres://", "postgresql://", "http://", "https://", "local:")):
        check_exists(path)
    for kind in _REGISTRY:
        cls = _load(kind)
        if cls is not None and cls.detect(path):
            return kind
    raise SourceError(
        f"{path}: cannot tell what kind of vector store this is; "
        f"pass --source-type (one of: {', '.join(source_kinds())})"
    )


def open_source(path: str, kind: str | None = None, options: SourceOptions | None = None) -> Source:
    """Open ``path`` as a source of ``kind`` (auto-detected when None), in its payload layout (``options.layout``).

    With ``options.where`` the source reads only that subset: pushed down to the store when it
    can filter (``Source.push_down_where``), else filtered while streaming (``FilteredSource``).
    The layout applies last, so ``--where`` names the source's own fields.
    """
    from cortex.layouts import apply_layout

    kind = kind or detect_kind(path)
    src = source_class(kind)(path, options or SourceOptions())
    if src.options.where:
        from cortex.where import parse

        expr = parse(src.options.where)
        if expr is not None and not src.push_down_where(expr):
            from cortex.sources.filtered import FilteredSource

            src = FilteredSource(src, expr)
    return apply_layout(src)
