"""``backup`` (tar + sha256 manifest, or lossless Parquet) and ``export --format parquet``."""

from __future__ import annotations

import hashlib
import json
import tarfile
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cortex import api
from cortex.errors import CheckFailed
from cortex.snapshot.parquet_format import iter_rows
from tests.helpers import vectors, write_jsonl


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Migration state (.cortex) and ./qdrant_storage stay in the test's directory."""
    monkeypatch.chdir(tmp_path)


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_backup_of_files_verifies_and_detects_a_flipped_byte(tmp_path, cli):
    vecs = vectors(50, 8)
    np.save(tmp_path / "m.npy", vecs)
    (tmp_path / "ids.txt").write_text("\n".join(f"k{i}" for i in range(50)) + "\n")
    (tmp_path / "meta.jsonl").write_text("".join(json.dumps({"i": i}) + "\n" for i in range(50)))
    r = cli("qdrant", "backup", "--source", tmp_path / "m.npy", "--ids", tmp_path / "ids.txt",
            "--payloads", tmp_path / "meta.jsonl", "--output", tmp_path / "bk", "--verify", "--json")
    assert r.exit_code == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["format"] == "tar" and s["verified"] and s["files"] == 3
    arc = Path(s["archive"])
    # the sidecar is sha256sum's format; the manifest has the sha256 of every file as it is on disk
    digest, name = (arc.parent / (arc.name + ".sha256")).read_text().split()
    assert name == arc.name and digest == hashlib.sha256(arc.read_bytes()).hexdigest()
    with tarfile.open(arc) as tar:
        manifest = json.load(tar.extractfile("MANIFEST.json"))
        by_path = {e["path"]: e for e in manifest["files"]}
        assert by_path["m.npy"]["sha256"] == hashlib.sha256((tmp_path / "m.npy").read_bytes()).hexdigest()
        assert {"_ids/ids.txt", "_payloads/meta.jsonl"} <= set(by_path)
        member = tar.getmember("m.npy")
    assert api.backup(check=str(arc)).verified

    _flip(arc, member.offset_data + 200)  # one bit inside m.npy's data
    r = cli("qdrant", "backup", "--check", arc)
    assert r.exit_code == 1, r.stderr
    line = r.stderr.strip()
    assert len(line.splitlines()) == 1 and "backup damaged" in line and "Traceback" not in line
    with pytest.raises(CheckFailed) as e:
        api.backup(check=str(arc))
    assert "m.npy" in str(e.value) or "sha256 of the file" in str(e.value)
    # ... and even with the sidecar rewritten to match, the member's own checksum still catches it
    (arc.parent / (arc.name + ".sha256")).write_text(f"{hashlib.sha256(arc.read_bytes()).hexdigest()}  {arc.name}\n")
    with pytest.raises(CheckFailed, match="m.npy: sha256"):
        api.backup(check=str(arc))

    r = cli("qdrant", "backup", "--check", tmp_path / "missing.tar")
    assert r.exit_code == 2 and "no such backup" in r.stderr
    assert "Example:" in cli("qdrant", "backup", "--help").stdout


def _awkward_payload(i: int) -> dict:
    p: dict = {"n": i, "name": f"doc-{i} é✓", "ratio": i / 3, "flag": i % 2 == 0,
               "nested": {"a": [i, {"b": None}], "s": "x"}, "mixed": i if i % 2 else i + 0.5}
    if i % 3 == 0:
        p["sometimes"] = f"s{i}"  # absent from two rows in three
    if i % 5 == 0:
        p["nullable"] = None  # an explicit null must stay an explicit null
    elif i % 5 == 1:
        p["nullable"] = i
    if i == 7:
        p["big"] = 2**70  # beyond int64: kept as JSON
    return p


def test_export_parquet_is_lossless_readable_by_pyarrow_and_migrates_back(tmp_path, cli):
    dim = 768
    vecs = vectors(120, dim, seed=5)
    ids = [i if i % 3 == 0 else (str(uuid.UUID(int=i + 1)) if i % 3 == 1 else f"doc-{i}") for i in range(120)]
    src = tmp_path / "src.jsonl"
    with open(src, "w") as fh:
        for i in range(120):
            fh.write(json.dumps({"id": ids[i], "vector": vecs[i].tolist(), "payload": _awkward_payload(i)}) + "\n")
    out = tmp_path / "export.parquet"
    r = cli("qdrant", "export", "--source", src, "--output", out, "--format", "parquet")
    assert r.exit_code == 0, r.stderr
    assert "exported 120 of 120" in r.stdout

    t = pq.read_table(out)  # plain pyarrow
    assert t.num_rows == 120
    assert t.schema.field("vector").type == pa.list_(pa.float32(), dim)
    assert t.schema.field("n").type == pa.int64() and t.schema.field("flag").type == pa.bool_()
    assert np.array_equal(np.stack(t.column("vector").to_numpy(zero_copy_only=False)), vecs)
    # the ~8 KB of JSON text per 768-dim vector becomes ~3 KB of float32
    assert out.stat().st_size < 0.5 * src.stat().st_size

    rows = list(iter_rows(out))
    assert [r["payload"] for r in rows] == [_awkward_payload(i) for i in range(120)]
    assert [r["id"] for r in rows] == [str(x) for x in ids]  # mixed id kinds: one string column

    store = tmp_path / "qdrant_storage"
    api.migrate(str(out), "back", path=str(store))
    rep = api.verify("back", source=str(src), full=True, path=str(store))
    assert rep.ok, rep.problems
    rep = api.verify("back", source=str(out), full=True, path=str(store))
    assert rep.ok, rep.problems


def test_backup_of_a_store_is_parquet_and_restores_exactly(tmp_path, cli):
    src = write_jsonl(tmp_path / "src.jsonl", vectors(200, 32, seed=2))
    store = tmp_path / "qdrant_storage"
    api.migrate(str(src), "docs", path=str(store))  # a Qdrant collection is a store: Parquet, not files
    r = cli("qdrant", "backup", "--source", store / "docs", "--output", tmp_path / "bk", "--verify", "--json")
    assert r.exit_code == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["format"] == "parquet" and s["records"] == 200 and s["verified"]
    arc = Path(s["archive"])
    meta = json.loads(pq.ParquetFile(arc).schema_arrow.metadata[b"cortex"])
    assert meta["distance"] == "cosine" and meta["dim"] == 32

    api.migrate(str(arc), "restored", path=str(store))
    rep = api.verify("restored", source=str(store / "docs"), full=True, path=str(store))
    assert rep.ok, rep.problems
    rep = api.verify("restored", source=str(src), full=True, path=str(store))
    assert rep.ok, rep.problems

    _flip(arc, arc.stat().st_size // 2)
    r = cli("qdrant", "backup", "--check", arc)
    assert r.exit_code == 1 and "backup damaged" in r.stderr


def test_backup_of_a_chroma_database_is_lossless_parquet(tmp_path):
    """A real Chroma database (a store, not files): Parquet, and migrating it equals migrating Chroma itself."""
    import chromadb
    from chromadb.config import Settings

    from cortex.sources import SourceOptions

    db = tmp_path / "chroma"
    c = chromadb.PersistentClient(path=str(db), settings=Settings(anonymized_telemetry=False))
    x = vectors(60, 12, seed=4)
    c.create_collection("docs", metadata={"hnsw:space": "cosine"}).add(
        ids=[f"d{i}" if i % 2 else str(i) for i in range(60)], embeddings=x,
        metadatas=[{"n": i, "tag": f"t{i % 3}"} if i % 4 else None for i in range(60)],
        documents=[f"text {i}" if i % 5 else None for i in range(60)])
    c.close()
    opts = SourceOptions(collection="docs")
    s = api.backup(str(db), str(tmp_path / "bk"), options=opts, verify=True)
    assert s.format == "parquet" and s.kind == "chroma" and s.records == 60 and s.verified
    assert pq.read_table(s.archive).num_rows == 60
    store = tmp_path / "qdrant_storage"
    api.migrate(s.archive, "from_backup", path=str(store))
    rep = api.verify("from_backup", source=str(db), options=opts, full=True, path=str(store))
    assert rep.ok, rep.problems
