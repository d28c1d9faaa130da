"""Pytest fixtures for the loopback Qdrant gRPC server (``tests/qdrant_grpc_server``).

``qdrant_server`` (a fresh server per test) and ``qdrant_server_module`` (one per test module)
start ``python -m tests.qdrant_grpc_server --port 0`` in a subprocess with its own storage
directory, wait until it answers a HealthCheck, and stop it at the end.  Both give a
:class:`QdrantGrpcServer`::

    def test_x(qdrant_server, cli):
        cli("qdrant", "migrate", "-s", src, "-t", "c", *qdrant_server.cortex_args)
        client = qdrant_server.client()               # a QdrantClient over gRPC
        target = qdrant_server.target()               # a Cortex ServerTarget

Outside pytest: ``with QdrantGrpcServer(tmp_dir, api_key="k") as server: ...``.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


class QdrantGrpcServer:
    """The server in a subprocess on a free loopback port; ``stop()`` (or leaving ``with``) ends it."""

    kind = "edge-grpc"
    normalizes_cosine = True  # Qdrant stores cosine vectors unit-length

    def __init__(self, storage: str | Path | None = None, *, api_key: str | None = None,
                 max_message_bytes: int | None = None, workers: int = 16, start_timeout: float = 60) -> None:
        self._tmp = None if storage else tempfile.TemporaryDirectory(prefix="qdrant-grpc-")
        self.storage = Path(storage or self._tmp.name)  # type: ignore[union-attr]
        self.api_key = api_key
        cmd = [sys.executable, "-m", "tests.qdrant_grpc_server", "--port", "0", "--storage", str(self.storage),
               "--workers", str(workers), "--exit-with-parent"]
        cmd += ["--api-key", api_key] if api_key else []
        cmd += ["--max-message-bytes", str(max_message_bytes)] if max_message_bytes else []
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        self.storage.mkdir(parents=True, exist_ok=True)
        self.stderr_path = self.storage / "server-stderr.txt"
        self._stderr = open(self.stderr_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=self._stderr)
        try:
            self.port = self._read_port(start_timeout)
            self.wait_ready(start_timeout)
        except BaseException:
            self.stop()
            raise

    def _read_port(self, timeout: float) -> int:
        assert self.proc.stdout is not None
        end, line = time.monotonic() + timeout, b""
        while not line.endswith(b"\n"):
            if self.proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"the Qdrant test server did not start:\n{self.stderr_path.read_text()}")
            if select.select([self.proc.stdout], [], [], 0.2)[0]:
                chunk = os.read(self.proc.stdout.fileno(), 64)
                if not chunk:
                    continue
                line += chunk
        word, port = line.decode().split()
        assert word == "ready", line
        return int(port)

    def wait_ready(self, timeout: float = 60) -> None:
        """Until a HealthCheck answers (the port is bound before ``ready`` is printed; this proves it serves)."""
        import grpc
        from qdrant_client import grpc as g

        with grpc.insecure_channel(self.address) as ch:
            grpc.channel_ready_future(ch).result(timeout=timeout)
            g.QdrantStub(ch).HealthCheck(g.HealthCheckRequest(), timeout=timeout)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def cortex_args(self) -> list[str]:
        """Cortex CLI flags that point at this server (``--api-key`` included when it has one)."""
        args = ["--url", self.url, "--grpc-port", str(self.port)]
        return args + (["--api-key", self.api_key] if self.api_key else [])

    @property
    def api_kwargs(self) -> dict[str, Any]:
        """The ``cortex.api`` keywords that point at this server."""
        return {"url": self.url, "grpc_port": self.port, "api_key": self.api_key}

    def source_args(self, collection: str) -> list[str]:
        """Cortex flags that read ``collection`` of this server as a source."""
        args = [self.url, "--source-collection", collection, "--source-opt", f"grpc_port={self.port}"]
        return args + (["--source-api-key", self.api_key] if self.api_key else [])

    def client(self, **kw: Any):
        """A ``QdrantClient`` over gRPC (no REST: the version check is off)."""
        from qdrant_client import QdrantClient

        kw.setdefault("api_key", self.api_key)
        with warnings.catch_warnings():  # loopback: an api-key without TLS is expected here
            warnings.filterwarnings("ignore", message="Api key is used with an insecure connection")
            return QdrantClient(url=self.url, grpc_port=self.port, prefer_grpc=True, check_compatibility=False, **kw)

    def target(self, **kw: Any):
        """A Cortex ``ServerTarget`` on this server."""
        from cortex.targets.server import ServerTarget

        kw.setdefault("api_key", self.api_key)
        return ServerTarget(self.url, grpc_port=self.port, **kw)

    def reset(self) -> None:
        """Delete every collection (and so every alias): a clean server for the next test."""
        c = self.client()
        try:
            for coll in c.get_collections().collections:
                c.delete_collection(coll.name)
        finally:
            c.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> QdrantGrpcServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class LocalMode:
    """qdrant-client's local mode (``--url local:PATH``), with the same helpers as :class:`QdrantGrpcServer`."""

    kind = "local"
    normalizes_cosine = False  # qdrant-client 1.20 reloads persisted cosine vectors un-normalized
    api_key = None

    def __init__(self, path: Path) -> None:
        self.url = f"local:{path}"

    @property
    def cortex_args(self) -> list[str]:
        return ["--url", self.url]

    @property
    def api_kwargs(self) -> dict[str, Any]:
        return {"url": self.url}

    def source_args(self, collection: str) -> list[str]:
        return [self.url, "--source-collection", collection]

    def client(self, **kw: Any):
        from qdrant_client import QdrantClient

        return QdrantClient(path=self.url[len("local:"):], **kw)

    def target(self, **kw: Any):
        from cortex.targets.server import ServerTarget

        return ServerTarget(self.url, **kw)


@pytest.fixture
def qdrant_server(tmp_path: Path) -> Iterator[QdrantGrpcServer]:
    """A fresh Qdrant gRPC test server for one test (storage under ``tmp_path``)."""
    with QdrantGrpcServer(tmp_path / "qdrant-server") as server:
        yield server


@pytest.fixture(scope="module")
def qdrant_server_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QdrantGrpcServer]:
    """One Qdrant gRPC test server shared by a test module (use distinct collection names)."""
    with QdrantGrpcServer(tmp_path_factory.mktemp("qdrant-server") / "storage") as server:
        yield server


@pytest.fixture(params=["local", "edge-grpc"])
def qdrant_endpoint(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LocalMode | QdrantGrpcServer]:
    """Each test twice: against qdrant-client's local mode and against the gRPC server (shared per module,
    emptied before each test).  Both have ``cortex_args``, ``client()``, ``target()``, ``kind``,
    ``normalizes_cosine``."""
    if request.param == "local":
        yield LocalMode(tmp_path / "local-db")
        return
    server: QdrantGrpcServer = request.getfixturevalue("qdrant_server_module")
    server.reset()
    yield server
