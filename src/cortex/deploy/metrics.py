"""Prometheus metrics of a running migration (``migrate|sync --metrics-port PORT``), with ``prometheus_client``.

A :class:`MetricsReporter` owns its own registry and, given a port, serves it at
``http://ADDR:PORT/metrics`` from a background thread while the run goes on.  It is fed
by the hooks the pipeline already calls (``on_commit``, ``on_phase``, the retry policy's
``on_retry``) plus one timing hook per written batch, so ``cortex.api.migrate`` (and
``sync``) only pass it along: ``migrate(..., metrics=MetricsReporter(9464))``.

Exported (every series carries a ``collection`` label):

    cortex_migration_records_read_total / _written_total / _rejected_total / _skipped_total
    cortex_migration_records_expected       gauge: records the source holds (when it can tell)
    cortex_migration_points_per_second      gauge: written / second since the load started
    cortex_migration_batch_seconds          histogram: one batch's upsert, retries included
    cortex_migration_retries_total          counter: transient target faults retried
    cortex_migration_checkpoint_age_seconds gauge: seconds since the checkpoint was last saved
    cortex_migration_phase{phase=...}       gauge: 1 for the current phase, 0 for the others
    cortex_collection_segments              gauge: the target collection's segments, after each phase
    cortex_collection_points                gauge: its points, after each phase
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from cortex.errors import CortexError

PHASES = ("creating", "loading", "indexing", "done", "interrupted", "failed")
COUNTS = ("read", "written", "rejected", "skipped")
#: upsert latency buckets (seconds): a 500-point batch takes ~5 ms embedded, up to seconds on a busy server
BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class MetricsReporter:
    """The migration's metrics; ``port=None`` keeps them in-process only (``.registry``), ``0`` picks a free port."""

    def __init__(self, port: int | None = None, addr: str = "0.0.0.0", collection: str = "",
                 registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.collection = collection
        lab = ["collection"]
        r = self.registry
        self._counts = {k: Counter(f"cortex_migration_records_{k}", f"Records {k} by the migration", lab, registry=r)
                        for k in COUNTS}
        self._expected = Gauge("cortex_migration_records_expected", "Records the source holds (0: unknown)", lab,
                               registry=r)
        self._rate = Gauge("cortex_migration_points_per_second", "Points written per second since the load started",
                           lab, registry=r)
        self._batch = Histogram("cortex_migration_batch_seconds", "Seconds to upsert one batch, retries included",
                                lab, buckets=BATCH_BUCKETS, registry=r)
        self._retries = Counter("cortex_migration_retries", "Transient target faults retried", lab, registry=r)
        self._ck_age = Gauge("cortex_migration_checkpoint_age_seconds", "Seconds since the checkpoint was last saved",
                             lab, registry=r)
        self._phase = Gauge("cortex_migration_phase", "1 for the migration's current phase", lab + ["phase"],
                            registry=r)
        self._segments = Gauge("cortex_collection_segments", "Segments of the target collection (after each phase)",
                               lab, registry=r)
        self._points = Gauge("cortex_collection_points", "Points in the target collection (after each phase)", lab,
                             registry=r)
        self._seen = dict.fromkeys(COUNTS, 0)
        self._lock = threading.Lock()
        self._t_load: float | None = None
        self._written_at_load = 0
        self._last_checkpoint: Callable[[], float | None] = lambda: None
        self._server: Any = None
        self.port: int | None = None
        self.addr = addr
        if port is not None:
            self.serve(port, addr)

    # -- serving ---------------------------------------------------------------------------
    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        try:
            self._server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        except OSError as e:
            raise CortexError(f"--metrics-port {port}: cannot listen on {addr}:{port} ({e.strerror or e}); "
                              "choose a free port (0 picks one)") from e
        self.port = self._server.server_port

    @property
    def url(self) -> str | None:
        if self.port is None:
            return None
        host = "localhost" if self.addr in ("0.0.0.0", "::", "") else self.addr
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- hooks -----------------------------------------------------------------------------
    def bind(self, collection: str, checkpoint_time: Callable[[], float | None] | None = None) -> None:
        """Label the series with ``collection``; ``checkpoint_time()`` gives the last save (time.monotonic)."""
        self.collection = collection
        if checkpoint_time is not None:
            self._last_checkpoint = checkpoint_time
        self._ck_age.labels(collection).set_function(self._checkpoint_age)
        for k in COUNTS:
            self._counts[k].labels(collection)
        self._retries.labels(collection)
        self._rate.labels(collection)

    def _checkpoint_age(self) -> float:
        t = self._last_checkpoint()
        return 0.0 if t is None else max(0.0, time.monotonic() - t)

    def expected(self, total: int | None) -> None:
        self._expected.labels(self.collection).set(total or 0)

    def counts(self, counts: Any) -> None:
        """Cumulative counts (a ``Counts`` or ``Checkpoint.counts``) of the migration so far."""
        with self._lock:
            for k in COUNTS:
                now = int(getattr(counts, k, 0) or 0)
                if now > self._seen[k]:
                    self._counts[k].labels(self.collection).inc(now - self._seen[k])
                    self._seen[k] = now
            written = self._seen["written"]
            if self._t_load is None:
                self._t_load, self._written_at_load = time.monotonic(), written
            dt = time.monotonic() - self._t_load
            if dt > 0:
                self._rate.labels(self.collection).set(round((written - self._written_at_load) / dt, 1))

    def commit(self, checkpoint: Any) -> None:
        """The pipeline's ``on_commit`` hook."""
        self.counts(checkpoint.counts)

    def batch_written(self, points: int, seconds: float) -> None:
        """One batch upserted (``PipelineOptions.on_batch``)."""
        self._batch.labels(self.collection).observe(seconds)

    def retry(self, *_args: Any) -> None:
        """The retry policy's ``on_retry(attempt, delay, error)`` hook."""
        self._retries.labels(self.collection).inc()

    def phase(self, name: str) -> None:
        """The pipeline's ``on_phase`` hook, plus the final status (done / interrupted / failed)."""
        if name == "loading" and self._t_load is None:
            self._t_load, self._written_at_load = time.monotonic(), self._seen["written"]
        for p in PHASES:
            self._phase.labels(self.collection, p).set(1 if p == name else 0)

    def collection_info(self, info: Any) -> None:
        """Segments and points of the target collection (a ``CollectionInfo``), read between phases."""
        if info is None:
            return
        if info.segments is not None:
            self._segments.labels(self.collection).set(info.segments)
        self._points.labels(self.collection).set(info.points)

    def series_names(self) -> set[str]:
        """Every series name this registry exports (``..._total``, ``..._bucket`` ...), for checks of dashboards."""
        suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
                    "gauge": ("",)}
        return {fam.name + s for fam in self.registry.collect() for s in suffixes.get(fam.type, ("",))}
