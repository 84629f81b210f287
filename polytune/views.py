"""Terminal renderings: the live progress of a running group, status and groups tables.

Rich is used single-threaded (``auto_refresh=False``): the driver calls ``tick`` and the view
refreshes at most a few times a second, so it never reads the driver's state concurrently.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from polytune.experiment import Experiment, Objective, Status
from polytune.report import sparkline

if TYPE_CHECKING:  # the driver pulls in the config loader and numpy: `status` needs neither
    from polytune.driver import Driver, RunOutcome

STATUS_STYLE = {
    "created": "dim",
    "running": "cyan",
    "succeeded": "green",
    "failed": "red",
    "stopped": "yellow",
    "lost": "magenta",
}


def fmt_value(value: Any, width: int = 12) -> str:
    if isinstance(value, float):
        text = f"{value:.6g}"
    elif value is None:
        text = ""
    else:
        text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def fmt_time(ts: float | None) -> str:
    if ts is None:
        return ""
    return _dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def params_text(params: Mapping[str, Any], limit: int = 60) -> str:
    text = " ".join(f"{k}={fmt_value(v, 14)}" for k, v in params.items())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ------------------------------------------------------------------------------------------
# live progress
# ------------------------------------------------------------------------------------------


class PlainProgress:
    """One line per event: for logs, CI and pipes."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def _total(self, driver: Driver) -> str:
        total = driver.planned_total
        return "?" if total is None else str(total)

    def started(self, driver: Driver) -> None:
        self.console.print(
            f"group {driver.store.name}: {driver.config.algorithm}, "
            f"{self._total(driver)} experiments, concurrency {driver.executor.capacity()}, "
            f"seed {driver.seed} → {driver.store.path}",
            highlight=False,
        )

    def event(self, driver: Driver, exp: Experiment, what: str) -> None:
        if what in ("created",):
            return
        done = sum(1 for e in driver.exps.values() if e.status.is_done)
        head = f"[{done}/{self._total(driver)}] experiment {exp.id}"
        if what == "started":
            line = f"{head} started (attempt {exp.attempt}): {params_text(exp.config)}"
            if "rung" in exp.meta:  # Hyperband / ASHA
                line += f" [bracket {exp.meta.get('bracket')} rung {exp.meta['rung']}, "
                line += f"resource {fmt_value(exp.meta.get('resource'))}]"
        else:
            extra = ""
            if driver.objective is not None and (v := driver.objective.value(exp)) is not None:
                extra = f" {driver.objective.metric}={v:.6g}"
            why = f" ({exp.reason})" if exp.reason else ""
            line = f"{head} {what} in {fmt_duration(exp.duration)}{extra}{why}"
        self.console.print(line, highlight=False, markup=False, soft_wrap=True)

    def tick(self, driver: Driver) -> None:
        pass

    def finished(self, driver: Driver, outcome: RunOutcome) -> None:
        print_outcome(self.console, driver, outcome)


class LiveProgress:
    """A rich live view: progress bar, running experiments with their latest metric, best."""

    def __init__(self, console: Console, refresh_per_second: float = 4.0) -> None:
        self.console = console
        self.interval = 1.0 / refresh_per_second
        self._last = 0.0
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self.task = self.bar.add_task("experiments", total=None)
        self.live: Live | None = None

    def started(self, driver: Driver) -> None:
        self.console.print(
            f"[bold]group {driver.store.name}[/]: {driver.config.algorithm}, "
            f"concurrency {driver.executor.capacity()}, seed {driver.seed}  [dim]{driver.store.path}[/]"
        )
        self.live = Live(
            self._render(driver), console=self.console, auto_refresh=False, transient=True
        )
        self.live.start()

    def event(self, driver: Driver, exp: Experiment, what: str) -> None:
        if what in ("succeeded", "failed", "stopped") and self.live is not None:
            style = STATUS_STYLE.get(what, "")
            extra = ""
            if driver.objective is not None and (v := driver.objective.value(exp)) is not None:
                extra = f" {driver.objective.metric}={v:.6g}"
            why = f" [dim]({exp.reason})[/]" if exp.reason else ""
            self.live.console.print(
                f"  #{exp.id} [{style}]{what}[/] in {fmt_duration(exp.duration)}{extra}{why}  [dim]{params_text(exp.config)}[/]"
            )
        self.tick(driver, force=True)

    def tick(self, driver: Driver, force: bool = False) -> None:
        now = time.monotonic()
        if self.live is None or (not force and now - self._last < self.interval):
            return
        self._last = now
        self.live.update(self._render(driver), refresh=True)

    def _render(self, driver: Driver) -> Group:
        exps = driver.exps.values()
        done = sum(1 for e in exps if e.status.is_done)
        self.bar.update(self.task, completed=done, total=driver.planned_total)
        running = [e for e in driver.exps.values() if e.status is Status.RUNNING]
        table = Table(box=None, show_header=True, header_style="dim", pad_edge=False)
        table.add_column("id", justify="right")
        table.add_column("params")
        table.add_column("latest")
        table.add_column("time", justify="right")
        now = time.time()
        for e in running[:12]:
            latest = " ".join(f"{k}={fmt_value(v, 10)}" for k, v in list(e.metrics.items())[:3])
            table.add_row(
                str(e.id),
                params_text(e.config, 50),
                latest,
                fmt_duration(now - (e.started_at or now)),
            )
        lines: list[Any] = [self.bar]
        if running:
            lines.append(table)
        best = driver.best()
        failed = sum(1 for e in exps if e.status is Status.FAILED)
        status_line = Text()
        if best is not None and driver.objective is not None:
            status_line.append(
                f"best #{best.id} {driver.objective.metric}={driver.objective.value(best):.6g}  ",
                style="green",
            )
        if failed:
            status_line.append(f"{failed} failed", style="red")
        if status_line:
            lines.append(status_line)
        return Group(*lines)

    def finished(self, driver: Driver, outcome: RunOutcome) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
        print_outcome(self.console, driver, outcome)


def print_outcome(console: Console, driver: Driver, outcome: RunOutcome) -> None:
    c = outcome.counts
    parts = [f"{c[s]} {s}" for s in ("succeeded", "failed", "stopped", "lost") if c.get(s)]
    console.print(
        f"group {driver.store.name} {outcome.status}: {', '.join(parts) or 'no experiments'}"
        + (f" ({outcome.reason})" if outcome.reason else ""),
        highlight=False,
        markup=False,
    )
    if outcome.best is not None and driver.objective is not None:
        console.print(
            f"best: experiment {outcome.best.id} {driver.objective.metric}="
            f"{driver.objective.value(outcome.best):.6g}  {params_text(outcome.best.config, 200)}",
            highlight=False,
            markup=False,
        )


# ------------------------------------------------------------------------------------------
# status / groups tables
# ------------------------------------------------------------------------------------------


def status_table(
    experiments: Sequence[Experiment],
    objective: Objective | None,
    param_names: Sequence[str],
    metric_names: Sequence[str],
) -> Table:
    table = Table(show_lines=False, header_style="bold")
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    # Hyperband / ASHA: where each experiment stands (the bracket only when there are several).
    rungs = [e for e in experiments if "rung" in e.meta]
    brackets = {e.meta.get("bracket") for e in rungs}
    rung_columns = [
        c
        for c in ("bracket", "rung", "resource", "from")
        if rungs and (c != "bracket" or len(brackets) > 1)
    ]
    for c in rung_columns:
        table.add_column(c, justify="right", no_wrap=True)
    for p in param_names:
        table.add_column(p, overflow="fold")
    for m in metric_names:
        label = m + (" ★" if objective is not None and m == objective.metric else "")
        table.add_column(label, justify="right", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    # Why an experiment ended other than by succeeding (early stopping, stall, failure).
    ended = ("stopped", "failed")
    why = any(e.reason and e.status.value in ended for e in experiments)
    if why:
        table.add_column("why", overflow="fold", max_width=70)
    for e in experiments:
        status = e.status.value + (f" ×{e.attempt}" if e.attempt > 1 else "")
        row: list[str | Text] = [
            str(e.id),
            Text(status, style=STATUS_STYLE.get(e.status.value, "")),
        ]
        meta = {**e.meta, "from": e.meta.get("promoted_from")}
        row += [fmt_value(meta.get(c), 10) for c in rung_columns]
        row += [fmt_value(e.params.get(p), 16) for p in param_names]
        row += [fmt_value(e.metrics.get(m)) for m in metric_names]
        row.append(fmt_duration(e.duration))
        if why:
            row.append(Text(e.reason or "", style="dim") if e.status.value in ended else "")
        table.add_row(*row)
    return table


def rungs_table(rows: Sequence[Mapping[str, Any]], objective: Objective | None) -> Table:
    """Hyperband / ASHA per bracket: every rung's resource, how many experiments were created
    (of how many planned), are running, ended, failed and went on to the next rung, and its
    best value (``multifidelity.rung_summary``). Fits 80 columns."""
    table = Table(
        title="Brackets",
        title_justify="left",
        header_style="bold",
        box=None,
        pad_edge=False,
        collapse_padding=True,
    )
    columns = ("bracket", "rung", "resource", "created", "running", "ended", "failed", "promoted")
    for c in columns:
        table.add_column(c, justify="right", no_wrap=True)
    table.add_column(f"best {objective.metric}" if objective else "best", justify="right")
    previous = None
    for r in rows:
        created = str(r["created"]) + ("" if r["planned"] is None else f"/{r['planned']}")
        cells = [str(r["bracket"]) if r["bracket"] != previous else "", str(r["rung"])]
        cells += [fmt_value(r["resource"], 10), created]
        cells += [str(r[c]) for c in ("running", "ended", "failed", "promoted")]
        best = "" if r["best"] is None else f"{fmt_value(r['best'], 9)} #{r['best_id']}"
        table.add_row(*cells, best)
        previous = r["bracket"]
    return table


def status_header(summary: Mapping[str, Any]) -> Text:
    text = Text()
    text.append(f"{summary['name']}", style="bold")
    state = summary["state"]
    text.append(
        f"  {state}",
        style={
            "running": "cyan",
            "done": "green",
            "early_stopped": "green",
            "stopped": "yellow",
        }.get(state.split()[0], "red"),
    )
    text.append(f"  {summary['algorithm']}  seed {summary['seed']}\n")
    c = summary["counts"]
    total = summary["experiments"]
    order = ("succeeded", "running", "failed", "stopped", "lost", "created")
    shares = [f"{c[s]} {s} ({100 * c[s] / total:.0f}%)" for s in order if c.get(s)]
    planned = summary.get("planned")
    text.append(
        f"{total} experiments"
        + (f" of {planned}" if planned else "")
        + (": " + ", ".join(shares) if shares else "")
    )
    if total:
        text.append("  ")
        for s in order:  # one coloured segment per status, about 20 cells
            if c.get(s):
                text.append("█" * max(1, round(20 * c[s] / total)), style=STATUS_STYLE.get(s, ""))
    text.append("\n")
    best = summary.get("best")
    metric = summary.get("metric")
    if best and metric:
        text.append(
            f"best: #{best['id']} {metric['name']}={best['value']:.6g} ({metric['optimization']})  "
            f"{params_text(best['params'], 120)}",
            style="green",
        )
        curve = summary.get("best_so_far") or []
        if len(curve) > 1:
            text.append(f"\nbest so far: {sparkline(curve)}", style="dim")
    elif metric:
        text.append(
            f"metric: {metric['name']} ({metric['optimization']}), no value yet", style="dim"
        )
    else:
        text.append(
            "no metric declared (add polytune: {metric: {name, optimization}} to rank)", style="dim"
        )
    if summary.get("reason"):
        text.append(f"\nreason: {summary['reason']}", style="dim")
    early_stop = summary.get("early_stop")
    if isinstance(early_stop, Mapping) and state == "running":
        text.append(f"\nstopping early: {early_stop.get('reason')}", style="yellow")
    for i, rule in enumerate(summary.get("early_stopping") or []):
        text.append(("\nearly stopping: " if i == 0 else "\n                ") + rule, style="dim")
    return text


def groups_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    table = Table(header_style="bold")
    for col in ("group", "state", "algorithm", "experiments", "best", "created"):
        table.add_column(col, justify="right" if col in ("experiments",) else "left")
    for r in rows:
        best = r.get("best")
        metric = r.get("metric")
        best_text = (
            f"{metric['name']}={best['value']:.6g} (#{best['id']})" if best and metric else ""
        )
        c = r["counts"]
        table.add_row(
            str(r["name"]),
            r["state"],
            str(r.get("algorithm") or ""),
            f"{c.get('succeeded', 0)}/{r['experiments']}",
            best_text,
            fmt_time(r.get("created_at")),
        )
    return table
