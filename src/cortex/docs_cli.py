"""docs/cli.md: the ``--help`` of every command, generated so the reference cannot go stale.

Regenerate with ``python -m cortex.docs_cli`` (writes docs/cli.md); ``--check`` exits 1 when the
file differs from what the commands print now (CI runs it through tests/test_cli_docs.py).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

WIDTH = 100
DEFAULT_OUTPUT = Path("docs/cli.md")  # run from the repository root


def commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command path under ``group`` (the group itself first), subcommands in name order."""
    yield path
    subs = getattr(group, "commands", None) or {}
    for name in sorted(subs):
        if not getattr(subs[name], "hidden", False):
            yield from commands(subs[name], (*path, name))


def help_text(args: tuple[str, ...]) -> str:
    from cortex.cli import app

    env = {"COLUMNS": str(WIDTH), "TERMINAL_WIDTH": str(WIDTH), "NO_COLOR": "1", "TERM": "dumb"}
    res = CliRunner().invoke(app, [*args, "--help"], env=env, prog_name="cortex", color=False)
    if res.exit_code != 0:
        raise RuntimeError(f"cortex {' '.join(args)} --help exited {res.exit_code}: {res.output}")
    lines = [line.rstrip() for line in res.output.splitlines()]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def render() -> str:
    from cortex.cli import app

    saved = {k: os.environ.get(k) for k in ("COLUMNS", "TERMINAL_WIDTH")}
    os.environ.update(COLUMNS=str(WIDTH), TERMINAL_WIDTH=str(WIDTH))  # rich reads the width when it starts
    try:
        root = typer.main.get_command(app)
        out = ["# Cortex command reference", "",
               "Generated from `--help` by `python -m cortex.docs_cli`; do not edit by hand (a test fails when it is",
               "stale). Every command also takes `--help`.", ""]
        paths = list(commands(root))
        out += [f"- [`{' '.join(('cortex', *p))}`](#{'-'.join(('cortex', *p))})" for p in paths]
        for p in paths:
            name = " ".join(("cortex", *p))
            out += ["", f'<a id="{"-".join(("cortex", *p))}"></a>', "", f"## `{name}`", "", "```text",
                    help_text(p), "```"]
        return "\n".join(out) + "\n"
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    check = "--check" in argv
    rest = [a for a in argv if a != "--check"]
    target = Path(rest[0]) if rest else DEFAULT_OUTPUT
    text = render()
    if check:
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            print(f"{target} is stale: regenerate it with `python -m cortex.docs_cli`", file=sys.stderr)
            return 1
        return 0
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
