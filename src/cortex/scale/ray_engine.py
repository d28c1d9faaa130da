"""``migrate --engine ray``: the partitions of one migration as Ray tasks, then ``--finish``.

The driver creates the collection (so tasks never race to create it), starts one task per partition,
shows one progress bar fed by every task, and finishes once all are done. Each task is the ordinary
partition run (:func:`cortex.api.migrate` with ``partitions=N, partition=I``) writing straight to the
target, with its checkpoint in the shared state directory; a task whose worker dies is retried by Ray
(``max_retries``) and resumes from that checkpoint, so nothing is lost or written twice. Without
``ray_address`` Ray starts on this machine; with it (or ``RAY_ADDRESS``) the driver joins that cluster,
whose workers must reach the source, the target and the state directory at the same paths.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from cortex.errors import CortexError, MissingExtraError, TransientTargetError
from cortex.pipeline import MigrationSummary

# What a task gets of migrate()'s arguments: plain, picklable settings (no callbacks, no open objects).
TASK_ARGS = ("source", "collection", "source_type", "options", "url", "api_key", "prefer_grpc", "grpc_port",
             "batch_size", "workers", "distance", "id_field", "defer_indexing", "strict", "state_dir", "restart",
             "retries", "retry_max_seconds", "checkpoint_seconds")
TASK_RETRIES = 3


def _ray() -> Any:
    try:
        import ray
    except ImportError as e:
        raise MissingExtraError(f"--engine ray needs Ray: pip install 'cortex-qdrant[ray]' ({e})") from e
    return ray


def _absolute(value: str | None) -> str | None:
    """A local path made absolute (Ray workers may start in another directory); URLs stay as they are."""
    if value is None or "://" in value or value.startswith(("local:", ":memory:")):
        return value
    return str(Path(value).resolve())


class _TaskProgress:
    """The pipeline's progress hooks in a task, sent to the driver's tracker actor."""

    def __init__(self, tracker: Any, i: int) -> None:
        self.tracker, self.i = tracker, i

    def start(self, total: int | None, done: int = 0) -> None:
        self.tracker.start.remote(self.i, done)

    def advance(self, n: int) -> None:
        self.tracker.advance.remote(self.i, n)

    def stop(self) -> None:
        pass


class _TaskMetrics:
    """A task's metrics hooks (see :class:`cortex.deploy.hooks.PipelineHooks`), sent to the driver's tracker.

    The driver's :class:`~cortex.deploy.metrics.MetricsReporter` (``--metrics-port``) then serves the sums of
    every partition: counts, batch upsert times and retries.
    """

    def __init__(self, tracker: Any, i: int) -> None:
        self.tracker, self.i = tracker, i

    def bind(self, collection: str, checkpoint_time: Any = None) -> None:
        pass

    def expected(self, total: int | None) -> None:
        pass

    def counts(self, counts: Any) -> None:
        from cortex.deploy.metrics import COUNTS  # here: only a run with --metrics-port loads prometheus_client

        self.tracker.counts.remote(self.i, {k: int(getattr(counts, k, 0) or 0) for k in COUNTS})

    def commit(self, checkpoint: Any) -> None:
        self.counts(checkpoint.counts)

    def batch_written(self, points: int, seconds: float) -> None:
        self.tracker.batch.remote(seconds)

    def retry(self, *_args: Any) -> None:
        self.tracker.retry.remote()

    def phase(self, name: str) -> None:
        pass

    def collection_info(self, info: Any) -> None:
        pass


class _Tracker:
    """Records read per partition (a restarted task starts again from its checkpoint), and their metrics."""

    def __init__(self) -> None:
        self.done: dict[int, int] = {}
        self.pids: dict[int, int] = {}
        self.counted: dict[int, dict[str, int]] = {}
        self.batch_seconds: list[float] = []
        self.retries = 0

    def counts(self, i: int, counts: dict[str, int]) -> None:
        self.counted[i] = counts

    def batch(self, seconds: float) -> None:
        self.batch_seconds.append(seconds)

    def retry(self) -> None:
        self.retries += 1

    def drain_metrics(self) -> tuple[dict[str, int], list[float], int]:
        """Summed counts of the partitions, the batch times since the last call, retries so far."""
        from cortex.deploy.metrics import COUNTS
        sums = {k: sum(c.get(k, 0) for c in self.counted.values()) for k in COUNTS}
        times, self.batch_seconds = self.batch_seconds, []
        return sums, times, self.retries

    def start(self, i: int, done: int) -> None:
        self.done[i] = done

    def advance(self, i: int, n: int) -> None:
        self.done[i] = self.done.get(i, 0) + n

    def hello(self, i: int, pid: int) -> None:
        self.pids[i] = pid

    def total(self) -> int:
        return sum(self.done.values())

    def workers(self) -> dict[int, int]:
        return dict(self.pids)


def _run_partition(i: int, n: int, tracker: Any, kwargs: dict[str, Any], metrics: bool = False) -> dict[str, Any]:
    """One partition, in a Ray worker."""
    from cortex.api import migrate

    tracker.hello.remote(i, os.getpid())
    summary = migrate(partitions=n, partition=i, progress=_TaskProgress(tracker, i),
                      metrics=_TaskMetrics(tracker, i) if metrics else None, **kwargs)
    if summary.status != "done":
        raise TransientTargetError(f"partition {i}/{n} ended {summary.status}")
    return summary.to_dict()


def migrate_with_ray(*, source: str, collection: str, partitions: int | None, ray_address: str | None = None,
                     progress: Any = None, on_event: Any = None, stop: Any = None, target: Any = None,
                     path: str | None = None, url: str | None = None, dry_run: bool = False,
                     metrics: Any = None, config: Any = None, **kwargs: Any) -> MigrationSummary:
    """Migrate ``source`` as ``partitions`` Ray tasks into a Qdrant server, then build the index and check it."""
    from cortex.api import migrate
    from cortex.collection_setup import prepare_collection, resolve_distance, vector_config
    from cortex.sources import open_source
    from cortex.targets import open_target

    say = on_event or (lambda _m: None)
    t_start = time.perf_counter()
    url = url or os.environ.get("QDRANT_URL")
    if target is not None or not url or url.startswith(("local:", ":memory:")):
        raise CortexError("--engine ray writes from many processes at once, which needs a Qdrant server (--url); an "
                          "embedded or local-mode collection takes one writer at a time: run --partitions N "
                          "--partition I one after another instead")
    if dry_run:
        raise CortexError("--engine ray does not take --dry-run; run the dry run without --engine")
    ray = _ray()
    args = {k: kwargs[k] for k in TASK_ARGS if k in kwargs}
    args.update(source=_absolute(source), collection=collection, url=url,
                state_dir=_absolute(kwargs.get("state_dir", ".cortex")))
    if not ray.is_initialized():
        say(f"starting Ray {'at ' + ray_address if ray_address else 'on this machine'} ...")
        ray.init(address=ray_address, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
                 configure_logging=False)
    n = partitions or max(1, int(ray.cluster_resources().get("CPU", 1)))
    # Create the collection once, here, so that the tasks find it and do not race to create it.
    src = open_source(source, kwargs.get("source_type"), kwargs.get("options"))
    try:
        info = src.info()
    finally:
        src.close()
    tgt = open_target(url=url, api_key=kwargs.get("api_key"), prefer_grpc=kwargs.get("prefer_grpc", True),
                      grpc_port=kwargs.get("grpc_port", 6334))
    coll_cfg = None
    if config is not None:  # --config: the collection is created from the file, the tasks write into it
        from cortex.plan.apply import check_fits, config_for
        from cortex.sources.base import parse_distance

        coll_cfg = config_for(config, collection)
        if info.dim:
            check_fits(coll_cfg, str(config) if not hasattr(config, "name") else "--config", info.dim,
                       parse_distance(kwargs["distance"]) if kwargs.get("distance") else None)
        args["distance"] = coll_cfg.vectors.distance
    try:
        sparse, named = vector_config(info)
        prepare_collection(tgt, collection, info.dim or 0, resolve_distance(info, args.get("distance")),
                           kwargs.get("defer_indexing", True), dry_run=False, sparse=sparse or None,
                           named=named or None, config=coll_cfg)
    finally:
        tgt.close()
    tracker = ray.remote(num_cpus=0)(_Tracker).remote()
    task = ray.remote(max_retries=TASK_RETRIES, retry_exceptions=[TransientTargetError])(_run_partition)
    feed = _MetricsFeed(metrics, collection, info.count)
    say(f"running {n} partitions as Ray tasks ...")
    refs = [task.remote(i, n, tracker, args, metrics is not None) for i in range(n)]
    if progress is not None:
        progress.start(info.count, done=0)
    shown = 0
    pending = list(refs)
    try:
        while pending:
            if stop is not None and stop.is_set():
                for r in pending:
                    ray.cancel(r)
                raise KeyboardInterrupt
            _, pending = ray.wait(pending, num_returns=len(pending), timeout=0.5)
            now = ray.get(tracker.total.remote())
            if progress is not None and now > shown:
                progress.advance(now - shown)
                shown = now
            feed.poll(ray, tracker)
        ray.get(refs)  # raises the first task error that Ray's retries did not cure
        feed.poll(ray, tracker)
    except ray.exceptions.RayTaskError as e:
        feed.phase("failed")
        cause = e.cause if isinstance(getattr(e, "cause", None), BaseException) else None
        if isinstance(cause, CortexError):
            raise type(cause)(f"a partition failed: {cause}") from None
        raise CortexError(f"a partition failed in Ray: {str(e).splitlines()[0]}") from None
    except KeyboardInterrupt:
        feed.phase("interrupted")
        raise
    finally:
        if progress is not None:
            progress.stop()
    rest = {k: v for k, v in args.items() if k not in ("source", "collection", "url")}
    feed.phase("indexing")
    try:
        summary = migrate(source=args["source"], collection=collection, partitions=n, finish=True, url=url,
                          on_event=say, build_index=kwargs.get("build_index", True), config=coll_cfg, **rest)
    except BaseException:
        feed.phase("failed")
        raise
    feed.done(summary)
    summary.source = source
    summary.seconds = round(time.perf_counter() - t_start, 3)
    return summary


class _MetricsFeed:
    """The driver side of ``--metrics-port`` with ``--engine ray``: the tasks' sums into the driver's reporter."""

    def __init__(self, metrics: Any, collection: str, total: int | None) -> None:
        self.m = metrics
        self.retries = 0
        if metrics is not None:
            metrics.bind(collection)
            metrics.expected(total)
            metrics.phase("loading")

    def poll(self, ray: Any, tracker: Any) -> None:
        if self.m is None:
            return
        sums, times, retries = ray.get(tracker.drain_metrics.remote())
        self.m.counts(SimpleNamespace(**sums))
        for t in times:
            self.m.batch_written(0, t)
        for _ in range(retries - self.retries):
            self.m.retry()
        self.retries = retries

    def phase(self, name: str) -> None:
        if self.m is not None:
            self.m.phase(name)

    def done(self, summary: MigrationSummary) -> None:
        if self.m is not None:
            self.m.counts(summary)
            self.m.phase(summary.status)
