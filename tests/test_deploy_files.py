"""The deploy files: the Grafana dashboard and the alerts name only metrics Qdrant or Cortex really export; every
variable the compose file and Cortex read is documented in .env.example; the image tags are pinned.

(.ci/run also validates docker-compose.yml with `docker-compose config -q` and prometheus.yml with
`promtool check config`, the real tools from Debian.)
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from cortex.deploy.metrics import MetricsReporter

ROOT = Path(__file__).resolve().parent.parent

#: Qdrant's /metrics, as listed in its monitoring guide, https://qdrant.tech/documentation/guides/monitoring/
#: (source: github.com/qdrant/landing_page, qdrant-landing/content/documentation/ops-monitoring/monitoring.md,
#: "Node Metrics /metrics"; histograms add _bucket, _sum and _count).
QDRANT_METRICS = {
    "app_info", "app_status_recovery_mode", "collections_total", "collection_points", "collection_vectors",
    "collections_vector_total", "collection_indexed_only_excluded_points", "collection_active_replicas_min",
    "collection_active_replicas_max", "collection_dead_replicas", "collection_running_optimizations",
    "snapshot_creation_running", "snapshot_recovery_running", "snapshot_created_total",
    "rest_responses_total", "rest_responses_fail_total", "rest_responses_avg_duration_seconds",
    "rest_responses_min_duration_seconds", "rest_responses_max_duration_seconds", "grpc_responses_total",
    "grpc_responses_fail_total", "grpc_responses_avg_duration_seconds", "grpc_responses_min_duration_seconds",
    "grpc_responses_max_duration_seconds", "memory_active_bytes", "memory_allocated_bytes", "memory_metadata_bytes",
    "memory_resident_bytes", "memory_retained_bytes", "process_threads", "process_open_mmaps", "system_max_mmaps",
    "process_open_fds", "process_max_fds", "process_minor_page_faults_total", "process_major_page_faults_total",
    "cluster_enabled", "cluster_peers_total", "cluster_term", "cluster_commit", "cluster_pending_operations_total",
    "cluster_voter",
} | {f"{h}_{s}" for h in ("rest_responses_duration_seconds", "grpc_responses_duration_seconds")
     for s in ("bucket", "sum", "count")}
PROMETHEUS_OWN = {"up"}  # series Prometheus itself adds to every scrape target
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset", "bool",
            "le", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression reads (label matchers, strings, ranges, functions, grouping removed)."""
    e = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", "", e)
    e = re.sub(r"\[[^\]]*\]", "", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    names = set()
    for m in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)\b(\s*\()?", e):
        if m.group(2) or m.group(1).lower() in KEYWORDS:
            continue
        names.add(m.group(1))
    return names


def test_metric_names_parser() -> None:
    got = metric_names('histogram_quantile(0.95, sum by (le) (rate(grpc_responses_duration_seconds_bucket'
                       '{endpoint=~".*/(Search|Query)"}[5m]))) / (x_total > 0) and on(collection) up')
    assert got == {"grpc_responses_duration_seconds_bucket", "x_total", "up"}


def dashboard_exprs() -> list[str]:
    d = json.loads((ROOT / "deploy/grafana/dashboards/qdrant-migration.json").read_text())
    exprs = [t["expr"] for p in d["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 15
    return exprs


def test_dashboard_names_only_exported_metrics() -> None:
    cortex = MetricsReporter().series_names()  # the real registry of `migrate --metrics-port`
    used: set[str] = set()
    for expr in dashboard_exprs():
        names = metric_names(expr)
        assert names, expr
        unknown = names - QDRANT_METRICS - cortex
        assert not unknown, f"{expr}: {unknown} is exported by neither Qdrant nor Cortex"
        used |= names
    # the figures the guide says to watch are all there
    assert {"grpc_responses_avg_duration_seconds", "grpc_responses_total", "memory_resident_bytes",
            "cortex_collection_segments", "cortex_migration_records_written_total",
            "cortex_migration_records_expected"} <= used
    assert used & cortex and used & QDRANT_METRICS


def test_alerts_name_only_exported_metrics() -> None:
    cortex = MetricsReporter().series_names()
    rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    assert exprs
    for expr in exprs:
        unknown = metric_names(expr) - QDRANT_METRICS - cortex - PROMETHEUS_OWN
        assert not unknown, f"{expr}: {unknown}"


def test_compose_file_pins_images_and_documents_every_variable() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    compose = yaml.safe_load(text)
    q = compose["services"]["qdrant"]
    assert re.fullmatch(r"\$\{QDRANT_IMAGE:-qdrant/qdrant:v\d+\.\d+\.\d+\}", q["image"])
    assert {"${QDRANT_HTTP_PORT:-6333}:6333", "${QDRANT_GRPC_PORT:-6334}:6334"} <= set(q["ports"])
    assert q["environment"]["QDRANT__SERVICE__API_KEY"].startswith("${QDRANT_API_KEY")
    assert q["mem_limit"] and q["healthcheck"]["test"] and q["restart"] == "unless-stopped"
    assert any(v.endswith(":/qdrant/storage") for v in q["volumes"])
    for svc in ("prometheus", "grafana"):
        assert compose["services"][svc]["profiles"] == ["monitoring"]
        assert not compose["services"][svc]["image"].endswith(":latest}")
    assert compose["services"]["grafana"]["ports"] == ["${GRAFANA_PORT:-3000}:3000"]

    documented = set(re.findall(r"^(?:# )?([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.M))
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))
    assert used <= documented, used - documented
    # and what Cortex itself reads from the environment (typer envvar=..., os.environ)
    src = "\n".join(p.read_text() for p in (ROOT / "src/cortex").rglob("*.py"))
    cortex_vars = set(re.findall(r'envvar="([A-Z_]+)"', src)) | set(re.findall(r'environ.get\("([A-Z_]+)"', src))
    cortex_vars = {v for v in cortex_vars if not v.startswith("CORTEX_TEST_")} - {"PYTHONPATH", "PATH", "HOME"}
    assert {"QDRANT_URL", "QDRANT_API_KEY", "QDRANT_PATH", "CORTEX_METRICS_PORT"} <= cortex_vars
    assert cortex_vars <= documented, cortex_vars - documented


def test_prometheus_scrapes_qdrant_and_cortex_and_grafana_is_provisioned() -> None:
    prom = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    assert jobs["qdrant"]["static_configs"][0]["targets"] == ["qdrant:6333"]
    assert jobs["qdrant"]["metrics_path"] == "/metrics" and jobs["qdrant"]["authorization"]["credentials_file"]
    assert jobs["cortex"]["static_configs"][0]["targets"] == ["host.docker.internal:9464"]
    ds = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert ds["datasources"][0]["url"] == "http://prometheus:9090"
    dash = json.loads((ROOT / "deploy/grafana/dashboards/qdrant-migration.json").read_text())
    uids = {t["datasource"]["uid"] for p in dash["panels"] for t in p.get("targets", [])}
    assert uids == {ds["datasources"][0]["uid"]}


def test_kubernetes_example_parses_and_runs_migrate_then_verify() -> None:
    docs = [d for f in sorted((ROOT / "deploy/kubernetes").glob("*.yaml"))
            for d in yaml.safe_load_all(f.read_text()) if d]
    job = next(d for d in docs if d.get("kind") == "Job")
    script = " ".join(job["spec"]["template"]["spec"]["containers"][0]["args"])
    assert script.index("cortex qdrant migrate") < script.index("cortex qdrant verify")
    values = yaml.safe_load((ROOT / "deploy/kubernetes/qdrant-values.yaml").read_text())
    assert values["image"]["tag"].startswith("v") and values["resources"]["limits"]["memory"]
