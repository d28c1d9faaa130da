"""LanceDB: a database directory (``*.lance`` tables) + ``--table`` (or the only table).

Rows stream through LanceDB's own scan (``tbl.search().offset(n).limit(None).to_batches(size)``),
which reads fragment by fragment in a stable order and keeps memory bounded; it measured
~50x faster than ``take_offsets`` per batch, and ``to_lance()`` would need the separate
``pylance`` package.  The table is pinned to the version seen first (``checkout``, which
writes nothing), so a resume continues on exactly the same rows: cursor = ``{"offset", "version"}``.

The vector column is the (only, or ``--vector-column``) fixed-size list of floats; the id is
``--id-column``, else ``id`` when present, else the row offset.  LanceDB stores a metric only
with a vector index: ``list_indices()`` / ``index_stats()`` tell it, else distance is None.
Nothing here writes: no optimize/compact/cleanup/create_index.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from cortex.errors import SourceError
from cortex.sources.base import Batch, Rejected, Source, SourceInfo, check_exists, even_ranges, require
from cortex.sources.parquet import (
    column_values,
    ids_from_arrow,
    json_value,
    list_to_matrix,
    pick_vector_column,
    where_filtered,
)

_METRIC = {"cosine": "cosine", "l2": "euclid", "euclidean": "euclid", "dot": "dot"}
_LANCE_METRIC = {"cosine": "cosine", "euclid": "l2", "dot": "dot"}


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _table_dirs(p: Path) -> list[str]:
    try:
        return sorted(e.name[: -len(".lance")] for e in p.iterdir() if e.is_dir() and e.name.endswith(".lance"))
    except OSError:
        return []


class LanceDBSource(Source):
    kind = "lancedb"
    extra = "lancedb"
    description = "a LanceDB directory (--table, or its only table)"

    def __init__(self, path: str, options: Any = None) -> None:
        super().__init__(path, options)
        self._tbl: Any = None
        self._meta: dict[str, Any] | None = None

    @classmethod
    def detect(cls, path: str) -> bool:
        p = Path(path)
        if not p.is_dir():
            return False
        if p.name.endswith(".lance") and (p / "_versions").is_dir():
            return True
        return any((p / f"{t}.lance" / "_versions").is_dir() for t in _table_dirs(p))

    # -- opening ------------------------------------------------------------------------------------

    def _locate(self) -> tuple[Path, str]:
        """(database dir, table name) from the path and --table."""
        p = check_exists(self.path)
        if not p.is_dir():
            raise SourceError(f"{self.path}: a LanceDB source is a directory (the database), not a file")
        if p.name.endswith(".lance") and (p / "_versions").is_dir():  # a table directory itself
            return p.parent, p.name[: -len(".lance")]
        tables = _table_dirs(p)
        want = self.options.table
        if want:
            if want not in tables:
                listing = ", ".join(tables) or "none"
                raise SourceError(f"{self.path}: no LanceDB table '{want}'; tables: {listing}")
            return p, want
        if not tables:
            raise SourceError(f"{self.path}: no LanceDB tables (no *.lance directories) here")
        if len(tables) > 1:
            raise SourceError(f"{self.path}: {len(tables)} tables ({', '.join(tables)}); choose one with --table")
        return p, tables[0]

    def _open(self, version: int | None = None) -> Any:
        lancedb = require("lancedb", "lancedb", "LanceDB")
        root, name = self._locate()
        try:
            tbl = lancedb.connect(str(root)).open_table(name)
            if version is not None and version != tbl.version:
                tbl.checkout(version)  # time travel, read-only
        except Exception as e:
            what = f" at version {version}" if version is not None else ""
            raise SourceError(f"{root}: cannot open LanceDB table '{name}'{what} ({_first_line(e)}); "
                              "is it a complete LanceDB directory?") from e
        return tbl

    def _table(self) -> Any:
        if self._tbl is None:
            self._tbl = self._open()
        return self._tbl

    def describe(self) -> dict[str, Any]:
        if self._meta is not None:
            return self._meta
        tbl = self._table()
        root, name = self._locate()
        schema = tbl.schema
        names = schema.names
        where = f"{root} table {name}"
        vcol, vcols = pick_vector_column(schema, self.options.vector_column, where)
        warnings: list[str] = []
        others = [c for c in vcols if c != vcol]
        if others:
            warnings.append(f"other vector columns are not migrated: {', '.join(others)}")
        idcol = self.options.id_column
        if idcol and idcol not in names:
            raise SourceError(f"{where}: no id column '{idcol}'; columns are: {', '.join(names)}")
        if not idcol and "id" in names:
            idcol = "id"
        if not idcol:
            warnings.append("no 'id' column: ids are row offsets (0-based, in scan order); "
                            "pass --id-column to use a column")
        vtype = schema.field(vcol).type
        import pyarrow as pa

        dim = vtype.list_size if pa.types.is_fixed_size_list(vtype) else None
        if dim is None:
            first = tbl.search().where(f"`{vcol}` IS NOT NULL").select([vcol]).limit(1).to_arrow()
            dim = len(first.column(0)[0].as_py()) if first.num_rows else None
        if self.options.dimensions and dim and self.options.dimensions != dim:
            raise SourceError(f"{where}: column '{vcol}' holds {dim}-dimensional vectors, "
                              f"not {self.options.dimensions}; fix --dimensions")
        distance, indexes = self._index_metric(tbl, vcol, warnings)
        if distance is None:
            warnings.append(f"LanceDB stores a metric only with a vector index and '{vcol}' has none; "
                            "the default is used unless you pass --distance")
        payload = [n for n in names if n not in (vcol, idcol, *others)]
        self._meta = {"where": where, "table": name, "vector_column": vcol, "id_column": idcol, "dim": dim,
                      "payload": payload, "distance": distance, "indexes": indexes, "warnings": warnings,
                      "version": tbl.version, "dtype": str(vtype.value_type)}
        return self._meta

    @staticmethod
    def _index_metric(tbl: Any, vcol: str, warnings: list[str]) -> tuple[str | None, list[dict[str, Any]]]:
        indexes = []
        try:
            configs = tbl.list_indices()
        except Exception:  # older tables / versions without index listing
            return None, []
        for ix in configs:
            if list(getattr(ix, "columns", [])) != [vcol]:
                continue
            metric = None
            details = getattr(ix, "index_details", None) or {}
            if isinstance(details, dict) and details.get("metric_type"):
                metric = str(details["metric_type"]).lower()
            if metric is None:
                try:
                    metric = str(tbl.index_stats(ix.name).distance_type).lower()
                except Exception:
                    metric = None
            indexes.append({"name": ix.name, "type": str(ix.index_type), "metric": metric})
        dists = [_METRIC.get(i["metric"] or "") for i in indexes]
        known = [d for d in dists if d]
        if len(set(known)) > 1:
            warnings.append(f"indexes on '{vcol}' use several metrics; using {known[0]}")
        return (known[0] if known else None), indexes

    def close(self) -> None:
        self._tbl = None

    # -- contract ---------------------------------------------------------------------------------------

    def info(self) -> SourceInfo:
        meta = self.describe()
        count = self._table().count_rows()
        if count == 0:
            raise SourceError(f"{meta['where']}: the table has no rows; nothing to migrate")
        if self.scope:
            count = self.scope["rows"][1] - self.scope["rows"][0]
        if meta["dim"] is None:
            raise SourceError(f"{meta['where']}: every vector in '{meta['vector_column']}' is null")
        details = {"table": meta["table"], "vector_column": meta["vector_column"], "id_column": meta["id_column"],
                   "indexes": meta["indexes"], "version": meta["version"], "vector_dtype": meta["dtype"]}
        return SourceInfo(kind=self.kind, name=f"{self.path}:{meta['table']}", dim=meta["dim"],
                          distance=meta["distance"], count=count, warnings=list(meta["warnings"]), details=details)

    def fingerprint(self) -> dict[str, Any]:
        meta = self.describe()
        root, name = self._locate()
        return {"path": str(root.resolve()), "table": name, "version": meta["version"],
                "rows": self._table().count_rows()}

    def split(self, n: int) -> list[Any]:
        """Row ranges of the table's scan order at the current version (every partition pins that version)."""
        meta = self.describe()
        rows = self._open(meta["version"]).count_rows()
        return [{"rows": [lo, hi], "version": meta["version"]} for lo, hi in even_ranges(rows, n)]

    def batches(self, batch_size: int, resume: Any = None) -> Iterator[Batch]:
        meta = self.describe()
        if meta["dim"] is None:
            raise SourceError(f"{meta['where']}: every vector in '{meta['vector_column']}' is null")
        first, end = self.scope["rows"] if self.scope else (0, None)
        start = int(resume["offset"]) if resume else first
        pinned = self.scope["version"] if self.scope else meta["version"]  # every partition reads one version
        version = int(resume.get("version", pinned)) if resume else pinned
        tbl = self._open(version)
        vcol, idcol, pcols, dim = meta["vector_column"], meta["id_column"], meta["payload"], meta["dim"]
        cols = [vcol] + ([idcol] if idcol else []) + pcols
        pos = start
        try:
            q = tbl.search().select(cols).limit(None)
            if start:
                q = q.offset(start)
            for rb in q.to_batches(batch_size):
                if end is not None and pos + rb.num_rows > end:
                    rb = rb.slice(0, max(0, end - pos))
                if rb.num_rows == 0:
                    if end is not None and pos >= end:
                        return
                    continue
                yield self._filtered(rb, functools.partial(self._batch, pos=pos, version=version, vcol=vcol,
                                                           idcol=idcol, pcols=pcols, dim=dim, span=rb.num_rows))
                pos += rb.num_rows
        except SourceError:
            raise
        except Exception as e:
            raise SourceError(f"{meta['where']}: reading rows after offset {pos} failed ({_first_line(e)})") from e

    def push_down_where(self, expr: Any) -> bool:
        """--where as an arrow mask over each batch LanceDB returns, before its rows are decoded.

        The native search (``compare``, the router) then runs LanceDB's own filtered search.
        """
        from cortex.sources.parquet import schema_subset
        from cortex.where import arrow_pushable

        meta = self.describe()
        schema = self._open(meta["version"]).schema
        self._where = expr if arrow_pushable(expr, schema_subset(schema, meta["payload"])) else None
        return self._where is not None

    def _filtered(self, rb: Any, make: Any) -> Batch:
        return where_filtered(getattr(self, "_where", None), rb, make)

    def _batch(self, rb: Any, pos: int, version: int, vcol: str, idcol: str | None, pcols: list[str],
               dim: int, rows: np.ndarray | None = None, span: int | None = None) -> Batch:
        n = rb.num_rows
        offs = rows if rows is not None else np.arange(n)
        vecs, bad = list_to_matrix(rb.column(vcol), dim)
        if idcol:
            ids, nulls = ids_from_arrow(rb.column(idcol))
        else:
            ids, nulls = (pos + offs).astype(np.int64), None
        payloads = None
        if pcols:
            values = [column_values(rb.column(c)) for c in pcols]
            payloads = [dict(zip(pcols, row, strict=True)) for row in zip(*values, strict=True)]
        if nulls is not None:
            seen = {i for i, _ in bad}
            bad = sorted(bad + [(i, f"id column '{idcol}' is null") for i in np.flatnonzero(nulls).tolist()
                                if i not in seen])
        rejected: list[Rejected] = []
        if bad:
            drop = np.zeros(n, dtype=bool)
            for i, reason in bad:
                drop[i] = True
                rid = ids[i].item() if isinstance(ids, np.ndarray) else ids[i]
                raw = {"id": rid, "vector": json_value(rb.column(vcol)[i].as_py()),
                       "payload": payloads[i] if payloads else {}}
                where = f"{self.path}:{self.describe()['table']}:{pos + int(offs[i])}"
                rejected.append(Rejected(where, reason, id=rid, raw=raw))
            vec_good = np.ones(n, dtype=bool)
            vec_good[[i for i, r in bad if not r.startswith("id column")]] = False
            vecs = vecs[~drop[vec_good]]
            keep = np.flatnonzero(~drop)
            ids = ids[keep] if isinstance(ids, np.ndarray) else [ids[i] for i in keep.tolist()]
            if payloads is not None:
                payloads = [payloads[i] for i in keep.tolist()]
        return Batch(ids=ids, vectors=vecs, payloads=payloads, rejected=rejected,
                     cursor={"offset": pos + (span if span is not None else n), "version": version})

    def search(self, queries: np.ndarray, k: int) -> tuple[list[list[Any]], np.ndarray]:
        """LanceDB's own search (its index when there is one), scores as Qdrant reports them."""
        meta = self.describe()
        if not meta["id_column"]:
            raise NotImplementedError("LanceDB search results carry no row offset; needs an id column")
        dist = self.options.distance or meta["distance"] or "cosine"
        if dist not in _LANCE_METRIC:
            raise NotImplementedError(f"LanceDB has no {dist} metric")
        tbl = self._table()
        flt = None
        if getattr(self, "_where", None) is not None:
            flt = _lance_sql(self._where)
            if flt is None:
                raise NotImplementedError("this --where has no LanceDB SQL of the same meaning")
        q = np.asarray(queries, dtype=np.float32).reshape(-1, meta["dim"])
        out: list[list[Any]] = []
        scores = np.full((len(q), k), np.nan, dtype=np.float32)
        for qi, vec in enumerate(q):
            try:
                s = tbl.search(vec, vector_column_name=meta["vector_column"]).distance_type(_LANCE_METRIC[dist])
                if flt is not None:
                    s = s.where(flt, prefilter=True)
                res = s.limit(k).select([meta["id_column"], "_distance"]).to_arrow()
            except Exception as e:
                raise SourceError(f"{meta['where']}: search failed ({_first_line(e)})") from e
            ids, _ = ids_from_arrow(res.column(meta["id_column"]))
            out.append(ids.tolist() if isinstance(ids, np.ndarray) else list(ids))
            d = res.column("_distance").to_numpy(zero_copy_only=False).astype(np.float64)
            # LanceDB distances: cosine = 1 - cos, l2 = squared euclidean, dot = 1 - x.y
            s = np.sqrt(np.maximum(d, 0.0)) if dist == "euclid" else 1.0 - d
            scores[qi, : len(s)] = s
        return out, scores



def _lance_sql(expr: Any) -> str | None:
    """A LanceDB filter for equality / IN / AND / OR conditions (where SQL's NULL logic agrees); else None."""
    from cortex import where as w

    if isinstance(expr, w.Cmp) and expr.op == "=":
        return w.to_text(expr)
    if isinstance(expr, w.In) and not expr.negated:
        return w.to_text(expr)
    if isinstance(expr, w.And | w.Or):
        parts = [_lance_sql(i) for i in expr.items]
        if any(p is None for p in parts):
            return None
        return (" AND " if isinstance(expr, w.And) else " OR ").join(f"({p})" for p in parts)
    return None
