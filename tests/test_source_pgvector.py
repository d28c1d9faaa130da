"""pgvector source against a real PostgreSQL 18 + pgvector 0.8 (tests/pg_fixture.py starts it)."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import numpy as np
import pytest
from pg_fixture import PgServer, pg_server, pg_url  # noqa: F401  (session fixtures)

from cortex.api import connect, migrate, verify
from cortex.errors import SourceError
from cortex.ids import map_id
from cortex.sources import SourceOptions, open_source
from cortex.sources.pgvector import PgvectorSource, redact

N = 500
DIM = 64
RNG = np.random.default_rng(11)
X = RNG.standard_normal((N, DIM)).astype(np.float32)
H = RNG.standard_normal((40, 8)).astype(np.float16)


def _vec(v: np.ndarray) -> str:
    return "[" + ",".join(repr(float(x)) for x in v) + "]"


@pytest.fixture(scope="module")
def db(pg_server: PgServer) -> PgServer:  # noqa: F811
    """Tables: items (bigint pk, hnsw cosine), halfs (halfvec, ivfflat l2), text/uuid/composite keys, ..."""
    s = pg_server
    s.sql("DROP SCHEMA IF EXISTS shop CASCADE")
    s.sql("CREATE SCHEMA shop")
    s.sql("""CREATE TABLE shop.items (id bigint PRIMARY KEY, title text, meta jsonb, created timestamptz,
             price numeric(8,2), tags text[], uid uuid, flag boolean, embedding vector(64))""")
    rows = []
    for i in range(N):
        meta = {"n": i, "nested": {"even": i % 2 == 0}, "list": [1, "a"]}
        created = dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=i)
        rows.append((i * 10, f"item {i}", json.dumps(meta), created, i + 0.5 if i % 7 else i, ["x", f"t{i % 3}"],
                     str(uuid.UUID(int=i)), i % 2 == 0, _vec(X[i])))
    import psycopg

    with psycopg.connect(s.url, autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO shop.items VALUES (%s, %s, %s::jsonb, %s, %s, %s, %s, %s, %s::vector)", rows)
        cur.execute("CREATE INDEX items_hnsw ON shop.items USING hnsw (embedding vector_cosine_ops)")
        cur.execute("CREATE TABLE halfs (id int PRIMARY KEY, h halfvec(8), note text)")
        cur.executemany("INSERT INTO halfs VALUES (%s, %s::halfvec, %s)",
                        [(i, _vec(H[i].astype(np.float32)), f"n{i}") for i in range(len(H))])
        cur.execute("CREATE INDEX ON halfs USING ivfflat (h halfvec_l2_ops) WITH (lists = 2)")
        cur.execute("CREATE TABLE docs (key text PRIMARY KEY, body text, emb vector(4), sp sparsevec(10))")
        cur.executemany("INSERT INTO docs VALUES (%s, %s, %s::vector, %s::sparsevec)", [
            ("b", "bee", "[1,0,0,0]", "{1:1.5,3:2}/10"),
            ("a", "ay", "[0,1,0,0]", "{10:0.25}/10"),
            ("c", "sea", None, None),  # NULL vector: rejected
            ("d", "dee", "[0,0,1,0]", None),
        ])
        cur.execute("CREATE TABLE uids (id uuid PRIMARY KEY, v vector(3))")
        cur.executemany("INSERT INTO uids VALUES (%s, %s::vector)",
                        [(str(uuid.UUID(int=i + 1)), f"[{i},1,2]") for i in range(5)])
        cur.execute("CREATE TABLE pairs (tenant int, doc text, v vector(2), PRIMARY KEY (tenant, doc))")
        cur.executemany("INSERT INTO pairs VALUES (%s, %s, %s::vector)",
                        [(t, d, f"[{t},{len(d)}]") for t in (2, 1) for d in ("x", "yy", "zzz")])
        cur.execute("CREATE INDEX ON pairs USING hnsw (v vector_ip_ops)")
        cur.execute("CREATE TABLE untyped (id int PRIMARY KEY, v vector)")
        cur.execute("INSERT INTO untyped VALUES (1, '[1,2,3]'), (2, '[1,2]'), (3, '[4,5,6]')")
        cur.execute("CREATE TABLE twovec (id int PRIMARY KEY, a vector(2), b vector(3))")
        cur.execute("INSERT INTO twovec VALUES (1, '[1,2]', '[1,2,3]')")
        cur.execute("CREATE TABLE novec (id int PRIMARY KEY, name text)")
        cur.execute("INSERT INTO novec VALUES (1, 'x')")
        cur.execute("CREATE TABLE empty (id int PRIMARY KEY, v vector(3))")
        cur.execute("CREATE TABLE nopk (name text, v vector(2))")
        cur.execute("INSERT INTO nopk VALUES ('x', '[1,2]')")
        cur.execute("CREATE TABLE l1 (id int PRIMARY KEY, v vector(2))")
        cur.execute("INSERT INTO l1 VALUES (1, '[0,0]'), (2, '[1,1]'), (3, '[3,0]')")
        cur.execute("CREATE INDEX ON l1 USING hnsw (v vector_l1_ops)")
    return s


def _src(url: str, **kw) -> PgvectorSource:
    return PgvectorSource(url, SourceOptions(**kw))


def _all(src: PgvectorSource, batch_size: int = 100, resume=None):
    ids, vecs, pays, rej, curs = [], [], [], [], []
    for b in src.batches(batch_size, resume):
        ids += [int(i) if isinstance(i, np.integer) else i for i in b.ids]
        vecs.append(b.vectors)
        pays += b.payloads or []
        rej += b.rejected
        curs.append(b.cursor)
    return ids, np.concatenate(vecs), pays, rej, curs


def test_detect_and_open(db):
    assert PgvectorSource.detect(db.url) and PgvectorSource.detect("postgres://u@h/db")
    assert not PgvectorSource.detect("/tmp/x.parquet")
    with open_source(db.url, None, SourceOptions(table="shop.items")) as src:
        assert src.kind == "pgvector"


def test_table_info_distance_from_hnsw_index(db):
    with _src(db.url, table="shop.items") as src:
        info = src.info()
        assert (info.dim, info.distance, info.count) == (DIM, "cosine", N)
        assert info.name == "shop.items" and info.details["id_columns"] == ["id"]
        assert info.details["indexes"][0]["opclass"] == "vector_cosine_ops"
        assert not info.warnings


def test_table_batches_payload_types(db):
    with _src(db.url, table="shop.items") as src:
        ids, vecs, pays, rej, curs = _all(src, 64)
    assert ids == [i * 10 for i in range(N)] and not rej
    np.testing.assert_array_equal(vecs, X)
    assert vecs.dtype == np.float32
    assert pays[3] == {"title": "item 3", "meta": {"n": 3, "nested": {"even": False}, "list": [1, "a"]},
                       "created": "2024-01-01T00:03:00+00:00", "price": 3.5, "tags": ["x", "t0"],
                       "uid": str(uuid.UUID(int=3)), "flag": False}
    assert pays[7]["price"] == 7.0 and isinstance(pays[7]["price"], float)  # numeric -> float
    json.dumps(pays)
    assert curs[0] == {"last": [630]} and curs[-1] == {"last": [(N - 1) * 10]}


def test_int_ids_are_numpy(db):
    with _src(db.url, table="shop.items") as src:
        b = next(src.batches(10))
    assert isinstance(b.ids, np.ndarray) and b.ids.dtype == np.int64


def test_resume_cursor(db):
    with _src(db.url, table="shop.items") as src:
        batches = list(src.batches(70))
        for b in batches[::2]:
            last = b.cursor["last"][0]
            rest, vecs, _, _, _ = _all(src, 70, resume=b.cursor)
            expect = [i * 10 for i in range(N) if i * 10 > last]
            assert rest == expect
            np.testing.assert_array_equal(vecs, X[[i // 10 for i in expect]])
        assert list(src.batches(70, resume=batches[-1].cursor)) == []


def test_halfvec_ivfflat_l2(db):
    with _src(db.url, table="halfs") as src:
        info = src.info()
        assert (info.dim, info.distance) == (8, "euclid")
        ids, vecs, pays, _, _ = _all(src, 16)
    assert ids == list(range(len(H)))
    np.testing.assert_array_equal(vecs, H.astype(np.float32))
    assert pays[2] == {"note": "n2"}


def test_text_pk_sparse_and_null_vector(db):
    with _src(db.url, table="docs") as src:
        info = src.info()
        assert info.details["sparse_columns"] == ["sp"] and info.distance is None
        assert any("--distance" in w for w in info.warnings)
        bs = list(src.batches(10))
    b = bs[0]
    assert b.ids == ["a", "b", "d"]
    np.testing.assert_array_equal(b.vectors, [[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0]])
    assert b.sparse == {"sp": [([9], [0.25]), ([0, 2], [1.5, 2.0]), None]}  # NULL: no sparse vector
    assert info.details["sparse_vectors"] == {"sp": {"modifier": None}}
    assert b.payloads == [{"body": "ay"}, {"body": "bee"}, {"body": "dee"}]
    assert len(b.rejected) == 1 and b.rejected[0].id == "c" and "NULL" in b.rejected[0].reason
    assert b.rejected[0].location == "public.docs id=c"
    assert b.cursor == {"last": ["d"]}
    with _src(db.url, table="docs") as src:
        rest = list(src.batches(10, resume={"last": ["b"]}))
    assert rest[0].ids == ["d"] and [r.id for r in rest[0].rejected] == ["c"]


def test_uuid_pk(db):
    with _src(db.url, table="uids") as src:
        ids, vecs, _, _, _ = _all(src)
        assert ids == [str(uuid.UUID(int=i + 1)) for i in range(5)]
        rest, _, _, _, _ = _all(src, resume={"last": [ids[1]]})
        assert rest == ids[2:]


def test_composite_key_and_ip_index(db):
    with _src(db.url, table="pairs") as src:
        info = src.info()
        assert info.distance == "dot" and info.details["id_columns"] == ["tenant", "doc"]
        assert any("composite id" in w for w in info.warnings)
        ids, vecs, _, _, curs = _all(src, 4)
        assert ids == ["1:x", "1:yy", "1:zzz", "2:x", "2:yy", "2:zzz"]
        assert curs[0] == {"last": [2, "x"]}
        rest, _, _, _, _ = _all(src, 4, resume=curs[0])
        assert rest == ["2:yy", "2:zzz"]
        got, scores = src.search(np.array([[1.0, 1.0]], np.float32), 2)
        assert got == [["2:zzz", "2:yy"]]
        np.testing.assert_allclose(scores[0], [5.0, 4.0])  # inner products, as Qdrant's dot scores


def test_untyped_vector_column_rejects_other_lengths(db):
    with _src(db.url, table="untyped") as src:
        info = src.info()
        assert info.dim == 3 and any("no declared dimension" in w for w in info.warnings)
        ids, vecs, _, rej, _ = _all(src)
    assert ids == [1, 3] and vecs.tolist() == [[1, 2, 3], [4, 5, 6]]
    assert [(r.id, r.reason) for r in rej] == [(2, "vector has 2 dimensions, expected 3")]


def test_query_option(db):
    q = "SELECT id, embedding, title, created FROM shop.items WHERE id < 1000;"
    with _src(db.url, query=q) as src:
        info = src.info()
        assert (info.dim, info.count, info.distance) == (DIM, 100, None)
        ids, vecs, pays, _, curs = _all(src, 30)
        assert ids == [i * 10 for i in range(100)]
        np.testing.assert_array_equal(vecs, X[:100])
        assert pays[1] == {"title": "item 1", "created": "2024-01-01T00:01:00+00:00"}
        rest, _, _, _, _ = _all(src, 30, resume=curs[1])
        assert rest == ids[60:]
        got, _ = src.search(X[5:6], 3)
        assert got[0][0] == 50
    q2 = "SELECT title AS name, embedding AS vec FROM shop.items"
    with pytest.raises(SourceError, match="no 'id' column; pass --id-column"):
        _src(db.url, query=q2).info()
    with _src(db.url, query=q2, id_column="name") as src:
        assert src.info().count == N
    with pytest.raises(SourceError, match="the query failed: .*does not exist"):
        _src(db.url, query="SELECT * FROM nowhere").info()


def test_vector_and_id_column_options(db):
    several = r"several vector columns \(a \(vector\(2\)\), b \(vector\(3\)\)\).*--vector-column"
    with pytest.raises(SourceError, match=several):
        _src(db.url, table="twovec").info()
    with _src(db.url, table="twovec", vector_column="b") as src:
        info = src.info()
        assert info.dim == 3 and any("not migrated: a" in w for w in info.warnings)
        assert next(src.batches(5)).payloads == [{}]
    with pytest.raises(SourceError, match="'id' is integer, not a pgvector vector"):
        _src(db.url, table="twovec", vector_column="id").info()
    with pytest.raises(SourceError, match="no primary key and no 'id' column; pass --id-column"):
        _src(db.url, table="nopk").info()
    with _src(db.url, table="nopk", id_column="name") as src:
        assert next(src.batches(5)).ids == ["x"]


def test_search_uses_index_metric(db):
    with _src(db.url, table="shop.items") as src:
        ids, scores = src.search(X[[3, 77]], 5)
    assert [i[0] for i in ids] == [30, 770]
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)  # cosine similarity of a vector with itself
    assert (np.diff(scores, axis=1) <= 1e-6).all()
    with _src(db.url, table="shop.items") as src:
        ids, _ = src.search(X[:1], 60)  # above hnsw.ef_search's default of 40
    assert len(ids[0]) == 60
    with _src(db.url, table="l1") as src:
        assert src.info().distance == "manhattan"
        ids, scores = src.search(np.array([[0.0, 0.0]], np.float32), 3)
    assert ids == [[1, 2, 3]] and scores[0].tolist() == [0.0, 2.0, 3.0]


def test_fingerprint_changes_with_content(db):
    with _src(db.url, table="l1") as src:
        fp = src.fingerprint()
        assert fp["rows"] == 3 and fp["max_id"] == ["3"] and fp["relation"] == "public.l1"
        assert fp["database"] == "postgres"
        assert src.fingerprint() == fp
    db.sql("UPDATE l1 SET v = '[9,9]' WHERE id = 2")
    try:
        with _src(db.url, table="l1") as src:
            assert src.fingerprint()["sample_sha256"] != fp["sample_sha256"]
    finally:
        db.sql("UPDATE l1 SET v = '[1,1]' WHERE id = 2")


def test_connection_is_read_only(db):
    src = _src(db.url, table="l1")
    import psycopg

    conn = src.connect()
    try:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("DELETE FROM l1")
    finally:
        conn.close()


# -- bad inputs -----------------------------------------------------------------------------------


def test_unreachable_and_bad_credentials(db):
    bad_pw = db.url.replace("cortex-test-pw", "wrong")
    with pytest.raises(SourceError) as e:
        _src(bad_pw, table="l1").info()
    msg = str(e.value)
    assert "cannot connect to PostgreSQL" in msg and "password authentication failed" in msg
    assert "wrong" not in msg and "***" in msg and "\n" not in msg
    port = db.port
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    with pytest.raises(SourceError, match=r"cannot connect to PostgreSQL: .*refused") as e:
        _src(db.url.replace(f":{port}/", f":{free}/"), table="l1").info()
    assert "\n" not in str(e.value)
    with pytest.raises(SourceError, match="cannot connect.*does not exist"):
        _src(db.url.rsplit("/", 1)[0] + "/nodb", table="l1").info()
    assert redact("postgresql://u:secret@h:1/d") == "postgresql://u:***@h:1/d"


def test_missing_table_no_vector_empty(db):
    with pytest.raises(SourceError, match="no table 'nope'"):
        _src(db.url, table="nope").info()
    with pytest.raises(SourceError, match=r"no vector or halfvec column; columns are: id \(integer\), name \(text\)"):
        _src(db.url, table="novec").info()
    with pytest.raises(SourceError, match="public.empty: no rows; nothing to migrate"):
        _src(db.url, table="empty").info()
    with pytest.raises(SourceError, match="--table"):
        _src(db.url).info()
    with pytest.raises(SourceError, match="holds 64-dimensional vectors, not 32; fix --dimensions"):
        _src(db.url, table="shop.items", dimensions=32).info()


def test_cli_bad_password_exit_2(db, cli, tmp_path):
    res = cli("qdrant", "migrate", "--source", db.url.replace("cortex-test-pw", "nope"), "--table", "l1",
              "--target", "c", "--path", tmp_path / "qd")
    assert res.exit_code == 2
    assert "cannot connect to PostgreSQL" in res.output and "Traceback" not in res.output


# -- end to end -----------------------------------------------------------------------------------


def test_migrate_and_verify(db, tmp_path, qdrant_path):
    opts = SourceOptions(table="shop.items")
    s = migrate(db.url, "items", path=str(qdrant_path), options=opts, batch_size=128,
                state_dir=str(tmp_path / "state"))
    assert (s.read, s.written, s.rejected) == (N, N, 0)
    assert s.distance == "cosine"
    r = verify("items", source=db.url, path=str(qdrant_path), options=opts, full=True)
    assert r.ok, r.problems
    with connect(path=str(qdrant_path)) as t:
        info = t.collection_info("items")
        assert (info.dim, info.distance, info.points) == (DIM, "cosine", N)
        p = t.retrieve("items", [120], with_vectors=True)[120]
    assert p.payload["title"] == "item 12" and p.payload["meta"]["nested"] == {"even": True}
    x = X[12] / np.linalg.norm(X[12])
    np.testing.assert_allclose(p.vector, x, rtol=1e-5, atol=1e-6)


def test_migrate_text_ids_cli(db, cli, tmp_path):
    qd = tmp_path / "qd"
    res = cli("qdrant", "migrate", "--source", db.url, "--table", "docs", "--target", "docs", "--path", qd,
              "--distance", "euclid")
    assert res.exit_code == 5, res.output  # done, but the NULL-vector row was rejected
    assert "rejected" in res.output
    with connect(path=str(qd)) as t:
        pid = map_id("a")[0]
        p = t.retrieve("docs", [pid], with_vectors=True)[pid]
        assert t.count("docs") == 3
    assert p.payload["body"] == "ay" and p.payload["source_id"] == "a"
    res = cli("qdrant", "verify", "--collection", "docs", "--source", db.url, "--table", "docs", "--path", qd,
              "--distance", "euclid")
    assert res.exit_code in (0, 1), res.output
