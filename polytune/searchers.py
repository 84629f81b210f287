"""Build the searcher of a config.

A plain dict registry (its keys appear in the "unknown algorithm" error). Each entry names the
module and the factory ``make(config) -> Searcher``; modules are imported only when a group runs,
so commands that do not search never import scipy or scikit-learn.
"""

from __future__ import annotations

import importlib

from polytune.errors import ConfigError
from polytune.experiment import Searcher
from polytune.model import Config

SEARCHERS: dict[str, str] = {
    "grid": "polytune.searchers:make_grid",
    "mapping": "polytune.searchers:make_mapping",
    "random": "polytune.searchers:make_random",
    "hyperband": "polytune.algorithms.hyperband",
    "asha": "polytune.algorithms.asha",
    "bo": "polytune.algorithms.bayesian",
    "tpe": "polytune.algorithms.tpe",
}


def make_searcher(config: Config) -> Searcher:
    target = SEARCHERS.get(config.algorithm)
    if target is None:
        raise ConfigError(
            "algorithm",
            f"unknown algorithm {config.algorithm!r}; available: {', '.join(SEARCHERS)}",
        )
    module_name, _, factory = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise ConfigError(
            "algorithm",
            f"{config.algorithm} is not available in this version of polytune",
        ) from None
    searcher: Searcher = getattr(module, factory or "make")(config)
    return searcher


def make_grid(config: Config) -> Searcher:
    from polytune.algorithms.grid import GridSearch
    from polytune.model import GridSettings

    assert isinstance(config.settings, GridSettings)
    return GridSearch(config.space, config.settings.n_experiments)


def make_random(config: Config) -> Searcher:
    from polytune.algorithms.random_search import RandomSearch
    from polytune.model import RandomSettings

    assert isinstance(config.settings, RandomSettings)
    return RandomSearch(config.space, config.settings.n_experiments)


def make_mapping(config: Config) -> Searcher:
    from polytune.algorithms.grid import MappingSearch
    from polytune.model import MappingSettings

    assert isinstance(config.settings, MappingSettings)
    return MappingSearch([dict(v) for v in config.settings.values])
