"""The experiment record, its statuses and JSON codec, the objective, and the searcher interface.

Pure: no files, clocks or processes here. ``store.py`` persists these records; ``driver.py`` fills
in timestamps and process facts.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # numpy only types the searcher interface; reading records must stay light
    import numpy as np

__all__ = [
    "Experiment",
    "Objective",
    "Searcher",
    "Status",
    "Suggestion",
]


class Status(enum.StrEnum):
    """Lifecycle: created → running → succeeded | failed | stopped; running → lost (driver died,
    the process vanished) → running again as a new attempt."""

    CREATED = "created"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"
    LOST = "lost"

    @property
    def is_done(self) -> bool:
        """Finished for good: never rerun by ``resume``."""
        return self in (Status.SUCCEEDED, Status.FAILED, Status.STOPPED)

    @property
    def is_pending(self) -> bool:
        """Waiting for a slot (new, or lost and to be rerun)."""
        return self in (Status.CREATED, Status.LOST)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Suggestion:
    """What a searcher proposes: the matrix values of one experiment plus its bookkeeping.

    ``meta`` holds algorithm state that must survive a crash (a Hyperband bracket/rung/resource,
    a BO iteration) and is written into the experiment's JSON. ``extra_params`` are params the
    algorithm injects (Hyperband's resource). ``outputs_from`` names an experiment whose outputs
    path this one reuses (Hyperband ``resume: true``).
    """

    config: Mapping[str, Any]
    meta: Mapping[str, Any] = field(default_factory=dict)
    extra_params: Mapping[str, Any] = field(default_factory=dict)
    outputs_from: int | None = None


@dataclass(frozen=True)
class Experiment:
    """One experiment of a group, as stored in ``experiments/NNNNNN/experiment.json``."""

    id: int
    config: dict[str, Any]
    params: dict[str, Any]
    status: Status = Status.CREATED
    attempt: int = 0
    meta: dict[str, Any] = field(default_factory=dict)
    command: str | None = None
    outputs_path: str | None = None
    created_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    exit_code: int | None = None
    pid: int | None = None
    host: str | None = None
    boot_id: str | None = None
    reason: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    metrics_min: dict[str, float] = field(default_factory=dict)
    metrics_max: dict[str, float] = field(default_factory=dict)
    metric_lines: int = 0
    last_step: int | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    restart_of: int | None = None
    executor: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.ended_at
        return None if end is None else max(0.0, end - self.started_at)

    def with_(self, **changes: Any) -> Experiment:
        return replace(self, **changes)

    # ----- JSON codec ----------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        # Shallow: the record's dicts are JSON already (dataclasses.asdict deep-copies them,
        # which costs more than the write on a driver launching thousands of experiments).
        data = {name: getattr(self, name) for name in _FIELD_ORDER}
        data["status"] = self.status.value
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Experiment:
        """Decode a stored record; unknown keys (from newer versions) are ignored."""
        kwargs = dict(data)
        if kwargs.keys() == _FIELD_NAMES and type(kwargs["id"]) is int:
            # A complete record as ``to_json`` writes it (the usual case): skip the frozen
            # dataclass ``__init__`` (one ``object.__setattr__`` per field), a third of the
            # time ``polytune status`` spends on 10,000 records.
            kwargs["status"] = Status(kwargs["status"])
            exp = object.__new__(cls)
            exp.__dict__.update(kwargs)
            return exp
        if not _FIELD_NAMES.issuperset(kwargs):
            kwargs = {k: v for k, v in kwargs.items() if k in _FIELD_NAMES}
        kwargs["status"] = Status(kwargs.get("status", "created"))
        kwargs["id"] = int(kwargs["id"])
        return cls(**kwargs)


_FIELD_ORDER = tuple(f.name for f in fields(Experiment))
_FIELD_NAMES = frozenset(_FIELD_ORDER)


@dataclass(frozen=True)
class Objective:
    """A metric to minimize or maximize, normalized once: ``score`` is lower-is-better."""

    metric: str
    optimization: str = "maximize"

    @property
    def maximize(self) -> bool:
        return self.optimization == "maximize"

    def value(self, exp: Experiment) -> float | None:
        """The decision value: the last reported value of the metric (Polyaxon's rule)."""
        raw = exp.metrics.get(self.metric)
        if type(raw) is float:  # the usual case, first (status ranks 10,000s of these)
            return None if raw != raw else raw
        if isinstance(raw, bool) or not isinstance(raw, int | float) or math.isnan(raw):
            return None
        return float(raw)

    def score(self, exp: Experiment) -> float | None:
        v = self.value(exp)
        if v is None:
            return None
        return -v if self.maximize else v

    def better(self, a: float, b: float) -> bool:
        """True when value ``a`` is strictly better than value ``b``."""
        return a > b if self.maximize else a < b

    def best(self, experiments: Sequence[Experiment]) -> Experiment | None:
        """The best experiment by score; ties go to the lower id (deterministic)."""
        scored = [(s, e.id, e) for e in experiments if (s := self.score(e)) is not None]
        return min(scored, key=lambda t: (t[0], t[1]))[2] if scored else None

    def to_json(self) -> dict[str, str]:
        return {"name": self.metric, "optimization": self.optimization}


class Searcher(Protocol):
    """A pure search algorithm (ask/tell; the "tell" is the saved experiment history).

    ``history`` holds every experiment of the group, running ones included, so model-based
    searchers can account for pending points. ``suggest`` returns None when nothing can start
    now (a Hyperband rung still running); ``is_finished`` says nothing will ever be suggested
    again. Both must be deterministic functions of (settings, history, rng).
    """

    def suggest(
        self, history: Sequence[Experiment], rng: np.random.Generator
    ) -> Suggestion | None: ...

    def is_finished(self, history: Sequence[Experiment]) -> bool: ...

    def planned_total(self) -> int | None:
        """How many experiments the whole search will create, when known up-front."""
        ...
