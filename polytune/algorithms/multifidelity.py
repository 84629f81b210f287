"""What Hyperband and ASHA share: the bookkeeping they write into each experiment's ``meta``,
promotion ranking, fresh configurations that do not depend on the packing, and the per-rung
summary that ``polytune status`` shows.

Bookkeeping (``Experiment.meta``; the group directory is the only state, DESIGN.md §1):

* ``bracket`` — Hyperband's bracket ``s`` (ASHA has one bracket, recorded as 0);
* ``rung`` — the rung ``j`` inside the bracket (0 = a fresh configuration);
* ``resource`` — the resource value the experiment was given (also in its params);
* ``promoted_from`` — the id of the rung ``j - 1`` experiment it continues (None on rung 0);
* ``root`` — the rung-0 experiment of the chain (None on rung 0: it is its own root); with
  ``resume: true`` every experiment of a chain shares the root's outputs path;
* ``search_seed`` — the seed of the search's own random streams (below);
* ``index`` — the position of a fresh configuration in its bracket (rung 0 only).

Fresh configurations: configuration ``i`` of bracket ``s`` is drawn from
``default_rng([search_seed, s, i])`` (ASHA: ``[search_seed, i]``), redrawn while it repeats one
of the bracket's earlier configurations. ``search_seed`` is drawn once, from the driver's RNG of
the first suggestion (``default_rng([seed, 0])``), and recorded in every experiment. So the
configurations are a function of the group's seed alone: the same whatever the concurrency, the
order in which experiments end, or a crash and ``resume`` in between — while every bracket still
gets its own configurations (Polyaxon re-seeded each bracket and redrew the same leading ones).

Promotion ranking: among a rung's experiments that *ended* (succeeded, or stopped by early
stopping) with a value for the metric, best first by the metric's last reported value; ties go to
the lower id. Failed experiments and those that never reported the metric are never promoted.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from polytune.algorithms import hyperband_schedule as hb
from polytune.algorithms._fold import HistoryFold
from polytune.experiment import Experiment, Objective, Status

if TYPE_CHECKING:  # `polytune status` imports this module: it must not pay for numpy
    import numpy as np

__all__ = [
    "BRACKET",
    "INDEX",
    "PROMOTED_FROM",
    "RESOURCE",
    "ROOT",
    "RUNG",
    "SEARCH_SEED",
    "RungCache",
    "RungIndex",
    "meta_int",
    "planned_rungs",
    "ranked",
    "root_of",
    "rung_summary",
    "search_seed",
]

BRACKET = "bracket"
RUNG = "rung"
RESOURCE = "resource"
PROMOTED_FROM = "promoted_from"
ROOT = "root"
SEARCH_SEED = "search_seed"
INDEX = "index"

_SEED_BOUND = 2**31


def meta_int(exp: Experiment, key: str) -> int | None:
    """An integer recorded in ``exp.meta`` (None when absent or not a plain int)."""
    meta = exp.meta if isinstance(exp.meta, Mapping) else {}
    value = meta.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def search_seed(history: Sequence[Experiment], rng: np.random.Generator) -> int:
    """The search's seed: recorded by the first experiment, else drawn from ``rng`` (the driver
    gives the first suggestion ``default_rng([seed, 0])``, so it depends on the group's seed).
    Every experiment of the search records the same seed, so the first one found is it."""
    for exp in history:
        seed = meta_int(exp, SEARCH_SEED)
        if seed is not None:
            return seed
    return int(rng.integers(_SEED_BOUND))


def root_of(exp: Experiment) -> int:
    """The rung-0 experiment of ``exp``'s chain (whose outputs a resumed chain shares)."""
    root = meta_int(exp, ROOT)
    return exp.id if root is None else root


def promotable(exp: Experiment, objective: Objective) -> bool:
    """Ended on its own (not failed, not waiting to run again) with a value for the metric."""
    ended = exp.status in (Status.SUCCEEDED, Status.STOPPED)
    return ended and objective.score(exp) is not None


def ranked(experiments: Sequence[Experiment], objective: Objective) -> list[Experiment]:
    """Promotion candidates, best first (ties: lower id first)."""
    scored = [(objective.score(e), e.id, e) for e in experiments if promotable(e, objective)]
    scored.sort(key=lambda t: (t[0], t[1]))
    return [e for _, _, e in scored]


class _Positions:
    def __init__(self) -> None:
        self.count = 0
        self.by_rung: dict[tuple[int, int], list[int]] = {}
        self.promoted: set[int] = set()


class RungIndex:
    """Which experiments of the history are on each (bracket, rung), folded incrementally.

    A bracket and rung are recorded when an experiment is created and never change, and the
    history only grows (``_fold``), so only the new tail is read on each call: the positions
    are remembered, the experiments themselves (whose status and metrics do change) are taken
    from the history given.
    """

    def __init__(self) -> None:
        self._fold = HistoryFold(_Positions, self._step)

    @staticmethod
    def _step(state: _Positions, exp: Experiment) -> None:
        bracket, rung = meta_int(exp, BRACKET), meta_int(exp, RUNG)
        if bracket is not None and rung is not None:
            state.by_rung.setdefault((bracket, rung), []).append(state.count)
            parent = meta_int(exp, PROMOTED_FROM)
            if parent is not None:
                state.promoted.add(parent)
        state.count += 1

    def __call__(self, history: Sequence[Experiment]) -> dict[tuple[int, int], list[Experiment]]:
        state = self._fold(history)
        return {key: [history[i] for i in pos] for key, pos in state.by_rung.items()}

    def promoted(self, history: Sequence[Experiment]) -> set[int]:
        """The ids of the experiments some experiment was promoted from (shared: read only)."""
        return self._fold(history).promoted


class RungCache:
    """A rung's ended experiments and their ranking (``ranked``), updated incrementally.

    Records are frozen and the driver replaces one whenever it changes, so a record object seen
    before (compared by identity: cheap, and exact for any history) has the same status and
    score: only new or replaced records are looked at again, and a finished rung costs a
    C-speed identity check per call instead of a re-ranking.
    """

    def __init__(self, objective: Objective) -> None:
        self.objective = objective
        self._memo: dict[Hashable, _RungMemo] = {}

    def __call__(
        self, key: Hashable, experiments: Sequence[Experiment]
    ) -> tuple[list[Experiment], list[Experiment]]:
        """(the experiments that ended, ``ranked`` of them)."""
        memo = self._memo.get(key)
        same = memo is not None and len(memo.seen) == len(experiments)
        if memo is not None and same and all(map(operator.is_, memo.seen, experiments)):
            return memo.ended, memo.ranking
        old = memo or _RungMemo()
        info: list[tuple[bool, float | None]] = []
        for i, exp in enumerate(experiments):
            if i < len(old.seen) and old.seen[i] is exp:
                info.append(old.info[i])
            else:
                score = self.objective.score(exp) if promotable(exp, self.objective) else None
                info.append((exp.status.is_done, score))
        ended = [e for e, (done, _) in zip(experiments, info, strict=True) if done]
        order = sorted(
            (score, e.id, i)
            for i, (e, (_, score)) in enumerate(zip(experiments, info, strict=True))
            if score is not None
        )
        new = _RungMemo(list(experiments), info, ended, [experiments[i] for _, _, i in order])
        self._memo[key] = new
        return new.ended, new.ranking


class _RungMemo:
    def __init__(
        self,
        seen: list[Experiment] | None = None,
        info: list[tuple[bool, float | None]] | None = None,
        ended: list[Experiment] | None = None,
        ranking: list[Experiment] | None = None,
    ) -> None:
        self.seen = seen or []
        self.info = info or []
        self.ended = ended or []
        self.ranking = ranking or []


def top_count(ended: int, eta: float) -> int:
    """``floor(ended / eta)``, forgiving float noise (a quotient of 2.9999999999999996 is 3)."""
    return math.floor(ended / eta + 1e-9)


def planned_rungs(group: Mapping[str, Any]) -> dict[tuple[int, int], dict[str, Any]]:
    """Hyperband's schedule from a ``group.json`` (``{(bracket, rung): {experiments,
    resource}}``); empty for other algorithms or an unreadable record."""
    config = group.get("config")
    settings = config.get("settings") if isinstance(config, Mapping) else None
    if group.get("algorithm") != "hyperband" or not isinstance(settings, Mapping):
        return {}
    try:
        rungs = hb.schedule(settings["max_iter"], settings["eta"], settings["resource_type"])
    except (KeyError, TypeError, ValueError, ZeroDivisionError, OverflowError):
        return {}
    return {
        (r.bracket, r.rung): {"experiments": r.n_experiments, "resource": r.resource} for r in rungs
    }


def rung_summary(
    experiments: Sequence[Experiment],
    objective: Objective | None,
    planned: Mapping[tuple[int, int], Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """One row per (bracket, rung) found in the experiments' meta or in ``planned``
    (``planned_rungs``), brackets in descending order (Hyperband runs the largest first), rungs
    ascending: how many experiments were planned (None: unknown), created, are running, ended,
    failed, were promoted onward, and the best value."""
    if not planned and not any(
        isinstance(e.meta, Mapping) and BRACKET in e.meta for e in experiments
    ):
        return []  # not a multi-fidelity group: `polytune status` of 10,000 random experiments
    rows: dict[tuple[int, int], dict[str, Any]] = {}
    for (bracket, rung), plan in (planned or {}).items():
        rows[(bracket, rung)] = _row(bracket, rung, plan.get("resource"), plan.get("experiments"))
    # ``polytune restart`` copies (``restart_of``) are outside the schedule, as for the searcher.
    experiments = [e for e in experiments if e.restart_of is None]
    promoted: set[int] = set()
    for exp in experiments:
        parent = meta_int(exp, PROMOTED_FROM)
        if parent is not None:
            promoted.add(parent)
    for exp in experiments:
        b, j = meta_int(exp, BRACKET), meta_int(exp, RUNG)
        if b is None or j is None:
            continue
        key = (b, j)
        if key not in rows:
            rows[key] = _row(b, j, exp.meta.get(RESOURCE), None)
        row = rows[key]
        row["created"] += 1
        if exp.status is Status.RUNNING:
            row["running"] += 1
        elif exp.status.is_done:
            row["ended"] += 1
            if exp.status is Status.FAILED:
                row["failed"] += 1
        if exp.id in promoted:
            row["promoted"] += 1
        if objective is not None:
            value = objective.value(exp)
            if value is not None and (row["best"] is None or objective.better(value, row["best"])):
                row["best"], row["best_id"] = value, exp.id
    return [rows[k] for k in sorted(rows, key=lambda k: (-k[0], k[1]))]


def _row(bracket: int, rung: int, resource: Any, planned: Any) -> dict[str, Any]:
    return {
        "bracket": bracket,
        "rung": rung,
        "resource": resource,
        "planned": planned,
        "created": 0,
        "running": 0,
        "ended": 0,
        "failed": 0,
        "promoted": 0,
        "best": None,
        "best_id": None,
    }
