"""Random search: independent draws from the space, without repeats (SEMANTICS.md §4.2).

Each suggestion draws every parameter independently, in declaration order (``Space.sample``), and
is redrawn while its configuration is already in the history (compared by ``config_key``: JSON
form). The search is over when ``n_experiments`` distinct configurations exist.

Where polytune differs from Polyaxon, on purpose (DESIGN.md §6):

* Over an all-discrete space the count is capped at the number of *reachable* configurations
  (values whose ``pvalues`` probability is 0 cannot be drawn), so the search always ends; Polyaxon
  capped at the space size and then redrew forever when a probability was 0.
* Redrawing gets slow when few configurations remain (the last of 1000 needs ~1000 draws on
  average). For all-discrete spaces of at most ``EXACT_LIMIT`` points, after ``QUICK_DRAWS`` failed
  draws polytune samples directly from the configurations not yet in the history, with
  probabilities proportional to their probability under the space: exactly the distribution that
  redrawing forever would give, in one step.
* Otherwise (continuous or huge spaces) at most ``MAX_DRAWS`` draws are made; a space that cannot
  produce a new configuration (``uniform: [1, 1]``, a ``quniform`` with few multiples) ends the
  search instead of looping: ``suggest`` returns None and ``is_finished`` is true.

Determinism: the driver passes ``rng = default_rng([seed, len(history)])``, so the same history
always gives the same suggestion, and a resumed group replays exactly. ``is_finished`` has no RNG of
its own: for spaces without an exact count it probes with a fixed RNG derived from the history
size, so it too is a function of the history alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from polytune.algorithms._fold import HistoryFold
from polytune.experiment import Experiment, Suggestion
from polytune.space import Space, config_key

__all__ = ["RandomSearch"]


class RandomSearch:
    """``n_experiments`` distinct random configurations of ``space``."""

    MAX_DRAWS = 1000
    QUICK_DRAWS = 32
    EXACT_LIMIT = 100_000
    _PROBE_SEED = 0x5EED

    def __init__(self, space: Space, n_experiments: int) -> None:
        if n_experiments < 1:
            raise ValueError(f"n_experiments must be at least 1 (got {n_experiments})")
        self.space = space
        self.n_experiments = n_experiments
        reachable = self.reachable_size
        self._total = n_experiments if reachable is None else min(n_experiments, reachable)
        size = space.size
        self._exact = size is not None and size <= self.EXACT_LIMIT
        self._seen = HistoryFold(set, self._see)

    @property
    def reachable_size(self) -> int | None:
        """Distinct configurations that can be drawn (None when a parameter is continuous)."""
        if not self.space.is_discrete:
            return None
        return math.prod(
            sum(1 for p in param.probabilities if p > 0) for param in self.space.params
        )

    def planned_total(self) -> int:
        return self._total

    # ----- the searcher interface ------------------------------------------------------------
    def is_finished(self, history: Sequence[Experiment]) -> bool:
        return self._finished(history, self._seen(history))

    def suggest(self, history: Sequence[Experiment], rng: np.random.Generator) -> Suggestion | None:
        seen = self._seen(history)
        if self._finished(history, seen):
            return None
        config = self._draw_new(history, seen, rng)
        return None if config is None else Suggestion(config=config)

    def _finished(self, history: Sequence[Experiment], seen: set[str]) -> bool:
        if len(seen) >= self._total:
            return True
        if self._exact:
            # Exact sampling finds a new configuration while fewer than ``reachable`` are seen,
            # and ``_total <= reachable``: never stuck.
            return False
        probe = np.random.default_rng([self._PROBE_SEED, len(seen)])
        return self._draw_new(history, seen, probe) is None

    # ----- drawing ----------------------------------------------------------------------------
    @staticmethod
    def _see(seen: set[str], exp: Experiment) -> None:
        seen.add(config_key(exp.config))

    def _draw_new(
        self, history: Sequence[Experiment], seen: set[str], rng: np.random.Generator
    ) -> dict[str, Any] | None:
        for _ in range(self.QUICK_DRAWS if self._exact else self.MAX_DRAWS):
            config = self.space.sample(rng)
            if config_key(config) not in seen:
                return config
        if not self._exact:
            return None
        weights = self._weights.copy()
        for exp in history:
            k = self.space.index_of(exp.config)
            if k is not None:
                weights[k] = 0.0
        total = float(weights.sum())
        if total <= 0.0:
            return None
        k = int(rng.choice(len(weights), p=weights / total))
        return self.space.point(k)

    @cached_property
    def _weights(self) -> npt.NDArray[np.float64]:
        """The probability of every grid point (index order of ``Space.point``)."""
        weights = np.ones(1)
        for param in self.space.params:
            weights = np.multiply.outer(weights, np.asarray(param.probabilities)).ravel()
        return weights
