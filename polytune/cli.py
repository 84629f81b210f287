"""The ``polytune`` command line: the only place that prints and maps errors to exit codes.

Exit codes: 0 success (a group that an early-stopping rule ended included), 1 runtime failure,
2 usage error or invalid polyaxonfile, 3 group busy (locked by a live driver), 130 interrupted
(the group is resumable).
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from polytune import __version__
from polytune.errors import Interrupted, PolytuneError, UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from polytune.driver import Driver
    from polytune.experiment import Experiment
    from polytune.store import GroupStore

WORKSPACE_ENV = "POLYTUNE_WORKSPACE"
DEFAULT_WORKSPACE = "polytune-groups"


def _console(stderr: bool = False) -> Console:
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # Piped or logged output: do not fold tables to 80 columns.
        console = Console(stderr=stderr, highlight=False, width=200)
    return console


def _fail(exc: PolytuneError) -> NoReturn:
    message = str(exc).replace("\n", " ")
    click.echo(f"Error: {message}", err=True)
    sys.exit(exc.exit_code)


class PolytuneGroup(click.Group):
    """Maps polytune's errors to one ``Error: …`` line and its exit code (no traceback)."""

    def invoke(self, ctx: click.Context) -> Any:
        debug = bool(ctx.params.get("debug"))
        try:
            return super().invoke(ctx)
        except PolytuneError as exc:
            if debug:
                raise
            _fail(exc)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort, SystemExit):
            raise
        except (
            Exception
        ) as exc:  # an internal bug: say so in one line, keep the traceback for --debug
            if debug:
                raise
            click.echo(
                f"Error: internal error {type(exc).__name__}: {exc} (run with --debug for the traceback)",
                err=True,
            )
            sys.exit(1)


def _workspace(value: str | None) -> Path:
    return Path(value or os.environ.get(WORKSPACE_ENV) or DEFAULT_WORKSPACE)


workspace_option = click.option(
    "--dir",
    "workspace",
    metavar="WORKSPACE",
    default=None,
    help=f"Folder that holds the groups (default: ${WORKSPACE_ENV} or ./{DEFAULT_WORKSPACE}).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")


def _files_option(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "-f",
        "--file",
        "extra_files",
        multiple=True,
        type=click.Path(dir_okay=False),
        help="Polyaxonfile (repeatable; later files are deep-merged over earlier ones).",
    )(f)
    f = click.option(
        "-P",
        "--param",
        "param_overrides",
        multiple=True,
        metavar="NAME=VALUE",
        help="Override a constant param (repeatable).",
    )(f)
    return click.argument("file", required=False, type=click.Path(dir_okay=False))(f)


def _gather_files(file: str | None, extra: Sequence[str]) -> list[str]:
    files = ([file] if file else []) + list(extra)
    if not files:
        raise UsageError("no polyaxonfile given: polytune run FILE [-f OVERRIDE ...]")
    return files


@click.group(cls=PolytuneGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="polytune")
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
def main(debug: bool) -> None:
    """Tune the hyperparameters of any command from a polyaxonfile, on this machine.

    \b
      polytune check group.yaml     validate and show the search space
      polytune run group.yaml       run the whole search with live progress
      polytune status               what ran, what is best, what failed
      polytune resume GROUP         continue after Ctrl-C, a crash or a reboot
    """


# ------------------------------------------------------------------------------------------
# check
# ------------------------------------------------------------------------------------------


@main.command()
@_files_option
@json_option
def check(
    file: str | None, extra_files: tuple[str, ...], param_overrides: tuple[str, ...], as_json: bool
) -> None:
    """Validate a polyaxonfile and show what `run` would do."""
    from polytune.check import build_report, render_report
    from polytune.config import load

    config = load(_gather_files(file, extra_files), param_overrides)
    report = build_report(config)
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
    else:
        render_report(report, _console())


# ------------------------------------------------------------------------------------------
# run / resume
# ------------------------------------------------------------------------------------------


@contextmanager
def _signals(driver: Driver) -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP (the terminal closed) ask the driver to stop cleanly: running
    experiments get SIGTERM and the stop grace, and are recorded as interrupted (resume reruns
    them). A second one of these signals forces a fast exit: no grace, the experiments' process
    groups are KILLed at once and still recorded as interrupted."""

    def handler(signum: int, frame: Any) -> None:
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        if driver.stop_requested:
            driver.force_stop(f"{name} received again")
        else:
            driver.request_stop(f"{name} received")

    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    old = {signum: signal.signal(signum, handler) for signum in handled}
    try:
        yield
    finally:
        for signum, previous in old.items():
            signal.signal(signum, previous)


def _drive(
    store: GroupStore,
    quiet: bool,
    as_json: bool,
    overrides: dict[str, Any],
    set_aside_damaged: bool = False,
) -> None:
    """Lock the group, rebuild its config and searcher, and run the driver loop."""
    from polytune.driver import Driver, DriverOptions, load_group_config, options_from
    from polytune.executors.factory import executor_settings, make_executor
    from polytune.searchers import make_searcher
    from polytune.views import LiveProgress, PlainProgress

    with store.lock():
        config, group = load_group_config(store)
        if set_aside_damaged:
            store.experiments()
            for damage in store.damage():
                if damage.exp_id is not None:
                    moved = store.set_aside(damage.exp_id)
                    click.echo(
                        f"set aside experiment {damage.exp_id} ({damage}): {moved}", err=True
                    )
        opts = dict(group.get("options") or options_from(config, {}))
        opts.update({k: v for k, v in overrides.items() if v is not None})
        if overrides:
            store.update_group(options=opts)
        options = DriverOptions(
            concurrency=int(opts["concurrency"]),
            timeout=opts.get("timeout"),
            max_restarts=int(opts.get("max_restarts") or 0),
            stop_grace=float(opts.get("stop_grace", 10.0)),
            env=dict(config.polytune.env),
            stdout_metrics=config.polytune.stdout_metrics,
            stall_timeout=opts.get("stall_timeout"),
            on_early_stop=str(opts.get("on_early_stop") or "stop"),
        )
        searcher = make_searcher(config)
        store.update_group(planned_total=searcher.planned_total())
        console = _console()
        progress: Any
        if as_json or quiet:
            from polytune.driver import NullProgress

            progress = NullProgress()
        elif console.is_terminal:
            progress = LiveProgress(console)
        else:
            progress = PlainProgress(console)
        executor = make_executor(
            executor_settings(opts, config.polytune, config.base_dir),
            capacity=options.concurrency,
            group=store.name,
            group_dir=store.path,
        )
        driver = Driver(
            store,
            config,
            executor,
            searcher,
            seed=int(group["seed"]),
            options=options,
            progress=progress,
        )
        try:
            with _signals(driver):
                try:
                    outcome = driver.run()
                except Interrupted:
                    if as_json:
                        out = driver_outcome_json(driver, "stopped")
                        click.echo(json.dumps(out, indent=2, default=str))
                    raise
        finally:
            executor.close()
        if as_json:
            click.echo(
                json.dumps(
                    driver_outcome_json(driver, outcome.status, outcome.reason),
                    indent=2,
                    default=str,
                )
            )


def driver_outcome_json(driver: Driver, status: str, reason: str | None = None) -> dict[str, Any]:
    from polytune.report import experiment_row

    best = driver.best()
    return {
        "group": driver.store.name,
        "path": str(driver.store.path),
        "status": status,
        "reason": reason,
        "counts": driver.counts(),
        "best": experiment_row(best, driver.objective) if best else None,
        "metric": driver.objective.to_json() if driver.objective else None,
    }


run_options = [
    click.option(
        "--concurrency",
        type=click.IntRange(min=1),
        default=None,
        help="Experiments at once (overrides the file).",
    ),
    click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=None,
        help="Seconds an experiment may run.",
    ),
    click.option(
        "--max-restarts",
        type=click.IntRange(min=0),
        default=None,
        help="Reruns of a failed experiment.",
    ),
    click.option("--quiet", "-q", is_flag=True, help="No progress output."),
    json_option,
]


executor_options = [
    click.option(
        "--executor",
        type=click.Choice(["local", "dask"]),
        default=None,
        help="Where experiments run (default: the file's polytune.executor, else local).",
    ),
    click.option(
        "--scheduler",
        default=None,
        metavar="tcp://HOST:PORT",
        help="Dask scheduler address (implies --executor dask).",
    ),
    click.option(
        "--scheduler-file",
        type=click.Path(dir_okay=False, resolve_path=True),
        default=None,
        help="Dask scheduler file (implies --executor dask).",
    ),
    click.option(
        "--gpus",
        default=None,
        metavar="0,1,2,3",
        help="GPU ids to hand out, gpus_per_experiment (default 1) to each experiment as "
        "CUDA_VISIBLE_DEVICES (local executor).",
    ),
]


def _executor_overrides(
    executor: str | None, scheduler: str | None, scheduler_file: str | None, gpus: str | None
) -> dict[str, Any]:
    if gpus is not None:
        from polytune.executors.gpus import parse_gpus

        try:
            parse_gpus(gpus)
        except PolytuneError as exc:
            raise click.BadParameter(str(exc), param_hint="--gpus") from None
    return {
        "executor": executor,
        "scheduler": scheduler,
        "scheduler_file": scheduler_file,
        "gpus": gpus,
    }


early_stop_options = [
    click.option(
        "--stall-timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=None,
        metavar="SEC",
        help="Stop an experiment that writes no metric line and no output for SEC seconds.",
    ),
    click.option(
        "--on-early-stop",
        type=click.Choice(["stop", "finish"]),
        default=None,
        help="When an early-stopping rule ends the group: stop the running experiments "
        "(default) or let them finish.",
    ),
]


def _with(options: list[Callable[..., Any]]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def deco(f: Callable[..., Any]) -> Callable[..., Any]:
        for opt in reversed(options):
            f = opt(f)
        return f

    return deco


@main.command()
@_files_option
@click.option("--name", default=None, help="Group name (default: <file-stem>-<n>).")
@workspace_option
@click.option("--seed", type=int, default=None, help="Seed of the search (overrides the file).")
@_with(run_options)
@_with(early_stop_options)
@_with(executor_options)
def run(
    file: str | None,
    extra_files: tuple[str, ...],
    param_overrides: tuple[str, ...],
    name: str | None,
    workspace: str | None,
    seed: int | None,
    concurrency: int | None,
    timeout: float | None,
    max_restarts: int | None,
    quiet: bool,
    as_json: bool,
    stall_timeout: float | None,
    on_early_stop: str | None,
    executor: str | None,
    scheduler: str | None,
    scheduler_file: str | None,
    gpus: str | None,
) -> None:
    """Run a whole search: polytune run group.yaml"""
    from polytune.config import load
    from polytune.driver import new_group

    files = _gather_files(file, extra_files)
    config = load(files, param_overrides)
    overrides = {
        "concurrency": concurrency,
        "timeout": timeout,
        "max_restarts": max_restarts,
        "stall_timeout": stall_timeout,
        "on_early_stop": on_early_stop,
        **_executor_overrides(executor, scheduler, scheduler_file, gpus),
    }
    store = new_group(
        config,
        workspace=_workspace(workspace),
        name=name,
        stem=Path(files[0]).stem,
        param_overrides=param_overrides,
        seed=seed,
        options=overrides,
    )
    if not (quiet or as_json):
        for warning in _config_warnings(config):
            click.echo(f"Warning: {warning}", err=True)
    _drive(store, quiet, as_json, {})


def _config_warnings(config: Any) -> list[str]:
    warnings = list(config.warnings)
    for p in config.space.params:
        warnings.extend(p.warnings)
    return warnings


@main.command()
@click.argument("group", required=False)
@workspace_option
@_with(run_options)
@_with(early_stop_options)
@_with(executor_options)
@click.option(
    "--set-aside-damaged",
    is_flag=True,
    help="Give up on damaged or missing experiment records: move them to the group's "
    "set-aside/ folder (files kept) and let the search run their configurations again.",
)
def resume(
    group: str | None,
    workspace: str | None,
    concurrency: int | None,
    timeout: float | None,
    max_restarts: int | None,
    quiet: bool,
    as_json: bool,
    stall_timeout: float | None,
    on_early_stop: str | None,
    executor: str | None,
    scheduler: str | None,
    scheduler_file: str | None,
    gpus: str | None,
    set_aside_damaged: bool,
) -> None:
    """Continue a group after a stop, Ctrl-C, a crash or a reboot.

    Finished experiments are kept and never rerun; experiments that were running are marked
    lost and rerun; the search continues where it was. A group that an early-stopping rule
    ended is finished: there is nothing to resume. A damaged or missing experiment record
    stops the resume (it may have finished): restore it, or pass --set-aside-damaged.
    """
    store = _open(group, workspace)
    info = store.read_group()
    if info.get("status") == "early_stopped":
        reason = info.get("reason") or "an early-stopping rule held"
        if as_json:
            out = {"group": store.name, "path": str(store.path), "status": "early_stopped"}
            click.echo(json.dumps({**out, "reason": reason}, indent=2))
        elif not quiet:
            click.echo(
                f"group {store.name} is finished: it stopped early ({reason}); nothing to resume"
            )
        return
    overrides = {
        "concurrency": concurrency,
        "timeout": timeout,
        "max_restarts": max_restarts,
        "stall_timeout": stall_timeout,
        "on_early_stop": on_early_stop,
        **_executor_overrides(executor, scheduler, scheduler_file, gpus),
    }
    _drive(store, quiet, as_json, overrides, set_aside_damaged)


# ------------------------------------------------------------------------------------------
# status / groups
# ------------------------------------------------------------------------------------------


def _open(group: str | None, workspace: str | None) -> GroupStore:
    from polytune.store import open_group, resolve_group

    return open_group(resolve_group(_workspace(workspace), group))


def _open_damaged(
    group: str | None, workspace: str | None
) -> tuple[GroupStore, dict[str, Any], list[str]]:
    """The group's store and ``group.json`` for a reader that must show what it can: a damaged
    ``group.json`` reads as ``{"status": "damaged (group.json)"}`` and is reported as damage
    instead of failing."""
    from polytune.errors import StoreError
    from polytune.store import GroupStore, resolve_group

    store = GroupStore(resolve_group(_workspace(workspace), group))
    try:
        return store, store.read_group(), []
    except StoreError as exc:
        return store, {"status": "damaged (group.json)"}, [str(exc)]


def group_state(store: GroupStore, group: dict[str, Any]) -> str:
    """The group's state as users need it: a "running" group whose driver is gone is shown as
    interrupted (resumable)."""
    status = str(group.get("status", "created"))
    if status != "running":
        return status
    if driver_alive(store):
        return "running"
    return "interrupted (no driver: polytune resume)"


def driver_alive(store: GroupStore) -> bool:
    """Whether the group's driver runs (a driver on another host counts as alive)."""
    return store.driver_alive() is not False


@main.command()
@click.argument("group", required=False)
@workspace_option
@click.option(
    "--sort",
    "sort",
    default=None,
    metavar="FIELDS",
    help="e.g. -metrics.accuracy,id (default: best first).",
)
@click.option(
    "--query",
    "-q",
    "query",
    default=None,
    metavar="QUERY",
    help='e.g. "status:succeeded, metrics.loss:<=0.3".',
)
@click.option("--top", type=click.IntRange(min=1), default=None, help="Show only the first K.")
@json_option
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (one row per experiment).")
def status(
    group: str | None,
    workspace: str | None,
    sort: str | None,
    query: str | None,
    top: int | None,
    as_json: bool,
    as_csv: bool,
) -> None:
    """What ran, what is best, what failed (the latest group by default)."""
    from polytune.query import parse_query, parse_sort, select, sort_experiments
    from polytune.report import experiment_row, flat_row, objective_of, summarize
    from polytune.stopping import describe_rules

    store, info, group_damage = _open_damaged(group, workspace)
    info.setdefault("name", store.name)
    experiments = store.experiments()
    objective = objective_of(info)
    summary = summarize(info, experiments, objective, state=group_state(store, info))
    summary["path"] = str(store.path)
    summary["early_stopping"] = describe_rules(
        (info.get("config") or {}).get("early_stopping") or [], info.get("options") or {}
    )
    summary["early_stop"] = info.get("early_stop")
    from polytune.algorithms.multifidelity import planned_rungs, rung_summary

    rung_rows = rung_summary(experiments, objective, planned_rungs(info))
    if rung_rows:  # Hyperband / ASHA: the per-bracket summary
        summary["rungs"] = rung_rows
    damage = group_damage + [f"{d.path}: {d.problem}" for d in store.damage()]
    conditions = parse_query(query)
    keys = parse_sort(sort)
    shown = select(experiments, conditions)
    if keys:
        shown = sort_experiments(shown, keys)
    elif objective is not None:
        shown = sort_experiments(
            shown, [(f"metrics.{objective.metric}", objective.maximize), ("id", False)]
        )
    if top is not None:
        shown = shown[:top]
    if as_json:
        summary["damage"] = damage
        summary["experiments"] = [experiment_row(e, objective) for e in shown]
        summary["experiment_count"] = len(experiments)
        click.echo(_json_document(summary))
        return
    if as_csv:
        rows = [flat_row(e, objective) for e in shown]
        columns: list[str] = []
        for r in rows:
            columns.extend(k for k in r if k not in columns)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns or ["id"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        click.echo(buf.getvalue(), nl=False)
        return
    from polytune.views import rungs_table, status_header, status_table

    console = _console()
    console.print(status_header(summary))
    console.print(f"[dim]{store.path}[/]")
    param_names = _param_columns(info, shown)
    metric_names = _metric_columns(objective, shown)
    if shown:
        console.print(status_table(shown, objective, param_names, metric_names))
    else:
        console.print(
            "[dim]no experiments" + (" match the query" if conditions else " yet") + "[/]"
        )
    if rung_rows:
        console.print(rungs_table(rung_rows, objective))
    from polytune.store import tail_lines

    for e in [e for e in shown if e.status.value == "failed"][:5]:
        tail = tail_lines(store.paths(e.id).stderr, 3, width=200)
        console.print(
            f"[red]#{e.id} failed[/] ({e.reason}):" + ("" if tail else " [dim]no stderr[/]")
        )
        for line in tail:
            console.print(f"    {line}", markup=False, highlight=False)
    for d in damage:
        console.print(f"[red]damaged:[/] {d}", markup=True, highlight=False)


def _json_document(doc: dict[str, Any]) -> str:
    """``json.dumps(doc, indent=2)``, except that long lists of objects (10,000 experiments) get
    one compact line per element: Python's C encoder only runs without ``indent``, and the
    pure-Python one took seconds. Still valid, diffable JSON."""
    parts = []
    for key, value in doc.items():
        if isinstance(value, list) and len(value) > 20 and all(isinstance(v, dict) for v in value):
            rows = ",\n    ".join(json.dumps(v, default=str) for v in value)
            text = "[\n    " + rows + "\n  ]"
        else:
            text = json.dumps(value, indent=2, default=str).replace("\n", "\n  ")
        parts.append(f"  {json.dumps(key)}: {text}")
    return "{\n" + ",\n".join(parts) + "\n}" if parts else "{}"


def _param_columns(info: dict[str, Any], exps: Sequence[Experiment]) -> list[str]:
    names: list[str] = []
    for e in exps:
        names.extend(k for k in e.config if k not in names)
    return names[:8]


def _metric_columns(objective: Any, exps: Sequence[Experiment]) -> list[str]:
    names: list[str] = [objective.metric] if objective is not None else []
    for e in exps:
        names.extend(k for k in e.metrics if k not in names and k != "step")
    return names[:5]


@main.command()
@workspace_option
@json_option
def groups(workspace: str | None, as_json: bool) -> None:
    """List the groups of a workspace with their state and best value."""
    from polytune.report import objective_of, summarize
    from polytune.store import list_groups, open_group

    rows = []
    for path in list_groups(_workspace(workspace)):
        try:
            store = open_group(path)
            info = store.read_group()
        except PolytuneError as exc:
            rows.append(
                {"name": path.name, "state": f"damaged: {exc}", "counts": {}, "experiments": 0}
            )
            continue
        info.setdefault("name", store.name)
        exps = store.experiments()
        row = summarize(info, exps, objective_of(info), state=group_state(store, info))
        row.pop("best_so_far", None)
        row["path"] = str(path)
        rows.append(row)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    from polytune.views import groups_table

    console = _console()
    if not rows:
        console.print(f"no groups in {_workspace(workspace)}")
        return
    console.print(groups_table(rows))


# ------------------------------------------------------------------------------------------
# stop / restart
# ------------------------------------------------------------------------------------------


@main.command()
@click.argument("group", required=False)
@workspace_option
@click.option("--wait/--no-wait", default=True, help="Wait until the driver has stopped (default).")
def stop(group: str | None, workspace: str | None, wait: bool) -> None:
    """Stop a running group from another terminal (it stays resumable)."""
    store = _open(group, workspace)
    if not driver_alive(store):
        info = store.read_group()
        click.echo(
            f"group {store.name} has no running driver (state: {group_state(store, info)}); nothing to stop"
        )
        return
    (store.path / "stop.request").write_text(f"{os.getpid()} {time.time()}\n")
    data = store.read_driver() or {}
    pid = data.get("pid")
    if isinstance(pid, int):
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    if not wait:
        click.echo(f"stop requested for group {store.name}")
        return
    deadline = time.monotonic() + 120
    while driver_alive(store) and time.monotonic() < deadline:
        time.sleep(0.1)
    if driver_alive(store):
        raise PolytuneError(f"group {store.name}: the driver did not stop within 120 s (pid {pid})")
    click.echo(f"group {store.name} stopped; resume it with: polytune resume {store.name}")


@main.command()
@click.argument("group")
@click.argument("experiment", type=int)
@workspace_option
@click.option("--copy", is_flag=True, help="Start from a copy of the experiment's outputs.")
@_with(run_options[1:3] + run_options[3:])
def restart(
    group: str,
    experiment: int,
    workspace: str | None,
    copy: bool,
    timeout: float | None,
    max_restarts: int | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Rerun one experiment with the same params, recorded in the group as a new experiment."""
    import shutil

    from polytune.driver import Driver, DriverOptions, load_group_config
    from polytune.executors.local import LocalExecutor
    from polytune.searchers import make_searcher
    from polytune.views import PlainProgress

    store = _open(group, workspace)
    with store.lock():
        config, info = load_group_config(store)
        source = store.get(experiment)
        opts = dict(info.get("options") or {})
        options = DriverOptions(
            concurrency=1,
            timeout=timeout if timeout is not None else opts.get("timeout"),
            max_restarts=max_restarts
            if max_restarts is not None
            else int(opts.get("max_restarts") or 0),
            stop_grace=float(opts.get("stop_grace", 10.0)),
            env=dict(config.polytune.env),
        )
        new = store.new_experiment(
            config=dict(source.config),
            params=dict(source.params),
            meta={**source.meta, "restart_of": source.id},
            created_at=time.time(),
            restart_of=source.id,
        )
        if copy and source.outputs_path:
            src = Path(source.outputs_path)
            dst = Path(new.outputs_path or store.paths(new.id).outputs)
            if src.is_dir():
                shutil.copytree(src, dst, dirs_exist_ok=True)
        executor = LocalExecutor(1)
        progress: Any
        if as_json or quiet:
            from polytune.driver import NullProgress

            progress = NullProgress()
        else:
            progress = PlainProgress(_console())
        driver = Driver(
            store,
            config,
            executor,
            make_searcher(config),
            seed=int(info["seed"]),
            options=options,
            progress=progress,
            only={new.id},
        )
        try:
            with _signals(driver):
                driver.run()
        finally:
            executor.close()
        final = store.get(new.id)
        if as_json:
            from polytune.report import experiment_row

            click.echo(json.dumps(experiment_row(final, driver.objective), indent=2, default=str))
        elif not quiet:
            click.echo(f"experiment {new.id} (restart of {source.id}) {final.status.value}")


def _register_extensions() -> None:
    """Commands that live in their own modules (kept out of this file so each stays small);
    each module's ``register(main)`` adds its commands and must import heavy libraries lazily."""
    import importlib

    for name in EXTENSION_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(main)


EXTENSION_MODULES = ("polytune.cli_review",)
_register_extensions()


def entry() -> None:  # pragma: no cover - console script alias
    main()


if __name__ == "__main__":  # pragma: no cover
    main()
