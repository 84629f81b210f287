"""Hyperband's bracket arithmetic, exactly as Polyaxon computes it (pure, no state).

Notation (Li et al., "Hyperband: A Novel Bandit-Based Approach to Hyperparameter Optimization",
JMLR 2018; Polyaxon's ``HyperbandSearchManager``, SEMANTICS.md §4.3):

* ``R`` = ``max_iter``: the largest resource one configuration gets (epochs, steps ...).
* ``eta``: the reduction factor between rungs (keep ``1/eta`` of the configurations, give them
  ``eta`` times the resource).
* ``s_max = int(log(R) / log(eta))`` — a plain float division, truncated, so float artefacts
  matter: ``R=243, eta=3`` gives ``4.999999999999999`` hence ``s_max = 4``.
* ``B = (s_max + 1) * R``: the budget of one bracket.
* Bracket ``s`` (``s = s_max`` first, then down to 0) starts ``n(s) = ceil(B/R * eta^s / (s+1))``
  configurations with resource ``r(s) = R * eta^-s``.
* Rung ``j = 0..s`` of bracket ``s`` gives resource ``r(s) * eta^j``, cast with ``int()``
  (truncation: ``99.99999999999999`` becomes 99) or ``float()``.
* After rung ``j`` the best ``keep(s, j) = int(n(s) * eta^-j / eta)`` go on to rung ``j + 1``.

Polyaxon 0.6.1's control flow ran one extra rung after the last bracket (``s = 0``) with resource
``R * eta`` — more than ``max_iter``. polytune stops every bracket after rung ``j = s``
(DESIGN.md §6); ``schedule(..., polyaxon_extra_rung=True)`` reproduces Polyaxon for comparison.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Rung",
    "bracket_resource",
    "budget",
    "keep",
    "n_configs",
    "rung_resource",
    "s_max",
    "schedule",
    "total_experiments",
]

ResourceType = Literal["int", "float"]


@dataclass(frozen=True)
class Rung:
    """One synchronous step of a bracket: ``n_experiments`` runs, each given ``resource``."""

    bracket: int
    rung: int
    n_experiments: int
    resource: int | float


def s_max(max_iter: float, eta: float) -> int:
    """Index of the largest bracket: ``int(log(R) / log(eta))`` (float truncation kept)."""
    return int(math.log(max_iter) / math.log(eta))


def budget(max_iter: float, eta: float) -> float:
    """``B = (s_max + 1) * R``."""
    return (s_max(max_iter, eta) + 1) * max_iter


def n_configs(max_iter: float, eta: float, bracket: int) -> int:
    """``n(s) = ceil(B/R * eta^s / (s+1))``: configurations a bracket starts with."""
    return math.ceil(budget(max_iter, eta) / max_iter * eta**bracket / (bracket + 1))


def bracket_resource(max_iter: float, eta: float, bracket: int) -> float:
    """``r(s) = R * eta^-s``: the (uncast) resource of a bracket's first rung."""
    return max_iter * eta ** (-bracket)


def rung_resource(
    max_iter: float, eta: float, bracket: int, rung: int, resource_type: ResourceType
) -> int | float:
    """``r(s) * eta^j`` cast with ``int()`` (truncation) or ``float()``, like Polyaxon."""
    value = bracket_resource(max_iter, eta, bracket) * eta**rung
    return int(value) if resource_type == "int" else float(value)


def keep(max_iter: float, eta: float, bracket: int, rung: int) -> int:
    """``int(n(s) * eta^-j / eta)``: how many of rung ``j``'s runs go on to rung ``j + 1``."""
    return int(n_configs(max_iter, eta, bracket) * eta ** (-rung) / eta)


def schedule(
    max_iter: float,
    eta: float,
    resource_type: ResourceType,
    *,
    polyaxon_extra_rung: bool = False,
) -> list[Rung]:
    """Every rung in Polyaxon's iteration order: largest bracket first, rungs in order.

    A bracket stops after rung ``j = s`` (its resource is then ``R``, up to the ``int()``
    truncation), or earlier should ``keep`` reach 0. With ``polyaxon_extra_rung`` the last
    bracket gets Polyaxon 0.6.1's extra rung at ``R * eta`` when ``keep(0, 0) > 0``.
    """
    top = s_max(max_iter, eta)
    rungs: list[Rung] = []
    for bracket in range(top, -1, -1):
        last = bracket + 1 if (polyaxon_extra_rung and bracket == 0) else bracket
        n = n_configs(max_iter, eta, bracket)
        for rung in range(last + 1):
            if rung > 0:
                n = keep(max_iter, eta, bracket, rung - 1)
            if n <= 0:
                break
            resource = rung_resource(max_iter, eta, bracket, rung, resource_type)
            rungs.append(Rung(bracket, rung, n, resource))
    return rungs


def total_experiments(
    max_iter: float,
    eta: float,
    resource_type: ResourceType,
    *,
    polyaxon_extra_rung: bool = False,
) -> int:
    """How many experiments the whole schedule runs (each rung's runs are new experiments)."""
    rungs = schedule(max_iter, eta, resource_type, polyaxon_extra_rung=polyaxon_extra_rung)
    return sum(r.n_experiments for r in rungs)
