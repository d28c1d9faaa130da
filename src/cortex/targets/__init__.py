"""Targets: where collections are written. ``open_target`` picks embedded or server."""

from __future__ import annotations

import os

from cortex.targets.base import CollectionInfo, StoredPoint, Target

__all__ = ["CollectionInfo", "StoredPoint", "Target", "open_target"]

DEFAULT_PATH = "./qdrant_storage"


def open_target(path: str | None = None, url: str | None = None, api_key: str | None = None,
                prefer_grpc: bool = True, grpc_port: int = 6334) -> Target:
    """A server target when ``url`` (or ``QDRANT_URL``) is set, else embedded Qdrant Edge at ``path``."""
    url = url or os.environ.get("QDRANT_URL") or None
    if url:
        from cortex.targets.server import ServerTarget

        target = ServerTarget(url, api_key=api_key or os.environ.get("QDRANT_API_KEY") or None,
                              prefer_grpc=prefer_grpc, grpc_port=grpc_port)
        target.ping()
        return target
    from cortex.targets.edge import EdgeTarget

    return EdgeTarget(path or os.environ.get("QDRANT_PATH") or DEFAULT_PATH)
