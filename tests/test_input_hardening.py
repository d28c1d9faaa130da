"""Inputs users really have: big integer ids, a UTF-8 BOM, gzip / zstandard exports, clear .npy messages."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import zstandard
from cortex_proc import Run, state
from helpers import vectors

from cortex.api import export, migrate, verify
from cortex.errors import SourceError
from cortex.ids import map_id
from cortex.sources import detect_kind, open_source
from cortex.targets.edge import EdgeTarget

DIM = 8


def _lines(n: int, ids: list | None = None) -> bytes:
    vecs = vectors(n, DIM, seed=5)
    return b"".join(json.dumps({"id": ids[i] if ids else i, "vector": vecs[i].tolist(), "payload": {"i": i}}).encode()
                    + b"\n" for i in range(n))


def _compress(data: bytes, suffix: str) -> bytes:
    if suffix == ".gz":
        return gzip.compress(data)
    if suffix == ".zst":
        return zstandard.ZstdCompressor().compress(data)
    return data


def _points(qd: Path, collection: str = "c") -> dict:
    tgt = EdgeTarget(qd)
    try:
        return {p.id: p.payload for page in tgt.scroll(collection) for p in page}
    finally:
        tgt.close()


# -- item 2: integer ids beyond 64 bits --------------------------------------------------------------------
def test_integer_ids_beyond_64_bits_stay_distinct_and_exact(tmp_path):
    big = [2**64, 2**64 + 1, 10**30, 2**64 - 1, 5]
    src = tmp_path / "big.jsonl"
    src.write_bytes(_lines(len(big), big))
    s = migrate(str(src), "c", path=str(tmp_path / "qd"), state_dir=str(tmp_path / "st"))
    assert (s.read, s.written, s.duplicates) == (5, 5, 0)
    pts = _points(tmp_path / "qd")
    assert len(pts) == 5
    for sid in big[:3]:  # not a Qdrant id: a uuid5 of the exact decimal text, the text in source_id
        qid, kept = map_id(sid)
        assert not kept and pts[qid]["source_id"] == str(sid)
    assert 2**64 - 1 in pts and 5 in pts and "source_id" not in pts[5]
    rep = verify("c", source=str(src), path=str(tmp_path / "qd"), full=True)
    assert rep.ok and rep.checked == 5, rep.problems

    out = tmp_path / "again.jsonl"  # an export writes them back as exact JSON numbers
    export(str(src), str(out))
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == big


# -- item 3: a UTF-8 byte order mark ------------------------------------------------------------------------
def test_a_utf8_bom_at_the_start_is_ignored(tmp_path):
    src = tmp_path / "bom.jsonl"
    src.write_bytes(b"\xef\xbb\xbf" + _lines(20))
    s = migrate(str(src), "c", path=str(tmp_path / "qd"), state_dir=str(tmp_path / "st"))
    assert (s.read, s.written, s.rejected) == (20, 20, 0)
    assert 0 in _points(tmp_path / "qd")
    bom_json = tmp_path / "one.json"  # a .json file is detected from its first line, BOM or not
    bom_json.write_bytes(b"\xef\xbb\xbf" + _lines(1))
    assert detect_kind(str(bom_json)) == "jsonl"


# -- item 4: compressed exports ------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".gz", ".zst"])
def test_compressed_jsonl_is_read_and_resumes_at_a_cursor(tmp_path, suffix):
    n = 1_000
    src = tmp_path / f"export.jsonl{suffix}"
    src.write_bytes(_compress(_lines(n), suffix))
    assert detect_kind(str(src)) == "jsonl"
    with open_source(str(src)) as s:
        assert (s.info().count, s.info().dim) == (n, DIM)
        batches = list(s.batches(300))
        assert [int(i) for b in batches for i in b.ids] == list(range(n))
        rest = list(s.batches(300, resume=batches[1].cursor))  # resume: decompress up to the cursor, go on
        assert [int(i) for b in rest for i in b.ids] == list(range(600, n))
        assert rest[0].locations[0] == f"{src}:601"


def test_a_killed_migration_of_a_zst_export_resumes_and_verifies(tmp_path):
    n = 3_000
    src = tmp_path / "export.jsonl.zst"
    src.write_bytes(_compress(_lines(n), ".zst"))
    args = ["qdrant", "migrate", "-s", str(src), "-t", "c", "--path", "qd", "--batch-size", "100",
            "--checkpoint-seconds", "0"]
    first = Run(tmp_path, args, pause="batch:5")
    first.wait_for("CORTEX_TEST_PAUSED batch:5")
    first.kill()
    first.wait()
    done = state(tmp_path)["counts"]["read"]
    assert 500 <= done < n
    again = Run(tmp_path, [*args, "--json"])
    assert again.wait() == 0, again.stderr
    assert f"resuming at {done:,} / {n:,}" in again.stderr
    assert json.loads(again.stdout)["read"] == n
    rep = verify("c", source=str(src), path=str(tmp_path / "qd"), full=True)
    assert rep.ok and rep.actual_count == n, rep.problems[:3]


@pytest.mark.parametrize("suffix", [".gz", ".zst"])
def test_export_writes_compressed_output_by_its_suffix(tmp_path, suffix):
    src = tmp_path / "plain.jsonl"
    src.write_bytes(_lines(50))
    out = tmp_path / f"out.jsonl{suffix}"
    s = export(str(src), str(out))
    assert (s.read, s.written) == (50, 50)
    raw = out.read_bytes()
    assert raw[:2] == b"\x1f\x8b" if suffix == ".gz" else raw[:4] == b"\x28\xb5\x2f\xfd"  # the codec's magic
    data = gzip.decompress(raw) if suffix == ".gz" else zstandard.ZstdDecompressor().decompressobj().decompress(raw)
    got, want = [json.loads(x) for x in data.splitlines()], [json.loads(x) for x in _lines(50).splitlines()]
    assert [(r["id"], r["payload"]) for r in got] == [(r["id"], r["payload"]) for r in want]
    assert np.allclose([r["vector"] for r in got], [r["vector"] for r in want])
    with open_source(str(out)) as s2:
        assert [int(i) for b in s2.batches(100) for i in b.ids] == list(range(50))


def test_a_truncated_compressed_file_is_one_clear_line(tmp_path, cli):
    src = tmp_path / "cut.jsonl.gz"
    src.write_bytes(gzip.compress(_lines(500))[:-200])
    res = cli("qdrant", "migrate", "-s", src, "-t", "c", "--path", tmp_path / "qd")
    assert res.exit_code == 2
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith(f"Error: {src}: cannot read the gzip data") and "is the file complete?" in line


# -- item 5: .npy messages -------------------------------------------------------------------------------------
def test_npy_messages_name_the_file_row_and_the_option(tmp_path, cli):
    m = vectors(20, DIM)
    m[7, 3] = np.nan
    np.save(tmp_path / "m.npy", m)
    dl = tmp_path / "dl.jsonl"
    res = cli("qdrant", "migrate", "-s", tmp_path / "m.npy", "-t", "c", "--path", tmp_path / "qd",
              "--dead-letter", dl)
    assert res.exit_code == 5, res.stderr
    (rec,) = [json.loads(x) for x in dl.read_text().splitlines()]
    assert rec["location"] == f"{tmp_path / 'm.npy'}:row 7" and rec["id"] == 7
    assert "np." not in dl.read_text() and "np." not in res.stderr + res.stdout

    res = cli("qdrant", "migrate", "-s", tmp_path / "m.npy", "--ids", tmp_path / "nope.npy", "-t", "d",
              "--path", tmp_path / "qd")
    assert res.exit_code == 2
    assert res.stderr.strip() == f"Error: {tmp_path / 'nope.npy'}: no such file or directory; check the --ids path"

    np.save(tmp_path / "flat.npy", np.arange(10, dtype=np.float32))
    res = cli("qdrant", "migrate", "-s", tmp_path / "flat.npy", "-t", "e", "--path", tmp_path / "qd")
    assert res.exit_code == 2 and "expected a 2-D matrix (points x dims), got shape (10,)" in res.stderr
    with pytest.raises(SourceError, match="expected a 2-D matrix"):
        open_source(str(tmp_path / "flat.npy")).info()
