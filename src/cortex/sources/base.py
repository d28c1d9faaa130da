"""The contract every source reader implements: columnar batches out, nothing else.

A source module (one per kind, e.g. ``sources/faiss.py``) defines one subclass of
:class:`Source`.  Heavy optional libraries are imported inside its methods, never at
module level, so ``cortex`` starts fast and a missing extra fails with a clear message
(:func:`require`).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from cortex.errors import MissingExtraError, SourceError

DISTANCES = ("cosine", "dot", "euclid", "manhattan")
PAYLOAD_INDEX_KINDS = ("keyword", "integer", "float", "bool", "datetime", "text", "uuid", "geo")

_ALIASES = {
    "cosine": "cosine", "cos": "cosine", "angular": "cosine",
    "dot": "dot", "ip": "dot", "inner_product": "dot", "innerproduct": "dot", "dotproduct": "dot",
    "euclid": "euclid", "euclidean": "euclid", "l2": "euclid", "l2sq": "euclid",
    "manhattan": "manhattan", "l1": "manhattan", "taxicab": "manhattan", "hamming": "manhattan",
}


def parse_distance(value: str, where: str = "") -> str:
    """A Cortex distance from Cortex or store names (angular -> cosine, l2 -> euclid, ip -> dot ...)."""
    d = _ALIASES.get(str(value).strip().lower().replace("-", "_"))
    if d is None:
        prefix = f"{where}: " if where else ""
        raise SourceError(f"{prefix}unknown distance '{value}'; choose one of: {', '.join(DISTANCES)} "
                          "(or angular, euclidean, l2, ip)")
    return d


@dataclass
class Rejected:
    """One source record that could not be migrated (goes to the dead-letter file)."""

    location: str  # where it was, e.g. "export.jsonl:17" or "vectors/a.npy"
    reason: str  # why, with the fix where there is one
    id: Any = None  # the source id, when it could be read
    raw: Any = None  # the original record (JSON-able) when available


@dataclass
class Batch:
    """A columnar slice of a source.

    ``ids[i]``, ``vectors[i]`` and ``payloads[i]`` describe one point.  ``vectors`` is a
    2-D array (float32 preferred; the pipeline casts and validates); it becomes Qdrant's
    default (unnamed, ``""``) vector.  ``rejected`` holds records of this slice that the
    reader could not parse at all; they count as read.  ``cursor`` is an opaque, JSON-able
    position *after* this batch: passing it back as ``Source.batches(resume=cursor)``
    continues right after it.

    Extra vectors of each point (both optional, ``None`` when the source has none):

    * ``sparse``: name -> one entry per row: ``(indices, values)`` (two equal-length
      sequences; indices unsigned ints < 2**32, unique, in any order; values finite), or
      ``None`` when that row has no such vector (NULL column, absent field).  ``([], [])``
      is an empty sparse vector (stored, matches nothing).  Rows that break these rules
      go to the dead letter.
    * ``named``: name -> ``(n, dim_name)`` float32 array of extra dense vectors.  A row
      that is entirely NaN means the point has no such vector; a row with some non-finite
      values is rejected.

    Every name must be declared in ``SourceInfo.details`` (``sparse_vectors`` /
    ``named_vectors``), which the target collection is created from.

    Document text and framework records (both optional), kept apart from ``payloads`` so a
    payload layout (:mod:`cortex.layouts`) places them without overwriting a user field:

    * ``texts``: the text of each row (LangChain ``page_content``, a LlamaIndex node's text,
      a Chroma document), or None.
    * ``native``: the row as its framework keeps it, or None (LlamaIndex: ``{"node": the
      docstore.json node data, "ref_doc_id": ...}``).
    """

    ids: list[Any]
    vectors: np.ndarray
    payloads: list[dict[str, Any]] | None = None
    rejected: list[Rejected] = field(default_factory=list)
    locations: list[str] | None = None  # per-row record location, for error messages
    cursor: Any = None
    sparse: dict[str, list[tuple[list[int], list[float]] | None]] | None = None  # name -> per-row (idx, val)
    named: dict[str, np.ndarray] | None = None  # name -> (n, dim_name) float32; an all-NaN row: no vector
    skipped: int = 0  # records of this slice read but left out by --where (not pushed down to the store)
    texts: list[str | None] | None = None  # the row's document text, kept out of the payload
    native: list[dict[str, Any] | None] | None = None  # the row as its framework keeps it

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def read(self) -> int:
        return len(self.ids) + len(self.rejected) + self.skipped

    def location(self, i: int) -> str:
        if self.locations is not None:
            return self.locations[i]
        from cortex.ids import plain_id

        return f"record id={plain_id(self.ids[i])!r}"


@dataclass
class SourceInfo:
    """What a source knows about itself before reading.

    ``details`` is free-form per source; these keys have a fixed meaning (the pipeline
    creates the target collection from them, and every name a batch uses must be here):

    * ``"sparse_vectors"``: ``{name: {"modifier": "idf" | None}}``, the sparse vectors
      of ``Batch.sparse`` (``idf``: Qdrant applies inverse document frequency, as BM25 needs).
    * ``"named_vectors"``: ``{name: {"size": int, "distance": one of DISTANCES}}``, the
      extra dense vectors of ``Batch.named`` (never ``""``: that is the main vector).
    * ``"payload_indexes"``: ``{field: "keyword" | "integer" | "float" | "bool" |
      "datetime" | "text" | "uuid" | "geo"}``, created on the target after the load.
    * ``"layout"``: the payload layout of the source's own framework (``langchain``,
      ``llamaindex``), the default of ``--layout``; ``"text_field"``: the payload field the
      flat layout gives ``Batch.texts``; ``"text_column"`` / ``"metadata_column"``: payload
      fields that hold the text / a metadata object (LangChain's PGVector table).
    """

    kind: str
    name: str
    dim: int | None = None
    distance: str | None = None  # one of DISTANCES, or None when the source does not store it
    count: int | None = None  # records, when known cheaply
    warnings: list[str] = field(default_factory=list)
    lossy: bool = False  # vectors are approximations of the originals (PQ, SQ, f16, i8 ...)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class SourceOptions:
    """Options any source may read; each source uses the ones that apply to it."""

    ids: str | None = None  # npy matrix: ids file (.npy or .txt)
    payloads: str | None = None  # npy matrix: payloads JSONL, one object per row
    metadata: str | None = None  # FAISS: metadata JSON keyed by id
    dimensions: int | None = None  # Annoy (not stored in file); checks elsewhere
    distance: str | None = None  # hnswlib / Annoy (not stored); overrides a source's own
    collection: str | None = None  # Chroma / Milvus / Qdrant source collection
    table: str | None = None  # pgvector / LanceDB table
    query: str | None = None  # pgvector: a SELECT instead of a table
    vector_column: str | None = None
    id_column: str | None = None
    trust_pickle: bool = False  # LangChain FAISS: index.pkl is a pickle, which runs code
    api_key: str | None = None  # Qdrant server source
    where: str | None = None  # --where: payload conditions (cortex.where); a subset of the source
    layout: str | None = None  # payload layout: flat | langchain | llamaindex | haystack (cortex.layouts)
    text_column: str | None = None  # payload field holding the document text (pgvector, Parquet, LanceDB ...)
    extra: dict[str, str] = field(default_factory=dict)  # --source-opt key=value


class Source(ABC):
    """A reader of one kind of vector store."""

    kind: ClassVar[str]  # e.g. "jsonl"; what --source-type takes
    extra: ClassVar[str | None] = None  # pip extra that brings its library, e.g. "faiss"
    description: ClassVar[str] = ""

    def __init__(self, path: str, options: SourceOptions | None = None) -> None:
        self.path = path
        self.options = options or SourceOptions()

    @classmethod
    @abstractmethod
    def detect(cls, path: str) -> bool:
        """Cheaply tell whether ``path`` looks like this kind (no heavy imports)."""

    @abstractmethod
    def info(self) -> SourceInfo:
        """Dimension, distance and count where known; raise SourceError when unreadable."""

    @abstractmethod
    def batches(self, batch_size: int, resume: Any = None) -> Iterator[Batch]:
        """Yield batches of at most ``batch_size`` rows, starting after ``resume``."""

    scope = None  # the part of the source to read: one of split()'s results (set by cortex.scale.partitions)

    def split(self, n: int) -> list[Any] | None:
        """``n`` disjoint, JSON-able scopes that cover the source by its own structure (rows, files, bytes ...).

        A source that returns them reads only ``self.scope`` in :meth:`batches` when it is set. The default,
        None, means this kind does not split itself: partitions then use a hash of each point id.
        """
        return None

    def fingerprint(self) -> dict[str, Any]:
        """Identity of the source's content, to refuse resuming onto a changed source.

        By default: the path's files, the side files the options name (ids, payloads,
        metadata) and the options that select what is read (collection, table, query, columns).
        """
        o = self.options
        fp = file_fingerprint(self.path)
        for name in ("ids", "payloads", "metadata"):
            if getattr(o, name):
                fp[name] = file_fingerprint(getattr(o, name))
        for name in ("collection", "table", "query", "vector_column", "id_column"):
            if getattr(o, name):
                fp[name] = getattr(o, name)
        if o.where:
            from cortex.where import parse, to_text

            fp["where"] = to_text(parse(o.where))  # canonical: spacing and keyword case do not matter
        return fp

    def push_down_where(self, expr: Any) -> bool:
        """Filter by ``expr`` (a :mod:`cortex.where` AST) in the store itself; True when this source will.

        Called once, before reading, when ``--where`` is given.  A source that returns True
        yields only matching records from ``batches`` (records it drops before reading them are
        not counted; records it reads and drops count in ``Batch.skipped``), and ``info().count``
        counts what it reads.  When it returns False (the default), :func:`cortex.sources.open_source`
        wraps it so :func:`cortex.where.matches` filters each batch while streaming.
        """
        return False

    def search(self, queries: np.ndarray, k: int) -> tuple[list[list[Any]], np.ndarray]:
        """The old system's own search: per query, the top-k source ids and scores.

        Sources without a native search raise NotImplementedError; callers then fall
        back to exact numpy search over the source vectors.
        """
        raise NotImplementedError

    def exhaustive_search(self) -> bool:
        """True when :meth:`search` is exact: brute force over exactly the vectors :meth:`batches` yields (all
        valid, ids unique), ranked by ``info().distance``. ``compare`` then takes its results as the ground truth
        and reads no vector beyond its queries (:meth:`sample_vectors`)."""
        return False

    def sample_vectors(self, n: int, seed: int) -> np.ndarray | None:
        """``n`` distinct stored vectors chosen uniformly at random by random access (float32, n x dim), or None
        when the source can only stream them."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release files, connections or temporary copies."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def row_norms(vectors: np.ndarray) -> np.ndarray:
    """Each row's L2 norm, in float64: a float32 vector of huge but finite values (3e20) keeps its real norm where
    float32 would overflow to inf (with numpy's RuntimeWarning); a non-finite row's norm is inf or NaN."""
    v = np.asarray(vectors, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        return np.sqrt(np.einsum("ij,ij->i", v, v))


def plain(value: Any) -> Any:
    """A JSON-able copy of a metadata value (numpy scalars, dates, bytes, nested lists)."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return str(value)


def redact_url(url: str) -> str:
    """A source path or URL without its password (``postgresql://u:***@host/db``), for messages and state."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


def require(module: str, extra: str, kind: str) -> Any:
    """Import an optional dependency or fail with the pip command that brings it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtraError(
            f"the {kind} source needs the '{module}' package: pip install 'cortex-qdrant[{extra}]' ({e})"
        ) from e


def file_fingerprint(path: str) -> dict[str, Any]:
    """Path, size, mtime and a hash of the first/last 64 KiB of each file under ``path``."""
    p = Path(path)
    if not p.exists():
        return {"path": str(path)}
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
    h = hashlib.sha256()
    total = 0
    newest = 0.0
    for f in files:
        st = f.stat()
        total += st.st_size
        newest = max(newest, st.st_mtime)
        h.update(f"{f.relative_to(p) if p.is_dir() else f.name}:{st.st_size}".encode())
        if len(files) <= 64:  # sample contents of small trees; big trees rely on names/sizes
            with open(f, "rb") as fh:
                h.update(fh.read(65536))
                if st.st_size > 131072:
                    fh.seek(-65536, os.SEEK_END)
                    h.update(fh.read(65536))
    return {
        "path": str(p.resolve()),
        "files": len(files),
        "size": total,
        "mtime": newest,
        "sample_sha256": h.hexdigest(),
    }


def even_ranges(total: int, n: int) -> list[tuple[int, int]]:
    """``n`` contiguous half-open ranges covering ``0..total`` whose sizes differ by at most one (for ``split``)."""
    bounds = [total * k // n for k in range(n + 1)]
    return [(bounds[k], bounds[k + 1]) for k in range(n)]


def check_exists(path: str, flag: str = "--source") -> Path:
    """``path`` as a Path, or one line naming the option (``flag``) whose path is wrong."""
    p = Path(path)
    if not p.exists():
        raise SourceError(f"{path}: no such file or directory; check the {flag} path")
    return p
