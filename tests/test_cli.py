"""CLI surface: every command has --help with an example; .env settings; --version."""

from __future__ import annotations

import os

import numpy as np
import pytest
from helpers import vectors

from cortex.cli import qdrant

COMMANDS = sorted(c.name or c.callback.__name__ for c in qdrant.registered_commands)


def test_core_commands_exist():
    assert {"migrate", "verify", "status", "optimize", "export", "migrations"} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(cli, command):
    res = cli("qdrant", command, "--help")
    assert res.exit_code == 0
    assert "Example: cortex qdrant " + command in " ".join(res.stdout.split()), res.stdout


def test_version(cli):
    res = cli("--version")
    assert res.exit_code == 0 and "cortex" in res.stdout


def test_dotenv_in_working_directory_sets_the_target(cli, tmp_path):
    # the cli fixture runs in tmp_path; the migration guide keeps QDRANT_* settings in .env
    (tmp_path / ".env").write_text(f"QDRANT_PATH={tmp_path / 'from_env'}\n")
    np.save(tmp_path / "m.npy", vectors(10, 4))
    try:
        res = cli("qdrant", "migrate", "-s", tmp_path / "m.npy", "-t", "c")
    finally:
        os.environ.pop("QDRANT_PATH", None)  # load_dotenv sets it process-wide
    assert res.exit_code == 0, res.output
    assert (tmp_path / "from_env" / "c" / "edge_config.json").exists()
