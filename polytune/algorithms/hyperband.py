"""Hyperband (Li et al., "Hyperband: A Novel Bandit-Based Approach to Hyperparameter
Optimization", JMLR 2018), with Polyaxon's schedule and every bracket running concurrently.

Notation (``hyperband_schedule`` has the arithmetic, SEMANTICS.md §4.3 Polyaxon's behaviour):
``R = max_iter``, ``eta``; brackets ``s = s_max .. 0``; bracket ``s`` starts ``n(s)`` fresh random
configurations on rung ``j = 0`` with resource ``r(s)``; after rung ``j`` has ended, its best
``keep(s, j)`` go on to rung ``j + 1`` with resource ``r(s) * eta^(j+1)``; a bracket stops after
rung ``j = s`` (resource ``R``; no extra rung past ``max_iter``, unlike Polyaxon 0.6.1).

What polytune changes, and why:

* **No idle slots.** Polyaxon waited for the whole group between rungs. Brackets are
  independent, so here they run concurrently: while a rung waits for its stragglers, experiments
  of other brackets fill the free slots. The *set* of (configuration, resource) experiments is the
  sequential schedule's; only the packing changes. Order of preference for a free slot:
  1. a promotion (largest bracket first): it lies on its bracket's critical path, and it is the
     only work that can reach ``R``, so results at full resource come as early as possible;
  2. a fresh configuration of the largest bracket whose rung 0 is not complete (Polyaxon's
     bracket order).
  A rung is *synchronous* as in the paper: it is ranked only when all its experiments ended, so
  promotions never depend on the packing, only on the results.
* **Fresh configurations per bracket**, drawn from streams of the group's seed
  (``multifidelity``); Polyaxon re-seeded every bracket and redrew the same leading ones.
* **Resource injection** through ``Suggestion.extra_params``: the driver renders the command
  from the template for every experiment, so each rung's command carries its own resource
  (Polyaxon cloned the rendered command and kept the stale value, polyaxon#705).
* **resume**: ``resume: true`` gives a promoted experiment ``outputs_from`` = the chain's rung-0
  experiment, whose outputs path it then shares: the script finds its checkpoint there and trains
  on up to the new resource. ``resume: false`` gives every experiment fresh outputs.

The contract for scripts (``resume: true``): read ``$POLYTUNE_OUTPUTS_PATH``; if a checkpoint is
there, load it and continue training until the resource given on the command line (or in
``$POLYTUNE_PARAM_<RESOURCE>``); checkpoint there as you go; report the metric at the end (also
when the checkpoint already reached the resource, as happens when an experiment is rerun after a
crash). ``examples/train.py`` does this.

State: none in memory. The searcher is a function of (settings, history, rng); each experiment's
``meta`` records its bracket, rung, resource, the experiment it was promoted from and its chain's
root (``multifidelity``), so a driver restarted after ``kill -9`` derives exactly where every
bracket stands: a rung whose experiments were lost waits for their rerun (the driver reruns lost
experiments before asking for new work), and a promotion is made once per (rung, parent) because
the created promotions are recognised by ``promoted_from``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from polytune.algorithms import hyperband_schedule as hb
from polytune.algorithms import multifidelity as mf
from polytune.algorithms.random_search import RandomSearch
from polytune.experiment import Experiment, Objective, Suggestion
from polytune.model import Config, HyperbandSettings
from polytune.space import Space

__all__ = ["Hyperband", "make"]


@dataclass(frozen=True)
class _Promote:
    bracket: int
    rung: int  # the rung the promoted experiment runs on
    parent: Experiment


@dataclass(frozen=True)
class _Fresh:
    bracket: int
    rung0: tuple[Experiment, ...]  # the bracket's rung-0 experiments so far


@dataclass(frozen=True)
class _Plan:
    promotions: tuple[_Promote, ...]
    fresh: tuple[_Fresh, ...]
    finished: bool  # nothing will ever be suggested again


class Hyperband:
    """Hyperband over ``space`` with ``settings``; brackets run concurrently."""

    def __init__(self, space: Space, settings: HyperbandSettings) -> None:
        self.space = space
        self.settings = settings
        self.objective = Objective(settings.metric.name, settings.metric.optimization)
        r, eta = settings.max_iter, settings.eta
        self.s_max = hb.s_max(r, eta)
        self.brackets = list(range(self.s_max, -1, -1))
        # Rung 0 of bracket s: n(s) distinct random configurations (capped, like random
        # search, at what an all-discrete space can give).
        self._random = {s: RandomSearch(space, hb.n_configs(r, eta, s)) for s in self.brackets}
        self._resource = {
            (s, j): hb.rung_resource(r, eta, s, j, settings.resource_type)
            for s in self.brackets
            for j in range(s + 1)
        }
        self._keep = {(s, j): hb.keep(r, eta, s, j) for s in self.brackets for j in range(s)}
        # Memos that only skip work (the answers are those of the full computation).
        self._index = mf.RungIndex()
        self._rungs = mf.RungCache(self.objective)

    # ----- the searcher interface ----------------------------------------------------------
    def planned_total(self) -> int:
        """The sequential schedule's count (fewer if experiments fail or miss the metric)."""
        total = 0
        for s in self.brackets:
            n = self._random[s].planned_total()
            total += n
            for j in range(s):
                n = min(n, self._keep[(s, j)])
                total += n
        return total

    def is_finished(self, history: Sequence[Experiment]) -> bool:
        return self._plan(history).finished

    def suggest(self, history: Sequence[Experiment], rng: np.random.Generator) -> Suggestion | None:
        plan = self._plan(history)
        seed = mf.search_seed(history, rng)
        if plan.promotions:
            return self._promotion(plan.promotions[0], seed)
        for f in plan.fresh:
            suggestion = self._fresh(f, seed)
            if suggestion is not None:
                return suggestion
        return None

    # ----- suggestions -------------------------------------------------------------------------
    def _extra(self, bracket: int, rung: int) -> tuple[int | float, dict[str, Any]]:
        resource = self._resource[(bracket, rung)]
        return resource, {self.settings.resource_name: resource}

    def _fresh(self, f: _Fresh, seed: int) -> Suggestion | None:
        index = len(f.rung0)
        rng = np.random.default_rng([seed, f.bracket, index])
        drawn = self._random[f.bracket].suggest(list(f.rung0), rng)
        if drawn is None:
            return None
        resource, extra = self._extra(f.bracket, 0)
        meta = {
            mf.BRACKET: f.bracket,
            mf.RUNG: 0,
            mf.RESOURCE: resource,
            mf.PROMOTED_FROM: None,
            mf.ROOT: None,
            mf.INDEX: index,
            mf.SEARCH_SEED: seed,
        }
        return Suggestion(config=dict(drawn.config), meta=meta, extra_params=extra)

    def _promotion(self, p: _Promote, seed: int) -> Suggestion:
        resource, extra = self._extra(p.bracket, p.rung)
        root = mf.root_of(p.parent)
        meta = {
            mf.BRACKET: p.bracket,
            mf.RUNG: p.rung,
            mf.RESOURCE: resource,
            mf.PROMOTED_FROM: p.parent.id,
            mf.ROOT: root,
            mf.SEARCH_SEED: seed,
        }
        return Suggestion(
            config=dict(p.parent.config),
            meta=meta,
            extra_params=extra,
            outputs_from=root if self.settings.resume else None,
        )

    # ----- where every bracket stands ------------------------------------------------------------
    def _plan(self, history: Sequence[Experiment]) -> _Plan:
        index = self._index(history)
        members = {key: index.get(key, []) for key in self._resource}
        promotions: list[_Promote] = []
        fresh: list[_Fresh] = []
        finished = True
        for s in self.brackets:
            rung0 = members[(s, 0)]
            # (an empty rung 0 draws if the space has a configuration: no need to probe)
            random = self._random[s]
            if random.planned_total() > 0 if not rung0 else not random.is_finished(rung0):
                fresh.append(_Fresh(s, tuple(rung0)))
                finished = False
                continue  # rung 0 is not complete: nothing of this bracket can be ranked
            for j in range(s):
                rung, above = members[(s, j)], members[(s, j + 1)]
                ended, candidates = self._rungs((s, j), rung)
                if len(ended) < len(rung):
                    finished = False  # waiting for stragglers (or lost ones to rerun)
                    break
                target = min(self._keep[(s, j)], len(candidates))
                if len(above) < target:
                    taken = {mf.meta_int(e, mf.PROMOTED_FROM) for e in above}
                    todo = [c for c in candidates if c.id not in taken]
                    if todo:
                        promotions.append(_Promote(s, j + 1, todo[0]))
                        finished = False
                        break
                if not above:
                    break  # nobody to promote: the bracket ends early
        return _Plan(tuple(promotions), tuple(fresh), finished)


def make(config: Config) -> Hyperband:
    """The searcher registry's factory (``polytune.searchers``)."""
    if not isinstance(config.settings, HyperbandSettings):
        raise TypeError(f"hyperband needs HyperbandSettings, got {type(config.settings).__name__}")
    return Hyperband(config.space, config.settings)
