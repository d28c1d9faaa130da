"""``cortex qdrant health``: the guide's ``curl /healthz`` made useful for scripts and containers.

Server: reachable, version, API key accepted, every collection's status, free disk when the target is
on this machine.  Embedded: storage writable, free disk, every collection opens.  The report's
``exit_code`` is 0 when healthy, 3 when the target cannot be reached or refuses the key, 1 when it
answers but something is unhealthy (a red collection, storage not writable, a collection that does
not open, free disk below ``min_free_mb``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cortex.errors import AuthError, CollectionBusyError, CortexError, ExitCode, TargetError, TransientTargetError

DEFAULT_MIN_FREE_MB = 512


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class HealthReport:
    target: str
    kind: str  # embedded | server
    version: str | None = None
    reachable: bool = False
    authenticated: bool | None = None  # None: the target has no API key to check (embedded)
    free_disk_bytes: int | None = None
    collections: list[dict[str, Any]] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def exit_code(self) -> int:
        if not self.reachable or self.authenticated is False:
            return ExitCode.TARGET
        return ExitCode.OK if self.healthy else ExitCode.CHECK_FAILED

    def add(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(name, ok, detail))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["healthy"], d["exit_code"] = self.healthy, self.exit_code
        return d


def _disk(report: HealthReport, path: Path, min_free_mb: float) -> None:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    report.free_disk_bytes = free
    report.add("free disk", free >= min_free_mb * 2**20,
               f"{free / 2**30:.1f} GiB free at {probe}" + ("" if free >= min_free_mb * 2**20 else
                                                            f", below {min_free_mb:.0f} MB: free space or grow the "
                                                            "volume before migrating"))


def check_embedded(path: str, min_free_mb: float = DEFAULT_MIN_FREE_MB) -> HealthReport:
    from importlib.metadata import version

    from cortex.targets.edge import EdgeTarget

    root = Path(path)
    report = HealthReport(target=str(root), kind="embedded", version=f"qdrant-edge-py {version('qdrant-edge-py')}",
                          reachable=True)
    if root.exists() and not root.is_dir():
        report.add("storage", False, f"{root} is a file, not a storage directory; pass --path DIR")
        return report
    if root.is_dir():
        try:
            with tempfile.NamedTemporaryFile(dir=root, prefix=".cortex-health-"):
                pass
            report.add("storage", True, f"{root} is writable")
        except OSError as e:
            report.add("storage", False, f"{root} is not writable ({e.strerror}); fix its permissions")
    else:
        parent = next(p for p in root.absolute().parents if p.exists())
        ok = os.access(parent, os.W_OK)
        report.add("storage", ok, f"{root} does not exist yet; setup or migrate creates it" if ok else
                   f"{root} does not exist and {parent} is not writable; create it or pass another --path")
    _disk(report, root, min_free_mb)
    target = EdgeTarget(root)
    try:
        for name in target.list_collections():
            try:
                info = target.collection_info(name)
                assert info is not None
                report.collections.append({"name": name, "status": info.status, "points": info.points,
                                           "segments": info.segments})
            except CollectionBusyError:
                report.collections.append({"name": name, "status": "busy", "points": None, "segments": None})
            except CortexError as e:
                report.collections.append({"name": name, "status": "unreadable", "points": None, "error": str(e)})
                report.add(f"collection {name}", False, str(e))
    finally:
        target.close()
    bad = [c["name"] for c in report.collections if c["status"] == "unreadable"]
    if not bad:
        busy = [c["name"] for c in report.collections if c["status"] == "busy"]
        report.add("collections", True, f"{len(report.collections)} open" +
                   (f" ({', '.join(busy)} in use by another process)" if busy else ""))
    return report


def check_server(url: str, api_key: str | None = None, prefer_grpc: bool = True, grpc_port: int = 6334,
                 min_free_mb: float = DEFAULT_MIN_FREE_MB, timeout: int = 10) -> HealthReport:
    from cortex.targets.server import ServerTarget, translate

    report = HealthReport(target=url, kind="server")
    target = ServerTarget(url, api_key=api_key, prefer_grpc=prefer_grpc, grpc_port=grpc_port, timeout=timeout)
    try:
        def call(what: str, fn: Any) -> Any:
            try:
                return fn()
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as e:
                raise translate(e, what) from e

        try:
            v = call("version", target.client.info)
            report.version = f"{getattr(v, 'title', 'qdrant')} {v.version}".strip()
            report.reachable = True
        except AuthError:
            report.reachable = True  # it answered: the key is checked below
        except TargetError as e:
            if target.local:
                report.reachable = True
                report.version = "qdrant-client local mode"
            else:
                report.add("reachable", False, f"cannot reach Qdrant at {url} ({_short(e)}); check --url / "
                           "QDRANT_URL, the port (REST 6333, gRPC 6334) and that the server is running")
                return report
        report.add("reachable", True, f"{url} answers" + (f" ({report.version})" if report.version else ""))
        try:
            names = sorted(c.name for c in call("list collections", target.client.get_collections).collections)
            report.authenticated = True
            report.add("authenticated", True, "API key accepted" if api_key else "no API key needed")
        except AuthError:
            report.authenticated = False
            report.add("authenticated", False, f"Qdrant at {url} refused the API key "
                       f"({'a key was given' if api_key else 'none was given'}); set --api-key / QDRANT_API_KEY "
                       "to the server's QDRANT__SERVICE__API_KEY")
            return report
        except TransientTargetError as e:
            report.add("authenticated", False, f"listing collections failed: {_short(e)}")
            return report
        for name in names:
            try:
                info = target.collection_info(name)
            except TargetError as e:
                report.collections.append({"name": name, "status": "unreadable", "error": str(e)})
                report.add(f"collection {name}", False, _short(e))
                continue
            if info is None:
                continue
            report.collections.append({"name": name, "status": info.status, "points": info.points,
                                       "segments": info.segments})
            if info.status == "red":
                report.add(f"collection {name}", False, "status red: an optimization failed; see the server log "
                           "(`docker-compose logs qdrant`)")
        if not any(c.name.startswith("collection ") for c in report.checks):
            report.add("collections", True, f"{len(report.collections)} readable, none red")
        if target.local:
            _disk(report, Path(url[len("local:"):]) if url.startswith("local:") else Path.cwd(), min_free_mb)
        else:
            report.add("free disk", True, "not reported by the Qdrant API; watch the storage volume "
                       "(`df -h` on the host, or the Grafana dashboard's memory and disk panels)")
    finally:
        target.close()
    return report


def _short(e: Exception) -> str:
    s = str(e).splitlines()[0] if str(e) else type(e).__name__
    return s[:300]


def health(*, path: str | None = None, url: str | None = None, api_key: str | None = None, prefer_grpc: bool = True,
           grpc_port: int = 6334, min_free_mb: float = DEFAULT_MIN_FREE_MB, timeout: int = 10) -> HealthReport:
    """Check the target (server when ``url``/``QDRANT_URL`` is set, else embedded at ``path``); never raises
    for an unhealthy target: see ``HealthReport.healthy`` / ``exit_code``."""
    from cortex.targets import DEFAULT_PATH

    url = url or os.environ.get("QDRANT_URL") or None
    if url:
        return check_server(url, api_key or os.environ.get("QDRANT_API_KEY") or None, prefer_grpc, grpc_port,
                            min_free_mb, timeout)
    return check_embedded(path or os.environ.get("QDRANT_PATH") or DEFAULT_PATH, min_free_mb)
