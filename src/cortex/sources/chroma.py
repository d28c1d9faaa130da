"""A persistent Chroma directory (``chroma.sqlite3`` plus per-segment folders).

Opening a database written by an older chromadb with a newer one migrates it in place,
so the reader never opens the user's directory: it copies it to a temporary directory,
opens the copy (telemetry off) and deletes the copy in :meth:`close`.

One Chroma collection migrates into one Qdrant collection: ``options.collection`` picks
it, or the directory must hold exactly one.  Chroma's string ids are the source ids;
metadata becomes the payload and the document text is the row's text (``Batch.texts``),
which the flat layout puts in the payload field ``document``.  Rows are paged with
``get(limit, offset)`` at most 10,000 per call (larger gets fail with "too many SQL variables" on some versions).
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from cortex.errors import SourceError
from cortex.sources.base import Batch, Source, SourceInfo, check_exists, plain, require

SQLITE_NAME = "chroma.sqlite3"
SQLITE_MAGIC = b"SQLite format 3\x00"
COLLECTION_FLAG = "--source-collection"  # the CLI flag that sets SourceOptions.collection
MAX_GET = 10_000  # rows per get(); bigger calls hit SQLite's variable limit
DOCUMENT_FIELD = "document"
_SPACES = {"l2": "euclid", "ip": "dot", "cosine": "cosine"}


class ChromaSource(Source):
    kind = "chroma"
    extra = "chroma"
    description = "a persistent Chroma directory (chroma.sqlite3), read from a temporary copy"

    def __init__(self, path: str, options: Any = None) -> None:
        super().__init__(path, options)
        self._tmp: str | None = None
        self._client: Any = None
        self._collection: Any = None

    @classmethod
    def detect(cls, path: str) -> bool:
        p = Path(path)
        if p.is_file():
            return p.name == SQLITE_NAME
        return (p / SQLITE_NAME).is_file()

    # -- opening ---------------------------------------------------------------------

    def _root(self) -> Path:
        p = check_exists(self.path)
        if p.is_file() and p.name == SQLITE_NAME:
            p = p.parent
        db = p / SQLITE_NAME
        if not db.is_file():
            raise SourceError(f"{self.path}: no {SQLITE_NAME} here; pass the directory given to "
                              "chromadb.PersistentClient(path=...)")
        with open(db, "rb") as fh:
            if fh.read(16) != SQLITE_MAGIC:
                raise SourceError(f"{db}: not a SQLite database (corrupt or truncated?); "
                                  "restore the Chroma directory from a backup")
        return p

    def _open(self) -> Any:
        """The chosen collection, opened from a temporary copy of the directory."""
        if self._collection is not None:
            return self._collection
        root = self._root()
        chromadb = require("chromadb", self.extra, "Chroma")
        from chromadb.config import Settings

        self._tmp = tempfile.mkdtemp(prefix="cortex-chroma-")
        # removed by close(), or when this object is collected / the interpreter exits
        self._cleanup = weakref.finalize(self, shutil.rmtree, self._tmp, True)
        copy = Path(self._tmp) / "chroma"
        try:
            shutil.copytree(root, copy)
            self._client = chromadb.PersistentClient(
                path=str(copy), settings=Settings(anonymized_telemetry=False, allow_reset=False))
            names = sorted(c if isinstance(c, str) else c.name for c in self._client.list_collections())
        except SourceError:
            raise
        except Exception as e:  # chromadb raises many kinds; all mean "cannot read this database"
            self.close()
            raise SourceError(f"{self.path}: chromadb {chromadb.__version__} cannot open this directory "
                              f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                              "is it a Chroma persist directory, and intact?") from e
        want = self.options.collection
        if not names:
            self.close()
            raise SourceError(f"{self.path}: the Chroma database holds no collection; nothing to migrate")
        if want is None:
            if len(names) > 1:
                self.close()
                raise SourceError(f"{self.path}: the Chroma database holds {len(names)} collections "
                                  f"({', '.join(names)}); migrate one at a time with {COLLECTION_FLAG} NAME")
            want = names[0]
        elif want not in names:
            self.close()
            raise SourceError(f"{self.path}: no Chroma collection '{want}'; it holds: {', '.join(names)}")
        try:
            self._collection = self._client.get_collection(want)
        except Exception as e:
            self.close()
            raise SourceError(f"{self.path}: cannot open Chroma collection '{want}' ({e})") from e
        return self._collection

    # -- contract --------------------------------------------------------------------

    def _space(self, col: Any) -> str | None:
        """Chroma's distance name: legacy ``hnsw:space`` metadata, else the configuration."""
        meta = col.metadata or {}
        space = meta.get("hnsw:space")
        if space is None:
            conf = getattr(col, "configuration_json", None) or getattr(col, "configuration", None) or {}
            for key in ("hnsw", "spann", "hnsw_configuration"):  # 1.x; 0.6 used hnsw_configuration
                sub = conf.get(key) if isinstance(conf, dict) else None
                if isinstance(sub, dict) and sub.get("space"):
                    space = sub["space"]
                    break
        return space

    def info(self) -> SourceInfo:
        col = self._open()
        count = col.count() if not self._where_kw() else len(col.get(include=[], **self._where_kw())["ids"])
        if count == 0:
            raise SourceError(f"{self.path}: Chroma collection '{col.name}' is empty; nothing to migrate")
        first = col.get(limit=1, include=["embeddings"])
        emb = first.get("embeddings")
        if emb is None or len(emb) == 0:
            raise SourceError(f"{self.path}: Chroma collection '{col.name}' stores no embeddings")
        dim = int(np.asarray(emb[0]).shape[-1])
        space = self._space(col)
        warnings = [f"read from a temporary copy of {self.path} ({self._tmp}): opening a Chroma directory "
                    "with another chromadb version can rewrite it, so the original is never opened"]
        if space is None:
            space = "l2"
            warnings.append(f"collection '{col.name}' records no distance; using Chroma's default l2 (euclid)")
        if space not in _SPACES:
            raise SourceError(f"{self.path}: Chroma collection '{col.name}' uses unknown distance '{space}'; "
                              "pass --distance cosine|dot|euclid")
        if space == "l2":
            warnings.append("Chroma's l2 is the squared euclidean distance; Qdrant's euclid is its square root "
                            "(same ranking)")
        return SourceInfo(kind=self.kind, name=f"{self.path}#{col.name}", dim=dim, distance=_SPACES[space],
                          count=count, warnings=warnings,
                          details={"collection": col.name, "chroma_space": space, "text_field": DOCUMENT_FIELD})

    def batches(self, batch_size: int, resume: Any = None) -> Iterator[Batch]:
        col = self._open()
        offset = 0
        if resume:
            if resume.get("collection") != col.name:
                raise SourceError(f"{self.path}: the checkpoint is for Chroma collection "
                                  f"'{resume.get('collection')}', not '{col.name}'")
            offset = int(resume["offset"])
        page = max(1, min(batch_size, MAX_GET))
        while True:
            res = col.get(limit=page, offset=offset, include=["embeddings", "metadatas", "documents"],
                          **self._where_kw())
            ids = list(res["ids"])
            if not ids:
                return
            vecs = np.asarray(res["embeddings"], dtype=np.float32)
            metas = res.get("metadatas") or [None] * len(ids)
            docs = res.get("documents") or [None] * len(ids)
            payloads = [{str(k): plain(v) for k, v in m.items()} if m else {} for m in metas]
            offset += len(ids)
            yield Batch(ids=ids, vectors=vecs, payloads=payloads, texts=list(docs),
                        locations=[f"{col.name}:{i}" for i in ids],
                        cursor={"collection": col.name, "offset": offset})
            if len(ids) < page:
                return

    def push_down_where(self, expr: Any) -> bool:
        """--where as Chroma's own ``where`` (equality, IN, number ranges, AND/OR); in both get() and query()."""
        self._where = chroma_where(expr)
        return self._where is not None

    def _where_kw(self) -> dict[str, Any]:
        w = getattr(self, "_where", None)
        return {"where": w} if w is not None else {}

    def search(self, queries: np.ndarray, k: int) -> tuple[list[list[Any]], np.ndarray]:
        """Chroma's HNSW query; scores follow Qdrant's convention for the mapped distance.

        cosine -> cosine similarity (1 - d), ip -> dot product (1 - d), l2 -> euclidean
        distance (sqrt of Chroma's squared distance; smaller is closer).
        """
        col = self._open()
        space = self._space(col) or "l2"
        q = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        res = col.query(query_embeddings=q, n_results=k, include=["distances"], **self._where_kw())
        scores = np.full((len(q), k), np.nan, dtype=np.float64)
        ids: list[list[Any]] = []
        for i, (row_ids, row_d) in enumerate(zip(res["ids"], res["distances"], strict=True)):
            d = np.asarray(row_d, dtype=np.float64)
            s = np.sqrt(np.maximum(d, 0.0)) if space == "l2" else 1.0 - d
            scores[i, : len(s)] = s
            ids.append(list(row_ids))
        return ids, scores

    def close(self) -> None:
        client, self._client, self._collection = self._client, None, None
        if client is not None:
            try:
                if hasattr(client, "close"):
                    client.close()
                else:  # chromadb < 1.x: stop the shared system and drop it from the cache
                    from chromadb.api.shared_system_client import SharedSystemClient

                    system = SharedSystemClient._identifier_to_system.pop(client._identifier, None)
                    if system is not None:
                        system.stop()
            except Exception:  # noqa: S110 - best effort: the copy is removed below anyway
                pass
        if self._tmp is not None:
            self._cleanup()  # rmtree, once
            self._tmp = None


def chroma_where(expr: Any) -> dict[str, Any] | None:
    """A Chroma ``where`` dict with the meaning of ``expr``, or None (NOT, !=, NOT IN and time ranges are left
    to the streaming filter: Chroma's treatment of a missing field differs there)."""
    from cortex import where as w

    if isinstance(expr, w.Cmp):
        if expr.op == "=":
            return {expr.field: {"$eq": expr.value}}
        if expr.op in w.RANGE_OPS and not isinstance(expr.value, str):
            op = {"<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte"}[expr.op]
            return {expr.field: {op: expr.value}}
        return None
    if isinstance(expr, w.In) and not expr.negated:
        return {expr.field: {"$in": list(expr.values)}}
    if isinstance(expr, w.And | w.Or):
        parts = [chroma_where(i) for i in expr.items]
        if any(p is None for p in parts):
            return None
        return {"$and" if isinstance(expr, w.And) else "$or": parts}
    return None
