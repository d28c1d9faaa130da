"""``--where``: the parser, its one-line errors, and for every source kind that pushes it down, the
records it yields equal filtering the same records by hand (plain Python below, not cortex.where)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pg_fixture import PgServer, pg_server, pg_url  # noqa: F401  (session fixtures)

from cortex import api
from cortex.layouts.source import LayoutSource  # open_source wraps every source in its layout
from cortex.sources import SourceOptions, open_source
from cortex.sources.filtered import FilteredSource
from cortex.where import WhereError, matches, parse, to_text

N = 200
DIM = 8
WS = [f"ws-{i}" for i in range(5)]
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
RNG = np.random.default_rng(3)
X = RNG.standard_normal((N, DIM)).astype(np.float32)
ROWS = [{"id": i, "workspace_id": WS[(i * 7) % 5], "n": i, "created_at": T0 + dt.timedelta(hours=5 * i)}
        for i in range(N)]

CASES: list[tuple[str, Callable[[dict], bool]]] = [
    ("workspace_id = 'ws-1'", lambda r: r["workspace_id"] == "ws-1"),
    ("workspace_id IN ('ws-1', 'ws-3') AND n >= 50", lambda r: r["workspace_id"] in ("ws-1", "ws-3") and r["n"] >= 50),
    ("n < 20 OR n > 150", lambda r: r["n"] < 20 or r["n"] > 150),
    ("NOT workspace_id = 'ws-2'", lambda r: r["workspace_id"] != "ws-2"),
    ("created_at >= '2026-01-15'", lambda r: r["created_at"] >= dt.datetime(2026, 1, 15, tzinfo=dt.UTC)),
    ("workspace_id != 'ws-0' AND (n <= 100 OR created_at < '2026-02-01T00:00:00Z')",
     lambda r: r["workspace_id"] != "ws-0" and (r["n"] <= 100 or r["created_at"] < dt.datetime(2026, 2, 1,
                                                                                               tzinfo=dt.UTC))),
    ("workspace_id NOT IN ('ws-4', 'ws-0')", lambda r: r["workspace_id"] not in ("ws-4", "ws-0")),
]


def _iso(d: dt.datetime) -> str:
    return d.isoformat().replace("+00:00", "Z")


# -- the language ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad, pos, what", [
    ("workspace_id = ", 16, "expected a value"),
    ("workspace_id = 'x' AND", 23, "expected a field name"),
    ("n >= 'soon'", 6, "numbers or ISO timestamps"),
    ("(a = 1", 7, "expected ')'"),
    ("a ~ 1", 3, "unexpected character"),
    ("a IN ('x' 'y')", 11, "expected ',' or ')'"),
    ("a = 'open", 5, "unterminated string"),
    ("a = 1 b = 2", 7, "expected AND, OR or the end"),
])
def test_bad_expressions_point_at_the_position(bad: str, pos: int, what: str) -> None:
    with pytest.raises(WhereError) as e:
        parse(bad)
    msg = str(e.value)
    assert "\n" not in msg and what in msg and f"at position {pos} " in msg


def test_semantics_and_canonical_text() -> None:
    pls = [{"a": "x", "n": 1}, {"a": "y", "n": 2.0}, {"n": True}, {"a": None}, {}, {"o": {"k": "v"}}]
    assert matches(parse("a = 'x'"), pls).tolist() == [True, False, False, False, False, False]
    assert matches(parse("a != 'x'"), pls).tolist() == [False, True, False, False, False, False]  # missing: false
    assert matches(parse("NOT a = 'x'"), pls).tolist() == [False, True, True, True, True, True]
    assert matches(parse("n = 2"), pls).tolist() == [False, True, False, False, False, False]  # 2 == 2.0, not true
    assert matches(parse("n = true"), pls).tolist() == [False, False, True, False, False, False]
    assert matches(parse("o.k = 'v'"), pls).tolist() == [False] * 5 + [True]
    e = parse("A = 'it''s'  and (b in (1, 2) or not c >= '2026-01-01')")
    assert to_text(e) == "A = 'it''s' AND (b IN (1, 2) OR NOT (c >= '2026-01-01'))"
    assert parse(to_text(e)) == e


# -- pushdown equals filtering by hand, per source kind ------------------------------------------------
def _parquet(tmp: Path) -> tuple[str, SourceOptions, dict]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = pa.table({"id": [r["id"] for r in ROWS],
                  "vector": pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), DIM),
                  "workspace_id": [r["workspace_id"] for r in ROWS], "n": [r["n"] for r in ROWS],
                  "created_at": pa.array([r["created_at"] for r in ROWS], pa.timestamp("us", tz="UTC"))})
    pq.write_table(t, tmp / "d.parquet", row_group_size=64)
    return str(tmp / "d.parquet"), SourceOptions(id_column="id"), {}


def _lancedb(tmp: Path) -> tuple[str, SourceOptions, dict]:
    import lancedb
    import pyarrow as pa

    db = lancedb.connect(str(tmp / "lance"))
    db.create_table("t", pa.table({"id": [r["id"] for r in ROWS],
                                   "vector": pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), DIM),
                                   "workspace_id": [r["workspace_id"] for r in ROWS], "n": [r["n"] for r in ROWS],
                                   "created_at": pa.array([r["created_at"] for r in ROWS],
                                                          pa.timestamp("us", tz="UTC"))}))
    return str(tmp / "lance"), SourceOptions(table="t"), {}


def _chroma(tmp: Path) -> tuple[str, SourceOptions, dict]:
    import chromadb

    client = chromadb.PersistentClient(path=str(tmp / "chroma"))
    col = client.create_collection("chunks")
    col.add(ids=[str(r["id"]) for r in ROWS], embeddings=X.tolist(),
            metadatas=[{"workspace_id": r["workspace_id"], "n": r["n"], "created_at": _iso(r["created_at"])}
                       for r in ROWS])
    del col, client
    # created_at is text in Chroma (no timestamps there): time ranges are filtered while streaming
    return str(tmp / "chroma"), SourceOptions(collection="chunks"), {"stream": ("created_at",)}


def _qdrant(tmp: Path) -> tuple[str, SourceOptions, dict]:
    from cortex.targets.edge import EdgeTarget

    with EdgeTarget(tmp / "qs") as t:
        t.create_collection("c", DIM, "cosine", defer_indexing=False)
        t.upsert("c", [r["id"] for r in ROWS], X, [{"workspace_id": r["workspace_id"], "n": r["n"],
                                                   "created_at": _iso(r["created_at"])} for r in ROWS])
    return str(tmp / "qs" / "c"), SourceOptions(), {}


def _pgvector(tmp: Path, server: PgServer) -> tuple[str, SourceOptions, dict]:
    import psycopg

    server.sql("DROP TABLE IF EXISTS wh")
    server.sql("CREATE TABLE wh (id bigint PRIMARY KEY, workspace_id text, n int, created_at timestamptz, "
               "embedding vector(8))")
    with psycopg.connect(server.url, autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO wh VALUES (%s, %s, %s, %s, %s::vector)", [
            (r["id"], r["workspace_id"], r["n"], r["created_at"], "[" + ",".join(map(repr, X[i].tolist())) + "]")
            for i, r in enumerate(ROWS)])
    return server.url, SourceOptions(table="wh"), {}


KINDS = ["parquet", "lancedb", "chroma", "qdrant", "pgvector"]


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str, SourceOptions, dict]:
    if request.param == "pgvector":
        return ("pgvector", *_pgvector(tmp_path, request.getfixturevalue("pg_server")))
    return (request.param, *globals()[f"_{request.param}"](tmp_path))


def test_pushdown_equals_filtering_by_hand(store) -> None:
    kind, path, opts, notes = store
    for text, keep in CASES:
        want = {r["id"] for r in ROWS if keep(r)}
        got: set = set()
        read = skipped = 0
        with open_source(path, kind, SourceOptions(**{**opts.__dict__, "where": text})) as src:
            streamed = isinstance(src.inner if isinstance(src, LayoutSource) else src, FilteredSource)
            for b in src.batches(37):
                got |= {int(i) for i in b.ids}
                read += b.read
                skipped += b.skipped
        assert got == want, (kind, text)
        assert read == len(want) + skipped, (kind, text)
        fields = parse(text)
        must_stream = any(f in to_text(fields) for f in notes.get("stream", ())) or (
            kind == "chroma" and ("NOT" in text or "!=" in text))
        assert streamed == must_stream, (kind, text, "pushed down" if not streamed else "streamed")


def test_migrate_and_verify_a_subset(tmp_path: Path) -> None:
    path, opts, _ = _parquet(tmp_path)
    where = "workspace_id IN ('ws-1', 'ws-3') AND n >= 50"
    o = SourceOptions(**{**opts.__dict__, "where": where})
    s = api.migrate(path, "sub", options=o, path=str(tmp_path / "qs"), state_dir=str(tmp_path / ".cortex"))
    want = sum(1 for r in ROWS if r["workspace_id"] in ("ws-1", "ws-3") and r["n"] >= 50)
    assert (s.written, s.read, s.skipped) == (want, N, N - want) and s.counts_add_up
    # a subset is its own migration: another --where into the same collection is not "already migrated"
    o2 = SourceOptions(**{**opts.__dict__, "where": "workspace_id = 'ws-0'"})
    s2 = api.migrate(path, "sub", options=o2, path=str(tmp_path / "qs"), state_dir=str(tmp_path / ".cortex"))
    assert s2.written == sum(1 for r in ROWS if r["workspace_id"] == "ws-0")
    again = api.migrate(path, "sub", options=SourceOptions(**{**opts.__dict__, "where": "workspace_id IN "
                                                                "('ws-1','ws-3')  and n >= 50"}),
                        path=str(tmp_path / "qs"), state_dir=str(tmp_path / ".cortex"))
    assert again.written == want and again.seconds == 0.0  # the same subset (same canonical text): already done
    rep = api.verify("sub", source=path, options=o, path=str(tmp_path / "qs"), full=True)
    assert rep.ok and rep.actual_count == want
    # --restart of one subset deletes only its own points (the first subset created the collection)
    s3 = api.migrate(path, "sub", options=o, path=str(tmp_path / "qs"), state_dir=str(tmp_path / ".cortex"),
                     restart=True)
    assert s3.written == want and s3.resumed_from == 0
    rep = api.verify("sub", source=path, options=o2, path=str(tmp_path / "qs"), full=True)
    assert rep.ok and rep.actual_count == s2.written
    recs = api.migrations(str(tmp_path / ".cortex"))
    assert sorted(r["where"] for r in recs) == ["workspace_id = 'ws-0'", to_text(parse(where))]


def test_cli_where_flag(cli, tmp_path: Path) -> None:
    p = tmp_path / "e.jsonl"
    p.write_text("".join(json.dumps({"id": r["id"], "vector": X[r["id"]].tolist(),
                                     "payload": {"workspace_id": r["workspace_id"], "n": r["n"]}}) + "\n"
                         for r in ROWS))
    r = cli("qdrant", "migrate", "--source", str(p), "--target", "c", "--where", "n < 10", "--json")
    assert r.exit_code == 0, r.stderr
    d = json.loads(r.stdout)
    assert (d["written"], d["skipped"], d["counts_add_up"]) == (10, N - 10, True)
    r = cli("qdrant", "verify", "--collection", "c", "--source", str(p), "--where", "n < 10", "--full")
    assert r.exit_code == 0, r.stdout
    r = cli("qdrant", "export", "--source", str(p), "--output", str(tmp_path / "o.jsonl"), "--where", "n = 3")
    assert r.exit_code == 0 and len((tmp_path / "o.jsonl").read_text().splitlines()) == 1
    r = cli("qdrant", "migrate", "--source", str(p), "--target", "c", "--where", "n <")
    assert r.exit_code == 2 and "at position 4" in r.stderr and "Traceback" not in r.stderr


def test_compare_a_subset(cli, tmp_path: Path) -> None:
    p = tmp_path / "e.jsonl"
    p.write_text("".join(json.dumps({"id": r["id"], "vector": X[r["id"]].tolist(),
                                     "payload": {"workspace_id": r["workspace_id"], "n": r["n"]}}) + "\n"
                         for r in ROWS))
    assert cli("qdrant", "migrate", "--source", str(p), "--target", "c").exit_code == 0
    r = cli("qdrant", "compare", "--source", str(p), "--collection", "c", "--where", "workspace_id = 'ws-2'",
            "--num-queries", "20", "--k", "5", "--json")
    assert r.exit_code == 0, r.stderr
    d = json.loads(r.stdout)
    # both sides search only ws-2 (Qdrant with the same filter), so recall against the subset's truth is exact
    assert d["qdrant"]["recall"] == 1.0 and d["old"]["recall"] == 1.0
    assert d["matching_points"] == sum(1 for r in ROWS if r["workspace_id"] == "ws-2")


def test_qdrant_filters_mean_the_same_on_both_targets(tmp_path: Path) -> None:
    """to_qdrant on Qdrant Edge and on qdrant-client's local mode counts what matches() counts."""
    from cortex.targets.edge import EdgeTarget
    from cortex.targets.server import ServerTarget

    pls = [{"workspace_id": WS[i % 5], "n": i, "flag": i % 3 == 0, "t": f"2026-01-{i % 28 + 1:02d}T00:00:00Z"}
           for i in range(60)]
    for p in pls[::7]:
        del p["workspace_id"]
    texts = [t for t, _ in CASES[:4]] + ["flag = true", "NOT flag = false", "t < '2026-01-05'", "n = 2.0",
                                         "workspace_id != 'ws-1' OR flag IN (true)"]
    with EdgeTarget(tmp_path / "qs") as edge, ServerTarget(f"local:{tmp_path / 'local'}") as local:
        for t in (edge, local):
            t.create_collection("c", DIM, "cosine", defer_indexing=False)
            t.upsert("c", list(range(60)), RNG.standard_normal((60, DIM)).astype(np.float32), pls)
        for text in texts:
            e = parse(text)
            want = int(matches(e, pls).sum())
            assert edge.count("c", filter=e) == want == local.count("c", filter=e), text
