"""``cortex qdrant setup --config collections.yaml``: make the target's collections what the file says.

For each collection of the file (:mod:`cortex.collection_config`): create it when missing; else compare
the settings the file names with what the target holds and apply the difference in place where Qdrant
can (HNSW, quantization, optimizers, on-disk flags, replication, payload indexes, aliases), or refuse
(vector size, distance, datatype, multivector, named vectors, shard number, sharding method): those
need a new collection, a migration into it and ``cortex qdrant cutover``.  Nothing is changed when
anything is refused.  A second run reports "no changes".  Settings the file leaves out are left as
they are; so are payload indexes and aliases the file does not list.

Embedded (Qdrant Edge): one shard per collection and no aliases, so sharding, replication and aliases
are reported as ignored (:func:`cortex.collection_config.edge_ignored`), as is ``is_tenant``.
qdrant-client's local mode (``--url local:PATH``, tests) keeps vectors and aliases only: its other
settings are reported as ignored too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from cortex.collection_config import CollectionConfig, ConfigFile, client_create_kwargs, edge_config, edge_ignored
from cortex.errors import TargetError
from cortex.targets.base import Target

#: settings a collection keeps for life: changing one needs a new collection (then `cutover`)
FIXED = ("vectors.size", "vectors.distance", "vectors.datatype", "vectors.multivector", "named_vectors",
         "sparse_vectors+", "shard_number", "sharding_method")
#: what qdrant-client's local mode does not keep (it answers with defaults or nothing)
LOCAL_IGNORED = ("hnsw", "quantization", "optimizers", "payload_indexes", "on_disk_payload", "shard_number",
                 "replication_factor", "write_consistency_factor", "sharding_method", "shard_keys", "vectors.on_disk",
                 "vectors.datatype", "sparse_vectors")
_COMPARED = ("vectors", "named_vectors", "sparse_vectors", "hnsw", "quantization", "optimizers", "on_disk_payload",
             "shard_number", "replication_factor", "write_consistency_factor", "sharding_method", "payload_indexes")
_HNSW_DEFAULT = {"m": 16, "ef_construct": 100, "full_scan_threshold": 10_000}


@dataclass
class Change:
    setting: str  # dotted path in the file, e.g. "hnsw.m", "payload_indexes.lang", "aliases"
    old: Any
    new: Any
    fixed: bool = False  # cannot be changed in place

    def line(self) -> str:
        if self.old is None:
            return f"  + {self.setting}: {_show(self.new)}"
        mark = "!" if self.fixed else "~"
        return f"  {mark} {self.setting}: {_show(self.old)} -> {_show(self.new)}"


@dataclass
class CollectionPlan:
    name: str
    action: str  # create | update | unchanged | refused
    changes: list[Change] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # settings the target cannot keep
    fix: str | None = None  # for refused


@dataclass
class SetupReport:
    target: str
    config: str
    dry_run: bool
    applied: bool = False
    collections: list[CollectionPlan] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(c.action in ("create", "update") for c in self.collections)

    @property
    def refused(self) -> list[CollectionPlan]:
        return [c for c in self.collections if c.action == "refused"]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["changed"] = self.changed
        return d

    def lines(self) -> list[str]:
        out = []
        for c in self.collections:
            if c.action == "unchanged":
                out.append(f"{c.name}: no changes")
                continue
            verb = {"create": "create", "update": "update in place", "refused": "REFUSED"}[c.action]
            out.append(f"{c.name}: {verb}")
            out += [ch.line() for ch in c.changes]
            if c.fix:
                out.append(f"  fix: {c.fix}")
        for c in self.collections:
            if c.ignored:
                out.append(f"{c.name}: kept in the file but ignored by this target: {', '.join(c.ignored)}")
        return out


def _show(v: Any) -> str:
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_show(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(map(_show, v)) + "]"
    return "-" if v is None else str(v).lower() if isinstance(v, bool) else str(v)


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted settings; a quantization method and a payload index stay one value each."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and k != "quantization" and not prefix.startswith("payload_indexes"):
            out.update(_flat(v, key + "."))
        elif v is not None:
            out[key] = v
    return out


def _same(v: Any) -> Any:
    """``v`` for comparing: floats to 6 significant digits (gRPC carries quantile, thresholds as float32)."""
    if isinstance(v, float):
        return float(f"{v:.6g}")
    if isinstance(v, dict):
        return {k: _same(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_same(x) for x in v]
    return v


def _is_fixed(path: str, old: Any) -> bool:
    if path.startswith("named_vectors."):
        return not path.endswith(".on_disk") or old is None
    if path.startswith("sparse_vectors.") and old is None:
        return True  # a new sparse vector (Qdrant Edge could add one; a server cannot)
    return path in FIXED


def _ignored_prefixes(target: Target, c: CollectionConfig) -> list[str]:
    if target.kind == "embedded":
        out = [s.split(" ")[0] for s in edge_ignored(c)]
        if _alias_support(target):  # Cortex keeps embedded aliases beside the shards (cutover)
            out = [x for x in out if x != "aliases"]
        out += [f"payload_indexes.{f}.is_tenant" for f, i in c.payload_indexes.items() if i.is_tenant]
        out += [f"payload_indexes.{f}.is_principal" for f, i in c.payload_indexes.items() if i.is_principal]
        return out
    if getattr(target, "local", False):
        return [k for k in LOCAL_IGNORED if _has(c, k)]
    return []


def _has(c: CollectionConfig, path: str) -> bool:
    d = c.model_dump(exclude_none=True, exclude_defaults=True)
    for part in path.split("."):
        if not isinstance(d, dict) or part not in d:
            return False
        d = d[part]
    return d not in (None, [], {})


def _under(path: str, prefixes: list[str]) -> bool:
    return any(path == p or path.startswith(p + ".") for p in prefixes)


def plan(target: Target, c: CollectionConfig) -> CollectionPlan:
    """What applying ``c`` to ``target`` would do."""
    ignored = _ignored_prefixes(target, c)
    want = {k: v for k, v in c.model_dump(mode="json", exclude_none=True).items() if k in _COMPARED}
    for fld, idx in (want.get("payload_indexes") or {}).items():
        for flag in ("is_tenant", "is_principal"):
            if _under(f"payload_indexes.{fld}.{flag}", ignored):
                idx.pop(flag, None)
    if c.shard_keys and not _under("shard_keys", ignored):
        want["shard_keys"] = c.shard_keys
    use_aliases = bool(c.aliases) and not _under("aliases", ignored)
    have = current(target, c.name)
    moved: dict[str, str] = {}  # aliases of the file that serve another collection now
    if use_aliases:
        amap = list_aliases(target)
        moved = {a: amap[a] for a in c.aliases if amap.get(a) not in (None, c.name)}
        want["aliases"] = [a for a in c.aliases if a not in moved]
        if have is not None:
            have["aliases"] = [a for a in c.aliases if amap.get(a) == c.name]
    changes: list[Change] = []
    if have is None:
        changes = [Change(k, None, v) for k, v in _flat(want).items() if not _under(k, ignored) and v != []]
        if not moved:
            return CollectionPlan(c.name, "create", changes, ignored)
    w, h = (_flat(want), _flat(have)) if have is not None else ({}, {})
    for k, v in w.items():
        if _under(k, ignored):
            continue
        old = h.get(k)
        if k == "aliases":
            missing = [a for a in v if a not in (old or [])]
            if missing:
                changes.append(Change("aliases", None, missing))
            continue
        if k == "shard_keys":
            missing = [s for s in v if s not in (old or [])]
            if missing:
                changes.append(Change("shard_keys", None, missing))
            continue
        if isinstance(old, dict) and isinstance(v, dict) and (k == "quantization" or k.startswith("payload_ind")):
            # only what the file names: the target reports its defaults too
            if k == "quantization":
                old = {m: {p: x for p, x in (old.get(m) or {}).items() if p in (v.get(m) or {})} for m in old}
            else:
                old = {p: x for p, x in old.items() if p in v}
        if _same(old) != _same(v):
            changes.append(Change(k, old, v, fixed=_is_fixed(k, old)))
    for a, other in moved.items():
        changes.append(Change(f"aliases.{a}", other, c.name, fixed=True))
    if any(ch.fixed for ch in changes):
        fixed = ", ".join(ch.setting for ch in changes if ch.fixed and not ch.setting.startswith("aliases."))
        fixes = []
        if fixed:
            fixes.append(f"Qdrant cannot change {fixed} of an existing collection: add a new collection to the file "
                         f"(e.g. {c.name}_v2) with these settings, run setup, migrate into it, verify, then switch "
                         "readers with `cortex qdrant cutover`")
        for a, other in moved.items():
            fixes.append(f"alias '{a}' serves collection '{other}': moving it is a cutover, run `cortex qdrant "
                         f"cutover` (setup never moves live traffic)")
        return CollectionPlan(c.name, "refused", changes, ignored, "; ".join(fixes))
    return CollectionPlan(c.name, "update" if changes else "unchanged", changes, ignored)


def current(target: Target, name: str) -> dict[str, Any] | None:
    """The collection's settings in the file's shape (None when it does not exist); aliases: :func:`list_aliases`."""
    if target.kind == "embedded":
        return _current_edge(target, name)
    return _current_server(target, name)


def _own(target: Target, method: str) -> bool:
    """Whether the target's class implements ``method`` itself (aliases came with `cortex qdrant cutover`)."""
    impl = getattr(type(target), method, None)
    return impl is not None and impl is not getattr(Target, method, None)


def _alias_support(target: Target) -> bool:
    """Whether the target keeps aliases: a server always; embedded when Cortex keeps them beside the shards."""
    return target.kind != "embedded" or _own(target, "switch_aliases")


def list_aliases(target: Target) -> dict[str, str]:
    """``{alias: collection}`` on the target."""
    if _own(target, "list_aliases"):
        return dict(target.list_aliases())  # type: ignore[attr-defined]
    res = _server_call(target, "list aliases", target.client.get_aliases)  # type: ignore[attr-defined]
    return {a.alias_name: a.collection_name for a in res.aliases}


def add_aliases(target: Target, aliases: list[str], name: str) -> None:
    if _own(target, "switch_aliases"):
        target.switch_aliases(dict.fromkeys(aliases, name))  # type: ignore[attr-defined]
        return
    from qdrant_client import models as m

    ops = [m.CreateAliasOperation(create_alias=m.CreateAlias(collection_name=name, alias_name=a)) for a in aliases]
    _server_call(target, "create aliases", lambda: target.client.update_collection_aliases(  # type: ignore
        change_aliases_operations=ops))


def _current_edge(target: Any, name: str) -> dict[str, Any] | None:
    cfg = target._config_json(name)
    if cfg is None:
        return None
    vectors = dict(cfg.get("vectors") or {})

    def vec(v: dict[str, Any]) -> dict[str, Any]:
        out = {"size": v.get("size"), "distance": (v.get("distance") or "").lower()}
        if v.get("datatype"):
            out["datatype"] = str(v["datatype"]).lower()
        if v.get("on_disk") is not None:
            out["on_disk"] = v["on_disk"]
        if v.get("multivector_config"):
            out["multivector"] = "max_sim"
        return out

    main = vectors.pop("", {})
    hnsw = {**_HNSW_DEFAULT, **{k: v for k, v in (cfg.get("hnsw_config") or {}).items() if v is not None}}
    quant = cfg.get("quantization_config") or None
    shard = target._open(name)
    schema = {k: {"type": str(v.data_type).split(".")[-1].lower()} for k, v in shard.info().payload_schema.items()}
    return {
        "vectors": vec(main), "named_vectors": {n: vec(v) for n, v in vectors.items()},
        "sparse_vectors": {n: {k: x for k, x in (v or {}).items() if x is not None and k in ("modifier", "on_disk")}
                           for n, v in (cfg.get("sparse_vectors") or {}).items()},
        "hnsw": hnsw, "quantization": quant,
        "optimizers": {k: v for k, v in (cfg.get("optimizers") or {}).items() if v is not None},
        "on_disk_payload": cfg.get("on_disk_payload"),
        "payload_indexes": schema,
    }


def _dump(model: Any) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_none=True) if model is not None else {}


def _server_call(target: Any, what: str, fn: Any) -> Any:
    from cortex.targets.server import translate

    try:
        return fn()
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:
        raise translate(e, f"{target.location}: {what}") from e


def _current_server(target: Any, name: str) -> dict[str, Any] | None:
    client = target.client
    if not _server_call(target, "collection exists", lambda: client.collection_exists(name)):
        return None
    info = _server_call(target, f"get collection '{name}'", lambda: client.get_collection(name))
    p = info.config.params

    def vec(v: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"size": v.size, "distance": str(v.distance.value).lower()}
        if v.datatype is not None:
            out["datatype"] = str(getattr(v.datatype, "value", v.datatype)).lower()
        if v.on_disk is not None:
            out["on_disk"] = v.on_disk
        if v.multivector_config is not None:
            out["multivector"] = "max_sim"
        return out

    vectors = p.vectors if isinstance(p.vectors, dict) else {"": p.vectors}
    q = info.config.quantization_config
    quant = None
    if q is not None:
        for kind in ("scalar", "product", "binary"):
            if getattr(q, kind, None) is not None:
                quant = {kind: _dump(getattr(q, kind))}
    schema = {}
    for f, idx in (info.payload_schema or {}).items():
        entry: dict[str, Any] = {"type": str(getattr(idx.data_type, "value", idx.data_type)).lower()}
        for flag in ("is_tenant", "is_principal"):
            if getattr(idx.params, flag, None) is not None:
                entry[flag] = getattr(idx.params, flag)
        schema[f] = entry
    out: dict[str, Any] = {
        "vectors": vec(vectors[""]) if "" in vectors and vectors[""] is not None else {},
        "named_vectors": {n: vec(v) for n, v in vectors.items() if n != ""},
        "sparse_vectors": {n: {k: x for k, x in {"modifier": str(getattr(s.modifier, "value", s.modifier)).lower()
                                                 if s.modifier not in (None, "none") else None,
                                                 "on_disk": s.index.on_disk if s.index else None}.items()
                               if x is not None and x != "none"}
                           for n, s in (p.sparse_vectors or {}).items()},
        "hnsw": _dump(info.config.hnsw_config), "quantization": quant,
        "optimizers": _dump(info.config.optimizer_config),
        "on_disk_payload": p.on_disk_payload, "shard_number": p.shard_number,
        "replication_factor": p.replication_factor, "write_consistency_factor": p.write_consistency_factor,
        "sharding_method": str(getattr(p.sharding_method, "value", p.sharding_method)).lower()
        if p.sharding_method is not None else None,
        "payload_indexes": schema,
    }
    return out


# -- applying ------------------------------------------------------------------------------------
def apply(target: Target, c: CollectionConfig, p: CollectionPlan) -> None:
    if p.action not in ("create", "update"):
        return
    if target.kind == "embedded":
        _apply_edge(target, c, p)
    else:
        _apply_server(target, c, p)
    new_aliases = next((ch.new for ch in p.changes if ch.setting == "aliases"), None)
    if new_aliases:
        add_aliases(target, new_aliases, c.name)


def _apply_edge(target: Any, c: CollectionConfig, p: CollectionPlan) -> None:
    import qdrant_edge as q

    if p.action == "create":
        target.create_with_config(c.name, edge_config(c))
    elif any(not ch.setting.startswith("payload_indexes.") for ch in p.changes):
        target.reconfigure(c.name, edge_config(c))  # Qdrant Edge applies HNSW/quantization/optimizers on load
    shard = target._open(c.name)
    have = {k: str(v.data_type).split(".")[-1].lower() for k, v in shard.info().payload_schema.items()}
    for fld, idx in c.payload_indexes.items():
        if have.get(fld) == idx.type:
            continue
        if fld in have:
            shard.update(q.UpdateOperation.delete_field_index(fld))
        shard.update(q.UpdateOperation.create_field_index(fld, getattr(q.PayloadSchemaType, idx.type.capitalize())))
    shard.flush()


def _index_schema(idx: Any) -> Any:
    from qdrant_client import models as m

    flags = {k: v for k, v in (("is_tenant", idx.is_tenant), ("is_principal", idx.is_principal)) if v is not None}
    if not flags:
        return m.PayloadSchemaType(idx.type)
    params = {"keyword": m.KeywordIndexParams, "uuid": m.UuidIndexParams, "integer": m.IntegerIndexParams,
              "float": m.FloatIndexParams, "datetime": m.DatetimeIndexParams}[idx.type]
    return params(type=idx.type, **flags)


def _apply_server(target: Any, c: CollectionConfig, p: CollectionPlan) -> None:
    from qdrant_client import models as m

    client = target.client
    changed = {ch.setting.split(".")[0] for ch in p.changes}
    ignored = p.ignored
    if p.action == "create":
        kw = client_create_kwargs(c)
        for k in list(kw):
            if k != "collection_name" and _under(k.replace("_config", ""), ignored):
                kw.pop(k)
        _server_call(target, f"create collection '{c.name}'", lambda: client.create_collection(**kw))
    else:
        kw = client_create_kwargs(c)
        upd: dict[str, Any] = {}
        if "hnsw" in changed:
            upd["hnsw_config"] = kw["hnsw_config"]
        if "optimizers" in changed:
            upd["optimizers_config"] = kw["optimizers_config"]
        if "quantization" in changed:
            upd["quantization_config"] = kw["quantization_config"]
        params = {k: getattr(c, k) for k in ("on_disk_payload", "replication_factor", "write_consistency_factor")
                  if k in changed}
        if params:
            upd["collection_params"] = m.CollectionParamsDiff(**params)
        on_disk = {n: v.on_disk for n, v in [("", c.vectors), *c.named_vectors.items()] if v.on_disk is not None}
        if any(ch.setting.endswith(".on_disk") and ch.setting.startswith(("vectors.", "named_vectors."))
               for ch in p.changes):
            upd["vectors_config"] = {n: m.VectorParamsDiff(on_disk=v) for n, v in on_disk.items()}
        if "sparse_vectors" in changed:
            upd["sparse_vectors_config"] = kw["sparse_vectors_config"]
        if upd:
            _server_call(target, f"update collection '{c.name}'", lambda: client.update_collection(c.name, **upd))
    for ch in p.changes:
        if ch.setting == "shard_keys":
            for key in ch.new:
                _server_call(target, f"create shard key '{key}'", lambda k=key: client.create_shard_key(c.name, k))
    if not _under("payload_indexes", ignored):
        have = (current(target, c.name) or {}).get("payload_indexes", {}) if p.action == "update" else {}
        for fld, idx in c.payload_indexes.items():
            want = idx.model_dump(exclude_none=True)
            if have.get(fld) == want:
                continue
            if fld in have:
                _server_call(target, f"drop payload index '{fld}'",
                             lambda f=fld: client.delete_payload_index(c.name, f, wait=True))
            _server_call(target, f"index payload field '{fld}'", lambda f=fld, i=idx: client.create_payload_index(
                c.name, field_name=f, field_schema=_index_schema(i), wait=True))


def setup(cfg: ConfigFile, target: Target, *, dry_run: bool = False, config_path: str = "config") -> SetupReport:
    """Plan every collection of ``cfg``; unless ``dry_run`` or something is refused, apply the plans."""
    report = SetupReport(target=target.location, config=config_path, dry_run=dry_run)
    report.collections = [plan(target, c) for c in cfg.collections]
    if report.refused or dry_run:
        return report
    for c, p in zip(cfg.collections, report.collections, strict=True):
        try:
            apply(target, c, p)
        except TargetError as e:
            raise type(e)(f"{e} (collection '{c.name}'; earlier collections of the file are set up: fix and re-run "
                          "setup, it applies only what still differs)") from e
    report.applied = True
    return report


def setup_collections(config: str, *, dry_run: bool = False, target: Target | None = None, path: str | None = None,
                      url: str | None = None, api_key: str | None = None, prefer_grpc: bool = True,
                      grpc_port: int = 6334) -> SetupReport:
    """``cortex qdrant setup``: create or update every collection of the file ``config`` on the target."""
    from cortex.collection_config import load_config
    from cortex.targets import open_target

    cfg = load_config(config)
    own = target is None
    tgt = target or open_target(path=path, url=url, api_key=api_key, prefer_grpc=prefer_grpc, grpc_port=grpc_port)
    try:
        return setup(cfg, tgt, dry_run=dry_run, config_path=str(config))
    finally:
        if own:
            tgt.close()
