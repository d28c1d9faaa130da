"""scripts/setup-qdrant.sh end to end: waits for health, then applies the shipped example collections file, against
the target it is pointed at (embedded storage, qdrant-client local mode, a gRPC endpoint that checks the API key)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from bench_server_upload import NullEndpoint, free_port  # noqa: E402

SCRIPT = ROOT / "scripts" / "setup-qdrant.sh"
CONFIG = ROOT / "deploy" / "collections.example.yaml"


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("QDRANT_", "CORTEX_"))}
    base.update(CORTEX=f"{sys.executable} -m cortex", PYTHONPATH=str(ROOT / "src"), COLUMNS="120", **env)
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=tmp_path, env=base, capture_output=True, text=True,
                          timeout=300)


def test_embedded_create_then_dry_run_of_a_change(tmp_path: Path) -> None:
    r = run(tmp_path, str(CONFIG), QDRANT_PATH=str(tmp_path / "qs"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "healthy: " in r.stdout and "code_chunks: create" in r.stdout
    assert (tmp_path / "qs" / "code_chunks" / "edge_config.json").exists()
    changed = tmp_path / "c.yaml"
    changed.write_text(CONFIG.read_text().replace("m: 16", "m: 24"))
    r = run(tmp_path, str(changed), "--dry-run", QDRANT_PATH=str(tmp_path / "qs"))  # extra flags reach setup
    assert r.returncode == 0 and "hnsw.m: 16 -> 24" in r.stdout and "dry run" in r.stdout


def test_env_file_and_default_config_against_local_mode(tmp_path: Path) -> None:
    """Run from a checkout-like directory: ./.env names the target, the default config path is used."""
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "collections.example.yaml").write_text(CONFIG.read_text())
    (tmp_path / ".env").write_text(f"QDRANT_URL=local:{tmp_path / 'loc'}\n")
    r = run(tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "+ aliases: [code_chunks_live]" in r.stdout  # local mode keeps aliases


def test_server_key_checked_and_unreachable(tmp_path: Path) -> None:
    plain = tmp_path / "plain.yaml"  # the endpoint keeps collection configs, not payload indexes or aliases
    plain.write_text("version: 1\ncollections:\n  - name: code_chunks\n    vectors: {size: 384}\n"
                     "    hnsw: {m: 16}\n")
    with NullEndpoint(seconds=120, api_key="s3cret") as ep:
        env = {"QDRANT_URL": ep.url, "QDRANT_GRPC_PORT": str(ep.port)}
        r = run(tmp_path, str(plain), QDRANT_API_KEY="s3cret", **env)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "code_chunks: create" in r.stdout
        r = run(tmp_path, str(plain), QDRANT_API_KEY="wrong", **env)  # refused: no waiting, exit 3
        assert r.returncode == 3 and "refused the API key" in r.stdout + r.stderr
    port = free_port()
    r = run(tmp_path, str(CONFIG), QDRANT_URL=f"http://127.0.0.1:{port}", QDRANT_GRPC_PORT=str(port),
            SETUP_WAIT_SECONDS="0")
    assert r.returncode == 3 and "cannot reach Qdrant" in r.stdout + r.stderr
    r = run(tmp_path, str(tmp_path / "missing.yaml"))
    assert r.returncode == 2 and "no such collections file" in r.stderr
