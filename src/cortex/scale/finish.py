"""``migrate --partitions N --finish``: once every partition is done, build the index and check the whole.

The partitions' records are merged by reading their files (no lock: each has one writer). Finishing
builds the deferred HNSW index, creates the source's payload indexes, and compares the collection's
point count with the points the partitions wrote (minus the duplicates each one counted); a shortfall
names the likely cause and the command that proves the copy (``verify --full``).
"""

from __future__ import annotations

import time
from typing import Any

from cortex.atomic_file import write_json
from cortex.collection_setup import create_payload_indexes
from cortex.errors import CheckFailed, ConflictError, CortexError
from cortex.pipeline import MigrationSummary, _finish_load
from cortex.retry import RetryPolicy
from cortex.scale.partitions import check_partition_count, piece_records, pieces_dir
from cortex.sources import open_source
from cortex.sources.base import redact_url
from cortex.state import migration_id

COUNTED = ("read", "written", "rejected", "skipped", "duplicates", "batches")


def merged(records: list[dict[str, Any]], n: int) -> tuple[dict[str, int], list[str]]:
    """Summed counts of the partitions of a split into ``n``, and what is missing or unfinished."""
    by_i = {r["partition"]["i"]: r for r in records if r.get("partition", {}).get("n") == n}
    problems = []
    for i in range(n):
        r = by_i.get(i)
        if r is None:
            problems.append(f"{i}: not started")
        elif r.get("status") != "done":
            problems.append(f"{i}: {r.get('status')} at {r.get('counts', {}).get('read', 0):,} records")
    totals = {k: sum(int(r.get("counts", {}).get(k, 0)) for r in by_i.values()) for k in COUNTED}
    return totals, problems


def finish_partitions(*, source: str, collection: str, partitions: int | None, state_dir: str,
                      source_type: str | None = None, options: Any = None, target: Any = None,
                      on_event: Any = None, retries: int = 8, retry_max_seconds: float = 30.0,
                      build_index: bool = True, config: Any = None, **target_kw: Any) -> MigrationSummary:
    """Build the index of a collection written by ``partitions`` pieces and check it holds them all.

    ``config`` (``--config``): its payload indexes are created too (the collection was created from it).
    """
    from cortex.api import _target, _where_expr, _where_text
    from cortex.plan.apply import config_for

    coll_cfg = config_for(config, collection) if config is not None else None

    say = on_event or (lambda _m: None)
    if not partitions:
        raise CortexError("--finish needs --partitions N: the number of partitions the migration ran with")
    kw = {k: target_kw[k] for k in ("path", "url", "api_key", "prefer_grpc", "grpc_port") if k in target_kw}
    tgt, own = _target(target, kw)
    t0 = time.perf_counter()
    try:
        where = _where_text(options)  # a --where subset's pieces are its own migration
        mid = migration_id(source, tgt.location, collection, where)
        check_partition_count(state_dir, mid, partitions)
        records = piece_records(state_dir, mid)
        totals, problems = merged(records, partitions)
        if problems:
            raise ConflictError(
                f"{len(problems)} of {partitions} partitions of {redact_url(source)} -> '{collection}' are not done "
                f"({'; '.join(problems[:8])}); run each with --partitions {partitions} --partition I, then --finish")
        src = open_source(source, source_type, options)
        try:
            info = src.info()
        finally:
            src.close()
        summary = MigrationSummary(source=redact_url(source), source_kind=info.kind, collection=collection,
                                   target=tgt.location, dim=info.dim or 0, distance=info.distance or "", **totals)
        policy = RetryPolicy(retries=retries, max_seconds=retry_max_seconds)
        summary.payload_indexes = create_payload_indexes(tgt, collection, info, policy, summary.warnings,
                                                         config=coll_cfg)
        if build_index:  # False: left deferred for a later `cortex qdrant optimize`
            say(f"all {partitions} partitions done; optimizing the collection (the HNSW build takes minutes on "
                "large collections) ...")
            t_index = time.perf_counter()
            _finish_load(tgt, collection)
            summary.index_seconds = round(time.perf_counter() - t_index, 3)
        expected = totals["written"] - totals["duplicates"]
        have = tgt.count(collection, filter=_where_expr(options) if where else None)
        write_json(pieces_dir(state_dir, mid) / "finished.json",
                   {"partitions": partitions, "time": time.time(), "counts": totals, "points": have})
        summary.seconds = round(time.perf_counter() - t0, 3)
        span = max(r["updated"] for r in records) - min(r["started"] for r in records)
        summary.points_per_second = round(totals["written"] / span, 1) if span > 0 else 0.0  # all partitions
        if have < expected:
            raise CheckFailed(
                f"'{collection}' holds {have:,} points but the {partitions} partitions wrote {expected:,} distinct "
                f"ones: {expected - have:,} ids appear in more than one partition (which copy won is undefined) or "
                f"points were lost; run cortex qdrant verify --collection {collection} --source {redact_url(source)} "
                "--full to tell")
        if have > expected:
            subset = f" where {where}" if where else ""
            summary.warnings.append(f"'{collection}' holds {have - expected:,} points{subset} more than the partitions "
                                    "wrote (points that were there before the migration?)")
        return summary
    finally:
        if own:
            tgt.close()
