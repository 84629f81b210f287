"""Pure data behind the review commands: one experiment in detail, export rows, a comparison of
groups, and what the HTML report plots (parameter specs, rungs, fANOVA parameter importance).

Pure (DESIGN §1): experiments, parsed metric records and the group's JSON in, plain JSON-ready
data out. No files, clocks or terminals: callers pass ``now`` and the lines they read.
scikit-learn is imported only inside :func:`fanova_importance`.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from polytune.experiment import Experiment, Objective, Status
from polytune.report import best_so_far, counts

__all__ = [
    "LOG_METHODS",
    "Importance",
    "ParamSpec",
    "best_so_far_at",
    "compare_groups",
    "design_matrix",
    "experiment_detail",
    "export_columns",
    "export_row",
    "fanova_importance",
    "fanova_trees",
    "group_comparison",
    "iso",
    "metric_history",
    "param_specs",
    "rank_of",
    "rung_points",
    "scaled_sparkline",
    "time_spent",
]

SPARK = "▁▂▃▄▅▆▇█"
#: Matrix methods whose values spread over orders of magnitude: plotted and modelled in log10.
LOG_METHODS = frozenset(
    {"loguniform", "qloguniform", "logspace", "geomspace", "lognormal", "qlognormal"}
)


def iso(ts: float | None) -> str | None:
    """A POSIX timestamp as ISO 8601 UTC with milliseconds (``2024-05-01T12:00:00.123Z``)."""
    if ts is None or not math.isfinite(ts):
        return None
    when = _dt.datetime.fromtimestamp(ts, tz=_dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


# ----------------------------------------------------------------------------------------
# time
# ----------------------------------------------------------------------------------------


def time_spent(exp: Experiment, now: float) -> dict[str, float | None]:
    """Seconds: ``queued`` (created → first start), ``duration`` (the current attempt; a running
    one counts up to ``now``) and ``total`` (every attempt, the current one included)."""
    duration = exp.duration
    if duration is None and exp.status is Status.RUNNING and exp.started_at is not None:
        duration = max(0.0, now - exp.started_at)
    total = 0.0
    counted_current = False
    for a in exp.attempts:
        start, end = _number(a.get("started_at")), _number(a.get("ended_at"))
        if start is not None and end is not None:
            total += max(0.0, end - start)
            if a.get("attempt") == exp.attempt and start == exp.started_at:
                counted_current = True
    if not counted_current and duration is not None:
        total += duration
    first_start = min(
        [s for a in exp.attempts if (s := _number(a.get("started_at"))) is not None]
        + ([exp.started_at] if exp.started_at is not None else []),
        default=None,
    )
    queued = None
    if exp.created_at is not None and first_start is not None:
        queued = max(0.0, first_start - exp.created_at)
    return {
        "queued": queued,
        "duration": duration,
        "total": total if (duration is not None or exp.attempts) else None,
    }


# ----------------------------------------------------------------------------------------
# one experiment
# ----------------------------------------------------------------------------------------


def metric_history(
    records: Sequence[Mapping[str, Any]], exp: Experiment, objective: Objective | None
) -> dict[str, dict[str, Any]]:
    """Per metric: how many values, first/last/min/max and the steps of min and max, and (for the
    objective) the best. From the experiment's metric records; falls back to the summary in the
    record when the metrics file is gone."""
    out: dict[str, dict[str, Any]] = {}
    for position, record in enumerate(records, start=1):
        step = record.get("step")
        step = step if isinstance(step, int) and not isinstance(step, bool) else position
        for name, raw in record.items():
            if name == "step":
                continue
            value = _number(raw)
            if value is None:
                continue
            h = out.get(name)
            if h is None:
                out[name] = {
                    "count": 1,
                    "first": value,
                    "last": value,
                    "min": value,
                    "max": value,
                    "min_step": step,
                    "max_step": step,
                    "last_step": step,
                }
                continue
            h["count"] += 1
            h["last"] = value
            h["last_step"] = step
            if value < h["min"]:
                h["min"], h["min_step"] = value, step
            if value > h["max"]:
                h["max"], h["max_step"] = value, step
    if not out:
        for name, raw in exp.metrics.items():
            value = _number(raw)
            if value is None:
                continue
            out[name] = {
                "count": None,
                "first": None,
                "last": value,
                "min": _number(exp.metrics_min.get(name)),
                "max": _number(exp.metrics_max.get(name)),
                "min_step": None,
                "max_step": None,
                "last_step": exp.last_step,
            }
    if objective is not None and objective.metric in out:
        h = out[objective.metric]
        h["best"] = h["max"] if objective.maximize else h["min"]
    return out


def rank_of(
    exp: Experiment, experiments: Sequence[Experiment], objective: Objective | None
) -> dict[str, int] | None:
    """``{"rank": r, "of": n}`` among the experiments that have a value (1 = best), or None."""
    if objective is None or objective.score(exp) is None:
        return None
    scored = sorted(
        ((s, e.id) for e in experiments if (s := objective.score(e)) is not None),
    )
    ids = [i for _, i in scored]
    if exp.id not in ids:
        return None
    return {"rank": ids.index(exp.id) + 1, "of": len(ids)}


def experiment_detail(
    exp: Experiment,
    objective: Objective | None,
    *,
    group: str,
    records: Sequence[Mapping[str, Any]],
    stderr_tail: Sequence[str],
    paths: Mapping[str, str],
    rank: Mapping[str, int] | None,
    lost: bool,
    now: float,
) -> dict[str, Any]:
    """Everything about one experiment, JSON-ready (``polytune experiment``)."""
    status = exp.status.value
    spent = time_spent(exp, now)
    history = metric_history(records, exp, objective)
    curve: list[float] = []
    if objective is not None:
        curve = [v for r in records if (v := _number(r.get(objective.metric))) is not None]
    attempts = []
    for a in exp.attempts:
        start, end = _number(a.get("started_at")), _number(a.get("ended_at"))
        attempts.append(
            {
                "attempt": a.get("attempt"),
                "status": a.get("status"),
                "started_at": iso(start),
                "ended_at": iso(end),
                "duration": None if start is None or end is None else max(0.0, end - start),
                "exit_code": a.get("exit_code"),
                "reason": a.get("reason"),
                "host": a.get("host"),
            }
        )
    return {
        "group": group,
        "id": exp.id,
        "status": status,
        "lost": lost,
        "reason": exp.reason,
        "exit_code": exp.exit_code,
        "attempt": exp.attempt,
        "restart_of": exp.restart_of,
        "params": exp.params,
        "config": exp.config,
        "meta": exp.meta,
        "command": exp.command,
        "objective": objective.to_json() if objective else None,
        "value": objective.value(exp) if objective else None,
        "rank": dict(rank) if rank else None,
        "created_at": iso(exp.created_at),
        "started_at": iso(exp.started_at),
        "ended_at": iso(exp.ended_at),
        "queued_seconds": spent["queued"],
        "duration_seconds": spent["duration"],
        "total_seconds": spent["total"],
        "attempts": attempts,
        "metrics": history,
        "metric_lines": exp.metric_lines,
        "objective_curve": curve,
        "pid": exp.pid,
        "host": exp.host,
        "outputs_path": exp.outputs_path,
        "paths": dict(paths),
        "stderr_tail": list(stderr_tail),
    }


# ----------------------------------------------------------------------------------------
# export
# ----------------------------------------------------------------------------------------


def _cell(value: Any) -> Any:
    """Lists and dicts as JSON text (one CSV cell); scalars unchanged."""
    if isinstance(value, list | dict):
        return json.dumps(value, sort_keys=True)
    return value


def export_row(exp: Experiment, objective: Objective | None, now: float) -> dict[str, Any]:
    """One experiment as a flat row: the same columns in CSV and JSON.

    ``value`` is the objective's decision value (its last report), ``best_value`` the best it
    reached during the run; per metric ``metrics.X`` (last), ``metrics.X.min``/``.max``.
    """
    spent = time_spent(exp, now)
    row: dict[str, Any] = {
        "id": exp.id,
        "status": exp.status.value,
        "reason": exp.reason,
        "exit_code": exp.exit_code,
        "attempt": exp.attempt,
        "restart_of": exp.restart_of,
        "created_at": iso(exp.created_at),
        "started_at": iso(exp.started_at),
        "ended_at": iso(exp.ended_at),
        "queued_seconds": spent["queued"],
        "duration_seconds": spent["duration"],
        "total_seconds": spent["total"],
    }
    if objective is not None:
        row["value"] = objective.value(exp)
        extreme = exp.metrics_max if objective.maximize else exp.metrics_min
        row["best_value"] = _number(extreme.get(objective.metric))
    for k, v in exp.params.items():
        row[f"params.{k}"] = _cell(v)
    for k, v in exp.metrics.items():
        row[f"metrics.{k}"] = _number(v)
        row[f"metrics.{k}.min"] = _number(exp.metrics_min.get(k))
        row[f"metrics.{k}.max"] = _number(exp.metrics_max.get(k))
    for k, v in exp.meta.items():
        row[f"meta.{k}"] = _cell(v)
    return row


def export_columns(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every column of ``rows`` in first-seen order, so rows with fewer keys still line up."""
    columns: dict[str, None] = {}
    for r in rows:
        for k in r:
            columns.setdefault(k, None)
    return list(columns) or ["id"]


# ----------------------------------------------------------------------------------------
# compare
# ----------------------------------------------------------------------------------------


def best_so_far_at(curve: Sequence[float], checkpoints: Sequence[int]) -> dict[int, float | None]:
    """The best value after the first ``n`` valued experiments, for each ``n`` of ``checkpoints``
    (None when the group has fewer)."""
    return {n: (curve[n - 1] if 0 < n <= len(curve) else None) for n in checkpoints}


def scaled_sparkline(values: Sequence[float], lo: float, hi: float, width: int = 24) -> str:
    """A sparkline on a shared scale ``[lo, hi]`` (so several groups' lines compare)."""
    if not values:
        return ""
    if len(values) > width:
        step = len(values) / width
        values = [values[min(len(values) - 1, int(i * step))] for i in range(width - 1)] + [
            values[-1]
        ]
    span = hi - lo
    if span <= 0 or not math.isfinite(span):
        return SPARK[3] * len(values)
    return "".join(SPARK[max(0, min(7, int((v - lo) / span * 7.999)))] for v in values)


def group_comparison(
    info: Mapping[str, Any],
    experiments: Sequence[Experiment],
    objective: Objective | None,
    *,
    state: str,
    now: float,
) -> dict[str, Any]:
    """One group's column of ``polytune compare``."""
    c = counts(experiments)
    best = objective.best(experiments) if objective else None
    compute = sum(time_spent(e, now)["total"] or 0.0 for e in experiments)
    starts = [
        s
        for e in experiments
        for s in [e.started_at, *(_number(a.get("started_at")) for a in e.attempts)]
        if s is not None
    ]
    running = any(e.status is Status.RUNNING for e in experiments)
    ends = [e.ended_at for e in experiments if e.ended_at is not None]
    wall = None
    if starts:
        last = now if running else max(ends, default=max(starts))
        wall = max(0.0, last - min(starts))
    resources = [
        r
        for e in experiments
        if e.started_at is not None and (r := _number(e.meta.get("resource"))) is not None
    ]
    curve = best_so_far(experiments, objective) if objective else []
    return {
        "name": info.get("name"),
        "state": state,
        "algorithm": info.get("algorithm"),
        "seed": info.get("seed"),
        "metric": objective.to_json() if objective else None,
        "experiments": len(experiments),
        "planned": info.get("planned_total"),
        "counts": c,
        "best": (
            {
                "id": best.id,
                "value": objective.value(best),
                "config": best.config or best.params,
                "params": best.params,
            }
            if best is not None and objective is not None
            else None
        ),
        "compute_seconds": compute,
        "wall_seconds": wall,
        "resource_spent": sum(resources) if resources else None,
        "best_so_far": curve,
        "created_at": iso(_number(info.get("created_at"))),
    }


def compare_groups(columns: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The comparison document: the groups' columns, which of them is best, and the caveats."""
    metrics = {json.dumps(c.get("metric"), sort_keys=True) for c in columns}
    same_metric = len(metrics) == 1 and columns[0].get("metric") is not None if columns else False
    notes: list[str] = []
    winner = None
    if not same_metric and len(columns) > 1:
        notes.append(
            "the groups do not share one metric and optimization: their values are not comparable"
        )
    elif same_metric:
        metric = columns[0]["metric"]
        maximize = metric.get("optimization", "maximize") == "maximize"
        top: tuple[float, str] | None = None
        for c in columns:
            if c.get("best"):
                v = float(c["best"]["value"])
                if top is None or (v > top[0] if maximize else v < top[0]):
                    top = (v, str(c["name"]))
        winner = top[1] if top else None
    checkpoints = _checkpoints(max((len(c["best_so_far"]) for c in columns), default=0))
    return {
        "groups": [dict(c) for c in columns],
        "same_metric": same_metric,
        "best_group": winner,
        "checkpoints": checkpoints,
        "best_so_far_at": {
            str(c["name"]): {
                str(k): v for k, v in best_so_far_at(c["best_so_far"], checkpoints).items()
            }
            for c in columns
        },
        "notes": notes,
    }


def _checkpoints(n: int) -> list[int]:
    """1, 5, 10, 20, 50, 100, 200, 500, … below ``n``, and ``n`` itself."""
    out: list[int] = []
    scale = 1
    while True:
        for base in (1, 2, 5):
            value = base * scale
            if value == 2 and scale == 1:
                continue
            if value >= n:
                return [*out, n] if n > 0 else out
            out.append(value)
        scale *= 10


# ----------------------------------------------------------------------------------------
# report data: parameters, rungs, importance
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamSpec:
    """How a matrix parameter is plotted and modelled.

    ``categorical`` parameters get one slot per value (``values`` in order; for a numeric
    parameter with a few declared values, ``values`` are only where its ticks go); numeric ones are
    plotted on a log10 axis when ``log`` (their matrix method spreads over orders of
    magnitude, or, without a method, their observed values span at least two decades).
    ``bounds`` is the search domain (from the group's config, else the observed range).
    """

    name: str
    categorical: bool
    log: bool
    bounds: tuple[float, float] | None
    values: tuple[Any, ...] = ()
    method: str | None = None

    def encode(self, value: Any) -> float | None:
        """The value on the model's axis (category index, log10, or the number itself)."""
        if self.categorical:
            key = _key(value)
            for i, v in enumerate(self.values):
                if _key(v) == key:
                    return float(i)
            return None
        number = _number(value)
        if number is None:
            return None
        if self.log:
            return math.log10(number) if number > 0 else None
        return number

    def domain(self) -> tuple[float, float] | None:
        """The model's axis range (categories: ±0.5 around the indices, so each weighs the same)."""
        if self.categorical:
            return (-0.5, len(self.values) - 0.5) if self.values else None
        if self.bounds is None:
            return None
        lo, hi = self.bounds
        if self.log:
            if lo <= 0 or hi <= 0:
                return None
            return (math.log10(lo), math.log10(hi))
        return (lo, hi)


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def param_specs(info: Mapping[str, Any], experiments: Sequence[Experiment]) -> list[ParamSpec]:
    """The group's varying matrix parameters, in matrix order (parameters with one value only —
    constants — are left out: nothing to plot or explain)."""
    declared: dict[str, Mapping[str, Any]] = {}
    config = info.get("config")
    space = config.get("space") if isinstance(config, Mapping) else None
    if isinstance(space, list):
        for p in space:
            if isinstance(p, Mapping) and isinstance(p.get("name"), str):
                declared[p["name"]] = p
    names: dict[str, None] = dict.fromkeys(declared)
    for e in experiments:
        for k in e.config:
            names.setdefault(k, None)
    specs = []
    for name in names:
        observed = [e.config[name] for e in experiments if name in e.config]
        distinct = {_key(v): v for v in observed}
        if len(distinct) < 2:
            continue
        p = declared.get(name, {})
        method = p.get("method") if isinstance(p.get("method"), str) else None
        numeric = [f for v in observed if (f := _number(v)) is not None]
        categorical = bool(p.get("categorical")) or len(numeric) < len(observed)
        if categorical:
            values = list(p.get("values") or [])
            keys = {_key(v) for v in values}
            values.extend(v for k, v in distinct.items() if k not in keys)
            specs.append(ParamSpec(name, True, False, None, tuple(values), method))
            continue
        lo, hi = min(numeric), max(numeric)
        bounds_raw = p.get("bounds")
        if isinstance(bounds_raw, list | tuple) and len(bounds_raw) == 2:
            b0, b1 = _number(bounds_raw[0]), _number(bounds_raw[1])
            if b0 is not None and b1 is not None and b0 < b1:
                lo, hi = min(lo, b0), max(hi, b1)
        # the matrix method says; without one (mapping), two decades of observed values do
        log = (
            (method in LOG_METHODS) if method is not None else (hi / lo >= 100 if lo > 0 else False)
        )
        log = log and lo > 0
        declared_values = p.get("values")
        ticks: tuple[Any, ...] = ()
        if isinstance(declared_values, list) and 1 < len(declared_values) <= 12:
            numbers = [v for v in declared_values if _number(v) is not None]
            if len(numbers) == len(declared_values):
                ticks = tuple(sorted(numbers))
        specs.append(ParamSpec(name, False, log, (lo, hi), ticks, method))
    return specs


def design_matrix(
    specs: Sequence[ParamSpec], experiments: Sequence[Experiment], objective: Objective
) -> tuple[np.ndarray[Any, np.dtype[np.float64]], np.ndarray[Any, np.dtype[np.float64]], list[int]]:
    """``X`` (encoded params), ``y`` (objective values) and the ids of the experiments that have
    a value and every parameter."""
    rows, ys, ids = [], [], []
    for e in experiments:
        value = objective.value(e)
        if value is None or not e.status.is_done:
            continue
        encoded = [s.encode(e.config.get(s.name)) for s in specs]
        if any(x is None for x in encoded):
            continue
        rows.append(encoded)
        ys.append(value)
        ids.append(e.id)
    X = np.asarray(rows, dtype=float).reshape(len(rows), len(specs))
    return X, np.asarray(ys, dtype=float), ids


@dataclass(frozen=True)
class Importance:
    """fANOVA main-effect importances: ``share`` sums to 1 over the parameters; ``explained``
    is the part of the forest's variance that the main effects explain (the rest is
    interactions)."""

    share: dict[str, float]
    explained: float
    n_experiments: int
    n_trees: int
    note: str = ""
    raw: dict[str, float] = field(default_factory=dict)


def fanova_trees(
    trees: Sequence[tuple[Any, Any, Any, Any, Any]], domain: Sequence[tuple[float, float]]
) -> tuple[list[float], float]:
    """Main-effect variance fractions of each feature, averaged over regression trees.

    A tree is ``(children_left, children_right, feature, threshold, value)`` arrays as in
    scikit-learn's ``tree_``. Each tree is a piecewise-constant function over the box
    ``domain``; under the uniform measure on that box (Hutter, Hoos & Leyton-Brown 2014,
    "An Efficient Approach for Assessing Hyperparameter Importance") its variance splits into
    a main effect per feature plus interactions. The main effect of feature ``i`` is the tree
    averaged over every other feature, ``f_i(x_i) = Σ_leaves v · vol(leaf) / width_i(leaf)`` for
    the leaves whose interval on ``i`` holds ``x_i``; its variance over ``x_i``, divided by the
    tree's total variance, is ``i``'s fraction. Returns the fractions averaged over the trees
    that vary, and the mean of their sum (the share of variance the main effects explain).
    """
    d = len(domain)
    lo_b = np.array([a for a, _ in domain], dtype=float)
    hi_b = np.array([b for _, b in domain], dtype=float)
    span = hi_b - lo_b
    sums = np.zeros(d)
    used = 0
    for left, right, feature, threshold, value in trees:
        lows, highs, vals = [], [], []
        stack = [(0, lo_b.copy(), hi_b.copy())]
        while stack:
            node, lo, hi = stack.pop()
            if left[node] == -1:
                lows.append(lo)
                highs.append(hi)
                vals.append(float(np.ravel(value[node])[0]))
                continue
            f, t = int(feature[node]), float(threshold[node])
            t = min(max(t, lo[f]), hi[f])
            hi_left = hi.copy()
            hi_left[f] = t
            lo_right = lo.copy()
            lo_right[f] = t
            stack.append((int(left[node]), lo, hi_left))
            stack.append((int(right[node]), lo_right, hi))
        L = np.asarray(lows)
        H = np.asarray(highs)
        v = np.asarray(vals)
        widths = (H - L) / span  # fraction of the domain on each axis
        vol = np.prod(widths, axis=1)
        keep = vol > 0
        if not keep.any():
            continue
        L, H, v, widths, vol = L[keep], H[keep], v[keep], widths[keep], vol[keep]
        mean = float(np.sum(vol * v))
        total = float(np.sum(vol * (v - mean) ** 2))
        if total <= 1e-300:
            continue
        used += 1
        for i in range(d):
            cuts = np.unique(np.concatenate([L[:, i], H[:, i], [lo_b[i], hi_b[i]]]))
            mids = (cuts[:-1] + cuts[1:]) / 2
            inside = (L[None, :, i] <= mids[:, None]) & (mids[:, None] < H[None, :, i])
            marginal = inside @ (v * vol / widths[:, i])
            weight = np.diff(cuts) / span[i]
            sums[i] += float(np.sum(weight * (marginal - mean) ** 2)) / total
    if used == 0:
        return [0.0] * d, 0.0
    fractions = sums / used
    return [float(x) for x in fractions], float(np.sum(fractions))


def fanova_importance(
    specs: Sequence[ParamSpec],
    experiments: Sequence[Experiment],
    objective: Objective,
    *,
    n_trees: int = 64,
    seed: int = 0,
    min_experiments: int = 4,
) -> Importance | str:
    """fANOVA-style importance of each parameter for the objective, from a random forest fitted
    on the group's results; a sentence saying why not when it cannot be computed."""
    usable = [s for s in specs if s.domain() is not None]
    if not usable:
        return "no parameter varies across the experiments"
    X, y, _ = design_matrix(usable, experiments, objective)
    if len(y) < min_experiments:
        return f"needs at least {min_experiments} ended experiments with a value of {objective.metric} (has {len(y)})"
    if float(np.ptp(y)) == 0.0:
        return f"every experiment has the same {objective.metric}: nothing to explain"
    from sklearn.ensemble import RandomForestRegressor

    forest = RandomForestRegressor(
        n_estimators=n_trees,
        max_depth=64,
        min_samples_split=2,
        min_samples_leaf=1,
        random_state=seed,
        n_jobs=1,
    )
    forest.fit(X, y)
    trees = [
        (
            est.tree_.children_left,
            est.tree_.children_right,
            est.tree_.feature,
            est.tree_.threshold,
            est.tree_.value,
        )
        for est in forest.estimators_
    ]
    domains = [s.domain() for s in usable]
    fractions, explained = fanova_trees(trees, [d for d in domains if d is not None])
    total = sum(fractions)
    raw = {s.name: f for s, f in zip(usable, fractions, strict=True)}
    share = {name: (f / total if total > 0 else 0.0) for name, f in raw.items()}
    return Importance(
        share=share, explained=explained, n_experiments=len(y), n_trees=n_trees, raw=raw
    )


def rung_points(
    experiments: Sequence[Experiment], objective: Objective | None
) -> list[dict[str, Any]]:
    """The experiments of a Hyperband/ASHA group as points (bracket, rung, resource, value,
    status, configuration key, the experiment it was promoted from when the searcher recorded
    ``meta.promoted_from``); empty when no experiment carries ``meta.rung``."""
    out = []
    for e in experiments:
        rung = e.meta.get("rung")
        if isinstance(rung, bool) or not isinstance(rung, int):
            continue
        bracket = e.meta.get("bracket")
        out.append(
            {
                "id": e.id,
                "bracket": bracket
                if isinstance(bracket, int) and not isinstance(bracket, bool)
                else 0,
                "rung": rung,
                "resource": _number(e.meta.get("resource")),
                "value": objective.value(e) if objective else None,
                "status": e.status.value,
                "config_key": _key(e.config),
                "promoted_from": e.meta.get("promoted_from"),
            }
        )
    return out
