"""The pipeline hooks that feed a :class:`cortex.deploy.metrics.MetricsReporter`; all no-ops without one.

Kept apart from ``metrics.py`` so ``cortex.api`` imports no ``prometheus_client`` unless metrics are asked for.
``sync`` (or any other caller of the pipeline) uses it the same way ``migrate`` does::

    hooks = PipelineHooks(metrics, target, collection, total, saver, start_counts)
    opts.on_batch = hooks.batch_written; on_commit = hooks.commit(on_commit); on_phase -> hooks.phase(name)
    (or, writing batches itself: write_batch(..., hooks.batch_written); hooks.counts(its_counts))
    ... hooks.finish(summary.status, summary)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from cortex.errors import CortexError


class PipelineHooks:
    def __init__(self, metrics: Any, target: Any, collection: str, total: int | None = None, saver: Any = None,
                 start: Any = None) -> None:
        self.m, self.target, self.collection = metrics, target, collection
        self.batch_written: Callable[[int, float], None] | None = None
        if metrics is None:
            return
        metrics.bind(collection, checkpoint_time=(lambda: saver.last) if saver is not None else None)
        metrics.expected(total)
        if start is not None:
            metrics.counts(start)  # a resumed run: the counters start at the checkpoint's counts
        self.batch_written = metrics.batch_written

    def commit(self, inner: Callable[[Any], None] | None) -> Callable[[Any], None] | None:
        """``on_commit`` that also feeds the counters (and still calls ``inner``)."""
        if self.m is None:
            return inner

        def both(ck: Any) -> None:
            if inner is not None:
                inner(ck)
            self.m.commit(ck)

        return both

    def counts(self, counts: Any) -> None:
        """Cumulative read/written/rejected/skipped (for callers that count themselves, e.g. sync)."""
        if self.m is not None:
            self.m.counts(counts)

    def retried(self, inner: Callable[..., None]) -> Callable[..., None]:
        """The retry policy's ``on_retry(attempt, delay, error)`` that also counts the retry."""
        if self.m is None:
            return inner

        def both(*args: Any) -> None:
            self.m.retry()
            inner(*args)

        return both

    def phase(self, name: str) -> None:
        if self.m is None:
            return
        if name == "indexing":  # the load is over, no writer is busy: read the collection's segments
            self._read_collection()
        self.m.phase(name)

    def finish(self, status: str, summary: Any = None) -> None:
        if self.m is None:
            return
        if summary is not None:
            self.m.counts(summary)
            if not summary.dry_run:
                self._read_collection()
        self.m.phase(status)

    def _read_collection(self) -> None:
        with contextlib.suppress(CortexError):  # metrics never fail a migration
            self.m.collection_info(self.target.collection_info(self.collection))
