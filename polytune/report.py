"""Pure summaries of a group: counts, best, rows for tables/JSON/CSV, best-so-far curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from polytune.experiment import Experiment, Objective, Status

__all__ = ["best_so_far", "experiment_row", "objective_of", "sparkline", "summarize"]

SPARK = "▁▂▃▄▅▆▇█"


def objective_of(group: Mapping[str, Any]) -> Objective | None:
    metric = group.get("metric")
    if isinstance(metric, dict) and isinstance(metric.get("name"), str):
        return Objective(metric["name"], str(metric.get("optimization", "maximize")))
    return None


def counts(experiments: Sequence[Experiment]) -> dict[str, int]:
    out = {s.value: 0 for s in Status}
    for e in experiments:
        out[e.status.value] += 1
    return out


def best_so_far(experiments: Sequence[Experiment], objective: Objective) -> list[float]:
    """Best value after each experiment (by id) that has a value; ended experiments only."""
    best: float | None = None
    out: list[float] = []
    value, maximize = objective.value, objective.maximize  # inlined: status of 10,000s
    for e in sorted(experiments, key=lambda x: x.id):
        if not e.status.is_done or (v := value(e)) is None:
            continue
        if best is None or (v > best if maximize else v < best):
            best = v
        out.append(best)
    return out


def sparkline(values: Sequence[float], width: int = 30) -> str:
    """A compact unicode sparkline; higher glyph = higher value."""
    if not values:
        return ""
    if len(values) > width:
        step = len(values) / width
        values = [values[min(len(values) - 1, int(i * step))] for i in range(width - 1)] + [
            values[-1]
        ]
    lo, hi = min(values), max(values)
    span = hi - lo
    if span == 0:
        return SPARK[3] * len(values)
    return "".join(SPARK[min(7, int((v - lo) / span * 7.999))] for v in values)


def summarize(
    group: Mapping[str, Any],
    experiments: Sequence[Experiment],
    objective: Objective | None,
    *,
    state: str,
) -> dict[str, Any]:
    """The header of ``status``/``groups``: counts, best, timing, state."""
    c = counts(experiments)
    best = objective.best(experiments) if objective else None
    starts = [e.started_at for e in experiments if e.started_at is not None]
    ends = [e.ended_at for e in experiments if e.ended_at is not None]
    compute = 0.0
    for e in experiments:
        if e.started_at is not None and e.ended_at is not None and e.ended_at > e.started_at:
            compute += e.ended_at - e.started_at  # ``duration``, inlined: status of 10,000s
    out: dict[str, Any] = {
        "name": group.get("name"),
        "state": state,
        "algorithm": group.get("algorithm"),
        "seed": group.get("seed"),
        "metric": objective.to_json() if objective else None,
        "experiments": len(experiments),
        "planned": group.get("planned_total"),
        "counts": c,
        "created_at": group.get("created_at"),
        "first_start": min(starts) if starts else None,
        "last_end": max(ends) if ends else None,
        "compute_seconds": compute,
        "best": None,
        "reason": group.get("reason"),
    }
    if best is not None and objective is not None:
        out["best"] = {
            "id": best.id,
            "value": objective.value(best),
            "params": best.config or best.params,
        }
        out["best_so_far"] = best_so_far(experiments, objective)
    return out


def experiment_row(exp: Experiment, objective: Objective | None) -> dict[str, Any]:
    """One experiment as a flat JSON/CSV-friendly record."""
    row: dict[str, Any] = {
        "id": exp.id,
        "status": exp.status.value,
        "attempt": exp.attempt,
        "duration": exp.duration,
        "exit_code": exp.exit_code,
        "reason": exp.reason,
        "value": objective.value(exp) if objective else None,
        "params": exp.params,
        "config": exp.config,
        "metrics": exp.metrics,
        "metrics_min": exp.metrics_min,
        "metrics_max": exp.metrics_max,
        "meta": exp.meta,
        "started_at": exp.started_at,
        "ended_at": exp.ended_at,
        "restart_of": exp.restart_of,
    }
    return row


def flat_row(exp: Experiment, objective: Objective | None) -> dict[str, Any]:
    """Flattened for CSV: ``params.lr``, ``metrics.loss`` columns."""
    row: dict[str, Any] = {
        "id": exp.id,
        "status": exp.status.value,
        "attempt": exp.attempt,
        "duration": exp.duration,
        "exit_code": exp.exit_code,
        "reason": exp.reason,
    }
    if objective is not None:
        row["value"] = objective.value(exp)
    for k, v in exp.params.items():
        row[f"params.{k}"] = v
    for k, v in exp.metrics.items():
        row[f"metrics.{k}"] = v
    for k, v in exp.meta.items():
        row[f"meta.{k}"] = v
    return row
