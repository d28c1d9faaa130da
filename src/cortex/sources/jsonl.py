"""JSONL of ``{"id", "vector", "payload"}`` per line: the migration guide's export format.

Plain, gzip (``.jsonl.gz``) or zstandard (``.jsonl.zst``), read transparently; a UTF-8 byte
order mark at the start is ignored; integer ids beyond 64 bits are kept exactly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from cortex import compressed
from cortex.errors import SourceError
from cortex.sources.base import Batch, Rejected, Source, SourceInfo, check_exists

BOM = b"\xef\xbb\xbf"
SUFFIXES = (".jsonl", ".ndjson")


def count_lines(path: str, start: int = 0, end: int | None = None) -> int:
    """Lines of the file (or of its bytes ``start..end``), a last line without a newline included."""
    n = 0
    last = b"\n"
    with compressed.open_read(path, start) as f:
        left = end - start if end is not None else None
        while chunk := f.read(1 << 24 if left is None else min(1 << 24, left)):
            n += chunk.count(b"\n")
            last = chunk[-1:]
            if left is not None:
                left -= len(chunk)
                if left <= 0:
                    break
    return n + (last != b"\n")


def loads(line: bytes) -> Any:
    """One JSON line; an integer id beyond 64 bits (which orjson reads as a float) is kept exact."""
    obj = orjson.loads(line)
    if isinstance(obj, dict) and isinstance(obj.get("id"), float):
        exact = json.loads(line).get("id")  # the stdlib parser keeps big integers as int
        if isinstance(exact, int):
            obj["id"] = exact
    return obj


def parse_record(obj: Any, where: str) -> tuple[Any, Any, dict[str, Any]]:
    """(id, vector, payload) of one JSON object, or ValueError with what is wrong."""
    if not isinstance(obj, dict):
        raise ValueError("line is not a JSON object")
    if "id" not in obj or obj["id"] is None:
        raise ValueError('missing "id"')
    vec = obj.get("vector")
    if not isinstance(vec, list) or not vec:
        raise ValueError('missing or empty "vector" (expected a list of numbers)')
    payload = obj.get("payload") or {}
    if not isinstance(payload, dict):
        raise ValueError('"payload" must be a JSON object')
    return obj["id"], vec, payload


class JsonlSource(Source):
    kind = "jsonl"
    description = 'JSONL lines of {"id", "vector", "payload"}, plain, .gz or .zst (the migration guide\'s export)'

    @classmethod
    def detect(cls, path: str) -> bool:
        p = Path(path)
        if not p.is_file():
            return False
        suffix = compressed.inner_suffix(p)
        if suffix in SUFFIXES:
            return True
        if suffix == ".json":
            try:
                with compressed.open_read(p) as f:
                    head = f.readline(1 << 20).removeprefix(BOM)
                obj = orjson.loads(head)
            except (orjson.JSONDecodeError, *compressed.read_errors()):
                return False
            return isinstance(obj, dict) and "vector" in obj
        return False

    def info(self) -> SourceInfo:
        check_exists(self.path)
        try:
            return self._info()
        except compressed.read_errors() as e:
            raise SourceError(f"{self.path}: cannot read the {compressed.codec(self.path) or 'file'} data ({e}); "
                              "is the file complete?") from e

    def _info(self) -> SourceInfo:
        dim = None
        with compressed.open_read(self.path) as f:
            for lineno, line in enumerate(f, 1):
                if lineno == 1:
                    line = line.removeprefix(BOM)
                if not line.strip():
                    continue
                try:
                    _, vec, _ = parse_record(loads(line), "")
                    dim = len(vec)
                    break
                except (orjson.JSONDecodeError, ValueError):
                    if lineno > 1000:
                        break
        count = count_lines(self.path, *(self.scope["bytes"] if self.scope else (0, None)))
        if count == 0 and not self.scope:
            raise SourceError(f"{self.path}: the file is empty; nothing to migrate")
        if dim is None:
            raise SourceError(
                f"{self.path}: no valid record in the first lines; "
                'expected one JSON object per line like {"id": 1, "vector": [...], "payload": {...}}'
            )
        return SourceInfo(kind=self.kind, name=self.path, dim=dim, count=count)

    def split(self, n: int) -> list[Any] | None:
        """Byte ranges of the file, each starting at a line start (with the line number there)."""
        if Path(self.path).suffix.lower() not in (".jsonl", ".ndjson", ".json"):
            return None  # compressed: no random access
        check_exists(self.path)
        size = Path(self.path).stat().st_size
        starts = [0]
        with open(self.path, "rb") as f:
            for k in range(1, n):
                at = max(size * k // n, starts[-1])
                if at > 0:
                    f.seek(at - 1)
                    f.readline()  # to the end of the line holding byte at-1: the next line starts after it
                    at = f.tell()
                starts.append(min(at, size))
            lines = [0] * n
            f.seek(0)
            pos = count = 0
            k = 1
            while k < n:
                chunk = f.read(1 << 24)
                if not chunk:
                    lines[k:] = [count] * (n - k)
                    break
                while k < n and starts[k] <= pos + len(chunk):
                    lines[k] = count + chunk.count(b"\n", 0, starts[k] - pos)
                    k += 1
                count += chunk.count(b"\n")
                pos += len(chunk)
        ends = [*starts[1:], size]
        return [{"bytes": [starts[k], ends[k]], "line": lines[k]} for k in range(n)]

    def batches(self, batch_size: int, resume: Any = None) -> Iterator[Batch]:
        check_exists(self.path)
        try:
            yield from self._batches(batch_size, resume)
        except compressed.read_errors() as e:
            raise SourceError(f"{self.path}: cannot read the {compressed.codec(self.path) or 'file'} data ({e}); "
                              "is the file complete?") from e

    def _batches(self, batch_size: int, resume: Any = None) -> Iterator[Batch]:
        lo, end = self.scope["bytes"] if self.scope else (0, None)
        offset, lineno = (resume["offset"], resume["line"]) if resume else (lo, self.scope["line"] if self.scope else 0)
        dim: int | None = None
        with compressed.open_read(self.path, offset) as f:
            ids: list[Any] = []
            vecs: list[list[float]] = []
            payloads: list[dict[str, Any]] = []
            locs: list[str] = []
            rejected: list[Rejected] = []
            for line in f:
                if end is not None and offset >= end:
                    break
                lineno += 1
                offset += len(line)
                where = f"{self.path}:{lineno}"
                if lineno == 1:
                    line = line.removeprefix(BOM)
                if line.strip():
                    try:
                        obj = loads(line)
                    except orjson.JSONDecodeError as e:
                        rejected.append(Rejected(where, f"malformed JSON ({e})", raw=line.decode("utf-8", "replace")))
                        obj = None
                    if obj is not None:
                        try:
                            rid, vec, payload = parse_record(obj, where)
                            dim = dim or len(vec)
                            if len(vec) != dim:
                                raise ValueError(f"vector has {len(vec)} dimensions, earlier records have {dim}")
                            ids.append(rid)
                            vecs.append(vec)
                            payloads.append(payload)
                            locs.append(where)
                        except ValueError as e:
                            rid = obj.get("id") if isinstance(obj, dict) else None
                            rejected.append(Rejected(where, str(e), id=rid, raw=obj))
                if len(ids) + len(rejected) >= batch_size:
                    yield self._batch(ids, vecs, payloads, locs, rejected, {"offset": offset, "line": lineno})
                    ids, vecs, payloads, locs, rejected = [], [], [], [], []
            if ids or rejected:
                yield self._batch(ids, vecs, payloads, locs, rejected, {"offset": offset, "line": lineno})

    @staticmethod
    def _batch(ids, vecs, payloads, locs, rejected, cursor) -> Batch:
        try:
            arr = np.asarray(vecs, dtype=np.float32) if vecs else np.empty((0, 0), np.float32)
        except (ValueError, TypeError):
            # Some vector holds a non-number: convert row by row and reject the bad ones.
            keep: list[int] = []
            rows = []
            for i, v in enumerate(vecs):
                try:
                    with np.errstate(over="ignore"):
                        rows.append(np.asarray(v, dtype=np.float32))
                    keep.append(i)
                except (ValueError, TypeError):
                    rejected.append(Rejected(locs[i], "vector holds a non-numeric value", id=ids[i],
                                             raw={"id": ids[i], "vector": v, "payload": payloads[i]}))
            ids = [ids[i] for i in keep]
            payloads = [payloads[i] for i in keep]
            locs = [locs[i] for i in keep]
            arr = np.stack(rows) if rows else np.empty((0, 0), np.float32)
        return Batch(ids=ids, vectors=arr, payloads=payloads, rejected=rejected, locations=locs, cursor=cursor)
