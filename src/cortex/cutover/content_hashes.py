"""Per-point content hashes, kept on disk in sorted columnar files (24 bytes per point).

What a sync compares.  Each point Cortex writes gets a 64-bit content hash of exactly what
was written: the float32 vector bytes, the canonical (key-sorted) JSON of the payload and any
sparse / named vectors.  A collection's state is two sorted, memory-mapped files:

* ``<base>.k``: the 64-bit id keys (``cortex.seen_ids.id_keys``: the int id, or the low half of
  the UUID), sorted, unique;
* ``<base>.v``: per key, ``(hi, h)``: the UUID's high half (0 for int ids) and the content hash,
  whose top bit says whether the id is a UUID, so a deleted point's full id can be rebuilt.

That is 24 bytes per point (100M points: 2.4 GB on disk, memory-mapped, never loaded whole).
States are built from an unsorted stream by :class:`StateWriter`: sorted runs of at most
``RUN`` entries on disk, then a chunked k-way merge (the last entry of an id wins, as the
pipeline's "last one wins" for duplicate ids).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson

ENTRY = np.dtype([("k", "<u8"), ("hi", "<u8"), ("h", "<u8")])
ENTRY_BYTES = ENTRY.itemsize  # 24
RUN = 2_000_000  # entries per sorted run (48 MB)
CHUNK = 1 << 19  # entries per merge / diff step
UUID_FLAG = np.uint64(1 << 63)
_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_JSON = orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
_MULT = (np.random.default_rng(0x5EED).integers(0, 2**62, size=8192, dtype=np.uint64) * np.uint64(2)
         + np.uint64(1))  # odd per-position multipliers


def _ext(base: Path, ext: str) -> Path:
    return base.with_name(base.name + ext)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer, element-wise on uint64 (in place)."""
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def vector_hashes(vectors: np.ndarray) -> np.ndarray:
    """A 64-bit hash per row of the float32 bytes (vectorized: each word mixed, weighted, summed)."""
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    n, d = v.shape if v.ndim == 2 else (len(v), 0)
    if d % 2:
        v = np.concatenate([v, np.zeros((n, 1), np.float32)], axis=1)
    w = v.view(np.uint64).copy()
    m = w.shape[1]
    mult = np.resize(_MULT, m) if m > len(_MULT) else _MULT[:m]
    with np.errstate(over="ignore"):
        w ^= w >> np.uint64(29)  # one xorshift-multiply per word (non-linear), the full mix once per row
        w *= np.uint64(0xBF58476D1CE4E5B9)
        w ^= w >> np.uint64(32)
        w *= mult
        h = w.sum(axis=1, dtype=np.uint64) ^ np.uint64(d)
    return _mix(h)


def _bytes_hashes(items: list[bytes]) -> np.ndarray:
    """A 64-bit hash per byte string: short ones (<= 2 KB) padded into one matrix and hashed as vectors are
    (with their length), longer ones with blake2b."""
    n = len(items)
    longest = max(map(len, items), default=0)
    if n and longest <= 2048:
        width = (longest + 8) // 8 * 8  # at least one zero byte of padding: "a" and "a\0" differ by length too
        rows = np.frombuffer(b"".join([b.ljust(width, b"\0") for b in items]), dtype=np.uint64).reshape(n, -1)
        lengths = np.fromiter(map(len, items), dtype=np.uint64, count=n)
        w = rows.copy()
        with np.errstate(over="ignore"):
            _mix(w)
            w *= _MULT[: w.shape[1]]
            h = w.sum(axis=1, dtype=np.uint64) ^ _mix(lengths + np.uint64(0x51ED27))
        return _mix(h)
    return np.fromiter((int.from_bytes(hashlib.blake2b(b, digest_size=8).digest(), "little") for b in items),
                       dtype=np.uint64, count=len(items))


def content_hashes(vectors: np.ndarray, payloads: list[dict[str, Any] | None] | None,
                   sparse: dict[str, list[Any]] | None = None,
                   named: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Per point, a 63-bit hash of vector bytes + canonical payload (+ sparse / named vectors)."""
    h = vector_hashes(vectors)
    n = len(h)
    extra: list[np.ndarray] = []
    if payloads is not None and any(payloads):
        extra.append(_bytes_hashes([orjson.dumps(p or {}, option=_JSON) for p in payloads]))
    for name in sorted(named or {}):
        extra.append(vector_hashes(named[name]) ^ _bytes_hashes([name.encode()])[0])  # type: ignore[index]
    for name in sorted(sparse or {}):
        rows = sparse[name]  # type: ignore[index]
        extra.append(_bytes_hashes([orjson.dumps([name, None if r is None else [list(r[0]), list(r[1])]],
                                                 option=_JSON) for r in rows]))
    with np.errstate(over="ignore"):
        for i, e in enumerate(extra):
            h = _mix(h ^ _mix(e + np.uint64(0x9E3779B97F4A7C15 * (i + 1) & 0xFFFFFFFFFFFFFFFF)))
    return (h & ~UUID_FLAG) if n else np.zeros(0, np.uint64)


def entries(ids: list[int | str], hashes: np.ndarray) -> np.ndarray:
    """State entries for Qdrant ids (ints or UUID strings) and their content hashes."""
    out = np.zeros(len(ids), dtype=ENTRY)
    if isinstance(ids, np.ndarray) and ids.dtype.kind in "iu":
        out["k"] = ids.astype(np.uint64)
        out["h"] = hashes
        return out
    if all(type(i) is int for i in ids):  # the common case, without the per-id loop below
        out["k"] = np.array(ids, dtype=np.uint64)
        out["h"] = hashes
        return out
    k = np.empty(len(ids), np.uint64)
    hi = np.zeros(len(ids), np.uint64)
    flag = np.zeros(len(ids), bool)
    for j, i in enumerate(ids):
        if isinstance(i, int):
            k[j] = i
        else:
            u = uuid.UUID(str(i)).int
            k[j], hi[j], flag[j] = u & 0xFFFFFFFFFFFFFFFF, u >> 64, True
    out["k"], out["hi"] = k, hi
    out["h"] = np.where(flag, hashes | UUID_FLAG, hashes)
    return out


def point_ids(e: np.ndarray) -> list[int | str]:
    """The Qdrant ids of state entries (inverse of :func:`entries`)."""
    out: list[int | str] = []
    for k, hi, h in zip(e["k"].tolist(), e["hi"].tolist(), e["h"].tolist(), strict=True):
        out.append(str(uuid.UUID(int=(hi << 64) | k)) if h >> 63 else k)
    return out


def _sorted_last_wins(e: np.ndarray) -> np.ndarray:
    """Sorted by key; of equal keys the last one (in input order) is kept."""
    if len(e) < 2:
        return e
    e = e[np.argsort(e["k"], kind="stable")]
    keep = np.empty(len(e), bool)
    keep[:-1] = e["k"][1:] != e["k"][:-1]
    keep[-1] = True
    return e if keep.all() else e[keep]


def write_entries(fk: Any, fv: Any, e: np.ndarray) -> None:
    fk.write(np.ascontiguousarray(e["k"]).tobytes())
    v = np.empty((len(e), 2), np.uint64)
    v[:, 0], v[:, 1] = e["hi"], e["h"]
    fv.write(v.tobytes())


class State:
    """A sorted state on disk (``<base>.k`` + ``<base>.v``), memory-mapped; an empty state has no files."""

    def __init__(self, base: Path) -> None:
        self.base = base
        kp = _ext(base, ".k")
        self.n = kp.stat().st_size // 8 if kp.exists() else 0
        if self.n:
            self.keys = np.memmap(kp, dtype=np.uint64, mode="r", shape=(self.n,))
            self.vals = np.memmap(_ext(base, ".v"), dtype=np.uint64, mode="r", shape=(self.n, 2))
        else:
            self.keys = np.zeros(0, np.uint64)
            self.vals = np.zeros((0, 2), np.uint64)

    def __len__(self) -> int:
        return self.n

    @property
    def nbytes(self) -> int:
        return self.n * ENTRY_BYTES

    def slice(self, lo: int, hi: int) -> np.ndarray:
        e = np.empty(hi - lo, dtype=ENTRY)
        e["k"] = self.keys[lo:hi]
        e["hi"] = self.vals[lo:hi, 0]
        e["h"] = self.vals[lo:hi, 1]
        return e

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found mask, content hash without the UUID flag) for each key."""
        if not self.n:
            return np.zeros(len(keys), bool), np.zeros(len(keys), np.uint64)
        pos = np.searchsorted(self.keys, keys)
        pos[pos >= self.n] = 0
        found = np.asarray(self.keys[pos]) == keys
        return found, np.asarray(self.vals[pos, 1]) & ~UUID_FLAG

    def contains(self, keys: np.ndarray) -> np.ndarray:
        return self.lookup(keys)[0]

    def chunks(self, size: int = CHUNK) -> Iterator[np.ndarray]:
        for lo in range(0, self.n, size):
            yield self.slice(lo, min(self.n, lo + size))

    def missing_from(self, other: State) -> Iterator[np.ndarray]:
        """Entries of this state whose key ``other`` does not hold, chunk by chunk."""
        for c in self.chunks():
            gone = ~other.contains(c["k"])
            if gone.any():
                yield c[gone]

    def close(self) -> None:
        self.keys = self.vals = None  # type: ignore[assignment]


def remove_state(base: Path) -> None:
    for suffix in (".k", ".v"):
        _ext(base, suffix).unlink(missing_ok=True)


def replace_state(src: Path, dst: Path) -> None:
    """Move state ``src`` over ``dst`` (each file atomically; ``.v`` first, the readers size by ``.k``)."""
    for suffix in (".v", ".k"):
        s, d = _ext(src, suffix), _ext(dst, suffix)
        if s.exists():
            os.replace(s, d)
        else:
            d.unlink(missing_ok=True)


class StateWriter:
    """Collect entries in any order (bounded memory: sorted runs on disk), then :meth:`finish` into a sorted state."""

    def __init__(self, base: Path, run: int = RUN) -> None:
        self.base = base
        self.run = run
        self._buf: list[np.ndarray] = []
        self._buffered = 0
        self._runs: list[Path] = []
        base.parent.mkdir(parents=True, exist_ok=True)

    def add(self, e: np.ndarray) -> None:
        if len(e):
            self._buf.append(e)
            self._buffered += len(e)
            if self._buffered >= self.run:
                self._spill()

    def _spill(self) -> None:
        if not self._buf:
            return
        e = _sorted_last_wins(np.concatenate(self._buf))
        self._buf, self._buffered = [], 0
        p = self.base.with_name(f"{self.base.name}.run{len(self._runs)}")
        with open(_ext(p, ".k"), "wb") as fk, open(_ext(p, ".v"), "wb") as fv:
            write_entries(fk, fv, e)
        self._runs.append(p)

    def finish(self) -> State:
        """Merge the runs (later entries win) into ``base``, fsynced; returns it opened."""
        self._spill()
        runs = [State(r) for r in self._runs]
        tmp = self.base.with_name(self.base.name + ".merging")
        with open(_ext(tmp, ".k"), "wb") as fk, open(_ext(tmp, ".v"), "wb") as fv:
            for part in _merge(runs):
                write_entries(fk, fv, part)
            for f in (fk, fv):
                f.flush()
                os.fsync(f.fileno())
        for r in runs:
            r.close()
        for r in self._runs:
            remove_state(r)
        replace_state(tmp, self.base)
        return State(self.base)

    def discard(self) -> None:
        for r in self._runs:
            remove_state(r)
        self._buf, self._runs = [], []


def _merge(runs: list[State]) -> Iterator[np.ndarray]:
    """Chunked k-way merge of sorted unique runs; of equal keys the later run's entry wins."""
    pos = [0] * len(runs)
    while True:
        live = [i for i, r in enumerate(runs) if pos[i] < len(r)]
        if not live:
            return
        ends = {i: min(len(runs[i]), pos[i] + CHUNK) for i in live}
        limits = [int(runs[i].keys[ends[i] - 1]) for i in live if ends[i] < len(runs[i])]
        parts = []
        for i in live:
            r = runs[i]
            stop = ends[i]
            if limits:  # every run's entries <= the smallest chunk end are inside its chunk
                stop = pos[i] + int(np.searchsorted(r.keys[pos[i]:ends[i]], np.uint64(min(limits)), side="right"))
            if stop > pos[i]:
                parts.append(r.slice(pos[i], stop))
            pos[i] = stop
        if parts:
            yield _sorted_last_wins(np.concatenate(parts)) if len(parts) > 1 else parts[0]


def read_log(path: Path) -> np.ndarray:
    """Entries appended to a log file (a torn last record, from a kill, is ignored)."""
    if not path.exists():
        return np.zeros(0, ENTRY)
    n = path.stat().st_size // ENTRY_BYTES
    return np.fromfile(path, dtype=ENTRY, count=n)


class EntryLog:
    """Append-only, unbuffered log of entries (each write reaches the kernel: survives SIGKILL)."""

    def __init__(self, path: Path, fresh: bool = False) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(path, "ab", buffering=0)  # noqa: SIM115 - closed in close()
        size = self._fh.seek(0, os.SEEK_END)
        self._fh.truncate(0 if fresh else size - size % ENTRY_BYTES)

    def add(self, e: np.ndarray) -> None:
        if len(e):
            self._fh.write(np.ascontiguousarray(e, dtype=ENTRY).tobytes())

    def close(self) -> None:
        self._fh.close()


def log_chunks(path: Path, size: int = RUN) -> Iterator[np.ndarray]:
    """A log's entries in chunks of at most ``size`` (bounded memory)."""
    if not path.exists():
        return
    n = path.stat().st_size // ENTRY_BYTES
    mm = np.memmap(path, dtype=ENTRY, mode="r", shape=(n,)) if n else None
    for lo in range(0, n, size):
        yield np.array(mm[lo:lo + size])  # type: ignore[index]
