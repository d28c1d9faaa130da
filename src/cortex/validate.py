"""Columnar checks of a source batch before it is written: shape, dimension, NaN/inf, sparse and named
vectors; then id mapping and duplicate handling (the last record with an id wins)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass
from itertools import chain
from typing import Any

import numpy as np

from cortex.errors import SourceError
from cortex.ids import map_ids, plain_id
from cortex.seen_ids import SeenIds, id_keys
from cortex.sources.base import Batch, Rejected


@dataclass
class Counts:
    read: int = 0
    written: int = 0
    rejected: int = 0
    skipped: int = 0
    duplicates: int = 0
    batches: int = 0

    def add(self, other: Counts) -> None:
        for k, v in asdict(other).items():
            setattr(self, k, getattr(self, k) + v)


@dataclass
class Prepared:
    """A validated batch ready to write: Qdrant ids, float32 vectors, payloads (and sparse/named vectors).

    ``sparse`` rows are ``(list[int], list[float])`` or None; ``named`` arrays are float32 with
    all-NaN rows for points without that vector (see ``Batch``).
    """

    seq: int
    ids: list[int | str]
    vectors: np.ndarray
    payloads: list[dict[str, Any]] | None
    rejected: list[Rejected]
    cursor: Any
    counts: Counts
    dup_ids: list[Any]
    after_duplicate: bool  # holds an id seen in an earlier batch: write after earlier ones land
    new_keys: np.ndarray | None = None  # id keys this batch added to the seen set (logged at commit)
    sparse: dict[str, list[tuple[list[int], list[float]] | None]] | None = None
    named: dict[str, np.ndarray] | None = None
    keys: np.ndarray | None = None  # the ids' 64-bit keys when every id is an integer (numpy id column)


def validate(batch: Batch, dim: int, id_field: str, seq: int, seen: SeenIds | None,
             sparse_names: Collection[str] | None = None, named_dims: dict[str, int] | None = None) -> Prepared:
    """Columnar checks: shape, dimension, finiteness; then id mapping and in-batch dedupe.

    Sparse and named vectors (``batch.sparse`` / ``batch.named``) are checked too (a bad row
    goes to the dead letter) and sliced along with every row filter.  ``sparse_names`` /
    ``named_dims``, when given, are what the source declared: another name is a source bug.
    """
    rejected = list(batch.rejected)
    n = len(batch.ids)
    vecs = batch.vectors
    if n and (vecs.ndim != 2 or vecs.shape[0] != n):
        raise SourceError(f"source produced a malformed batch (vectors shape {vecs.shape} for {n} ids)")
    keep = np.ones(n, dtype=bool)
    if n and vecs.shape[1] != dim:
        keep[:] = False
        reason = f"vector has {vecs.shape[1]} dimensions, the collection has {dim}"
        rejected += [Rejected(batch.location(i), reason, id=_plain(batch.ids[i])) for i in range(n)]
    elif n:
        with np.errstate(over="ignore", invalid="ignore"):
            vecs = vecs.astype(np.float32, copy=False)
            # one pass, no n x dim temporary; a row whose sum overflows to inf (or is inf - inf) is re-checked
            finite = np.isfinite(vecs.sum(axis=1))
        if not finite.all():
            finite[~finite] = np.isfinite(vecs[~finite]).all(axis=1)
        if not finite.all():
            for i in np.flatnonzero(~finite):
                j = int(np.flatnonzero(~np.isfinite(vecs[i]))[0])
                rejected.append(Rejected(batch.location(i), f"vector has a non-finite value ({vecs[i, j]}) at "
                                         f"position {j}; fix or drop this record", id=_plain(batch.ids[i]),
                                         raw=_raw(batch, i)))
            keep &= finite
    sparse, named = _check_extras(batch, keep, rejected, sparse_names, named_dims) if n else (None, None)
    idx = np.flatnonzero(keep)
    src_ids = batch.ids if keep.all() else _take(batch.ids, idx)
    vecs = vecs if keep.all() else vecs[idx]
    payloads = batch.payloads if (batch.payloads is None or keep.all()) else [batch.payloads[i] for i in idx]
    if not keep.all():
        sparse, named = _take_extras(sparse, named, idx)
    qids, kept = map_ids(src_ids)
    if not all(kept):
        payloads = list(payloads) if payloads is not None else [{} for _ in qids]
        clash = []
        for i, k in enumerate(kept):
            if not k:
                pl = payloads[i] or {}
                if id_field in pl and pl[id_field] != _plain(src_ids[i]):  # a user field: never overwrite it
                    clash.append(i)
                    continue
                payloads[i] = {**pl, id_field: _plain(src_ids[i])}
        if clash:
            loc = [batch.location(int(j)) for j in idx[clash]] if len(idx) else []
            rejected += [Rejected(where, f"payload field '{id_field}' holds user data, and Cortex keeps the original "
                                  f"id there; pass --id-field NAME (a field no record uses)", id=_plain(src_ids[i]),
                                  raw={"id": _plain(src_ids[i]), "payload": payloads[i]})
                         for where, i in zip(loc, clash, strict=True)]
            ok = np.setdiff1d(np.arange(len(qids)), clash)
            qids, src_ids, vecs = [qids[i] for i in ok], _take(src_ids, ok), vecs[ok]
            payloads = [payloads[i] for i in ok]
            sparse, named = _take_extras(sparse, named, ok)
    counts = Counts(read=batch.read, written=len(qids), rejected=len(rejected), skipped=batch.skipped, batches=1)
    dup_ids: list[Any] = []
    after_dup = False
    int_keys = None
    if len(qids):
        int_array = isinstance(src_ids, np.ndarray) and src_ids.dtype.kind in "iu" and all(kept)
        keys = id_keys(src_ids if int_array else qids)  # a numpy int column: its own values, no per-id pass
        uniq, first_rev = np.unique(keys[::-1], return_index=True)
        if len(uniq) < len(keys):  # duplicates inside the batch: the last one wins
            last = np.sort(len(keys) - 1 - first_rev)
            dropped = np.setdiff1d(np.arange(len(keys)), last)
            dup_ids += [_plain(src_ids[i]) for i in dropped]
            counts.duplicates += len(dropped)
            qids = [qids[i] for i in last]
            src_ids = _take(src_ids, last)
            vecs = vecs[last]
            payloads = [payloads[i] for i in last] if payloads is not None else None
            sparse, named = _take_extras(sparse, named, last)
            keys = keys[last]
        if seen is not None:
            hit = seen.contains(keys)
            if hit.any():
                after_dup = True
                counts.duplicates += int(hit.sum())
                dup_ids += [_plain(src_ids[i]) for i in np.flatnonzero(hit)]
                seen.add(keys[~hit])
            else:
                seen.add(keys)
        int_keys = keys if int_array else None
    return Prepared(seq, qids, vecs, payloads, rejected, batch.cursor, counts, dup_ids, after_dup,
                    sparse=sparse, named=named, keys=int_keys)


def _take(ids: Any, idx: np.ndarray) -> Any:
    return ids[idx] if isinstance(ids, np.ndarray) else [ids[i] for i in idx]


def _take_extras(sparse: dict[str, list[Any]] | None, named: dict[str, np.ndarray] | None, idx: np.ndarray
                 ) -> tuple[dict[str, list[Any]] | None, dict[str, np.ndarray] | None]:
    """The sparse rows and named vectors of the rows ``idx``."""
    if sparse is not None:
        sparse = {k: [rows[i] for i in idx] for k, rows in sparse.items()}
    if named is not None:
        named = {k: a[idx] for k, a in named.items()}
    return sparse, named


MAX_SPARSE_INDEX = 2**32 - 1  # Qdrant's sparse indices are u32


def _check_extras(batch: Batch, keep: np.ndarray, rejected: list[Rejected], sparse_names: Collection[str] | None,
                  named_dims: dict[str, int] | None
                  ) -> tuple[dict[str, list[Any]] | None, dict[str, np.ndarray] | None]:
    """Check ``batch.sparse`` / ``batch.named``: clear ``keep`` and add a dead-letter record for each bad row.

    Returns the columns normalized: sparse rows as ``(list[int], list[float])`` or None, named
    vectors as float32 arrays.
    """
    n = len(batch.ids)
    bad: dict[int, str] = {}
    sparse = None
    if batch.sparse:
        sparse = {}
        for name, rows in batch.sparse.items():
            if sparse_names is not None and name not in sparse_names:
                raise SourceError(f"the source produced sparse vector '{name}' that it did not declare "
                                  f"(declared: {', '.join(sparse_names) or 'none'})")
            if len(rows) != n:
                raise SourceError(f"source produced a malformed batch (sparse vector '{name}' has {len(rows)} rows "
                                  f"for {n} ids)")
            sparse[name], errs = _check_sparse_rows(rows, keep)
            for i, why in errs.items():
                bad.setdefault(i, f"sparse vector '{name}' {why}")
    named = None
    if batch.named:
        named = {}
        for name, arr in batch.named.items():
            if named_dims is not None and name not in named_dims:
                raise SourceError(f"the source produced named vector '{name}' that it did not declare "
                                  f"(declared: {', '.join(named_dims) or 'none'})")
            a = np.asarray(arr)
            if a.ndim != 2 or a.shape[0] != n:
                raise SourceError(f"source produced a malformed batch (named vector '{name}' of shape {a.shape} "
                                  f"for {n} ids)")
            with np.errstate(over="ignore", invalid="ignore"):
                a = a.astype(np.float32, copy=False)
            want = (named_dims or {}).get(name)
            if want is not None and a.shape[1] != want:
                for i in np.flatnonzero(keep).tolist():
                    bad.setdefault(i, f"named vector '{name}' has {a.shape[1]} dimensions, the collection has {want}")
            else:
                finite = np.isfinite(a)
                partial = ~finite.all(axis=1) & ~np.isnan(a).all(axis=1)  # all-NaN: the point has no such vector
                for i in np.flatnonzero(partial & keep).tolist():
                    j = int(np.flatnonzero(~finite[i])[0])
                    bad.setdefault(i, f"named vector '{name}' has a non-finite value ({a[i, j]}) at position {j}")
            named[name] = a
    for i in sorted(bad):
        if keep[i]:
            keep[i] = False
            rejected.append(Rejected(batch.location(i), f"{bad[i]}; fix or drop this record",
                                     id=_plain(batch.ids[i]), raw=_raw(batch, i)))
    return sparse, named


def _check_sparse_rows(rows: list[Any], keep: np.ndarray) -> tuple[list[Any], dict[int, str]]:
    """Sparse rows as ``(list[int], list[float])`` (None stays None) and {row: what is wrong} for bad ones.

    Vectorized over the batch (one concatenation of all indices and values); only rows found
    bad are looked at one by one, for the message.
    """
    out = list(rows)
    present = [i for i, r in enumerate(rows) if r is not None and keep[i]]
    if not present:
        return out, {}
    flagged: set[int] = set()
    convert_all = False
    try:
        idxs = [rows[i][0] for i in present]
        vals = [rows[i][1] for i in present]
        li = np.fromiter(map(len, idxs), np.int64, len(present))
        lv = np.fromiter(map(len, vals), np.int64, len(present))
        flat_i = np.array(list(chain.from_iterable(idxs)))
        flat_v = np.array(list(chain.from_iterable(vals)), dtype=np.float64)
        if any(len(rows[i]) != 2 for i in present) or (flat_i.size and flat_i.dtype.kind not in "iu"):
            raise TypeError
        rows_i = np.repeat(np.arange(len(present)), li)
        rows_v = np.repeat(np.arange(len(present)), lv)
        hit = [np.flatnonzero(li != lv), rows_i[(flat_i < 0) | (flat_i > MAX_SPARSE_INDEX)]]
        if flat_i.size > 1:
            order = np.lexsort((flat_i, rows_i))
            si, sr = flat_i[order], rows_i[order]
            hit.append(sr[1:][(si[1:] == si[:-1]) & (sr[1:] == sr[:-1])])
        with np.errstate(over="ignore", invalid="ignore"):
            hit.append(rows_v[~np.isfinite(flat_v.astype(np.float32))])
        flagged = {present[j] for j in np.unique(np.concatenate(hit)).tolist()}
    except (TypeError, ValueError, IndexError, KeyError):  # not pairs of int/float lists somewhere: each row
        flagged = set(present)
        convert_all = True
    errs: dict[int, str] = {}
    for i in flagged:
        why = _sparse_problem(rows[i])
        if why:
            errs[i] = why
    for i in present:
        if i in errs:
            continue
        idx, val = rows[i]
        if convert_all or type(idx) is not list or type(val) is not list:
            out[i] = (np.asarray(idx).astype(np.int64).tolist(), np.asarray(val, dtype=np.float64).tolist())
    return out, errs


def _sparse_problem(row: Any) -> str | None:
    """What is wrong with one sparse row, or None when it is fine."""
    try:
        idx, val = row
        ia, va = np.asarray(idx), np.asarray(val)
    except (TypeError, ValueError):
        return "is not an (indices, values) pair"
    if ia.ndim != 1 or va.ndim != 1:
        return "is not an (indices, values) pair of flat lists"
    if len(ia) != len(va):
        return f"has {len(ia)} indices but {len(va)} values"
    if not len(ia):
        return None
    if ia.dtype.kind not in "iu":
        if ia.dtype.kind == "f" and np.isfinite(ia).all() and (ia == np.floor(ia)).all():
            ia = ia.astype(np.int64)
        else:
            j = next((k for k, x in enumerate(idx) if not isinstance(x, (int, np.integer)) or isinstance(x, bool)), 0)
            return f"has an index that is not an integer ({idx[j]!r} at position {j})"
    if ia.min() < 0:
        return f"has a negative index ({int(ia.min())})"
    if ia.max() > MAX_SPARSE_INDEX:
        return f"has an index above 2**32-1 ({int(ia.max())})"
    u, c = np.unique(ia, return_counts=True)
    if (c > 1).any():
        return f"has duplicate index {int(u[c > 1][0])}"
    if va.dtype.kind not in "iuf":
        return "has values that are not numbers"
    with np.errstate(over="ignore", invalid="ignore"):
        nonfinite = np.flatnonzero(~np.isfinite(va.astype(np.float32)))
    if len(nonfinite):
        j = int(nonfinite[0])
        return f"has a non-finite value ({va[j]}) for index {int(ia[j])}"
    return None


def _plain(v: Any) -> Any:
    return plain_id(v)


def _raw(batch: Batch, i: int) -> dict[str, Any]:
    raw = {"id": _plain(batch.ids[i]), "vector": batch.vectors[i].tolist(),
           "payload": batch.payloads[i] if batch.payloads is not None else None}
    if batch.sparse:
        raw["sparse"] = {k: rows[i] for k, rows in batch.sparse.items()}
    if batch.named:
        raw["named"] = {k: np.asarray(a[i]).tolist() for k, a in batch.named.items()}
    return raw

