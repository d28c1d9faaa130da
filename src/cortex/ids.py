"""Source ids -> Qdrant point ids, deterministically.

Qdrant accepts unsigned 64-bit integers and UUIDs only.  Unsigned ints and UUID strings
are kept; digit-only strings without leading zeros become integers (``"17"`` -> 17, as the
migration guide's FAISS export writes them); every other id becomes a uuid5 of its text, and the
original is stored in the payload (``id_field``) so a re-run maps it to the same point and
users can still find a point by its old id.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np

CORTEX_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://cortex.dev/point-id")
DEFAULT_ID_FIELD = "source_id"
_U64_MAX = 2**64 - 1
_I64_MIN = -(2**63)


def plain_id(source_id: Any) -> Any:
    """A source id as a plain JSON-able value: numpy scalars unwrapped; integers beyond 64 bits as decimal text.

    This is what goes in the payload's ``source_id`` and in messages: a big integer stays exact
    (JSON parsers and Qdrant's payload would turn it into a float), and maps to the same point.
    """
    if isinstance(source_id, np.generic):
        source_id = source_id.item()
    if isinstance(source_id, int) and not isinstance(source_id, bool) and not _I64_MIN <= source_id <= _U64_MAX:
        return str(source_id)
    return source_id


def map_id(source_id: Any) -> tuple[int | str, bool]:
    """Return (qdrant_id, kept) where kept is False when the original must go in the payload."""
    if isinstance(source_id, (bool, np.bool_)):
        return str(uuid.uuid5(CORTEX_NAMESPACE, str(source_id))), False
    if isinstance(source_id, (int, np.integer)):
        v = int(source_id)
        if 0 <= v <= _U64_MAX:
            return v, True
        return str(uuid.uuid5(CORTEX_NAMESPACE, str(v))), False
    if isinstance(source_id, uuid.UUID):
        return str(source_id), True
    if isinstance(source_id, bytes):
        source_id = source_id.decode("utf-8", "replace")
    s = str(source_id)
    if s.isascii() and s.isdigit() and (s == "0" or s[0] != "0") and int(s) <= _U64_MAX:
        return int(s), True
    if len(s) == 36 and s.count("-") == 4:
        try:
            u = str(uuid.UUID(s))  # once: str(UUID) is most of the cost
            if u == s.lower():
                return u, s == u
        except ValueError:
            pass
    return str(uuid.uuid5(CORTEX_NAMESPACE, s)), False


def map_ids(source_ids: list[Any]) -> tuple[list[int | str], list[bool]]:
    """Vector form of :func:`map_id`, fast path for numpy integer arrays."""
    if (isinstance(source_ids, np.ndarray) and source_ids.dtype.kind in "iu"
            and (source_ids.dtype.kind == "u" or not len(source_ids) or source_ids.min() >= 0)):
            return source_ids.tolist(), [True] * len(source_ids)
    out: list[int | str] = []
    kept: list[bool] = []
    for sid in source_ids:
        q, k = map_id(sid)
        out.append(q)
        kept.append(k)
    return out, kept


def normalize_point_id(pid: Any) -> int | str:
    """Qdrant's canonical form of a point id as returned by a target (int or lowercase UUID)."""
    if isinstance(pid, (int, np.integer)):
        return int(pid)
    return str(uuid.UUID(str(pid)))
