"""docs/migration-guide.md runs: every ``bash`` and ``python`` block of each ``## `` section, against the examples.

Each section runs in a fresh scratch directory holding a copy of ``examples/``, with ``cortex`` on PATH and no
``QDRANT_*`` settings; its blocks run in document order and share that directory. A block whose first line is
``# exit: N`` must exit with N; a fence marked ``norun`` is only shown.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "migration-guide.md"
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```\s*$", re.S | re.M)
EXPECT = re.compile(r"^#\s*exit:\s*(\d+)\s*$")


@dataclass
class Block:
    lang: str
    code: str
    line: int

    @property
    def expected_exit(self) -> int:
        first = self.code.lstrip().splitlines()[0] if self.code.strip() else ""
        m = EXPECT.match(first)
        return int(m.group(1)) if m else 0


def sections(text: str) -> dict[str, list[Block]]:
    """``## `` title -> the runnable blocks under it, in order."""
    out: dict[str, list[Block]] = {}
    starts = [(m.start(), m.group(1).strip()) for m in re.finditer(r"^## (.+)$", text, re.M)]
    for i, (pos, title) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else len(text)
        body = text[pos:end]
        blocks = []
        for m in FENCE.finditer(body):
            lang, info = m.group(1), m.group(2)
            if lang in ("bash", "sh", "python") and "norun" not in info:
                blocks.append(Block(lang, m.group(3), text.count("\n", 0, pos + m.start()) + 1))
        if blocks:
            out[title] = blocks
    return out


SECTIONS = sections(GUIDE.read_text(encoding="utf-8"))


def _env(bindir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QDRANT_", "CORTEX_TEST_"))}
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    env["COLUMNS"] = "120"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH")) if p)
    return env


@pytest.fixture
def scratch(tmp_path: Path) -> tuple[Path, Path]:
    """A working directory with ``examples/``, and a bin directory whose ``cortex`` is this checkout's."""
    work = tmp_path / "work"
    shutil.copytree(ROOT / "examples", work / "examples")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shim = bindir / "cortex"
    shim.write_text(f"#!/bin/sh\nexec {sys.executable} -m cortex \"$@\"\n")
    shim.chmod(0o755)
    py = bindir / "python"
    py.symlink_to(sys.executable)
    return work, bindir


def test_the_guide_has_runnable_sections() -> None:
    assert len(SECTIONS) >= 2, "docs/migration-guide.md lost its runnable blocks"


@pytest.mark.parametrize("title", list(SECTIONS))
def test_guide_section_runs(title: str, scratch: tuple[Path, Path]) -> None:
    work, bindir = scratch
    env = _env(bindir)
    for block in SECTIONS[title]:
        cmd = ["bash", "-euo", "pipefail", "-c", block.code] if block.lang != "python" else \
            [sys.executable, "-c", block.code]
        p = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=240)
        assert p.returncode == block.expected_exit, (
            f"docs/migration-guide.md:{block.line} ({title}) exited {p.returncode}, expected "
            f"{block.expected_exit}\n--- block ---\n{block.code}\n--- stdout ---\n{p.stdout[-3000:]}\n"
            f"--- stderr ---\n{p.stderr[-3000:]}")
