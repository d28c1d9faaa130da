"""Qdrant's protobuf messages and gRPC stubs, as qdrant-client ships them (``qdrant_client.grpc``).

Loaded straight from qdrant-client's ``grpc`` directory without importing ``qdrant_client`` itself
(its REST models take seconds to import), so the server starts fast.  In a process that already
imported ``qdrant_client.grpc`` that module is used (protobuf files can be registered only once).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any


def _load() -> ModuleType:
    if "qdrant_client.grpc" in sys.modules:
        return sys.modules["qdrant_client.grpc"]
    name = "_qdrant_client_grpc"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec("qdrant_client")  # finds the package without running its __init__
    assert spec is not None and spec.submodule_search_locations, "qdrant-client is not installed"
    path = Path(next(iter(spec.submodule_search_locations))) / "grpc"
    pkg = importlib.util.spec_from_file_location(name, path / "__init__.py", submodule_search_locations=[str(path)])
    assert pkg is not None and pkg.loader is not None
    module = importlib.util.module_from_spec(pkg)
    sys.modules[name] = module
    pkg.loader.exec_module(module)
    return module


g: Any = _load()


def to_value(v: Any) -> Any:
    """A JSON value as a protobuf ``Value`` (as qdrant-client's ``json_to_value``)."""
    if v is None:
        return g.Value(null_value=g.NullValue.NULL_VALUE)
    if isinstance(v, bool):
        return g.Value(bool_value=v)
    if isinstance(v, int):
        return g.Value(integer_value=v)
    if isinstance(v, float):
        return g.Value(double_value=v)
    if isinstance(v, str):
        return g.Value(string_value=v)
    if isinstance(v, dict):
        return g.Value(struct_value=g.Struct(fields={k: to_value(x) for k, x in v.items()}))
    if isinstance(v, (list, tuple)):
        return g.Value(list_value=g.ListValue(values=[to_value(x) for x in v]))
    raise TypeError(f"payload value of type {type(v).__name__} is not JSON")


def from_value(v: Any) -> Any:
    kind = v.WhichOneof("kind")
    if kind == "struct_value":
        return {k: from_value(x) for k, x in v.struct_value.fields.items()}
    if kind == "list_value":
        return [from_value(x) for x in v.list_value.values]
    if kind == "null_value" or kind is None:
        return None
    return getattr(v, kind)


def payload_to_grpc(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: to_value(v) for k, v in payload.items()}


def grpc_to_payload(fields: Any) -> dict[str, Any]:
    return {k: from_value(v) for k, v in fields.items()}
