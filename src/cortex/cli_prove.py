"""``cortex qdrant compare`` and ``cortex qdrant benchmark``: prove the migrated collection searches as well.

Imported by :mod:`cortex.cli` at start-up; the commands register themselves on ``qdrant``.
Exit codes as in :mod:`cortex.cli`: compare exits 1 when Qdrant's recall is below --min-recall.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from cortex.cli import IdFieldOpt, JsonOpt, emit_json, err, handle_errors, out, qdrant, save_report
from cortex.cli_options import source_flags, target_flags
from cortex.errors import CortexError, ExitCode
from cortex.report import benchmark_page, compare_page

ConfigOpt = Annotated[str | None, typer.Option("--config", help="A config file (`cortex qdrant plan --output`): "
                                               "search with its query-time parameters (hnsw_ef, quantization "
                                               "rescore / oversampling), as the application will.")]
ReportOpt = Annotated[str | None, typer.Option("--report", help="Write FILE.html (+ FILE.json beside it) or "
                                               "FILE.json (+ FILE.html): tables and plots, self-contained.")]


def _ms(v: Any) -> str:
    return f"{v:.2f}" if isinstance(v, int | float) else "–"


def _num(v: Any, pattern: str = "{:.4f}") -> str:
    return pattern.format(v) if isinstance(v, int | float) else "–"


def _ints(spec: str | None, flag: str) -> list[int]:
    if not spec:
        return []
    try:
        vals = [int(x) for x in spec.replace(" ", "").split(",") if x]
    except ValueError:
        raise CortexError(f"{flag} {spec!r}: expected comma-separated integers, e.g. {flag} 1,8") from None
    if not vals or any(v < 1 for v in vals):
        raise CortexError(f"{flag} {spec!r}: values must be positive integers")
    return vals


# -- compare ------------------------------------------------------------------------------
@qdrant.command(epilog="Example: cortex qdrant compare --source vectors.index --collection code_vectors "
                       "--k 10 --num-queries 200 --min-recall 0.95 --report parity.html")
@handle_errors
@source_flags
@target_flags
def compare(
    source: Annotated[str, typer.Option("--source", "-s", help="The old system (any source Cortex reads).")],
    collection: Annotated[str, typer.Option("--collection", "-c", help="The migrated Qdrant collection.")],
    k: Annotated[int, typer.Option("--k", min=1, help="Results per query (recall@k).")] = 10,
    num_queries: Annotated[int, typer.Option("--num-queries", min=1, help="Queries sampled from the source "
                                             "(plus noise) when --queries is not given.")] = 200,
    queries: Annotated[str | None, typer.Option("--queries", help="Query vectors: .npy, .json or .jsonl "
                                                "(one vector or {\"vector\": [...]} per line).")] = None,
    filter_: Annotated[str | None, typer.Option("--filter", help="Payload filter FIELD=VALUE on both sides "
                                                "(a payload index is created on FIELD).")] = None,
    min_recall: Annotated[float, typer.Option("--min-recall", min=0.0, max=1.0, help="Exit 1 when Qdrant's "
                                              "recall@k is below this.")] = 0.95,
    ef: Annotated[int | None, typer.Option("--ef", min=1, help="Qdrant hnsw_ef for the queries "
                                           "(default: the collection's).")] = None,
    noise: Annotated[float, typer.Option("--noise", min=0.0, help="Noise added to sampled queries, relative "
                                         "to each vector's norm.")] = 0.1,
    seed: Annotated[int, typer.Option("--seed", help="Random seed for the query sample.")] = 0,
    report: ReportOpt = None,
    id_field: IdFieldOpt = "source_id",
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
    source_type: Any = None, source_opts: Any = None, target_kw: Any = None,
) -> None:
    """Run the same queries on the old system and on Qdrant: recall@k, latency, overlap, score drift.

    Recall is measured against exact search over the source's vectors. The old side uses the
    source's own search (FAISS, hnswlib, Chroma, pgvector, LanceDB, Milvus, ...) or exact numpy
    search when it has none. Exits 1 when Qdrant's recall is below --min-recall, so it can gate
    a cutover in CI.
    """
    from cortex import api

    opts = source_opts
    r = api.compare(collection, source=source, source_type=source_type, options=opts, k=k,
                    num_queries=num_queries, queries=queries, filter=filter_, min_recall=min_recall, ef=ef,
                    noise=noise, seed=seed, id_field=id_field, config=config,
                    on_event=None if json_out else (lambda m: err.print(m, highlight=False)),
                    **target_kw)
    d = r.to_dict()
    save_report(report, d, compare_page)
    if json_out:
        emit_json(d)
    else:
        t = Table(title=f"search parity: {source} vs {collection} ({r.num_queries} queries, k={k}"
                        + (f", filter {filter_}" if filter_ else "") + ")")
        for c in ("system", f"recall@{k}", "worst query", "p50 ms", "p95 ms", "p99 ms", "method"):
            t.add_column(c, justify="right" if c not in ("system", "method") else "left")
        for name, s in (("old system", r.old), ("Qdrant", r.qdrant)):
            lat = s.latency or {}
            t.add_row(name, _num(s.recall), _num(s.recall_min), _ms(lat.get("p50_ms")), _ms(lat.get("p95_ms")),
                      _ms(lat.get("p99_ms")), s.method)
        out.print(t)
        b = Table(show_header=False, title="between the systems")
        b.add_row("overlap@k (mean / min)", f"{_num(r.overlap)} / {_num(r.overlap_min)}")
        b.add_row("score drift at same rank (mean / max)",
                  f"{_num(r.score_drift_mean, '{:.6f}')} / {_num(r.score_drift_max, '{:.6f}')}")
        b.add_row("queries", r.queries_how)
        b.add_row("ground truth", r.ground_truth_how)
        out.print(b)
        for w in r.warnings:
            err.print(f"[yellow]warning:[/yellow] {w}", highlight=False)
        verdict = "[green]PASSED[/green]" if r.ok else "[red]FAILED[/red]"
        out.print(f"{verdict}: Qdrant recall@{k} = {_num(r.qdrant.recall)} "
                  f"({'>=' if r.ok else '<'} --min-recall {min_recall})", highlight=False)
    if not r.ok:
        raise typer.Exit(ExitCode.CHECK_FAILED)


# -- benchmark ----------------------------------------------------------------------------
@qdrant.command(epilog="Example: cortex qdrant benchmark --collection code_vectors --num-queries 1000 "
                       "--concurrency 1,8 --ef 64,128,256 --report bench.html")
@handle_errors
@source_flags
@target_flags
def benchmark(
    collection: Annotated[str, typer.Option("--collection", "-c", help="Collection to benchmark.")],
    num_queries: Annotated[int, typer.Option("--num-queries", min=1, help="Queries per run.")] = 1000,
    dimensions: Annotated[int | None, typer.Option("--dimensions", help="Use random query vectors of this "
                                                   "dimension, as the migration guide does (default: sample the "
                                                   "collection). Also the Annoy source's dimension.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Results per query.")] = 10,
    concurrency: Annotated[str, typer.Option("--concurrency", help="Comma-separated thread counts; QPS for "
                                             "each.")] = "1",
    ef: Annotated[str | None, typer.Option("--ef", help="Comma-separated hnsw_ef values to sweep "
                                           "(recall vs latency).")] = None,
    source: Annotated[str | None, typer.Option("--source", "-s", help="Old system: adds the Performance "
                                               "Comparison table.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed for the queries.")] = 0,
    report: ReportOpt = None,
    id_field: IdFieldOpt = "source_id",
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
    source_type: Any = None, source_opts: Any = None, target_kw: Any = None,
) -> None:
    """Search latency (min, max, avg, p50, p95, p99) and QPS; --ef sweeps recall vs latency.

    With --source, also the migration guide's Performance Comparison table (old system vs Qdrant: search
    latency p95, indexing throughput, memory, storage size), measured in this process.
    """
    from cortex import api
    from cortex.benchmark import seed_lines

    conc = _ints(concurrency, "--concurrency") or [1]
    efs = _ints(ef, "--ef")
    opts = source_opts if source else None
    r = api.benchmark(collection, num_queries=num_queries, dimensions=dimensions, limit=limit, concurrency=conc,
                      ef=efs, source=source, source_type=source_type, options=opts, seed=seed, id_field=id_field,
                      config=config, on_event=None if json_out else (lambda m: err.print(m, highlight=False)),
                      **target_kw)
    d = r.to_dict()
    save_report(report, d, benchmark_page)
    if json_out:
        emit_json(d)
        return
    for line in seed_lines(r.seed_block):
        out.print(line, highlight=False)
    t = Table(title=f"{collection}: {r.num_queries} queries, limit {limit} ({r.points:,} points, {r.dim} dims)")
    for c in ("concurrency", "QPS", "min ms", "avg ms", "p50 ms", "p95 ms", "p99 ms", "max ms"):
        t.add_column(c, justify="right")
    for run in r.runs:
        t.add_row(str(run["concurrency"]), f"{run['qps']:,.0f}", *[_ms(run.get(f"{k}_ms")) for k in
                                                                   ("min", "avg", "p50", "p95", "p99", "max")])
    out.print(t)
    if r.ef_sweep:
        s = Table(title="ef sweep: recall vs latency")
        for c in ("hnsw_ef", f"recall@{limit}", "worst query", "p50 ms", "p95 ms", "p99 ms", "QPS"):
            s.add_column(c, justify="right")
        for e in r.ef_sweep:
            s.add_row(str(e["ef"]), _num(e["recall"]), _num(e["recall_min"]), _ms(e.get("p50_ms")),
                      _ms(e.get("p95_ms")), _ms(e.get("p99_ms")), f"{e['qps']:,.0f}")
        out.print(s)
        out.print(r.ef_note, highlight=False)
    if r.comparison:
        c = Table(title="Performance Comparison")
        for col in ("Metric", "Old System", "Qdrant", "Improvement"):
            c.add_column(col)
        for row in r.comparison:
            c.add_row(row["metric"], row["old_text"], row["qdrant_text"], row["improvement"])
        out.print(c)
        for row in r.comparison:
            out.print(f"  [bold]{row['metric']}[/bold]: {row['meaning']}", highlight=False)
    out.print(f"queries: {r.queries_how}", highlight=False)
    for w in r.warnings:
        err.print(f"[yellow]warning:[/yellow] {w}", highlight=False)
