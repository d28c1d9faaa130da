"""PostgreSQL + pgvector: a table (``--table [schema.]name``) or a SELECT (``--query``).

The source path is a ``postgresql://`` (or ``postgres://``) URL.  The connection is opened with
``default_transaction_read_only=on`` (and ``TimeZone=UTC`` so timestamps come out stable).

* Columns come from the catalog (``pg_attribute`` / ``format_type``; for a query, the result
  description): ``vector``/``halfvec`` columns are dense vectors (dimension = ``atttypmod``),
  ``sparsevec`` columns go along as sparse vectors (``Batch.sparse``).
* The id is the primary key (``pg_index``), or ``--id-column`` (``a,b`` for several); a
  composite key becomes the string ``"a:b"``.  Rows are read in id order, so the resume
  cursor is the last id seen (``WHERE (id) > (last)``).
* Rows stream through one binary ``COPY (SELECT ...) TO STDOUT (FORMAT BINARY)``: the vector
  fields stay raw bytes and a whole batch is decoded by numpy at once (pgvector's binary
  ``vector`` is int16 dim, int16 unused, dim x big-endian float32; ``halfvec`` the same with
  float16).  Every other column is packed server-side by ``json_build_object`` into one JSON
  object (jsonb nested, timestamps ISO 8601, uuid as text, arrays as lists).
* pgvector does not store a metric on the column; the opclass of an hnsw/ivfflat index on it
  tells (``vector_cosine_ops`` -> cosine, ``_ip_ops`` -> dot, ``_l2_ops`` -> euclid,
  ``_l1_ops`` -> manhattan).  ``search()`` uses the matching operator so the index serves it.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson

from cortex.errors import SourceError
from cortex.sources.base import Batch, Rejected, Source, SourceInfo, redact_url, require

DENSE = ("vector", "halfvec")
SPARSE = "sparsevec"
_OPCLASS = (("cosine", "cosine"), ("_ip_", "dot"), ("_l2_", "euclid"), ("_l1_", "manhattan"))
_OPERATOR = {"cosine": "<=>", "dot": "<#>", "euclid": "<->", "manhattan": "<+>"}
_ID_TYPES = {"int2": "int", "int4": "int", "int8": "int", "text": "str", "varchar": "str", "bpchar": "str",
             "name": "str", "uuid": "uuid"}
_FLOAT_TYPES = ("numeric", "float4", "float8")
_JSON_CHUNK = 50  # json_build_object takes at most 100 arguments
JSON_OID = 114
_TEXT_TYPES = ("text", "varchar", "bpchar", "name")
_NUM_TYPES = ("int2", "int4", "int8", "float4", "float8", "numeric")
_TIME_TYPES = ("timestamp", "timestamptz", "date")


def where_sql(expr: Any, columns: dict[str, str]) -> Any:
    """``expr`` (a :mod:`cortex.where` AST) as a SQL condition over payload ``columns`` ({name: typname}).

    None when a condition cannot be said in SQL with the same meaning (a field that is not a
    column, a value of another type than the column's); the source then filters while streaming.
    Every comparison is ``COALESCE(..., false)``: NULL is false, so NOT works as in cortex.where.
    """
    from psycopg import sql

    from cortex import where as w

    def lit(col: str, v: Any, op: str) -> Any:
        typ = columns[col]
        if isinstance(v, bool):
            return sql.Literal(v) if typ == "bool" and op in ("=", "!=") else None
        if isinstance(v, int | float):
            return sql.Literal(v) if typ in _NUM_TYPES else None
        if op in w.RANGE_OPS:  # an ISO timestamp: compared as a time (no zone: UTC)
            return sql.Literal(w.time_literal(v).isoformat()) if typ in _TIME_TYPES else None
        return sql.Literal(v) if typ in _TEXT_TYPES else None

    def go(x: Any) -> Any:
        if isinstance(x, w.Cmp | w.In) and x.field not in columns:
            return None
        if isinstance(x, w.Cmp):
            v = lit(x.field, x.value, x.op)
            if v is None:
                return None
            op = {"=": "=", "!=": "<>"}.get(x.op, x.op)
            return sql.SQL("COALESCE({} {} {}, false)").format(sql.Identifier(x.field), sql.SQL(op), v)
        if isinstance(x, w.In):
            vals = [lit(x.field, v, "=") for v in x.values]
            if any(v is None for v in vals):
                return None
            body = sql.SQL("{} IN ({})").format(sql.Identifier(x.field), sql.SQL(", ").join(vals))
            if x.negated:
                body = sql.SQL("{} IS NOT NULL AND NOT ({})").format(sql.Identifier(x.field), body)
            return sql.SQL("COALESCE({}, false)").format(body)
        if isinstance(x, w.Not):
            inner = go(x.item)
            return None if inner is None else sql.SQL("NOT ({})").format(inner)
        parts = [go(i) for i in x.items]
        if any(p is None for p in parts):
            return None
        joiner = sql.SQL(" AND " if isinstance(x, w.And) else " OR ")
        return sql.SQL("({})").format(joiner.join(parts))

    return go(expr)



def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


redact = redact_url  # kept for callers of the old name


def opclass_distance(opclass: str) -> str | None:
    for key, dist in _OPCLASS:
        if key in opclass:
            return dist
    return None


class PgvectorSource(Source):
    kind = "pgvector"
    extra = "pgvector"
    description = "PostgreSQL + pgvector (postgresql:// URL, --table or --query)"

    def __init__(self, path: str, options: Any = None) -> None:
        super().__init__(path, options)
        self._conn: Any = None
        self._meta: dict[str, Any] | None = None
        self.since: tuple[str, Any] | None = None  # sync --since-column: read only rows with column >= value
        self._subset: Any = None  # --where pushed down: a SQL condition (psycopg.sql)

    @classmethod
    def detect(cls, path: str) -> bool:
        return path.startswith(("postgresql://", "postgres://"))

    # -- connection ---------------------------------------------------------------------------------

    def connect(self) -> Any:
        """A new read-only connection; SourceError with one line when it cannot be made."""
        psycopg = require("psycopg", "pgvector", "pgvector")
        from psycopg.conninfo import conninfo_to_dict

        try:
            params = conninfo_to_dict(self.path)
        except psycopg.Error as e:
            raise SourceError(f"{redact(self.path)}: not a valid PostgreSQL URL ({_first_line(e)})") from e
        opts = " ".join(filter(None, [params.pop("options", None),
                                      "-c default_transaction_read_only=on", "-c TimeZone=UTC"]))
        params.setdefault("connect_timeout", 10)
        params.setdefault("application_name", "cortex")
        try:
            conn = psycopg.connect(**params, options=opts)
        except psycopg.Error as e:
            raise SourceError(f"{redact(self.path)}: cannot connect to PostgreSQL: {_first_line(e)}") from e
        conn.read_only = True
        return conn

    def _db(self) -> Any:
        if self._conn is None or self._conn.closed:
            self._conn = self.connect()
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _query(self, q: Any, params: Any = None) -> list[tuple]:
        psycopg = require("psycopg", "pgvector", "pgvector")
        conn = self._db()
        try:
            with conn.cursor() as cur:
                cur.execute(q, params)
                rows = cur.fetchall() if cur.description else []
            conn.rollback()
            return rows
        except psycopg.Error as e:
            conn.rollback()
            raise SourceError(f"{self._name()}: {_first_line(e)}") from e

    def _name(self) -> str:
        if self._meta:
            return self._meta["name"]
        return f"{redact(self.path)} table {self.options.table}" if self.options.table else redact(self.path)

    # -- discovery ----------------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """Relation, columns, vector/id/payload choice, dimension and distance (cached)."""
        if self._meta is not None:
            return self._meta
        from psycopg import sql

        opts = self.options
        if not opts.table and not opts.query:
            raise SourceError(f"{redact(self.path)}: say what to read with --table [schema.]name "
                              "or --query 'SELECT ...'")
        if opts.table and opts.query:
            raise SourceError(f"{redact(self.path)}: pass either --table or --query, not both")
        warnings: list[str] = []
        oid = None
        self._db()  # connection errors surface as they are, not as a bad table name
        if opts.table:
            try:
                found = self._query("SELECT c.oid, n.nspname, c.relname, c.relkind FROM pg_class c "
                                    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)",
                                    (opts.table,))
            except SourceError as e:
                raise SourceError(f"{redact(self.path)}: bad table name {opts.table!r} ({e})") from e
            if not found:
                raise SourceError(f"{redact(self.path)}: no table {opts.table!r} (check --table and the schema, "
                                  "e.g. public.items)")
            oid, schema, relname, _ = found[0]
            rel = sql.SQL("{}.{} AS t").format(sql.Identifier(schema), sql.Identifier(relname))
            name = f"{schema}.{relname}"
            cols = [dict(name=r[0], oid=r[1], typname=r[2], typmod=r[3], fmt=r[4], attnum=r[5]) for r in self._query(
                "SELECT a.attname, a.atttypid, t.typname, a.atttypmod, format_type(a.atttypid, a.atttypmod), a.attnum "
                "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
                "WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum", (oid,))]
        else:
            query = opts.query.strip().rstrip(";").strip()
            rel = sql.SQL("({}) AS t").format(sql.SQL(query))  # the user's own SELECT, run read-only
            name = f"query {query[:60]!r}"
            cols = self._query_columns(sql.SQL("SELECT * FROM {} LIMIT 0").format(rel))
        meta: dict[str, Any] = {"name": name, "rel": rel, "oid": oid, "columns": cols}
        self._meta = meta  # names in messages from here on
        byname = {c["name"]: c for c in cols}
        dense = [c["name"] for c in cols if c["typname"] in DENSE]
        sparse = [c["name"] for c in cols if c["typname"] == SPARSE]
        listing = ", ".join(f"{c['name']} ({c['fmt']})" for c in cols)
        vcol = opts.vector_column
        if vcol:
            if vcol not in byname:
                raise SourceError(f"{name}: no column '{vcol}'; columns are: {listing}")
            if byname[vcol]["typname"] not in DENSE:
                raise SourceError(f"{name}: column '{vcol}' is {byname[vcol]['fmt']}, not a pgvector vector or "
                                  "halfvec column; choose one with --vector-column")
        elif not dense:
            hint = (f" (sparsevec columns {', '.join(sparse)} need a dense vector column beside them)"
                    if sparse else "")
            raise SourceError(f"{name}: no vector or halfvec column{hint}; columns are: {listing}")
        elif len(dense) > 1:
            several = ", ".join(f"{c} ({byname[c]['fmt']})" for c in dense)
            raise SourceError(f"{name}: several vector columns ({several}); choose one with --vector-column")
        else:
            vcol = dense[0]
        others = [c for c in dense if c != vcol]
        if others:
            warnings.append(f"other vector columns are not migrated: {', '.join(others)}")
        idcols = self._id_columns(meta, byname, warnings)
        vinfo = byname[vcol]
        dim = vinfo["typmod"] if vinfo["typmod"] and vinfo["typmod"] > 0 else None
        if dim is None:
            got = self._query(sql.SQL("SELECT vector_dims({c}) FROM {rel} WHERE {c} IS NOT NULL LIMIT 1").format(
                c=sql.Identifier(vcol), rel=rel))
            dim = int(got[0][0]) if got else None
            warnings.append(f"column '{vcol}' has no declared dimension; using {dim} from the first row "
                            "(rows of another length are rejected)")
        if opts.dimensions and dim and opts.dimensions != dim:
            raise SourceError(f"{name}: column '{vcol}' holds {dim}-dimensional vectors, not {opts.dimensions}; "
                              "fix --dimensions")
        distance = None
        indexes: list[dict[str, str]] = []
        if oid is not None:
            for idxname, am, opc in self._query(
                    "SELECT ic.relname, am.amname, oc.opcname FROM pg_index i "
                    "JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam "
                    "CROSS JOIN LATERAL unnest(i.indkey::int2[], i.indclass::oid[]) AS k(attnum, opc) "
                    "JOIN pg_opclass oc ON oc.oid = k.opc "
                    "WHERE i.indrelid = %s AND k.attnum = %s ORDER BY ic.oid", (oid, vinfo["attnum"])):
                dist = opclass_distance(opc)
                if dist:
                    indexes.append({"index": idxname, "method": am, "opclass": opc, "distance": dist})
            dists = sorted({i["distance"] for i in indexes})
            if dists:
                distance = indexes[0]["distance"]
                if len(dists) > 1:
                    warnings.append(f"indexes on '{vcol}' use several metrics ({', '.join(dists)}); "
                                    f"using {distance} from index {indexes[0]['index']} (override with --distance)")
        if distance is None:
            where = "the query's source table" if opts.query else f"'{vcol}'"
            warnings.append(f"pgvector stores no metric and no hnsw/ivfflat index on {where} tells it; "
                            "the default is used unless you pass --distance")
        payload = [c for c in cols if c["name"] not in (vcol, *others, *sparse, *idcols)]
        meta.update(vector_column=vcol, vector_type=vinfo["typname"], vector_oid=vinfo["oid"], dim=dim,
                    sparse=[(c, byname[c]["oid"], byname[c]["typmod"]) for c in sparse], id_columns=idcols,
                    id_types=[byname[c] for c in idcols], payload=payload, distance=distance, warnings=warnings,
                    indexes=indexes)
        return meta

    def _query_columns(self, q: Any) -> list[dict[str, Any]]:
        """Columns of a SELECT from its result description (name, type oid, typmod)."""
        psycopg = require("psycopg", "pgvector", "pgvector")
        conn = self._db()
        try:
            with conn.cursor() as cur:
                cur.execute(q)
                res = cur.pgresult
                desc = [(d.name, d.type_code, res.fmod(i)) for i, d in enumerate(cur.description)]
            conn.rollback()
        except psycopg.Error as e:
            conn.rollback()
            raise SourceError(f"{self._name()}: the query failed: {_first_line(e)}") from e
        if not desc:
            raise SourceError(f"{self._name()}: the query returns no columns")
        types = {r[0]: r[1:] for r in self._query(
            "SELECT x.o, t.typname, format_type(x.o, x.m) FROM unnest(%s::oid[], %s::int[]) AS x(o, m) "
            "JOIN pg_type t ON t.oid = x.o", ([d[1] for d in desc], [d[2] for d in desc]))}
        names = [d[0] for d in desc]
        if len(set(names)) != len(names):
            raise SourceError(f"{self._name()}: the query returns duplicate column names ({', '.join(names)}); "
                              "alias them")
        return [dict(name=n, oid=o, typname=types[o][0], typmod=m, fmt=types[o][1], attnum=None)
                for n, o, m in desc]

    def _id_columns(self, meta: dict[str, Any], byname: dict[str, dict], warnings: list[str]) -> list[str]:
        name = meta["name"]
        if self.options.id_column:
            cols = [c.strip() for c in self.options.id_column.split(",") if c.strip()]
            missing = [c for c in cols if c not in byname]
            if missing:
                raise SourceError(f"{name}: no id column {', '.join(missing)}; columns are: {', '.join(byname)}")
        else:
            cols = []
            if meta["oid"] is not None:
                cols = [r[0] for r in self._query(
                    "SELECT a.attname FROM pg_index i "
                    "CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) "
                    "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
                    "WHERE i.indrelid = %s AND i.indisprimary ORDER BY k.ord", (meta["oid"],))]
            if not cols:
                if "id" not in byname:
                    what = "the query" if meta["oid"] is None else "the table has no primary key and"
                    raise SourceError(f"{name}: {what} no 'id' column; pass --id-column (a unique column, "
                                      "or a,b for several) so rows have ids and a stable order")
                cols = ["id"]
                warnings.append(f"{name}: no primary key; using column 'id' as the id (it must be unique)")
        if len(cols) > 1:
            warnings.append(f"composite id ({', '.join(cols)}): point ids are the strings 'a:b' of its values "
                            "(kept in the payload as the source id)")
        return cols

    # -- contract -----------------------------------------------------------------------------------

    def _count(self, scoped: bool = True) -> int:
        """Rows to read (of the partition, when one is set; ``scoped=False``: of the whole relation)."""
        from psycopg import sql

        meta = self.describe()
        where = self._where(meta) if scoped else sql.SQL("")
        return int(self._query(sql.SQL("SELECT count(*) FROM {} {}").format(meta["rel"], where))[0][0])

    def push_down_where(self, expr: Any) -> bool:
        """--where as a SQL WHERE on the payload columns (when every condition maps to one)."""
        self._subset = where_sql(expr, {c["name"]: c["typname"] for c in self.describe()["payload"]})
        return self._subset is not None

    def info(self) -> SourceInfo:
        meta = self.describe()
        count = self._count()
        if count == 0:
            raise SourceError(f"{meta['name']}: no rows; nothing to migrate")
        if meta["dim"] is None:
            raise SourceError(f"{meta['name']}: every value of '{meta['vector_column']}' is NULL; nothing to migrate")
        details = {"relation": meta["name"], "vector_column": meta["vector_column"],
                   "vector_type": meta["vector_type"], "id_columns": meta["id_columns"],
                   "sparse_columns": [s[0] for s in meta["sparse"]], "indexes": meta["indexes"],
                   "sparse_vectors": {s[0]: {"modifier": None} for s in meta["sparse"]},
                   "payload_columns": [c["name"] for c in meta["payload"]]}
        if {"document", "cmetadata"} <= set(details["payload_columns"]):  # LangChain's PGVector table
            details.update(text_column="document", metadata_column="cmetadata")
        return SourceInfo(kind=self.kind, name=meta["name"], dim=meta["dim"], distance=meta["distance"],
                          count=count, warnings=list(meta["warnings"]), details=details)

    def _id_exprs(self, meta: dict[str, Any], alias: Any = None) -> list[Any]:
        from psycopg import sql

        out = []
        for c in meta["id_types"]:
            ident = sql.Identifier(c["name"]) if alias is None else sql.Identifier(alias, c["name"])
            out.append(ident if c["typname"] in _ID_TYPES else sql.SQL("{}::text").format(ident))
        return out

    def _order(self, meta: dict[str, Any]) -> Any:
        from psycopg import sql

        return sql.SQL(", ").join(sql.Identifier(c) for c in meta["id_columns"])

    def _compare(self, meta: dict[str, Any], op: str, values: list[Any]) -> Any:
        """``(ids) <op> (values)``: literals cast to the id columns' types."""
        from psycopg import sql

        if len(values) != len(meta["id_columns"]):
            raise SourceError(f"{meta['name']}: the resume cursor does not match the id columns "
                              f"{meta['id_columns']}; restart the migration")
        lits = [sql.SQL("{}::{}").format(sql.Literal(v if isinstance(v, int) else str(v)), sql.SQL(c["fmt"]))
                for v, c in zip(values, meta["id_types"], strict=True)]
        return sql.SQL("({}) {} ({})").format(self._order(meta), sql.SQL(op), sql.SQL(", ").join(lits))

    def _where(self, meta: dict[str, Any], resume: Any = None) -> Any:
        """``WHERE`` of the rows to read: after the resume cursor (or the partition's start), up to its end."""
        from psycopg import sql

        scope = self.scope or {}
        after = resume["last"] if resume else scope.get("after")
        conds = [self._compare(meta, ">", after)] if after is not None else []
        if scope.get("upto") is not None:
            conds.append(self._compare(meta, "<=", scope["upto"]))
        if self.since is not None:  # sync --since-column
            conds.append(sql.SQL("{} >= {}").format(sql.Identifier(self.since[0]), sql.Literal(self.since[1])))
        if self._subset is not None:
            conds.append(self._subset)
        return sql.SQL("WHERE {}").format(sql.SQL(" AND ").join(conds)) if conds else sql.SQL("")

    def split(self, n: int) -> list[Any] | None:
        """Primary-key ranges of equal row counts (None without a key, or with fewer rows than partitions)."""
        from psycopg import sql

        meta = self.describe()
        count = self._count(scoped=False)
        if not meta["id_columns"] or count < n:
            return None
        ids = sql.SQL(", ").join(sql.Identifier(c) for c in meta["id_columns"])
        edges: list[Any] = [None]
        for j in range(1, n):
            row = self._query(sql.SQL("SELECT {} FROM {} ORDER BY {} OFFSET {} LIMIT 1").format(
                ids, meta["rel"], self._order(meta), sql.Literal(count * j // n - 1)))
            edges.append([v if isinstance(v, int) else str(v) for v in row[0]])
        edges.append(None)
        return [{"after": edges[j], "upto": edges[j + 1]} for j in range(n)]

    def _select(self, meta: dict[str, Any], resume: Any) -> Any:
        from psycopg import sql

        items = [*self._id_exprs(meta), sql.Identifier(meta["vector_column"])]
        items += [sql.Identifier(s[0]) for s in meta["sparse"]]
        pay = meta["payload"]
        for lo in range(0, len(pay), _JSON_CHUNK):
            args = sql.SQL(", ").join(sql.SQL("{}, {}").format(sql.Literal(c["name"]), sql.Identifier(c["name"]))
                                      for c in pay[lo:lo + _JSON_CHUNK])
            items.append(sql.SQL("json_build_object({})").format(args))
        where = self._where(meta, resume)
        return sql.SQL("SELECT {items} FROM {rel} {where} ORDER BY {order}").format(
            items=sql.SQL(", ").join(items), rel=meta["rel"], where=where, order=self._order(meta))

    def batches(self, batch_size: int, resume: Any = None) -> Iterator[Batch]:
        psycopg = require("psycopg", "pgvector", "pgvector")
        from psycopg import sql
        from psycopg.adapt import Loader
        from psycopg.pq import Format
        from psycopg.types.json import set_json_loads

        class RawLoader(Loader):
            format = Format.BINARY

            def load(self, data: Any) -> bytes:
                return bytes(data)

        meta = self.describe()
        if meta["dim"] is None:
            raise SourceError(f"{meta['name']}: every value of '{meta['vector_column']}' is NULL; nothing to migrate")
        types: list[Any] = [c["oid"] if c["typname"] in _ID_TYPES else "text" for c in meta["id_types"]]
        types.append(meta["vector_oid"])
        types += [s[1] for s in meta["sparse"]]
        types += [JSON_OID] * ((len(meta["payload"]) + _JSON_CHUNK - 1) // _JSON_CHUNK)
        stmt = sql.SQL("COPY ({}) TO STDOUT (FORMAT BINARY)").format(self._select(meta, resume))
        conn = self.connect()  # its own connection: info()/search() may run while this streams
        try:
            with conn.cursor(binary=True) as cur:
                for oid in {meta["vector_oid"], *(s[1] for s in meta["sparse"])}:
                    cur.adapters.register_loader(oid, RawLoader)
                set_json_loads(orjson.loads, cur)  # payload objects: ~3x faster than json.loads
                with cur.copy(stmt) as cp:
                    cp.set_types(types)
                    rows: list[tuple] = []
                    for row in cp.rows():
                        rows.append(row)
                        if len(rows) >= batch_size:
                            yield self._batch(meta, rows)
                            rows = []
                    if rows:
                        yield self._batch(meta, rows)
        except psycopg.Error as e:
            raise SourceError(f"{meta['name']}: reading rows failed: {_first_line(e)}") from e
        finally:
            conn.close()

    def _batch(self, meta: dict[str, Any], rows: list[tuple]) -> Batch:
        nid = len(meta["id_columns"])
        cols = list(zip(*rows, strict=True))
        id_parts = [[str(v) if v is not None and not isinstance(v, (int, str)) else v for v in col]
                    for col in cols[:nid]]
        last = [p[-1] for p in id_parts]
        if nid == 1:
            ids: list[Any] = id_parts[0]
        else:
            ids = [":".join(map(str, parts)) if None not in parts else None for parts in zip(*id_parts, strict=True)]
        vecs, bad = decode_dense(cols[nid], meta["vector_type"], meta["dim"])
        n = len(rows)
        sparse = None
        if meta["sparse"]:
            sparse = {name: [decode_sparse(r) for r in cols[nid + 1 + j]]
                      for j, (name, _, _) in enumerate(meta["sparse"])}
        payloads: list[dict[str, Any]] | None = None
        chunks = cols[nid + 1 + len(meta["sparse"]):]
        if chunks:
            payloads = list(chunks[0])
            for more in chunks[1:]:
                for p, m in zip(payloads, more, strict=True):
                    p.update(m)
            for c in meta["payload"]:
                if c["typname"] in _FLOAT_TYPES:
                    k = c["name"]
                    for p in payloads:
                        if isinstance(p.get(k), int):
                            p[k] = float(p[k])
        else:
            payloads = [{} for _ in range(n)]
        null_ids = [i for i, v in enumerate(ids) if v is None]
        if null_ids:
            seen = {i for i, _ in bad}
            bad = sorted(bad + [(i, "id is NULL") for i in null_ids if i not in seen])
        rejected: list[Rejected] = []
        if bad:
            drop = np.zeros(n, dtype=bool)
            for i, reason in bad:
                drop[i] = True
                raw = {"id": ids[i], "payload": payloads[i]}
                rejected.append(Rejected(f"{meta['name']} id={ids[i]}", reason, id=ids[i], raw=raw))
            vec_good = np.ones(n, dtype=bool)
            vec_good[[i for i, r in bad if r != "id is NULL"]] = False
            vecs = vecs[~drop[vec_good]]
            keep = np.flatnonzero(~drop).tolist()
            ids = [ids[i] for i in keep]
            payloads = [payloads[i] for i in keep]
            if sparse:
                sparse = {k: [v[i] for i in keep] for k, v in sparse.items()}
        out_ids: Any = ids
        if nid == 1 and meta["id_types"][0]["typname"] in ("int2", "int4", "int8"):
            out_ids = np.array(ids, dtype=np.int64)
        return Batch(ids=out_ids, vectors=vecs, payloads=payloads, rejected=rejected,
                     cursor={"last": last}, sparse=sparse)

    # -- incremental sync (cortex.cutover.sync) --------------------------------------------------------

    def max_of(self, column: str) -> str | None:
        """The largest value of ``column`` (as text): the high-water mark of ``sync --since-column``."""
        from psycopg import sql

        meta = self.describe()
        if column not in {c["name"] for c in meta["columns"]}:
            raise SourceError(f"{meta['name']}: no column '{column}' for --since-column; columns are: "
                              f"{', '.join(c['name'] for c in meta['columns'])}")
        return self._query(sql.SQL("SELECT max({})::text FROM {}").format(sql.Identifier(column), meta["rel"]))[0][0]

    def id_batches(self, batch_size: int) -> Iterator[list[Any]]:
        """Every row's id alone (as ``batches`` gives them), streamed: what a sync needs to see deletions."""
        from psycopg import sql

        meta = self.describe()
        nid = len(meta["id_columns"])
        conn = self.connect()
        try:
            with conn.cursor(name="cortex_ids") as cur:
                cur.itersize = batch_size
                cur.execute(sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(self._id_exprs(meta)), meta["rel"]))
                while rows := cur.fetchmany(batch_size):
                    parts = [[str(v) if v is not None and not isinstance(v, (int, str)) else v for v in col]
                             for col in zip(*rows, strict=True)]
                    yield parts[0] if nid == 1 else [":".join(map(str, p)) for p in zip(*parts, strict=True)]
        finally:
            conn.close()

    # -- search / fingerprint -------------------------------------------------------------------------

    def search(self, queries: np.ndarray, k: int) -> tuple[list[list[Any]], np.ndarray]:
        from psycopg import sql

        meta = self.describe()
        dist = self.options.distance or meta["distance"] or "cosine"
        op = _OPERATOR[dist]
        q = np.asarray(queries, dtype=np.float32).reshape(-1, meta["dim"])
        conn = self._db()
        subset = sql.SQL(" AND {}").format(self._subset) if self._subset is not None else sql.SQL("")
        stmt = sql.SQL("SELECT {ids}, {col} {op} %s::{typ} AS d FROM {rel} WHERE {col} IS NOT NULL{subset} "
                       "ORDER BY d LIMIT %s").format(
            ids=sql.SQL(", ").join(self._id_exprs(meta)), col=sql.Identifier(meta["vector_column"]),
            op=sql.SQL(op), typ=sql.SQL(meta["vector_type"]), rel=meta["rel"], subset=subset)
        nid = len(meta["id_columns"])
        out_ids: list[list[Any]] = []
        scores = np.full((len(q), k), np.nan, dtype=np.float32)
        psycopg = require("psycopg", "pgvector", "pgvector")
        try:
            with conn.cursor() as cur:
                ef = cur.execute("SELECT current_setting('hnsw.ef_search', true)").fetchone()[0]
                if k > int(ef or 40):  # hnsw returns at most ef_search rows
                    cur.execute(sql.SQL("SET hnsw.ef_search = {}").format(sql.Literal(min(k, 1000))))
                for qi, vec in enumerate(q):
                    text = "[" + ",".join(map(repr, vec.tolist())) + "]"
                    rows = cur.execute(stmt, (text, k)).fetchall()
                    ids = []
                    for j, r in enumerate(rows):
                        parts = [v if isinstance(v, (int, str)) else str(v) for v in r[:nid]]
                        ids.append(parts[0] if nid == 1 else ":".join(map(str, parts)))
                        d = float(r[nid])
                        scores[qi, j] = 1.0 - d if dist == "cosine" else (-d if dist == "dot" else d)
                    out_ids.append(ids)
            conn.rollback()
        except psycopg.Error as e:
            conn.rollback()
            raise SourceError(f"{meta['name']}: search failed: {_first_line(e)}") from e
        return out_ids, scores

    def fingerprint(self) -> dict[str, Any]:
        """Database, relation, row count, largest id and a checksum of the first and last rows."""
        from psycopg import sql

        meta = self.describe()
        order = self._order(meta)
        desc = sql.SQL(", ").join(sql.SQL("{} DESC").format(sql.Identifier(c)) for c in meta["id_columns"])
        db, host, port = self._query("SELECT current_database(), inet_server_addr()::text, inet_server_port()")[0]
        count = self._count(scoped=False)
        maxid = self._query(sql.SQL("SELECT {} FROM {} ORDER BY {} LIMIT 1").format(
            sql.SQL(", ").join(self._id_exprs(meta)), meta["rel"], desc))
        h = hashlib.sha256()
        for direction in (order, desc):
            rows = self._query(sql.SQL("SELECT md5(coalesce(string_agg(s.r::text, '|'), '')) FROM "
                                       "(SELECT t AS r FROM {rel} ORDER BY {o} LIMIT 100) s").format(
                rel=meta["rel"], o=direction))
            h.update(str(rows[0][0]).encode())
        rel = meta["name"] if self.options.table else hashlib.sha256(self.options.query.encode()).hexdigest()
        return {"database": db, "host": host, "port": port, "relation": rel, "rows": count,
                "max_id": [str(v) for v in maxid[0]] if maxid else None, "sample_sha256": h.hexdigest()}


def decode_dense(raws: tuple[bytes | None, ...], typ: str, dim: int) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Binary pgvector ``vector``/``halfvec`` values -> (float32 matrix of good rows, [(row, reason)]).

    Each value is int16 dim, int16 unused, then dim big-endian float32 (halfvec: float16).
    The good values are joined into one buffer and viewed with a structured dtype: no per-float work.
    """
    esize = 2 if typ == "halfvec" else 4
    want = 4 + esize * dim
    lengths = np.fromiter((-1 if r is None else len(r) for r in raws), dtype=np.int64, count=len(raws))
    good = lengths == want
    if good.all():
        buf = b"".join(raws)  # type: ignore[arg-type]
        bad: list[tuple[int, str]] = []
    else:
        buf = b"".join(r for r, g in zip(raws, good, strict=True) if g)  # type: ignore[misc]
        bad = []
        for i in np.flatnonzero(~good).tolist():
            r = raws[i]
            if r is None:
                bad.append((i, "vector is NULL"))
            else:
                bad.append((i, f"vector has {struct.unpack_from('>h', r)[0]} dimensions, expected {dim}"))
    rec = np.dtype([("dim", ">i2"), ("unused", ">i2"), ("v", (">f2" if esize == 2 else ">f4", (dim,)))])
    arr = np.frombuffer(buf, dtype=rec)
    return arr["v"].astype(np.float32), bad


def decode_sparse(raw: bytes | None) -> tuple[list[int], list[float]] | None:
    """Binary ``sparsevec``: int32 dim, int32 nnz, int32 unused, nnz int32 indices (0-based), nnz float32.

    NULL is None (the point gets no such sparse vector)."""
    if raw is None:
        return None
    _, nnz, _ = struct.unpack_from(">iii", raw)
    idx = np.frombuffer(raw, ">i4", nnz, 12)
    val = np.frombuffer(raw, ">f4", nnz, 12 + 4 * nnz)
    return idx.tolist(), val.astype(np.float32).tolist()
