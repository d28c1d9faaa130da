"""Payload equality as Qdrant round-trips it: floats may come back one ulp away."""

from __future__ import annotations

import math
from typing import Any


def payload_equal(a: Any, b: Any, rel_tol: float = 1e-12) -> bool:
    """Deep equality where float values match within ``rel_tol`` (ints and bools compare exactly)."""
    if isinstance(a, float) or isinstance(b, float):
        numbers = all(isinstance(x, int | float) and not isinstance(x, bool) for x in (a, b))
        if not numbers:
            return False
        if math.isnan(a) and math.isnan(b):
            return True
        return math.isclose(a, b, rel_tol=rel_tol, abs_tol=1e-300)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(payload_equal(a[k], b[k], rel_tol) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(payload_equal(x, y, rel_tol) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b or (isinstance(a, int) and isinstance(b, int) and a == b
                                             and not isinstance(a, bool) and not isinstance(b, bool))
