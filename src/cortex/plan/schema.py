"""Payload schema from a stream: field -> types, fill rate, distinct estimate, examples; suggested indexes.

Memory is bounded per field (a KMV sketch, a few examples, min/max); nested objects are
described by dotted paths (``meta.lang``), as Qdrant's payload keys address them.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from cortex.plan.sketch import KMV, hash64

MAX_FIELDS = 200  # a payload with more distinct keys is described by its first 200
MAX_EXAMPLES = 3
LONG_TEXT = 64  # mean characters above which a string field looks like text, not a tag
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")
_TENANT = re.compile(r"(^|_|\.)(workspace|tenant|org|organization|account|customer|team|project|user)(_?id)?$", re.I)


def value_type(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "datetime" if _DATE.match(v) else "string"
    if isinstance(v, (dt.date, dt.datetime)):
        return "datetime"
    if isinstance(v, list):
        return "list"
    if isinstance(v, dict):
        return "object"
    if v is None:
        return "null"
    return type(v).__name__


@dataclass
class FieldStats:
    name: str
    count: int = 0  # points that have it (not null)
    types: dict[str, int] = field(default_factory=dict)
    examples: list[Any] = field(default_factory=list)
    chars: int = 0  # total characters of string values (mean length)
    strings: int = 0
    list_items: int = 0
    sketch: KMV = field(default_factory=KMV)

    def add(self, v: Any) -> None:
        t = value_type(v)
        if t == "null":
            self.types["null"] = self.types.get("null", 0) + 1
            return
        self.count += 1
        values = v if isinstance(v, list) else [v]
        if t == "list":
            self.list_items += len(v)
            inner = {value_type(x) for x in v} - {"null"}
            t = f"list[{'|'.join(sorted(inner)) or 'empty'}]"
        self.types[t] = self.types.get(t, 0) + 1
        for x in values:
            if isinstance(x, (dict, list)):
                continue
            if isinstance(x, str):
                self.chars += len(x)
                self.strings += 1
            self.sketch.add(hash64(x))
        if len(self.examples) < MAX_EXAMPLES and v not in self.examples:
            self.examples.append(_short(v))

    def base_type(self) -> str:
        """The dominant scalar type (lists described by their items)."""
        counts: dict[str, int] = {}
        for t, c in self.types.items():
            if t == "null":
                continue
            t = t[5:-1] if t.startswith("list[") else t
            for part in t.split("|"):
                counts[part] = counts.get(part, 0) + c
        if not counts:
            return "null"
        if set(counts) <= {"integer", "float"} and "float" in counts:
            return "float"
        return max(counts, key=counts.get)


def _short(v: Any) -> Any:
    if isinstance(v, str) and len(v) > 60:
        return v[:57] + "..."
    if isinstance(v, list) and len(v) > 5:
        return [_short(x) for x in v[:5]] + ["..."]
    if isinstance(v, dict):
        return "{...}"
    return v


class SchemaScan:
    """Feed payload dicts with :meth:`add`; :meth:`result` describes the fields."""

    def __init__(self) -> None:
        self.fields: dict[str, FieldStats] = {}
        self.points = 0
        self.dropped_fields = 0

    def add(self, payload: dict[str, Any] | None) -> None:
        self.points += 1
        if payload:
            self._walk(payload, "")

    def _walk(self, obj: dict[str, Any], prefix: str) -> None:
        for k, v in obj.items():
            name = f"{prefix}{k}"
            if isinstance(v, dict) and v:
                self._walk(v, name + ".")
                continue
            fs = self.fields.get(name)
            if fs is None:
                if len(self.fields) >= MAX_FIELDS:
                    self.dropped_fields += 1
                    continue
                fs = self.fields[name] = FieldStats(name)
            fs.add(v)

    def result(self) -> list[dict[str, Any]]:
        out = []
        for fs in sorted(self.fields.values(), key=lambda f: (-f.count, f.name)):
            distinct = min(fs.sketch.estimate(), fs.count + fs.list_items)
            out.append({
                "field": fs.name,
                "types": dict(sorted(fs.types.items(), key=lambda kv: -kv[1])),
                "type": fs.base_type(),
                "fill_rate": round(fs.count / self.points, 4) if self.points else 0.0,
                "distinct": distinct,
                "distinct_exact": fs.sketch.exact,
                "mean_chars": round(fs.chars / fs.strings, 1) if fs.strings else None,
                "examples": fs.examples,
                "suggested_index": suggest_index(fs, distinct, self.points),
            })
        return out


def suggest_index(fs: FieldStats, distinct: int, points: int) -> dict[str, Any] | None:
    """The payload index an application filtering on this field would want, with the reason."""
    t = fs.base_type()
    if fs.count == 0 or t in ("null", "object"):
        return None
    if t == "bool":
        return {"type": "bool", "why": "boolean flag"}
    if t == "integer":
        return {"type": "integer", "why": "integer values (match and range filters)"}
    if t == "float":
        return {"type": "float", "why": "numeric values (range filters)"}
    if t == "datetime":
        return {"type": "datetime", "why": "timestamps (range filters)"}
    if t != "string":
        return None
    mean = fs.chars / fs.strings if fs.strings else 0
    if mean > LONG_TEXT:
        return {"type": "text", "why": f"long strings (mean {mean:.0f} chars): full-text match"}
    if distinct == fs.count and fs.count > 100:
        return None  # unique per point (a key or a path): filtering on it is a lookup, not worth an index
    tenant = bool(_TENANT.search(fs.name)) and fs.count >= 0.99 * points and 1 < distinct <= max(2, points // 10)
    if tenant:
        return {"type": "keyword", "is_tenant": True,
                "why": f"every point has it and {distinct:,} values partition the data: a tenant key "
                       "(is_tenant co-locates each tenant's points)"}
    if distinct <= max(1000, points // 20):
        return {"type": "keyword", "why": f"low-cardinality strings ({distinct:,} distinct)"}
    return None
