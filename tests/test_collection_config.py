"""The collection config file: parsed into pydantic models, errors name the key and its line, and the
settings reach both engines (a real Qdrant Edge shard and qdrant-client local mode)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cortex.atomic_file import read_json, write_json
from cortex.collection_config import (
    client_create_kwargs,
    dump_config,
    edge_config,
    edge_ignored,
    load_config,
    parse_config,
)
from cortex.errors import CortexError

GOOD = """\
version: 1
collections:
  - name: code_chunks
    vectors: {size: 8, distance: l2}
    hnsw: {m: 32, ef_construct: 200}
    quantization: {scalar: {type: int8, always_ram: true}}
    optimizers: {indexing_threshold: 0}
    payload_indexes:
      workspace_id: {type: keyword, is_tenant: true}
      created_at: datetime
    shard_number: 2
    aliases: [code_live]
    search: {hnsw_ef: 128, quantization: {rescore: true, oversampling: 2.0}}
"""


def test_parse_round_trip_and_shorthand() -> None:
    cfg = parse_config(GOOD)
    c = cfg.collection()
    assert c.vectors.distance == "euclid"
    assert c.payload_indexes["created_at"].type == "datetime"
    assert c.payload_indexes["workspace_id"].is_tenant is True
    assert parse_config(dump_config(cfg)) == cfg
    assert "shard_number" in edge_ignored(c) and any(s.startswith("aliases") for s in edge_ignored(c))


@pytest.mark.parametrize(("text", "expected"), [
    (GOOD.replace("ef_construct: 200", "ef_construct: 200, mm: 3"), "config:5: unknown key 'collections.0.hnsw.mm'"),
    (GOOD.replace("size: 8", "size: -1"), "config:4: 'collections.0.vectors.size'"),
    (GOOD.replace("distance: l2", "distance: hamming"), "config:4: 'collections.0.vectors.distance'"),
    (GOOD.replace("type: keyword, is_tenant", "type: integer, is_tenant"), "is_tenant applies to keyword"),
    ("collections: [\n", "config:2: not valid YAML"),
    ("- 1\n", "expected a mapping"),
])
def test_errors_name_the_key_and_line(text: str, expected: str) -> None:
    with pytest.raises(CortexError) as e:
        parse_config(text)
    assert expected in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CortexError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")


def test_settings_reach_qdrant_edge(tmp_path: Path) -> None:
    import json

    import qdrant_edge as q

    c = parse_config(GOOD).collection()
    shard = q.EdgeShard.create(str(tmp_path / "s"), edge_config(c))
    shard.close()
    saved = json.loads((tmp_path / "s" / "edge_config.json").read_text())
    text = json.dumps(saved).lower()
    assert '"m": 32' in text and '"ef_construct": 200' in text and "int8" in text and "euclid" in text


def test_settings_reach_qdrant_client_local_mode(tmp_path: Path) -> None:
    from qdrant_client import QdrantClient

    c = parse_config(GOOD).collection()
    client = QdrantClient(path=str(tmp_path / "local"))
    try:
        kw = client_create_kwargs(c)
        kw.pop("shard_number")  # local mode has no sharding
        client.create_collection(**kw)
        info = client.get_collection("code_chunks")
        assert info.config.params.vectors.size == 8
        assert info.config.params.vectors.distance.value == "Euclid"
    finally:
        client.close()


def test_atomic_json(tmp_path: Path) -> None:
    p = tmp_path / "d" / "x.json"
    assert read_json(p, {}) == {}
    write_json(p, {"a": 1})
    write_json(p, {"a": 2})
    assert read_json(p) == {"a": 2}
    assert [f.name for f in p.parent.iterdir()] == ["x.json"]
