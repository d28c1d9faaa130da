"""Option groups shared by commands, declared once: ``@source_flags`` and ``@target_flags``.

Each decorator appends its options to the command's signature (typer reads it) and hands
the command one value instead: ``source_type`` + ``source_opts`` (a SourceOptions), or
``target_kw`` (keyword arguments for ``cortex.api``).  A command that declares one of the
options itself (``migrate`` has its own ``--distance``) keeps it, and the value is shared.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any

import typer

from cortex.errors import CortexError
from cortex.sources import SourceOptions


def _opt(flag: str, help: str, panel: str, **kw: Any) -> Any:
    return typer.Option(flag, help=help, rich_help_panel=panel, **kw)


_S = "Source"
SOURCE_FLAGS: list[tuple[str, Any, Any]] = [
    ("source_type", Annotated[str | None, _opt("--source-type", "Source kind (default: detected).", _S)], None),
    ("ids", Annotated[str | None, _opt("--ids", "npy matrix: ids file (.npy or .txt).", _S)], None),
    ("payloads", Annotated[str | None, _opt("--payloads", "npy matrix: payloads JSONL, a line per row.", _S)], None),
    ("metadata", Annotated[str | None, _opt("--metadata", "FAISS: metadata JSON keyed by id.", _S)], None),
    ("dimensions", Annotated[int | None, _opt("--dimensions", "Annoy: vector dimension (not in the file).", _S)],
     None),
    ("distance", Annotated[str | None, _opt("--distance", "Source distance where the store does not record it "
                                            "(hnswlib, Annoy): cosine|dot|euclid|manhattan or angular, l2, ip.",
                                            _S)], None),
    ("source_collection", Annotated[str | None, _opt(
        "--source-collection", "Chroma/Milvus/Qdrant source collection; LlamaIndex vector-store namespace; "
        "LangChain index name (default 'index').", _S)], None),
    ("table", Annotated[str | None, _opt("--table", "pgvector/LanceDB table.", _S)], None),
    ("query", Annotated[str | None, _opt("--query", "pgvector: a SELECT to read instead of a table.", _S)], None),
    ("vector_column", Annotated[str | None, _opt("--vector-column", "Vector column (Parquet, pgvector, Qdrant "
                                                 "named vector, ...).", _S)], None),
    ("id_column", Annotated[str | None, _opt("--id-column", "Id column (Parquet, pgvector, ...).", _S)], None),
    ("trust_pickle", Annotated[bool, _opt("--trust-pickle", "LangChain FAISS: allow loading index.pkl (unpickling "
                                          "runs code: only for folders you trust).", _S)], False),
    ("source_api_key", Annotated[str | None, _opt("--source-api-key", "API key of a Qdrant server source.", _S,
                                                  envvar="CORTEX_SOURCE_API_KEY")], None),
    ("source_opt", Annotated[list[str] | None, _opt("--source-opt", "Extra source option KEY=VALUE (repeatable); "
                                                    "layout keys: content_key, metadata_key (langchain), "
                                                    "ref_doc_key (llamaindex), text_key (flat), metadata_column.",
                                                    _S)], None),
    ("layout", Annotated[str | None, _opt("--layout", "Payload layout the app reads: flat|langchain|llamaindex|"
                                          "haystack (default: the source's own framework for LangChain and "
                                          "LlamaIndex sources, else flat).", _S)], None),
    ("text_column", Annotated[str | None, _opt("--text-column", "Payload field holding the document text "
                                               "(pgvector, Parquet, LanceDB, JSONL ...), for --layout.", _S)], None),
    ("where", Annotated[str | None, _opt(
        "--where", "Only the records whose payload matches, e.g. \"workspace_id = 'ws-1' AND created_at >= "
        "'2026-01-01'\" (=, !=, IN, <, <=, >, >= on numbers and ISO timestamps, AND/OR/NOT, parentheses); "
        "pushed down to the store where it can filter. A subset is its own resumable migration.", _S)], None),
]

_T = "Target"
TARGET_FLAGS: list[tuple[str, Any, Any]] = [
    ("path", Annotated[str | None, _opt("--path", "Embedded Qdrant storage directory (default ./qdrant_storage).",
                                        _T, envvar="QDRANT_PATH")], None),
    ("url", Annotated[str | None, _opt("--url", "Qdrant server URL, e.g. http://localhost:6333 (unset: embedded).",
                                       _T, envvar="QDRANT_URL")], None),
    ("api_key", Annotated[str | None, _opt("--api-key", "Qdrant API key.", _T, envvar="QDRANT_API_KEY")], None),
    ("prefer_grpc", Annotated[bool, _opt("--prefer-grpc/--no-prefer-grpc", "Use gRPC for the server.", _T)], True),
    ("grpc_port", Annotated[int, _opt("--grpc-port", "Server gRPC port.", _T, envvar="QDRANT_GRPC_PORT")], 6334),
]


def source_options(ids: str | None = None, payloads: str | None = None, metadata: str | None = None,
                   dimensions: int | None = None, distance: str | None = None, source_collection: str | None = None,
                   table: str | None = None, query: str | None = None, vector_column: str | None = None,
                   id_column: str | None = None, trust_pickle: bool = False, source_opt: list[str] | None = None,
                   source_api_key: str | None = None, where: str | None = None, layout: str | None = None,
                   text_column: str | None = None) -> SourceOptions:
    """The flags of the Source panel as a :class:`SourceOptions`."""
    extra = {}
    for kv in source_opt or []:
        if "=" not in kv:
            raise CortexError(f"--source-opt {kv!r}: expected KEY=VALUE")
        k, v = kv.split("=", 1)
        extra[k.strip()] = v
    return SourceOptions(ids=ids, payloads=payloads, metadata=metadata, dimensions=dimensions, distance=distance,
                         collection=source_collection, table=table, query=query, vector_column=vector_column,
                         id_column=id_column, trust_pickle=trust_pickle, extra=extra, api_key=source_api_key,
                         where=where, layout=layout, text_column=text_column)


Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def _with_flags(flags: list[tuple[str, Any, Any]], give: str,
                build: Callable[[dict[str, Any]], dict[str, Any]]) -> Decorator:
    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(fn, eval_str=True)
        given = give.split(",")
        own = set(sig.parameters) - set(given)
        params = [p for n, p in sig.parameters.items() if n not in given]
        params += [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=a)
                   for n, a, d in flags if n not in own]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {n: (kwargs[n] if n in own else kwargs.pop(n, d)) for n, _a, d in flags}
            kwargs.update(build(values))
            return fn(*args, **kwargs)

        wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        return wrapper

    return decorate


def _source(values: dict[str, Any]) -> dict[str, Any]:
    st = values.pop("source_type")
    return {"source_type": st, "source_opts": source_options(**values)}


#: Adds the Source panel; the command receives ``source_type`` and ``source_opts``.
source_flags = _with_flags(SOURCE_FLAGS, "source_type,source_opts", _source)
#: Adds the Target panel; the command receives ``target_kw`` for ``cortex.api`` calls.
target_flags = _with_flags(TARGET_FLAGS, "target_kw", lambda v: {"target_kw": v})
