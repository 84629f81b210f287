"""Review and compare commands: ``experiment``, ``logs``, ``export``, ``compare``, ``report``.

``polytune.cli`` calls :func:`register` at import time, so this module's top level imports
only click: everything else (rich, the store, matplotlib, scikit-learn) is imported inside the
command that needs it, and ``polytune --help``, ``status``, ``groups`` and ``stop`` stay fast.
Errors are :class:`~polytune.errors.PolytuneError` subclasses; ``cli.py`` maps them to exit
codes.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import click

if TYPE_CHECKING:
    from rich.console import Console

    from polytune.experiment import Experiment
    from polytune.store import GroupStore

__all__ = ["register"]

_workspace_option = click.option(
    "--dir",
    "workspace",
    metavar="WORKSPACE",
    default=None,
    help="Folder that holds the groups (default: $POLYTUNE_WORKSPACE or ./polytune-groups).",
)
_json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")


def register(main: click.Group) -> None:
    """Add the review commands to ``main``."""
    for command in (experiment, logs, export, compare, report):
        main.add_command(command)


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------


def _open(group: str | None, workspace: str | None) -> GroupStore:
    from polytune.cli import _open as open_group

    return open_group(group, workspace)


def _console() -> Console:
    from polytune.cli import _console as console

    return console()


def _state(store: GroupStore, info: dict[str, Any]) -> str:
    from polytune.cli import group_state

    return group_state(store, info)


def _driver_alive(store: GroupStore) -> bool:
    return store.driver_alive() is not False


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _quiet_broken_pipe() -> None:
    """``polytune logs … | head``: the reader went away. Exit 0 without a traceback (and keep
    Python's shutdown flush from raising again)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(0)


# ----------------------------------------------------------------------------------------
# experiment
# ----------------------------------------------------------------------------------------


@click.command("experiment")
@click.argument("group")
@click.argument("exp_id", metavar="ID", type=click.IntRange(min=1))
@_workspace_option
@click.option(
    "--tail", "tail_lines", type=click.IntRange(min=0), default=10, show_default=True,
    help="Lines of stderr to show.",
)  # fmt: skip
@_json_option
def experiment(
    group: str, exp_id: int, workspace: str | None, tail_lines: int, as_json: bool
) -> None:
    """Everything about one experiment.

    Params, the rendered command, status and reason, attempts, timings, the metric history,
    the outputs path and the tail of stderr.
    """
    from polytune.htmlreport import _stdout_metrics, read_records
    from polytune.report import objective_of
    from polytune.review import experiment_detail, rank_of
    from polytune.store import is_lost
    from polytune.store import tail_lines as store_tail_lines

    store = _open(group, workspace)
    exp = store.get(exp_id)
    info = store.read_group()
    objective = objective_of(info)
    paths = store.paths(exp_id)
    records = read_records(store, exp_id, _stdout_metrics(info))
    rank = rank_of(exp, store.experiments(), objective) if objective else None
    detail = experiment_detail(
        exp,
        objective,
        group=store.name,
        records=records,
        stderr_tail=store_tail_lines(paths.stderr, tail_lines),
        paths={
            "dir": str(paths.dir),
            "record": str(paths.record),
            "stdout": str(paths.stdout),
            "stderr": str(paths.stderr),
            "metrics": str(paths.metrics),
        },
        rank=rank,
        lost=is_lost(exp),
        now=time.time(),
    )
    if as_json:
        _echo_json(detail)
        return
    _print_experiment(_console(), detail)


def _local(iso_time: str | None, missing: str = "-") -> str:
    """An ISO 8601 UTC time (as in the JSON) in local time, to the second, for the terminal."""
    import datetime as dt

    if not iso_time:
        return missing
    when = dt.datetime.fromisoformat(iso_time.replace("Z", "+00:00"))
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _print_experiment(console: Console, d: Mapping[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    from polytune.report import sparkline
    from polytune.views import STATUS_STYLE, fmt_duration, fmt_value

    head = Text()
    head.append(f"experiment {d['id']}", style="bold")
    head.append(f" of group {d['group']}  ")
    status = d["status"] + (" (lost: its driver is gone; polytune resume)" if d["lost"] else "")
    head.append(status, style=STATUS_STYLE.get(d["status"], ""))
    head.append(f"  attempt {d['attempt']}")
    if d.get("restart_of"):
        head.append(f"  restart of #{d['restart_of']}", style="dim")
    console.print(head)
    if d.get("reason"):
        style = "red" if d["status"] == "failed" else "dim"
        exit_text = f" (exit code {d['exit_code']})" if d.get("exit_code") not in (None, 0) else ""
        console.print(Text(f"reason: {d['reason']}{exit_text}", style=style))
    objective = d.get("objective")
    if objective:
        line = f"{objective['name']} ({objective['optimization']}): "
        line += "no value" if d.get("value") is None else fmt_value(d["value"], 16)
        if d.get("rank"):
            line += f"  rank {d['rank']['rank']} of {d['rank']['of']}"
        is_best = bool(d.get("rank")) and d["rank"]["rank"] == 1
        console.print(Text(line, style="green" if is_best else ""))

    params = Table(
        title="params", title_justify="left", show_header=False, box=None, pad_edge=False
    )
    params.add_column(style="bold")
    params.add_column()
    params.add_column(style="dim")
    for k, v in d["params"].items():
        params.add_row(
            k,
            json.dumps(v) if isinstance(v, list | dict) else str(v),
            "matrix" if k in d["config"] else "constant",
        )
    if d["params"]:
        console.print(params)
    if d.get("meta"):
        console.print(
            Text("meta: " + "  ".join(f"{k}={v}" for k, v in d["meta"].items()), style="dim")
        )
    if d.get("command"):
        console.print(Text("command: ", style="bold").append(Text(d["command"], style="")))

    times = Text("time: ", style="bold")
    times.append(
        f"created {_local(d['created_at'])}  started {_local(d['started_at'])}  "
        f"ended {_local(d['ended_at'])}\n      "
    )
    times.append(
        f"queued {fmt_duration(d['queued_seconds']) or '-'}  ran {fmt_duration(d['duration_seconds']) or '-'}"
        + (
            f"  all attempts {fmt_duration(d['total_seconds'])}"
            if d["attempt"] > 1 and d.get("total_seconds")
            else ""
        )
    )
    console.print(times)

    if d["attempts"]:
        table = Table(title="attempts", title_justify="left", header_style="bold")
        for col in ("attempt", "status", "started", "duration", "exit code", "reason"):
            table.add_column(
                col, justify="right" if col in ("attempt", "duration", "exit code") else "left"
            )
        for a in d["attempts"]:
            table.add_row(
                str(a["attempt"]),
                Text(str(a["status"]), style=STATUS_STYLE.get(str(a["status"]), "")),
                _local(a["started_at"], ""),
                fmt_duration(a["duration"]),
                "" if a["exit_code"] is None else str(a["exit_code"]),
                str(a["reason"] or ""),
            )
        console.print(table)

    metrics = d["metrics"]
    if metrics:
        table = Table(
            title=f"metrics ({d['metric_lines']} lines)", title_justify="left", header_style="bold"
        )
        for col in ("metric", "last", "min", "at step", "max", "at step", "values", "last step"):
            table.add_column(col, justify="left" if col == "metric" else "right")
        star = objective["name"] if objective else None
        for name, h in metrics.items():
            table.add_row(
                name + (" ★" if name == star else ""),
                fmt_value(h["last"]),
                fmt_value(h["min"]),
                fmt_value(h["min_step"]),
                fmt_value(h["max"]),
                fmt_value(h["max_step"]),
                fmt_value(h["count"]),
                fmt_value(h["last_step"]),
            )
        console.print(table)
        if objective and len(d["objective_curve"]) > 1:
            console.print(
                Text(
                    f"{objective['name']} per step: {sparkline(d['objective_curve'], 40)}",
                    style="dim",
                )
            )
    else:
        console.print(Text("metrics: none reported", style="dim"))

    console.print(Text("outputs: ", style="bold").append(str(d.get("outputs_path") or "-")))
    console.print(Text(f"logs: {d['paths']['stdout']}\n      {d['paths']['stderr']}", style="dim"))
    if d["stderr_tail"]:
        console.print(Text(f"stderr (last {len(d['stderr_tail'])} lines):", style="bold"))
        for line in d["stderr_tail"]:
            console.print(Text("  " + line))


# ----------------------------------------------------------------------------------------
# logs
# ----------------------------------------------------------------------------------------


class _Follower:
    """Copies what is appended to a log file to ``out``, across a rotation: when the driver
    moves a finished attempt's log aside and the next attempt starts a new file, the old file
    (still open here) is drained first, then the new one is read from its start."""

    def __init__(self, path: Path, out: BinaryIO, start_at_lines: int | None) -> None:
        self.path = path
        self.out = out
        self.fh: BinaryIO | None = None
        self.start_at_lines = start_at_lines
        self.rotations = 0

    def _open(self) -> None:
        try:
            self.fh = open(self.path, "rb")  # noqa: SIM115 - held across calls on purpose
        except FileNotFoundError:
            self.fh = None
            return
        if self.start_at_lines is not None:
            self._seek_last_lines(self.start_at_lines)
            self.start_at_lines = None

    def _seek_last_lines(self, n: int) -> None:
        assert self.fh is not None
        fh = self.fh
        fh.seek(0, os.SEEK_END)
        end = fh.tell()
        if n == 0:
            return
        pos, found, block = end, 0, 8192
        while pos > 0:
            step = min(block, pos)
            pos -= step
            fh.seek(pos)
            chunk = fh.read(step)
            # a final newline ends the last line; it does not start one
            if pos + step == end and chunk.endswith(b"\n"):
                chunk = chunk[:-1]
            idx = len(chunk)
            while True:
                idx = chunk.rfind(b"\n", 0, idx)
                if idx < 0:
                    break
                found += 1
                if found == n:
                    fh.seek(pos + idx + 1)
                    return
        fh.seek(0)

    def _drain(self) -> bool:
        assert self.fh is not None
        wrote = False
        while True:
            chunk = self.fh.read(1 << 16)
            if not chunk:
                return wrote
            self.out.write(chunk)
            wrote = True

    def pump(self) -> bool:
        """Copy what is new; True when something was written."""
        if self.fh is None:
            self._open()
            if self.fh is None:
                return False
        wrote = self._drain()
        try:
            current = os.stat(self.path).st_ino
        except FileNotFoundError:
            current = None
        if current is not None and current != os.fstat(self.fh.fileno()).st_ino:
            wrote = self._drain() or wrote  # the rest of the rotated file
            self.fh.close()
            self.fh = None
            self.rotations += 1
            self.out.flush()
            click.echo("--- next attempt ---", err=True)
            self._open()
            if self.fh is not None:
                wrote = self._drain() or wrote
        if wrote:
            self.out.flush()
        return wrote

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None


def _follow_done(store: GroupStore, exp: Experiment) -> str | None:
    """Why following ``exp`` ends now, or None to keep following."""
    from polytune.store import is_lost

    if exp.status.is_done:
        return ""
    if is_lost(exp):
        return (
            f"experiment {exp.id} was running but its driver is gone (polytune resume {store.name})"
        )
    if exp.status.is_pending and not _driver_alive(store):
        return f"experiment {exp.id} is {exp.status.value} and no driver runs the group (polytune resume {store.name})"
    return None


@click.command("logs")
@click.argument("group")
@click.argument("exp_id", metavar="ID", type=click.IntRange(min=1))
@_workspace_option
@click.option(
    "--follow",
    "-f",
    is_flag=True,
    help="Keep printing while the experiment runs; ends when it ends.",
)
@click.option(
    "--stderr", "use_stderr", is_flag=True, help="The experiment's stderr instead of its stdout."
)
@click.option(
    "--tail",
    "-n",
    "tail_lines",
    type=click.IntRange(min=0),
    default=None,
    help="Start with the last N lines only.",
)
@click.option("--interval", type=click.FloatRange(min=0.01), default=0.2, hidden=True)
def logs(
    group: str,
    exp_id: int,
    workspace: str | None,
    follow: bool,
    use_stderr: bool,
    tail_lines: int | None,
    interval: float,
) -> None:
    """Print an experiment's output (--follow while it runs).

    stdout by default, --stderr for the other. --follow ends when the experiment ends; Ctrl-C
    stops following (exit 130) and the experiment keeps running.
    """
    store = _open(group, workspace)
    exp = store.get(exp_id)
    paths = store.paths(exp_id)
    path = paths.stderr if use_stderr else paths.stdout
    out: BinaryIO = sys.stdout.buffer  # click 8.5 types get_binary_stream loosely
    follower = _Follower(path, out, tail_lines)
    try:
        follower.pump()
        if not follow:
            if follower.fh is None:
                click.echo(
                    f"experiment {exp_id} has no {path.name} yet ({exp.status.value})", err=True
                )
            return
        while True:
            why = _follow_done(store, exp)
            if why is not None:
                follower.pump()
                if why:
                    click.echo(why, err=True)
                return
            time.sleep(interval)
            follower.pump()
            exp = store.get(exp_id)
    except BrokenPipeError:
        _quiet_broken_pipe()
    finally:
        follower.close()


# ----------------------------------------------------------------------------------------
# export
# ----------------------------------------------------------------------------------------


@click.command("export")
@click.argument("group", required=False)
@_workspace_option
@click.option(
    "--csv", "fmt", flag_value="csv", help="CSV (the default; JSON when FILE ends in .json)."
)
@click.option("--json", "fmt", flag_value="json", help="A JSON array of the same rows.")
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False, allow_dash=True), default=None,
              help="Write to FILE instead of stdout.")  # fmt: skip
@click.option(
    "--query",
    "-q",
    "query",
    default=None,
    metavar="QUERY",
    help="Only matching experiments (as in status).",
)
@click.option("--sort", "sort", default=None, metavar="FIELDS", help="Row order (default: id).")
def export(
    group: str | None,
    workspace: str | None,
    fmt: str | None,
    output: str | None,
    query: str | None,
    sort: str | None,
) -> None:
    """Export one row per experiment (CSV or JSON).

    Columns: id, status, reason, times and durations, params.*, the objective's value (last
    report) and best_value, and metrics.* (last) with their .min and .max.
    """
    from polytune.query import parse_query, parse_sort, select, sort_experiments
    from polytune.report import objective_of
    from polytune.review import export_columns, export_row

    store = _open(group, workspace)
    info = store.read_group()
    objective = objective_of(info)
    exps = select(store.experiments(), parse_query(query))
    keys = parse_sort(sort)
    if keys:
        exps = sort_experiments(exps, keys)
    now = time.time()
    rows = [export_row(e, objective, now) for e in exps]
    if fmt is None:
        fmt = "json" if output and output.lower().endswith(".json") else "csv"
    if fmt == "json":
        text = json.dumps(rows, indent=1, default=str) + "\n"
    else:
        columns = export_columns(rows)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        text = buf.getvalue()
    if output is None or output == "-":
        try:
            click.echo(text, nl=False)
        except BrokenPipeError:
            _quiet_broken_pipe()
        return
    target = Path(output)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    except OSError as e:
        from polytune.errors import PolytuneError

        tmp.unlink(missing_ok=True)
        raise PolytuneError(f"cannot write {target}: {e.strerror}") from e
    click.echo(f"wrote {len(rows)} experiments of group {store.name} to {target} ({fmt})", err=True)


# ----------------------------------------------------------------------------------------
# compare
# ----------------------------------------------------------------------------------------


@click.command("compare")
@click.argument("groups", nargs=-1)
@_workspace_option
@_json_option
def compare(groups: tuple[str, ...], workspace: str | None, as_json: bool) -> None:
    """Compare groups side by side (every group of the workspace by default).

    Algorithm, experiments per status, best value and configuration, compute and wall time,
    resource spent (Hyperband), and the best value so far after 1, 5, 10, ... experiments.
    """
    from polytune.cli import _workspace
    from polytune.errors import UsageError
    from polytune.report import objective_of
    from polytune.review import compare_groups, group_comparison
    from polytune.store import list_groups, open_group

    if groups:
        stores = [_open(g, workspace) for g in groups]
    else:
        stores = [open_group(p) for p in list_groups(_workspace(workspace))]
        if not stores:
            raise UsageError(f"no groups to compare in {_workspace(workspace).absolute()}")
    seen: set[Path] = set()
    columns = []
    now = time.time()
    for store in stores:
        if store.path in seen:
            continue
        seen.add(store.path)
        info = store.read_group()
        info.setdefault("name", store.name)
        exps = store.experiments()
        column = group_comparison(
            info, exps, objective_of(info), state=_state(store, info), now=now
        )
        column["path"] = str(store.path)
        columns.append(column)
    doc = compare_groups(columns)
    if as_json:
        _echo_json(doc)
        return
    _print_compare(_console(), doc)


def _print_compare(console: Console, doc: Mapping[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    from polytune.review import scaled_sparkline
    from polytune.views import fmt_duration, fmt_value

    cols = doc["groups"]
    table = Table(header_style="bold", show_lines=False)
    table.add_column("", style="bold", no_wrap=True)
    for c in cols:
        name = str(c["name"]) + (" ★" if doc.get("best_group") == c["name"] else "")
        table.add_column(name, overflow="fold")

    def row(label: str, cell: Callable[[Mapping[str, Any]], str | Text]) -> None:
        table.add_row(label, *(cell(c) for c in cols))

    def counts_text(c: Mapping[str, Any]) -> str:
        n = c["counts"]
        parts = [
            f"{n[s]} {s}"
            for s in ("succeeded", "failed", "stopped", "running", "lost", "created")
            if n.get(s)
        ]
        planned = f" of {c['planned']}" if c.get("planned") else ""
        return f"{c['experiments']}{planned}" + (f"\n{', '.join(parts)}" if parts else "")

    def best_value(c: Mapping[str, Any]) -> str | Text:
        if not c.get("best"):
            return Text("—", style="dim")
        text = Text(f"{fmt_value(c['best']['value'], 14)}  #{c['best']['id']}")
        if doc.get("best_group") == c["name"]:
            text.stylize("green bold")
        return text

    def best_config(c: Mapping[str, Any]) -> str:
        if not c.get("best"):
            return ""
        return "\n".join(f"{k}={fmt_value(v, 20)}" for k, v in c["best"]["config"].items())

    row("state", lambda c: str(c["state"]))
    row("algorithm", lambda c: str(c.get("algorithm") or ""))
    row(
        "metric",
        lambda c: (
            f"{c['metric']['name']} ({c['metric']['optimization']})" if c.get("metric") else "—"
        ),
    )
    row("experiments", counts_text)
    row("best value", best_value)
    row("best config", best_config)
    row("compute time", lambda c: fmt_duration(c["compute_seconds"]) or "0s")
    row("wall time", lambda c: fmt_duration(c["wall_seconds"]) or "—")
    if any(c.get("resource_spent") is not None for c in cols):
        row("resource spent", lambda c: fmt_value(c.get("resource_spent"), 14) or "—")
    curves = [v for c in cols for v in c["best_so_far"]]
    if curves:
        lo, hi = min(curves), max(curves)
        row("best so far", lambda c: scaled_sparkline(c["best_so_far"], lo, hi) or "—")
        at = doc["best_so_far_at"]
        for n in doc["checkpoints"]:

            def after(c: Mapping[str, Any], n: int = n) -> str:
                return fmt_value(at[str(c["name"])].get(str(n)), 14) or "—"

            row(f"  after {n}", after)
    console.print(table)
    if doc.get("same_metric") and curves:
        console.print(
            Text(
                "best so far: one shared scale across the groups (higher glyph = higher value)",
                style="dim",
            )
        )
    for note in doc.get("notes", []):
        console.print(Text(f"note: {note}", style="yellow"))


# ----------------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------------


@click.command("report")
@click.argument("group", required=False)
@_workspace_option
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Folder of the page and its images (default: GROUP_DIR/report).")  # fmt: skip
@click.option("--open", "open_browser", is_flag=True, help="Open the page in a web browser.")
@_json_option
def report(
    group: str | None, workspace: str | None, out_dir: str | None, open_browser: bool, as_json: bool
) -> None:
    """Write a static HTML report of a group, with plots.

    Optimization history, learning curves, parallel coordinates, slice plots, parameter
    importance (fANOVA), Hyperband rungs and a timeline; PNG files next to index.html, no
    network access. Needs matplotlib: pip install 'polytune[report]'.
    """
    from polytune.htmlreport import build_report, require_matplotlib

    require_matplotlib()  # before anything else: the one-line install hint, exit 2
    store = _open(group, workspace)
    info = store.read_group()
    target = Path(out_dir) if out_dir else store.path / "report"
    result = build_report(store, target, state=_state(store, info))
    if as_json:
        _echo_json(result.to_json())
    else:
        click.echo(f"report of group {store.name}: {result.html.absolute()}")
        click.echo(f"  {len(result.images)} images in {result.seconds:.1f} s", err=False)
        for name, why in result.skipped.items():
            click.echo(f"  not drawn: {name} ({why})")
    if open_browser:
        import webbrowser

        if not webbrowser.open(result.html.absolute().as_uri()):
            click.echo(
                f"could not open a browser; open {result.html.absolute()} yourself", err=True
            )
