"""`sync`: exact deltas per source kind, the content-hash state, and convergence after SIGKILL (real engines)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cortex_proc import Run
from pg_fixture import PgServer, pg_server, pg_url  # noqa: F401  (session fixtures)

from cortex.api import connect, migrate, sync, verify
from cortex.cutover import content_hashes as ch
from cortex.sources import SourceOptions

DIM = 16
N = 120
# the changes every test makes: vectors of 3 records, payloads only of 2, 4 deleted, 5 inserted
VEC_CHANGED, PAYLOAD_CHANGED, DELETED = [3, 10, 50], [7, 60], [0, 20, 40, 80]
INSERTED = list(range(1000, 1005))
EXPECT = {"added": 5, "changed": 5, "deleted": 4, "unchanged": N - 5 - 4}


def records(changed: bool) -> dict[int, tuple[np.ndarray, dict]]:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((N, DIM)).astype(np.float32)
    recs = {i: (x[i], {"title": f"doc {i}", "n": i}) for i in range(N)}
    if changed:
        for i in VEC_CHANGED:
            recs[i] = (recs[i][0] + 0.5, recs[i][1])
        for i in PAYLOAD_CHANGED:
            recs[i] = (recs[i][0], {**recs[i][1], "title": f"edited {i}"})
        for i in DELETED:
            del recs[i]
        for i in INSERTED:
            recs[i] = (rng.standard_normal(DIM).astype(np.float32), {"title": f"new {i}", "n": i})
    return recs


def write_jsonl(path: Path, recs: dict) -> str:
    with open(path, "w") as f:
        for i, (v, p) in recs.items():
            f.write(json.dumps({"id": f"doc-{i}", "vector": v.tolist(), "payload": p}) + "\n")
    return str(path)


def write_npy_dir(root: Path, recs: dict) -> str:
    import shutil

    if root.exists():
        shutil.rmtree(root)
    for i, (v, p) in recs.items():
        d = root / f"ws-{i % 3}"
        d.mkdir(parents=True, exist_ok=True)
        np.save(d / f"chunk_{i:05d}.npy", v)
        (d / f"chunk_{i:05d}.json").write_text(json.dumps(p))
    return str(root)


def write_faiss(path: Path, recs: dict) -> str:
    import faiss

    index = faiss.IndexIDMap(faiss.IndexFlatL2(DIM))
    ids = np.array(list(recs), dtype=np.int64)
    index.add_with_ids(np.stack([v for v, _ in recs.values()]), ids)
    faiss.write_index(index, str(path))
    path.with_suffix(".json").write_text(json.dumps({str(i): p for i, (_, p) in recs.items()}))
    return str(path)


def write_parquet(path: Path, recs: dict) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    x = np.stack([v for v, _ in recs.values()])
    pq.write_table(pa.table({"id": pa.array(list(recs), pa.int64()),
                             "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), DIM),
                             "title": [p["title"] for _, p in recs.values()],
                             "n": [p["n"] for _, p in recs.values()]}), path)
    return str(path)


WRITERS = {"jsonl": (write_jsonl, "src.jsonl"), "npy-dir": (write_npy_dir, "src_dir"),
           "faiss": (write_faiss, "src.index"), "parquet": (write_parquet, "src.parquet")}


@pytest.mark.parametrize("kind", list(WRITERS))
def test_sync_deltas_are_exact(tmp_path: Path, kind: str) -> None:
    write, name = WRITERS[kind]
    src = write(tmp_path / name, records(False))
    opts = SourceOptions(metadata=str((tmp_path / name).with_suffix(".json"))) if kind == "faiss" else None
    kw = dict(path=str(tmp_path / "q"), state_dir=str(tmp_path / ".cortex"))
    migrate(src, "c", options=opts, **kw)
    nothing = sync(src, "c", options=opts, **kw)
    assert (nothing.added, nothing.changed, nothing.deleted, nothing.unchanged) == (0, 0, 0, N)
    per_point = 24 if kind in ("jsonl", "npy-dir") else 16  # their ids become UUIDs: the high halves are kept too
    assert nothing.mode == "state" and nothing.state_points == N
    assert nothing.state_bytes == per_point * N + ch.HEADER_BYTES
    write(tmp_path / name, records(True))
    s = sync(src, "c", options=opts, **kw)
    assert {k: getattr(s, k) for k in EXPECT} == EXPECT, s
    assert s.rejected == 0
    assert verify("c", source=src, options=opts, full=True, **{"path": kw["path"]}).ok
    again = sync(src, "c", options=opts, **kw)  # a sync after a sync uses the newer state
    assert (again.added, again.changed, again.deleted) == (0, 0, 0)


def test_no_delete_keeps_points_and_a_later_sync_deletes_them(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "s.jsonl", records(False))
    kw = dict(path=str(tmp_path / "q"), state_dir=str(tmp_path / ".cortex"))
    migrate(src, "c", **kw)
    write_jsonl(tmp_path / "s.jsonl", records(True))
    s = sync(src, "c", no_delete=True, **kw)
    assert (s.added, s.changed, s.deleted, s.kept_deleted) == (5, 5, 0, 4)
    with connect(path=kw["path"]) as t:
        assert t.count("c") == N + 5
    s = sync(src, "c", **kw)
    assert (s.added, s.changed, s.deleted) == (0, 0, 4)


def test_without_state_the_target_is_hashed_once(tmp_path: Path) -> None:
    """A collection Cortex did not write (or whose state is lost) is synced by a full scan of the target."""
    src = write_jsonl(tmp_path / "s.jsonl", records(False))
    q = str(tmp_path / "q")
    migrate(src, "c", path=q, state_dir=str(tmp_path / "elsewhere"))
    write_jsonl(tmp_path / "s.jsonl", records(True))
    events: list[str] = []
    s = sync(src, "c", path=q, state_dir=str(tmp_path / ".cortex"), on_event=events.append)
    assert s.mode == "target scan" and any("full scan" in e for e in events)
    assert {k: getattr(s, k) for k in EXPECT} == EXPECT
    assert verify("c", source=src, full=True, path=q).ok
    s = sync(src, "c", path=q, state_dir=str(tmp_path / ".cortex"))
    assert s.mode == "state" and s.pending == 0


def test_a_state_of_the_older_format_is_rebuilt_once(tmp_path: Path) -> None:
    """A format-1 state (two files, other hashes) is not compared: that sync hashes the target, once, and says so."""
    from cortex.cutover.sync import read_meta, state_dir_for, write_meta

    src = write_jsonl(tmp_path / "s.jsonl", records(False))
    q, st = str(tmp_path / "q"), str(tmp_path / ".cortex")
    migrate(src, "c", path=q, state_dir=st)
    d = state_dir_for(st, q, "c")
    meta = read_meta(d)
    assert meta is not None and meta.pop("state_format") == ch.FORMAT
    write_meta(d, meta)  # as the first version wrote it
    (d / "state.cx").unlink()
    (d / "state.k").write_bytes(b"\0" * 8 * N)
    (d / "state.v").write_bytes(b"\0" * 16 * N)
    write_jsonl(tmp_path / "s.jsonl", records(True))
    events: list[str] = []
    s = sync(src, "c", path=q, state_dir=st, on_event=events.append)
    assert s.mode == "target scan" and any("older Cortex" in e for e in events)
    assert {k: getattr(s, k) for k in EXPECT} == EXPECT
    assert not (d / "state.k").exists() and not (d / "state.v").exists()
    s = sync(src, "c", path=q, state_dir=st)
    assert s.mode == "state" and s.pending == 0


def test_target_scan_of_a_cosine_collection_tolerates_normalization_ulps(tmp_path: Path) -> None:
    """No state, cosine: Qdrant's float32 normalization and Cortex's differ in the last bit for some values, and
    next to a rounding boundary the rounded hashes differ; those points are unchanged, real changes are not."""
    from cortex.targets.base import normalize_rows

    rng = np.random.default_rng(5)
    x = rng.standard_normal((1500, 64)).astype(np.float32) * rng.uniform(0.1, 100, (1500, 1)).astype(np.float32)
    pl = [{"n": i} for i in range(len(x))]

    def write() -> str:
        with open(tmp_path / "s.jsonl", "w") as f:
            for i in range(len(x)):
                f.write(json.dumps({"id": i, "vector": x[i].tolist(), "payload": pl[i]}) + "\n")
        return str(tmp_path / "s.jsonl")

    src, q = write(), str(tmp_path / "q")
    migrate(src, "c", path=q, state_dir=str(tmp_path / "elsewhere"), distance="cosine")
    stored = {p.id: p.vector for pts in connect(path=q).scroll("c", with_vectors=True) for p in pts}
    got = np.stack([np.asarray(stored[i], np.float32) for i in range(len(x))])
    straddling = (np.round(got, 5) != np.round(normalize_rows(x), 5)).any(axis=1)
    assert straddling.any()  # the case exists in this data: rounding alone would call these changed
    x[[3, 9]] *= np.float32(1.001)  # a real change of direction...
    x[[3, 9], 0] += np.float32(0.01)
    pl[11] = {"n": -1}  # ...and of a payload
    write()
    s = sync(src, "c", path=q, state_dir=str(tmp_path / ".cortex"))
    assert s.mode == "target scan" and (s.added, s.changed, s.deleted) == (0, 3, 0), s
    assert verify("c", source=src, full=True, path=q).ok


def _grouped(changed: bool) -> dict[int, tuple[np.ndarray, dict]]:
    """records() with a "grp" field: "a" for ids divisible by 3, else "b" (each group has every kind of change)."""
    return {i: (v, {**p, "grp": "a" if i % 3 == 0 else "b"}) for i, (v, p) in records(changed).items()}


@pytest.mark.parametrize("with_state", [True, False])
def test_sync_where_touches_only_the_subset(tmp_path: Path, with_state: bool) -> None:
    """`sync --where`: deltas and deletions only among the points matching it (target and source side); a later
    sync without it brings the rest."""
    src = write_jsonl(tmp_path / "s.jsonl", _grouped(False))
    q, st = str(tmp_path / "q"), str(tmp_path / ".cortex")
    migrate(src, "c", path=q, state_dir=st if with_state else str(tmp_path / "elsewhere"))
    new = _grouped(True)
    write_jsonl(tmp_path / "s.jsonl", new)
    in_a = lambda ids: sum(1 for i in ids if i % 3 == 0)  # noqa: E731
    s = sync(src, "c", path=q, state_dir=st, options=SourceOptions(where="grp = 'a'"))
    assert s.mode == ("state" if with_state else "target scan")
    expect_a = {"added": in_a(INSERTED), "changed": in_a(VEC_CHANGED + PAYLOAD_CHANGED), "deleted": in_a(DELETED)}
    assert {k: getattr(s, k) for k in expect_a} == expect_a, s
    assert s.unchanged == in_a(new) - expect_a["added"] - expect_a["changed"]
    tgt = connect(path=q)
    held = {p.id for pts in tgt.scroll("c") for p in pts}
    tgt.close()
    gone_b = [i for i in DELETED if i % 3]
    assert gone_b
    assert len(held) == N + expect_a["added"] - expect_a["deleted"]  # b's deletions not applied
    s = sync(src, "c", path=q, state_dir=st)
    assert s.mode == ("state" if with_state else "target scan")  # a subset-only state is not the whole
    expect_b = {"added": len(INSERTED) - in_a(INSERTED), "deleted": len(gone_b),
                "changed": len(VEC_CHANGED + PAYLOAD_CHANGED) - in_a(VEC_CHANGED + PAYLOAD_CHANGED)}
    assert {k: getattr(s, k) for k in expect_b} == expect_b, s
    assert verify("c", source=src, full=True, path=q).ok
    assert sync(src, "c", path=q, state_dir=st).pending == 0


def test_server_target_local_mode(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "s.jsonl", records(False))
    kw = dict(url=f"local:{tmp_path / 'local'}", state_dir=str(tmp_path / ".cortex"))
    migrate(src, "c", **kw)
    write_jsonl(tmp_path / "s.jsonl", records(True))
    s = sync(src, "c", **kw)
    assert {k: getattr(s, k) for k in EXPECT} == EXPECT
    assert verify("c", source=src, full=True, url=kw["url"]).ok


# -- pgvector: a full scan, then --since-column -------------------------------------------------------
def _pg_load(s: PgServer, recs: dict, table: str) -> None:
    s.sql(f"DROP TABLE IF EXISTS {table}")
    s.sql(f"CREATE TABLE {table} (id bigint PRIMARY KEY, title text, n int, embedding vector({DIM}), "
          "updated_at timestamptz NOT NULL DEFAULT '2026-01-01')")
    values = ", ".join(f"({i}, '{p['title']}', {p['n']}, '[{','.join(map(repr, map(float, v)))}]', "
                       f"timestamptz '2026-01-01' + interval '{i} seconds')" for i, (v, p) in recs.items())
    s.sql(f"INSERT INTO {table} (id, title, n, embedding, updated_at) VALUES {values}")


def _pg_change(s: PgServer, table: str) -> None:
    new = records(True)
    for i in VEC_CHANGED:
        s.sql(f"UPDATE {table} SET embedding = '[{','.join(map(repr, map(float, new[i][0])))}]', "
              "updated_at = '2026-02-01' WHERE id = " + str(i))
    for i in PAYLOAD_CHANGED:
        s.sql(f"UPDATE {table} SET title = 'edited {i}', updated_at = '2026-02-01' WHERE id = {i}")
    s.sql(f"DELETE FROM {table} WHERE id IN ({','.join(map(str, DELETED))})")
    values = ", ".join(f"({i}, '{new[i][1]['title']}', {i}, '[{','.join(map(repr, map(float, new[i][0])))}]', "
                       "'2026-02-01')" for i in INSERTED)
    s.sql(f"INSERT INTO {table} (id, title, n, embedding, updated_at) VALUES {values}")


@pytest.mark.parametrize("since", [None, "updated_at"])
def test_pgvector_deltas(tmp_path: Path, pg_server: PgServer, since: str | None) -> None:  # noqa: F811
    table = f"sync_{since or 'scan'}"
    _pg_load(pg_server, records(False), table)
    opts = SourceOptions(table=table)
    kw = dict(path=str(tmp_path / "q"), state_dir=str(tmp_path / ".cortex"))
    migrate(pg_server.url, "c", options=opts, **kw)
    first = sync(pg_server.url, "c", options=opts, since_column=since, **kw)  # records the high-water mark
    assert first.pending == 0 and first.unchanged == N
    _pg_change(pg_server, table)
    s = sync(pg_server.url, "c", options=opts, since_column=since, **kw)
    assert {k: getattr(s, k) for k in EXPECT} == EXPECT, s
    if since:
        assert s.mode == "since column"
        # only the rows changed since the mark (10), plus the row at the mark itself (>=: a row committed
        # later with the same timestamp is not missed), not the whole table
        assert s.read == 11
    assert verify("c", source=pg_server.url, options=opts, full=True, path=kw["path"]).ok
    again = sync(pg_server.url, "c", options=opts, since_column=since, **kw)
    assert (again.added, again.changed, again.deleted) == (0, 0, 0)


# -- killed mid-sync ----------------------------------------------------------------------------------
@pytest.mark.parametrize("point", ["sync-overwrite:1", "sync-batch:1", "sync-delete:1"])
def test_sigkill_mid_sync_then_rerun_converges(tmp_path: Path, point: str) -> None:
    src = write_jsonl(tmp_path / "s.jsonl", records(False))
    migrate(src, "c", path=str(tmp_path / "qdrant_storage"), state_dir=str(tmp_path / ".cortex"))
    write_jsonl(tmp_path / "s.jsonl", records(True))
    r = Run(tmp_path, ["qdrant", "sync", "--source", "s.jsonl", "--collection", "c", "--batch-size", "20"],
            pause=point)
    r.wait_for(f"CORTEX_TEST_PAUSED {point}")
    r.kill()
    r.wait()
    # meanwhile the source moves on: a changed record reverts, a deleted one comes back
    back = records(True)
    back[VEC_CHANGED[0]] = records(False)[VEC_CHANGED[0]]
    back[DELETED[0]] = records(False)[DELETED[0]]
    write_jsonl(tmp_path / "s.jsonl", back)
    r2 = Run(tmp_path, ["qdrant", "sync", "--source", "s.jsonl", "--collection", "c", "--json"])
    assert r2.wait() == 0, r2.stderr
    assert "interrupted" in r2.stderr
    assert verify("c", source=src, full=True, path=str(tmp_path / "qdrant_storage")).ok
    s = sync(src, "c", path=str(tmp_path / "qdrant_storage"), state_dir=str(tmp_path / ".cortex"))
    assert s.pending == 0


# -- the state itself ---------------------------------------------------------------------------------
def test_state_writer_merges_runs_last_one_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ch, "CHUNK", 7)
    rng = np.random.default_rng(3)
    keys = rng.integers(0, 500, size=2000).astype(np.uint64)  # many repeats
    w = ch.StateWriter(tmp_path / "s", run=97)
    for lo in range(0, len(keys), 50):
        e = np.zeros(len(keys[lo:lo + 50]), ch.ENTRY)
        e["k"] = keys[lo:lo + 50]
        e["h"] = np.arange(lo, lo + len(e), dtype=np.uint64)  # the position: the last one must win
        w.add(e)
    st = w.finish()
    last = {int(k): i for i, k in enumerate(keys)}
    assert st.keys.tolist() == sorted(last)
    found, h = st.lookup(np.array(sorted(last), np.uint64))
    assert found.all() and h.tolist() == [last[k] for k in sorted(last)]


def test_entries_round_trip_ids() -> None:
    ids = [5, "0b7f2b8e-4f0c-4a3e-9d55-3f7a1c2b9e01", 2**63 + 5, "00000000-0000-0000-0000-000000000007"]
    e = ch.entries(ids, np.arange(4, dtype=np.uint64))
    assert ch.point_ids(e) == ids


def test_content_hash_sees_every_change() -> None:
    v = np.random.default_rng(0).standard_normal((4, 7)).astype(np.float32)
    base = ch.content_hashes(v, [{"a": 1, "b": [1, 2]}] * 4)
    assert len(set(base.tolist())) == 4
    assert (ch.content_hashes(v, [{"b": [1, 2], "a": 1}] * 4) == base).all()  # canonical: key order ignored
    w = v.copy()
    w[2, 6] = np.nextafter(w[2, 6], np.float32(9))  # one ulp
    assert (ch.content_hashes(w, [{"a": 1, "b": [1, 2]}] * 4) != base).tolist() == [False, False, True, False]
    assert (ch.content_hashes(v, [{"a": 1, "b": [1, 2]}] * 3 + [{"a": 1.0, "b": [1, 2]}]) != base)[3]


def test_payload_hash_is_a_function_of_the_bytes_alone() -> None:
    """Columnar hashing: a string hashes the same in any batch, short (matrix) or long (reduceat); a bit changes it."""
    items = [b"", b"a", b"a\0", b'{"title":"doc 1"}', b"x" * (ch.SHORT - 1), b"y" * ch.SHORT, b"z" * (ch.SHORT + 1),
             b"w" * 5000]
    solo = [int(ch._bytes_hashes([b])[0]) for b in items]
    assert len(set(solo)) == len(items)
    assert ch._bytes_hashes(items).tolist() == solo
    assert ch._bytes_hashes(items[::-1]).tolist() == solo[::-1]
    for b in items[3:]:
        for j in range(0, len(b), max(1, len(b) // 97)):
            for bit in range(8):
                flipped = bytearray(b)
                flipped[j] ^= 1 << bit
                assert ch._bytes_hashes([bytes(flipped)])[0] != ch._bytes_hashes([b])[0], (len(b), j, bit)


def test_batch_payload_hashes_equal_the_per_row_ones() -> None:
    """One orjson call per batch, split into elements: the same bytes (so hashes) as one call per payload."""
    import orjson

    tricky = [{}, None, {"a": 'q"uo{te}'}, {"b": "back\\slash\\"}, {"c": '\\"', "d": [1, {"e": "]"}]},
              {"x": "ünï\u2028", "y": None}, {"z": "x" * 600, "w": [[], {}]}, {"k": '\\\\"{,', "j": 1.5e-7},
              {"n": {"a": {"b": [1, 2, {"c": "},{"}]}}}, {"l": [{"a": 1}, {"b": 2}]}, {"s": "},{"}, {"q": "\\\\"}]
    plain = [{"title": f"doc {i}", "n": i} for i in range(40)]
    for case in (tricky, plain, plain + tricky, [{}], [{"s": "},{"}], [None]):
        one_by_one = ch._bytes_hashes([orjson.dumps(p or {}, option=ch._JSON) for p in case])
        assert ch.payload_hashes(case).tolist() == one_by_one.tolist(), case


def test_vector_hash_is_per_row_and_sees_every_bit() -> None:
    v = np.random.default_rng(1).standard_normal((5, 9)).astype(np.float32)  # odd dimension: padded
    h = ch.vector_hashes(v)
    assert [int(ch.vector_hashes(v[i:i + 1])[0]) for i in range(5)] == h.tolist()
    bits = v.view(np.uint32)
    for j in range(9):
        for bit in range(32):
            w = bits.copy()
            w[2, j] ^= np.uint32(1 << bit)
            assert (ch.vector_hashes(w.view(np.float32)) != h).tolist() == [False, False, True, False, False]


def test_sync_after_a_restarted_migration_was_killed(tmp_path: Path) -> None:
    """The state of the first load no longer describes a collection a killed `migrate --restart` half rewrote."""
    src = write_jsonl(tmp_path / "s.jsonl", records(False))
    q, st = str(tmp_path / "qdrant_storage"), str(tmp_path / ".cortex")
    migrate(src, "c", path=q, state_dir=st)
    write_jsonl(tmp_path / "s.jsonl", records(True))
    r = Run(tmp_path, ["qdrant", "migrate", "--source", "s.jsonl", "--target", "c", "--restart", "--batch-size", "20"],
            pause="batch:2")
    r.wait_for("CORTEX_TEST_PAUSED batch:2")
    r.kill()
    r.wait()
    s = sync(src, "c", path=q, state_dir=st)
    assert s.mode == "target scan"
    assert verify("c", source=src, full=True, path=q).ok
