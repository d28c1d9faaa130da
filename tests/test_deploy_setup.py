"""``cortex qdrant setup --config``: creates, then "no changes", then an in-place change as a diff, and a size change
refused, on both targets.

Coverage by target (what each engine really keeps):
- embedded Qdrant Edge (a real shard): HNSW, quantization, optimizers, payload indexes change in place;
- qdrant-client local mode (``--url local:PATH``): creation and aliases (it keeps no HNSW/optimizer/index settings,
  which setup reports as ignored);
- the gRPC endpoint of bench/bench_server_upload.py (keeps collection configs, applies optimizer updates): "no
  changes" against the defaults a server reports, an optimizer change through ``update_collection``, the refusal;
- the loopback Qdrant gRPC server of tests/qdrant_grpc_server (Edge shards behind Qdrant's gRPC API): the whole
  server path, HNSW, quantization, payload indexes with is_tenant and aliases created and then changed in place.
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from bench_server_upload import NullEndpoint  # noqa: E402

BASE = """\
version: 1
collections:
  - name: docs
    vectors: {{size: {size}, distance: cosine}}
    hnsw: {{m: {m}, ef_construct: 100}}
    optimizers: {{indexing_threshold: {threshold}}}
{extra}"""


def write(tmp_path: Path, name: str = "c.yaml", size: int = 8, m: int = 16, threshold: int = 20000,
          extra: str = "") -> Path:
    p = tmp_path / name
    p.write_text(BASE.format(size=size, m=m, threshold=threshold, extra=extra))
    return p


def setup(cli, cfg: Path, *target: str, dry_run: bool = False):
    res = cli("qdrant", "setup", "--config", cfg, *(["--dry-run"] if dry_run else []), "--json", *target)
    return res, (orjson.loads(res.stdout) if res.stdout.strip() else None)


def actions(report: dict) -> dict[str, str]:
    return {c["name"]: c["action"] for c in report["collections"]}


def test_embedded_create_no_changes_in_place_and_refused(cli, tmp_path: Path) -> None:
    target = ["--path", tmp_path / "qs"]
    extra = "    quantization: {scalar: {type: int8, always_ram: true}}\n    payload_indexes: {lang: keyword}\n" \
            "    shard_number: 3\n    aliases: [docs_live]\n"
    cfg = write(tmp_path, extra=extra)
    res, rep = setup(cli, cfg, *target)
    assert res.exit_code == 0, res.output
    assert actions(rep) == {"docs": "create"} and rep["applied"]
    ignored = rep["collections"][0]["ignored"]
    assert "shard_number" in ignored and "aliases" not in ignored  # Qdrant Edge: one shard; Cortex keeps aliases
    from cortex.api import resolve

    assert resolve("docs_live", path=str(tmp_path / "qs")) == "docs"
    res, rep = setup(cli, cfg, *target)
    assert res.exit_code == 0 and actions(rep) == {"docs": "unchanged"} and not rep["changed"]
    res = cli("qdrant", "setup", "--config", cfg, *target)
    assert "docs: no changes" in res.stdout

    changed = write(tmp_path, "c2.yaml", m=32, extra=extra.replace("lang: keyword", "lang: keyword, n: integer"))
    res, rep = setup(cli, changed, *target, dry_run=True)  # the diff only
    assert res.exit_code == 0 and not rep["applied"]
    got = {c["setting"]: (c["old"], c["new"]) for c in rep["collections"][0]["changes"]}
    assert got == {"hnsw.m": (16, 32), "payload_indexes.n": (None, {"type": "integer"})}
    assert setup(cli, changed, *target, dry_run=True)[1]["collections"][0]["action"] == "update"  # still pending
    res = cli("qdrant", "setup", "--config", changed, *target)
    assert res.exit_code == 0 and "~ hnsw.m: 16 -> 32" in res.stdout and "+ payload_indexes.n" in res.stdout
    res, rep = setup(cli, changed, *target)
    assert actions(rep) == {"docs": "unchanged"}
    res = cli("qdrant", "status", "--json", *target)
    [info] = orjson.loads(res.stdout)
    assert info["hnsw"]["m"] == 32 and info["payload_indexes"] == {"lang": "keyword", "n": "integer"}

    bigger = write(tmp_path, "c3.yaml", size=16, m=32)
    res = cli("qdrant", "setup", "--config", bigger, *target)
    assert res.exit_code == 4, res.output
    assert "vectors.size: 8 -> 16" in res.stdout and "cortex qdrant cutover" in res.stderr
    assert "nothing was changed" in res.stderr and "Traceback" not in res.output
    [info] = orjson.loads(cli("qdrant", "status", "--json", *target).stdout)
    assert info["dim"] == 8


def test_local_mode_create_alias_in_place_and_refused(cli, tmp_path: Path) -> None:
    target = ["--url", f"local:{tmp_path / 'local'}"]
    cfg = write(tmp_path)
    res, rep = setup(cli, cfg, *target)
    assert res.exit_code == 0, res.output
    assert actions(rep) == {"docs": "create"}
    assert "hnsw" in rep["collections"][0]["ignored"]  # local mode keeps no HNSW settings: said, not hidden
    assert actions(setup(cli, cfg, *target)[1]) == {"docs": "unchanged"}
    aliased = write(tmp_path, "c2.yaml", extra="    aliases: [docs_live]\n")
    res = cli("qdrant", "setup", "--config", aliased, *target)
    assert res.exit_code == 0 and "+ aliases: [docs_live]" in res.stdout, res.output
    assert actions(setup(cli, aliased, *target)[1]) == {"docs": "unchanged"}
    from qdrant_client import QdrantClient

    c = QdrantClient(path=str(tmp_path / "local"))
    assert [(a.alias_name, a.collection_name) for a in c.get_aliases().aliases] == [("docs_live", "docs")]
    from qdrant_client import models

    c.create_collection("other", vectors_config=models.VectorParams(size=8, distance=models.Distance.COSINE))
    c.update_collection_aliases(change_aliases_operations=[models.CreateAliasOperation(
        create_alias=models.CreateAlias(collection_name="other", alias_name="taken"))])
    c.close()
    res = cli("qdrant", "setup", "--config", write(tmp_path, "c4.yaml", extra="    aliases: [docs_live, taken]\n"),
              *target)
    assert res.exit_code == 4 and "! aliases.taken: other -> docs" in res.stdout, res.output
    assert "moving it is a cutover" in res.stderr  # setup never moves live traffic
    res = cli("qdrant", "setup", "--config", write(tmp_path, "c3.yaml", size=4), *target)
    assert res.exit_code == 4 and "vectors.size: 8 -> 4" in res.stdout


def test_server_over_grpc_create_no_changes_update_and_refused(cli, tmp_path: Path) -> None:
    """The bench's gRPC endpoint: a server's reported defaults are not changes; an optimizer update is applied."""
    with NullEndpoint(seconds=120) as ep:
        target = ["--url", ep.url, "--grpc-port", ep.port]
        cfg = write(tmp_path)
        res, rep = setup(cli, cfg, *target)
        assert res.exit_code == 0, res.output
        assert actions(rep) == {"docs": "create"} and rep["collections"][0]["ignored"] == []
        res, rep = setup(cli, cfg, *target)
        assert actions(rep) == {"docs": "unchanged"}, rep
        changed = write(tmp_path, "c2.yaml", threshold=5000)
        res = cli("qdrant", "setup", "--config", changed, *target)
        assert res.exit_code == 0 and "~ optimizers.indexing_threshold: 20000 -> 5000" in res.stdout, res.output
        assert actions(setup(cli, changed, *target)[1]) == {"docs": "unchanged"}  # the server applied it
        res = cli("qdrant", "setup", "--config", write(tmp_path, "c3.yaml", size=16), *target)
        assert res.exit_code == 4 and "vectors.size: 8 -> 16" in res.stdout


FULL = """\
    quantization: {scalar: {type: int8, quantile: 0.99, always_ram: true}}
    on_disk_payload: true
    replication_factor: 1
    payload_indexes:
      tenant: keyword
      year: integer
    aliases: [docs_live]
"""


def test_server_full_settings_on_the_loopback_qdrant_server(cli, tmp_path: Path, qdrant_server) -> None:
    """qdrant-client over gRPC into tests/qdrant_grpc_server (Qdrant Edge shards behind Qdrant's gRPC API): HNSW,
    quantization, payload indexes (is_tenant) and aliases are created, then changed in place through
    update_collection / create_field_index / update_aliases. (The test server does not report an index's
    is_tenant flag back, so that one is only checked to be accepted.)"""
    target = qdrant_server.cortex_args
    tenants = tmp_path / "t.yaml"
    tenants.write_text("version: 1\ncollections:\n  - name: tenants\n    vectors: {size: 4}\n"
                       "    payload_indexes: {ws: {type: keyword, is_tenant: true}}\n")
    assert cli("qdrant", "setup", "--config", tenants, *target).exit_code == 0
    cfg = write(tmp_path, extra=FULL)
    res, rep = setup(cli, cfg, *target)
    assert res.exit_code == 0, res.output
    assert actions(rep) == {"docs": "create"} and rep["collections"][0]["ignored"] == []
    res, rep = setup(cli, cfg, *target)
    assert actions(rep) == {"docs": "unchanged"}, rep["collections"]
    changed = write(tmp_path, "c2.yaml", m=32, extra=FULL.replace("int8, quantile: 0.99", "int8, quantile: 0.95")
                    .replace("year: integer", "year: integer\n      lang: keyword")
                    .replace("[docs_live]", "[docs_live, docs_v1]"))
    res, rep = setup(cli, changed, *target)
    assert res.exit_code == 0 and rep["applied"], res.output
    got = {c["setting"] for c in rep["collections"][0]["changes"]}
    assert got == {"hnsw.m", "quantization", "payload_indexes.lang", "aliases"}, got
    assert actions(setup(cli, changed, *target)[1]) == {"docs": "unchanged"}
    c = qdrant_server.client()
    info = c.get_collection("docs")
    assert info.config.hnsw_config.m == 32 and abs(info.config.quantization_config.scalar.quantile - 0.95) < 1e-6
    assert set(info.payload_schema) == {"tenant", "year", "lang"}
    assert {a.alias_name for a in c.get_collection_aliases("docs").aliases} == {"docs_live", "docs_v1"}
    assert set(c.get_collection("tenants").payload_schema) == {"ws"}
    c.close()
    res = cli("qdrant", "setup", "--config", write(tmp_path, "c3.yaml", size=16, extra=FULL), *target)
    assert res.exit_code == 4 and "vectors.size: 8 -> 16" in res.stdout


@pytest.mark.parametrize(("edit", "expected"), [
    (("hnsw: {", "hnsw: {mm: 3, "), "c.yaml:5: unknown key 'collections.0.hnsw.mm'"),
    (("size: 8", "size: zero"), "c.yaml:4: 'collections.0.vectors.size'"),
])
def test_bad_config_is_one_line_naming_key_and_line(cli, tmp_path: Path, edit: tuple[str, str], expected: str) -> None:
    p = write(tmp_path)
    p.write_text(p.read_text().replace(*edit))
    res = cli("qdrant", "setup", "--config", p, "--path", tmp_path / "qs")
    assert res.exit_code == 2
    assert expected in res.stderr and len(res.stderr.strip().splitlines()) == 1
