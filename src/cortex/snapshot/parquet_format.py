"""Lossless Parquet of any source: ``id``, ``vector`` (fixed-size list of float32), a column per payload key.

A payload key whose values are all of one JSON scalar type (int, float, str, bool) gets a typed
column; any other key (nested values, mixed types, explicit nulls) gets a string column holding
each value as JSON. A null cell means the key was absent from that point's payload. The schema
metadata key ``cortex`` records this (and the distance, dimension and column names), so Cortex's
Parquet reader gives back exactly the payloads it was given; pyarrow and every other Parquet
reader see ordinary typed columns.

Writing takes two passes over the source: one to learn the payload keys and their types, one to
write (record batch by record batch, bounded memory).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from cortex.errors import ConflictError, SourceError
from cortex.export_rows import good_rows, py_id, stream_export
from cortex.sources import open_source
from cortex.sources.base import SourceOptions

META_KEY = b"cortex"
FORMAT = 1
_INT64 = (-(2**63), 2**63 - 1)


@dataclass
class ParquetExportSummary:
    source: str
    output: str
    read: int = 0
    written: int = 0
    rejected: int = 0
    skipped: int = 0
    dead_letter: str | None = None
    seconds: float = 0.0
    bytes: int = 0
    format: str = "parquet"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int" if _INT64[0] <= v <= _INT64[1] else "json"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "str"
    return "json"


def _refuse_extra_vectors(batch: Any, source: str) -> None:
    if batch.sparse or batch.named:
        raise SourceError(f"{source}: has sparse or named vectors, which this Parquet layout does not hold; "
                          "back the data up after migrating with `cortex qdrant snapshot create`")


def _scan(src: Any, source: str, dim: int | None, batch_size: int) -> tuple[dict[str, str], str]:
    """Payload key -> column kind (int/float/str/bool/json), and the id kind (uint/int/str)."""
    keys: dict[str, set[str]] = {}
    ids: set[str] = set()
    for batch in src.batches(batch_size):
        _refuse_extra_vectors(batch, source)
        _, ok = good_rows(batch, dim)
        for i in np.flatnonzero(ok).tolist():
            rid = py_id(batch.ids[i])
            ids.add("str" if not isinstance(rid, int) else "int" if rid < 0 else "uint")
            pl = batch.payloads[i] if batch.payloads is not None else None
            for k, v in (pl or {}).items():
                keys.setdefault(k, set()).add(_kind(v))
    cols = {k: (next(iter(s)) if len(s) == 1 and "null" not in s else "json") for k, s in keys.items()}
    return cols, ("str" if "str" in ids else "int" if "int" in ids else "uint")


def _free_name(want: str, taken: set[str]) -> str:
    name = want
    while name in taken:
        name = "_" + name
    return name


def _schema(cols: dict[str, str], id_kind: str, dim: int, meta: dict[str, Any]) -> Any:
    import pyarrow as pa

    types = {"int": pa.int64(), "float": pa.float64(), "str": pa.string(), "bool": pa.bool_(), "json": pa.string()}
    id_type = {"uint": pa.uint64(), "int": pa.int64(), "str": pa.string()}[id_kind]
    fields = [pa.field(meta["id_column"], id_type, nullable=False),
              pa.field(meta["vector_column"], pa.list_(pa.float32(), dim), nullable=False)]
    fields += [pa.field(k, types[t]) for k, t in cols.items()]
    return pa.schema(fields, metadata={META_KEY: json.dumps(meta).encode()})


def _record_batch(schema: Any, meta: dict[str, Any], cols: dict[str, str], ids: list[Any], vecs: np.ndarray,
                  payloads: list[dict[str, Any] | None]) -> Any:
    import pyarrow as pa

    dim = vecs.shape[1]
    for pl in payloads:
        if pl and not pl.keys() <= cols.keys():
            new = sorted(set(pl) - set(cols))
            raise ConflictError(f"payload field(s) {', '.join(map(repr, new))} appeared while the source was read "
                                "twice; the source is being written to: export again when it is quiet")
    arrays = [pa.array(ids if meta["id_kind"] != "str" else [str(i) for i in ids], type=schema.field(0).type),
              pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(vecs).reshape(-1)), dim)]
    for k, t in cols.items():
        vals = [(pl or {}).get(k, _ABSENT) for pl in payloads]
        if t == "json":
            cells = [None if v is _ABSENT else orjson.dumps(v).decode() for v in vals]
        else:
            cells = [None if v is _ABSENT else v for v in vals]
            if any(c is not None and _kind(c) != t for c in cells):
                raise ConflictError(f"payload field '{k}' changed type while the source was read twice; "
                                    "the source is being written to: export again when it is quiet")
        arrays.append(pa.array(cells, type=schema.field(k).type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


_ABSENT = object()


def write_parquet(source: str, output: str | Path, *, source_type: str | None = None,
                  options: SourceOptions | None = None, batch_size: int = 1000,
                  progress: Any = None) -> ParquetExportSummary:
    """Export ``source`` to one Parquet file at ``output`` (written to ``.partial`` and renamed)."""
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    out = Path(output)
    summary = ParquetExportSummary(source=source, output=str(out))
    with open_source(source, source_type, options) as src:
        info = src.info()
        if not info.dim:
            raise SourceError(f"{source}: the vector dimension is unknown; nothing to export")
        cols, id_kind = _scan(src, source, info.dim, batch_size)
        taken = set(cols)
        meta = {"format": FORMAT, "source": source, "kind": info.kind, "distance": info.distance, "dim": info.dim,
                "id_column": _free_name("id", taken), "id_kind": id_kind,
                "vector_column": _free_name("vector", taken), "json_columns": [k for k, t in cols.items()
                                                                              if t == "json"],
                "null_means_absent": True}
        schema = _schema(cols, id_kind, info.dim, meta)

        @contextmanager
        def parquet(tmp: Path) -> Iterator[Any]:
            with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
                def write(batch: Any, vecs: np.ndarray, keep: list[int]) -> None:
                    ids = [py_id(batch.ids[i]) for i in keep]
                    pls = [batch.payloads[i] if batch.payloads is not None else None for i in keep]
                    writer.write_batch(_record_batch(schema, meta, cols, ids, vecs[keep], pls))
                yield write

        stream_export(src, out, summary, parquet, dim=info.dim, batch_size=batch_size, progress=progress,
                      check=lambda batch: _refuse_extra_vectors(batch, source))
    summary.bytes = out.stat().st_size
    summary.seconds = round(time.perf_counter() - t0, 3)
    return summary


# -- reading back (used by sources/parquet.py) -------------------------------------------------
def cortex_meta(schema: Any) -> dict[str, Any] | None:
    """The ``cortex`` schema metadata of a file this module wrote, else None."""
    raw = (schema.metadata or {}).get(META_KEY)
    if not raw:
        return None
    try:
        meta = json.loads(raw)
    except ValueError:
        return None
    return meta if isinstance(meta, dict) and meta.get("format") == FORMAT else None


def decode_payloads(payloads: list[dict[str, Any]] | None, meta: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Payloads as they were exported: null cells dropped (absent keys), JSON columns parsed."""
    if payloads is None:
        return None
    json_cols = set(meta.get("json_columns") or ())
    return [{k: (orjson.loads(v) if k in json_cols else v) for k, v in pl.items() if v is not None}
            for pl in payloads]


def iter_rows(path: str | Path) -> Iterator[dict[str, Any]]:
    """Rows of a Cortex Parquet export as ``{id, vector, payload}`` (for tests and tools)."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    meta = cortex_meta(pf.schema_arrow) or {}
    idc, vc = meta.get("id_column", "id"), meta.get("vector_column", "vector")
    for rb in pf.iter_batches():
        d = rb.to_pydict()
        pcols = [c for c in d if c not in (idc, vc)]
        pls = decode_payloads([{c: d[c][i] for c in pcols} for i in range(rb.num_rows)], meta) or []
        for i in range(rb.num_rows):
            yield {"id": d[idc][i], "vector": d[vc][i], "payload": pls[i]}
