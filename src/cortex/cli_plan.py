"""``cortex qdrant plan``: measure a source, estimate the collection, write a tuned config file.

Imported by :mod:`cortex.cli` at start-up; the command registers itself on ``qdrant``.
Exit codes: 0 a config meeting --min-recall was written; 1 no candidate met it; 2 bad input.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from cortex.cli import JsonOpt, RichProgress, emit_json, err, handle_errors, out, qdrant, save_report
from cortex.cli_options import source_flags
from cortex.errors import ExitCode
from cortex.plan.estimate import human_bytes


@qdrant.command(epilog="Example: cortex qdrant plan --source vectors.index --sample 20000 --min-recall 0.95 "
                       "--output plan.yaml --report plan.html")
@handle_errors
@source_flags
def plan(
    source: Annotated[str, typer.Option("--source", "-s", help="What will be migrated: a file, directory or URL.")],
    sample: Annotated[int, typer.Option("--sample", min=100, help="Points loaded into embedded Qdrant for the "
                                        "experiments (a uniform sample of the source).")] = 20_000,
    min_recall: Annotated[float, typer.Option("--min-recall", min=0.0, max=1.0, help="Recall@10 the chosen "
                                              "settings must reach, projected from the sample to the full "
                                              "count.")] = 0.95,
    output: Annotated[str | None, typer.Option("--output", "-o", help="Write the tuned collection config "
                                               "(YAML) for migrate/compare/benchmark --config.")] = None,
    collection: Annotated[str | None, typer.Option("--collection", "-c", help="Collection name in the config "
                                                   "(default: the source file's name).")] = None,
    num_queries: Annotated[int, typer.Option("--num-queries", min=1, help="Queries (sampled points plus noise) "
                                             "per candidate.")] = 400,
    quick: Annotated[bool, typer.Option("--quick", help="Only three candidates: defaults, int8, "
                                        "int8-ef32-ondisk.")
                     ] = False,
    measure_all: Annotated[bool, typer.Option("--all", help="Also build int8-m8, int8-ef64, m32, float16 and "
                                              "binary on the sample (by default m32, float16 and binary are "
                                              "estimated from the defaults' measured components, not built), and "
                                              "int8 and int8-ef32 even when int8-ef20 (the same memory, a cheaper "
                                              "build) meets the recall goal; search every build at hnsw_ef 384 and "
                                              "512 too (by default only a candidate falling short of the goal at 256 "
                                              "and below).")
                     ] = False,
    candidates: Annotated[str | None, typer.Option("--candidates", help="Comma-separated candidates to measure "
                                                   "(defaults, int8, int8-ef32, int8-ef20, int8-ondisk, "
                                                   "int8-ef32-ondisk, int8-ef20-ondisk, int8-m8, int8-ef64, m32, "
                                                   "float16, binary); Qdrant's defaults "
                                                   "are always measured.")] = None,
    optimize_for: Annotated[str, typer.Option("--optimize-for", help="What 'cheapest' means among the settings "
                                              "meeting --min-recall: time (projected load + index build), memory "
                                              "(projected RAM) or balanced (the mean of both, each relative to "
                                              "Qdrant's defaults).")] = "balanced",
    workdir: Annotated[str | None, typer.Option("--workdir", help="Where the sample collections are built "
                                                "(default: a temporary directory, removed after).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed of the sample and the queries.")] = 0,
    report: Annotated[str | None, typer.Option("--report", help="Write FILE.html (+ FILE.json beside it): schema, "
                                               "estimate and the recall / latency / build-time trade-off.")] = None,
    json_out: JsonOpt = False,
    source_type: Any = None, source_opts: Any = None,
) -> None:
    """Plan the migration from measurement: inventory, schema, a calibrated estimate and a tuned config.

    One streaming pass over the source (count, dimension, ids, duplicates, NaN/zero vectors, norms,
    payload schema) keeps a uniform sample; the sample is loaded into embedded Qdrant under candidate
    settings (Qdrant's defaults, scalar int8 + rescore, other m / ef_construct, on-disk vectors, ...)
    and each is measured: recall@10 against exact search, latency, build time, disk and memory. RAM,
    disk and time of the full collection are extrapolated (the migration guide's formula is shown
    beside them); the cheapest settings meeting --min-recall go to --output.
    """
    from cortex import api
    from cortex.plan.report import plan_page

    res = api.plan(source, source_type=source_type, options=source_opts, collection=collection, sample=sample,
                   min_recall=min_recall, num_queries=num_queries, quick=quick, output=output, workdir=workdir,
                   optimize_for=optimize_for, measure_all=measure_all,
                   candidates=[c.strip() for c in candidates.split(",") if c.strip()] if candidates else None,
                   seed=seed, progress=RichProgress(f"plan: reading {source}"),
                   on_event=lambda m: err.print(m, highlight=False, soft_wrap=True))
    d = res.to_dict()
    save_report(report, d, plan_page)
    if json_out:
        emit_json(d)
    else:
        _print(d)
    if output and res.ok:
        err.print(f"config: {output} (cortex qdrant migrate --source {source} --target {res.collection} "
                  f"--config {output})", highlight=False, soft_wrap=True)
    if not res.ok:
        err.print(f"[red]{res.reason}[/red]", highlight=False)
        raise typer.Exit(ExitCode.CHECK_FAILED)


def _print(d: dict[str, Any]) -> None:
    inv = d["inventory"]
    t = Table(title=f"inventory: {inv['source']} ({inv['kind']})", show_header=False)
    ids = ", ".join(f"{k} {v:,}" for k, v in inv["id_kinds"].items())
    dup = f"{inv['duplicate_ids']:,}" + (f" (e.g. {', '.join(map(str, inv['duplicate_examples'][:3]))})"
                                         if inv["duplicate_ids"] else "")
    for k, v in [("records", f"{inv['count']:,}"), ("valid vectors", f"{inv['valid']:,}"),
                 ("dimension / dtype", f"{inv['dim']} / {inv['dtype']}"),
                 ("source bytes", human_bytes(inv["source_bytes"])), ("ids", ids), ("duplicate ids", dup),
                 ("NaN / inf / zero vectors", f"{inv['nan_vectors']:,} / {inv['inf_vectors']:,} / "
                                              f"{inv['zero_vectors']:,}"),
                 ("norms", ", ".join(f"{k} {v:.4g}" for k, v in inv["norms"].items())
                  + f"; unit length {inv['unit_norm_fraction']:.1%}"),
                 ("distance", f"{inv['distance']['distance']}: {inv['distance']['why']}"),
                 ("read rate", f"{inv['rows_per_second']:,.0f} records/s")]:
        t.add_row(k, v)
    out.print(t)
    if inv["schema"]:
        s = Table(title="payload schema")
        for c in ("field", "types", "fill", "distinct", "examples", "suggested index"):
            s.add_column(c)
        for f in inv["schema"]:
            idx = f["suggested_index"]
            s.add_row(f["field"], ", ".join(f"{k} {v:,}" for k, v in f["types"].items()), f"{f['fill_rate']:.0%}",
                      f"{'' if f['distinct_exact'] else '~'}{f['distinct']:,}",
                      ", ".join(map(str, f["examples"]))[:40],
                      (idx["type"] + (" (is_tenant)" if idx.get("is_tenant") else "")) if idx else "-")
        out.print(s)
    g = d["guide"]
    e = Table(title=f"estimate for {next(iter(d['estimates'].values()))['points']:,} points "
                    f"(measured on {d['sample']:,}, extrapolated)")
    for c in ("settings", "RAM", "disk", "recall@10", "p50 ms", "sample build s"):
        e.add_column(c)
    best = {}
    for r in d["options"]:
        if r["candidate"] not in best or r["recall"] > best[r["candidate"]]["recall"]:
            best[r["candidate"]] = r
    for name, est in d["estimates"].items():
        r = best.get(name)
        if r is None:
            cells: tuple[str, ...] = ("-", "-", "not built")
        else:
            if r.get("derived_from"):
                built = f"= {r['derived_from']}'s"
            else:
                pts = r.get("sample_points") or d["sample"]
                built = f"{r['build_seconds']:.1f}" + (f" ({pts:,} pts)" if pts < d["sample"] else "")
            cells = (f"{r['recall']:.3f}", f"{r['p50_ms']:.2f}", built)
        e.add_row(name, human_bytes(est["ram_bytes"]), human_bytes(est["disk_bytes"]), *cells)
    e.add_row("the guide's formula", f"{human_bytes(g['total_bytes'])} (x1.5: {human_bytes(g['recommended_bytes'])})",
              "-", "-", "-", "-")
    out.print(e)
    tm = d["time"].get("chosen") or d["time"]["defaults"]
    out.print(f"time: load {tm['load_seconds']} s + index build {tm['build_seconds']} s = {tm['total_seconds']} s "
              f"({tm['scaling']})", highlight=False, soft_wrap=True)
    out.print(d["reason"], highlight=False, soft_wrap=True)
