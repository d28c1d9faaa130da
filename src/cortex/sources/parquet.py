"""Parquet: one ``.parquet`` file, a directory of them, or a vector-io VDF export.

The vector column is a (fixed-size) list of float16/32/64; every other column goes to
the payload.  Files are read one record batch at a time (``ParquetFile.iter_batches``),
and a list column becomes a 2-D numpy array without a per-row Python loop: zero-copy
when the vectors are float32 and have no nulls.

vector-io's VDF layout is a directory with ``VDF_META.json``::

    {"version": ..., "exported_from": "pinecone", "id_column": "id",      # id_column optional
     "indexes": {"<index>": [{"namespace": "", "index_name": "<index>",
                              "dimensions": 768, "metric": "Cosine",      # Qdrant's names
                              "vector_columns": ["vector"], "data_path": "<index>",
                              "total_vector_count": ..., "exported_vector_count": ...}]}}

with the parquet files of each namespace under ``<dir>/<data_path>`` (sorted by name).
Choose an index with ``--source-collection`` (or ``--table``) and a namespace with
``--source-opt namespace=...`` when the export holds more than one.

Cursor: ``{"file": i, "row": r}``, the next row to read in the i-th file of the sorted list.
Rejected rows are located as ``<file>:<row>`` with ``row`` the 0-based row index in that file.
"""

from __future__ import annotations

import base64
import datetime as _dt
import functools
import json
import re
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from cortex.errors import SourceError
from cortex.sources.base import Batch, Rejected, Source, SourceInfo, check_exists, even_ranges, require

VDF_META = "VDF_META.json"

# vector-io writes Qdrant's Distance names ("Cosine", "Euclid", "Dot", "Manhattan"); accept the usual aliases.
_METRICS = {
    "cosine": "cosine", "cos": "cosine", "angular": "cosine",
    "dot": "dot", "dotproduct": "dot", "ip": "dot", "inner_product": "dot", "innerproduct": "dot",
    "euclid": "euclid", "euclidean": "euclid", "l2": "euclid",
    "manhattan": "manhattan", "l1": "manhattan",
}


def normalize_metric(metric: Any) -> str | None:
    """Map a store's metric name to one of cortex's distances, None when unknown/absent."""
    if metric is None:
        return None
    key = str(metric).strip().lower().replace("-", "_").replace(" ", "_")
    key = key.rsplit(".", 1)[-1]  # "Distance.COSINE"
    return _METRICS.get(key) or _METRICS.get(key.replace("_", ""))


def json_value(v: Any) -> Any:
    """Convert a value read from a store into plain JSON types (ISO datetimes, floats for decimals...)."""
    if v is None or isinstance(v, (str, bool, int, float)):
        return v
    if isinstance(v, dict):
        return {str(k): json_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        if v and all(isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], str) for x in v):
            return {k: json_value(x) for k, x in v}  # an Arrow map as (key, value) pairs
        return [json_value(x) for x in v]
    if isinstance(v, (_dt.datetime, _dt.date, _dt.time)):
        return v.isoformat()
    if isinstance(v, _dt.timedelta):
        return v.total_seconds()
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        b = bytes(v)
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(b).decode("ascii")
    if isinstance(v, np.ndarray):
        return json_value(v.tolist())
    if isinstance(v, np.generic):
        return json_value(v.item())
    return str(v)


def _plain_type(t: Any) -> bool:
    """True when ``to_pylist()`` of this Arrow type already yields plain JSON values."""
    import pyarrow as pa

    if pa.types.is_float16(t):
        return False
    if (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_null(t)
            or pa.types.is_string(t) or pa.types.is_large_string(t)):
        return True
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return _plain_type(t.value_type)
    if pa.types.is_struct(t):
        return all(_plain_type(t.field(i).type) for i in range(t.num_fields))
    if pa.types.is_dictionary(t):
        return _plain_type(t.value_type)
    return False


def schema_subset(schema: Any, names: list[str]) -> Any:
    """The arrow schema of the columns ``names`` only."""
    import pyarrow as pa

    return pa.schema([schema.field(n) for n in names])


def where_filtered(where: Any, rb: Any, make: Any) -> Batch:
    """``make(rows of rb that match --where, their positions)``; the others counted as skipped.

    ``where`` None (nothing pushed down): ``make(rb, rows=None)``. Used by the Parquet and LanceDB sources.
    """
    if where is None:
        return make(rb, rows=None)
    from cortex.where import arrow_mask

    keep = arrow_mask(where, rb).to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(keep)
    b = make(rb.filter(keep) if len(rows) < rb.num_rows else rb, rows=rows)
    b.skipped = rb.num_rows - len(rows)
    return b


def column_values(arr: Any) -> list[Any]:
    """An Arrow array as a list of JSON-able values."""
    values = arr.to_pylist()
    if _plain_type(arr.type):
        return values
    return [json_value(v) for v in values]


def is_vector_type(t: Any) -> bool:
    """A (fixed-size / large) list of float16/32/64."""
    import pyarrow as pa

    if pa.types.is_fixed_size_list(t) or pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.types.is_floating(t.value_type)
    return False


def vector_columns(schema: Any) -> list[str]:
    return [f.name for f in schema if is_vector_type(f.type)]


def pick_vector_column(schema: Any, chosen: str | None, where: str) -> tuple[str, list[str]]:
    """The vector column of an Arrow schema (``chosen``, else the only one) and all vector-like columns."""
    names = schema.names
    vcols = vector_columns(schema)
    listing = ", ".join(f"{f.name} ({f.type})" for f in schema)
    if chosen:
        if chosen not in names:
            raise SourceError(f"{where}: no column '{chosen}'; columns are: {listing}")
        if not is_vector_type(schema.field(chosen).type):
            raise SourceError(f"{where}: column '{chosen}' is {schema.field(chosen).type}, not a list of floats; "
                              "choose the vector column with --vector-column")
        return chosen, vcols
    if not vcols:
        raise SourceError(f"{where}: no vector-like column (a list of float16/32/64); columns are: {listing}")
    if len(vcols) > 1:
        raise SourceError(f"{where}: several vector-like columns ({', '.join(vcols)}); "
                          "choose one with --vector-column")
    return vcols[0], vcols


def list_to_matrix(arr: Any, dim: int) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """(float32 matrix of the good rows, [(row, reason)] of the bad ones) of a list-of-floats array.

    Good rows are non-null vectors of exactly ``dim`` non-null numbers.  No per-row loop:
    the child values buffer is viewed as ``(rows, dim)`` when the offsets are uniform.
    """
    import pyarrow as pa

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    n = len(arr)
    t = arr.type
    if pa.types.is_fixed_size_list(t):
        size = t.list_size
        if size != dim:
            bad = [(i, f"vector has {size} dimensions, expected {dim}") for i in range(n)]
            return np.empty((0, dim), np.float32), bad
        values = arr.values.slice(arr.offset * size, n * size)
        lengths = None
    else:
        offsets = arr.offsets.to_numpy()
        lengths = np.diff(offsets)
        values = arr.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))
    good = np.ones(n, dtype=bool) if arr.null_count == 0 else arr.is_valid().to_numpy(zero_copy_only=False)
    if lengths is not None:
        good &= lengths == dim
    elem_null = None
    if values.null_count:
        elem_null = values.is_null().to_numpy(zero_copy_only=False)
        if lengths is None:
            good &= ~elem_null.reshape(n, dim).any(axis=1)
        else:
            row_of_elem = np.repeat(np.arange(n), lengths)
            has_null = np.zeros(n, dtype=bool)
            has_null[row_of_elem[elem_null]] = True
            good &= ~has_null
    flat = values.to_numpy(zero_copy_only=False)
    if good.all():
        mat = flat.reshape(n, dim)
        bad: list[tuple[int, str]] = []
    else:
        keep = np.repeat(good, lengths) if lengths is not None else np.repeat(good, dim)
        mat = flat[keep].reshape(-1, dim)
        valid = arr.is_valid().to_numpy(zero_copy_only=False)
        bad = []
        for i in np.flatnonzero(~good).tolist():
            if not valid[i]:
                bad.append((i, "vector is null"))
            elif lengths is not None and lengths[i] != dim:
                bad.append((i, f"vector has {int(lengths[i])} dimensions, expected {dim}"))
            else:
                bad.append((i, "vector holds a null value"))
    if mat.dtype != np.float32:
        mat = mat.astype(np.float32)
    return mat, bad


def ids_from_arrow(arr: Any) -> tuple[Any, np.ndarray | None]:
    """(ids, null mask or None) of an Arrow id column: a numpy int array when possible, else a list."""
    import pyarrow as pa

    nulls = arr.is_null().to_numpy(zero_copy_only=False) if arr.null_count else None
    if pa.types.is_integer(arr.type) and nulls is None:
        return arr.to_numpy(), None
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type) or pa.types.is_integer(arr.type):
        return arr.to_pylist(), nulls
    vals = [v if v is None or isinstance(v, (int, str)) else json_value(v) for v in arr.to_pylist()]
    return [v if v is None or isinstance(v, (int, str)) else str(v) for v in vals], nulls


def _natural_key(p: Path) -> list[Any]:
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", p.name)]


def parquet_files(d: Path) -> list[Path]:
    """The ``*.parquet`` files of a directory (below it when none at the top), in natural name order."""
    files = sorted((f for f in d.iterdir() if f.is_file() and f.suffix.lower() == ".parquet"), key=_natural_key)
    if not files:
        files = sorted((f for f in d.rglob("*.parquet") if f.is_file()),
                       key=lambda f: [*map(_natural_key, f.relative_to(d).parents), _natural_key(f)])
    return files


class ParquetSource(Source):
    kind = "parquet"
    extra = "parquet"
    description = "a .parquet file, a directory of them, or a vector-io VDF export (VDF_META.json)"

    def __init__(self, path: str, options: Any = None) -> None:
        super().__init__(path, options)
        self._layout: dict[str, Any] | None = None

    @classmethod
    def detect(cls, path: str) -> bool:
        p = Path(path)
        if p.is_file():
            if p.suffix.lower() == ".parquet":
                return True
            try:
                with open(p, "rb") as f:
                    return f.read(4) == b"PAR1"
            except OSError:
                return False
        if p.is_dir():
            if (p / VDF_META).is_file():
                return True
            try:
                return any(e.suffix.lower() == ".parquet" and e.is_file() for e in p.iterdir())
            except OSError:
                return False
        return False

    # -- layout ---------------------------------------------------------------------------------

    def _vdf(self, root: Path) -> dict[str, Any]:
        """Files, hints and metadata of the chosen index/namespace of a VDF export."""
        meta_path = root / VDF_META
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as e:
            raise SourceError(f"{meta_path}: not readable JSON ({e}); is this a complete vector-io export?") from e
        indexes = meta.get("indexes") if isinstance(meta, dict) else None
        if not isinstance(indexes, dict) or not indexes:
            raise SourceError(f"{meta_path}: has no 'indexes'; nothing to migrate")
        choices = [(name, ns) for name, nss in indexes.items() for ns in (nss or []) if isinstance(ns, dict)]
        if not choices:
            raise SourceError(f"{meta_path}: its indexes list no namespaces; nothing to migrate")
        want_index = self.options.collection or self.options.table
        want_ns = self.options.extra.get("namespace")
        picked = [(n, ns) for n, ns in choices
                  if (want_index is None or n == want_index)
                  and (want_ns is None or str(ns.get("namespace", "")) == want_ns)]
        listing = ", ".join(f"{n}" + (f" (namespace '{ns.get('namespace')}')" if ns.get("namespace") else "")
                            for n, ns in choices)
        if not picked:
            raise SourceError(f"{root}: no index {want_index!r}"
                              + (f" with namespace {want_ns!r}" if want_ns else "")
                              + f" in {VDF_META}; it holds: {listing}")
        if len(picked) > 1:
            raise SourceError(f"{root}: the VDF export holds several indexes/namespaces: {listing}; "
                              "choose one with --source-collection INDEX (and --source-opt namespace=NS)")
        index_name, ns = picked[0]
        data_path = root / str(ns.get("data_path") or index_name)
        if not data_path.exists():
            raise SourceError(f"{root}: the data_path '{ns.get('data_path')}' of index {index_name} "
                              f"in {VDF_META} does not exist")
        files = [data_path] if data_path.is_file() else parquet_files(data_path)
        vcols = ns.get("vector_columns") or ["vector"]
        warnings = []
        if len(vcols) > 1 and not self.options.vector_column:
            warnings.append(f"index {index_name} has several vector columns {vcols}; migrating '{vcols[0]}' "
                            "(choose another with --vector-column)")
        metric = ns.get("metric")
        distance = normalize_metric(metric)
        if metric is not None and distance is None:
            warnings.append(f"{VDF_META}: unknown metric {metric!r}; pass --distance")
        dims = ns.get("dimensions")
        return {
            "files": files,
            "vector_hint": vcols[0],
            "id_hint": meta.get("id_column") or None,
            "distance": distance,
            "dim": dims if isinstance(dims, int) and dims > 0 else None,
            "warnings": warnings,
            "details": {"vdf_index": index_name, "vdf_namespace": ns.get("namespace", ""),
                        "exported_from": meta.get("exported_from"),
                        "model_name": ns.get("model_name")},
        }

    def _open(self, f: Path) -> Any:
        pq = require("pyarrow.parquet", "parquet", "Parquet")
        try:
            return pq.ParquetFile(f, memory_map=True)  # read-only map: no copy through read() buffers
        except Exception as e:  # ArrowInvalid, OSError: not parquet, truncated footer
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise SourceError(f"{f}: not a readable Parquet file ({msg}); is it truncated or another format?") from e

    def layout(self) -> dict[str, Any]:
        """Resolve files, vector/id columns, dimension and distance once."""
        if self._layout is not None:
            return self._layout
        root = check_exists(self.path)
        lay: dict[str, Any] = {"vector_hint": None, "id_hint": None, "distance": None, "dim": None,
                               "warnings": [], "details": {}}
        if root.is_dir() and (root / VDF_META).is_file():
            lay.update(self._vdf(root))
        elif root.is_dir():
            lay["files"] = parquet_files(root)
        else:
            lay["files"] = [root]
        files: list[Path] = lay["files"]
        if not files:
            raise SourceError(f"{self.path}: no .parquet files in this directory; nothing to migrate")
        pfs = [self._open(f) for f in files]
        schema = pfs[0].schema_arrow
        names = schema.names
        from cortex.snapshot.parquet_format import cortex_meta

        if (meta := cortex_meta(schema)) is not None:  # written by Cortex's lossless export (backup)
            lay["cortex"] = meta
            lay.update({k: lay[k] or meta.get(m) for k, m in (("vector_hint", "vector_column"),
                                                              ("id_hint", "id_column"), ("distance", "distance"))})
        vcol, vcols = pick_vector_column(schema, self.options.vector_column or lay["vector_hint"], str(files[0]))
        idcol = self.options.id_column or lay["id_hint"] or ("id" if "id" in names else None)
        if idcol is not None and idcol not in names:
            if self.options.id_column:
                raise SourceError(f"{files[0]}: no id column '{idcol}'; columns are: {', '.join(names)}")
            idcol = "id" if "id" in names else None
        if idcol is None:
            lay["warnings"].append("no 'id' column: ids are row numbers (0-based, across files in name order); "
                                   "pass --id-column to use a column")
        vtype = schema.field(vcol).type
        import pyarrow as pa

        fixed = vtype.list_size if pa.types.is_fixed_size_list(vtype) else None
        dim = fixed or lay["dim"] or self._first_dim(pfs, vcol)
        if lay["dim"] and fixed and lay["dim"] != fixed:
            lay["warnings"].append(f"{VDF_META} says {lay['dim']} dimensions but column '{vcol}' holds {fixed}")
        if self.options.dimensions and dim and self.options.dimensions != dim:
            raise SourceError(f"{self.path}: vectors in column '{vcol}' have {dim} dimensions, "
                              f"not {self.options.dimensions}; fix --dimensions")
        others = [c for c in vcols if c != vcol]
        if others:
            lay["warnings"].append(f"other vector columns are not migrated: {', '.join(others)}")
        all_names = list(dict.fromkeys(n for pf in pfs for n in pf.schema_arrow.names))  # union, in order
        payload_cols = [n for n in all_names
                        if n not in (vcol, idcol) and n not in others and not n.startswith("__index_level_")]
        for f, pf in zip(files[1:], pfs[1:], strict=True):
            for need in (vcol, idcol):
                if need and need not in pf.schema_arrow.names:
                    raise SourceError(f"{f}: has no column '{need}' (the first file {files[0].name} has); "
                                      "all files must share the vector and id columns")
        if lay["distance"] is None:
            lay["warnings"].append("Parquet does not record a distance metric; "
                                   "the default is used unless you pass --distance")
        counts = [pf.metadata.num_rows for pf in pfs]
        lay.update(files=files, vector_column=vcol, id_column=idcol, payload_columns=payload_cols, dim=dim,
                   counts=counts, dtype=str(vtype.value_type))
        if dim is None:
            raise SourceError(f"{self.path}: every vector in column '{vcol}' is null; nothing to migrate")
        self._layout = lay
        return lay

    @staticmethod
    def _first_dim(pfs: list[Any], vcol: str) -> int | None:
        """Length of the first non-null vector (list columns do not fix it in the schema)."""
        for pf in pfs:
            for rb in pf.iter_batches(batch_size=1024, columns=[vcol]):
                col = rb.column(0)
                if col.null_count == len(col):
                    continue
                valid = col.drop_null()
                offsets = valid.offsets.to_numpy()
                return int(offsets[1] - offsets[0])
        return None

    # -- contract ---------------------------------------------------------------------------------

    def info(self) -> SourceInfo:
        lay = self.layout()
        count = sum(lay["counts"])
        if count == 0:
            raise SourceError(f"{self.path}: the Parquet data has no rows; nothing to migrate")
        details = {"files": len(lay["files"]), "vector_column": lay["vector_column"],
                   "id_column": lay["id_column"], "vector_dtype": lay["dtype"], **lay["details"]}
        if self.scope:
            count = self.scope["rows"][1] - self.scope["rows"][0]
        return SourceInfo(kind=self.kind, name=self.path, dim=lay["dim"], distance=lay["distance"], count=count,
                          warnings=list(lay["warnings"]), details=details)

    def split(self, n: int) -> list[Any]:
        """Ranges of the dataset's global row numbers (files in order, then rows)."""
        return [{"rows": [lo, hi]} for lo, hi in even_ranges(sum(self.layout()["counts"]), n)]

    def batches(self, batch_size: int, resume: Any = None) -> Iterator[Batch]:
        lay = self.layout()
        files: list[Path] = lay["files"]
        vcol, idcol, pcols, dim = lay["vector_column"], lay["id_column"], lay["payload_columns"], lay["dim"]
        first, end = self.scope["rows"] if self.scope else (0, None)
        if resume:
            start_file, start_row = int(resume["file"]), int(resume["row"])
        else:  # the file and row of global row `first`
            start_file, start_row = 0, first
            while start_file < len(files) - 1 and start_row >= lay["counts"][start_file]:
                start_row -= lay["counts"][start_file]
                start_file += 1
        base = sum(lay["counts"][:start_file])  # global row number of the file's first row
        for fi in range(start_file, len(files)):
            if end is not None and base >= end:
                return
            f = files[fi]
            pf = self._open(f)
            row = start_row if fi == start_file else 0
            md = pf.metadata
            # Skip whole row groups before the resume row, then the rest of the rows.
            groups, first = [], 0
            acc = 0
            for g in range(md.num_row_groups):
                n = md.row_group(g).num_rows
                if acc + n > row:
                    if not groups:
                        first = acc
                    groups.append(g)
                acc += n
            skip = row - first
            present = set(pf.schema_arrow.names)
            fcols = [c for c in pcols if c in present]  # a payload column missing in this file is left out
            cols = [vcol] + ([idcol] if idcol else []) + fcols
            pos = first
            try:
                it = pf.iter_batches(batch_size=batch_size, row_groups=groups, columns=cols) if groups else iter(())
                for rb in it:
                    if skip:
                        cut = min(skip, rb.num_rows)
                        rb = rb.slice(cut)
                        skip -= cut
                        pos += cut
                        if rb.num_rows == 0:
                            continue
                    if end is not None and base + pos + rb.num_rows > end:
                        rb = rb.slice(0, max(0, end - base - pos))
                        if rb.num_rows == 0:
                            return
                    yield self._filtered(rb, functools.partial(self._batch, f=f, fi=fi, pos=pos, base=base,
                                                               vcol=vcol, idcol=idcol, pcols=fcols, dim=dim,
                                                               span=rb.num_rows))
                    pos += rb.num_rows
            except SourceError:
                raise
            except Exception as e:  # corrupt page / decompression failure
                msg = str(e).splitlines()[0] if str(e) else type(e).__name__
                raise SourceError(f"{f}: cannot read rows after row {pos} ({msg}); the file looks corrupt") from e
            base += lay["counts"][fi]

    def push_down_where(self, expr: Any) -> bool:
        """--where as an arrow mask over each record batch, before its rows are decoded (payload columns)."""
        from cortex.where import arrow_pushable

        lay = self.layout()
        schema = self._open(lay["files"][0]).schema_arrow
        cols = [c for c in lay["payload_columns"] if c in schema.names]
        self._where = expr if arrow_pushable(expr, schema_subset(schema, cols)) else None
        return self._where is not None

    def _filtered(self, rb: Any, make: Any) -> Batch:
        return where_filtered(getattr(self, "_where", None), rb, make)

    def _batch(self, rb: Any, f: Path, fi: int, pos: int, base: int, vcol: str, idcol: str | None,
               pcols: list[str], dim: int, rows: np.ndarray | None = None, span: int | None = None) -> Batch:
        n = rb.num_rows
        offs = rows if rows is not None else np.arange(n)  # each row's place in the file's batch
        vecs, bad = list_to_matrix(rb.column(vcol), dim)
        if idcol:
            ids, nulls = ids_from_arrow(rb.column(idcol))
        else:
            ids, nulls = (base + pos + offs).astype(np.int64), None
        payloads = None
        if pcols:
            cols = [column_values(rb.column(c)) for c in pcols]
            payloads = [dict(zip(pcols, vals, strict=True)) for vals in zip(*cols, strict=True)]
            if (self._layout or {}).get("cortex"):
                from cortex.snapshot.parquet_format import decode_payloads

                payloads = decode_payloads(payloads, self._layout["cortex"])
        if nulls is not None:
            bad_rows = {i for i, _ in bad}
            bad += [(i, f"id column '{idcol}' is null") for i in np.flatnonzero(nulls).tolist()
                    if i not in bad_rows]
        rejected: list[Rejected] = []
        if bad:
            bad.sort()
            drop = np.zeros(n, dtype=bool)
            for i, reason in bad:
                drop[i] = True
                rid = ids[i].item() if isinstance(ids, np.ndarray) else ids[i]
                vec = rb.column(vcol)[i].as_py()
                raw = {"id": rid, "vector": json_value(vec), "payload": payloads[i] if payloads else {}}
                rejected.append(Rejected(f"{f}:{pos + int(offs[i])}", reason, id=rid, raw=raw))
            keep = np.flatnonzero(~drop)
            # vecs already holds only the rows with a good vector; drop rows bad for other reasons too
            vec_good = np.ones(n, dtype=bool)
            vec_good[[i for i, r in bad if not r.startswith("id column")]] = False
            if vecs.shape[0] != len(keep):
                vecs = vecs[~drop[vec_good]]
            ids = ids[keep] if isinstance(ids, np.ndarray) else [ids[i] for i in keep.tolist()]
            if payloads is not None:
                payloads = [payloads[i] for i in keep.tolist()]
        return Batch(ids=ids, vectors=vecs, payloads=payloads, rejected=rejected,
                     cursor={"file": fi, "row": pos + (span if span is not None else n)})
