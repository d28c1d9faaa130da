"""Test data builders (small, generated in the test)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


def payload(i: int) -> dict:
    return {"workspace_id": f"ws-{i % 4}", "file_path": f"src/mod_{i}.py", "language": ["python", "go"][i % 2],
            "created_at": f"2026-01-{1 + i % 28:02d}T00:00:00Z", "n": i, "score": i / 7, "tags": ["a", str(i)],
            "nested": {"k": i, "ok": i % 3 == 0}}


def write_jsonl(path: Path, vecs: np.ndarray, ids: list | None = None) -> Path:
    with open(path, "w") as f:
        for i, v in enumerate(vecs):
            rid = ids[i] if ids is not None else f"doc-{i}"
            f.write(json.dumps({"id": rid, "vector": v.tolist(), "payload": payload(i)}) + "\n")
    return path


def write_npy_dir(root: Path, vecs: np.ndarray) -> Path:
    for i, v in enumerate(vecs):
        d = root / f"ws-{i % 3}"
        d.mkdir(parents=True, exist_ok=True)
        np.save(d / f"chunk_{i:05d}.npy", v)
        (d / f"chunk_{i:05d}.json").write_text(json.dumps(payload(i)))
    return root
