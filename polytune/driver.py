"""The driver: the loop that wires config, searcher, store, executor and metrics.

One driver per group (it holds the group's lock) and it is the only writer of the group
directory, so it keeps an in-memory mirror of the records it wrote and never re-reads them.

Order of a tick, and why:
1. honour a stop request first, so nothing new starts after Ctrl-C / ``polytune stop``;
2. fill every free slot — pending experiments (created, or lost and to be rerun) before new
   suggestions, so a resumed group finishes what it had promised before it grows;
3. wait for an experiment to end (event-driven: returns as soon as one ends, so a freed slot is
   refilled within milliseconds) or for the metrics poll interval;
4. record what ended (durably: a result is final), then read new metric lines of the running ones
   (not durably: a running experiment's latest metric is transient).

Determinism: the RNG of a suggestion is ``default_rng([seed, len(history)])``, so the same seed and
the same history give the same suggestion — before and after a crash.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import yaml

from polytune import __version__, procutil, stopping
from polytune.config import load_text
from polytune.errors import ConfigError, Interrupted, StoreError
from polytune.executors.base import Executor, ExecutorError, Finished, LaunchSpec, Reattachable
from polytune.experiment import Experiment, Objective, Searcher, Status, Suggestion
from polytune.metrics import (
    MetricsReader,
    MetricSummary,
    apply_summary,
    parse_stdout_line,
    update,
)
from polytune.model import Config
from polytune.render import render_command
from polytune.stopping import Curve, GroupStop
from polytune.store import (
    SET_ASIDE_DIR,
    STATUS_FILE,
    Damage,
    GroupStore,
    create_group,
    read_command_status,
)

__all__ = [
    "Driver",
    "DriverOptions",
    "Progress",
    "RunOutcome",
    "experiment_env",
    "load_group_config",
    "new_group",
]

GROUP_RUNNING = "running"
GROUP_DONE = "done"
GROUP_STOPPED = "stopped"
# An early-stopping rule of the group held (a threshold was reached, too many failures): a
# normal ending (exit 0), not an interruption; ``resume`` has nothing left to run.
GROUP_EARLY_STOPPED = "early_stopped"
#: Longest wait between two reads of the running experiments' metrics when a group threshold or
#: a per-experiment policy is configured.
LIVE_POLL = 0.05
GROUP_FAILED = "failed"
GROUP_CREATED = "created"
STOP_FILE = "stop.request"
# Reason prefix of experiments stopped because the *driver* stopped (Ctrl-C, `polytune stop`):
# they did not end on their own, so `resume` runs them again as a new attempt. Experiments
# stopped by early stopping keep their status.
INTERRUPTED = "interrupted"


class Progress(Protocol):
    """Where the driver reports what happens (rich live view, plain lines, nothing)."""

    def started(self, driver: Driver) -> None: ...

    def event(self, driver: Driver, exp: Experiment, what: str) -> None: ...

    def tick(self, driver: Driver) -> None: ...

    def finished(self, driver: Driver, outcome: RunOutcome) -> None: ...


class NullProgress:
    def started(self, driver: Driver) -> None:
        pass

    def event(self, driver: Driver, exp: Experiment, what: str) -> None:
        pass

    def tick(self, driver: Driver) -> None:
        pass

    def finished(self, driver: Driver, outcome: RunOutcome) -> None:
        pass


@dataclass(frozen=True)
class DriverOptions:
    concurrency: int = 1
    timeout: float | None = None
    max_restarts: int = 0
    stop_grace: float = 10.0
    poll_interval: float = 0.25
    save_interval: float = 1.0
    stdout_metrics: bool = False
    env: Mapping[str, str] = field(default_factory=dict)
    #: Stop an experiment silent (no new metric line, no output) for this many seconds.
    stall_timeout: float | None = None
    #: When a group rule stops the group: "stop" running experiments, or let them "finish".
    on_early_stop: str = "stop"


@dataclass(frozen=True)
class RunOutcome:
    status: str
    counts: dict[str, int]
    best: Experiment | None
    reason: str | None = None

    def to_json(self, objective: Objective | None) -> dict[str, Any]:
        best = None
        if self.best is not None:
            best = {
                "id": self.best.id,
                "params": self.best.params,
                "metrics": self.best.metrics,
                "value": objective.value(self.best) if objective else None,
            }
        return {"status": self.status, "counts": self.counts, "best": best, "reason": self.reason}


# ----------------------------------------------------------------------------------------
# Group creation and reloading
# ----------------------------------------------------------------------------------------


def options_from(config: Config, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The effective run options: the file's values, then the command line's."""
    opts: dict[str, Any] = {
        "concurrency": config.concurrency,
        "timeout": config.polytune.timeout,
        "max_restarts": config.polytune.max_restarts,
        "stop_grace": config.polytune.stop_grace,
        "stall_timeout": config.polytune.stall_timeout,
        "on_early_stop": config.polytune.on_early_stop,
    }
    opts.update({k: v for k, v in overrides.items() if v is not None})
    return opts


def new_group(
    config: Config,
    *,
    workspace: Path,
    name: str | None,
    stem: str,
    param_overrides: Sequence[str] = (),
    seed: int | None = None,
    options: Mapping[str, Any] | None = None,
) -> GroupStore:
    """Create the group directory for ``config``: ``group.json`` and the merged polyaxonfile."""
    if config.command is None:
        raise ConfigError("run", config.command_note or "the polyaxonfile has no command to run")
    if seed is None:
        seed = config.seed if config.seed is not None else secrets.randbelow(2**31)
    group = {
        "polytune_version": __version__,
        "status": GROUP_CREATED,
        "created_at": time.time(),
        "seed": seed,
        "seed_drawn": config.seed is None,
        "algorithm": config.algorithm,
        "sources": list(config.sources),
        "base_dir": str(config.base_dir),
        "param_overrides": list(param_overrides),
        "options": options_from(config, options or {}),
        "metric": config.metric.__dict__ if config.metric else None,
        "config": config.to_json(),
    }
    text = yaml.safe_dump(dict(config.document), sort_keys=False, allow_unicode=True)
    return create_group(workspace, stem, name, group, text)


def load_group_config(store: GroupStore) -> tuple[Config, dict[str, Any]]:
    """Rebuild the Config from the group's saved polyaxonfile (the source of truth)."""
    group = store.read_group()
    path = store.path / "polyaxonfile.yml"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StoreError(f"{path}: cannot read the group's polyaxonfile ({exc.strerror})") from None
    config = load_text(
        text,
        base_dir=Path(group.get("base_dir") or store.path),
        source=str(path),
        overrides=group.get("param_overrides", []),
    )
    return config, group


# ----------------------------------------------------------------------------------------
# The experiment's contract: environment and command
# ----------------------------------------------------------------------------------------

_ENV_NAME = re.compile(r"[^A-Za-z0-9_]")


def experiment_env(
    store: GroupStore, exp: Experiment, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The variables an experiment's command sees (DESIGN.md §3)."""
    paths = store.paths(exp.id)
    params_json = json.dumps(exp.params, default=str)
    env = {
        "POLYTUNE_PARAMS": params_json,
        "POLYAXON_PARAMS": params_json,
        "POLYTUNE_GROUP_DIR": str(store.path),
        "POLYTUNE_GROUP_NAME": store.name,
        "POLYTUNE_EXPERIMENT_ID": str(exp.id),
        "POLYTUNE_EXPERIMENT_DIR": str(paths.dir),
        "POLYTUNE_ATTEMPT": str(exp.attempt),
        "POLYTUNE_OUTPUTS_PATH": str(exp.outputs_path or paths.outputs),
        "POLYAXON_RUN_OUTPUTS_PATH": str(exp.outputs_path or paths.outputs),
        "POLYTUNE_METRICS_FILE": str(paths.metrics),
    }
    for name, value in exp.params.items():
        text = json.dumps(value) if isinstance(value, list | dict) else str(value)
        env[f"POLYTUNE_PARAM_{_ENV_NAME.sub('_', name).upper()}"] = text
    if extra:
        env.update(extra)
    return env


def template_values(store: GroupStore, exp: Experiment) -> dict[str, Any]:
    """Values a ``run.cmd`` template may reference: params plus ``globals.*`` context."""
    paths = store.paths(exp.id)
    outputs = str(exp.outputs_path or paths.outputs)
    values: dict[str, Any] = dict(exp.params)
    values.update(
        {
            "globals.outputs_path": outputs,
            "globals.run_outputs_path": outputs,
            "globals.artifacts_path": outputs,
            "globals.run_artifacts_path": outputs,
            "globals.uuid": f"{store.name}-{exp.id}",
            "globals.run_uuid": f"{store.name}-{exp.id}",
            "globals.name": f"{store.name}-{exp.id}",
            "globals.project_name": store.name,
            "globals.group_name": store.name,
            "globals.experiment_id": exp.id,
            "globals.metrics_file": str(paths.metrics),
        }
    )
    return values


# ----------------------------------------------------------------------------------------
# The driver
# ----------------------------------------------------------------------------------------


class Records(dict[int, Experiment]):
    """The driver's mirror of the group's records, in id order (ids only grow, and records
    are loaded sorted), with the ids of pending experiments kept up to date on every write so
    that finding the next one to launch never scans thousands of records."""

    def __init__(self) -> None:
        super().__init__()
        self.pending: set[int] = set()
        #: Ids of manual restarts (``polytune restart``), which the searcher does not see.
        self.restarts: set[int] = set()

    def __setitem__(self, key: int, exp: Experiment) -> None:
        super().__setitem__(key, exp)
        if exp.status.is_pending:
            self.pending.add(key)
        else:
            self.pending.discard(key)
        if exp.restart_of is not None:
            self.restarts.add(key)


class Driver:
    def __init__(
        self,
        store: GroupStore,
        config: Config,
        executor: Executor,
        searcher: Searcher,
        *,
        seed: int,
        options: DriverOptions,
        progress: Progress | None = None,
        clock: Callable[[], float] = time.time,
        is_alive: Callable[[Experiment], bool] | None = None,
        kill_group: Callable[[int, float], None] | None = None,
        only: set[int] | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.executor = executor
        self.searcher = searcher
        self.seed = seed
        self.options = options
        self.progress: Progress = progress or NullProgress()
        self.clock = clock
        self._is_alive = is_alive
        self._kill_group = kill_group
        self.objective = (
            Objective(config.metric.name, config.metric.optimization) if config.metric else None
        )
        self.exps = Records()
        self._readers: dict[int, MetricsReader] = {}
        self._stdout_readers: dict[int, MetricsReader] = {}
        self._summaries: dict[int, MetricSummary] = {}
        self._last_save: dict[int, float] = {}
        self._stop_reason: str | None = None
        self._force_stop = False
        self._recovered = False  # the history passed the damage check of _recover
        self._stopping: dict[int, str] = {}
        # ``only``: run just these experiments (``polytune restart``); the group's state is not
        # changed and the searcher is not asked for more.
        self.only = only
        self._exhausted = only is not None
        self.started_at = clock()
        self.planned_total = searcher.planned_total() if only is None else len(only)
        self._stop_file = store.path / STOP_FILE
        # Early stopping (stopping.py holds the pure rules). A restart (``only``) runs what the
        # user asked for: no group rule, no policy; the stall watchdog still applies.
        rules = config.early_stopping if only is None else ()
        self._thresholds = stopping.thresholds(rules)
        self._failure_rule = stopping.failure_rule(rules)
        self._policies = stopping.policies(rules)
        #: metric -> experiment id -> curve, for the policies (rebuilt from metrics files on resume)
        self._curves: dict[str, dict[int, Curve]] = {r.metric: {} for r in self._policies}
        self._early_stop: GroupStop | None = None
        #: running experiment -> (time of its last metric line or output, its output's size)
        self._activity: dict[int, tuple[float, int]] = {}
        # Live rules act on metric lines as they come: read them at least every LIVE_POLL
        # seconds (a pread per running experiment), so a stop lands within about a line.
        self._wait = options.poll_interval
        if self._thresholds or self._policies:
            self._wait = min(self._wait, LIVE_POLL)

    # ----- public -------------------------------------------------------------------------
    def request_stop(self, reason: str) -> None:
        """Ask the loop to stop (safe to call from a signal handler)."""
        if self._stop_reason is None:
            self._stop_reason = reason

    @property
    def stop_requested(self) -> bool:
        return self._stop_reason is not None

    def force_stop(self, reason: str) -> None:
        """Stop now, without the grace period (a second Ctrl-C): every running experiment's
        process group is KILLed at once and, like after a polite stop, recorded as interrupted,
        so that resume runs it again. Safe to call from a signal handler: it only sets fields
        and sends signals; the loop records the ends as usual.
        """
        self.request_stop(reason)
        self._force_stop = True
        for exp_id in self.executor.running():
            self._stopping.setdefault(exp_id, f"{INTERRUPTED}: {self._stop_reason}")
            self.executor.stop(exp_id, 0.0)

    def experiments(self) -> list[Experiment]:
        return list(self.exps.values())

    def counts(self) -> dict[str, int]:
        counts = {s.value: 0 for s in Status}
        for exp in self.exps.values():
            counts[exp.status.value] += 1
        return counts

    def best(self) -> Experiment | None:
        return self.objective.best(list(self.exps.values())) if self.objective else None

    def run(self) -> RunOutcome:
        """Run (or resume) the group until the search is over or an early-stopping rule of
        the group holds, or raise ``Interrupted``."""
        if self.only is None and (ended := self._ended_early()) is not None:
            return ended
        self.store.start_background_sync()
        try:
            try:
                return self._run()
            finally:
                # Also re-raises a failure of the background fsync thread.
                self.store.stop_background_sync()
        except StoreError as exc:
            if self._recovered:
                # A write failed mid-run (disk full, I/O error): the running experiments were
                # stopped (see _run), every record on disk is whole, and resume settles the rest.
                raise StoreError(
                    f"{exc}; group {self.store.name} stopped: once that is fixed, continue it "
                    f"with: polytune resume {self.store.name}"
                ) from exc
            raise

    def _run(self) -> RunOutcome:
        self._recover()
        self._clear_stop_request()
        if self.only is None:
            self.store.update_group(status=GROUP_RUNNING, driver_started_at=self.started_at)
        self.progress.started(self)
        # A resumed group may already meet a rule (it held while the previous driver was
        # stopping the group): re-derived from the records, so nothing is rerun.
        if self._thresholds and (
            crossed := stopping.crossing_in_history(self._thresholds, self.exps.values())
        ):
            self._stop_group(crossed)
        self._check_failures()
        try:
            while True:
                if self._stop_reason is None and self._stop_file.exists():
                    self.request_stop("polytune stop")
                if self._stop_reason is not None:
                    self._shutdown()
                    reason = self._stop_reason
                    outcome = RunOutcome(GROUP_STOPPED, self.counts(), self.best(), reason)
                    if self.only is None:
                        self.store.update_group(
                            status=GROUP_STOPPED, ended_at=self.clock(), reason=reason
                        )
                    self.progress.finished(self, outcome)
                    raise Interrupted(
                        f"group {self.store.name} stopped ({reason}); resume it with: polytune resume {self.store.name}"
                    )
                self._fill_slots()
                if not self.executor.running():
                    # Every free slot was offered to pending work and to the searcher: with
                    # nothing running, nothing can change any more, so the search is over.
                    if self._stop_reason is None:
                        break
                    continue
                for fin in self.executor.wait(self._wait):
                    self._on_finished(fin)
                self._read_running_metrics()
                self.progress.tick(self)
        except BaseException:
            # Whatever happens (a KeyboardInterrupt between ticks, a write failure), no process
            # of the group may outlive the driver unrecorded.
            if self.executor.running():
                self._shutdown()
            raise
        if self._early_stop is not None:
            return self._finish_early(self._early_stop)
        outcome = RunOutcome(GROUP_DONE, self.counts(), self.best())
        if self.only is None:
            self.store.update_group(status=GROUP_DONE, ended_at=self.clock(), reason=None)
        self.progress.finished(self, outcome)
        return outcome

    def _ended_early(self) -> RunOutcome | None:
        """An early-stopped group is finished: its outcome, without running anything."""
        group = self.store.read_group()
        if group.get("status") != GROUP_EARLY_STOPPED:
            return None
        for exp in self.store.experiments():
            self.exps[exp.id] = exp
        reason = group.get("reason")
        outcome = RunOutcome(
            GROUP_EARLY_STOPPED,
            self.counts(),
            self.best(),
            reason if isinstance(reason, str) else None,
        )
        self.progress.finished(self, outcome)
        return outcome

    def _finish_early(self, stop: GroupStop) -> RunOutcome:
        """End an early-stopped group: experiments that never started are stopped too (the
        group will not run them), then the group's state is final."""
        now = self.clock()
        for exp_id, exp in sorted(self.exps.items()):
            if exp.status.is_pending and (self.only is None or exp_id in self.only):
                exp = exp.with_(
                    status=Status.STOPPED, reason=stop.experiment_reason(), ended_at=now
                )
                self.store.save(exp, durable=True)
                self.exps[exp_id] = exp
        outcome = RunOutcome(GROUP_EARLY_STOPPED, self.counts(), self.best(), stop.reason)
        self.store.update_group(status=GROUP_EARLY_STOPPED, ended_at=now, reason=stop.reason)
        self.progress.finished(self, outcome)
        return outcome

    def _clear_stop_request(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._stop_file.unlink()

    # ----- recovery -----------------------------------------------------------------------
    def _recover(self) -> None:
        """Load the history and settle what a dead driver left behind.

        An experiment it left "running", or whose launch it never recorded (it died between
        starting the command and saving the record: the command's status file says it started),
        is stopped if it still runs; then it ends as its command's status file says when the
        command exited on its own while no driver watched (never run twice, never lost), and
        becomes ``lost`` (to run again) otherwise.

        A damaged or missing record stops the resume (``StoreError``): that experiment may have
        finished, and rerunning or dropping it on a guess could lose or double a result.
        """
        history = self.store.experiments()
        damage = self.store.damage()
        if damage:
            raise StoreError(_damage_message(self.store, damage))
        self._recovered = True
        for exp in history:
            if exp.status is Status.RUNNING:
                exp = self._reattach(exp) or self._settle(exp)
            elif exp.status.is_pending and (launch := self._unrecorded_launch(exp)) is not None:
                exp = self._settle(*launch)
            elif exp.status is Status.STOPPED and (exp.reason or "").startswith(INTERRUPTED):
                exp = exp.with_(status=Status.CREATED, reason=f"resumed after: {exp.reason}")
                self.store.save(exp, durable=True)
            self.exps[exp.id] = exp
        if self._curves:
            self._load_curves()

    def _reattach(self, exp: Experiment) -> Experiment | None:
        """Take back an experiment a dead driver left running on an executor whose work
        outlives the driver (Dask: ``base.Reattachable``); ``None`` when it cannot."""
        if exp.executor.get("name") != self.executor.name or not isinstance(
            self.executor, Reattachable
        ):
            return None
        handle = self.executor.reattach(exp.id, exp.attempt, exp.executor)
        if handle is None:
            return None
        self.exps[exp.id] = exp
        paths = self.store.paths(exp.id)
        # Read from the start: the summary is rebuilt from every line written so far.
        self._readers[exp.id] = MetricsReader(paths.metrics)
        if self.options.stdout_metrics:
            self._stdout_readers[exp.id] = MetricsReader(paths.stdout, parser=parse_stdout_line)
        self._summaries[exp.id] = MetricSummary()
        self._last_save[exp.id] = self.clock()
        if self.options.stall_timeout is not None:
            self._activity[exp.id] = (self.clock(), self._output_size(exp.id))
        self.progress.event(self, exp, "reattached")
        return exp

    def _load_curves(self) -> None:
        """Rebuild the policies' curves of finished experiments from their metrics files (one
        read per file; only the policies' metrics are kept). Pending ones run again from
        scratch, so their old curves do not matter."""
        for exp in self.exps.values():
            if exp.status.is_pending or exp.metric_lines == 0:
                continue
            records = MetricsReader(self.store.paths(exp.id).metrics).read_new(final=True)
            for metric, curves in self._curves.items():
                curve = Curve(
                    p for i, r in enumerate(records, 1) if (p := stopping.point_of(r, metric, i))
                )
                if len(curve):
                    curves[exp.id] = curve

    def _unrecorded_launch(self, exp: Experiment) -> tuple[Experiment, bool] | None:
        """A pending experiment whose next attempt was started by a driver that died before it
        recorded it: the record of that attempt (from the status file) and whether its shell
        still runs (the pid is checked by its environment, so a reused pid never matches)."""
        paths = self.store.paths(exp.id)
        attempt = exp.attempt + 1
        started, _, _ = read_command_status(paths.status)
        pid = started.get(attempt)
        if pid is None:
            return None
        assert self.config.command is not None
        launched = exp.with_(attempt=attempt)
        launched = launched.with_(
            status=Status.RUNNING,
            command=render_command(self.config.command, template_values(self.store, launched)),
            pid=pid,
            host=procutil.hostname(),
            boot_id=procutil.boot_id(),
            executor={"name": self.executor.name, "pgid": pid, "unrecorded": True},
            reason=None,
            exit_code=None,
        )
        return launched, _runs_experiment(pid, paths.dir, attempt)

    def _settle(self, exp: Experiment, alive: bool | None = None) -> Experiment:
        """A dead driver's running experiment: stop what is left of it, then record how it
        ended (its status file) or that it is lost."""
        if alive is None:
            alive = self._is_alive(exp) if self._is_alive else _default_is_alive(exp)
        pgid = exp.executor.get("pgid")
        if not alive and self._is_alive is None and isinstance(pgid, int):
            # The shell is gone but what it started in the background may not be.
            alive = _orphans_alive(self.store.paths(exp.id).dir, exp.attempt, pgid)
        if alive and isinstance(pgid, int):
            (self._kill_group or _default_kill_group)(pgid, self.options.stop_grace)
        # Read after the stop: the command may have exited on its own in the meantime.
        _, exited, when = read_command_status(self.store.paths(exp.id).status)
        code = exited.get(exp.attempt)
        if code is not None:
            return self._record_exit(exp, code, when)
        return self._mark_lost(exp)

    def _record_exit(self, exp: Experiment, code: int, when: float) -> Experiment:
        """Record the end of an attempt that exited with ``code`` while no driver watched: as
        the driver would have (metrics read to the end, retries), marked ``recovered``."""
        paths = self.store.paths(exp.id)
        records = MetricsReader(paths.metrics).read_new(final=True)
        if self.options.stdout_metrics:
            records += MetricsReader(paths.stdout, parser=parse_stdout_line).read_new(final=True)
        exp = apply_summary(exp, update(MetricSummary(), records))
        status = Status.SUCCEEDED if code == 0 else Status.FAILED
        reason = None if code == 0 else f"exit code {code}"
        attempt = _attempt_record(exp, status, reason, when, exit_code=code)
        attempt["recovered"] = "exited while no driver watched; read from its status file"
        exp = exp.with_(
            status=status,
            reason=reason,
            exit_code=code,
            ended_at=when,
            attempts=[*exp.attempts, attempt],
        )
        if status is Status.FAILED and exp.attempt <= self.options.max_restarts:
            exp = exp.with_(
                status=Status.CREATED,
                reason=f"retrying ({reason}; attempt {exp.attempt} of {self.options.max_restarts + 1})",
            )
        self.store.save(exp, durable=True)
        return exp

    def _mark_lost(self, exp: Experiment) -> Experiment:
        now = self.clock()
        attempt = _attempt_record(exp, Status.LOST, "the driver ended while it was running", now)
        exp = exp.with_(
            status=Status.LOST,
            reason="lost: the driver ended while it was running; it will run again",
            ended_at=now,
            attempts=[*exp.attempts, attempt],
        )
        self.store.save(exp, durable=True)
        return exp

    # ----- scheduling ---------------------------------------------------------------------
    def _history(self) -> list[Experiment]:
        """What the searcher sees: every experiment it suggested (not manual restarts)."""
        if not self.exps.restarts:  # the usual case: a plain copy, no per-record test
            return list(self.exps.values())
        return [e for e in self.exps.values() if e.restart_of is None]

    def _suggest(self, hist: list[Experiment]) -> Suggestion | None:
        rng = np.random.default_rng([self.seed, len(hist)])
        return self.searcher.suggest(hist, rng)

    def _create(self, s: Suggestion) -> Experiment:
        params: dict[str, Any] = {**self.config.params, **s.config, **s.extra_params}
        meta = dict(s.meta)
        extra: dict[str, Any] = {}
        if s.outputs_from is not None:
            # Hyperband `resume: true`: continue from the ancestor's checkpoints.
            extra["outputs_path"] = self.exps[s.outputs_from].outputs_path
        exp = self.store.new_experiment(
            config=dict(s.config),
            params=params,
            meta=meta,
            created_at=self.clock(),
            **extra,
        )
        self.exps[exp.id] = exp
        self.progress.event(self, exp, "created")
        return exp

    def _fill_slots(self) -> None:
        while (
            self._stop_reason is None
            and self._early_stop is None
            and self.executor.free_slots() > 0
        ):
            running = set(self.executor.running())
            pending = [
                k
                for k in self.exps.pending
                if k not in running and (self.only is None or k in self.only)
            ]
            if pending:
                self._launch(self.exps[min(pending)])
                continue
            if self._exhausted:
                return
            hist = self._history()
            if self.searcher.is_finished(hist):
                self._exhausted = True
                return
            suggestion = self._suggest(hist)
            if suggestion is None:
                return
            self._launch(self._create(suggestion))

    def _launch(self, exp: Experiment) -> None:
        assert self.config.command is not None
        paths = self.store.paths(exp.id)
        attempt = exp.attempt + 1
        if exp.attempt > 0:
            _archive_attempt(paths.dir, exp.attempt)
        exp = exp.with_(attempt=attempt)
        command = render_command(self.config.command, template_values(self.store, exp))
        env = experiment_env(self.store, exp, self.options.env)
        spec = LaunchSpec(
            exp_id=exp.id,
            command=command,
            cwd=self.config.base_dir,
            env=env,
            stdout_path=paths.stdout,
            stderr_path=paths.stderr,
            timeout=self.options.timeout,
            status_path=paths.status,
            attempt=attempt,
        )
        now = self.clock()
        try:
            handle = self.executor.start(spec)
        except ExecutorError as exc:
            failed = exp.with_(
                status=Status.FAILED,
                command=command,
                started_at=now,
                ended_at=now,
                reason=f"could not start: {exc}",
            )
            failed = failed.with_(
                attempts=[*exp.attempts, _attempt_record(failed, Status.FAILED, failed.reason, now)]
            )
            self.store.save(failed, durable=True)
            self.exps[exp.id] = failed
            self.progress.event(self, failed, "failed")
            self._check_failures()
            return
        exp = exp.with_(
            status=Status.RUNNING,
            command=command,
            started_at=handle.started_at,
            ended_at=None,
            exit_code=None,
            reason=None,
            pid=handle.pid,
            host=handle.host,
            boot_id=handle.boot_id,
            executor={
                "name": self.executor.name,
                "pgid": handle.pgid,
                "start_ticks": handle.start_ticks,
                **handle.extra,
            },
            metrics={},
            metrics_min={},
            metrics_max={},
            metric_lines=0,
            last_step=None,
        )
        # Not durable: if the machine dies, so does the process, and the record still says
        # "created" (rerun); if only the driver dies, the page cache has this record.
        self.store.save(exp, durable=False)
        self.exps[exp.id] = exp
        self._readers[exp.id] = MetricsReader(paths.metrics)
        if self.options.stdout_metrics:
            # `polytune: {stdout_metrics: true}`: also scrape `name=value` lines from stdout.
            self._stdout_readers[exp.id] = MetricsReader(paths.stdout, parser=parse_stdout_line)
        self._summaries[exp.id] = MetricSummary()
        self._last_save[exp.id] = self.clock()
        for curves in self._curves.values():
            curves.pop(exp.id, None)  # a new attempt starts a new curve
        if self.options.stall_timeout is not None:
            self._activity[exp.id] = (self.clock(), self._output_size(exp.id))
        self.progress.event(self, exp, "started")

    # ----- endings ------------------------------------------------------------------------
    def _on_finished(self, fin: Finished) -> None:
        exp = self.exps[fin.exp_id]
        self._absorb_metrics(exp.id, final=True)
        exp = self.exps[fin.exp_id]
        if fin.reason in ("stopped", "timeout") or fin.exit_code is None:
            # A stop's TERM can land in the last instants of a command that already ended on
            # its own (its shell was writing the exit status): it completed, so record how it
            # exited rather than "stopped" — an interrupted experiment is run again.
            _, exited, _ = read_command_status(self.store.paths(exp.id).status)
            if (code := exited.get(exp.attempt)) is not None:
                self._stopping.pop(exp.id, None)
                fin = replace(fin, exit_code=code, signal=None, reason="exited")
        if fin.reason == "stopped":
            status, reason = Status.STOPPED, self._stopping.pop(exp.id, "stopped")
        elif fin.reason == "lost":
            status, reason = Status.LOST, "lost: the machine (Dask worker) it ran on went away"
        elif fin.reason == "timeout":
            status, reason = Status.FAILED, f"timeout: ran longer than {self.options.timeout:g} s"
        elif fin.exit_code == 0:
            status, reason = Status.SUCCEEDED, None
        elif fin.exit_code is not None:
            status, reason = Status.FAILED, f"exit code {fin.exit_code}"
        else:
            status, reason = Status.FAILED, f"killed by signal {fin.signal}"
        record = _attempt_record(exp, status, reason, fin.ended_at, exit_code=fin.exit_code)
        exp = exp.with_(
            status=status,
            reason=reason,
            exit_code=fin.exit_code,
            ended_at=fin.ended_at,
            attempts=[*exp.attempts, record],
        )
        retry = status is Status.FAILED and exp.attempt <= self.options.max_restarts
        if status is Status.LOST:
            # Rerun as a new attempt (LOST is pending), at most max_restarts + 1 times: one
            # worker loss is always survived; a command that keeps killing its workers fails.
            lost = sum(1 for a in exp.attempts if a.get("status") == Status.LOST.value)
            if lost > self.options.max_restarts + 1:
                status, reason = Status.FAILED, f"{reason} ({lost} times; giving up)"
                exp = exp.with_(status=status, reason=reason)
        if retry:
            exp = exp.with_(
                status=Status.CREATED,
                reason=f"retrying ({reason}; attempt {exp.attempt} of {self.options.max_restarts + 1})",
            )
        self.store.save(exp, durable=True)
        self.exps[exp.id] = exp
        self._readers.pop(exp.id, None)
        self._stdout_readers.pop(exp.id, None)
        self._summaries.pop(exp.id, None)
        self._last_save.pop(exp.id, None)
        self._activity.pop(exp.id, None)
        self.progress.event(self, exp, "retry" if retry else status.value)
        if status is Status.FAILED and not retry:
            self._check_failures()

    def _shutdown(self) -> None:
        """Stop every running experiment (TERM, then KILL after the grace) and record it."""
        for exp_id in self.executor.running():
            self._stopping.setdefault(
                exp_id, f"{INTERRUPTED}: {self._stop_reason or 'driver exiting'}"
            )
        grace = 0.0 if self._force_stop else self.options.stop_grace
        for fin in self.executor.stop_all(grace):
            self._on_finished(fin)

    def stop_experiment(self, exp_id: int, reason: str) -> None:
        """Stop one running experiment (early stopping); its end arrives through ``wait``."""
        self._stopping[exp_id] = reason
        self.executor.stop(exp_id, self.options.stop_grace)

    # ----- metrics --------------------------------------------------------------------------
    def _absorb_metrics(self, exp_id: int, *, final: bool = False) -> bool:
        reader = self._readers.get(exp_id)
        if reader is None:
            return False
        records = reader.read_new(final=final)
        scraper = self._stdout_readers.get(exp_id)
        if scraper is not None:
            records += scraper.read_new(final=final)
        if not records:
            return False
        summary = update(self._summaries[exp_id], records)
        self._summaries[exp_id] = summary
        exp = self.exps[exp_id].with_(
            metrics=dict(summary.last),
            metrics_min=dict(summary.min),
            metrics_max=dict(summary.max),
            metric_lines=summary.lines,
            last_step=summary.last_step,
        )
        self.exps[exp_id] = exp
        self.on_metrics(exp, records)
        return True

    def on_metrics(self, exp: Experiment, records: Sequence[Mapping[str, Any]]) -> None:
        """Rules evaluated on live metrics: the group thresholds on every new value, then the
        per-experiment policies at their evaluation steps (``records`` are the new lines, in
        order; ``exp`` already counts them)."""
        first = exp.metric_lines - len(records) + 1
        if self._thresholds and self._early_stop is None:
            crossed = stopping.first_crossing(self._thresholds, exp.id, records, first)
            if crossed is not None:
                self._stop_group(crossed)
        if not self._curves:
            return
        # Only a running experiment can be stopped; one that just ended (its last lines are read
        # as it is recorded) or is being stopped still adds its points for the others.
        judge = exp.id not in self._stopping and exp.id in self.executor.running()
        for metric, curves in self._curves.items():
            curve = curves.get(exp.id)
            for i, record in enumerate(records):
                point = stopping.point_of(record, metric, first + i)
                if point is None:
                    continue
                if curve is None:
                    curve = curves[exp.id] = Curve()
                previous = curve.last_step
                curve.add(*point)
                if judge and self._judge(exp.id, metric, curves, previous, point[0]):
                    judge = False

    def _judge(
        self, exp_id: int, metric: str, curves: dict[int, Curve], previous: int | None, step: int
    ) -> bool:
        """Apply the policies on ``metric`` to a new point; stop the experiment if one says so."""
        for rule in self._policies:
            policy = rule.policy
            if (
                rule.metric != metric
                or policy is None
                or not stopping.should_evaluate(policy, previous, step)
            ):
                continue
            statuses = (
                {}
                if policy.include_succeeded
                else {k: self.exps[k].status for k in curves if k in self.exps}
            )
            others = stopping.population(policy, exp_id, curves, statuses)
            decision = stopping.decide(
                policy, metric, rule.optimization == "maximize", curves[exp_id], others, step
            )
            if decision is not None:
                self.stop_experiment(exp_id, decision.reason)
                return True
        return False

    def _stop_group(self, stop: GroupStop) -> None:
        """A group rule holds: nothing new starts (``_fill_slots``), running experiments are
        stopped unless the group lets them finish; the loop ends when none runs."""
        if self._early_stop is not None or self.only is not None:
            return
        self._early_stop = stop
        self.store.update_group(early_stop=stop.to_json())
        if self.options.on_early_stop != "finish":
            for exp_id in self.executor.running():
                if exp_id not in self._stopping:
                    self.stop_experiment(exp_id, stop.experiment_reason())

    def _check_failures(self) -> None:
        if self._failure_rule is None or self._early_stop is not None:
            return
        failed = sum(1 for e in self.exps.values() if e.status is Status.FAILED)
        total = max(self.planned_total or 0, len(self.exps))
        stop = stopping.failure_stop(self._failure_rule, failed, total)
        if stop is not None:
            self._stop_group(stop)

    def _output_size(self, exp_id: int) -> int:
        paths = self.store.paths(exp_id)
        size = 0
        for path in (paths.stdout, paths.stderr):
            with contextlib.suppress(OSError):
                size += path.stat().st_size
        return size

    def _watch_stall(self, exp_id: int, active: bool, now: float) -> None:
        """The stall watchdog: a metric line or new output is activity; silence for
        ``stall_timeout`` seconds stops the experiment (reason ``stalled``)."""
        limit = self.options.stall_timeout
        if limit is None:
            return
        size = self._output_size(exp_id)
        last, seen = self._activity.get(exp_id, (now, size))
        if active or size != seen:
            self._activity[exp_id] = (now, size)
        elif exp_id not in self._stopping and stopping.stalled(last, now, limit):
            self.stop_experiment(exp_id, stopping.stall_reason(limit))

    def _read_running_metrics(self) -> None:
        now = self.clock()
        for exp_id in self.executor.running():
            changed = self._absorb_metrics(exp_id)
            if changed and now - self._last_save.get(exp_id, 0.0) >= self.options.save_interval:
                self.store.save(self.exps[exp_id], durable=False)
                self._last_save[exp_id] = now
            self._watch_stall(exp_id, changed, now)


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------


def _attempt_record(
    exp: Experiment,
    status: Status,
    reason: str | None,
    ended_at: float,
    exit_code: int | None = None,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "attempt": exp.attempt,
        "status": status.value,
        "started_at": exp.started_at,
        "ended_at": ended_at,
        "exit_code": exit_code,
        "reason": reason,
        "pid": exp.pid,
        "host": exp.host,
    }
    if exp.executor.get("unrecorded"):
        record["unrecorded_launch"] = True  # found by _recover: started, never recorded
    return record


def _archive_attempt(exp_dir: Path, attempt: int) -> None:
    """Move the logs and metrics of a previous attempt aside (outputs stay: a checkpointing
    script can continue from them)."""
    target = exp_dir / f"attempt-{attempt}"
    names = ("stdout.log", "stderr.log", "metrics.jsonl", STATUS_FILE)
    present = [n for n in names if (exp_dir / n).exists()]
    if not present:
        return
    try:
        target.mkdir(exist_ok=True)
        for n in present:
            shutil.move(str(exp_dir / n), str(target / n))
    except OSError as e:
        raise StoreError(
            f"cannot set the files of attempt {attempt} aside in {target}: {e.strerror or e}"
        ) from e


def _damage_message(store: GroupStore, damage: Sequence[Damage]) -> str:
    shown = "; ".join(
        (f"experiment {d.exp_id}: " if d.exp_id is not None else "") + str(d) for d in damage[:3]
    )
    more = f" (and {len(damage) - 3} more: polytune status {store.name})" if len(damage) > 3 else ""
    fix = (
        f"restore them from a backup, or run `polytune resume {store.name} --set-aside-damaged` "
        f"to move them to {store.path / SET_ASIDE_DIR} (their files are kept) and let the search "
        "run their configurations again"
        if all(d.exp_id is not None for d in damage)
        else "restore it from a backup"
    )
    return (
        f"group {store.name} cannot be resumed: {shown}{more}. polytune will not guess whether "
        f"a damaged experiment finished; {fix}"
    )


def _runs_experiment(pid: int, exp_dir: Path, attempt: int) -> bool:
    """Whether process ``pid`` runs attempt ``attempt`` of the experiment in ``exp_dir`` (its
    environment says so; a reused pid, or a process of another user, does not match)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = set(f.read().split(b"\0"))
    except OSError:
        return False
    return (
        f"POLYTUNE_EXPERIMENT_DIR={exp_dir}".encode() in env
        and f"POLYTUNE_ATTEMPT={attempt}".encode() in env
        and procutil.process_state(pid) not in (None, "Z", "X")
    )


def _orphans_alive(exp_dir: Path, attempt: int, pgid: int) -> bool:
    """Whether processes of the experiment's group outlive its shell: a live member of group
    ``pgid`` whose environment names this attempt (once a group is empty its id can be reused,
    so the id alone proves nothing)."""
    if pgid <= 1 or pgid == os.getpgrp():
        return False
    try:
        os.killpg(pgid, 0)
        names = os.listdir("/proc")
    except OSError:
        return False
    for name in names:
        if not name.isdigit():
            continue
        fields = procutil.parse_stat(_read_stat(name)) or []
        member = len(fields) > 2 and fields[2] == str(pgid)  # field 5, pgrp
        if member and _runs_experiment(int(name), exp_dir, attempt):
            return True
    return False


def _read_stat(pid: str) -> bytes:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read()
    except OSError:
        return b""


def _default_is_alive(exp: Experiment) -> bool:
    from polytune.procutil import is_alive

    if exp.pid is None:
        return False
    return bool(is_alive(exp.pid, exp.host, exp.boot_id, exp.executor.get("start_ticks")))


def _default_kill_group(pgid: int, grace: float) -> None:
    from polytune.executors.local import kill_process_group

    kill_process_group(pgid, grace)
