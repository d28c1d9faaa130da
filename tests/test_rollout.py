"""Rolling migration over 5 workspaces of a JSONL file and of a pgvector table (real PostgreSQL).

Units migrate and verify on their own, a killed unit resumes, promote/revert move each workspace's
queries between the old system and Qdrant (asserted on the router's ``side``), and revert --delete
removes only that unit's points.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest
from cortex_proc import Run
from pg_fixture import PgServer, pg_server, pg_url  # noqa: F401  (session fixtures)

from cortex import api
from cortex.errors import ConflictError, CortexError
from cortex.rollout.pieces import PieceStore
from cortex.rollout.state import Rollout
from cortex.router import Router
from cortex.sources import SourceOptions
from cortex.targets.edge import EdgeTarget
from cortex.where import equals

WS = [f"ws-{i}" for i in range(5)]
SIZES = [30, 45, 20, 60, 25]  # points per workspace
DIM = 16


def _records() -> list[dict]:
    rng = np.random.default_rng(7)
    out, i = [], 0
    for w, n in zip(WS, SIZES, strict=True):
        for _ in range(n):
            out.append({"id": i, "vector": rng.standard_normal(DIM).astype(np.float32).tolist(),
                        "payload": {"workspace_id": w, "n": i, "created_at": f"2026-01-{i % 28 + 1:02d}T00:00:00Z"}})
            i += 1
    rng.shuffle(out)  # workspaces interleaved, as in a real table
    return out


RECORDS = _records()


@pytest.fixture(scope="module")
def pg_table(pg_server: PgServer) -> str:  # noqa: F811
    import psycopg

    pg_server.sql("DROP TABLE IF EXISTS chunks")
    pg_server.sql("CREATE TABLE chunks (id bigint PRIMARY KEY, workspace_id text, n int, created_at timestamptz, "
                  "embedding vector(16))")
    with psycopg.connect(pg_server.url, autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO chunks VALUES (%s, %s, %s, %s, %s::vector)", [
            (r["id"], r["payload"]["workspace_id"], r["payload"]["n"], r["payload"]["created_at"],
             "[" + ",".join(map(repr, r["vector"])) + "]") for r in RECORDS])
        cur.execute("CREATE INDEX ON chunks USING hnsw (embedding vector_cosine_ops)")
    return pg_server.url


@pytest.fixture(params=["jsonl", "pgvector"])
def src(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, SourceOptions, list[str]]:
    """(source, options, the same as CLI flags)."""
    if request.param == "jsonl":
        p = tmp_path / "export.jsonl"
        p.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
        return str(p), SourceOptions(), []
    url = request.getfixturevalue("pg_table")
    return url, SourceOptions(table="chunks"), ["--table", "chunks"]


def _by_hand(ws: str) -> set[int]:
    return {r["id"] for r in RECORDS if r["payload"]["workspace_id"] == ws}


def test_rollout_units_router_and_partial_rollback(src, tmp_path: Path) -> None:
    source, opts, flags = src
    state = str(tmp_path / ".cortex")
    plan = api.rollout_plan(source, by="workspace_id", collection="chunks", options=opts, state_dir=state,
                            path=str(tmp_path / "qs"))
    assert [(u.name, u.count) for u in plan.units] == list(zip(WS, SIZES, strict=True))
    tgt = EdgeTarget(tmp_path / "qs")
    try:
        # two units first, in parallel; the others stay pending
        res = api.rollout_run(units=["ws-1", "ws-3"], parallel=2, state_dir=state, target=tgt, source=source)
        assert res.ok, res.to_dict()
        for u in res.units:
            assert u.status == "verified" and u.written == SIZES[WS.index(u.name)]
            assert u.read == u.written + u.rejected + u.skipped
        st = {u["name"]: u["status"] for u in api.rollout_status(state_dir=state)["units"]}
        assert st == {"ws-0": "pending", "ws-1": "verified", "ws-2": "pending", "ws-3": "verified", "ws-4": "pending"}
        assert tgt.count("chunks") == SIZES[1] + SIZES[3]
        assert "workspace_id" in tgt.collection_info("chunks").payload_indexes  # the tenant index
        with pytest.raises(ConflictError, match="not verified"):
            api.rollout_promote("ws-0", state_dir=state)

        # the rest (default: every unit not verified yet)
        res = api.rollout_run(state_dir=state, target=tgt, source=source)
        assert res.ok and sorted(u.name for u in res.units) == ["ws-0", "ws-2", "ws-4"]
        assert tgt.count("chunks") == sum(SIZES)

        router = Router(state, old=_old(source, opts), new=(tgt, "chunks"))
        q = np.asarray(RECORDS[0]["vector"], dtype=np.float32)
        before = {w: router.search(q, k=5, workspace=w) for w in WS}
        assert {r.side for r in before.values()} == {"old"}
        for w, r in before.items():
            assert {i for i, _ in r.hits} <= _by_hand(w) and len(r.hits) == 5

        api.rollout_promote("ws-1", state_dir=state)
        api.rollout_promote("ws-2", state_dir=state)
        after = {w: router.search(q, k=5, workspace=w) for w in WS}  # no restart: it re-reads the unit files
        assert {w for w, r in after.items() if r.side == "qdrant"} == {"ws-1", "ws-2"}
        for w in ("ws-1", "ws-2"):  # same workspace, same answer, now from Qdrant
            assert [i for i, _ in after[w].hits] == [i for i, _ in before[w].hits]
            assert {i for i, _ in after[w].hits} <= _by_hand(w)
        lat = router.latency()
        assert lat["qdrant"]["n"] == 2 and lat["old"]["n"] == 8

        # partial rollback: ws-2 goes back to the old system and its points leave Qdrant; the others stay
        out = api.rollout_revert("ws-2", delete=True, state_dir=state, target=tgt)
        assert out["deleted_points"] == SIZES[2]
        assert router.search(q, k=5, workspace="ws-2").side == "old"
        assert router.search(q, k=5, workspace="ws-1").side == "qdrant"
        assert tgt.count("chunks", filter=equals("workspace_id", "ws-2")) == 0
        assert tgt.count("chunks") == sum(SIZES) - SIZES[2]
        for w in ("ws-0", "ws-1", "ws-3", "ws-4"):
            rep = api.verify("chunks", source=source, options=_where(opts, w), target=tgt, full=True)
            assert rep.ok and rep.actual_count == SIZES[WS.index(w)], rep.problems[:3]
        rep = api.verify("chunks", source=source, options=_where(opts, "ws-2"), target=tgt, full=True)
        assert not rep.ok and rep.missing == SIZES[2]

        # the reverted unit moves again from the beginning, then is promoted again
        res = api.rollout_run(units=["ws-2"], state_dir=state, target=tgt, source=source)
        assert res.ok and res.units[0].written == SIZES[2] and res.units[0].resumed_from == 0
        api.rollout_promote("ws-2", state_dir=state)
        assert router.search(q, k=5, workspace="ws-2").side == "qdrant"
        assert router.reloads >= 4
        router.old.close()
    finally:
        tgt.close()


def _old(source: str, opts: SourceOptions):
    from cortex.router import OldSystem

    return OldSystem(source, options=opts)


def _where(opts: SourceOptions, ws: str) -> SourceOptions:
    return SourceOptions(**{**opts.__dict__, "where": f"workspace_id = '{ws}'"})


def test_killed_unit_resumes(src, tmp_path: Path) -> None:
    source, _opts, flags = src
    base = ["--state-dir", ".cortex", "--path", "qs"]
    plan = Run(tmp_path, ["qdrant", "rollout", "plan", "--source", source, *flags, "--by", "workspace_id",
                          "--collection", "chunks", *base])
    assert plan.wait() == 0, plan.stderr
    run = Run(tmp_path, ["qdrant", "rollout", "run", "--source", source, "--unit", "ws-3", "--batch-size", "10",
                         "--checkpoint-seconds", "0", *base[:2]],
              pause="batch:3")
    run.wait_for("CORTEX_TEST_PAUSED batch:3")
    run.kill(signal.SIGKILL)
    run.wait()
    units = PieceStore(tmp_path / ".cortex" / "rollouts" / "chunks" / "units")
    assert units.read("ws-3")["status"] == "migrating"
    st = api.rollout_status(state_dir=str(tmp_path / ".cortex"))
    assert {u["name"]: u["status"] for u in st["units"]}["ws-3"] == "interrupted"  # its writer is gone

    again = Run(tmp_path, ["qdrant", "rollout", "run", "--source", source, "--unit", "ws-3", "--batch-size", "10",
                           "--json", *base[:2]])
    assert again.wait() == 0, again.stderr
    assert "resuming at" in again.stderr
    out = json.loads(again.stdout)
    u = out["units"][0]
    assert u["status"] == "verified" and u["resumed_from"] > 0 and u["written"] == SIZES[3]
    assert Rollout(tmp_path / ".cortex", "chunks").unit("ws-3").verify["actual"] == SIZES[3]


def test_rollout_cli_and_bad_input(cli, tmp_path: Path) -> None:
    p = tmp_path / "e.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    r = cli("qdrant", "rollout", "status")
    assert r.exit_code == 2 and "no rollout planned" in r.stderr
    r = cli("qdrant", "rollout", "plan", "--source", str(p), "--by", "nope")
    assert r.exit_code == 2 and "no record has a payload field 'nope'" in r.stderr
    r = cli("qdrant", "rollout", "plan", "--source", str(p), "--by", "workspace_id", "--json")
    assert r.exit_code == 0 and len(json.loads(r.stdout)["units"]) == 5
    r = cli("qdrant", "rollout", "run", "--unit", "ws-4", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["units"][0]["status"] == "verified"
    r = cli("qdrant", "rollout", "promote", "ws-9")
    assert r.exit_code == 2 and "has no unit 'ws-9'" in r.stderr
    r = cli("qdrant", "rollout", "promote", "ws-4")
    assert r.exit_code == 0 and "live" in r.stdout
    r = cli("qdrant", "rollout", "status", "--json")
    st = json.loads(r.stdout)
    assert st["summary"] == {"live": 1, "pending": 4}
    r = cli("qdrant", "rollout", "revert", "ws-4", "--delete")
    assert r.exit_code == 0 and f"{SIZES[4]} points deleted" in r.stdout
    r = cli("qdrant", "rollout", "plan", "--source", str(p), "--by", "n")
    assert r.exit_code == 4 and "--replace" in r.stderr


def test_piece_state_merges_by_union(tmp_path: Path) -> None:
    a, b = PieceStore(tmp_path / "a"), PieceStore(tmp_path / "b")
    a.write("ws-1", {"status": "verified"})
    b.write("ws-2", {"status": "live"})
    b.write("ws-1", {"status": "live"})  # later than a's ws-1: wins
    a.write("odd/name 1", {"status": "pending"})
    assert sorted(a.merge(tmp_path / "b")) == ["ws-1", "ws-2"]
    got = {n: d["status"] for n, d in a.all().items()}
    assert got == {"ws-1": "live", "ws-2": "live", "odd/name 1": "pending"}
    (tmp_path / "a" / "ws-2.json").write_text("{torn")
    with pytest.raises(CortexError, match="damaged piece state"):
        a.all()
