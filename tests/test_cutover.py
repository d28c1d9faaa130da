"""Blue-green with aliases on both targets (embedded Qdrant Edge, qdrant-client local mode): cutover, gates,
rollback, retire, and a reader querying through the alias while the switch happens."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from test_sync import N, records, write_jsonl

from cortex import api
from cortex.api import connect
from cortex.cutover.aliases import ALIAS_FILE


def _targets(tmp_path: Path, kind: str) -> list[str]:
    return ["--path", str(tmp_path / "q")] if kind == "embedded" else ["--url", f"local:{tmp_path / 'local'}"]


def _top_score(t, name: str, v: np.ndarray) -> float:
    res = t.search(name, v[None, :], 1)[0]
    assert res, "empty result"
    return res[0][1]


@pytest.mark.parametrize("kind", ["embedded", "local"])
def test_full_blue_green_cycle(cli, tmp_path: Path, kind: str) -> None:
    tflags = _targets(tmp_path, kind)
    src = write_jsonl(tmp_path / "s.jsonl", records(False))
    assert cli("qdrant", "migrate", "--source", src, "--target", "v1", *tflags).exit_code == 0
    r = cli("qdrant", "cutover", "--alias", "A", "--collection", "v1", "--source", src, *tflags)
    assert r.exit_code == 0, r.stdout + r.stderr
    assert "switched: A → v1 (created)" in r.stdout and "recall@10 = 1.0000" in r.stdout
    # the source changes (vectors, payloads only, deletes, inserts); sync through the alias
    write_jsonl(tmp_path / "s.jsonl", records(True))
    r = cli("qdrant", "sync", "--source", src, "--collection", "A", "--json", *tflags)
    assert r.exit_code == 0, r.stderr
    d = json.loads(r.stdout)
    assert (d["collection"], d["added"], d["changed"], d["deleted"]) == ("v1", 5, 5, 4)
    assert cli("qdrant", "verify", "--collection", "A", "--source", src, "--full", *tflags).exit_code == 0
    # v2: the changed source with another collection config (euclid distance), then cutover A -> v2
    assert cli("qdrant", "migrate", "--source", src, "--target", "v2", "--distance", "euclid", *tflags).exit_code == 0
    r = cli("qdrant", "cutover", "--alias", "A", "--collection", "v2", "--source", src, *tflags)
    assert r.exit_code == 0, r.stdout + r.stderr
    assert "switched: A → v2 (was v1)" in r.stdout
    assert "cortex qdrant rollback --alias A" in r.stdout
    probe = records(True)[5][0]
    kw = {"path": str(tmp_path / "q")} if kind == "embedded" else {"url": f"local:{tmp_path / 'local'}"}
    with connect(**kw) as t:
        assert t.resolve("A") == "v2" and t.collection_info("A").points == N + 1
        assert _top_score(t, "A", probe) == pytest.approx(0.0, abs=1e-4)  # euclid: v2 answers
    r = cli("qdrant", "rollback", "--alias", "A", *tflags)
    assert r.exit_code == 0 and "A → v1 (was v2, kept)" in r.stdout
    with connect(**kw) as t:
        assert _top_score(t, "A", probe) == pytest.approx(1.0, abs=1e-4)  # cosine: v1 answers again
        assert set(t.list_collections()) >= {"v1", "v2"}
    r = cli("qdrant", "aliases", "--json", *tflags)
    d = json.loads(r.stdout)
    assert d["aliases"] == {"A": "v1"}
    assert [(e["action"], e["collection"], e["previous"]) for e in d["history"]] == \
        [("cutover", "v1", None), ("cutover", "v2", "v1"), ("rollback", "v1", "v2")]
    assert {g["name"] for g in d["history"][1]["gates"]} >= {"verify --full", "compare recall@10 >= 0.95"}
    r = cli("qdrant", "retire", "--collection", "v1", "--yes", *tflags)
    assert r.exit_code == 4 and "alias A points to it" in r.stderr
    snap = ["--snapshot", str(tmp_path / "archive")] if kind == "embedded" else []
    r = cli("qdrant", "retire", "--collection", "v2", *snap, *tflags)
    assert r.exit_code == 2 and "--yes" in r.stderr  # not a terminal: no confirmation, refused
    r = cli("qdrant", "retire", "--collection", "v2", "--yes", *snap, *tflags)
    assert r.exit_code == 0, r.stderr
    with connect(**kw) as t:
        assert t.list_collections() == ["v1"] and t.resolve("A") == "v1"
    if kind == "embedded":
        tar = next((tmp_path / "archive").glob("v2-*.tar"))
        digest = (tar.parent / (tar.name + ".sha256")).read_text().split()[0]
        assert digest == hashlib.sha256(tar.read_bytes()).hexdigest()
        import tarfile

        with tarfile.open(tar) as tf:
            assert "v2/edge_config.json" in tf.getnames()
    else:
        r = cli("qdrant", "retire", "--collection", "v1", "--snapshot", str(tmp_path / "a"), "--yes", *tflags)
        assert r.exit_code in (3, 4)  # still aliased (checked first); local mode also has no snapshots


def test_gate_failures_block_the_switch(cli, tmp_path: Path) -> None:
    tflags = _targets(tmp_path, "embedded")
    src = write_jsonl(tmp_path / "s.jsonl", records(False))
    cli("qdrant", "migrate", "--source", src, "--target", "v1", *tflags)
    assert cli("qdrant", "cutover", "--alias", "A", "--collection", "v1", "--no-checks", *tflags).exit_code == 0
    # v2 misses a point (deleted behind Cortex's back: the sync state still counts it)
    cli("qdrant", "migrate", "--source", src, "--target", "v2", *tflags)
    from cortex.ids import map_id

    with connect(path=str(tmp_path / "q")) as t:
        t.delete_ids("v2", [map_id("doc-3")[0]])
    r = cli("qdrant", "cutover", "--alias", "A", "--collection", "v2", "--source", src, "--json", *tflags)
    assert r.exit_code == 1
    d = json.loads(r.stdout)
    gates = {g["name"]: g for g in d["gates"]}
    assert not d["switched"] and not gates["verify --full"]["ok"] and "1 missing" in gates["verify --full"]["figure"]
    # v3 holds other vectors under the same ids: low recall
    rng = np.random.default_rng(99)
    other = {i: (rng.standard_normal(16).astype(np.float32), p) for i, (_, p) in records(False).items()}
    cli("qdrant", "migrate", "--source", write_jsonl(tmp_path / "other.jsonl", other), "--target", "v3", *tflags)
    r = cli("qdrant", "cutover", "--alias", "A", "--collection", "v3", "--source", src, "--json", *tflags)
    assert r.exit_code == 1
    gates = {g["name"]: g for g in json.loads(r.stdout)["gates"]}
    assert gates["compare recall@10 >= 0.95"]["detail"]["recall"] < 0.5
    assert not gates["final sync: nothing pending"]["ok"]
    assert api.resolve("A", path=str(tmp_path / "q")) == "v1"  # unchanged
    # a collection name cannot be an alias; an alias is not a cutover target
    r = cli("qdrant", "cutover", "--alias", "v2", "--collection", "v1", "--no-checks", *tflags)
    assert r.exit_code == 4 and "is a collection, not an alias" in r.stderr
    r = cli("qdrant", "cutover", "--alias", "B", "--collection", "A", "--no-checks", *tflags)
    assert r.exit_code == 2 and "--collection v1" in r.stderr


def test_alias_file_is_replaced_atomically(tmp_path: Path) -> None:
    from cortex.cutover.aliases import read_aliases, set_aliases

    root = tmp_path / "q"
    set_aliases(root, {"A": "v1", "B": "v2"})
    set_aliases(root, {"A": "v3", "B": None})
    assert json.loads((root / ALIAS_FILE).read_text()) == {"aliases": {"A": "v3"}}
    assert read_aliases(root) == {"A": "v3"}
    assert not list(root.glob("*.tmp"))


@pytest.mark.parametrize("kind", ["embedded", "local"])
def test_reader_through_the_alias_never_fails_during_cutover(tmp_path: Path, kind: str) -> None:
    src = write_jsonl(tmp_path / "s.jsonl", records(False))
    kw = {"path": str(tmp_path / "q")} if kind == "embedded" else {"url": f"local:{tmp_path / 'local'}"}
    st = str(tmp_path / ".cortex")
    shared = connect(**kw) if kind == "local" else None  # local mode: one client per storage directory
    tkw = {"target": shared} if shared is not None else kw
    api.migrate(src, "v1", state_dir=st, **tkw)
    api.migrate(src, "v2", distance="euclid", state_dir=st, **tkw)
    assert api.cutover("A", "v1", no_checks=True, state_dir=st, **tkw).switched
    probe = records(False)[9][0]
    done, errors, scores = threading.Event(), [], []

    def reader() -> None:
        t = shared if shared is not None else connect(**kw)
        try:
            while True:
                last = done.is_set()
                try:
                    res = t.search("A", probe[None, :], 5)[0]
                    if not res:
                        errors.append("empty result")
                    else:
                        scores.append(res[0][1])
                except Exception as e:  # noqa: BLE001 - any failure is what the test looks for
                    errors.append(repr(e))
                if last:
                    return
        finally:
            if shared is None:
                t.close()

    th = threading.Thread(target=reader)
    th.start()
    try:
        res = api.cutover("A", "v2", source=src, state_dir=st, **tkw)  # gates, then the switch
    finally:
        done.set()
        th.join(timeout=300)
    assert res.switched, res.gates
    assert not errors, errors[:3]
    assert scores and scores[-1] == pytest.approx(0.0, abs=1e-4)  # the last query was answered by v2
    assert len(scores) >= 1 and N > 0
    if shared is not None:
        shared.close()


def test_blue_green_over_grpc_server(cli, tmp_path: Path, qdrant_server) -> None:
    """The server path over real gRPC (the loopback server on Qdrant Edge): aliases via update_collection_aliases."""
    tflags = qdrant_server.cortex_args
    src = write_jsonl(tmp_path / "s.jsonl", records(False))
    assert cli("qdrant", "migrate", "--source", src, "--target", "v1", *tflags).exit_code == 0
    r = cli("qdrant", "cutover", "--alias", "A", "--collection", "v1", "--source", src, *tflags)
    assert r.exit_code == 0, r.stdout + r.stderr
    write_jsonl(tmp_path / "s.jsonl", records(True))
    r = cli("qdrant", "sync", "--source", src, "--collection", "A", "--json", *tflags)
    d = json.loads(r.stdout)
    assert (d["collection"], d["added"], d["changed"], d["deleted"]) == ("v1", 5, 5, 4)
    assert cli("qdrant", "migrate", "--source", src, "--target", "v2", *tflags).exit_code == 0
    assert cli("qdrant", "cutover", "--alias", "A", "--collection", "v2", "--source", src, *tflags).exit_code == 0
    c = qdrant_server.client()
    assert {a.alias_name: a.collection_name for a in c.get_aliases().aliases} == {"A": "v2"}
    assert cli("qdrant", "rollback", "--alias", "A", *tflags).exit_code == 0
    assert {a.alias_name: a.collection_name for a in c.get_aliases().aliases} == {"A": "v1"}
    assert c.count("A").count == N + 1
    # this server speaks gRPC only, so the snapshot cannot be downloaded (REST): the collection must survive
    r = cli("qdrant", "retire", "--collection", "v2", "--snapshot", str(tmp_path / "arch"), "--yes", *tflags)
    assert r.exit_code == 3 and "snapshot" in r.stderr
    assert c.collection_exists("v2")
    r = cli("qdrant", "retire", "--collection", "v2", "--yes", *tflags)
    assert r.exit_code == 0, r.stderr
    assert not c.collection_exists("v2")
    c.close()


def test_retire_with_snapshot_on_a_server_downloads_and_checks_it(qdrant_server, cli, tmp_path: Path) -> None:
    """Server: the archive is a new collection snapshot, downloaded over REST and checked against the server's
    sha256 before the collection is deleted (REST by the snapshot tests' loopback endpoint, gRPC by the server)."""
    from test_snapshot_server import _SnapshotRest

    src = tmp_path / "s.jsonl"
    write_jsonl(src, records(False))
    assert cli("qdrant", "migrate", "--source", src, "--target", "old", *qdrant_server.cortex_args).exit_code == 0
    rest = _SnapshotRest(qdrant_server.storage)
    try:
        flags = ["--url", rest.url, "--grpc-port", str(qdrant_server.port)]
        rest.corrupt = True  # a damaged download: refused, and the collection is kept
        r = cli("qdrant", "retire", "--collection", "old", "--snapshot", str(tmp_path / "bad"), "--yes", *flags)
        assert r.exit_code == 1 and "differs from the server's" in r.stderr
        assert qdrant_server.client().collection_exists("old")
        rest.corrupt = False
        r = cli("qdrant", "retire", "--collection", "old", "--snapshot", str(tmp_path / "arch"), "--yes", "--json",
                *flags)
        assert r.exit_code == 0, r.stderr
        d = json.loads(r.stdout)
        f = Path(d["archive"])
        assert f.parent == tmp_path / "arch" and f.name.startswith("old-") and f.suffix == ".snapshot"
        assert hashlib.sha256(f.read_bytes()).hexdigest() == d["sha256"] and d["deleted"] is True
        assert not qdrant_server.client().collection_exists("old")
    finally:
        rest.close()
