"""Build the searcher of a config (a plain dict registry; heavy numerics are imported lazily so
that commands which do not search never import scipy or scikit-learn)."""

from __future__ import annotations

from collections.abc import Callable

from polytune.errors import ConfigError
from polytune.experiment import Searcher
from polytune.model import Config, GridSettings, MappingSettings, RandomSettings


def _grid(config: Config) -> Searcher:
    from polytune.algorithms.grid import GridSearch

    assert isinstance(config.settings, GridSettings)
    return GridSearch(config.space, config.settings.n_experiments)


def _random(config: Config) -> Searcher:
    from polytune.algorithms.random_search import RandomSearch

    assert isinstance(config.settings, RandomSettings)
    return RandomSearch(config.space, config.settings.n_experiments)


def _mapping(config: Config) -> Searcher:
    from polytune.algorithms.grid import MappingSearch

    assert isinstance(config.settings, MappingSettings)
    return MappingSearch([dict(v) for v in config.settings.values])


SEARCHERS: dict[str, Callable[[Config], Searcher]] = {
    "grid": _grid,
    "random": _random,
    "mapping": _mapping,
}


def make_searcher(config: Config) -> Searcher:
    try:
        factory = SEARCHERS[config.algorithm]
    except KeyError:
        raise ConfigError(
            "algorithm",
            f"{config.algorithm} is not available in this version of polytune; "
            f"available: {', '.join(SEARCHERS)}",
        ) from None
    return factory(config)
