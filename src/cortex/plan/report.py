"""The ``plan --report`` page: inventory, schema table, estimate table, the candidates' trade-off plots."""

from __future__ import annotations

from typing import Any

from cortex.plan.estimate import human_bytes
from cortex.report import kv_table, note, page, plots, section, status, svg_bars, svg_lines, table


def measured_on(r: dict[str, Any]) -> str:
    """Where an option's figures come from: its own build (on how many points), or its in-RAM sibling's."""
    if r.get("derived_from"):
        return f"derived from {r['derived_from']}'s build"
    return f"built on {r['sample_points']:,} points" if r.get("sample_points") else "built"


def plan_page(d: dict[str, Any]) -> str:
    inv = d["inventory"]
    parts = []
    parts.append(section("Result", status(d["ok"], "CONFIG CHOSEN", "NO CANDIDATE MET --min-recall"),
                         note(d["reason"]),
                         note(f"plan took {d['seconds']} s: "
                              + ", ".join(f"{k} {v} s" for k, v in d["phases"].items())),
                         note(f"config written to {d['output']}" if d.get("output") else "")))
    parts.append(section("Inventory", kv_table([
        ("records", inv["count"]), ("valid vectors", inv["valid"]), ("dimension", inv["dim"]),
        ("dtype", inv["dtype"]), ("source bytes", human_bytes(inv["source_bytes"])),
        ("ids", ", ".join(f"{k}: {v:,} ({inv['id_mapping'].get(k, '')})" for k, v in inv["id_kinds"].items())),
        ("duplicate ids", f"{inv['duplicate_ids']:,} {inv['duplicate_examples'][:5] or ''}"),
        ("NaN / inf / zero vectors", f"{inv['nan_vectors']:,} / {inv['inf_vectors']:,} / {inv['zero_vectors']:,}"),
        ("norms", ", ".join(f"{k} {v:.4g}" for k, v in inv["norms"].items())),
        ("unit-length vectors", f"{inv['unit_norm_fraction']:.2%}"),
        ("distance", f"{inv['distance']['distance']}: {inv['distance']['why']}"),
        ("read", f"{inv['seconds']} s ({inv['rows_per_second']:,.0f} records/s)"),
    ])))
    rows = []
    for f in inv["schema"]:
        idx = f["suggested_index"]
        rows.append((f["field"], ", ".join(f"{k} {v:,}" for k, v in f["types"].items()), f"{f['fill_rate']:.1%}",
                     f"{'' if f['distinct_exact'] else '~'}{f['distinct']:,}", ", ".join(map(str, f["examples"])),
                     (idx["type"] + (" is_tenant" if idx.get("is_tenant") else "")) if idx else "–",
                     idx["why"] if idx else ""))
    parts.append(section("Payload schema", table(("field", "types", "fill rate", "distinct", "examples",
                                                  "suggested index", "why"), rows) if rows else note("no payload"),
                         note("distinct: exact below 1,024 values, else a KMV sketch estimate (~3% error).")))
    est_rows = []
    for name, e in d["estimates"].items():
        est_rows.append((name, human_bytes(e["ram_bytes"]), human_bytes(e["disk_bytes"]),
                         e.get("derived") or ", ".join(f"{k} {v:g}" for k, v in e["bytes_per_point"].items()),
                         ", ".join(e["resident"])))
    g = d["guide"]
    est_rows.append(("the migration guide's formula", f"{human_bytes(g['total_bytes'])} "
                     f"(recommended x1.5: {human_bytes(g['recommended_bytes'])})", "–", g["formula"], "–"))
    points = next(iter(d["estimates"].values()))["points"] if d["estimates"] else 0
    times = [(k, v["load_seconds"], v["build_seconds"], v["total_seconds"], v["scaling"])
             for k, v in d["time"].items()]
    parts.append(section(
        f"Estimate for {points:,} points (measured on {d['sample']:,})",
        table(("settings", "RAM", "disk", "bytes per point (measured)", "kept in RAM"), est_rows),
        note("Each component of the sample's shard is measured in allocated bytes; fixed costs come from a second "
             "build at half the sample size; RAM adds the anonymous memory the open shard used while queried."),
        table(("time", "load s", "index build s", "total s", "how it scales"), times)))
    series: dict[str, list[tuple[float, float, str]]] = {}
    for r in d["options"]:
        series.setdefault(r["candidate"], []).append((r["p50_ms"], r["recall"], f"ef {r['search'].get('hnsw_ef')}"))
    builds = {t["name"]: t["build_seconds"] for t in d["trials"] if "@" not in t["name"]}
    ram = {k: e["ram_bytes"] / 2**30 for k, e in d["estimates"].items()}
    parts.append(section("Trade-off", plots(
        svg_lines(series, "recall@10 vs latency (per hnsw_ef)", "p50 ms", "recall@10", ymax=1.0),
        svg_bars(builds, "index build on the sample", "seconds"),
        svg_bars(ram, f"projected RAM, {points:,} points", "GiB", label=lambda v: f"{v:.2f}"))))
    opt_rows = [(r["candidate"], r["search"].get("hnsw_ef"), str(r["search"].get("quantization") or "–"),
                 r["recall"], r.get("projected_recall"), r["p50_ms"], r["p95_ms"], r["build_seconds"],
                 human_bytes(r["ram_bytes"]), measured_on(r),
                 "chosen" if d["chosen"] and r == d["chosen"] else "") for r in d["options"]]
    parts.append(section("Candidates", table(("candidate", "hnsw_ef", "quantization search", "recall@10 (sample)",
                                              "recall@10 (projected)", "p50 ms", "p95 ms", "sample build s",
                                              "projected RAM", "measured", ""), opt_rows),
                         note("projected recall: the sample's miss rate (1 - recall) times the growth of the miss "
                              "rate per doubling of the graph (pooled over the builds at half and all of the sample, "
                              "at its upper bound), per doubling to the full count. \"derived from X's build\": an "
                              "on-disk variant shares its in-RAM sibling's graph and quantized search + rescore, so "
                              "its recall, latency and build are the sibling's and only RAM and disk are projected "
                              "under its own settings. Qdrant's defaults (the baseline) are built on half the "
                              "sample; their build time is grown to the full sample as the reference build's grew.")))
    return page(f"cortex plan: {d['collection']}", f"{d['source']} · min recall {d['min_recall']}", parts)
