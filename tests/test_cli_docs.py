"""docs/cli.md is the ``--help`` of every command: regenerate it with ``python -m cortex.docs_cli``."""

from __future__ import annotations

from pathlib import Path

from cortex.docs_cli import commands, main, render

DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def test_docs_cli_md_is_current():
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/cli.md is stale: run `python -m cortex.docs_cli` from the repository root and commit it")


def test_every_command_is_documented_and_the_check_fails_on_a_stale_file(tmp_path):
    import typer

    from cortex.cli import app

    text = render()
    paths = list(commands(typer.main.get_command(app)))
    assert ("qdrant", "migrate") in paths and ("qdrant", "verify") in paths
    for p in paths:
        assert f"## `{' '.join(('cortex', *p))}`" in text
    stale = tmp_path / "cli.md"
    stale.write_text(text.replace("Example:", "Exemple:", 1), encoding="utf-8")
    assert main(["--check", str(stale)]) == 1
    assert main([str(stale)]) == 0 and main(["--check", str(stale)]) == 0
