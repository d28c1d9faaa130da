"""Using a config file (``plan --output``) elsewhere: ``migrate --config`` creates the collection from it;
``compare`` / ``benchmark`` ``--config`` search with its query-time parameters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cortex.collection_config import CollectionConfig, ConfigFile, SearchParams, load_config
from cortex.errors import CortexError


def config_for(config: str | Path | ConfigFile | CollectionConfig, collection: str | None) -> CollectionConfig:
    """The collection's settings from a config file: the one it lists, or the one named ``collection``."""
    if isinstance(config, CollectionConfig):
        return config
    cfg = config if isinstance(config, ConfigFile) else load_config(config)
    if len(cfg.collections) == 1:
        return cfg.collections[0]
    return cfg.collection(collection)


def check_fits(c: CollectionConfig, where: str, dim: int, distance: str | None) -> None:
    """The source must fit the config: same dimension; an explicitly asked distance must agree."""
    if c.vectors.size != dim:
        raise CortexError(f"{where}: vectors.size is {c.vectors.size} but the source's vectors have {dim} dimensions; "
                          "fix vectors.size or re-run `cortex qdrant plan` on this source")
    if distance and distance != c.vectors.distance:
        raise CortexError(f"{where}: vectors.distance is {c.vectors.distance} but --distance {distance} was given; "
                          "drop --distance or change the config")


class SearchParamsTarget:
    """A target whose searches use a config's query-time parameters (hnsw_ef, quantization rescore and
    oversampling) unless a call asks for exact search; everything else is the wrapped target's."""

    def __init__(self, target: Any, params: SearchParams) -> None:
        self._target = target
        self.params = params

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)

    def search(self, name: str, queries: Any, k: int, ef: int | None = None, exact: bool = False,
               filter: dict[str, Any] | None = None, params: Any = None) -> list[list[tuple[Any, float]]]:
        if exact:
            return self._target.search(name, queries, k, exact=True, filter=filter)
        return self._target.search(name, queries, k, ef=ef, filter=filter, params=params or self.params)


def with_search_params(target: Any, config: str | Path | ConfigFile | CollectionConfig | None,
                       collection: str | None) -> tuple[Any, SearchParams | None]:
    """``target`` wrapped to search with the config's ``search`` settings (unchanged when it has none)."""
    if config is None:
        return target, None
    c = config_for(config, collection)
    if c.search is None:
        return target, None
    return SearchParamsTarget(target, c.search), c.search
