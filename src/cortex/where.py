"""``--where EXPR``: a small payload-condition language, parsed once into an AST.

Grammar (keywords are case-insensitive)::

    expr    := or
    or      := and ("OR" and)*
    and     := not ("AND" not)*
    not     := "NOT" not | "(" expr ")" | cond
    cond    := FIELD op VALUE | FIELD ["NOT"] "IN" "(" VALUE ("," VALUE)* ")"
    op      := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="
    VALUE   := 'string' ('' escapes a quote) | number | true | false
    FIELD   := a payload key: letters, digits, "_", "-", "." (a dotted key reads nested objects), or "quoted"

Semantics, the same in every place a condition runs (the generic filter below, SQL, pyarrow,
Chroma, Qdrant): ``=``/``!=``/``IN`` compare equal values (``1 = 1.0``; ``true`` is not ``1``);
``<``, ``<=``, ``>``, ``>=`` take a number or an ISO timestamp (``'2026-01-01'``,
``'2026-01-01T12:00:00Z'``; a timestamp without a zone is UTC) and compare numbers with numbers,
timestamps with timestamps.  A condition on a missing or null field is false, so
``NOT`` of it is true and ``a != 'x'`` needs ``a`` to be present.

Sources that can filter themselves are handed the AST and push it down (pgvector SQL, Parquet
and LanceDB arrow filters, Chroma ``where``, Qdrant filters); elsewhere :func:`matches` runs
over each batch's payloads while streaming, and the records left out count as ``skipped``.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cortex.errors import CortexError

Value = str | int | float | bool
RANGE_OPS = ("<", "<=", ">", ">=")
_OPS = {"=": "=", "==": "=", "!=": "!=", "<>": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


class WhereError(CortexError):
    """A --where expression that does not parse (exit 2)."""


class NotPushable(CortexError):
    """The expression cannot be said in a store's own terms with the same meaning (sources then filter
    while streaming; a target has no such fallback, and the message says why)."""


# -- AST ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cmp:
    field: str
    op: str  # = != < <= > >=
    value: Value

    @property
    def is_time(self) -> bool:
        return self.op in RANGE_OPS and isinstance(self.value, str)


@dataclass(frozen=True)
class In:
    field: str
    values: tuple[Value, ...]
    negated: bool = False


@dataclass(frozen=True)
class And:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Not:
    item: Expr


Expr = Cmp | In | And | Or | Not


def fields(e: Expr) -> set[str]:
    """The payload fields an expression reads."""
    if isinstance(e, Cmp | In):
        return {e.field}
    if isinstance(e, Not):
        return fields(e.item)
    return set().union(*(fields(i) for i in e.items))


def to_text(e: Expr) -> str:
    """The canonical text of an expression (parses back to the same AST)."""
    if isinstance(e, Cmp):
        return f"{_field_text(e.field)} {e.op} {_lit(e.value)}"
    if isinstance(e, In):
        return f"{_field_text(e.field)} {'NOT IN' if e.negated else 'IN'} ({', '.join(map(_lit, e.values))})"
    if isinstance(e, Not):
        return f"NOT ({to_text(e.item)})"
    sep = " AND " if isinstance(e, And) else " OR "
    return sep.join(f"({to_text(i)})" if isinstance(i, And | Or) else to_text(i) for i in e.items)


def _field_text(f: str) -> str:
    return f if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]*", f) else '"' + f.replace('"', '""') + '"'


def _lit(v: Value) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    return repr(v)


def equals(field: str, value: Value) -> Cmp:
    """``field = value``, the condition of one rollout unit."""
    return Cmp(field, "=", value)


# -- parser ------------------------------------------------------------------------------------
_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>'(?:[^']|'')*')
  | (?P<qid>"(?:[^"]|"")*")
  | (?P<num>-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![A-Za-z_]))
  | (?P<op><=|>=|!=|<>|==|=|<|>)
  | (?P<punct>[(),])
  | (?P<word>[A-Za-z_][A-Za-z0-9_.\-]*)
""", re.VERBOSE)
_KEYWORDS = {"AND", "OR", "NOT", "IN", "TRUE", "FALSE"}


@dataclass
class _Tok:
    kind: str  # str qid num op punct word kw end
    text: str
    pos: int
    value: Any = None


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    i = 0
    while i < len(text):
        m = _TOKEN.match(text, i)
        if m is None:
            what = "an unterminated string" if text[i] in "'\"" else f"an unexpected character {text[i]!r}"
            raise _error(text, i, what)
        kind = m.lastgroup or ""
        s = m.group()
        if kind == "str":
            out.append(_Tok("str", s, i, s[1:-1].replace("''", "'")))
        elif kind == "qid":
            out.append(_Tok("word", s, i, s[1:-1].replace('""', '"')))
        elif kind == "num":
            out.append(_Tok("num", s, i, float(s) if any(c in s for c in ".eE") else int(s)))
        elif kind == "word" and s.upper() in _KEYWORDS:
            out.append(_Tok("kw", s.upper(), i))
        elif kind == "word":
            out.append(_Tok("word", s, i, s))
        elif kind != "ws":
            out.append(_Tok(kind, s, i))
        i = m.end()
    out.append(_Tok("end", "", len(text)))
    return out


def _error(text: str, pos: int, what: str) -> WhereError:
    shown = text[pos:pos + 12] or "the end"
    return WhereError(f"--where {text!r}: {what} at position {pos + 1} (at {shown!r}); write conditions like "
                      "--where \"workspace_id = 'ws-1' AND created_at >= '2026-01-01'\"")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def fail(self, what: str, tok: _Tok | None = None) -> WhereError:
        return _error(self.text, (tok or self.tok).pos, what)

    def is_kw(self, word: str) -> bool:
        return self.tok.kind == "kw" and self.tok.text == word

    def parse(self) -> Expr:
        if self.tok.kind == "end":
            raise self.fail("an empty expression")
        e = self.or_()
        if self.tok.kind != "end":
            raise self.fail("expected AND, OR or the end")
        return e

    def or_(self) -> Expr:
        items = [self.and_()]
        while self.is_kw("OR"):
            self.take()
            items.append(self.and_())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_(self) -> Expr:
        items = [self.not_()]
        while self.is_kw("AND"):
            self.take()
            items.append(self.not_())
        return items[0] if len(items) == 1 else And(tuple(items))

    def not_(self) -> Expr:
        if self.is_kw("NOT"):
            self.take()
            return Not(self.not_())
        if self.tok.kind == "punct" and self.tok.text == "(":
            self.take()
            e = self.or_()
            if not (self.tok.kind == "punct" and self.tok.text == ")"):
                raise self.fail("expected ')'")
            self.take()
            return e
        return self.cond()

    def value(self) -> tuple[Value, _Tok]:
        t = self.tok
        if t.kind in ("str", "num"):
            self.take()
            return t.value, t
        if t.kind == "kw" and t.text in ("TRUE", "FALSE"):
            self.take()
            return t.text == "TRUE", t
        raise self.fail("expected a value ('text', a number, true or false)")

    def cond(self) -> Expr:
        t = self.tok
        if t.kind != "word":
            raise self.fail("expected a field name")
        self.take()
        name = t.value
        negated = False
        if self.is_kw("NOT"):
            self.take()
            negated = True
            if not self.is_kw("IN"):
                raise self.fail("expected IN after NOT")
        if self.is_kw("IN"):
            self.take()
            if not (self.tok.kind == "punct" and self.tok.text == "("):
                raise self.fail("expected '(' after IN")
            self.take()
            vals = [self.value()[0]]
            while self.tok.kind == "punct" and self.tok.text == ",":
                self.take()
                vals.append(self.value()[0])
            if not (self.tok.kind == "punct" and self.tok.text == ")"):
                raise self.fail("expected ',' or ')' in the IN list")
            self.take()
            return In(name, tuple(vals), negated)
        if self.tok.kind != "op":
            raise self.fail(f"expected an operator (=, !=, <, <=, >, >=, IN) after {name!r}")
        op = _OPS[self.take().text]
        v, vt = self.value()
        if op in RANGE_OPS:
            if isinstance(v, bool):
                raise self.fail(f"'{op}' compares numbers or ISO timestamps, not true/false", vt)
            if isinstance(v, str) and parse_time(v) is None:
                raise self.fail(f"'{op}' compares numbers or ISO timestamps; {v!r} is neither "
                                "(e.g. '2026-01-01' or '2026-01-01T12:00:00Z')", vt)
        return Cmp(name, op, v)


def parse(text: str | None) -> Expr | None:
    """The AST of ``text`` (None for None/blank); :class:`WhereError` points at the position of a mistake."""
    if text is None or not str(text).strip():
        return None
    return _Parser(str(text)).parse()


# -- evaluation over payloads --------------------------------------------------------------------
def parse_time(v: Any) -> _dt.datetime | None:
    """An aware datetime from an ISO string / date / datetime (no zone: UTC); None otherwise."""
    if isinstance(v, _dt.datetime):
        d = v
    elif isinstance(v, _dt.date):
        d = _dt.datetime(v.year, v.month, v.day)
    elif isinstance(v, str) and len(v) >= 10 and v[4:5] == "-":
        try:
            d = _dt.datetime.fromisoformat(v.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return d if d.tzinfo is not None else d.replace(tzinfo=_dt.UTC)


def time_literal(v: str) -> _dt.datetime:
    d = parse_time(v)
    assert d is not None  # checked by the parser
    return d


def _get(payload: dict[str, Any] | None, field: str) -> Any:
    if not payload:
        return None
    if field in payload:
        return payload[field]
    cur: Any = payload
    for part in field.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool | np.bool_)


def value_equal(a: Any, b: Value) -> bool:
    """``a = b`` as every filter means it: numbers by value, bools only with bools, strings with strings."""
    if a is None:
        return False
    if isinstance(b, bool) or isinstance(a, bool | np.bool_):
        return isinstance(a, bool | np.bool_) and isinstance(b, bool) and bool(a) == b
    if _is_num(b):
        return _is_num(a) and float(a) == float(b)
    return isinstance(a, str) and a == b


def _compare(a: Any, op: str, b: Value) -> bool:
    if isinstance(b, str):
        x, y = parse_time(a), time_literal(b)
        if x is None:
            return False
    elif _is_num(a):
        x, y = float(a), float(b)
    else:
        return False
    return {"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]


def _leaf(column: Sequence[Any], e: Cmp | In) -> np.ndarray:
    n = len(column)
    if isinstance(e, In):
        hit = np.fromiter((any(value_equal(v, b) for b in e.values) for v in column), dtype=bool, count=n)
        if e.negated:
            present = np.fromiter((v is not None for v in column), dtype=bool, count=n)
            return present & ~hit
        return hit
    if e.op == "=":
        return np.fromiter((value_equal(v, e.value) for v in column), dtype=bool, count=n)
    if e.op == "!=":
        return np.fromiter((v is not None and not value_equal(v, e.value) for v in column), dtype=bool, count=n)
    return np.fromiter((_compare(v, e.op, e.value) for v in column), dtype=bool, count=n)


def matches(e: Expr, payloads: Sequence[dict[str, Any] | None]) -> np.ndarray:
    """A boolean mask: which payloads satisfy ``e`` (each field's column is read once per batch)."""
    columns = {f: [_get(p, f) for p in payloads] for f in fields(e)}

    def ev(x: Expr) -> np.ndarray:
        if isinstance(x, Cmp | In):
            return _leaf(columns[x.field], x)
        if isinstance(x, Not):
            return ~ev(x.item)
        masks = [ev(i) for i in x.items]
        out = masks[0].copy()
        for m in masks[1:]:
            if isinstance(x, And):
                out &= m
            else:
                out |= m
        return out

    return ev(e)


# -- Qdrant filters (qdrant-client models or qdrant_edge classes) --------------------------------
def to_qdrant(e: Expr, flavor: str = "client") -> Any:
    """A Qdrant ``Filter`` for ``e``: ``flavor`` "client" (qdrant_client.models) or "edge" (qdrant_edge)."""
    if flavor == "edge":
        import qdrant_edge as m


        def filt(must: Any = None, should: Any = None, must_not: Any = None) -> Any:
            return m.Filter(must=must, should=should, must_not=must_not)

        def match(key: str, v: Any) -> Any:
            # a Python bool reaches the binding as an integer (matching 1/0, not true/false); numpy's bool does not
            return m.FieldCondition(key=key, match=m.MatchValue(np.bool_(v) if isinstance(v, bool) else v))

        def any_(key: str, vs: list[Any]) -> Any:
            return m.FieldCondition(key=key, match=m.MatchAny(vs))

        def rng(key: str, time: bool, **kw: Any) -> Any:
            return m.FieldCondition(key=key, range=(m.RangeDateTime if time else m.RangeFloat)(**kw))

        def empty(key: str) -> Any:
            return m.IsEmptyCondition(key=key)
    else:
        from qdrant_client import models as m

        def filt(must: Any = None, should: Any = None, must_not: Any = None) -> Any:
            return m.Filter(must=must, should=should, must_not=must_not)

        def match(key: str, v: Any) -> Any:
            return m.FieldCondition(key=key, match=m.MatchValue(value=v))

        def any_(key: str, vs: list[Any]) -> Any:
            return m.FieldCondition(key=key, match=m.MatchAny(any=vs))

        def rng(key: str, time: bool, **kw: Any) -> Any:
            return m.FieldCondition(key=key, range=(m.DatetimeRange if time else m.Range)(**kw))

        def empty(key: str) -> Any:
            return m.IsEmptyCondition(is_empty=m.PayloadField(key=key))

    names = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}

    def eq(key: str, v: Value) -> Any:
        if isinstance(v, float) and not v.is_integer():
            return rng(key, False, gte=v, lte=v)  # MatchValue takes strings, integers and bools
        return match(key, int(v) if isinstance(v, float) else v)

    def cond(x: Expr) -> Any:
        if isinstance(x, Cmp):
            if x.op == "=":
                return eq(x.field, x.value)
            if x.op == "!=":
                return filt(must_not=[empty(x.field), eq(x.field, x.value)])
            v = x.value
            return rng(x.field, isinstance(v, str), **{names[x.op]: (time_literal(v).isoformat()
                                                                    if isinstance(v, str) else float(v))})
        if isinstance(x, In):
            if all(isinstance(v, str) for v in x.values) or all(isinstance(v, int) and not isinstance(v, bool)
                                                                for v in x.values):
                hit = any_(x.field, list(x.values))
            else:
                hit = filt(should=[eq(x.field, v) for v in x.values])
            return filt(must_not=[empty(x.field), hit]) if x.negated else hit
        if isinstance(x, Not):
            return filt(must_not=[cond(x.item)])
        parts = [cond(i) for i in x.items]
        return filt(must=parts) if isinstance(x, And) else filt(should=parts)

    out = cond(e)
    return out if _is_filter(out) else filt(must=[out])


def _is_filter(x: Any) -> bool:
    return type(x).__name__ == "Filter"


# -- arrow (Parquet, LanceDB): a mask over a record batch, before any row is decoded ----------------


def arrow_mask(e: Expr, rb: Any) -> Any:
    """A boolean ``pyarrow`` array: which rows of record batch ``rb`` satisfy ``e``; :class:`NotPushable` else.

    Columns are compared with literals of their own kind (text, numbers, booleans, timestamps for
    ranges); a null is false, as everywhere in this module.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    names = set(rb.schema.names)

    def lit(col: Any, v: Value, op: str) -> Any:
        t = col.type
        if isinstance(v, bool):
            if pa.types.is_boolean(t) and op in ("=", "!="):
                return pa.scalar(v)
        elif isinstance(v, int | float):
            if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
                return pa.scalar(float(v) if pa.types.is_floating(t) or isinstance(v, float) else v)
        elif op in RANGE_OPS:
            if pa.types.is_timestamp(t):
                d = time_literal(v)
                d = d if t.tz else d.astimezone(_dt.UTC).replace(tzinfo=None)
                return pa.scalar(d, type=t)
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            return pa.scalar(v, type=t)
        raise NotPushable

    fn = {"=": pc.equal, "!=": pc.not_equal, "<": pc.less, "<=": pc.less_equal, ">": pc.greater,
          ">=": pc.greater_equal}

    def go(x: Expr) -> Any:
        if isinstance(x, Cmp | In) and x.field not in names:
            raise NotPushable
        if isinstance(x, Cmp):
            col = rb.column(x.field)
            return pc.fill_null(fn[x.op](col, lit(col, x.value, x.op)), False)
        if isinstance(x, In):
            col = rb.column(x.field)
            hit = None
            for v in x.values:
                m = pc.fill_null(pc.equal(col, lit(col, v, "=")), False)
                hit = m if hit is None else pc.or_(hit, m)
            return pc.and_(pc.is_valid(col), pc.invert(hit)) if x.negated else hit
        if isinstance(x, Not):
            return pc.invert(go(x.item))
        masks = [go(i) for i in x.items]
        out = masks[0]
        for m in masks[1:]:
            out = pc.and_(out, m) if isinstance(x, And) else pc.or_(out, m)
        return out

    return go(e)


def arrow_pushable(e: Expr, schema: Any) -> bool:
    """Whether :func:`arrow_mask` can run ``e`` over record batches of ``schema``."""
    import pyarrow as pa

    try:
        arrow_mask(e, pa.RecordBatch.from_pylist([], schema=schema))
        return True
    except NotPushable:
        return False
