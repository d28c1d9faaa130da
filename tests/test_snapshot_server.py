"""Server snapshots through qdrant-client over gRPC, against the loopback Qdrant test server.

The test server answers Qdrant's gRPC ``Snapshots`` service (create, list, delete). Download and
recovery are REST endpoints in Qdrant: a loopback HTTP endpoint serves the test server's snapshot
files and records the recover/upload requests qdrant-client sends (their shape and parameters are
checked; a real server actually recovering from them is not proven here).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from cortex import api
from cortex.errors import CheckFailed, ConflictError, CortexError, TargetError
from tests.helpers import vectors, write_jsonl


def test_server_snapshot_create_list_delete(qdrant_server, tmp_path, cli):
    src = write_jsonl(tmp_path / "src.jsonl", vectors(50, 8))
    r = cli("qdrant", "migrate", "--source", src, "--target", "docs", *qdrant_server.cortex_args)
    assert r.exit_code == 0, r.stderr
    kw = {"url": qdrant_server.url, "grpc_port": qdrant_server.port}

    snap = api.snapshot_create("docs", **kw)
    assert snap.target == "server" and snap.name.endswith(".snapshot") and snap.size
    r = cli("qdrant", "snapshot", "list", "--collection", "docs", "--json", *qdrant_server.cortex_args)
    assert r.exit_code == 0, r.stderr
    assert [s["name"] for s in json.loads(r.stdout)] == [snap.name]
    assert [s.name for s in api.snapshot_list(**kw)] == [snap.name]  # every collection's

    r = cli("qdrant", "snapshot", "delete", "--snapshot", snap.name, "--collection", "docs",
            *qdrant_server.cortex_args)
    assert r.exit_code == 0, r.stderr
    assert api.snapshot_list("docs", **kw) == []
    r = cli("qdrant", "snapshot", "delete", "--snapshot", snap.name, "--collection", "docs",
            *qdrant_server.cortex_args)
    assert r.exit_code == 3 and len(r.stderr.strip().splitlines()) == 1

    # restore never lands on an existing collection without --overwrite
    with pytest.raises(ConflictError, match="already exists"):
        api.snapshot_restore("http://example.invalid/x.snapshot", collection="docs", **kw)
    # the download is REST, which this gRPC-only server does not answer: one line, exit 3
    with pytest.raises(TargetError):
        api.snapshot_create("docs", output=str(tmp_path / "d.snapshot"), **kw)
    assert not (tmp_path / "d.snapshot").exists()


class _SnapshotRest:
    """Qdrant's snapshot REST endpoints, on loopback, for what qdrant-client sends over REST.

    GET serves the files the gRPC test server wrote; the recover and upload calls are recorded
    (method, path, query, body) and answered as Qdrant does. The gRPC side stays the test server.
    """

    def __init__(self, files: Path) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.calls: list[dict] = []
        self.corrupt = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a) -> None:
                pass

            def _reply(self, code: int, body: bytes, ctype: str = "application/json") -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                parts = urlsplit(self.path).path.strip("/").split("/")
                found = list(files.rglob(parts[-1])) if parts[-2:-1] == ["snapshots"] else []
                if not found:
                    self._reply(404, b'{"status": {"error": "not found"}}')
                    return
                data = bytearray(found[0].read_bytes())
                if outer.corrupt:
                    data[len(data) // 2] ^= 1
                self._reply(200, bytes(data), "application/octet-stream")

            def _record(self) -> None:
                u = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.calls.append({"method": self.command, "path": u.path, "query": parse_qs(u.query),
                                    "body": body, "api-key": self.headers.get("api-key")})
                self._reply(200, b'{"result": true, "status": "ok", "time": 0.001}')

            do_PUT = do_POST = _record  # noqa: N815

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_server_download_and_recover_requests(qdrant_server, tmp_path, cli):
    """Download (checked against the server's sha256), recovery from a URL and upload of a file, with priority."""
    src = write_jsonl(tmp_path / "src.jsonl", vectors(30, 8))
    assert cli("qdrant", "migrate", "--source", src, "--target", "docs", *qdrant_server.cortex_args).exit_code == 0
    rest = _SnapshotRest(qdrant_server.storage)
    try:
        kw = {"url": rest.url, "grpc_port": qdrant_server.port}  # REST here, gRPC on the test server
        out = tmp_path / "dl" / "docs.snapshot"
        snap = api.snapshot_create("docs", output=str(out), **kw)
        assert snap.downloaded == str(out) and out.stat().st_size == snap.size
        assert hashlib.sha256(out.read_bytes()).hexdigest() == snap.checksum
        assert (tmp_path / "dl" / "docs.snapshot.checksum").read_text().strip() == snap.checksum

        rest.corrupt = True  # a download that does not match the server's sha256 is refused and removed
        with pytest.raises(CheckFailed, match="differs from the server's"):
            api.snapshot_create("docs", output=str(tmp_path / "bad.snapshot"), **kw)
        assert not (tmp_path / "bad.snapshot").exists() and not list(tmp_path.glob("bad.snapshot*"))

        api.snapshot_restore("http://backups.internal/docs.snapshot", collection="docs_url", priority="snapshot",
                             checksum=snap.checksum, **kw)
        call = rest.calls[-1]
        assert call["method"] == "PUT" and call["path"] == "/collections/docs_url/snapshots/recover"
        assert json.loads(call["body"]) == {"location": "http://backups.internal/docs.snapshot",
                                            "priority": "snapshot", "checksum": snap.checksum}

        r = cli("qdrant", "snapshot", "restore", "--snapshot", out, "--collection", "docs_up", "--priority",
                "replica", "--url", rest.url, "--grpc-port", str(qdrant_server.port), "--json")
        assert r.exit_code == 0, r.stderr
        assert json.loads(r.stdout)["how"] == "uploaded"
        call = rest.calls[-1]
        assert call["method"] == "POST" and call["path"] == "/collections/docs_up/snapshots/upload"
        assert call["query"]["priority"] == ["replica"] and call["query"]["checksum"] == [snap.checksum]
        assert out.read_bytes() in call["body"]  # the multipart body carries the file

        out.write_bytes(out.read_bytes()[:-1] + b"X")  # damaged after download: refused before any upload
        n = len(rest.calls)
        r = cli("qdrant", "snapshot", "restore", "--snapshot", out, "--collection", "docs_up2",
                "--url", rest.url, "--grpc-port", str(qdrant_server.port))
        assert r.exit_code == 1 and "sha256" in r.stderr and len(rest.calls) == n
        with pytest.raises(CortexError, match="--priority"):
            api.snapshot_restore(str(out), collection="x", priority="fast", **kw)
    finally:
        rest.close()
