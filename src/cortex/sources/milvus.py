"""A Milvus Lite database (the ``.db`` path given to ``MilvusClient``).

milvus-lite 3.x stores a directory (``LOCK``, ``collections/<name>/schema.json``,
parquet data and a WAL); milvus-lite 2.x stored one SQLite file.  Each version reads only
its own format, so the reader checks the format against the installed milvus-lite first
and names the version to install when they differ.

Loading a collection writes index files into the database, so the reader copies it to a
temporary ``<name>.db`` and opens the copy (removed in :meth:`close`).  It lists the
primary keys (one pk-only query, or the pk-only iterator where the window is capped),
sorts them, then fetches rows with ``get`` by chunks of 5,000.  Measured with
milvus-lite 3.2.2: 200k x 32-d rows read in 14 s this way; the full query iterator took
81 s at 16,384 rows per call and ~2.3 s per call at 1,000 rows (its per-call cost grows
with the collection).  The sorted pk list also makes the resume cursor exact:
``{"after": last pk}``.
"""

from __future__ import annotations

import bisect
import contextlib
import importlib.metadata
import logging
import shutil
import sqlite3
import tempfile
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from cortex.errors import SourceError
from cortex.sources.base import Batch, Source, SourceInfo, check_exists, plain, require

COLLECTION_FLAG = "--source-collection"  # the CLI flag that sets SourceOptions.collection
VECTOR_FLAG = "--vector-column"
GET_CHUNK = 5000  # rows per get(); Milvus caps expression and message sizes
PK_PAGE = 16384  # Milvus' largest query window
SQLITE_MAGIC = b"SQLite format 3\x00"
_METRICS = {"COSINE": "cosine", "IP": "dot", "L2": "euclid", "HAMMING": "manhattan"}


def lite_format(path: Path) -> int | None:
    """3 for a milvus-lite 3.x directory, 2 for a 2.x SQLite file, None otherwise (cheap)."""
    if path.is_dir():
        cols = path / "collections"
        if cols.is_dir() and ((path / "LOCK").exists() or (path / "databases").is_dir()):
            return 3
        return None
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as fh:
            if fh.read(16) != SQLITE_MAGIC:
                return None
        con = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
        try:
            row = con.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='collection_meta'").fetchone()
        finally:
            con.close()
    except (OSError, sqlite3.Error):
        return None
    return 2 if row else None


def _lib_version() -> str:
    try:
        return importlib.metadata.version("milvus-lite")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


@contextlib.contextmanager
def _quiet_pymilvus() -> Iterator[None]:
    """The pk iterator logs a harmless mvccTs warning per call against Milvus Lite."""
    log = logging.getLogger("pymilvus")
    old = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(old)


def _held_by_other_process(lock: Path) -> bool:
    """True when a running Milvus Lite holds the database (probe only, never kept)."""
    try:
        import fcntl
    except ImportError:  # Windows
        return False
    try:
        with open(lock, "rb") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(fh, fcntl.LOCK_UN)
    except OSError:
        return False
    return False


class MilvusLiteSource(Source):
    kind = "milvus"
    extra = "milvus"
    description = "a Milvus Lite database (.db directory or file), read from a temporary copy"

    def __init__(self, path: str, options: Any = None) -> None:
        super().__init__(path, options)
        self._tmp: str | None = None
        self._uri: str | None = None
        self._client: Any = None
        self._name: str | None = None
        self._schema: dict[str, Any] = {}
        self._pks: list[Any] | np.ndarray | None = None
        self._warnings: list[str] = []

    @classmethod
    def detect(cls, path: str) -> bool:
        return lite_format(Path(path)) is not None

    # -- opening ---------------------------------------------------------------------

    def _check_format(self) -> Path:
        p = check_exists(self.path)
        fmt = lite_format(p)
        lib = _lib_version()
        major = lib.split(".")[0]
        if fmt is None:
            raise SourceError(f"{self.path}: not a Milvus Lite database (expected the .db directory written by "
                              "milvus-lite 3.x, or the .db SQLite file of milvus-lite 2.x)")
        if major.isdigit() and int(major) != fmt:
            if fmt == 2:
                raise SourceError(f"{self.path}: a milvus-lite 2.x database (one SQLite file), and the installed "
                                  f"milvus-lite {lib} reads only its own directory format; run cortex where "
                                  "milvus-lite 2.x is installed: pip install 'milvus-lite>=2.4,<3' 'pymilvus>=2.4,<3'")
            raise SourceError(f"{self.path}: a milvus-lite 3.x database (a directory), and the installed "
                              f"milvus-lite {lib} reads only 2.x files; pip install 'milvus-lite>=3' 'pymilvus>=3'")
        return p

    def _open(self) -> Any:
        if self._client is not None:
            return self._client
        src = self._check_format()
        pymilvus = require("pymilvus", self.extra, "Milvus Lite")
        require("milvus_lite", self.extra, "Milvus Lite")
        if src.is_dir() and _held_by_other_process(src / "LOCK"):
            self._warnings.append(f"{self.path} is open in another process; the copy holds what it had flushed")
        self._tmp = tempfile.mkdtemp(prefix="cortex-milvus-")
        # removed by close(), or when this object is collected / the interpreter exits
        self._cleanup = weakref.finalize(self, shutil.rmtree, self._tmp, True)
        copy = Path(self._tmp) / "source.db"  # pymilvus treats only *.db URIs as Milvus Lite
        try:
            if src.is_dir():
                shutil.copytree(src, copy, ignore=shutil.ignore_patterns("LOCK"))
            else:
                shutil.copy2(src, copy)
            self._uri = str(copy)
            with _quiet_pymilvus():
                self._client = pymilvus.MilvusClient(self._uri)
        except Exception as e:  # pymilvus/milvus-lite raise several kinds; all mean "cannot open"
            why = self._why(e)
            self.close()
            raise SourceError(f"{self.path}: milvus-lite {_lib_version()} cannot open this database "
                              f"({why}); is it intact?") from e
        self._warnings.append(f"read from a temporary copy of {self.path} ({self._tmp}): loading a Milvus Lite "
                              "collection writes index files, so the original is never opened")
        return self._client

    def _why(self, e: BaseException) -> str:
        return _short(e, self._tmp, self.path)

    def _collection(self) -> str:
        if self._name is not None:
            return self._name
        client = self._open()
        try:
            names = sorted(client.list_collections())
        except Exception as e:
            raise SourceError(f"{self.path}: milvus-lite {_lib_version()} cannot list the collections "
                              f"({self._why(e)}); the database is corrupt or was written by another "
                              "version") from e
        want = self.options.collection
        if not names:
            raise SourceError(f"{self.path}: the Milvus Lite database holds no collection; nothing to migrate")
        if want is None:
            if len(names) > 1:
                raise SourceError(f"{self.path}: the Milvus Lite database holds {len(names)} collections "
                                  f"({', '.join(names)}); migrate one at a time with {COLLECTION_FLAG} NAME")
            want = names[0]
        elif want not in names:
            raise SourceError(f"{self.path}: no Milvus collection '{want}'; it holds: {', '.join(names)}")
        try:
            client.load_collection(want)
            self._schema = client.describe_collection(want)
        except Exception as e:
            raise SourceError(f"{self.path}: cannot load Milvus collection '{want}' ({self._why(e)})") from e
        self._name = want
        return want

    def _fields(self) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]], list[str]]:
        """(primary key field, migrated vector field, other vector fields, warnings)."""
        from pymilvus import DataType

        name = self._collection()
        fields = self._schema.get("fields", [])
        pk = next((f for f in fields if f.get("is_primary")), None)
        if pk is None:
            raise SourceError(f"{self.path}: Milvus collection '{name}' has no primary key field")
        dense_types = {DataType.FLOAT_VECTOR, DataType.FLOAT16_VECTOR, DataType.BFLOAT16_VECTOR,
                       DataType.BINARY_VECTOR}
        if hasattr(DataType, "INT8_VECTOR"):
            dense_types.add(DataType.INT8_VECTOR)
        dense = [f for f in fields if f.get("type") in dense_types]
        sparse = [f for f in fields if f.get("type") == DataType.SPARSE_FLOAT_VECTOR]
        warnings: list[str] = []
        want = self.options.vector_column
        if want is not None:
            vec = next((f for f in dense if f["name"] == want), None)
            if vec is None:
                raise SourceError(f"{self.path}: '{want}' is not a dense vector field of '{name}'; dense vector "
                                  f"fields: {', '.join(f['name'] for f in dense) or 'none'}")
        elif dense:
            vec = dense[0]
            if len(dense) > 1:
                warnings.append(f"collection '{name}' has {len(dense)} dense vector fields; migrating "
                                f"'{vec['name']}' (choose another with {VECTOR_FLAG})")
        else:
            kinds = ", ".join(f"{f['name']} ({f.get('type')})" for f in sparse) or "none"
            raise SourceError(f"{self.path}: Milvus collection '{name}' has no dense vector field (vector fields: "
                              f"{kinds}); sparse-only collections are not supported")
        others = [f for f in dense + sparse if f["name"] != vec["name"]]
        for f in others:
            if f.get("type") != DataType.SPARSE_FLOAT_VECTOR:
                warnings.append(f"vector field '{f['name']}' is not migrated")
        for fn_name, field in self._bm25_outputs().items():
            warnings.append(f"sparse field '{field}' is the output of Milvus BM25 function '{fn_name}': it arrives as "
                            "a Qdrant sparse vector with the IDF modifier; its values are term frequencies of "
                            "Milvus' hashed analyzer tokens, so queries need the same tokens, and Qdrant scores "
                            "TF x IDF without BM25's length normalization")
        if vec.get("type") == DataType.BINARY_VECTOR:
            warnings.append(f"'{vec['name']}' is a BINARY_VECTOR: each bit becomes a 0/1 float dimension "
                            "(Qdrant has no binary vector type); manhattan distance on them equals Hamming")
        elif vec.get("type") in (DataType.FLOAT16_VECTOR, DataType.BFLOAT16_VECTOR):
            warnings.append(f"'{vec['name']}' holds {vec['type'].name.split('_')[0].lower()} values; they are "
                            "converted exactly to float32")
        return pk, vec, others, warnings

    def _bm25_outputs(self) -> dict[str, str]:
        """{BM25 function name: its sparse output field} from the schema."""
        from pymilvus import FunctionType

        out = {}
        for fn in self._schema.get("functions") or []:
            kind = fn.get("type")
            if kind == FunctionType.BM25 or str(getattr(kind, "name", kind)).upper() == "BM25":
                for field in fn.get("output_field_names") or []:
                    out[str(fn.get("name"))] = field
        return out

    def _metric(self, vec_field: str) -> str | None:
        client, name = self._open(), self._collection()
        try:
            for idx in client.list_indexes(name, field_name=vec_field) or []:
                desc = client.describe_index(name, idx) or {}
                if desc.get("field_name", vec_field) == vec_field and desc.get("metric_type"):
                    return str(desc["metric_type"]).upper()
        except Exception:  # no index: Milvus then uses no metric at all; reported below
            return None
        return None

    def _count(self) -> int:
        client, name = self._open(), self._collection()
        try:
            rows = client.query(name, filter="", output_fields=["count(*)"])
            return int(rows[0]["count(*)"])
        except Exception:
            return int(client.get_collection_stats(name).get("row_count", 0))

    # -- contract --------------------------------------------------------------------

    def info(self) -> SourceInfo:
        name = self._collection()
        pk, vec, others, warnings = self._fields()
        count = self._count()
        if count == 0:
            raise SourceError(f"{self.path}: Milvus collection '{name}' is empty; nothing to migrate")
        metric = self._metric(vec["name"])
        distance = _METRICS.get(metric or "")
        warnings = self._warnings + warnings
        if metric is None:
            warnings.append(f"no index on '{vec['name']}' records a metric; pass --distance")
        elif distance is None:
            warnings.append(f"Milvus metric {metric} has no Qdrant equivalent; pass --distance")
        if metric == "L2":
            warnings.append("Milvus' L2 is the squared euclidean distance; Qdrant's euclid is its square root "
                            "(same ranking)")
        dim = int(vec.get("params", {}).get("dim", 0))
        from pymilvus import DataType

        bm25 = set(self._bm25_outputs().values())
        return SourceInfo(kind=self.kind, name=f"{self.path}#{name}", dim=dim or None, distance=distance,
                          count=count, warnings=warnings, lossy=False,
                          details={"collection": name, "primary_key": pk["name"], "vector_field": vec["name"],
                                   "vector_type": DataType(vec["type"]).name, "metric": metric,
                                   "milvus_lite": _lib_version(), "sparse_vectors": {
                                       f["name"]: {"modifier": "idf" if f["name"] in bm25 else None}
                                       for f in others if f.get("type") == DataType.SPARSE_FLOAT_VECTOR}})

    def _primary_keys(self, pk_name: str, is_int: bool) -> list[Any] | np.ndarray:
        """Every primary key, sorted (ints as an int64 array).

        One query when the server allows a window that large (milvus-lite 3: 3.7 s for 200k
        keys), else the pk-only iterator (8.0 s for 200k keys).
        """
        if self._pks is not None:
            return self._pks
        client, name = self._open(), self._collection()
        out: list[Any] = []
        with _quiet_pymilvus():
            try:
                rows = client.query(name, filter="", output_fields=[pk_name], limit=max(1, self._count()))
                out = [r[pk_name] for r in rows]
            except Exception:  # Milvus 2.x caps limit + offset at 16,384
                it = client.query_iterator(name, batch_size=PK_PAGE, filter="", output_fields=[pk_name])
                try:
                    while rows := it.next():
                        out.extend(r[pk_name] for r in rows)
                finally:
                    it.close()
        self._pks = np.sort(np.asarray(out, dtype=np.int64)) if is_int else sorted(out)
        return self._pks

    def batches(self, batch_size: int, resume: Any = None) -> Iterator[Batch]:
        from pymilvus import DataType

        client, name = self._open(), self._collection()
        pk, vec, others, _ = self._fields()
        is_int = pk.get("type") == DataType.INT64
        pks = self._primary_keys(pk["name"], is_int)
        start = 0
        if resume:
            if resume.get("collection") != name:
                raise SourceError(f"{self.path}: the checkpoint is for Milvus collection "
                                  f"'{resume.get('collection')}', not '{name}'")
            start = bisect.bisect_right(pks, resume["after"])
        dim = int(vec.get("params", {}).get("dim", 0))
        sparse_names = [f["name"] for f in others if f.get("type") == DataType.SPARSE_FLOAT_VECTOR]
        drop = {f["name"] for f in others}
        page = max(1, min(batch_size, GET_CHUNK))
        for s in range(start, len(pks), page):
            chunk = pks[s : s + page]
            keys = chunk.tolist() if isinstance(chunk, np.ndarray) else list(chunk)
            try:
                rows = client.get(name, ids=keys, output_fields=["*"])
            except Exception as e:
                raise SourceError(f"{self.path}: reading Milvus collection '{name}' failed "
                                  f"({self._why(e)})") from e
            rows = sorted(rows, key=lambda r: r[pk["name"]])
            ids = [r.pop(pk["name"]) for r in rows]
            vecs = _vectors([r.pop(vec["name"]) for r in rows], vec["type"], dim)
            sparse = {n: [_sparse(r.pop(n, None)) for r in rows] for n in sparse_names} or None
            payloads = [_payload(r, drop) for r in rows]
            yield Batch(ids=np.asarray(ids, dtype=np.int64) if is_int else ids, vectors=vecs, payloads=payloads,
                        locations=[f"{name}:{i}" for i in ids], sparse=sparse,
                        cursor={"collection": name, "after": keys[-1]})

    def search(self, queries: np.ndarray, k: int) -> tuple[list[list[Any]], np.ndarray]:
        """Milvus search; scores in Qdrant's convention for the mapped distance.

        COSINE -> cosine similarity, IP -> dot product, L2 -> euclidean distance (square
        root of Milvus' squared distance; smaller is closer).
        """
        from pymilvus import DataType

        client, name = self._open(), self._collection()
        pk, vec, _, _ = self._fields()
        if vec.get("type") != DataType.FLOAT_VECTOR:
            raise NotImplementedError("native search is used for FLOAT_VECTOR fields only")
        metric = self._metric(vec["name"])
        q = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        res = client.search(name, data=q.tolist(), anns_field=vec["name"], limit=k, output_fields=[],
                            search_params={"metric_type": metric} if metric else {})
        scores = np.full((len(q), k), np.nan, dtype=np.float64)
        ids: list[list[Any]] = []
        for i, hits in enumerate(res):
            row_ids = [_hit_id(h, pk["name"]) for h in hits]
            d = np.asarray([h["distance"] for h in hits], dtype=np.float64)
            scores[i, : len(d)] = np.sqrt(np.maximum(d, 0.0)) if metric == "L2" else d
            ids.append(row_ids)
        return ids, scores

    def close(self) -> None:
        client, self._client = self._client, None
        self._name, self._pks = None, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
        if self._uri is not None:
            with contextlib.suppress(Exception):  # stop the in-process (3.x) or child (2.x) server
                from milvus_lite.server_manager import server_manager_instance

                server_manager_instance.release_server(self._uri)
            self._uri = None
        if self._tmp is not None:
            self._cleanup()  # rmtree, once
            self._tmp = None


def _short(e: BaseException, tmp: str | None = None, path: str | None = None) -> str:
    """One line from a pymilvus/milvus-lite error, naming the user's path rather than the copy."""
    msg = getattr(e, "message", None) or str(e)
    text = str(msg).strip().splitlines()
    line = f"{type(e).__name__}: {text[0] if text else ''}"
    if tmp and path:
        line = line.replace(str(Path(tmp) / "source.db"), path)
    return line[:300]


def _hit_id(hit: Any, pk_name: str) -> Any:
    """pymilvus 3 keys a hit by the pk field name; 2.x by "id"."""
    for key in (pk_name, "id"):
        with contextlib.suppress(KeyError, TypeError):
            v = hit[key]
            if v is not None:
                return v
    return getattr(hit, "id", None)


def _bytes(v: Any) -> bytes:
    """pymilvus returns 16-bit and binary vectors as bytes, or a one-element list of bytes."""
    if isinstance(v, (bytes, bytearray)):
        return bytes(v)
    if isinstance(v, np.ndarray):
        return v.tobytes()
    if isinstance(v, (list, tuple)) and len(v) == 1 and isinstance(v[0], (bytes, bytearray)):
        return bytes(v[0])
    raise ValueError(f"unexpected vector value of type {type(v).__name__}")


def _vectors(values: list[Any], dtype: Any, dim: int) -> np.ndarray:
    from pymilvus import DataType

    n = len(values)
    if n == 0:
        return np.empty((0, dim), np.float32)
    if dtype == DataType.FLOAT_VECTOR:
        return np.asarray(values, dtype=np.float32)
    if dtype == DataType.BINARY_VECTOR:
        raw = np.frombuffer(b"".join(_bytes(v) for v in values), dtype=np.uint8).reshape(n, -1)
        return np.unpackbits(raw, axis=1)[:, :dim].astype(np.float32)
    if dtype == DataType.FLOAT16_VECTOR:
        if isinstance(values[0], (list, np.ndarray)) and not isinstance(values[0][0], (bytes, bytearray)):
            return np.asarray(values, dtype=np.float32)
        return np.frombuffer(b"".join(_bytes(v) for v in values), dtype=np.float16).reshape(n, dim).astype(np.float32)
    if dtype == DataType.BFLOAT16_VECTOR:
        if isinstance(values[0], (list, np.ndarray)) and not isinstance(values[0][0], (bytes, bytearray)):
            return np.asarray(values, dtype=np.float32)
        raw = np.frombuffer(b"".join(_bytes(v) for v in values), dtype=np.uint16).reshape(n, dim)
        return (raw.astype(np.uint32) << 16).view(np.float32)
    # INT8_VECTOR and anything numeric
    if isinstance(values[0], (bytes, bytearray)) or (
            isinstance(values[0], (list, tuple)) and values[0] and isinstance(values[0][0], (bytes, bytearray))):
        return np.frombuffer(b"".join(_bytes(v) for v in values), dtype=np.int8).reshape(n, dim).astype(np.float32)
    return np.asarray(values, dtype=np.float32)


def _sparse(v: Any) -> tuple[list[int], list[float]] | None:
    """A Milvus sparse row ({index: value}) as (indices, values) sorted by index; None when the row has none."""
    if v is None:
        return None
    if not v:
        return [], []
    items = sorted((int(k), float(x)) for k, x in dict(v).items())
    return [k for k, _ in items], [x for _, x in items]


def _payload(row: dict[str, Any], drop: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in row.items():
        if k in drop:
            continue
        if k == "$meta" and isinstance(v, dict):  # dynamic fields, when not already flattened
            out.update({str(mk): plain(mv) for mk, mv in v.items()})
        else:
            out[k] = plain(v)
    return out
