"""Shared fixtures: a CLI runner and per-test storage paths.

In CI (``CI=true``) a skipped test fails the session: every source must really run there.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
pytest_plugins = ["grpc_server_fixture"]  # qdrant_server / qdrant_server_module: a loopback Qdrant gRPC server


@pytest.fixture
def qdrant_path(tmp_path: Path) -> Path:
    """A fresh embedded-Qdrant storage directory."""
    return tmp_path / "qdrant_storage"


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Run ``cortex ...`` in-process; returns the click Result (exit_code, stdout, stderr)."""
    from cortex.cli import app

    monkeypatch.chdir(tmp_path)  # no stray .env or ./qdrant_storage from the repo
    for var in ("QDRANT_URL", "QDRANT_API_KEY", "QDRANT_PATH"):
        monkeypatch.delenv(var, raising=False)
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return run


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not IN_CI:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        names = ", ".join(r.nodeid for r in skipped[:10])
        print(f"\nCI forbids skipped tests, {len(skipped)} skipped: {names}")
        session.exitstatus = 1
