"""The cutover commands as ``cortex.api`` functions: sync, cutover, rollback, aliases, retire, resolve.

Each takes the usual target keywords (``path`` embedded, ``url`` server, or ``target``).
"""

from __future__ import annotations

import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cortex.cutover import aliases as al
from cortex.cutover.sync import SyncSummary, forget_state
from cortex.cutover.sync import sync as _sync
from cortex.errors import ConflictError, CortexError, TargetError
from cortex.ids import DEFAULT_ID_FIELD
from cortex.snapshot.model import write_sha256_sidecar
from cortex.sources import SourceOptions
from cortex.state import DEFAULT_STATE_DIR
from cortex.targets import Target, open_target

Event = Callable[[str], None]


def _open(target: Target | None, path: str | None, url: str | None, api_key: str | None, prefer_grpc: bool,
          grpc_port: int) -> tuple[Target, bool]:
    if target is not None:
        return target, False
    return open_target(path=path, url=url, api_key=api_key, prefer_grpc=prefer_grpc, grpc_port=grpc_port), True


def sync(source: str, collection: str, *, source_type: str | None = None, options: SourceOptions | None = None,
         watch: float | None = None, no_delete: bool = False, since_column: str | None = None,
         dry_run: bool = False, batch_size: int = 500, id_field: str = DEFAULT_ID_FIELD,
         state_dir: str = DEFAULT_STATE_DIR, target: Target | None = None, path: str | None = None,
         url: str | None = None, api_key: str | None = None, prefer_grpc: bool = True, grpc_port: int = 6334,
         progress: Any = None, stop: threading.Event | None = None, on_event: Event | None = None,
         on_round: Callable[[SyncSummary], None] | None = None) -> SyncSummary:
    """Bring ``collection`` (or the collection an alias points to) up to ``source``'s current state.

    Upserts new and changed records, deletes records gone from the source (unless
    ``no_delete``), leaves the rest alone; see :mod:`cortex.cutover.sync`.  ``watch``: repeat
    every so many seconds until ``stop`` is set (``on_round`` hears each round).
    """
    tgt, own = _open(target, path, url, api_key, prefer_grpc, grpc_port)
    try:
        return _sync(source, collection, target=tgt, source_type=source_type, options=options, watch=watch,
                     no_delete=no_delete, since_column=since_column, dry_run=dry_run, batch_size=batch_size,
                     id_field=id_field, state_dir=state_dir, progress=progress, stop=stop, on_event=on_event,
                     on_round=on_round)
    finally:
        if own:
            tgt.close()


def resolve(alias_or_name: str, *, path: str | None = None, url: str | None = None, api_key: str | None = None,
            target: Target | None = None) -> str:
    """The collection an alias points to (a collection name comes back as is).

    For applications that open Qdrant Edge shards themselves: ``EdgeShard.load(f"{path}/{resolve(a, path=path)}")``.
    """
    tgt, own = _open(target, path, url, api_key, True, 6334)
    try:
        return tgt.resolve(alias_or_name)
    finally:
        if own:
            tgt.close()


@dataclass
class Gate:
    name: str
    ok: bool
    figure: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class CutoverResult:
    alias: str
    collection: str
    previous: str | None
    switched: bool
    gates: list[Gate]
    rollback_command: str | None = None
    seconds: float = 0.0
    action: str = "cutover"

    @property
    def ok(self) -> bool:
        return all(g.ok for g in self.gates)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        return d


def _history(tgt: Target, state_dir: str) -> Path:
    return al.history_file(tgt.kind, tgt.location, state_dir)


def _target_flags(tgt: Target) -> str:
    if tgt.kind == "embedded":
        return f" --path {tgt.location}" if Path(tgt.location).resolve() != Path("qdrant_storage").resolve() else ""
    return f" --url {tgt.location}"


def _index_gate(tgt: Target, collection: str) -> Gate:
    info = tgt.collection_info(collection)
    assert info is not None
    threshold = (info.optimizer or {}).get("indexing_threshold")
    indexed = info.indexed_vectors or 0
    deferred = threshold == 0
    ok = info.status == "green" and not deferred
    if deferred:
        fig = f"{info.status}: indexing deferred (run `cortex qdrant optimize {collection} --wait`)"
    elif indexed >= info.points or not info.points:
        fig = f"{info.status}: {indexed:,} / {info.points:,} vectors indexed"
    else:
        fig = (f"{info.status}: {indexed:,} / {info.points:,} vectors in HNSW (segments below the indexing "
               "threshold are searched exactly)")
    return Gate("collection exists and is fully indexed", ok, fig,
                {"status": info.status, "points": info.points, "indexed_vectors": indexed})


def cutover(alias: str, collection: str, *, source: str | None = None, source_type: str | None = None,
            options: SourceOptions | None = None, min_recall: float = 0.95, no_checks: bool = False,
            queries: str | None = None, num_queries: int = 200, state_dir: str = DEFAULT_STATE_DIR,
            id_field: str = DEFAULT_ID_FIELD, target: Target | None = None, path: str | None = None,
            url: str | None = None, api_key: str | None = None, prefer_grpc: bool = True, grpc_port: int = 6334,
            on_event: Event | None = None) -> CutoverResult:
    """Gate, then point ``alias`` at ``collection`` atomically; recorded in the history.

    Gates (each with its figure): the collection exists and is fully indexed; with ``source``:
    a final (dry-run) sync finds nothing pending, ``verify --full`` passes, ``compare`` recall@10
    >= ``min_recall``.  ``result.switched`` is False when a gate failed (the alias is unchanged).
    """
    from cortex import api

    say = on_event or (lambda _m: None)
    t0 = time.perf_counter()
    tgt, own = _open(target, path, url, api_key, prefer_grpc, grpc_port)
    try:
        names = tgt.list_collections()
        table = tgt.list_aliases()
        if alias in names:
            raise ConflictError(f"'{alias}' is a collection, not an alias; pick another alias name (e.g. "
                                f"{alias}_live) and point your application at it, or migrate '{alias}' to a new name")
        if collection in table:
            raise CortexError(f"'{collection}' is an alias (of '{table[collection]}'); cut over to a collection: "
                              f"--collection {table[collection]}")
        if collection not in names:
            raise TargetError(f"collection '{collection}' does not exist at {tgt.location}; "
                              "run `cortex qdrant status` to list collections")
        previous = table.get(alias)
        gates: list[Gate] = []
        if no_checks:
            gates.append(Gate("checks", True, "skipped (--no-checks)"))
        else:
            say(f"gate: {collection} exists and is fully indexed")
            gates.append(_index_gate(tgt, collection))
            if source is not None:
                say("gate: final sync finds nothing pending")
                s = _sync(source, collection, target=tgt, source_type=source_type, options=options, dry_run=True,
                          id_field=id_field, state_dir=state_dir, on_event=say)
                gates.append(Gate("final sync: nothing pending", s.pending == 0 and s.rejected == 0,
                                  f"{s.pending:,} pending (added {s.added:,}, changed {s.changed:,}, deleted "
                                  f"{s.deleted:,}), {s.rejected:,} rejected, {s.unchanged:,} in step",
                                  s.to_dict()))
                say("gate: verify --full")
                v = api.verify(collection, source=source, source_type=source_type, options=options, full=True,
                               id_field=id_field, target=tgt)
                gates.append(Gate("verify --full", v.ok, f"{v.checked:,} checked, {v.missing:,} missing, "
                                  f"{v.extra:,} extra, {v.vector_mismatches:,} vector and {v.payload_mismatches:,} "
                                  "payload mismatches", {"ok": v.ok, "checked": v.checked, "missing": v.missing,
                                                         "extra": v.extra}))
                say("gate: compare recall@10")
                r = api.compare(collection, source=source, source_type=source_type, options=options, k=10,
                                queries=queries, num_queries=num_queries, min_recall=min_recall,
                                id_field=id_field, target=tgt)
                rec = r.qdrant.recall
                gates.append(Gate(f"compare recall@10 >= {min_recall}", bool(r.ok),
                                  f"recall@10 = {rec:.4f} over {r.num_queries} queries", {"recall": rec}))
        res = CutoverResult(alias, collection, previous, False, gates)
        if res.ok:
            if tgt.kind == "embedded":
                tgt.close()  # release the shards the gates opened before readers follow the alias
            tgt.switch_aliases({alias: collection})
            res.switched = True
            al.record(_history(tgt, state_dir), {"action": "cutover", "alias": alias, "collection": collection,
                                                 "previous": previous, "target": tgt.location,
                                                 "gates": [asdict(g) for g in gates]})
            back = f"--to {previous}" if previous else "--to <previous collection>"
            res.rollback_command = (f"cortex qdrant rollback --alias {alias}{_target_flags(tgt)}" if previous
                                    else f"cortex qdrant rollback --alias {alias} {back}{_target_flags(tgt)}")
        res.seconds = round(time.perf_counter() - t0, 3)
        return res
    finally:
        if own:
            tgt.close()


def rollback(alias: str, *, to: str | None = None, state_dir: str = DEFAULT_STATE_DIR, target: Target | None = None,
             path: str | None = None, url: str | None = None, api_key: str | None = None, prefer_grpc: bool = True,
             grpc_port: int = 6334) -> CutoverResult:
    """Point ``alias`` back at the collection it pointed to before the last cutover (or ``to``), atomically."""
    tgt, own = _open(target, path, url, api_key, prefer_grpc, grpc_port)
    try:
        table = tgt.list_aliases()
        if alias not in table:
            raise CortexError(f"no alias '{alias}' at {tgt.location}; `cortex qdrant aliases` lists them")
        current = table[alias]
        if to is None:
            for e in reversed(al.read_history(_history(tgt, state_dir), alias)):
                if e.get("action") == "cutover" and e.get("collection") == current:
                    to = e.get("previous")
                    break
            if to is None:
                raise CortexError(f"alias '{alias}' -> '{current}': no earlier collection in the history; "
                                  "say where to point it with --to COLLECTION")
        if to not in tgt.list_collections():
            raise TargetError(f"collection '{to}' does not exist at {tgt.location} (retired?); choose another "
                              "with --to")
        tgt.switch_aliases({alias: to})
        al.record(_history(tgt, state_dir), {"action": "rollback", "alias": alias, "collection": to,
                                             "previous": current, "target": tgt.location, "gates": []})
        res = CutoverResult(alias, to, current, True, [], action="rollback",
                            rollback_command=f"cortex qdrant cutover --alias {alias} --collection {current}"
                                             f"{_target_flags(tgt)}")
        return res
    finally:
        if own:
            tgt.close()


def aliases(*, alias: str | None = None, state_dir: str = DEFAULT_STATE_DIR, target: Target | None = None,
            path: str | None = None, url: str | None = None, api_key: str | None = None, prefer_grpc: bool = True,
            grpc_port: int = 6334) -> dict[str, Any]:
    """``{"aliases": {alias: collection}, "history": [...]}`` (only ``alias``'s when given)."""
    tgt, own = _open(target, path, url, api_key, prefer_grpc, grpc_port)
    try:
        table = tgt.list_aliases()
        if alias is not None:
            table = {alias: table[alias]} if alias in table else {}
        return {"target": tgt.location, "aliases": table,
                "history": al.read_history(_history(tgt, state_dir), alias)}
    finally:
        if own:
            tgt.close()


@dataclass
class RetireResult:
    collection: str
    deleted: bool
    archive: str | None = None
    sha256: str | None = None
    archive_bytes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def retire(collection: str, *, snapshot: str | None = None, yes: bool = False,
           confirm: Callable[[str], bool] | None = None, state_dir: str = DEFAULT_STATE_DIR,
           target: Target | None = None, path: str | None = None, url: str | None = None,
           api_key: str | None = None, prefer_grpc: bool = True, grpc_port: int = 6334) -> RetireResult:
    """Delete an old collection, after an optional archive in ``snapshot`` (a directory).

    Refuses while any alias points to it.  Embedded: a tar of the flushed shard + its sha256;
    server: a collection snapshot downloaded into the directory.  Without ``yes``, ``confirm``
    is asked (the CLI prompts); neither: refused.
    """
    tgt, own = _open(target, path, url, api_key, prefer_grpc, grpc_port)
    try:
        if collection not in tgt.list_collections():
            raise TargetError(f"collection '{collection}' does not exist at {tgt.location}")
        using = sorted(a for a, c in tgt.list_aliases().items() if c == collection)
        if using:
            raise ConflictError(f"collection '{collection}' is live: alias {', '.join(using)} points to it; "
                                f"move the alias first (`cortex qdrant cutover --alias {using[0]} --collection ...` "
                                "or `rollback`), then retire it")
        if not yes and (confirm is None or not confirm(f"Delete collection '{collection}' at {tgt.location}?")):
            raise CortexError(f"not retiring '{collection}': confirm, or pass --yes")
        res = RetireResult(collection, False)
        if snapshot:
            out = Path(snapshot)
            out.mkdir(parents=True, exist_ok=True)
            f = _archive_embedded(tgt, collection, out) if tgt.kind == "embedded" else \
                _archive_server(tgt, collection, out)
            digest = write_sha256_sidecar(f)
            res.archive, res.sha256, res.archive_bytes = str(f), digest, f.stat().st_size
        tgt.delete_collection(collection)
        forget_state(state_dir, tgt.location, collection)
        res.deleted = True
        return res
    finally:
        if own:
            tgt.close()


def _archive_embedded(tgt: Target, collection: str, out: Path) -> Path:
    tgt.flush(collection)
    tgt.close()  # the shard is closed (and so consistent on disk) while it is archived
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    f = out / f"{collection}-{stamp}.tar"
    tmp = f.with_name(f.name + ".partial")
    with tarfile.open(tmp, "w") as tar:
        tar.add(Path(tgt.location) / collection, arcname=collection)
    tmp.replace(f)
    return f


def _archive_server(tgt: Target, collection: str, out: Path) -> Path:
    """A new snapshot of the collection, downloaded into ``out`` and checked against the server's sha256."""
    from cortex.snapshot import server_snapshot

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    info = server_snapshot.create(tgt, collection, output=out / f"{collection}-{stamp}.snapshot",
                                  api_key=getattr(tgt, "api_key", None))
    return Path(info.downloaded or "")
