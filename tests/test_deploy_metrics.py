"""Migration metrics: ``/metrics`` scraped mid-run shows counters that grow, through the real pipeline.

Mid-run moments come from the pipeline's test pause (``CORTEX_TEST_PAUSE_AT``) or from a source the test holds
between batches; every wait is on an event or a polled value with a generous deadline, never a sleep.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from cortex import api
from cortex.deploy.metrics import MetricsReporter
from cortex.sources.npy_matrix import NpyMatrixSource

ROOT = Path(__file__).resolve().parent.parent


def scrape(url: str) -> dict[str, float]:
    """{series name + labels: value} of one scrape."""
    text = urllib.request.urlopen(url, timeout=30).read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()) if k != "collection")
            out[s.name + (f"{{{labels}}}" if labels else "")] = s.value
    return out


def wait_for(fn, what: str, timeout: float = 120.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = fn()
        if v:
            return v
        threading.Event().wait(0.05)  # polling interval, not a synchronization
    raise AssertionError(f"timed out waiting for {what}")


class HeldSource(NpyMatrixSource):
    """A real .npy source that stops after every ``step`` batches until the test lets it go on."""

    step = 3

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.go = threading.Event()

    def batches(self, batch_size, resume=None):
        for i, b in enumerate(super().batches(batch_size, resume=resume)):
            if i and i % self.step == 0:
                self.go.wait(120)
                self.go.clear()
            yield b


def test_counters_grow_while_the_migration_runs(tmp_path: Path, monkeypatch) -> None:
    np.save(tmp_path / "v.npy", np.random.default_rng(3).standard_normal((900, 16)).astype(np.float32))
    src = HeldSource(str(tmp_path / "v.npy"))
    m = MetricsReporter(0, addr="127.0.0.1")
    box: dict = {}

    monkeypatch.setattr(api, "open_source", lambda *_a, **_k: src)  # the real migrate reads the held source

    def run() -> None:
        box["summary"] = api.migrate(str(tmp_path / "v.npy"), "c", path=str(tmp_path / "qs"), batch_size=100,
                                     workers=1, state_dir=str(tmp_path / ".cortex"), metrics=m)

    t = threading.Thread(target=run)
    t.start()
    try:
        # One writer: while the source is held, every batch but possibly the last one read is committed.
        read = "cortex_migration_records_read_total"
        first = wait_for(lambda: (s := scrape(m.url)).get(read, 0) >= 200 and s, "the first batches")
        assert first[read] in (200, 300) and first["cortex_migration_records_written_total"] == first[read]
        assert first["cortex_migration_phase{phase=loading}"] == 1
        assert first["cortex_migration_records_expected"] == 900
        assert first["cortex_migration_batch_seconds_count"] >= 2
        src.go.set()
        second = wait_for(lambda: (s := scrape(m.url)).get(read, 0) >= 500 and s, "3 more batches")
        assert second[read] > first[read] and second["cortex_migration_records_written_total"] == second[read]
        assert second["cortex_migration_batch_seconds_count"] > first["cortex_migration_batch_seconds_count"]
        assert second["cortex_migration_points_per_second"] > 0
        src.go.set()
    finally:
        src.go.set()
        t.join(120)
    end = scrape(m.url)
    m.close()
    assert box["summary"].written == 900
    assert end[read] == 900 and end["cortex_migration_phase{phase=done}"] == 1
    assert end["cortex_collection_points"] == 900 and end["cortex_collection_segments"] >= 1


def test_cli_metrics_port_serves_while_paused(tmp_path: Path) -> None:
    """A real ``cortex qdrant migrate --metrics-port 0`` held at its 2nd committed batch, then interrupted."""
    np.save(tmp_path / "v.npy", np.random.default_rng(4).standard_normal((1000, 8)).astype(np.float32))
    env = {**os.environ, "CORTEX_TEST_PAUSE_AT": "batch:2", "CORTEX_TEST_PAUSE_SECONDS": "120",
           "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "cortex", "qdrant", "migrate", "-s", "v.npy", "-t", "c",
                             "--batch-size", "100", "--metrics-port", "0"], cwd=tmp_path, env=env,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        url = None
        for line in proc.stderr:
            if m := re.match(r"metrics: (\S+)", line):
                url = m.group(1)
            if line.startswith("CORTEX_TEST_PAUSED batch:2"):
                break
        assert url, "no metrics line"
        s = scrape(url)
        assert s["cortex_migration_records_read_total"] == 200
        assert s["cortex_migration_records_rejected_total"] == 0
        assert s["cortex_migration_phase{phase=loading}"] == 1
        assert s["cortex_migration_retries_total"] == 0 and s["cortex_migration_checkpoint_age_seconds"] >= 0
        proc.send_signal(signal.SIGINT)  # ends the pause; the run stops at the batch boundary
        assert proc.wait(120) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
