"""``polytune check``: what a polyaxonfile means and what ``run`` would do with it.

``build_report`` is pure (a Config in, a JSON-ready dict out; ``check --json`` prints it);
``render_report`` draws that dict with rich. Every parameter is shown with its *effective* domain
(``Param.describe()``) so that Polyaxon's surprises — ``logspace`` exponents, natural-log
``loguniform`` bounds, ``pvalues`` that do not sum to 1 — are visible before anything runs.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from rich.text import Text

from polytune.algorithms import hyperband_schedule as hb
from polytune.algorithms.asha import rung_resources as asha_rungs
from polytune.config import CONTEXT_NAMES
from polytune.model import (
    ASHASettings,
    BOSettings,
    Config,
    FailureEarlyStopping,
    GridSettings,
    HyperbandSettings,
    MappingSettings,
    MetricEarlyStopping,
    RandomSettings,
    TPESettings,
)
from polytune.render import render_command
from polytune.space import plain

__all__ = ["build_report", "example_command", "example_values", "render_report"]

# The seed of the example configuration when the group has none (the real one is drawn at run time).
_EXAMPLE_SEED = 0


def example_values(config: Config) -> dict[str, Any] | None:
    """The params of one example experiment: the first grid point, the first mapping, or a
    sample drawn with the group's seed (plus the constants and Hyperband's or ASHA's first
    resource)."""
    settings = config.settings
    if isinstance(settings, MappingSettings):
        drawn: dict[str, Any] = dict(settings.values[0])
    elif not config.space.params:
        return None
    elif isinstance(settings, GridSettings):
        drawn = next(config.space.grid())
    else:
        seed = config.seed if config.seed is not None else _EXAMPLE_SEED
        drawn = config.space.sample(np.random.default_rng(seed))
    values: dict[str, Any] = {**config.params, **drawn}
    if isinstance(settings, HyperbandSettings):
        first = hb.schedule(settings.max_iter, settings.eta, settings.resource_type)[0]
        values[settings.resource_name] = first.resource
    elif isinstance(settings, ASHASettings):
        values[settings.resource_name] = _asha_rungs(settings)[0]
    return plain(values)  # type: ignore[no-any-return]


def example_command(config: Config) -> str | None:
    """The shell command of one example experiment (``globals.*`` shown as ``<globals.name>``),
    rendered exactly as ``run`` renders it; None when there is no command."""
    if config.command is None:
        return None
    values = example_values(config) or dict(config.params)
    context = {name: f"<{name}>" for name in CONTEXT_NAMES}
    return render_command(config.command, {**context, **values})


def _rule(rule: MetricEarlyStopping | FailureEarlyStopping) -> dict[str, Any]:
    out: dict[str, Any] = asdict(rule)
    if isinstance(rule, FailureEarlyStopping):
        out["kind"] = "failure"
        out["text"] = f"stop the group when {rule.percent:g} % of the experiments have failed"
        return out
    out["kind"] = "metric"
    parts = []
    if rule.value is not None:
        op = ">=" if rule.optimization == "maximize" else "<="
        implicit = "" if rule.optimization_given else " (maximize by default)"
        parts.append(
            f"stop the group when any experiment's last {rule.metric} {op} {rule.value:g}{implicit}"
        )
    if rule.policy is not None:
        p = rule.policy
        detail = f", {p.percent:g} %" if p.percent is not None else ""
        parts.append(
            f"{p.kind} policy on {rule.metric} ({rule.optimization}{detail}) every "
            f"{p.evaluation_interval} step(s) after {p.min_interval}, with at least "
            f"{p.min_samples} run(s)"
        )
    out["text"] = "; ".join(parts)
    return out


def _asha_rungs(s: ASHASettings) -> list[int | float]:
    return asha_rungs(s.min_resource, s.max_resource, s.eta, s.resource_type)


def _experiments(config: Config) -> int | None:
    """How many experiments ``run`` creates (before any early stopping)."""
    s = config.settings
    if isinstance(s, GridSettings):
        size = config.space.size
        if size is None:
            return None
        return size if s.n_experiments is None else min(size, s.n_experiments)
    if isinstance(s, RandomSettings):
        return s.n_experiments
    if isinstance(s, MappingSettings):
        return len(s.values)
    if isinstance(s, HyperbandSettings):
        return hb.total_experiments(s.max_iter, s.eta, s.resource_type)
    if isinstance(s, ASHASettings):
        return None  # n_experiments configurations, plus promotions that depend on results
    if isinstance(s, BOSettings):
        return s.n_initial_trials + s.n_iterations
    if isinstance(s, TPESettings):
        return s.n_experiments
    return None


def build_report(config: Config) -> dict[str, Any]:
    """Everything ``check`` shows, as plain JSON types."""
    warnings = [w for p in config.space.params for w in p.warnings] + list(config.warnings)
    metric = config.metric
    report: dict[str, Any] = {
        "sources": list(config.sources),
        "base_dir": str(config.base_dir),
        "layout": config.layout,
        "name": config.name,
        "algorithm": config.algorithm,
        "concurrency": config.concurrency,
        "seed": config.seed,
        "seed_text": str(config.seed) if config.seed is not None else "drawn at run time",
        "metric": asdict(metric) if metric else None,
        "early_stopping": [_rule(r) for r in config.early_stopping],
        "params": plain(dict(config.params)),
        "space": {
            "size": config.space.size,
            "discrete": config.space.is_discrete,
            "parameters": [p.to_json() for p in config.space.params],
        },
        "experiments": _experiments(config),
        "settings": plain(asdict(config.settings)),
        "command": None,
        "command_note": config.command_note,
        "polytune": plain(asdict(config.polytune)),
        "notes": list(config.notes),
        "warnings": warnings,
    }
    s = config.settings
    if isinstance(s, HyperbandSettings):
        rungs = hb.schedule(s.max_iter, s.eta, s.resource_type)
        report["hyperband"] = {
            "max_iter": s.max_iter,
            "eta": s.eta,
            "resource": {"name": s.resource_name, "type": s.resource_type},
            "s_max": hb.s_max(s.max_iter, s.eta),
            "budget": hb.budget(s.max_iter, s.eta),
            "resume": s.resume,
            "schedule": [
                {
                    "bracket": r.bracket,
                    "rung": r.rung,
                    "experiments": r.n_experiments,
                    "resource": r.resource,
                }
                for r in rungs
            ],
            "total_experiments": sum(r.n_experiments for r in rungs),
        }
    elif isinstance(s, ASHASettings):
        report["asha"] = {
            "min_resource": s.min_resource,
            "max_resource": s.max_resource,
            "eta": s.eta,
            "resource": {"name": s.resource_name, "type": s.resource_type},
            "resume": s.resume,
            "configurations": s.n_experiments,
            "rungs": [
                {"rung": k, "resource": r, "promote_top": f"1/{s.eta:g}"}
                for k, r in enumerate(_asha_rungs(s))
            ],
        }
    elif isinstance(s, BOSettings):
        report["bo"] = {
            "initial_trials": s.n_initial_trials,
            "iterations": s.n_iterations,
            "total_experiments": s.n_initial_trials + s.n_iterations,
        }
    elif isinstance(s, TPESettings):
        report["tpe"] = {
            "algorithm": s.algorithm,
            "initial_trials": min(s.n_initial_trials, s.n_experiments),
            "guided_trials": max(0, s.n_experiments - s.n_initial_trials),
            "total_experiments": s.n_experiments,
        }
    elif isinstance(s, MappingSettings):
        report["mapping"] = {"values": plain([dict(v) for v in s.values])}
    if config.command is not None:
        report["command"] = {
            "kind": config.command.kind,
            "template": list(config.command.parts),
            "example": example_command(config),
            "example_params": example_values(config),
        }
    return report


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------


def _kv_table(rows: list[tuple[str, str]]) -> Table:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(Text(key), Text(value))
    return table


def render_report(report: dict[str, Any], console: Console) -> None:
    """Draw ``build_report``'s dict for a terminal."""
    sources = ", ".join(report["sources"])
    console.print(
        Text.assemble(("polyaxonfile ", "bold"), sources, f"  ({report['layout']} layout)")
    )
    metric = report["metric"]
    experiments = report["experiments"]
    rows = [
        ("algorithm", report["algorithm"]),
        ("concurrency", str(report["concurrency"])),
        ("seed", report["seed_text"]),
        ("metric", f"{metric['name']} ({metric['optimization']})" if metric else "none"),
        ("experiments", "unknown" if experiments is None else str(experiments)),
    ]
    if report["space"]["size"] is not None and report["space"]["parameters"]:
        rows.append(("space size", f"{report['space']['size']} configurations"))
    if report["early_stopping"]:
        for i, rule in enumerate(report["early_stopping"]):
            rows.append(("early stopping" if i == 0 else "", rule["text"]))
    else:
        rows.append(("early stopping", "none"))
    console.print(_kv_table(rows))

    if report["space"]["parameters"]:
        table = Table(title="Search space", title_justify="left")
        table.add_column("parameter", style="bold")
        table.add_column("method")
        table.add_column("effective domain")
        for p in report["space"]["parameters"]:
            table.add_row(Text(p["name"]), Text(p["method"]), Text(p["domain"]))
        console.print(table)
    if "mapping" in report:
        values = report["mapping"]["values"]
        table = Table(title="Mapping", title_justify="left")
        keys = list(values[0]) if values else []
        table.add_column("#", justify="right")
        for key in keys:
            table.add_column(key)
        for i, row in enumerate(values, 1):
            table.add_row(str(i), *(Text(repr(row.get(k))) for k in keys))
        console.print(table)
    if report["params"]:
        table = Table(title="Constant params", title_justify="left")
        table.add_column("name", style="bold")
        table.add_column("value")
        for name, value in report["params"].items():
            table.add_row(Text(name), Text(repr(value)))
        console.print(table)

    if "hyperband" in report:
        h = report["hyperband"]
        resource = h["resource"]
        table = Table(
            title=(
                f"Hyperband schedule: max_iter={h['max_iter']}, eta={h['eta']:g}, "
                f"resource {resource['name']} ({resource['type']})"
                + (", resume" if h["resume"] else "")
            ),
            title_justify="left",
        )
        table.add_column("bracket", justify="right")
        table.add_column("rung", justify="right")
        table.add_column("experiments", justify="right")
        table.add_column(resource["name"], justify="right")
        for r in h["schedule"]:
            value = r["resource"]
            shown = f"{value:.4g}" if isinstance(value, float) else str(value)
            table.add_row(str(r["bracket"]), str(r["rung"]), str(r["experiments"]), shown)
        table.add_section()
        table.add_row("total", "", str(h["total_experiments"]), "")
        console.print(table)
    if "asha" in report:
        a = report["asha"]
        resource = a["resource"]
        values = ", ".join(
            f"{v:.4g}" if isinstance(v, float) else str(v)
            for v in (r["resource"] for r in a["rungs"])
        )
        console.print(
            Text(
                f"ASHA: {a['configurations']} configurations; rungs {resource['name']} "
                f"({resource['type']}) = {values}; a configuration moves up as soon as it is in "
                f"the top 1/{a['eta']:g} of its rung"
                + ("; resume from checkpoints" if a["resume"] else "")
            )
        )
    if "bo" in report:
        bo = report["bo"]
        console.print(
            Text(
                f"Bayesian optimization: {bo['initial_trials']} quasi-random (Sobol) initial trials, then "
                f"{bo['iterations']} guided iterations ({bo['total_experiments']} experiments)"
            )
        )
    if "tpe" in report:
        tpe = report["tpe"]
        console.print(
            Text(
                f"TPE ({tpe['algorithm']}): {tpe['initial_trials']} random start-up trials, then "
                f"{tpe['guided_trials']} guided ({tpe['total_experiments']} experiments)"
            )
        )

    command = report["command"]
    if command is not None:
        console.print(Text("Command", style="bold"))
        for part in command["template"]:
            console.print(Text(f"  {part}"))
        if command["example"] is not None:
            console.print(Text("Example", style="bold"))
            console.print(Text(f"  {command['example']}"))
    elif report["command_note"]:
        console.print(Text.assemble(("Command ", "bold"), report["command_note"]))
    for note in report["notes"]:
        console.print(Text.assemble(("note: ", "cyan"), note))
    for warning in report["warnings"]:
        console.print(Text.assemble(("warning: ", "yellow bold"), warning))
