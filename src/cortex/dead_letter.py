"""The dead-letter file: rejected records, one JSON object per line, with location and reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from cortex.sources.base import Rejected


class DeadLetter:
    """Rejected records, one JSON object per line; the file is created on first use."""

    def __init__(self, path: Path | None, truncate_to: int | None = None) -> None:
        self.path = path
        self._fh: Any = None
        self.count = 0
        self.offset = 0  # bytes in the file: a checkpoint records it, a resume truncates to it
        if path is not None and path.exists():
            if truncate_to is not None:
                with open(path, "r+b") as fh:
                    fh.truncate(truncate_to)
            self.offset = path.stat().st_size

    def write(self, rejected: list[Rejected]) -> None:
        if not rejected or self.path is None:
            return
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "ab")  # noqa: SIM115 - closed in close()
        for r in rejected:
            rec = {"location": r.location, "reason": r.reason, "id": r.id, "record": r.raw}
            self._fh.write(dumps(rec) + b"\n")
        self._fh.flush()
        self.offset = self._fh.tell()
        self.count += len(rejected)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()



def dumps(obj: Any) -> bytes:
    """JSON bytes of a record; integers beyond 64 bits (which orjson refuses) are written exactly."""
    try:
        return orjson.dumps(obj, default=str, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError:
        return json.dumps(obj, default=_default, ensure_ascii=False, separators=(",", ":")).encode()


def _default(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return str(v)
