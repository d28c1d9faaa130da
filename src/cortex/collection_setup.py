"""Creating the target collection from what the source declares, or checking an existing one matches;
payload indexes carried over after the load."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cortex.errors import ConflictError, CortexError, TargetError
from cortex.retry import RetryPolicy, with_retries
from cortex.sources.base import PAYLOAD_INDEX_KINDS, SourceInfo, parse_distance
from cortex.targets.base import Target


def vector_config(info: SourceInfo) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The (sparse, named) vectors a source declares in ``info.details`` (see ``SourceInfo``), normalized."""
    d = info.details or {}
    sparse = {str(k): {"modifier": "idf" if str((v or {}).get("modifier") or "").lower() == "idf" else None}
              for k, v in (d.get("sparse_vectors") or {}).items()}
    named = {str(k): {"size": int(v["size"]), "distance": parse_distance(v.get("distance") or "cosine",
                                                                          f"named vector '{k}'")}
             for k, v in (d.get("named_vectors") or {}).items()}
    return sparse, named


def prepare_collection(target: Target, collection: str, dim: int, distance: str, defer_indexing: bool,
                       dry_run: bool, before_create: Callable[[], None] | None = None, *,
                       sparse: dict[str, dict[str, Any]] | None = None,
                       named: dict[str, dict[str, Any]] | None = None, config: Any = None) -> bool:
    """Create the collection, or check an existing one matches. Returns True when created.

    ``sparse`` / ``named``: the extra vectors the source brings (:func:`vector_config`); an
    existing collection must hold each of them with the same size, distance and modifier.
    """
    info = target.collection_info(collection)
    if info is None:
        if not dry_run:
            if before_create is not None:
                before_create()
            try:
                if config is not None:  # migrate --config: the file's settings (vectors, HNSW, quantization, ...)
                    target.create_collection(collection, dim, distance, defer_indexing=defer_indexing,
                                             sparse=sparse or None, named=named or None,
                                             config=_with_vectors(config, sparse, named))
                elif sparse or named:
                    target.create_collection(collection, dim, distance, defer_indexing=defer_indexing,
                                             sparse=sparse or None, named=named or None)
                else:
                    target.create_collection(collection, dim, distance, defer_indexing=defer_indexing)
            except TargetError:
                if target.collection_info(collection) is None:
                    raise
                # created meanwhile by a concurrent writer (another partition): check it fits, as below
                prepare_collection(target, collection, dim, distance, defer_indexing, dry_run=True,
                                   sparse=sparse, named=named)
                return False
        return True
    where = f"collection '{collection}' at {target.location}"
    fix = "migrate into a new --target name, or delete the collection first"
    for name, want in sorted((named or {}).items()):
        have = info.named_vectors.get(name)
        if have is None:
            raise ConflictError(f"{where} has no named vector '{name}', which the source brings; {fix}")
        if have.get("size") != want["size"] or (have.get("distance") or want["distance"]) != want["distance"]:
            raise ConflictError(f"{where} holds named vector '{name}' as {have.get('size')}-dim "
                                f"{have.get('distance')}, the source as {want['size']}-dim {want['distance']}; {fix}")
    for name, want in sorted((sparse or {}).items()):
        have = info.sparse_vectors.get(name)
        if have is None:
            raise ConflictError(f"{where} has no sparse vector '{name}', which the source brings; {fix}")
        if have.get("modifier") != want.get("modifier"):
            raise ConflictError(f"{where} holds sparse vector '{name}' with modifier {have.get('modifier')}, the "
                                f"source with {want.get('modifier')}; {fix}")
    if info.dim is not None and info.dim != dim:
        raise ConflictError(
            f"collection '{collection}' at {target.location} holds {info.dim}-dim vectors but the source has "
            f"{dim}; migrate into a new --target name, or delete the collection first"
        )
    if info.distance is not None and info.distance != distance:
        raise ConflictError(
            f"collection '{collection}' at {target.location} uses {info.distance} distance but this "
            f"migration asks for {distance}; pass --distance {info.distance} or choose another --target"
        )
    return False


def _with_vectors(config: Any, sparse: dict[str, dict[str, Any]] | None,
                  named: dict[str, dict[str, Any]] | None) -> Any:
    """The config plus the extra vectors the source brings that it does not list."""
    from cortex.collection_config import SparseVectorParams, VectorParams

    add_named = {n: VectorParams(size=v["size"], distance=v["distance"]) for n, v in (named or {}).items()
                 if n not in config.named_vectors}
    add_sparse = {n: SparseVectorParams(modifier=v.get("modifier")) for n, v in (sparse or {}).items()
                  if n not in config.sparse_vectors}
    if not add_named and not add_sparse:
        return config
    return config.model_copy(update={"named_vectors": {**config.named_vectors, **add_named},
                                     "sparse_vectors": {**config.sparse_vectors, **add_sparse}})


def resolve_distance(info: SourceInfo, distance: str | None) -> str:
    """The distance to create the collection with: asked, else the source's, else cosine."""
    return parse_distance(distance) if distance else (info.distance or "cosine")


def create_payload_indexes(target: Target, collection: str, info: SourceInfo, policy: RetryPolicy,
                           warnings: list[str], config: Any = None) -> dict[str, str]:
    """Create on the target the payload indexes the source declares (``details["payload_indexes"]``).

    Fields already indexed with the same kind are left alone (a resumed run); kinds Qdrant
    has no index for are reported in ``warnings``.  Returns {field: kind} of the indexes in place.
    """
    wanted = dict((info.details or {}).get("payload_indexes") or {})
    tenant: set[str] = set()
    for fld, idx in (config.payload_indexes if config is not None else {}).items():  # migrate --config
        wanted[fld] = idx.type
        if idx.is_tenant:
            tenant.add(fld)
    if not wanted:
        return {}
    current = target.collection_info(collection)
    have = current.payload_indexes if current is not None else {}
    done: dict[str, str] = {}
    for fld, kind in wanted.items():
        kind = str(kind).lower()
        if kind not in PAYLOAD_INDEX_KINDS:
            warnings.append(f"payload index on '{fld}' ({kind}) not created: Cortex creates "
                            f"{', '.join(PAYLOAD_INDEX_KINDS)} indexes")
            continue
        if have.get(fld) != kind:
            def make(f: str = fld, k: str = kind) -> None:
                try:
                    if f in tenant:
                        target.create_payload_index(collection, f, k, is_tenant=True)
                    else:
                        target.create_payload_index(collection, f, k)
                except CortexError:
                    raise
                except Exception as e:
                    raise TargetError(f"creating the {k} payload index on '{f}' of '{collection}' at "
                                      f"{target.location} failed: {type(e).__name__}: {e}") from e

            with_retries(make, policy, what=f"payload index on '{fld}'")
        done[fld] = kind
    return done

