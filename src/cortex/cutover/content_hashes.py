"""Per-point content hashes, kept on disk in one sorted, memory-mapped file (16 bytes per point).

What a sync compares.  Each point Cortex writes gets a 63-bit content hash of exactly what
was written: the float32 vector bytes, the canonical (key-sorted) JSON of the payload and any
sparse / named vectors.  Hashing is columnar: a batch's vectors are hashed by two integer
products of their 64-bit words with fixed random odd multipliers (one ``einsum`` each, no
per-row Python), then mixed; the payloads' JSON (one ``orjson`` call per batch, split into
rows) as a zero-padded word matrix the same way, strings over 256 bytes by blake2b.  Not
cryptographic: change detection, not adversarial input.

A collection's state is one file (``state.cx``, replaced atomically), sorted by key:

* a 32-byte header: magic, format, flags, the number of points, the section offsets;
* the 64-bit id keys (``cortex.seen_ids.id_keys``: the int id, or the low half of the UUID),
  sorted, unique (8 bytes per point);
* per key, the content hash, whose top bit says whether the id is a UUID (8 bytes per point);
* only when some id is a UUID: per key, the UUID's high half (8 more bytes per point), so a
  deleted point's full id is rebuilt without a scan of the target.

So 16 bytes per point for integer ids, 24 for collections with UUID ids (100M points: 1.6 GB
on disk, memory-mapped, never loaded whole).  States are built from an unsorted stream by
:class:`StateWriter`: sorted runs of at most ``RUN`` entries on disk, then a chunked k-way
merge (the last entry of an id wins, as the pipeline's "last one wins" for duplicate ids).
"""

from __future__ import annotations

import hashlib
import os
import struct
import uuid
from collections.abc import Iterator
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import orjson

FORMAT = 2  # 1: the 24-byte two-file state of the first version (other hashes; a sync re-hashes the target once)
ENTRY = np.dtype([("k", "<u8"), ("hi", "<u8"), ("h", "<u8")])  # in memory and in the temporary logs / runs
ENTRY_BYTES = ENTRY.itemsize  # 24
RUN = 2_000_000  # entries per sorted run (48 MB)
CHUNK = 1 << 19  # entries per merge / diff step
UUID_FLAG = np.uint64(1 << 63)
_MAGIC = b"CXST"
_HEADER = struct.Struct("<4sHHQQQ")  # magic, format, flags, points, offset of the hashes, offset of the UUID halves
HEADER_BYTES = _HEADER.size  # 32
_HAS_UUID = 1
_JSON = orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
_WORDS = 1 << 15  # multipliers for up to 32768 64-bit words (65536 float32 dimensions, Qdrant's maximum)
_MULT = (np.random.default_rng(0x5EED).integers(0, 2**62, size=(2, _WORDS), dtype=np.uint64) * np.uint64(2)
         + np.uint64(1))  # two independent sets of odd multipliers (fixed: hashes are stable across runs)
_GOLD = 0x9E3779B97F4A7C15
_BYTES_STEP = 1 << 20  # string bytes hashed at a time (a few arrays of 8 bytes per byte)
_JSON_STEP = 1 << 23  # JSON bytes of a batch's payloads split at a time
SHORT = 256  # strings up to this long are hashed as a padded matrix


def _ext(base: Path, ext: str) -> Path:
    return base.with_name(base.name + ext)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer, element-wise on uint64 (in place)."""
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return x


def _multipliers(m: int) -> np.ndarray:
    """(2, m) odd multipliers; beyond ``_WORDS`` words the sets repeat, each block times another odd factor."""
    if m <= _WORDS:
        return _MULT[:, :m]
    reps = -(-m // _WORDS)
    with np.errstate(over="ignore"):
        block = np.arange(reps, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        return (np.tile(_MULT, reps) * np.repeat(block, _WORDS))[:, :m]


def _combine(a: np.ndarray, b: np.ndarray, salt: np.ndarray | int) -> np.ndarray:
    """Two linear sums -> one well-mixed 64-bit hash (``salt``: length or dimension, element-wise or one value)."""
    with np.errstate(over="ignore"):
        a = _mix(a ^ np.asarray(salt, dtype=np.uint64))
        return _mix(a + _mix(b + np.uint64(_GOLD)))


def vector_hashes(vectors: np.ndarray) -> np.ndarray:
    """A 64-bit hash per row of the float32 bytes: two products of the 64-bit words with odd multipliers.

    Each sum is a universal hash of the row's words modulo 2**64 (one changed word always changes it,
    since the multipliers are odd); two independent ones, then mixed, make an accidental match of a
    changed row about 2**-64.  Numpy does the work (it releases the GIL), no per-row Python.
    """
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    n, d = v.shape if v.ndim == 2 else (len(v), 0)
    if not n:
        return np.zeros(0, np.uint64)
    if d % 2:
        v = np.concatenate([v, np.zeros((n, 1), np.float32)], axis=1)
    w = v.view(np.uint64)
    mult = _multipliers(w.shape[1])
    return _combine(np.einsum("ij,j->i", w, mult[0]), np.einsum("ij,j->i", w, mult[1]), d)


def _bytes_hashes(items: list[bytes]) -> np.ndarray:
    """A 64-bit hash per byte string, columnar (no per-string Python); a function of the string alone."""
    lengths = np.fromiter(map(len, items), dtype=np.int64, count=len(items))
    return _joined_hashes(np.frombuffer(b"".join(items), dtype=np.uint8), lengths)


def _joined_hashes(buf: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Hashes of the strings laid end to end in ``buf`` (uint8) with these lengths.

    Strings of up to ``SHORT`` bytes (payload JSON mostly is) are laid into one zero-padded matrix of
    64-bit words (a boolean mask puts each string's bytes at the start of its row), each word folded
    (xorshifts: every bit reaches the low byte) and the row summed against odd multipliers (``einsum``;
    zero padding adds nothing, so the matrix width does not matter).  Longer strings: blake2b each.
    Both mixed with the length.
    """
    n = len(lengths)
    total = int(lengths.sum())
    if total > _BYTES_STEP and n > 1:  # bounded memory: a few arrays of 8 bytes per input byte
        half = n // 2
        cut = int(lengths[:half].sum())
        return np.concatenate([_joined_hashes(buf[:cut], lengths[:half]), _joined_hashes(buf[cut:], lengths[half:])])
    sa, sb = np.zeros(n, np.uint64), np.zeros(n, np.uint64)
    short = lengths <= SHORT
    if short.all():
        _short_sums(buf, lengths, sa, sb)
    else:
        for rows, sums in ((short, _short_sums), (~short, _long_sums)):
            at = np.flatnonzero(rows)
            if len(at):
                a, b = np.zeros(len(at), np.uint64), np.zeros(len(at), np.uint64)
                sums(buf[np.repeat(rows, lengths)], lengths[at], a, b)
                sa[at], sb[at] = a, b
    return _combine(sa, sb, lengths.astype(np.uint64) + np.uint64(0x51ED27))


def _short_sums(buf: np.ndarray, lengths: np.ndarray, sa: np.ndarray, sb: np.ndarray) -> None:
    width = (int(lengths.max(initial=0)) + 7) // 8 * 8
    if not width:
        return
    mat = np.zeros((len(lengths), width), np.uint8)
    mat[np.arange(width) < lengths[:, None]] = buf
    w = mat.view(np.uint64)
    w ^= w >> np.uint64(32)
    w ^= w >> np.uint64(16)
    w ^= w >> np.uint64(8)
    mult = _multipliers(w.shape[1])
    sa[:] = np.einsum("ij,j->i", w, mult[0])
    sb[:] = np.einsum("ij,j->i", w, mult[1])


def _long_sums(buf: np.ndarray, lengths: np.ndarray, sa: np.ndarray, sb: np.ndarray) -> None:
    """Strings longer than ``SHORT``: blake2b each (~1 GB/s; the per-call cost is small beside the length)."""
    data = buf.tobytes()
    ends = np.cumsum(lengths).tolist()
    digests = b"".join(hashlib.blake2b(data[lo:hi], digest_size=16).digest()
                       for lo, hi in zip([0, *ends[:-1]], ends, strict=True))
    both = np.frombuffer(digests, dtype=np.uint64).reshape(-1, 2)
    sa[:], sb[:] = both[:, 0], both[:, 1]


_DEPTH = np.zeros(256, np.int16)
_DEPTH[[ord("{"), ord("[")]] = 1
_DEPTH[[ord("}"), ord("]")]] = -1


def _split_json_array(raw: bytes, n: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(the elements' bytes end to end, their lengths) of ``raw``, the compact JSON array of ``n`` objects
    (``orjson``'s output: no whitespace); None when it does not look like one.

    When ``},{`` occurs exactly n - 1 times those are the boundaries (each of the n - 1 boundaries is one).
    Else, without backslashes in the JSON, vectorized parsing: quotes open and close strings, the brackets
    outside strings give the depth, and the elements are separated by the commas at depth 1.
    """
    buf = np.frombuffer(raw, dtype=np.uint8)
    size = len(buf)
    if n < 1 or size < 2 or buf[0] != 91 or buf[-1] != 93:  # [ ... ]
        return None
    if raw.count(b"},{") == n - 1:  # the n - 1 element boundaries are all there is: no need to parse
        commas = np.flatnonzero((buf[1:-1] == 44) & (buf[:-2] == 125) & (buf[2:] == 123)) + 1
        return _elements(buf, commas)
    if b"\\" in raw:  # escaped quotes: one orjson call per row is cheaper than finding them
        return None
    outside = ~np.logical_xor.accumulate(buf == 34)  # the closing quote counts as outside: it is not a bracket
    delta = _DEPTH[buf]
    delta[~outside] = 0
    depth = np.cumsum(delta, dtype=np.int16)  # orjson nests at most 255 deep
    commas = np.flatnonzero((buf == 44) & outside & (depth == 1))
    if len(commas) != n - 1 or depth[-1] != 0:
        return None
    return _elements(buf, commas)


def _elements(buf: np.ndarray, commas: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    size = len(buf)
    starts = np.concatenate([[1], commas + 1])
    ends = np.concatenate([commas, [size - 1]])  # exclusive
    if not (buf[starts] == 123).all():  # each element an object
        return None
    keep = np.ones(size, bool)
    keep[0] = keep[-1] = False
    keep[commas] = False
    return buf[keep], ends - starts


def payload_hashes(payloads: list[dict[str, Any] | None]) -> np.ndarray:
    """A 64-bit hash of each payload's canonical JSON (sorted keys, compact: ``orjson`` bytes).

    One ``orjson`` call for the whole batch, split into its elements (each exactly the bytes
    ``orjson.dumps(payload)`` gives alone, as tested); one call per row when the split is unsure.
    """
    kinds = set(map(type, payloads))
    if kinds != {dict}:
        payloads = [p or {} for p in payloads]  # no payload is an empty one
        kinds = set(map(type, payloads))
    if kinds == {dict}:
        raw = orjson.dumps(payloads, option=_JSON)
        if len(raw) > _JSON_STEP and len(payloads) > 1:  # bounded memory: the split's arrays are ~10x the JSON
            half = len(payloads) // 2
            return np.concatenate([payload_hashes(payloads[:half]), payload_hashes(payloads[half:])])
        split = _split_json_array(raw, len(payloads))
        if split is not None:
            return _joined_hashes(*split)
    return _bytes_hashes(list(map(orjson.dumps, payloads, repeat(None), repeat(_JSON))))


def content_hashes(vectors: np.ndarray, payloads: list[dict[str, Any] | None] | None,
                   sparse: dict[str, list[Any]] | None = None,
                   named: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Per point, a 63-bit hash of vector bytes + canonical payload (+ sparse / named vectors)."""
    h = vector_hashes(vectors)
    n = len(h)
    extra: list[np.ndarray] = []
    if payloads is not None and any(payloads):
        extra.append(payload_hashes(payloads))
    for name in sorted(named or {}):
        extra.append(vector_hashes(named[name]) ^ _bytes_hashes([name.encode()])[0])  # type: ignore[index]
    for name in sorted(sparse or {}):
        rows = sparse[name]  # type: ignore[index]
        extra.append(_bytes_hashes([orjson.dumps([name, None if r is None else [list(r[0]), list(r[1])]],
                                                 option=_JSON) for r in rows]))
    with np.errstate(over="ignore"):
        for i, e in enumerate(extra):
            h = _mix(h ^ _mix(e + np.uint64(_GOLD * (i + 1) & 0xFFFFFFFFFFFFFFFF)))
    return (h & ~UUID_FLAG) if n else np.zeros(0, np.uint64)


def entries(ids: list[int | str], hashes: np.ndarray, keys: np.ndarray | None = None) -> np.ndarray:
    """State entries for Qdrant ids (ints or UUID strings) and their content hashes.

    ``keys``: the ids' 64-bit keys when the caller knows every id is an integer (validation's fast path).
    """
    out = np.zeros(len(ids), dtype=ENTRY)
    if keys is not None:
        out["k"] = keys
        out["h"] = hashes
        return out
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
    if not (e["k"][1:] > e["k"][:-1]).all():  # already sorted and unique (a sequential source): no sort
        e = e[np.argsort(e["k"], kind="stable")]
    keep = np.empty(len(e), bool)
    keep[:-1] = e["k"][1:] != e["k"][:-1]
    keep[-1] = True
    return e if keep.all() else e[keep]


def state_file(base: Path) -> Path:
    return _ext(base, ".cx")


class State:
    """A sorted state on disk (``<base>.cx``), memory-mapped; an empty state may have no file."""

    def __init__(self, base: Path) -> None:
        self.base = base
        f = state_file(base)
        self.n = 0
        self.file_bytes = 0
        self.keys = np.zeros(0, np.uint64)
        self.hashes = np.zeros(0, np.uint64)
        self.his: np.ndarray | None = None
        if not f.exists():
            return
        with open(f, "rb") as fh:
            head = fh.read(HEADER_BYTES)
        if len(head) < HEADER_BYTES:
            raise ValueError(f"{f}: truncated state file")
        magic, fmt, flags, n, off_h, off_u = _HEADER.unpack(head)
        if magic != _MAGIC or fmt != FORMAT:
            raise ValueError(f"{f}: not a Cortex state file of format {FORMAT}")
        self.n, self.file_bytes = n, f.stat().st_size
        if n:
            self.keys = np.memmap(f, dtype=np.uint64, mode="r", offset=HEADER_BYTES, shape=(n,))
            self.hashes = np.memmap(f, dtype=np.uint64, mode="r", offset=off_h, shape=(n,))
            if flags & _HAS_UUID:
                self.his = np.memmap(f, dtype=np.uint64, mode="r", offset=off_u, shape=(n,))

    def __len__(self) -> int:
        return self.n

    @property
    def nbytes(self) -> int:
        """Bytes on disk (the header included)."""
        return self.file_bytes

    def slice(self, lo: int, hi: int) -> np.ndarray:
        e = np.zeros(hi - lo, dtype=ENTRY)
        e["k"] = self.keys[lo:hi]
        e["h"] = self.hashes[lo:hi]
        if self.his is not None:
            e["hi"] = self.his[lo:hi]
        return e

    def _positions(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found mask, position) of each key: ``searchsorted`` in the window of the state the keys span
        (a batch of a sequential source touches one small, cache-friendly stretch of the mmap)."""
        if not len(keys):
            return np.zeros(0, bool), np.zeros(0, np.int64)
        lo = int(np.searchsorted(self.keys, keys.min()))
        hi = int(np.searchsorted(self.keys, keys.max(), side="right"))
        window = np.asarray(self.keys[lo:hi])
        pos = np.searchsorted(window, keys)
        pos[pos >= len(window)] = 0
        found = window[pos] == keys if len(window) else np.zeros(len(keys), bool)
        return found, pos + lo

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found mask, content hash without the UUID flag) for each key (``searchsorted`` on the mmap)."""
        if not self.n:
            return np.zeros(len(keys), bool), np.zeros(len(keys), np.uint64)
        found, pos = self._positions(keys)
        return found, np.asarray(self.hashes[np.minimum(pos, self.n - 1)]) & ~UUID_FLAG

    def contains(self, keys: np.ndarray) -> np.ndarray:
        if not self.n:
            return np.zeros(len(keys), bool)
        return self._positions(keys)[0]

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
        self.keys = self.hashes = self.his = None  # type: ignore[assignment]


def remove_state(base: Path) -> None:
    state_file(base).unlink(missing_ok=True)
    for suffix in (".k", ".v"):  # format 1
        _ext(base, suffix).unlink(missing_ok=True)


def replace_state(src: Path, dst: Path) -> None:
    """Move state ``src`` over ``dst`` (one file: atomic)."""
    s, d = state_file(src), state_file(dst)
    if s.exists():
        os.replace(s, d)
    else:
        d.unlink(missing_ok=True)
    for suffix in (".k", ".v"):  # a format-1 state left beside it
        _ext(dst, suffix).unlink(missing_ok=True)


def _write_state(path: Path, parts: Iterator[np.ndarray], most: int, has_uuid: bool) -> None:
    """Write sorted unique entry chunks (at most ``most`` entries in all) as a state file, fsynced.

    The sections are placed for ``most`` entries; when duplicates made fewer, the gap stays (the header
    gives the offsets).
    """
    off_h = HEADER_BYTES + 8 * most
    off_u = off_h + 8 * most if has_uuid else 0
    n = 0
    with open(path, "wb") as f:
        f.write(b"\0" * HEADER_BYTES)
        for e in parts:
            f.seek(HEADER_BYTES + 8 * n)
            f.write(np.ascontiguousarray(e["k"]).tobytes())
            f.seek(off_h + 8 * n)
            f.write(np.ascontiguousarray(e["h"]).tobytes())
            if has_uuid:
                f.seek(off_u + 8 * n)
                f.write(np.ascontiguousarray(e["hi"]).tobytes())
            n += len(e)
        f.truncate((off_u if has_uuid else off_h) + 8 * most if n else HEADER_BYTES)
        f.seek(0)
        f.write(_HEADER.pack(_MAGIC, FORMAT, _HAS_UUID if has_uuid else 0, n, off_h if n else HEADER_BYTES,
                             off_u if n else 0))
        f.flush()
        os.fsync(f.fileno())


class StateWriter:
    """Collect entries in any order (bounded memory: sorted runs on disk), then :meth:`finish` into a sorted state."""

    def __init__(self, base: Path, run: int = RUN) -> None:
        self.base = base
        self.run = run
        self._buf: list[np.ndarray] = []
        self._buffered = 0
        self._runs: list[Path] = []
        self._uuid = False
        base.parent.mkdir(parents=True, exist_ok=True)

    def add(self, e: np.ndarray) -> None:
        if len(e):
            self._buf.append(e)
            self._buffered += len(e)
            if not self._uuid and (e["h"] & UUID_FLAG).any():
                self._uuid = True
            if self._buffered >= self.run:
                self._spill()

    def _sorted_buffer(self) -> np.ndarray:
        e = _sorted_last_wins(np.concatenate(self._buf)) if self._buf else np.zeros(0, ENTRY)
        self._buf, self._buffered = [], 0
        return e

    def _spill(self) -> None:
        if not self._buf:
            return
        e = self._sorted_buffer()
        p = self.base.with_name(f"{self.base.name}.run{len(self._runs)}")
        e.tofile(p)
        self._runs.append(p)

    def finish(self) -> State:
        """Merge the runs (later entries win) into ``base``, fsynced; returns it opened."""
        tmp = self.base.with_name(self.base.name + ".merging")
        if not self._runs:  # everything fit in one run: no temporary files
            e = self._sorted_buffer()
            _write_state(state_file(tmp), iter([e]), len(e), self._uuid)
        else:
            self._spill()
            runs = [np.memmap(r, dtype=ENTRY, mode="r") if r.stat().st_size else np.zeros(0, ENTRY)
                    for r in self._runs]
            _write_state(state_file(tmp), _merge(runs), sum(len(r) for r in runs), self._uuid)
            del runs
            for r in self._runs:
                r.unlink(missing_ok=True)
            self._runs = []
        replace_state(tmp, self.base)
        return State(self.base)

    def discard(self) -> None:
        for r in self._runs:
            r.unlink(missing_ok=True)
        self._buf, self._runs = [], []


def _merge(runs: list[np.ndarray]) -> Iterator[np.ndarray]:
    """Chunked k-way merge of sorted unique runs (entry arrays); of equal keys the later run's entry wins."""
    pos = [0] * len(runs)
    while True:
        live = [i for i, r in enumerate(runs) if pos[i] < len(r)]
        if not live:
            return
        ends = {i: min(len(runs[i]), pos[i] + CHUNK) for i in live}
        limits = [int(runs[i]["k"][ends[i] - 1]) for i in live if ends[i] < len(runs[i])]
        parts = []
        for i in live:
            r = runs[i]
            stop = ends[i]
            if limits:  # every run's entries <= the smallest chunk end are inside its chunk
                stop = pos[i] + int(np.searchsorted(r["k"][pos[i]:ends[i]], np.uint64(min(limits)), side="right"))
            if stop > pos[i]:
                parts.append(np.array(r[pos[i]:stop]))
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
