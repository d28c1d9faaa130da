"""Run the real ``cortex`` in a subprocess and read its migration state (for kill/lock tests)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path


class Run:
    """``python -m cortex ARGS`` in ``cwd``; stdout/stderr go to files, so nothing blocks on a pipe.

    ``pause`` sets ``CORTEX_TEST_PAUSE_AT`` (see ``cortex.pipeline.pause_for_test``).
    """

    def __init__(self, cwd: Path, args: list[str], pause: str | None = None, **env: str) -> None:
        self.cwd = cwd
        stamp = time.monotonic_ns()
        self.out, self.err = cwd / f"out-{stamp}.txt", cwd / f"err-{stamp}.txt"
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("QDRANT_", "CORTEX_TEST_"))}
        environ.update(env)
        if pause:
            environ["CORTEX_TEST_PAUSE_AT"] = pause
        with open(self.out, "wb") as o, open(self.err, "wb") as e:
            self.proc = subprocess.Popen([sys.executable, "-m", "cortex", *args], cwd=cwd, stdout=o, stderr=e,
                                         env=environ)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def stderr(self) -> str:
        return self.err.read_text()

    @property
    def stdout(self) -> str:
        return self.out.read_text()

    def wait_for(self, text: str, timeout: float = 300) -> None:
        """Until ``text`` shows on stderr (fails if the process exits first)."""
        end = time.monotonic() + timeout
        while text not in self.stderr:
            if self.proc.poll() is not None:
                raise AssertionError(f"exited {self.proc.returncode} before {text!r}:\n{self.stderr}")
            if time.monotonic() > end:
                raise AssertionError(f"no {text!r} after {timeout}s:\n{self.stderr}")
            time.sleep(0.02)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 120) -> int:
        return self.proc.wait(timeout=timeout)


def state(cwd: Path, state_dir: str = ".cortex") -> dict:
    """The one migration record of ``cwd/state_dir``, read-only (the migration may still be running)."""
    db = sqlite3.connect(f"file:{cwd / state_dir / 'state.sqlite'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT data FROM migrations").fetchall()
    finally:
        db.close()
    assert len(rows) == 1, rows
    return json.loads(rows[0][0])
