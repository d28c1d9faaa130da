"""Reports people look at: a JSON file and a self-contained HTML page (inline CSS and SVG, no network).

``--report FILE`` on verify, compare and benchmark calls :func:`write_report`:
``FILE.html`` writes the page there and the JSON beside it (``FILE.json``); any other name
writes the JSON there and the page beside it (same name, ``.html`` suffix).
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson

HTML_MAX_PROBLEMS = 10_000  # rows in the HTML page; the JSON has them all
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def report_paths(path: str | Path) -> tuple[Path, Path]:
    """(json_path, html_path) for ``--report path``."""
    p = Path(path)
    if p.suffix.lower() in (".html", ".htm"):
        return p.with_suffix(".json"), p
    return p, p.with_suffix(".html") if p.suffix else p.with_name(p.name + ".html")


def write_report(path: str | Path, data: dict[str, Any], page: str) -> tuple[Path, Path]:
    """Write ``data`` as JSON and ``page`` as HTML (see :func:`report_paths`); returns both paths."""
    jpath, hpath = report_paths(path)
    for p in (jpath, hpath):
        p.parent.mkdir(parents=True, exist_ok=True)
    jpath.write_bytes(orjson.dumps(data, default=str, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY
                                   | orjson.OPT_NON_STR_KEYS))
    hpath.write_text(page, encoding="utf-8")
    return jpath, hpath


# -- HTML building blocks ------------------------------------------------------------------
_CSS = """
body{font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;margin:2rem auto;max-width:1100px;
color:#222;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
.sub{color:#666;margin-top:0}.ok{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:600}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}th,td{border:1px solid #ddd;padding:.3rem .6rem;
text-align:left;vertical-align:top}th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
.note{color:#555;font-size:.85rem;max-width:900px}svg{background:#fff;margin:.5rem 1rem .5rem 0}
.plots{display:flex;flex-wrap:wrap}code{background:#f6f8fa;padding:0 .2rem}
"""


def esc(v: Any) -> str:
    return html.escape(str(v), quote=True)


def fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        return f"{v:,.4g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def page(title: str, subtitle: str, sections: Iterable[str]) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S")
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{esc(title)}</title>"
            f"<meta name=viewport content='width=device-width,initial-scale=1'><style>{_CSS}</style></head><body>"
            f"<h1>{esc(title)}</h1><p class=sub>{esc(subtitle)} · generated {esc(when)} by cortex</p>"
            + "".join(sections) + "</body></html>")


def section(title: str, *parts: str) -> str:
    return f"<h2>{esc(title)}</h2>" + "".join(parts)


def note(text: str) -> str:
    return f"<p class=note>{esc(text)}</p>"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], raw: bool = False) -> str:
    """An HTML table; numbers are right-aligned. ``raw`` cells are inserted without escaping."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for c in row:
            cls = " class=num" if isinstance(c, int | float) and not isinstance(c, bool) else ""
            cells.append(f"<td{cls}>{c if raw and isinstance(c, str) else esc(fmt(c))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def kv_table(items: Iterable[tuple[str, Any]]) -> str:
    return table(("", ""), [(k, v) for k, v in items])


def status(ok: bool, yes: str = "PASSED", no: str = "FAILED") -> str:
    return f"<p class={'ok' if ok else 'fail'}>{esc(yes if ok else no)}</p>"


# -- SVG plots ---------------------------------------------------------------------------------
_W, _H, _L, _R, _T, _B = 520, 300, 62, 16, 28, 46  # size and margins


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    t = start
    while t <= hi + step * 1e-9:
        if t >= lo - step * 1e-9:
            ticks.append(round(t, 12))
        t += step
    return ticks


def _frame(title: str, xlabel: str, ylabel: str, x0: float, x1: float, y0: float, y1: float,
           xticks: list[float], yticks: list[float]) -> tuple[list[str], Any, Any]:
    pw, ph = _W - _L - _R, _H - _T - _B

    def sx(x: float) -> float:
        return _L + (x - x0) / (x1 - x0 or 1) * pw

    def sy(y: float) -> float:
        return _T + ph - (y - y0) / (y1 - y0 or 1) * ph

    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{_W}' height='{_H}' viewBox='0 0 {_W} {_H}' "
           f"role='img' aria-label='{esc(title)}' font-family='sans-serif' font-size='11'>",
           f"<text x='{_W / 2}' y='16' text-anchor='middle' font-size='13' font-weight='600'>{esc(title)}</text>",
           f"<rect x='{_L}' y='{_T}' width='{pw}' height='{ph}' fill='none' stroke='#999'/>"]
    for t in xticks:
        out.append(f"<line x1='{sx(t):.1f}' x2='{sx(t):.1f}' y1='{_T}' y2='{_T + ph}' stroke='#eee'/>"
                   f"<text x='{sx(t):.1f}' y='{_T + ph + 14}' text-anchor='middle'>{esc(_tick(t))}</text>")
    for t in yticks:
        out.append(f"<line x1='{_L}' x2='{_L + pw}' y1='{sy(t):.1f}' y2='{sy(t):.1f}' stroke='#eee'/>"
                   f"<text x='{_L - 5}' y='{sy(t) + 4:.1f}' text-anchor='end'>{esc(_tick(t))}</text>")
    out.append(f"<text x='{_L + pw / 2}' y='{_H - 8}' text-anchor='middle'>{esc(xlabel)}</text>")
    out.append(f"<text transform='translate(14,{_T + ph / 2}) rotate(-90)' text-anchor='middle'>{esc(ylabel)}</text>")
    return out, sx, sy


def _tick(t: float) -> str:
    return f"{t:g}" if abs(t) < 1e5 else f"{t:.2g}"


def _legend(out: list[str], names: Sequence[str], bottom: bool = False) -> None:
    for i, name in enumerate(names):
        y = (_H - _B - 10 - 14 * (len(names) - 1 - i)) if bottom else (_T + 10 + 14 * i)
        out.append(f"<rect x='{_W - _R - 150}' y='{y - 8}' width='10' height='10' fill='{PALETTE[i % len(PALETTE)]}'/>"
                   f"<text x='{_W - _R - 136}' y='{y + 1}'>{esc(name[:24])}</text>")


def svg_cdf(series: dict[str, Sequence[float]], title: str = "Latency distribution (CDF)",
            xlabel: str = "latency (ms)") -> str:
    """Empirical CDF per series; a log x axis when values span more than 20x (latency tails)."""
    data = {k: sorted(v) for k, v in series.items() if v}
    if not data:
        return ""
    lo = min(v[0] for v in data.values())
    hi = max(v[-1] for v in data.values()) or 1.0
    log = lo > 0 and hi / lo > 20
    if log:
        x0, x1 = math.log10(lo), math.log10(hi)
        ticks = [math.log10(m * 10.0 ** e) for e in range(math.floor(x0), math.ceil(x1) + 1) for m in (1, 2, 5)
                 if x0 - 1e-9 <= math.log10(m * 10.0 ** e) <= x1 + 1e-9]
        if len(ticks) < 2:
            ticks = [x0, x1]
        out, sx, sy = _frame(title, xlabel + " (log scale)", "fraction of queries ≤ x", x0, x1, 0.0, 1.0, [],
                             [0, 0.25, 0.5, 0.75, 1.0])
        for t in ticks:  # labels in real units
            out.append(f"<line x1='{sx(t):.1f}' x2='{sx(t):.1f}' y1='{_T}' y2='{_H - _B}' stroke='#eee'/>"
                       f"<text x='{sx(t):.1f}' y='{_H - _B + 14}' text-anchor='middle'>{esc(_tick(10 ** t))}</text>")
    else:
        xticks = _nice_ticks(0.0, hi)
        x0, x1 = 0.0, max(hi, xticks[-1])
        out, sx, sy = _frame(title, xlabel, "fraction of queries ≤ x", x0, x1, 0.0, 1.0, xticks,
                             [0, 0.25, 0.5, 0.75, 1.0])
    for i, (name, vals) in enumerate(data.items()):
        n = len(vals)
        step = max(1, n // 400)  # at most ~400 points per line
        pts = [(math.log10(v) if log else v, (j + 1) / n) for j, v in enumerate(vals) if j % step == 0 or j == n - 1]
        d = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in [(pts[0][0], 0.0), *pts])
        out.append(f"<polyline fill='none' stroke='{PALETTE[i % len(PALETTE)]}' stroke-width='2' points='{d}'>"
                   f"<title>{esc(name)}</title></polyline>")
    _legend(out, list(data), bottom=True)
    out.append("</svg>")
    return "".join(out)


def svg_bars(values: dict[str, float | None], title: str, ylabel: str, ymax: float | None = None,
             threshold: float | None = None, label: Any = None) -> str:
    """One bar per entry (None bars are drawn empty), optional dashed threshold line."""
    vals = {k: (v if v is not None and not math.isnan(v) else None) for k, v in values.items()}
    if not vals:
        return ""
    top = ymax if ymax is not None else max([v for v in vals.values() if v is not None] + [threshold or 0, 1e-9])
    yticks = _nice_ticks(0.0, top)
    top = max(top, yticks[-1])
    out, _sx, sy = _frame(title, "", ylabel, 0.0, 1.0, 0.0, top, [], yticks)
    pw = _W - _L - _R
    slot = pw / len(vals)
    bw = min(80.0, slot * 0.6)
    for i, (name, v) in enumerate(vals.items()):
        x = _L + slot * i + (slot - bw) / 2
        if v is not None:
            y = sy(v)
            text = (label or fmt)(v)
            ty, color = (y + 14, "#fff") if y - _T < 16 else (y - 4, "#222")  # inside a bar that reaches the top
            out.append(f"<rect x='{x:.1f}' y='{y:.1f}' width='{bw:.1f}' height='{sy(0) - y:.1f}' "
                       f"fill='{PALETTE[i % len(PALETTE)]}'><title>{esc(name)}: {esc(text)}</title></rect>"
                       f"<text x='{x + bw / 2:.1f}' y='{ty:.1f}' text-anchor='middle' fill='{color}'>"
                       f"{esc(text)}</text>")
        out.append(f"<text x='{x + bw / 2:.1f}' y='{_H - _B + 14}' text-anchor='middle'>{esc(name[:22])}</text>")
    if threshold is not None:
        out.append(f"<line x1='{_L}' x2='{_W - _R}' y1='{sy(threshold):.1f}' y2='{sy(threshold):.1f}' "
                   f"stroke='#cf222e' stroke-dasharray='5,4'/><text x='{_W - _R - 4}' y='{sy(threshold) - 4:.1f}' "
                   f"text-anchor='end' fill='#cf222e'>threshold {esc(fmt(threshold))}</text>")
    out.append("</svg>")
    return "".join(out)


def svg_lines(series: dict[str, Sequence[tuple[float, float, str]]], title: str, xlabel: str,
              ylabel: str, ymin: float | None = None, ymax: float | None = None) -> str:
    """Lines through labelled points (x, y, label), e.g. recall vs latency per ef."""
    pts_all = [(x, y) for pts in series.values() for x, y, _ in pts]
    if not pts_all:
        return ""
    xs, ys = [p[0] for p in pts_all], [p[1] for p in pts_all]
    x0, x1 = 0.0, max(xs) * 1.1 or 1.0
    y0 = ymin if ymin is not None else min(ys)
    y1 = ymax if ymax is not None else max(ys)
    if y1 - y0 < 1e-9:
        y0, y1 = y0 - 0.05, y1 + 0.05
    xticks, yticks = _nice_ticks(x0, x1), _nice_ticks(y0, y1)
    x1, y0, y1 = max(x1, xticks[-1]), min(y0, yticks[0]), max(y1, yticks[-1])
    out, sx, sy = _frame(title, xlabel, ylabel, x0, x1, y0, y1, xticks, yticks)
    for i, pts in enumerate(series.values()):
        color = PALETTE[i % len(PALETTE)]
        d = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y, _ in pts)
        out.append(f"<polyline fill='none' stroke='{color}' stroke-width='2' points='{d}'/>")
        for x, y, label in pts:
            out.append(f"<circle cx='{sx(x):.1f}' cy='{sy(y):.1f}' r='3.5' fill='{color}'>"
                       f"<title>{esc(label)}: x={esc(fmt(x))}, y={esc(fmt(y))}</title></circle>"
                       f"<text x='{sx(x) + 5:.1f}' y='{sy(y) - 5:.1f}'>{esc(label)}</text>")
    if len(series) > 1:
        _legend(out, list(series), bottom=True)
    out.append("</svg>")
    return "".join(out)


def plots(*svgs: str) -> str:
    return "<div class=plots>" + "".join(s for s in svgs if s) + "</div>"


# -- per-command pages -----------------------------------------------------------------------
def verify_page(d: dict[str, Any]) -> str:
    """HTML for a :class:`cortex.verify.VerifyReport` dict."""
    counts = [("result", "OK" if d.get("ok") else "FAILED"), ("mode", d.get("mode")),
              ("source", d.get("source")), ("target", d.get("target")), ("distance", d.get("distance")),
              ("dimension", d.get("dim")), ("expected count (source, distinct valid)", d.get("expected_count")),
              ("actual count (Qdrant)", d.get("actual_count")), ("checked points", d.get("checked")),
              ("missing", d.get("missing")), ("extra", d.get("extra")),
              ("vector mismatches", d.get("vector_mismatches")), ("payload mismatches", d.get("payload_mismatches")),
              ("invalid source records", d.get("source_invalid")), ("source duplicates", d.get("source_duplicates")),
              ("tolerance (max abs difference)", d.get("tolerance")), ("seconds", d.get("seconds")),
              ("points/s", d.get("points_per_second"))]
    probs = d.get("problems") or []
    bars = svg_bars({"missing": d.get("missing", 0), "extra": d.get("extra", 0),
                     "vector": d.get("vector_mismatches", 0), "payload": d.get("payload_mismatches", 0)},
                    "Problems by kind", "points")
    shown = probs[:HTML_MAX_PROBLEMS]
    listed = table(("kind", "id", "detail"), [(p.get("kind"), p.get("id"), p.get("detail")) for p in shown])
    if len(probs) > len(shown):
        listed += note(f"The first {len(shown):,} are shown here; all {len(probs):,} are in the JSON report.")
    more = d.get("problems_truncated") or 0
    return page(f"verify {d.get('collection')}", f"{d.get('mode')} verification against {d.get('source') or '-'}",
                [status(bool(d.get("ok")), "OK: the collection matches", "FAILED: differences found"),
                 section("Summary", kv_table(counts), plots(bars)),
                 section(f"Problems ({len(probs):,} listed" + (f", {more:,} more not listed" if more else "") + ")",
                         note("Vectors are compared after the normalization Qdrant applies (cosine: unit length); "
                              "payloads must be equal (floats within 1e-12 relative)."), listed)])


def _lat_rows(stats: dict[str, dict[str, Any]]) -> list[tuple[Any, ...]]:
    keys = ("min", "max", "avg", "p50", "p95", "p99")
    return [(name, *[s.get(f"{k}_ms") for k in keys], s.get("n")) for name, s in stats.items()]


LAT_HEADERS = ("system", "min ms", "max ms", "avg ms", "p50 ms", "p95 ms", "p99 ms", "queries")


def compare_page(d: dict[str, Any]) -> str:
    """HTML for a :class:`cortex.parity.CompareResult` dict."""
    old, new = d.get("old") or {}, d.get("qdrant") or {}
    sides = [("old system: " + str(old.get("method", "")), old), ("Qdrant", new)]
    rows = [(name, s.get("recall"), s.get("recall_min"), (s.get("latency") or {}).get("p50_ms"),
             (s.get("latency") or {}).get("p95_ms"), (s.get("latency") or {}).get("p99_ms")) for name, s in sides]
    between = [("overlap@k (mean)", d.get("overlap")), ("overlap@k (min)", d.get("overlap_min")),
               ("score drift, mean abs (same rank)", d.get("score_drift_mean")),
               ("score drift, max abs (same rank)", d.get("score_drift_max"))]
    setup = [("source", d.get("source")), ("collection", d.get("collection")), ("target", d.get("target")),
             ("distance", d.get("distance")), ("k", d.get("k")), ("queries", d.get("num_queries")),
             ("how the queries were made", d.get("queries_how")), ("filter", d.get("filter")),
             ("ground truth", d.get("ground_truth_how")), ("ef", d.get("ef")),
             ("min recall (gate)", d.get("min_recall")), ("seconds", d.get("seconds"))]
    lat = {"old system": (old.get("latency") or {}).get("samples_ms") or [],
           "Qdrant": (new.get("latency") or {}).get("samples_ms") or []}
    return page(f"compare {d.get('collection')}", f"search parity: {d.get('source')} vs Qdrant",
                [status(bool(d.get("ok")), f"PASSED: Qdrant recall@{d.get('k')} ≥ {d.get('min_recall')}",
                        f"FAILED: Qdrant recall@{d.get('k')} < {d.get('min_recall')}"),
                 section("Per system", table(("system", f"recall@{d.get('k')}", "worst query recall", "p50 ms",
                                              "p95 ms", "p99 ms"), rows),
                         plots(svg_bars({"old system": old.get("recall"), "Qdrant": new.get("recall")},
                                        f"Recall@{d.get('k')} vs exact ground truth", "recall", ymax=1.0,
                                        threshold=d.get("min_recall"), label=lambda v: f"{v:.3f}"),
                               svg_cdf(lat))),
                 section("Between systems", kv_table(between),
                         note("overlap@k: fraction of the old system's top-k ids that Qdrant also returns. "
                              "Score drift: absolute difference of the scores at the same rank (Qdrant's "
                              "convention: similarity for cosine/dot, distance for euclid/manhattan).")),
                 section("Setup", kv_table(setup)),
                 section("Latency", table(LAT_HEADERS, _lat_rows({"old system": old.get("latency") or {},
                                                                  "Qdrant": new.get("latency") or {}})))])


def benchmark_page(d: dict[str, Any]) -> str:
    """HTML for a :class:`cortex.benchmark.BenchmarkResult` dict."""
    runs = d.get("runs") or []
    lat = {f"concurrency {r['concurrency']}": r for r in runs}
    parts = [section("Latency and throughput",
                     table((*LAT_HEADERS, "QPS"), [(*row, r.get("qps")) for row, r in
                                                   zip(_lat_rows(lat), runs, strict=True)]),
                     plots(svg_cdf({k: r.get("samples_ms") or [] for k, r in lat.items()}),
                           svg_bars({f"c={r['concurrency']}": r.get("qps") for r in runs},
                                    "Throughput per concurrency", "queries/s")))]
    sweep = d.get("ef_sweep") or []
    if sweep:
        parts.append(section(
            "ef sweep (recall / latency trade-off)",
            table(("hnsw_ef", f"recall@{d.get('limit')}", "p50 ms", "p95 ms", "p99 ms", "QPS"),
                  [(s.get("ef"), s.get("recall"), s.get("p50_ms"), s.get("p95_ms"), s.get("p99_ms"), s.get("qps"))
                   for s in sweep]),
            plots(svg_lines({"Qdrant": [(s["p50_ms"], s["recall"], f"ef={s['ef']}") for s in sweep
                                        if s.get("recall") is not None]},
                            "Recall vs latency per hnsw_ef", "p50 latency (ms)", f"recall@{d.get('limit')}",
                            ymax=1.0),
                  svg_cdf({f"ef={s['ef']}": s.get("samples_ms") or [] for s in sweep},
                          "Latency per hnsw_ef (CDF)")),
            note(d.get("ef_note") or "Recall is measured against Qdrant's exact search on the same queries.")))
    comp = d.get("comparison") or []
    if comp:
        parts.append(section("Performance comparison (old system vs Qdrant)",
                             table(("metric", "old system", "Qdrant", "improvement", "what it means"),
                                   [(c.get("metric"), c.get("old_text"), c.get("qdrant_text"),
                                     c.get("improvement"), c.get("meaning")) for c in comp])))
    setup = [("collection", d.get("collection")), ("target", d.get("target")), ("points", d.get("points")),
             ("dimension", d.get("dim")), ("distance", d.get("distance")), ("indexed", d.get("indexed_vectors")),
             ("limit", d.get("limit")), ("queries", d.get("num_queries")),
             ("how the queries were made", d.get("queries_how")), ("source", d.get("source"))]
    parts.append(section("Setup", kv_table(setup)))
    return page(f"benchmark {d.get('collection')}", "search latency, throughput and tuning", parts)
