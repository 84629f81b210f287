"""Asynchronous successive halving (ASHA: Li, Jamieson, Rostamizadeh, Gonina, Ben-tzur, Hardt,
Recht, Talwalkar, "A System for Massively Parallel Hyperparameter Tuning", MLSys 2020, Alg. 2).

Notation: ``r = min_resource``, ``R = max_resource``, reduction factor ``eta``, early-stopping
rate 0. ``K = floor(log_eta(R / r))``; rung ``k = 0 .. K`` gives resource ``r * eta^k`` for
``k < K`` and exactly ``R`` on the top rung ``K`` (so ``r=1, R=100, eta=3`` gives 1, 3, 9, 27,
100: the last step is at most ``eta`` times too long, never a rung past ``R``). Integer resources
are rounded down (after forgiving float noise: ``27.000000000000004`` is 27); rungs whose resource
would not grow are dropped.

``get_job`` of the paper, which this searcher's ``suggest`` is: look at the rungs from the top
down; in rung ``k`` the candidates are the best ``floor(m / eta)`` of the ``m`` experiments that
*ended* on it; the first candidate not yet promoted goes to rung ``k + 1`` now. No rung waits to
fill: a configuration is promoted as soon as it is in the top ``1/eta`` of what its rung has seen.
When nothing can be promoted, a fresh configuration starts on rung 0 (``n_experiments`` of them
in all). Failed experiments and those without the metric count in ``m`` (as the worst) but are
never promoted; experiments still running are not in ``m`` yet.

The search ends when all ``n_experiments`` configurations exist, every experiment has ended and
nothing can be promoted any more. Bookkeeping, fresh-configuration streams, ``resume`` and crash
safety are Hyperband's (``multifidelity``, ``hyperband``): all state is in the experiments' meta.
Unlike Hyperband's, ASHA's promotions depend on the order in which experiments end — that is the
algorithm — so two runs with the same seed share their configurations, not their promotions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from polytune.algorithms import multifidelity as mf
from polytune.algorithms.random_search import RandomSearch
from polytune.experiment import Experiment, Objective, Suggestion
from polytune.model import ASHASettings, Config
from polytune.space import Space

__all__ = ["ASHA", "make", "rung_count", "rung_resources"]

_FLOAT_SLACK = 1e-9
MAX_RUNGS = 10_000


def rung_count(min_resource: float, max_resource: float, eta: float) -> int:
    """``K + 1``: how many rungs before integer rounding merges any (an upper bound)."""
    return math.floor(math.log(max_resource / min_resource) / math.log(eta) + _FLOAT_SLACK) + 1


def rung_resources(
    min_resource: float, max_resource: float, eta: float, resource_type: Literal["int", "float"]
) -> list[int | float]:
    """The resource of every rung, bottom to top (see the module docstring)."""
    if not (0 < min_resource <= max_resource) or eta <= 1:
        raise ValueError(
            f"need 0 < min_resource <= max_resource and eta > 1 (got {min_resource}, "
            f"{max_resource}, {eta})"
        )
    top = rung_count(min_resource, max_resource, eta) - 1
    if top >= MAX_RUNGS:
        raise ValueError(f"{top + 1} rungs is too many (eta={eta} is too close to 1)")
    raw = [min_resource * eta**k for k in range(top)] + [max_resource]
    out: list[int | float] = []
    for value in raw:
        cast: int | float = (
            math.floor(value * (1 + _FLOAT_SLACK)) if resource_type == "int" else float(value)
        )
        if not out or cast > out[-1]:
            out.append(cast)
    return out


@dataclass(frozen=True)
class _Next:
    promote: tuple[int, Experiment] | None  # (rung, parent)
    fresh: bool
    finished: bool


class ASHA:
    """ASHA over ``space`` with ``settings``."""

    BRACKET = 0

    def __init__(self, space: Space, settings: ASHASettings) -> None:
        self.space = space
        self.settings = settings
        self.objective = Objective(settings.metric.name, settings.metric.optimization)
        self.resources = rung_resources(
            settings.min_resource, settings.max_resource, settings.eta, settings.resource_type
        )
        self._random = RandomSearch(space, settings.n_experiments)
        # Memos that only skip work (the answers are those of the full computation).
        self._index = mf.RungIndex()
        self._rung_cache = mf.RungCache(self.objective)

    def planned_total(self) -> int | None:
        """Unknown up-front: promotions depend on the results."""
        return None

    def is_finished(self, history: Sequence[Experiment]) -> bool:
        return self._next(history).finished

    def suggest(self, history: Sequence[Experiment], rng: np.random.Generator) -> Suggestion | None:
        nxt = self._next(history)
        seed = mf.search_seed(history, rng)
        if nxt.promote is not None:
            rung, parent = nxt.promote
            root = mf.root_of(parent)
            return Suggestion(
                config=dict(parent.config),
                meta=self._meta(rung, parent.id, root, seed),
                extra_params={self.settings.resource_name: self.resources[rung]},
                outputs_from=root if self.settings.resume else None,
            )
        if not nxt.fresh:
            return None
        rung0 = self._rungs(history)[0]
        index = len(rung0)
        drawn = self._random.suggest(rung0, np.random.default_rng([seed, index]))
        if drawn is None:
            return None
        meta = self._meta(0, None, None, seed)
        meta[mf.INDEX] = index
        return Suggestion(
            config=dict(drawn.config),
            meta=meta,
            extra_params={self.settings.resource_name: self.resources[0]},
        )

    def _meta(
        self, rung: int, parent: int | None, root: int | None, seed: int
    ) -> dict[str, object]:
        return {
            mf.BRACKET: self.BRACKET,
            mf.RUNG: rung,
            mf.RESOURCE: self.resources[rung],
            mf.PROMOTED_FROM: parent,
            mf.ROOT: root,
            mf.SEARCH_SEED: seed,
        }

    def _rungs(self, history: Sequence[Experiment]) -> list[list[Experiment]]:
        index = self._index(history)
        return [index.get((self.BRACKET, k), []) for k in range(len(self.resources))]

    def _next(self, history: Sequence[Experiment]) -> _Next:
        rungs = self._rungs(history)
        states = [self._rung_cache(k, rung) for k, rung in enumerate(rungs)]
        # Top rung first: the configurations closest to R get the next free slot.
        for k in range(len(rungs) - 2, -1, -1):
            ended, ranking = states[k]
            best = ranking[: mf.top_count(len(ended), self.settings.eta)]
            if not best:
                continue
            taken = self._index.promoted(history)
            for candidate in best:
                if candidate.id not in taken:
                    return _Next((k + 1, candidate), fresh=False, finished=False)
        # (an empty rung 0 draws if the space has a configuration: no need to probe)
        random = self._random
        fresh = random.planned_total() > 0 if not rungs[0] else not random.is_finished(rungs[0])
        waiting = any(
            len(ended) < len(rung) for (ended, _), rung in zip(states, rungs, strict=True)
        )
        return _Next(None, fresh=fresh, finished=not fresh and not waiting)


def make(config: Config) -> ASHA:
    """The searcher registry's factory (``polytune.searchers``)."""
    if not isinstance(config.settings, ASHASettings):
        raise TypeError(f"asha needs ASHASettings, got {type(config.settings).__name__}")
    return ASHA(config.space, config.settings)
