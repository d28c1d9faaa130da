"""Server snapshots through qdrant-client over gRPC, against the loopback Qdrant test server.

The test server answers Qdrant's gRPC ``Snapshots`` service (create, list, delete). Download and
recovery are REST endpoints in Qdrant, which the test server does not serve: here they are only
checked to fail with one line; they are not proven against a real server.
"""

from __future__ import annotations

import json

import pytest

from cortex import api
from cortex.errors import ConflictError, TargetError
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
