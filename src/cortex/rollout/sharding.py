"""``--shard-key-field``: each unit's points go to a custom shard key of their own on a Qdrant server.

The collection is created with ``sharding_method: custom``, one shard key per unit (its value of the
field) is created before the unit runs, and every upsert of the unit carries that key
(``shard_key_selector``).  Searches and counts without a key span all shards, so verify, the router
and ``revert --delete`` (by filter) work unchanged.  qdrant-client's local mode and Qdrant Edge have
no sharding: there this option is refused with one line.
"""

from __future__ import annotations

from typing import Any

from cortex.errors import CortexError
from cortex.targets import Target


def require_sharding(tgt: Target) -> None:
    if tgt.kind != "server" or getattr(tgt, "local", False):
        where = "qdrant-client's local mode" if getattr(tgt, "local", False) else "the embedded target (Qdrant Edge)"
        raise CortexError(f"--shard-key-field needs a Qdrant server (custom sharding); {where} has no shards: "
                          "plan again without --shard-key-field, or use --url")


class ShardKeyTarget:
    """The target as one unit sees it: every upsert goes to ``key``'s shard; everything else is unchanged."""

    def __init__(self, inner: Target, key: str | int) -> None:
        self.inner, self.key = inner, key

    def upsert(self, name: str, ids: list[Any], vectors: Any, payloads: Any, **kw: Any) -> None:
        self.inner.upsert(name, ids, vectors, payloads, shard_key=self.key, **kw)  # type: ignore[call-arg]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
