"""Bad input: one clear line naming the file/record, a meaningful exit code, no traceback, nothing lost."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from helpers import vectors, write_jsonl

from cortex.targets.edge import EdgeTarget


def _one_line_error(res, *needles):
    assert "Traceback" not in res.output
    err = [line for line in res.stderr.splitlines() if line.startswith("Error:")]
    assert err, res.output
    for n in needles:
        assert n in res.stderr.replace("\n", " "), res.stderr
    return err[0]


def test_missing_path(cli, tmp_path, qdrant_path):
    res = cli("qdrant", "migrate", "-s", tmp_path / "nope.jsonl", "-t", "c", "--path", qdrant_path)
    assert res.exit_code == 2
    _one_line_error(res, "nope.jsonl", "no such file")


def test_unknown_format(cli, tmp_path, qdrant_path):
    (tmp_path / "notes.txt").write_text("hello")
    res = cli("qdrant", "migrate", "-s", tmp_path / "notes.txt", "-t", "c", "--path", qdrant_path)
    assert res.exit_code == 2
    _one_line_error(res, "notes.txt", "--source-type")
    res = cli("qdrant", "migrate", "-s", tmp_path / "notes.txt", "-t", "c", "--source-type", "bogus",
              "--path", qdrant_path)
    assert res.exit_code == 2
    _one_line_error(res, "unknown source type 'bogus'")


def test_empty_sources(cli, tmp_path, qdrant_path):
    (tmp_path / "e.jsonl").write_text("")
    res = cli("qdrant", "migrate", "-s", tmp_path / "e.jsonl", "-t", "c", "--path", qdrant_path)
    assert res.exit_code == 2
    _one_line_error(res, "empty")
    (tmp_path / "d").mkdir()
    res = cli("qdrant", "migrate", "-s", tmp_path / "d", "-t", "c", "--path", qdrant_path, "--source-type", "npy-dir")
    assert res.exit_code == 2
    _one_line_error(res, "no .npy files")
    np.save(tmp_path / "z.npy", np.zeros((0, 8), np.float32))
    res = cli("qdrant", "migrate", "-s", tmp_path / "z.npy", "-t", "c", "--path", qdrant_path)
    assert res.exit_code == 2
    _one_line_error(res, "no rows")


def test_record_level_problems_go_to_dead_letter_and_counts_add_up(cli, tmp_path, qdrant_path):
    src = write_jsonl(tmp_path / "e.jsonl", vectors(20, 4))
    with open(src, "a") as f:
        f.write("{not json\n")  # line 21
        f.write(json.dumps({"id": "nonnum", "vector": [1, "x", 3, 4]}) + "\n")  # 22
        f.write(json.dumps({"id": "short", "vector": [1, 2]}) + "\n")  # 23
        f.write('{"id": "inf", "vector": [1e39, 0, 0, 0]}\n')  # 24: overflows float32 to inf
        f.write(json.dumps({"vector": [1, 2, 3, 4]}) + "\n")  # 25: no id
        f.write(json.dumps({"id": "doc-3", "vector": [9, 9, 9, 9], "payload": {"v": 2}}) + "\n")  # 26: duplicate
    dl = tmp_path / "rejected.jsonl"
    res = cli("qdrant", "migrate", "-s", src, "-t", "c", "--path", qdrant_path, "--dead-letter", dl, "--json")
    assert res.exit_code == 5, res.output
    s = json.loads(res.stdout)
    assert (s["read"], s["written"], s["rejected"], s["duplicates"]) == (26, 21, 5, 1)
    assert s["read"] == s["written"] + s["rejected"] + s["skipped"]
    dead = {d["location"].rsplit(":", 1)[1]: d for d in map(json.loads, dl.read_text().splitlines())}
    assert set(dead) == {"21", "22", "23", "24", "25"}
    assert "malformed JSON" in dead["21"]["reason"]
    assert "non-numeric" in dead["22"]["reason"]
    assert "dimensions" in dead["23"]["reason"]
    assert "non-finite" in dead["24"]["reason"]
    assert '"id"' in dead["25"]["reason"]
    assert "rejected" in res.stderr and "duplicate" in res.stderr
    with EdgeTarget(qdrant_path) as t:
        assert t.count("c") == 20  # 21 written, one of them replaced an earlier duplicate
        from cortex.ids import map_id

        (p,) = t.retrieve("c", [map_id("doc-3")[0]]).values()
        assert p.payload["v"] == 2  # the last one won


def test_strict_stops_at_first_bad_record(cli, tmp_path, qdrant_path):
    src = write_jsonl(tmp_path / "e.jsonl", vectors(5, 4))
    with open(src, "a") as f:
        f.write("{oops\n")
    res = cli("qdrant", "migrate", "-s", src, "-t", "c", "--path", qdrant_path, "--strict")
    assert res.exit_code == 2
    _one_line_error(res, "e.jsonl:6", "malformed JSON", "--strict")


def test_nan_in_matrix_is_rejected_with_row(cli, tmp_path, qdrant_path):
    m = vectors(30, 6)
    m[7, 2] = np.nan
    m[9, 0] = np.inf
    np.save(tmp_path / "m.npy", m)
    res = cli("qdrant", "migrate", "-s", tmp_path / "m.npy", "-t", "c", "--path", qdrant_path, "--json")
    assert res.exit_code == 5
    s = json.loads(res.stdout)
    assert (s["written"], s["rejected"]) == (28, 2)
    dead = [json.loads(x) for x in Path(s["dead_letter"]).read_text().splitlines()]
    assert sorted(d["id"] for d in dead) == [7, 9]


def test_matrix_ids_length_mismatch(cli, tmp_path, qdrant_path):
    np.save(tmp_path / "m.npy", vectors(10, 4))
    (tmp_path / "ids.txt").write_text("a\nb\n")
    res = cli("qdrant", "migrate", "-s", tmp_path / "m.npy", "-t", "c", "--ids", tmp_path / "ids.txt",
              "--path", qdrant_path)
    assert res.exit_code == 2
    _one_line_error(res, "ids.txt", "2 ids", "10 rows")


def test_existing_collection_with_other_dimension_is_refused(cli, tmp_path, qdrant_path):
    np.save(tmp_path / "a.npy", vectors(10, 4))
    np.save(tmp_path / "b.npy", vectors(10, 8))
    assert cli("qdrant", "migrate", "-s", tmp_path / "a.npy", "-t", "c", "--path", qdrant_path).exit_code == 0
    res = cli("qdrant", "migrate", "-s", tmp_path / "b.npy", "-t", "c", "--path", qdrant_path)
    assert res.exit_code == 4
    _one_line_error(res, "'c'", "4-dim", "8")


def test_unreachable_server(cli, tmp_path):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    src = write_jsonl(tmp_path / "e.jsonl", vectors(3, 4))
    res = cli("qdrant", "migrate", "-s", src, "-t", "c", "--url", f"http://127.0.0.1:{port}", "--no-prefer-grpc")
    assert res.exit_code == 3
    _one_line_error(res, f"127.0.0.1:{port}", "QDRANT_URL")


def test_verify_detects_missing_collection(cli, qdrant_path):
    res = cli("qdrant", "verify", "-c", "ghost", "--path", qdrant_path)
    assert res.exit_code == 3
    _one_line_error(res, "ghost", "does not exist")


def test_unwritable_output_is_one_line(cli, tmp_path):
    src = write_jsonl(tmp_path / "e.jsonl", vectors(3, 4))
    res = cli("qdrant", "export", "-s", src, "-o", tmp_path / "no" / "such" / "dir" / "x.jsonl")
    assert res.exit_code == 2
    _one_line_error(res, "x.jsonl", "No such file or directory")


def test_invalid_collection_name(cli, tmp_path, qdrant_path):
    src = write_jsonl(tmp_path / "e.jsonl", vectors(3, 4))
    res = cli("qdrant", "migrate", "-s", src, "-t", "../escape", "--path", qdrant_path)
    assert res.exit_code == 2
    _one_line_error(res, "invalid collection name")
    assert not (tmp_path / "escape").exists()
