"""Qdrant as a source: embedded shard -> embedded, embedded -> server (qdrant-client local mode)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
from helpers import payload, vectors, write_jsonl

from cortex.payload_compare import payload_equal
from cortex.targets.edge import EdgeTarget
from cortex.targets.server import ServerTarget


def _tree_hash(root):
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(root)).encode() + f.read_bytes())
    return h.hexdigest()


def test_embedded_shard_to_another_embedded_collection(cli, tmp_path, qdrant_path):
    vecs = vectors(700, 16)
    src = write_jsonl(tmp_path / "e.jsonl", vecs)
    assert cli("qdrant", "migrate", "-s", src, "-t", "orig", "--path", qdrant_path, "--distance", "dot").exit_code == 0
    shard = qdrant_path / "orig"
    before = _tree_hash(shard)
    other = tmp_path / "other_storage"
    res = cli("qdrant", "migrate", "-s", shard, "-t", "copy", "--path", other, "--json", "--batch-size", "128")
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert s["source_kind"] == "qdrant" and s["written"] == 700 and s["distance"] == "dot"
    assert _tree_hash(shard) == before  # the source shard was never written
    assert cli("qdrant", "verify", "-c", "copy", "-s", shard, "--path", other, "--full").exit_code == 0
    with EdgeTarget(other) as t:
        a = {p.id: p.payload for page in t.scroll("copy") for p in page}
    got = sorted(a.values(), key=lambda p: p["n"])
    # Qdrant's payload storage may return a float one ulp away, hence payload_equal over ==.
    assert payload_equal(got, [{**payload(i), "source_id": f"doc-{i}"} for i in range(700)])


def test_embedded_to_server_one_liner(cli, tmp_path, qdrant_path):
    vecs = vectors(300, 8, seed=2)
    np.save(tmp_path / "m.npy", vecs)
    assert cli("qdrant", "migrate", "-s", tmp_path / "m.npy", "-t", "laptop", "--path", qdrant_path).exit_code == 0
    url = "local:" + str(tmp_path / "server_db")
    res = cli("qdrant", "migrate", "-s", qdrant_path / "laptop", "-t", "prod", "--url", url)
    assert res.exit_code == 0, res.output
    t = ServerTarget(url)
    try:
        assert t.count("prod") == 300
        got = t.retrieve("prod", [5])[5]
        np.testing.assert_allclose(got.vector, vecs[5] / np.linalg.norm(vecs[5]), atol=1e-6)
    finally:
        t.close()


def test_server_source_needs_collection(cli, tmp_path, qdrant_path):
    res = cli("qdrant", "migrate", "-s", "local:" + str(tmp_path / "db"), "-t", "x", "--path", qdrant_path)
    assert res.exit_code == 2 and "--source-collection" in res.stderr
