"""The server's storage: one Qdrant Edge shard per collection, aliases, snapshots, under one directory.

Layout of ``--storage DIR``::

    DIR/collections/<name>/collection.json   the reported CollectionConfig (protobuf JSON) + created_at
    DIR/collections/<name>/shard/            the Edge shard (WAL, segments)
    DIR/aliases.json                         {alias: collection}
    DIR/snapshots/<name>/<snapshot>          tar archives of a flushed shard directory

A collection exists once its ``collection.json`` is written (a directory without one is a
create that died half-way and is removed at start).  Every collection has its own lock: calls
on one collection run one at a time, calls on different collections in parallel.  Structural
changes (create, delete, aliases) take the store lock; aliases are resolved on every call.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import qdrant_edge as q
from google.protobuf import json_format

from .config import apply_update, collection_config, edge_config
from .convert import BadRequest, NotFound, RpcFail
from .protos import g

_BAD_NAME = re.compile(r'[<>:"/\\|?*\x00]')


def check_name(name: str, what: str = "collection") -> None:
    if not name or len(name) > 255 or _BAD_NAME.search(name) or name in (".", ".."):
        raise BadRequest(f"Validation error in JSON body: [{what}_name: {what} name {name!r} is invalid: "
                         "1-255 characters, none of <>:\"/\\|?*]")


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def edge_error(e: BaseException) -> RpcFail:
    """An exception of the Edge binding as the status a server gives for it."""
    msg = str(e)
    if "not found" in msg.lower():
        return NotFound(f"Not found: {msg}")
    return BadRequest(msg if msg.startswith("Wrong input") else f"Wrong input: {msg}")


ShardKey = tuple[str, Any]  # ("keyword", "eu") | ("number", 7)


def shard_key(k: g.ShardKey) -> ShardKey:
    kind = k.WhichOneof("key")
    if kind is None:
        raise BadRequest("Wrong input: empty shard key")
    return kind, getattr(k, kind)


def shard_key_out(k: ShardKey) -> g.ShardKey:
    return g.ShardKey(**{k[0]: k[1]})


def _key_dir(k: ShardKey) -> str:
    return f"{k[0]}-{str(k[1]).encode().hex()}"


class Collection:
    """One collection: its config, its shards and the lock that serializes calls on it.

    Auto sharding: one Edge shard (``shard/``).  Custom sharding: one Edge shard per shard key
    (``shards/<key>/``), created by CreateShardKey; writes name their shard keys, reads without a
    selector see every shard.
    """

    def __init__(self, name: str, path: Path, config: g.CollectionConfig, created_at: str,
                 keys: list[ShardKey] | None = None) -> None:
        self.name, self.path, self.config, self.created_at = name, path, config, created_at
        self.custom = config.params.sharding_method == g.ShardingMethod.Custom
        self.lock = threading.RLock()
        self.deleted = False
        self.shards: dict[ShardKey | None, Any] = {}
        if not self.custom:
            self.shards[None] = self._open(None)
        for k in keys or []:
            self.shards[k] = self._open(k)

    def _shard_path(self, key: ShardKey | None) -> Path:
        return self.path / "shard" if key is None else self.path / "shards" / _key_dir(key)

    def _open(self, key: ShardKey | None, config: g.CollectionConfig | None = None) -> Any:
        d = self._shard_path(key)
        cfg = edge_config(config or self.config)
        return q.EdgeShard.load(str(d), cfg) if d.exists() else q.EdgeShard.create(str(d), cfg)

    @contextmanager
    def use(self, selector: g.ShardKeySelector | None = None, write: bool = False) -> Iterator[list[Any]]:
        """The shards a call addresses, held under the collection lock (NOT_FOUND once deleted).

        No selector: every shard, but ``write`` (an upsert) into a custom-sharded collection must name its keys."""
        with self.lock:
            if self.deleted:
                raise NotFound(f"Not found: Collection `{self.name}` doesn't exist!")
            try:
                yield self._select(selector, write)
            except RpcFail:
                raise
            except Exception as e:  # the binding raises bare Exceptions for bad input
                raise edge_error(e) from e

    def _select(self, selector: g.ShardKeySelector | None, write: bool) -> list[Any]:
        if not self.custom:
            if selector is not None and selector.shard_keys:
                raise BadRequest("Wrong input: Shard key selector is not allowed for a collection with auto sharding")
            return [self.shards[None]]
        if selector is None or not selector.shard_keys:
            if write:
                raise BadRequest("Wrong input: Shard key not specified: this collection uses custom sharding")
            return list(self.shards.values())
        out = []
        for k in selector.shard_keys:
            key = shard_key(k)
            if key not in self.shards:
                raise NotFound(f"Not found: Shard key {key[1]} not found in collection {self.name}")
            out.append(self.shards[key])
        return out

    def save(self) -> None:
        keys = [{k[0]: k[1]} for k in self.shards if k is not None]
        _write_json(self.path / "collection.json", {
            "config": json_format.MessageToDict(self.config), "created_at": self.created_at, "shard_keys": keys})

    def reconfigure(self, req: g.UpdateCollection) -> None:
        """Apply an update: reopen the shards with the new config, then run the optimizers (synchronously)."""
        with self.use():
            new = apply_update(self.config, req)
            edge_config(new)
            for key, shard in list(self.shards.items()):
                shard.close()
                try:
                    self.shards[key] = self._open(key, new)
                except Exception as e:
                    self.shards[key] = self._open(key)
                    raise BadRequest(f"Wrong input: Qdrant Edge cannot apply this update: {e}") from e
            self.config = new
            self.save()
            for shard in self.shards.values():
                shard.optimize()

    def create_shard_key(self, key: ShardKey) -> bool:
        with self.use():
            if not self.custom:
                raise BadRequest(f"Wrong input: collection {self.name} does not use custom sharding")
            if key in self.shards:
                raise RpcFail(f"Wrong input: Shard key {key[1]} already exists", "ALREADY_EXISTS")
            shard = self._open(key)
            others = [s for k, s in self.shards.items() if k is not None]
            if others:  # a new shard gets the payload indexes the others have
                for field, idx in others[0].info().payload_schema.items():
                    shard.update(q.UpdateOperation.create_field_index(field, idx.data_type))
            self.shards[key] = shard
            self.save()
            return True

    def delete_shard_key(self, key: ShardKey) -> bool:
        with self.use():
            shard = self.shards.pop(key, None)
            if shard is None:
                raise NotFound(f"Not found: Shard key {key[1]} not found in collection {self.name}")
            shard.close()
            self.save()
            shutil.rmtree(self._shard_path(key), ignore_errors=True)
            return True

    def flush(self) -> None:
        for shard in self.shards.values():
            shard.flush()

    def close(self) -> None:
        with self.lock:
            self.deleted = True
            for shard in self.shards.values():
                shard.close()


class Store:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        (self.root / "collections").mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.collections: dict[str, Collection] = {}
        self.aliases: dict[str, str] = {}
        for d in sorted((self.root / "collections").iterdir()):
            meta = d / "collection.json"
            if not meta.exists():
                shutil.rmtree(d, ignore_errors=True)
                continue
            data = json.loads(meta.read_text())
            cfg = json_format.ParseDict(data["config"], g.CollectionConfig())
            keys = [next(iter(k.items())) for k in data.get("shard_keys", [])]
            self.collections[d.name] = Collection(d.name, d, cfg, data["created_at"], keys)
        alias_file = self.root / "aliases.json"
        if alias_file.exists():
            self.aliases = {a: c for a, c in json.loads(alias_file.read_text()).items() if c in self.collections}

    def close(self) -> None:
        with self.lock:
            for c in self.collections.values():
                c.close()
            self.collections.clear()

    # -- collections -----------------------------------------------------------------------------
    def get(self, name: str) -> Collection:
        with self.lock:
            c = self.collections.get(self.aliases.get(name, name))
        if c is None:
            raise NotFound(f"Not found: Collection `{name}` doesn't exist!")
        return c

    def exists(self, name: str) -> bool:
        with self.lock:
            return self.aliases.get(name, name) in self.collections

    def names(self) -> list[str]:
        with self.lock:
            return sorted(self.collections)

    def create(self, req: g.CreateCollection) -> None:
        name = req.collection_name
        check_name(name)
        cfg = collection_config(req)
        with self.lock:
            if name in self.collections:
                raise RpcFail(f"Wrong input: Collection `{name}` already exists!", "ALREADY_EXISTS")
            if name in self.aliases:
                raise RpcFail(f"Wrong input: Alias `{name}` already exists!", "ALREADY_EXISTS")
            d = self.root / "collections" / name
            if d.exists():
                shutil.rmtree(d)
            d.mkdir(parents=True)
            try:
                c = Collection(name, d, cfg, datetime.now(UTC).isoformat())
            except Exception as e:
                shutil.rmtree(d, ignore_errors=True)
                raise BadRequest(f"Wrong input: {e}") from e
            c.save()
            self.collections[name] = c

    def delete(self, name: str) -> bool:
        with self.lock:
            c = self.collections.pop(name, None)
            if c is None:
                return False
            dropped = [a for a, target in self.aliases.items() if target == name]
            for a in dropped:
                del self.aliases[a]
            if dropped:
                self._save_aliases()
            trash = self.root / f".deleted-{uuid.uuid4().hex}"
            c.close()  # waits for the call in progress on it
            os.replace(c.path, trash)
        shutil.rmtree(trash, ignore_errors=True)
        shutil.rmtree(self.root / "snapshots" / name, ignore_errors=True)
        return True

    # -- aliases ---------------------------------------------------------------------------------
    def _save_aliases(self) -> None:
        _write_json(self.root / "aliases.json", self.aliases)

    def update_aliases(self, actions: list[g.AliasOperations]) -> None:
        """All actions or none (checked on a copy, then swapped in under the store lock)."""
        with self.lock:
            new = dict(self.aliases)
            for op in actions:
                kind = op.WhichOneof("action")
                if kind == "create_alias":
                    a, coll = op.create_alias.alias_name, op.create_alias.collection_name
                    check_name(a, "alias")
                    if coll not in self.collections:
                        raise NotFound(f"Not found: Collection `{coll}` doesn't exist!")
                    if a in self.collections:
                        raise RpcFail(f"Wrong input: Collection `{a}` already exists!", "ALREADY_EXISTS")
                    new[a] = coll
                elif kind == "delete_alias":
                    a = op.delete_alias.alias_name
                    if a not in new:
                        raise NotFound(f"Not found: Alias {a} does not exist!")
                    del new[a]
                elif kind == "rename_alias":
                    old, a = op.rename_alias.old_alias_name, op.rename_alias.new_alias_name
                    check_name(a, "alias")
                    if old not in new:
                        raise NotFound(f"Not found: Alias {old} does not exist!")
                    if a in self.collections:
                        raise RpcFail(f"Wrong input: Collection `{a}` already exists!", "ALREADY_EXISTS")
                    new[a] = new.pop(old)
                else:
                    raise BadRequest("Wrong input: empty alias operation")
            self.aliases = new
            self._save_aliases()

    def list_aliases(self, collection: str | None = None) -> list[tuple[str, str]]:
        with self.lock:
            if collection is not None and collection not in self.collections:
                raise NotFound(f"Not found: Collection `{collection}` doesn't exist!")
            return sorted((a, c) for a, c in self.aliases.items() if collection is None or c == collection)

    # -- snapshots -------------------------------------------------------------------------------
    def _snapshot_dir(self, c: Collection) -> Path:
        return self.root / "snapshots" / c.name

    def create_snapshot(self, name: str) -> g.SnapshotDescription:
        c = self.get(name)
        d = self._snapshot_dir(c)
        d.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC)
        snap = d / f"{c.name}-{stamp.strftime('%Y-%m-%d-%H-%M-%S')}-{uuid.uuid4().hex[:8]}.snapshot"
        with c.use():
            c.flush()
            tmp = snap.with_name(f".{snap.name}.tmp")
            with tarfile.open(tmp, "w") as tar:
                for part in ("shard", "shards", "collection.json"):
                    if (c.path / part).exists():
                        tar.add(c.path / part, arcname=part)
            os.replace(tmp, snap)
        return self._describe(snap)

    def list_snapshots(self, name: str) -> list[g.SnapshotDescription]:
        d = self._snapshot_dir(self.get(name))
        return [self._describe(f) for f in sorted(d.glob("*.snapshot"))] if d.is_dir() else []

    def delete_snapshot(self, name: str, snapshot: str) -> None:
        f = self._snapshot_dir(self.get(name)) / snapshot
        if "/" in snapshot or not f.is_file():
            raise NotFound(f"Not found: Snapshot {snapshot} not found")
        f.unlink()

    @staticmethod
    def _describe(f: Path) -> g.SnapshotDescription:
        h = hashlib.sha256()
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        st = f.stat()
        desc = g.SnapshotDescription(name=f.name, size=st.st_size, checksum=h.hexdigest())
        desc.creation_time.FromSeconds(int(st.st_mtime))
        return desc


def now() -> float:
    return time.perf_counter()
