"""Cost of the payload layouts: batches through cortex.layouts vs the same batches untouched.

    python bench/bench_layouts.py [--n 100000] [--dim 384] [--batch-size 500]

An in-memory source yields ``--n`` rows (float32 vectors, a ~300-character text, 6 metadata
fields, uuid ids) in columnar batches; each layout's wrapper (:class:`LayoutSource`, what
``open_source`` applies) is drained into a discarding sink.  Baseline, measured in the same run:
the flat layout on rows without text (the wrapper returns the batch untouched).  Prints rows/s
per layout and the ratio to the baseline.

With ``--e2e N``: a LangChain FAISS folder of N documents (real ``FAISS.save_local``) is migrated
into embedded Qdrant Edge once per layout; points/s of the load, and the ratio to ``flat``.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np

from cortex.layouts import apply_layout
from cortex.sources.base import Batch, Source, SourceInfo, SourceOptions


class MemorySource(Source):
    kind = "memory"

    def __init__(self, n: int, dim: int, texts: bool, options: SourceOptions) -> None:
        super().__init__("memory", options)
        rng = np.random.default_rng(0)
        self.n, self.dim, self.with_texts = n, dim, texts
        self.x = rng.standard_normal((n, dim)).astype(np.float32)
        self.ids = [str(uuid.UUID(int=i + 1)) for i in range(n)]
        self.metas = [{"file": f"f{i % 97}.md", "page": i, "lang": ("rust", "go")[i % 2], "score": i / 7,
                       "tags": ["a", "b"], "draft": i % 3 == 0} for i in range(n)]
        self.texts = [f"chunk {i} " + "lorem ipsum dolor sit amet " * 11 for i in range(n)]

    @classmethod
    def detect(cls, path: str) -> bool:
        return False

    def info(self) -> SourceInfo:
        return SourceInfo(kind=self.kind, name="memory", dim=self.dim, distance="cosine", count=self.n,
                          details={"text_field": "text"} if self.with_texts else {})

    def batches(self, batch_size: int, resume: Any = None) -> Iterator[Batch]:
        for s in range(0, self.n, batch_size):
            e = min(self.n, s + batch_size)
            yield Batch(ids=self.ids[s:e], vectors=self.x[s:e], payloads=[dict(m) for m in self.metas[s:e]],
                        texts=self.texts[s:e] if self.with_texts else None, cursor={"offset": e})


def drain(src: Source, batch_size: int) -> float:
    t0 = time.perf_counter()
    rows = sum(len(b) for b in src.batches(batch_size))
    return rows / (time.perf_counter() - t0)


def e2e(n: int, dim: int, batch_size: int) -> None:
    import tempfile
    import warnings

    from cortex.api import migrate

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from langchain_community.vectorstores import FAISS
        from langchain_core.embeddings import DeterministicFakeEmbedding
    x = np.random.default_rng(1).standard_normal((n, dim)).astype(np.float32)
    src = MemorySource(n, dim, True, SourceOptions())
    with tempfile.TemporaryDirectory() as tmp:
        FAISS.from_embeddings(list(zip(src.texts, x.tolist(), strict=True)), DeterministicFakeEmbedding(size=dim),
                              metadatas=src.metas).save_local(f"{tmp}/faiss_index")
        print(f"end to end: LangChain FAISS, {n:,} docs x {dim} dims -> embedded Qdrant Edge, batches of {batch_size}")
        flat = None
        for layout in ("flat", "langchain", "llamaindex", "haystack"):
            s = migrate(f"{tmp}/faiss_index", layout, path=f"{tmp}/q", options=SourceOptions(trust_pickle=True),
                        layout=layout, batch_size=batch_size, state_dir=f"{tmp}/state")
            flat = flat or s.points_per_second
            print(f"  {layout:12s} {s.points_per_second:>10,.0f} points/s  {s.points_per_second / flat:6.3f}x flat")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--e2e", type=int, default=0, help="also migrate N docs end to end per layout")
    a = ap.parse_args()
    if a.e2e:
        e2e(a.e2e, a.dim, a.batch_size)
        return
    cases = [("flat, no text (baseline: untouched)", "flat", False), ("flat + text", "flat", True),
             ("langchain", "langchain", True), ("llamaindex", "llamaindex", True), ("haystack", "haystack", True)]
    base = None
    print(f"{a.n:,} rows x {a.dim} dims, batches of {a.batch_size}")
    for label, layout, texts in cases:
        src = apply_layout(MemorySource(a.n, a.dim, texts, SourceOptions(layout=layout)))
        src.info()
        rate = drain(src, a.batch_size)
        base = base or rate
        print(f"  {label:38s} {rate:>12,.0f} rows/s  {rate / base:6.3f}x baseline")


if __name__ == "__main__":
    main()
