"""Layouts across commands: collisions never overwrite user data, --layout on the CLI, inverse read-back."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from cortex.api import migrate, verify
from cortex.ids import map_id
from cortex.layouts import make_layout
from cortex.layouts.base import Doc
from cortex.sources import SourceOptions, open_source

DIM = 8


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


@contextlib.contextmanager
def _client(path: Path) -> Iterator[Any]:
    from qdrant_client import QdrantClient

    client = QdrantClient(path=str(path))
    try:
        yield client
    finally:
        client.close()


def test_flat_text_field_collision_picks_a_free_name(tmp_path):
    import chromadb
    from chromadb.config import Settings

    root = tmp_path / "chroma"
    c = chromadb.PersistentClient(path=str(root), settings=Settings(anonymized_telemetry=False))
    x = np.random.default_rng(0).standard_normal((20, DIM)).astype(np.float32)
    c.create_collection("docs").add(ids=[f"d{i}" for i in range(20)], embeddings=x,
                                    documents=[f"text {i}" for i in range(20)],
                                    metadatas=[{"document": f"user {i}", "n": i} for i in range(20)])
    del c
    q = tmp_path / "q"
    s = migrate(str(root), "c", url=f"local:{q}", state_dir=str(tmp_path / "s"))
    assert (s.layout, s.written, s.rejected) == ("flat", 20, 0)
    assert any("'_document'" in w for w in s.warnings), s.warnings  # said in the summary
    assert verify("c", source=str(root), url=f"local:{q}", full=True).ok
    with _client(q) as client:
        p = client.retrieve("c", [map_id("d4")[0]])[0].payload
    assert p == {"document": "user 4", "n": 4, "_document": "text 4", "source_id": "d4"}  # the user's value survives


def test_id_field_collision_is_refused_with_the_fix(tmp_path):
    x = np.random.default_rng(1).standard_normal((10, DIM))
    src = _jsonl(tmp_path / "e.jsonl", [{"id": f"row-{i}", "vector": x[i].tolist(),
                                         "payload": {"source_id": f"crm-{i}"}} for i in range(10)])
    s = migrate(str(src), "c", url=f"local:{tmp_path / 'q'}", state_dir=str(tmp_path / "s"))
    assert (s.read, s.written, s.rejected) == (10, 0, 10) and s.counts_add_up
    line = orjson.loads(Path(s.dead_letter).read_bytes().splitlines()[0])
    assert "holds user data" in line["reason"] and "--id-field" in line["reason"]
    assert line["record"]["payload"] == {"source_id": "crm-0"}  # nothing lost: the record is in the dead letter
    s = migrate(str(src), "c2", url=f"local:{tmp_path / 'q'}", state_dir=str(tmp_path / "s"), id_field="row_id")
    assert (s.written, s.rejected) == (10, 0)
    with _client(tmp_path / "q") as client:
        assert client.retrieve("c2", [map_id("row-3")[0]])[0].payload == {"source_id": "crm-3", "row_id": "row-3"}


def test_inverse_reads_a_collection_already_in_the_layout(tmp_path):
    """Re-migrating an app-ready collection (embedded -> server, ...) with its layout changes nothing."""
    x = np.random.default_rng(2).standard_normal((30, DIM))
    src = _jsonl(tmp_path / "e.jsonl", [{"id": i, "vector": x[i].tolist(), "payload": {"body": f"t{i}", "k": i % 3}}
                                        for i in range(30)])
    for layout in ("langchain", "llamaindex", "haystack"):
        opts = SourceOptions(layout=layout, text_column="body")
        migrate(str(src), layout, url=f"local:{tmp_path / 'a'}", options=opts, state_dir=str(tmp_path / "s"))
        again = SourceOptions(layout=layout, collection=layout)
        s = migrate(f"local:{tmp_path / 'a'}", layout, url=f"local:{tmp_path / 'b'}", options=again,
                    source_type="qdrant", state_dir=str(tmp_path / "s"))
        assert s.written == 30
        with _client(tmp_path / "a") as a:
            first = {str(p.id): p.payload for p in a.scroll(layout, limit=100)[0]}
        with _client(tmp_path / "b") as b:
            second = {str(p.id): p.payload for p in b.scroll(layout, limit=100)[0]}
        assert first == second, layout


def test_layout_write_and_read_are_inverse():
    doc = Doc(id="x1", point_id=map_id("x1")[0], text="hello", metadata={"a": 1, "b": {"c": [1, 2]}})
    for name in ("langchain", "llamaindex", "haystack"):
        lay = make_layout(name)
        payload = lay.write(doc)
        assert lay.owns(payload)
        text, meta, extra, _ = lay.read(payload)
        assert (text, meta, extra) == ("hello", doc.metadata, {}), name
    assert make_layout("langchain").field_path("lang") == "metadata.lang"
    assert make_layout("haystack").field_path("lang") == "meta.lang"
    assert make_layout("llamaindex").field_path("lang") == "lang"


@pytest.fixture
def faiss_dir(tmp_path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from langchain_community.vectorstores import FAISS
    from langchain_core.embeddings import DeterministicFakeEmbedding

    root = tmp_path / "faiss_index"
    FAISS.from_texts([f"text {i}" for i in range(40)], DeterministicFakeEmbedding(size=DIM),
                     metadatas=[{"lang": ("rust", "go")[i % 2], "i": i} for i in range(40)]).save_local(str(root))
    return root


def test_cli_layout_on_migrate_verify_compare_export(cli, faiss_dir, tmp_path):
    q = f"local:{tmp_path / 'q'}"
    r = cli("qdrant", "migrate", "--source", faiss_dir, "--trust-pickle", "--target", "lc", "--url", q,
            "--layout", "langchain")
    assert r.exit_code == 0, r.output
    assert "layout" in r.stdout and "langchain" in r.stdout
    assert "distance=Distance.EUCLID" in r.stderr
    r = cli("qdrant", "verify", "--collection", "lc", "--source", faiss_dir, "--trust-pickle", "--url", q,
            "--layout", "langchain", "--full")
    assert r.exit_code == 0, r.output
    r = cli("qdrant", "verify", "--collection", "lc", "--source", faiss_dir, "--trust-pickle", "--url", q,
            "--layout", "flat", "--full")
    assert r.exit_code == 1  # read back in another layout, the payloads differ
    r = cli("qdrant", "compare", "--collection", "lc", "--source", faiss_dir, "--trust-pickle", "--url", q,
            "--filter", "lang=rust", "--num-queries", "10", "--k", "5", "--json")
    assert r.exit_code == 0, r.output
    res = orjson.loads(r.stdout)
    assert res["qdrant"]["recall"] == 1.0 and res["matching_points"] == 20  # the filter reads metadata.lang
    out = tmp_path / "e.jsonl"
    r = cli("qdrant", "export", "--source", faiss_dir, "--trust-pickle", "--output", out)
    assert r.exit_code == 0, r.output
    first = orjson.loads(out.read_bytes().splitlines()[0])
    assert list(first["payload"]) == ["page_content", "metadata"]
    r = cli("qdrant", "migrate", "--source", faiss_dir, "--trust-pickle", "--target", "x", "--url", q,
            "--layout", "weaviate")
    assert r.exit_code == 2 and "unknown --layout 'weaviate'" in r.stderr and "Traceback" not in r.output


def test_open_source_default_layouts(faiss_dir, tmp_path):
    with open_source(str(faiss_dir), options=SourceOptions(trust_pickle=True)) as src:
        assert src.info().details["layout"] == "langchain"
        b = next(iter(src.batches(5)))
        assert b.payloads[0] == {"page_content": "text 0", "metadata": {"lang": "rust", "i": 0}}
    x = np.zeros((2, DIM))
    src = _jsonl(tmp_path / "e.jsonl", [{"id": i, "vector": x[i].tolist(), "payload": {"a": i}} for i in range(2)])
    with open_source(str(src)) as s:
        assert s.info().details["layout"] == "flat"
        assert next(iter(s.batches(5))).payloads == [{"a": 0}, {"a": 1}]


def test_partitions_write_one_layout(cli, faiss_dir, tmp_path):
    """Each partition samples the whole source, so every piece picks the same layout and field names."""
    for i in (1, 0):
        r = cli("qdrant", "migrate", "--source", faiss_dir, "--trust-pickle", "--target", "lc", "--partitions", "2",
                "--partition", i, "--json")
        assert r.exit_code == 0, r.stderr
        assert orjson.loads(r.stdout)["layout"] == "langchain"
    r = cli("qdrant", "migrate", "--source", faiss_dir, "--trust-pickle", "--target", "lc", "--partitions", "2",
            "--finish", "--json")
    assert r.exit_code == 0, r.stderr
    assert orjson.loads(r.stdout)["written"] == 40
    r = cli("qdrant", "verify", "--collection", "lc", "--source", faiss_dir, "--trust-pickle", "--full")
    assert r.exit_code == 0, r.stdout
    x = np.random.default_rng(4).standard_normal((30, DIM))
    src = _jsonl(tmp_path / "e.jsonl", [{"id": f"r{i}", "vector": x[i].tolist(), "payload": {"body": f"t{i}"}}
                                        for i in range(30)])
    for i in (0, 1, 2):
        r = cli("qdrant", "migrate", "--source", src, "--target", "hs", "--layout", "haystack", "--text-column",
                "body", "--partitions", "3", "--partition", i)
        assert r.exit_code == 0, r.stderr
    assert cli("qdrant", "migrate", "--source", src, "--target", "hs", "--layout", "haystack", "--text-column",
               "body", "--partitions", "3", "--finish").exit_code == 0
    r = cli("qdrant", "verify", "--collection", "hs", "--source", src, "--layout", "haystack", "--text-column",
            "body", "--full")
    assert r.exit_code == 0, r.stdout


def test_where_filters_source_fields_before_the_layout(faiss_dir, tmp_path):
    q = tmp_path / "q"
    s = migrate(str(faiss_dir), "rust", url=f"local:{q}", state_dir=str(tmp_path / "s"),
                options=SourceOptions(trust_pickle=True, where="lang = 'rust'"))
    assert (s.layout, s.written, s.read) == ("langchain", 20, 40)
    with _client(q) as client:
        pts = client.scroll("rust", limit=100)[0]
    assert all(p.payload["metadata"]["lang"] == "rust" and p.payload["page_content"].startswith("text ") for p in pts)
