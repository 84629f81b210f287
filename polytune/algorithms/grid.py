"""Grid search and mapping search: a fixed list of configurations, run in order.

Grid (SEMANTICS.md §4.1): the cartesian product of the parameters' materialized values in
declaration order, the **last** key varying fastest (``itertools.product`` order), truncated to the
first ``n_experiments`` points. Mapping: the explicit list of dicts of a v1/v2 ``matrix.kind:
mapping``, in the order given.

Notation: ``k`` is a 0-based position in the list (the grid index). The ``k``-th grid point is
decoded from ``k`` by mixed-radix arithmetic (``Space.point``): the digit of the last parameter is
``k mod len(values_last)``, and so on leftwards. Nothing is enumerated, so a grid of 10^12 points
truncated to 20 costs the same as a grid of 20.

Which positions are taken is read from the history, not remembered: each suggestion records its
position in ``meta`` (``grid_index`` / ``mapping_index``), and an experiment without that record
(written by hand, or by an older polytune) is matched by its configuration. The next suggestion is
the lowest position not taken yet. Restarts and re-runs of the same position therefore never
shift the grid, and resuming after a crash continues exactly where the history ends. The RNG is
not used: these searchers are deterministic functions of (settings, history).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from polytune.algorithms._fold import HistoryFold
from polytune.experiment import Experiment, Suggestion
from polytune.space import Space, config_key, plain

__all__ = ["GridSearch", "MappingSearch"]


class _Positions(set[int]):
    """Taken grid positions (all >= 0) with their maximum kept up to date, so that "is this the
    prefix 0..m-1?" is O(1): m distinct non-negative ints whose maximum is m-1 are exactly it."""

    top = -1

    def add(self, k: int) -> None:
        super().add(k)
        self.top = max(self.top, k)


def _first_free(taken: set[int], total: int) -> int | None:
    """The lowest position in ``range(total)`` that is not taken, or None."""
    # The usual history is the prefix 0..m-1, so try m first: O(1) on top of building ``taken``.
    m = len(taken)
    if isinstance(taken, _Positions):
        if m < total and taken.top == m - 1:
            return m
    elif m < total and m not in taken and all(0 <= k < m for k in taken):
        return m
    for k in range(min(total, m + 1)):
        if k not in taken:
            return k
    return None


def _recorded_index(exp: Experiment, key: str) -> int | None:
    value = exp.meta.get(key) if isinstance(exp.meta, Mapping) else None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


class GridSearch:
    """The grid of an all-discrete space, in order, optionally truncated.

    ``n_experiments`` is the v0 ``grid_search.n_experiments`` / v2 ``numRuns``: the first ``n``
    grid points (None: all of them; a larger ``n`` is harmless).
    """

    META_KEY = "grid_index"

    def __init__(self, space: Space, n_experiments: int | None = None) -> None:
        size = space.size
        if size is None:
            continuous = next(p for p in space.params if p.is_continuous)
            raise ValueError(
                f"{continuous.key_path or continuous.name}: grid search needs discrete values; "
                f"{continuous.method} is a distribution"
            )
        if n_experiments is not None and n_experiments < 1:
            raise ValueError(f"n_experiments must be at least 1 (got {n_experiments})")
        self.space = space
        self.n_experiments = n_experiments
        self._total = size if n_experiments is None else min(size, n_experiments)
        self._taken: HistoryFold[set[int]] = HistoryFold(_Positions, self._take)

    def planned_total(self) -> int:
        return self._total

    def _take(self, taken: set[int], exp: Experiment) -> None:
        k = _recorded_index(exp, self.META_KEY)
        if k is None:
            k = self.space.index_of(exp.config)
        if k is not None and k < self._total:
            taken.add(k)

    def is_finished(self, history: Sequence[Experiment]) -> bool:
        return len(self._taken(history)) >= self._total

    def suggest(self, history: Sequence[Experiment], rng: np.random.Generator) -> Suggestion | None:
        k = _first_free(self._taken(history), self._total)
        if k is None:
            return None
        return Suggestion(config=self.space.point(k), meta={self.META_KEY: k})


class MappingSearch:
    """An explicit list of configurations (v1/v2 ``matrix: {kind: mapping, values: [...]}``),
    each run once, in the order given (a dict listed twice runs twice)."""

    META_KEY = "mapping_index"

    def __init__(self, configs: Sequence[Mapping[str, Any]]) -> None:
        self.configs: list[dict[str, Any]] = [plain(dict(c)) for c in configs]
        # Positions of each configuration, for experiments that do not record their index.
        self._positions: dict[str, list[int]] = {}
        for k, c in enumerate(self.configs):
            self._positions.setdefault(config_key(c), []).append(k)

    def planned_total(self) -> int:
        return len(self.configs)

    def _taken(self, history: Sequence[Experiment]) -> set[int]:
        taken: set[int] = set()
        unmatched: list[Experiment] = []
        for exp in history:
            k = _recorded_index(exp, self.META_KEY)
            if k is not None and k < len(self.configs):
                taken.add(k)
            elif k is None:
                unmatched.append(exp)
        for exp in unmatched:
            # The first position with this configuration that is not taken yet.
            for k in self._positions.get(config_key(exp.config), []):
                if k not in taken:
                    taken.add(k)
                    break
        return taken

    def is_finished(self, history: Sequence[Experiment]) -> bool:
        return len(self._taken(history)) >= len(self.configs)

    def suggest(self, history: Sequence[Experiment], rng: np.random.Generator) -> Suggestion | None:
        k = _first_free(self._taken(history), len(self.configs))
        if k is None:
            return None
        return Suggestion(config=plain(self.configs[k]), meta={self.META_KEY: k})
