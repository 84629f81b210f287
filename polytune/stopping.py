"""Early-stopping rules, pure: data in, decisions out (no clocks, files, processes or terminal).

The driver owns the state (each running experiment's curve, the time of its last activity) and
asks these functions what to do. Polyaxon's rules are in SEMANTICS.md §3.1, §3.3 and §4.6;
polytune makes them real on live metrics.

**Group rules** end the whole group (state ``early_stopped``, exit code 0): nothing new starts,
running experiments are stopped (or left to finish: ``polytune: {on_early_stop: finish}``).

* *Threshold* (``early_stopping: [{metric, value, optimization}]``, v2
  ``metric_early_stopping``): holds as soon as one experiment reports ``metric >= value``
  (maximize, Polyaxon's default when ``optimization`` is left out) or ``<= value`` (minimize).
  Several rules are OR-ed. Polyaxon tested the *last* value of each experiment between launches;
  polytune tests every new value as it arrives, which is the same test made at every moment the
  value is someone's last (so the crossing is caught within one metric line, not at the next
  launch). Because every value is tested, "a threshold held" is also a property of the history
  alone (an experiment's ``metrics_max``/``metrics_min`` crossed it): a resumed group re-derives
  it from its records (:func:`crossing_in_history`).
* *Failures* (v2 ``failure_early_stopping: {percent}``): holds when ``failed / total >=
  percent / 100``, where ``total`` is the number of experiments the group plans to run (the
  searcher's planned total) or has created, whichever is larger (Polyaxon v2 divided by the
  children of the pipeline, which for grid and random exist up-front). Only the smallest
  ``percent`` matters. Failed means failed for good (a retry is still pending otherwise).

**Per-experiment policies** (``policy:`` of a metric rule) stop one offending experiment (its
reason ``early_stopping:<policy> (...)``); the group goes on and the freed slot is refilled.
Notation: an experiment's *curve* of a metric is its points ``(step, value)`` where ``step`` is
the metric line's ``step`` or, without one, the line's position (``metrics.curve``'s rule). At a
point of step ``s`` of the candidate:

* ``best(s)``: the candidate's best value over its points with step ``<= s``;
* the *others*: every other experiment of the group whose curve *reached* ``s`` (has a point with
  step ``>= s``), whatever its state (running, succeeded, stopped, failed), so the comparison is
  made at the same step; with ``include_succeeded: false`` succeeded experiments are left out.
  Nothing is compared (no stop) while fewer than ``min_samples`` others reached ``s``.
* **median** — Google Vizier's median stopping rule (Golovin et al., 2017, §3.2.2): stop when
  ``best(s)`` is strictly worse than the median of the others' *running averages* (mean of their
  values with step ``<= s``). **average** (v0's third kind): the same against their mean.
* **truncation {percent}**: rank the candidate's ``best(s)`` among the others' ``best(s)``
  (ties in the candidate's favour); stop it when it falls in the worst ``floor(n * percent /
  100)`` of the ``n`` compared runs (itself included).
* **diff {percent}**: stop when ``best(s)`` is worse than the best of the others' ``best(s)``
  by more than ``percent`` % of that best's magnitude.
* **When**: at the steps that are multiples of ``evaluation_interval`` and ``>= min_interval``
  (Azure's "delay_evaluation" reading of Polyaxon's ``minInterval``). Steps need not be
  contiguous: a point is evaluated when such a step lies in ``(previous step, step]``.

**Stall watchdog** (``polytune: {stall_timeout: SEC}``): an experiment that has written neither a
metric line nor output for ``SEC`` seconds is stopped with reason ``stalled (...)``.

**How an experiment stopped early counts** (also in the README):

* It is *finished*: status ``stopped``, never rerun by ``resume`` (only experiments a Ctrl-C or
  ``polytune stop`` interrupted are), never suggested again.
* Grid, random and mapping: it used up its configuration. It counts toward ``n_experiments`` and
  the grid; early stopping saves compute, it does not buy extra configurations.
* Its metrics are the last values it reported (Polyaxon's rule) at the step it reached: a
  *lower-fidelity observation*. It is ranked like any experiment (a policy stopped it for being
  worse than its peers at that step, so it is rarely the best); :func:`stopped_early` and
  :func:`fidelity` tell it apart.
* Hyperband / ASHA: it has ended, so its rung does not wait for it, and it is ranked for
  promotion by its last value (``algorithms/multifidelity.promotable``); that value comes from
  fewer steps than the rung's resource, pessimistic for a metric that improves with training,
  so it is seldom promoted. BO: an observation like the others, at its last value. Pessimistic
  agrees with the verdict that stopped it (worse than its peers at the same step), so no
  searcher needs a special case.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from polytune.experiment import Experiment, Status

if TYPE_CHECKING:  # model (and space) are imported where rules are built: `status` stays light
    from polytune.model import (
        EarlyStopping,
        FailureEarlyStopping,
        MetricEarlyStopping,
        StoppingPolicy,
    )

__all__ = [
    "EARLY_STOPPING",
    "STALLED",
    "Curve",
    "Decision",
    "GroupStop",
    "crossing_in_history",
    "decide",
    "describe_rules",
    "failure_rule",
    "failure_stop",
    "fidelity",
    "first_crossing",
    "point_of",
    "policies",
    "population",
    "should_evaluate",
    "stall_reason",
    "stalled",
    "stopped_early",
    "thresholds",
]

#: Reason prefix of experiments stopped by an early-stopping rule (``early_stopping:median``).
EARLY_STOPPING = "early_stopping:"
#: Reason prefix of experiments stopped by the stall watchdog.
STALLED = "stalled"


# ---------------------------------------------------------------------------------------------
# Curves
# ---------------------------------------------------------------------------------------------


class Curve:
    """The points ``(step, value)`` of one experiment's metric, sorted by step.

    A repeated step keeps its latest value. Prefix sums, minima and maxima make the running
    average and the best value up to any step ``O(log n)``. Appending in step order (the usual
    case) is ``O(1)``; a point that goes back in steps is inserted (``O(n)``).
    """

    __slots__ = ("_max", "_min", "_steps", "_sums", "_values")

    def __init__(self, points: Iterable[tuple[int, float]] = ()) -> None:
        self._steps: list[int] = []
        self._values: list[float] = []
        self._sums: list[float] = []
        self._min: list[float] = []
        self._max: list[float] = []
        for step, value in points:
            self.add(step, value)

    def add(self, step: int, value: float) -> None:
        steps = self._steps
        if not steps or step > steps[-1]:
            steps.append(step)
            self._values.append(value)
            self._extend(len(steps) - 1)
            return
        i = bisect.bisect_left(steps, step)
        if i < len(steps) and steps[i] == step:
            self._values[i] = value
        else:
            steps.insert(i, step)
            self._values.insert(i, value)
        del self._sums[i:], self._min[i:], self._max[i:]
        for j in range(i, len(steps)):
            self._extend(j)

    def _extend(self, j: int) -> None:
        v = self._values[j]
        if j == 0:
            self._sums.append(v)
            self._min.append(v)
            self._max.append(v)
        else:
            self._sums.append(self._sums[j - 1] + v)
            self._min.append(min(self._min[j - 1], v))
            self._max.append(max(self._max[j - 1], v))

    def __len__(self) -> int:
        return len(self._steps)

    def __repr__(self) -> str:
        return f"Curve({self.points()!r})"

    def points(self) -> list[tuple[int, float]]:
        return list(zip(self._steps, self._values, strict=True))

    @property
    def last_step(self) -> int | None:
        """The largest step reported (``None`` for an empty curve)."""
        return self._steps[-1] if self._steps else None

    def reached(self, step: int) -> bool:
        return bool(self._steps) and self._steps[-1] >= step

    def _count(self, step: int) -> int:
        return bisect.bisect_right(self._steps, step)

    def mean_upto(self, step: int) -> float | None:
        """The running average: the mean of the values with step ``<= step``."""
        n = self._count(step)
        return self._sums[n - 1] / n if n else None

    def best_upto(self, step: int, maximize: bool) -> float | None:
        """The best value with step ``<= step``."""
        n = self._count(step)
        if not n:
            return None
        return self._max[n - 1] if maximize else self._min[n - 1]


# ---------------------------------------------------------------------------------------------
# Rules of a config
# ---------------------------------------------------------------------------------------------


def thresholds(rules: Iterable[EarlyStopping]) -> list[MetricEarlyStopping]:
    """The group thresholds among ``rules`` (metric rules with a ``value``)."""
    from polytune.model import MetricEarlyStopping

    return [r for r in rules if isinstance(r, MetricEarlyStopping) and r.value is not None]


def policies(rules: Iterable[EarlyStopping]) -> list[MetricEarlyStopping]:
    """The metric rules that carry a per-experiment policy."""
    from polytune.model import MetricEarlyStopping

    return [r for r in rules if isinstance(r, MetricEarlyStopping) and r.policy is not None]


def failure_rule(rules: Iterable[EarlyStopping]) -> FailureEarlyStopping | None:
    """The failure rule that matters: the smallest percent (Polyaxon v2)."""
    from polytune.model import FailureEarlyStopping

    found = [r for r in rules if isinstance(r, FailureEarlyStopping)]
    return min(found, key=lambda r: r.percent) if found else None


# ---------------------------------------------------------------------------------------------
# Group rules
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupStop:
    """Why a group stops early: which rule, and (for a threshold) who crossed it, with what."""

    kind: str  # "threshold" | "failures"
    detail: str
    experiment: int | None = None
    metric: str | None = None
    value: float | None = None
    step: int | None = None

    @property
    def reason(self) -> str:
        """The group's reason (``group.json``, ``status``, the run's summary)."""
        return f"{EARLY_STOPPING}{self.kind}: {self.detail}"

    def experiment_reason(self) -> str:
        """The reason of an experiment that the group's early stop ended."""
        return f"{EARLY_STOPPING}{self.kind} (group stopped: {self.detail})"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "detail": self.detail,
            "experiment": self.experiment,
            "metric": self.metric,
            "value": self.value,
            "step": self.step,
            "reason": self.reason,
        }


def _op(rule: MetricEarlyStopping) -> str:
    return ">=" if rule.optimization == "maximize" else "<="


def _holds(rule: MetricEarlyStopping, value: float) -> bool:
    assert rule.value is not None
    return value >= rule.value if rule.optimization == "maximize" else value <= rule.value


def _crossing(rule: MetricEarlyStopping, exp_id: int, value: float, step: int | None) -> GroupStop:
    assert rule.value is not None
    where = "" if step is None else f" at step {step}"
    return GroupStop(
        kind="threshold",
        detail=(
            f"experiment {exp_id} reported {rule.metric}={value:.6g}{where}, "
            f"reaching {rule.metric} {_op(rule)} {rule.value:g}"
        ),
        experiment=exp_id,
        metric=rule.metric,
        value=value,
        step=step,
    )


def first_crossing(
    rules: Sequence[MetricEarlyStopping],
    exp_id: int,
    records: Sequence[Mapping[str, Any]],
    first_position: int = 1,
) -> GroupStop | None:
    """The first record of ``records`` (in order) whose value meets a threshold, or None.

    ``first_position`` is the position of ``records[0]`` among the experiment's metric lines
    (the step of a line without one).
    """
    for i, record in enumerate(records):
        for rule in rules:
            value = _number(record.get(rule.metric))
            if value is not None and _holds(rule, value):
                return _crossing(rule, exp_id, value, _step(record, first_position + i))
    return None


def crossing_in_history(
    rules: Sequence[MetricEarlyStopping], experiments: Iterable[Experiment]
) -> GroupStop | None:
    """Whether a threshold held at some point, from the records alone (a resumed group).

    An experiment crossed ``metric >= value`` iff its ``metrics_max`` did (``metrics_min`` for
    minimize); the lowest experiment id that did is named.
    """
    for exp in sorted(experiments, key=lambda e: e.id):
        for rule in rules:
            extremes = exp.metrics_max if rule.optimization == "maximize" else exp.metrics_min
            value = _number(extremes.get(rule.metric))
            if value is not None and _holds(rule, value):
                return _crossing(rule, exp.id, value, None)
    return None


def failure_stop(rule: FailureEarlyStopping | None, failed: int, total: int) -> GroupStop | None:
    """The failure rule holds: ``failed / total >= percent / 100`` (and at least one failed)."""
    if rule is None or failed <= 0 or total <= 0:
        return None
    if failed * 100 < rule.percent * total:
        return None
    return GroupStop(
        kind="failures",
        detail=f"{failed} of {total} experiments failed (>= {rule.percent:g} %)",
    )


# ---------------------------------------------------------------------------------------------
# Per-experiment policies
# ---------------------------------------------------------------------------------------------


def should_evaluate(policy: StoppingPolicy, previous_step: int | None, step: int) -> bool:
    """Whether a new point at ``step`` (after one at ``previous_step``) is an evaluation point:
    a multiple of ``evaluation_interval``, ``>= min_interval``, lies in ``(previous_step, step]``."""
    interval = max(1, policy.evaluation_interval)
    low = max(policy.min_interval, 1)
    if previous_step is not None:
        if step <= previous_step:
            return False
        low = max(low, previous_step + 1)
    boundary = -(-low // interval) * interval  # the first multiple of interval >= low
    return boundary <= step


@dataclass(frozen=True)
class Decision:
    """A policy's verdict on one experiment: stop it."""

    policy: str
    metric: str
    step: int
    value: float  # the candidate's best value so far
    reference: float  # what it was compared with
    samples: int  # the other experiments compared

    @property
    def reason(self) -> str:
        return f"{EARLY_STOPPING}{self.policy} ({self.describe()})"

    def describe(self) -> str:
        base = f"step {self.step}: best {self.metric} {self.value:.6g}"
        if self.policy in ("median", "average"):
            stat = "median" if self.policy == "median" else "mean"
            return f"{base} worse than the {stat} {self.reference:.6g} of {self.samples} runs' running averages"
        if self.policy == "truncation":
            return f"{base} in the worst share of {self.samples + 1} runs (cut at {self.reference:.6g})"
        return f"{base} too far from the best {self.reference:.6g} of {self.samples} runs"


def population(
    policy: StoppingPolicy,
    candidate: int,
    curves: Mapping[int, Curve],
    statuses: Mapping[int, Status],
) -> list[Curve]:
    """The curves a candidate is compared with: every other experiment's, without the
    succeeded ones when ``include_succeeded`` is false."""
    return [
        c
        for k, c in curves.items()
        if k != candidate and (policy.include_succeeded or statuses.get(k) is not Status.SUCCEEDED)
    ]


def decide(
    policy: StoppingPolicy,
    metric: str,
    maximize: bool,
    candidate: Curve,
    others: Iterable[Curve],
    step: int,
) -> Decision | None:
    """The verdict of ``policy`` on ``candidate`` at ``step`` (see the module docstring)."""
    best = candidate.best_upto(step, maximize)
    if best is None:
        return None
    kind = policy.kind
    refs: list[float] = []
    for other in others:
        if not other.reached(step):
            continue
        ref = (
            other.mean_upto(step)
            if kind in ("median", "average")
            else other.best_upto(step, maximize)
        )
        if ref is not None:
            refs.append(ref)
    if not refs or len(refs) < policy.min_samples:
        return None

    def worse(a: float, b: float) -> bool:
        return a < b if maximize else a > b

    if kind in ("median", "average"):
        reference = statistics.median(refs) if kind == "median" else math.fsum(refs) / len(refs)
        stop = worse(best, reference)
    elif kind == "truncation":
        n = len(refs) + 1
        k = math.floor(n * (policy.percent or 0.0) / 100.0)
        better = sum(1 for r in refs if worse(best, r))
        stop = k > 0 and better + 1 > n - k
        ranked = sorted(refs, reverse=maximize)
        reference = ranked[min(len(ranked) - 1, max(0, n - k - 1))]
    elif kind == "diff":
        reference = max(refs) if maximize else min(refs)
        gap = reference - best if maximize else best - reference
        stop = gap > (policy.percent or 0.0) / 100.0 * abs(reference)
    else:  # pragma: no cover - config validates the kinds
        return None
    if not stop:
        return None
    return Decision(kind, metric, step, best, reference, len(refs))


# ---------------------------------------------------------------------------------------------
# Stall watchdog
# ---------------------------------------------------------------------------------------------


def stalled(last_activity: float, now: float, limit: float | None) -> bool:
    """Whether an experiment silent since ``last_activity`` has been so for ``limit`` seconds."""
    return limit is not None and now - last_activity >= limit


def stall_reason(limit: float) -> str:
    return f"{STALLED} (no metric line or output for {limit:g} s)"


# ---------------------------------------------------------------------------------------------
# How stopped experiments count
# ---------------------------------------------------------------------------------------------


def stopped_early(exp: Experiment) -> bool:
    """Stopped by an early-stopping rule or the stall watchdog: a finished experiment whose
    metrics are a lower-fidelity observation (the values at the step it reached)."""
    reason = exp.reason or ""
    return exp.status is Status.STOPPED and (
        reason.startswith(EARLY_STOPPING) or reason.startswith(STALLED)
    )


def fidelity(exp: Experiment) -> int | None:
    """The step an experiment's metrics were observed at (its last metric line's step)."""
    return exp.last_step


# ---------------------------------------------------------------------------------------------
# Descriptions (status)
# ---------------------------------------------------------------------------------------------


def describe_rules(rules: Sequence[Mapping[str, Any]], options: Mapping[str, Any]) -> list[str]:
    """One line per rule of a group, from ``group.json`` (``config.early_stopping`` as recorded,
    and the run ``options``)."""
    lines: list[str] = []
    for rule in rules:
        if "metric" not in rule:
            lines.append(
                f"stop the group when {rule.get('percent', 0):g} % of the experiments failed"
            )
            continue
        metric = rule.get("metric")
        optimization = rule.get("optimization", "maximize")
        value = rule.get("value")
        if isinstance(value, int | float):
            op = ">=" if optimization == "maximize" else "<="
            implicit = "" if rule.get("optimization_given", True) else " (maximize by default)"
            lines.append(f"stop the group when an experiment's {metric} {op} {value:g}{implicit}")
        policy = rule.get("policy")
        if isinstance(policy, Mapping):
            percent = policy.get("percent")
            detail = f" {percent:g} %" if isinstance(percent, int | float) else ""
            extra = "" if policy.get("include_succeeded", True) else ", running runs only"
            lines.append(
                f"{policy.get('kind')}{detail} policy on {metric} ({optimization}): every "
                f"{policy.get('evaluation_interval', 1)} step(s) from step "
                f"{policy.get('min_interval', 1)}, with at least {policy.get('min_samples', 1)} "
                f"other run(s){extra}"
            )
    if any("metric" not in r or isinstance(r.get("value"), int | float) for r in rules):
        on = options.get("on_early_stop") or "stop"
        lines.append(
            "when the group stops early: "
            + (
                "running experiments finish"
                if on == "finish"
                else "running experiments are stopped"
            )
        )
    stall = options.get("stall_timeout")
    if isinstance(stall, int | float):
        lines.append(f"stop an experiment silent (no metric line, no output) for {stall:g} s")
    return lines


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def point_of(record: Mapping[str, Any], metric: str, position: int) -> tuple[int, float] | None:
    """The curve point ``(step, value)`` of one metric record, or None without that metric.
    ``position`` is the record's position among the experiment's metric lines (from 1)."""
    value = _number(record.get(metric))
    return None if value is None else (_step(record, position), value)


def _step(record: Mapping[str, Any], position: int) -> int:
    step = record.get("step")
    if isinstance(step, int) and not isinstance(step, bool) and step >= 0:
        return step
    if isinstance(step, float) and step.is_integer() and step >= 0:
        return int(step)
    return position
