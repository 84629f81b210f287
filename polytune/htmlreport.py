"""``polytune report``: a static HTML page with the plots of one group.

The page is ``index.html`` plus one PNG per figure **in the same folder**, referenced by
relative file names. Files rather than inline ``data:`` URIs because each figure is then an
ordinary image that can go into slides, a README or an issue as it is, the HTML stays small
enough to read and diff, and the folder is still self-contained: copy or zip it and it opens
from disk anywhere. There is no script, no font and no style sheet from the network.

matplotlib (the optional extra ``polytune[report]``) draws the figures with its object API and
the Agg canvas only (no pyplot, no GUI backend, no global state); scikit-learn fits the forest of
the parameter importance. Both are imported when a report is built, never by ``polytune``'s
other commands.
"""

from __future__ import annotations

import html
import importlib.util
import itertools
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polytune import __version__
from polytune.errors import StoreError, UsageError
from polytune.experiment import Experiment, Objective, Status
from polytune.metrics import Record, curve, parse_lines, parse_stdout_line
from polytune.report import best_so_far, counts, objective_of
from polytune.review import (
    Importance,
    ParamSpec,
    fanova_importance,
    iso,
    param_specs,
    rung_points,
    time_spent,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from polytune.store import GroupStore

__all__ = ["INSTALL_HINT", "Report", "build_report", "read_records", "require_matplotlib"]

INSTALL_HINT = "the HTML report needs matplotlib: pip install 'polytune[report]'"
INDEX = "index.html"
DPI = 100
STATUS_COLORS = {
    "succeeded": "#2a9d8f",
    "failed": "#d62828",
    "stopped": "#f77f00",
    "running": "#457b9d",
    "lost": "#9b5de5",
    "created": "#8d99ae",
}
#: Every file name a report writes besides ``index.html`` (stale ones are removed).
FIGURES = (
    "history.png",
    "curves.png",
    "parallel.png",
    "slices.png",
    "importance.png",
    "rungs.png",
    "timeline.png",
)


def require_matplotlib() -> None:
    """Raise :class:`UsageError` (exit 2) with the install command when matplotlib is missing."""
    if importlib.util.find_spec("matplotlib") is None:
        raise UsageError(INSTALL_HINT)


@dataclass
class Section:
    title: str
    image: str | None = None
    size: tuple[int, int] | None = None
    caption: str = ""
    body: str = ""  # extra HTML (already escaped)
    skipped: str | None = None


@dataclass
class Report:
    html: Path
    images: list[Path]
    seconds: float
    skipped: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "html": str(self.html),
            "images": [str(p) for p in self.images],
            "seconds": round(self.seconds, 3),
            "skipped": self.skipped,
        }


# ----------------------------------------------------------------------------------------
# reading
# ----------------------------------------------------------------------------------------


def read_records(store: GroupStore, exp_id: int, stdout_metrics: bool = False) -> list[Record]:
    """The metric records of an experiment's current attempt (``metrics.jsonl``; with
    ``stdout_metrics``, lines scraped from ``stdout.log`` when that file is empty)."""
    paths = store.paths(exp_id)
    try:
        with open(paths.metrics, "rb") as fh:
            records = parse_lines(fh)
    except FileNotFoundError:
        records = []
    except OSError as e:
        raise StoreError(f"cannot read {paths.metrics}: {e.strerror}") from e
    if records or not stdout_metrics:
        return records
    try:
        with open(paths.stdout, "rb") as fh:
            return [r for line in fh if (r := parse_stdout_line(line)) is not None]
    except OSError:
        return []


def _stdout_metrics(info: Mapping[str, Any]) -> bool:
    config = info.get("config")
    section = config.get("polytune") if isinstance(config, Mapping) else None
    return bool(section.get("stdout_metrics")) if isinstance(section, Mapping) else False


# ----------------------------------------------------------------------------------------
# figures (matplotlib object API on the Agg canvas)
# ----------------------------------------------------------------------------------------


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    return fig


def _style(ax: Axes) -> None:
    ax.grid(True, color="#e5e5e5", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


#: Legends right of the plot: never over the data, and no costly search for the "best" place.
_LEGEND_OUTSIDE: dict[str, Any] = {
    "loc": "upper left",
    "bbox_to_anchor": (1.01, 1.0),
    "fontsize": 9,
    "frameon": False,
    "borderaxespad": 0.0,
}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _metric_label(objective: Objective) -> str:
    arrow = "higher is better" if objective.maximize else "lower is better"
    return f"{objective.metric} ({arrow})"


def _log_friendly(values: Sequence[float]) -> bool:
    return bool(values) and min(values) > 0 and max(values) / min(values) >= 1000


def fig_history(exps: Sequence[Experiment], objective: Objective) -> Figure | str:
    points = [(e, v) for e in exps if (v := objective.value(e)) is not None and e.status.is_done]
    if not points:
        return f"no ended experiment has a value of {objective.metric} yet"
    fig = _figure(10, 4.2)
    ax = fig.add_subplot()
    _style(ax)
    for status in ("succeeded", "stopped", "failed"):
        sel = [(e.id, v) for e, v in points if e.status.value == status]
        if sel:
            ax.scatter(
                [i for i, _ in sel],
                [v for _, v in sel],
                s=22,
                color=STATUS_COLORS[status],
                alpha=0.8,
                label=f"{status} ({len(sel)})",
                zorder=3,
            )
    ordered = sorted(points, key=lambda t: t[0].id)
    ids = [e.id for e, _ in ordered]
    best = best_so_far([e for e, _ in ordered], objective)
    ax.step(ids, best, where="post", color="#1d3557", linewidth=2, label="best so far", zorder=4)
    top = objective.best([e for e, _ in ordered])
    top_value = objective.value(top) if top is not None else None
    if top is not None and top_value is not None:
        ax.scatter(
            [top.id],
            [top_value],
            marker="*",
            s=220,
            color="#ffb703",
            edgecolor="#1d3557",
            zorder=5,
            label=f"best: #{top.id}",
        )
    ax.set_xlabel("experiment id")
    ax.set_ylabel(_metric_label(objective))
    if _log_friendly([v for _, v in points]):
        ax.set_yscale("log")
    ax.legend(**_LEGEND_OUTSIDE)
    ax.set_title("Optimization history", loc="left", fontsize=12)
    return fig


def fig_curves(
    exps: Sequence[Experiment], objective: Objective, records: Mapping[int, Sequence[Record]]
) -> Figure | str:
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    curves = {e.id: curve(records.get(e.id, ()), objective.metric) for e in exps}
    if not any(len(c) > 1 for c in curves.values()):
        return f"no experiment reported {objective.metric} at more than one step"
    fig = _figure(10, 4.6)
    ax = fig.add_subplot()
    _style(ax)
    best = objective.best([e for e in exps if e.status.is_done])
    all_values: list[float] = []
    stopped_x: list[float] = []
    stopped_y: list[float] = []
    # one LineCollection per status: hundreds of curves draw as fast as a few
    styles: dict[str, dict[str, Any]] = {
        "succeeded": {"colors": "#7f8fa6", "linewidths": 0.9, "alpha": 0.55},
        "stopped": {"colors": STATUS_COLORS["stopped"], "linewidths": 0.9, "alpha": 0.7},
        "failed": {
            "colors": STATUS_COLORS["failed"],
            "linewidths": 0.9,
            "alpha": 0.6,
            "linestyles": "--",
        },
        "running": {"colors": STATUS_COLORS["running"], "linewidths": 1.2, "alpha": 0.9},
    }
    groups: dict[str, list[list[tuple[float, float]]]] = {k: [] for k in styles}
    for e in exps:
        pts = curves[e.id]
        if not pts:
            continue
        all_values.extend(p[1] for p in pts)
        key: str = e.status.value if e.status.value in styles else "succeeded"
        groups[key].append([(float(x), y) for x, y in pts])
        if e.status is Status.STOPPED:
            stopped_x.append(pts[-1][0])
            stopped_y.append(pts[-1][1])
    for name, segments in groups.items():
        lines = [seg for seg in segments if len(seg) > 1]
        if lines:
            ax.add_collection(LineCollection(lines, **styles[name]))
        dots = [seg[0] for seg in segments if len(seg) == 1]
        if dots:  # one report only (a first Hyperband rung): a dot, not an invisible line
            ax.scatter(
                [x for x, _ in dots],
                [y for _, y in dots],
                s=10,
                color=styles[name]["colors"],
                alpha=min(1.0, float(styles[name]["alpha"]) + 0.2),
                zorder=3,
            )
    ax.autoscale_view()
    if stopped_x:
        ax.scatter(
            stopped_x,
            stopped_y,
            marker="x",
            s=40,
            color=STATUS_COLORS["stopped"],
            zorder=4,
            linewidths=1.6,
        )
    if best is not None and curves.get(best.id):
        pts = curves[best.id]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], color="#1d3557", linewidth=2.4, zorder=5)
    handles = [
        Line2D([], [], color="#7f8fa6", label="succeeded"),
        Line2D([], [], color=STATUS_COLORS["stopped"], marker="x", label="stopped (× = where)"),
        Line2D([], [], color=STATUS_COLORS["failed"], linestyle="--", label="failed"),
        Line2D([], [], color=STATUS_COLORS["running"], label="running"),
    ]
    if best is not None:
        handles.append(Line2D([], [], color="#1d3557", linewidth=2.4, label=f"best: #{best.id}"))
    present = {e.status.value for e in exps if curves[e.id]}
    handles = [
        h
        for h in handles
        if str(h.get_label()).split()[0] in present or str(h.get_label()).startswith("best")
    ]
    ax.legend(handles=handles, **_LEGEND_OUTSIDE)
    if _log_friendly(all_values):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(_metric_label(objective))
    ax.set_title("Learning curves", loc="left", fontsize=12)
    return fig


def _axis_ticks(spec: ParamSpec, lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Tick positions (normalized 0..1) and labels of one parallel-coordinates axis."""
    if spec.categorical:
        n = len(spec.values)
        positions = [(i - lo) / (hi - lo) for i in range(n)]
        return positions, [_short(str(v)) for v in spec.values]
    if spec.values:  # a few declared values: one tick each
        ticks = [(x, v) for v in spec.values if (x := spec.encode(v)) is not None]
        return [(x - lo) / (hi - lo) for x, _ in ticks], [_fmt(v) for _, v in ticks]
    out_pos, out_lab = [], []
    for k in range(5):
        pos = k / 4
        raw = lo + pos * (hi - lo)
        value = 10**raw if spec.log else raw
        out_pos.append(pos)
        out_lab.append(f"{value:.3g}")
    return out_pos, out_lab


_LABEL_BOX = {"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.8}


def _short(text: str, limit: int = 14) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fig_parallel(
    exps: Sequence[Experiment], objective: Objective, specs: Sequence[ParamSpec]
) -> Figure | str:
    from matplotlib import colormaps
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize

    usable = [s for s in specs if s.domain() is not None]
    if not usable:
        return "no parameter varies across the experiments"
    rows: list[tuple[list[float], float, int]] = []
    for e in exps:
        value = objective.value(e)
        if value is None or not e.status.is_done:
            continue
        encoded = [s.encode(e.config.get(s.name)) for s in usable]
        if any(x is None for x in encoded):
            continue
        rows.append(([float(x) for x in encoded if x is not None], value, e.id))
    if len(rows) < 2:
        return f"needs at least 2 ended experiments with a value of {objective.metric}"
    values = [v for _, v, _ in rows]
    vlo, vhi = min(values), max(values)
    if vhi == vlo:
        vhi = vlo + 1.0
    n_axes = len(usable) + 1
    fig = _figure(max(8.0, 1.6 * n_axes + 2), 4.8)
    ax = fig.add_subplot()
    domains = []
    for s in usable:
        d = s.domain()
        assert d is not None
        lo, hi = d
        if hi == lo:
            hi = lo + 1.0
        domains.append((lo, hi))
    cmap = colormaps["viridis"] if objective.maximize else colormaps["viridis_r"]
    norm = Normalize(vmin=vlo, vmax=vhi)
    # worst first, so the best lines are drawn on top
    rows.sort(key=lambda r: r[1], reverse=not objective.maximize)
    segments = []
    colors = []
    for enc, result, _ in rows:
        ys = [(x - lo) / (hi - lo) for x, (lo, hi) in zip(enc, domains, strict=True)]
        ys.append((result - vlo) / (vhi - vlo))
        segments.append(list(zip(range(n_axes), ys, strict=True)))
        colors.append(cmap(norm(result)))
    ax.add_collection(LineCollection(segments, colors=colors, linewidths=1.2, alpha=0.75))
    ax.set_xlim(-0.3, n_axes - 0.7)
    ax.set_ylim(-0.06, 1.06)
    for i in range(n_axes):
        ax.axvline(i, color="#333333", linewidth=1)
    for i, (s, (lo, hi)) in enumerate(zip(usable, domains, strict=True)):
        positions, labels = _axis_ticks(s, lo, hi)
        for pos, lab in zip(positions, labels, strict=True):
            ax.text(
                i + 0.04,
                pos,
                lab,
                fontsize=8,
                va="center",
                ha="left",
                color="#222222",
                bbox=_LABEL_BOX,
            )
    for k in range(5):
        pos = k / 4
        ax.text(
            n_axes - 1 + 0.04,
            pos,
            f"{vlo + pos * (vhi - vlo):.4g}",
            fontsize=8,
            va="center",
            ha="left",
            bbox=_LABEL_BOX,
        )
    ax.set_xticks(range(n_axes))
    ax.set_xticklabels(
        [s.name + (" (log)" if s.log else "") for s in usable] + [objective.metric], fontsize=10
    )
    ax.set_yticks([])
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    cbar = fig.colorbar(cm_mappable(cmap, norm), ax=ax, pad=0.02, fraction=0.03)
    cbar.set_label(_metric_label(objective))
    ax.set_title(f"Parallel coordinates ({len(rows)} ended experiments)", loc="left", fontsize=12)
    return fig


def cm_mappable(cmap: Any, norm: Any) -> Any:
    from matplotlib.cm import ScalarMappable

    return ScalarMappable(norm=norm, cmap=cmap)


def fig_slices(
    exps: Sequence[Experiment], objective: Objective, specs: Sequence[ParamSpec]
) -> Figure | str:
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    points = [(e, v) for e in exps if (v := objective.value(e)) is not None and e.status.is_done]
    if not specs:
        return "no parameter varies across the experiments"
    if not points:
        return f"no ended experiment has a value of {objective.metric} yet"
    n = len(specs)
    cols = min(3, n)
    rows_n = math.ceil(n / cols)
    fig = _figure(4.0 * cols + 1.2, 3.3 * rows_n + 0.3)
    axes = fig.subplots(rows_n, cols, squeeze=False)
    ids = [e.id for e, _ in points]
    norm = Normalize(vmin=min(ids), vmax=max(max(ids), min(ids) + 1))
    cmap = colormaps["Blues"]
    best = objective.best([e for e, _ in points])
    log_y = _log_friendly([v for _, v in points])
    mappable = None
    for k, spec in enumerate(specs):
        ax = axes[k // cols][k % cols]
        _style(ax)
        xs: list[float] = []
        ys: list[float] = []
        cs: list[int] = []
        bx: list[float] = []
        by: list[float] = []
        for j, (e, v) in enumerate(points):
            raw = e.config.get(spec.name)
            if spec.categorical:
                code = spec.encode(raw)
                if code is None:
                    continue
                x = code + ((j * 0.618034) % 1 - 0.5) * 0.3  # deterministic jitter
            else:
                number = spec.encode(raw)
                if number is None:
                    continue
                x = 10**number if spec.log else number
            xs.append(x)
            ys.append(v)
            cs.append(e.id)
            if best is not None and e.id == best.id:
                bx.append(x)
                by.append(v)
        mappable = ax.scatter(
            xs, ys, c=cs, cmap=cmap, norm=norm, s=24, edgecolor="#1d3557", linewidths=0.4
        )
        if bx:
            ax.scatter(bx, by, marker="*", s=200, color="#ffb703", edgecolor="#1d3557", zorder=5)
        if spec.categorical:
            ax.set_xticks(range(len(spec.values)))
            ax.set_xticklabels(
                [_short(str(v), 10) for v in spec.values],
                fontsize=8,
                rotation=30 if len(spec.values) > 4 else 0,
            )
        else:
            if spec.log:
                ax.set_xscale("log")
            if spec.values:
                ax.set_xticks([float(v) for v in spec.values])
                ax.set_xticklabels([_fmt(v) for v in spec.values], fontsize=8)
                ax.minorticks_off()
        if log_y:
            ax.set_yscale("log")
        ax.set_xlabel(spec.name)
        if k % cols == 0:
            ax.set_ylabel(objective.metric)
    for k in range(n, rows_n * cols):
        axes[k // cols][k % cols].set_visible(False)
    if mappable is not None:
        cbar = fig.colorbar(mappable, ax=axes, pad=0.01, fraction=0.02 if cols > 1 else 0.05)
        cbar.set_label("experiment id (later = darker)")
    fig.suptitle(
        f"Slice plots: {_metric_label(objective)} against each parameter (★ best)",
        x=0.01,
        ha="left",
        fontsize=12,
    )
    return fig


def fig_importance(importance: Importance) -> Figure:
    items = sorted(importance.share.items(), key=lambda kv: kv[1])
    fig = _figure(8, 0.5 * len(items) + 1.4)
    ax = fig.add_subplot()
    _style(ax)
    ax.grid(False, axis="y")
    names = [k for k, _ in items]
    shares = [v * 100 for _, v in items]
    bars = ax.barh(names, shares, color="#457b9d")
    for bar, share in zip(bars, shares, strict=True):
        ax.text(
            bar.get_width() + 1,
            bar.get_y() + bar.get_height() / 2,
            f"{share:.1f}%",
            va="center",
            fontsize=9,
        )
    ax.set_xlim(0, max(100.0, max(shares, default=0) + 12))
    ax.set_xlabel("share of the main effects (%)")
    ax.set_title("Parameter importance (fANOVA on a random forest)", loc="left", fontsize=12)
    return fig


def fig_rungs(points: Sequence[Mapping[str, Any]], objective: Objective | None) -> Figure | str:
    from matplotlib.collections import LineCollection

    valued = [p for p in points if p["value"] is not None]
    if objective is None or not valued:
        return "no experiment of a bracket has a value yet"
    brackets = sorted({p["bracket"] for p in points})
    cols = min(3, len(brackets))
    rows_n = math.ceil(len(brackets) / cols)
    fig = _figure(4.3 * cols + 0.6, 3.4 * rows_n + 0.4)
    axes = fig.subplots(rows_n, cols, squeeze=False, sharey=True)
    use_resource = all(p["resource"] is not None for p in points)
    for k, b in enumerate(brackets):
        ax = axes[k // cols][k % cols]
        _style(ax)
        mine = [p for p in valued if p["bracket"] == b]

        def x_of(p: Mapping[str, Any]) -> float:
            return float(p["resource"] if use_resource else p["rung"])

        edges = []
        if any(p.get("promoted_from") is not None for p in points):
            # the searcher recorded each promotion: link the experiment it continued
            by_id = {p["id"]: p for p in mine}
            for p in mine:
                parent = by_id.get(p.get("promoted_from"))
                if parent is not None:
                    edges.append([(x_of(parent), parent["value"]), (x_of(p), p["value"])])
        else:  # otherwise the same configuration on consecutive rungs of a bracket
            by_config: dict[str, list[Mapping[str, Any]]] = {}
            for p in mine:
                by_config.setdefault(p["config_key"], []).append(p)
            for chain in by_config.values():
                chain = sorted(chain, key=lambda p: p["rung"])
                edges.extend(
                    [(x_of(a), a["value"]), (x_of(b), b["value"])]
                    for a, b in itertools.pairwise(chain)
                )
        if edges:
            ax.add_collection(LineCollection(edges, colors="#9aa5b1", linewidths=0.8, zorder=2))
        for status in ("succeeded", "stopped", "failed", "running"):
            sel = [p for p in mine if p["status"] == status]
            if sel:
                ax.scatter(
                    [p["resource"] if use_resource else p["rung"] for p in sel],
                    [p["value"] for p in sel],
                    s=26 if status != "stopped" else 40,
                    marker="x" if status == "stopped" else "o",
                    color=STATUS_COLORS[status],
                    label=status,
                    zorder=3,
                )
        if use_resource:
            resources = sorted({p["resource"] for p in points if p["bracket"] == b})
            if len(resources) > 1 and resources[0] > 0 and resources[-1] / resources[0] >= 4:
                ax.set_xscale("log", base=2)
            ax.set_xticks(resources)
            ax.set_xticklabels([_fmt(r) for r in resources], fontsize=8)
            ax.minorticks_off()
        else:
            ax.set_xticks(sorted({p["rung"] for p in points if p["bracket"] == b}))
        n_configs = len(
            {p["config_key"] for p in points if p["bracket"] == b and p["rung"] == 0}
        ) or len({p["config_key"] for p in points if p["bracket"] == b})
        ax.set_title(f"bracket {b}: {n_configs} configurations", fontsize=10, loc="left")
        ax.set_xlabel("resource" if use_resource else "rung")
        if k % cols == 0:
            ax.set_ylabel(objective.metric)
    for k in range(len(brackets), rows_n * cols):
        axes[k // cols][k % cols].set_visible(False)
    labels: dict[str, Any] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            labels.setdefault(label, handle)
    fig.legend(
        list(labels.values()),
        list(labels),
        loc="outside upper right",
        ncol=4,
        fontsize=8,
        frameon=False,
    )
    fig.suptitle(
        "Hyperband rungs: each configuration's value per rung (lines: promotions)",
        x=0.01,
        ha="left",
        fontsize=12,
    )
    return fig


def fig_timeline(exps: Sequence[Experiment], now: float) -> Figure | str:
    spans = []
    for e in exps:
        if e.started_at is None:
            continue
        end = (
            e.ended_at if e.ended_at is not None else (now if e.status is Status.RUNNING else None)
        )
        if end is None:
            continue
        spans.append((e.id, e.started_at, max(end, e.started_at), e.status.value))
    if not spans:
        return "no experiment has started yet"
    t0 = min(s for _, s, _, _ in spans)
    total = max(e for _, _, e, _ in spans) - t0 or 1.0
    height = min(7.0, 1.4 + 0.06 * len(spans) + 1.5)
    fig = _figure(10, height)
    ax = fig.add_subplot()
    _style(ax)
    rows = max(i for i, _, _, _ in spans) - min(i for i, _, _, _ in spans) + 1
    # bars as thick horizontal lines (one collection per status: fast for hundreds of rows)
    thickness = max(0.5, min(12.0, 0.8 * (height - 1.2) * 72 / rows))
    for status in STATUS_COLORS:
        sel = [sp for sp in spans if sp[3] == status]
        if sel:
            ax.hlines(
                [i for i, _, _, _ in sel],
                [s - t0 for _, s, _, _ in sel],
                [max(e - t0, s - t0 + 0.004 * total) for _, s, e, _ in sel],
                colors=STATUS_COLORS[status],
                linewidth=thickness,
                label=status,
                capstyle="butt",
            )
    ax.set_ylim(max(i for i, _, _, _ in spans) + 0.8, min(i for i, _, _, _ in spans) - 0.8)
    ax.set_xlim(0, total * 1.01)
    ax.set_xlabel("seconds since the first start")
    ax.set_ylabel("experiment id")
    ax.legend(**_LEGEND_OUTSIDE)
    ax.set_title("Timeline (current attempt of each experiment)", loc="left", fontsize=12)
    return fig


# ----------------------------------------------------------------------------------------
# the page
# ----------------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;
color:#1d2430;background:#fafafa;line-height:1.45}
main{max-width:1100px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:1.6em;margin:0 0 4px}h2{font-size:1.2em;margin:32px 0 8px;border-bottom:1px solid #ddd;
padding-bottom:4px}
.sub{color:#5c6773;margin:0 0 18px}
table{border-collapse:collapse;font-size:.92em;background:#fff}
th,td{border:1px solid #e0e0e0;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f1f3f5}
td.num{text-align:right;font-variant-numeric:tabular-nums}
table.kv th{width:170px}
figure{margin:8px 0 4px;background:#fff;border:1px solid #e3e3e3;padding:8px}
figure img{max-width:100%;height:auto;display:block}
figcaption{color:#5c6773;font-size:.9em;margin-top:6px}
.note{color:#5c6773;font-size:.92em;max-width:900px}
.skipped{color:#8a6d3b;background:#fcf8e3;border:1px solid #faebcc;padding:6px 10px}
code{background:#eef1f4;padding:1px 4px;border-radius:3px;font-size:.92em}
.s-succeeded{color:#2a7d6f}.s-failed{color:#c1121f}.s-stopped{color:#c76a00}.s-running{color:#2f5d80}
footer{margin-top:40px;color:#8a96a3;font-size:.85em}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _config_text(config: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in config.items())


def _summary_html(
    store: GroupStore,
    info: Mapping[str, Any],
    exps: Sequence[Experiment],
    objective: Objective | None,
    state: str,
    now: float,
) -> str:
    c = counts(exps)
    total = len(exps)
    shares = ", ".join(
        f'<span class="s-{s}">{n} {s} ({100 * n / total:.0f}%)</span>' for s, n in c.items() if n
    )
    compute = sum(time_spent(e, now)["total"] or 0.0 for e in exps)
    rows = [
        ("group", _e(info.get("name") or store.name)),
        ("directory", f"<code>{_e(store.path)}</code>"),
        ("state", _e(state)),
        ("algorithm", _e(info.get("algorithm"))),
        ("seed", _e(info.get("seed"))),
        ("metric", _e(_metric_label(objective)) if objective else "none declared"),
        (
            "experiments",
            f"{total}"
            + (f" of {_e(info['planned_total'])} planned" if info.get("planned_total") else "")
            + (f": {shares}" if shares else ""),
        ),
        ("compute time", _e(_duration(compute))),
        (
            "created",
            _e(
                iso(
                    info.get("created_at")
                    if isinstance(info.get("created_at"), float | int)
                    else None
                )
                or ""
            ),
        ),
    ]
    best = objective.best(exps) if objective else None
    if best is not None and objective is not None:
        rows.insert(
            6,
            (
                "best",
                f"<b>#{best.id}</b> {_e(objective.metric)} = <b>{_e(_fmt(objective.value(best)))}</b><br>"
                f"<code>{_e(_config_text(best.config or best.params))}</code>",
            ),
        )
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


def _top_table(
    exps: Sequence[Experiment],
    objective: Objective | None,
    specs: Sequence[ParamSpec],
    limit: int = 10,
) -> str:
    if objective is None:
        return ""
    ranked = sorted(
        (e for e in exps if objective.score(e) is not None),
        key=lambda e: (objective.score(e), e.id),
    )[:limit]
    if not ranked:
        return ""
    names = [s.name for s in specs] or sorted({k for e in ranked for k in e.config})
    head = "".join(
        f"<th>{_e(n)}</th>" for n in ["rank", "id", "status", objective.metric, *names, "duration"]
    )
    rows = []
    for rank, e in enumerate(ranked, start=1):
        cells = [
            f'<td class="num">{rank}</td>',
            f'<td class="num">{e.id}</td>',
            f'<td class="s-{e.status.value}">{_e(e.status.value)}</td>',
            f'<td class="num">{_e(_fmt(objective.value(e)))}</td>',
            *(f"<td>{_e(_fmt(e.config.get(n, e.params.get(n, ''))))}</td>" for n in names),
            f'<td class="num">{_e(_duration(e.duration))}</td>',
        ]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _failures_html(store: GroupStore, exps: Sequence[Experiment], limit: int = 10) -> str:
    failed = [e for e in exps if e.status is Status.FAILED]
    if not failed:
        return ""
    rows = []
    from polytune.store import tail_lines

    for e in failed[:limit]:
        tail = tail_lines(store.paths(e.id).stderr, 2, width=200)
        rows.append(
            f'<tr><td class="num">{e.id}</td><td>{_e(e.reason or "")}</td>'
            f"<td><code>{_e(_config_text(e.config))}</code></td><td><code>{'<br>'.join(_e(t) for t in tail)}</code></td></tr>"
        )
    more = (
        f'<p class="note">… and {len(failed) - limit} more (<code>polytune status -q status:failed</code>).</p>'
        if len(failed) > limit
        else ""
    )
    return f"<h2>Failures ({len(failed)})</h2><table><tr><th>id</th><th>reason</th><th>configuration</th><th>stderr (last lines)</th></tr>{''.join(rows)}</table>{more}"


def _importance_note(imp: Importance, objective: Objective, specs: Sequence[ParamSpec]) -> str:
    logs = [s.name for s in specs if s.log]
    cats = [s.name for s in specs if s.categorical]
    enc = []
    if logs:
        enc.append("log10 of " + ", ".join(logs))
    if cats:
        enc.append("the index of the category for " + ", ".join(cats))
    enc_text = (
        ("; parameters are encoded as their value (" + "; ".join(enc) + ")")
        if enc
        else "; parameters are encoded as their value"
    )
    rows = "".join(
        f'<tr><td>{_e(k)}</td><td class="num">{100 * v:.1f}%</td></tr>'
        for k, v in sorted(imp.share.items(), key=lambda kv: -kv[1])
    )
    return (
        f"<table><tr><th>parameter</th><th>importance</th></tr>{rows}</table>"
        '<p class="note"><b>How this is computed.</b> A random forest of '
        f"{imp.n_trees} regression trees (scikit-learn, fixed seed) is fitted on the {imp.n_experiments} "
        f"ended experiments that reported {_e(objective.metric)}{_e(enc_text)}. Each tree is a "
        "piecewise-constant function over the search space; following fANOVA (Hutter, Hoos and "
        "Leyton-Brown, 2014) its variance under a uniform distribution over the space is split "
        "into one main effect per parameter plus interactions. A parameter's importance is its "
        "main effect's share of the variance, averaged over the trees and normalized to sum to "
        f"100%. Here the main effects explain {100 * imp.explained:.0f}% of the forest's variance; "
        "the rest comes from interactions between parameters. The forest only knows the points "
        "the search tried: with few experiments, or a search that concentrated on one region, "
        "read these numbers as rough.</p>"
    )


def _page(
    title: str, subtitle: str, summary: str, sections: Sequence[Section], tail_html: str
) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body><main>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="sub">{subtitle}</p>',
        summary,
    ]
    for s in sections:
        parts.append(
            f'<h2 id="{_e(Path(s.image).stem if s.image else s.title.lower().replace(" ", "-"))}">{_e(s.title)}</h2>'
        )
        if s.skipped:
            parts.append(f'<p class="skipped">Not drawn: {_e(s.skipped)}.</p>')
            continue
        if s.image and s.size:
            w, h = s.size
            parts.append(
                f'<figure><img src="{_e(s.image)}" width="{w}" height="{h}" alt="{_e(s.title)}">'
                f"<figcaption>{_e(s.caption)}</figcaption></figure>"
            )
        if s.body:
            parts.append(s.body)
    parts.append(tail_html)
    parts.append(
        f"<footer>Made by polytune {_e(__version__)}. Static page: opens from disk, "
        "no network access. Images are the PNG files next to this page.</footer>"
    )
    parts.append("</main></body></html>\n")
    return "\n".join(parts)


def _save(fig: Figure, path: Path) -> tuple[int, int]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
    os.replace(tmp, path)
    return _png_size(path)


def _png_size(path: Path) -> tuple[int, int]:
    with open(path, "rb") as fh:
        head = fh.read(24)
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def build_report(
    store: GroupStore,
    out_dir: Path,
    *,
    state: str,
    clock: Callable[[], float] = time.time,
) -> Report:
    """Write ``out_dir/index.html`` and its PNG figures for the group of ``store``."""
    require_matplotlib()
    started = time.perf_counter()
    now = clock()
    info = store.read_group()
    info.setdefault("name", store.name)
    exps = store.experiments()
    objective = objective_of(info)
    specs = param_specs(info, exps)
    stdout_metrics = _stdout_metrics(info)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"cannot create the report folder {out_dir}: {e.strerror}") from e
    records = {e.id: read_records(store, e.id, stdout_metrics) for e in exps} if objective else {}

    sections: list[Section] = []
    images: list[Path] = []
    skipped: dict[str, str] = {}

    def add(
        name: str, title: str, caption: str, make: Callable[[], Figure | str], body: str = ""
    ) -> None:
        result = make()
        if isinstance(result, str):
            sections.append(Section(title, skipped=result))
            skipped[name] = result
            return
        path = out_dir / name
        try:
            size = _save(result, path)
        except OSError as e:
            raise StoreError(f"cannot write {path}: {e.strerror}") from e
        images.append(path)
        sections.append(Section(title, image=name, size=size, caption=caption, body=body))

    no_metric = "the group declares no metric (polytune: {metric: {name, optimization}})"
    if objective is None:
        for name, title in (
            ("history.png", "Optimization history"),
            ("curves.png", "Learning curves"),
            ("parallel.png", "Parallel coordinates"),
            ("slices.png", "Slice plots"),
            ("importance.png", "Parameter importance"),
        ):
            sections.append(Section(title, skipped=no_metric))
            skipped[name] = no_metric
    else:
        obj = objective
        add(
            "history.png",
            "Optimization history",
            f"Each ended experiment's {obj.metric} (its last reported value), coloured by status, "
            "and the best value so far after each experiment.",
            lambda: fig_history(exps, obj),
        )
        add(
            "curves.png",
            "Learning curves",
            f"{obj.metric} against the step of every experiment's current attempt. Stopped "
            "experiments are orange and end with a cross; failed ones are dashed red; the best "
            "experiment is the thick dark line.",
            lambda: fig_curves(exps, obj, records),
        )
        add(
            "parallel.png",
            "Parallel coordinates",
            "One line per ended experiment through its parameter values and its result; the "
            "colour is the result (brighter is better). Log-scale parameters are spaced by "
            "powers of ten.",
            lambda: fig_parallel(exps, obj, specs),
        )
        add(
            "slices.png",
            "Slice plots",
            f"{obj.metric} against each parameter on its own; the colour shows when the "
            "experiment ran (a search that converges gets darker near the good values).",
            lambda: fig_slices(exps, obj, specs),
        )
        imp = fanova_importance(specs, exps, obj)
        if isinstance(imp, str):
            sections.append(Section("Parameter importance", skipped=imp))
            skipped["importance.png"] = imp
        else:
            imp_ok = imp
            add(
                "importance.png",
                "Parameter importance",
                "How much of the variation of the result each parameter explains on its own.",
                lambda: fig_importance(imp_ok),
                body=_importance_note(imp_ok, obj, [s for s in specs if s.name in imp_ok.share]),
            )
    points = rung_points(exps, objective)
    if points:
        add(
            "rungs.png",
            "Hyperband rungs",
            "One panel per bracket: every experiment's value at the resource of its rung; a grey "
            "line follows a configuration promoted to the next rung; crosses are stopped experiments.",
            lambda: fig_rungs(points, objective),
        )
    add(
        "timeline.png",
        "Timeline",
        "When each experiment ran (its current attempt), coloured by status: shows the "
        "concurrency in use and where time went.",
        lambda: fig_timeline(exps, now),
    )
    for stale in FIGURES:
        path = out_dir / stale
        if path not in images and path.exists():
            path.unlink()

    title = f"polytune report: {info['name']}"
    subtitle = _e(f"generated {iso(now)} from {store.path}")
    summary = _summary_html(store, info, exps, objective, state, now)
    top = _top_table(exps, objective, specs)
    tail_html = ""
    if top:
        tail_html += f"<h2>Best experiments</h2>{top}"
    tail_html += _failures_html(store, exps)
    damage = store.damage()
    if damage:
        items = "".join(f"<li><code>{_e(d)}</code></li>" for d in damage)
        tail_html += f"<h2>Damaged records</h2><ul>{items}</ul>"
    page = _page(title, subtitle, summary, sections, tail_html)
    index = out_dir / INDEX
    tmp = out_dir / f".{INDEX}.{os.getpid()}.tmp"
    try:
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, index)
    except OSError as e:
        raise StoreError(f"cannot write {index}: {e.strerror}") from e
    return Report(html=index, images=images, seconds=time.perf_counter() - started, skipped=skipped)
