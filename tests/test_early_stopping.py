"""Early stopping in the driver, fast: the real driver, store and metrics files, with a fake
executor that writes one metric line per experiment per ``wait`` and a fake clock (one second per
``wait``), so every decision is deterministic and nothing sleeps."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from polytune.config import load_text
from polytune.driver import Driver, DriverOptions, new_group
from polytune.executors.base import Finished, Handle, LaunchSpec
from polytune.experiment import Status
from polytune.searchers import make_searcher
from polytune.stopping import stopped_early
from polytune.store import GroupStore, open_group


@dataclass
class Script:
    """What a fake experiment does: one value (a metric line; None = a silent tick) per tick,
    then ends with ``exit_code``, or never ends (``hang``; ``chatter`` also writes output)."""

    values: list[float | None]
    exit_code: int = 0
    hang: bool = False
    chatter: bool = False
    metric: str = "loss"


@dataclass
class _Run:
    spec: LaunchSpec
    script: Script
    tick: int = 0
    stop: bool = False
    lines: int = 0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeExecutor:
    capacity_: int
    scripts: Callable[[dict[str, Any]], Script]
    clock: Clock
    name: str = "fake"
    runs: dict[int, _Run] = field(default_factory=dict)
    starts: list[tuple[float, int]] = field(default_factory=list)
    ends: list[tuple[float, int, str]] = field(default_factory=list)

    def capacity(self) -> int:
        return self.capacity_

    def free_slots(self) -> int:
        return self.capacity_ - len(self.runs)

    def running(self) -> list[int]:
        return sorted(self.runs)

    def start(self, spec: LaunchSpec) -> Handle:
        params = json.loads(spec.env["POLYTUNE_PARAMS"])
        self.runs[spec.exp_id] = _Run(spec, self.scripts(params))
        self.starts.append((self.clock.now, spec.exp_id))
        return Handle(
            spec.exp_id,
            10_000 + spec.exp_id,
            10_000 + spec.exp_id,
            "fake",
            "boot",
            None,
            self.clock.now,
        )

    def _end(self, exp_id: int, reason: str, code: int | None) -> Finished:
        self.runs.pop(exp_id)
        self.ends.append((self.clock.now, exp_id, reason))
        return Finished(exp_id, code, None if code is not None else 15, reason, self.clock.now)

    def wait(self, timeout: float) -> list[Finished]:
        self.clock.now += 1.0
        out = []
        for exp_id in sorted(self.runs):
            run = self.runs[exp_id]
            if run.stop:
                out.append(self._end(exp_id, "stopped", None))
                continue
            if run.tick < len(run.script.values):
                value = run.script.values[run.tick]
                run.tick += 1
                if value is not None:
                    run.lines += 1
                    line = json.dumps({"step": run.lines, run.script.metric: value})
                    with open(run.spec.env["POLYTUNE_METRICS_FILE"], "a") as fh:
                        fh.write(line + "\n")
                continue
            if run.script.chatter:
                with open(run.spec.stdout_path, "a") as fh:
                    fh.write("still working\n")
            if not (run.script.hang or run.script.chatter):
                out.append(self._end(exp_id, "exited", run.script.exit_code))
        return out

    def stop(self, exp_id: int, grace: float) -> None:
        if exp_id in self.runs:
            self.runs[exp_id].stop = True

    def stop_all(self, grace: float) -> list[Finished]:
        return [self._end(k, "stopped", None) for k in sorted(self.runs)]

    def close(self) -> None:
        pass


def group(
    tmp: Path,
    curves: dict[str, Script],
    *,
    rules: str = "",
    concurrency: int = 1,
    polytune: str = "",
    algorithm: str = "",
) -> tuple[GroupStore, Any]:
    names = json.dumps(list(curves))
    text = textwrap.dedent(
        f"""
        version: 1
        kind: group
        hptuning:
          concurrency: {concurrency}
          seed: 3
          {algorithm}
          matrix:
            c:
              values: {names}
          early_stopping: {rules or "[]"}
        polytune:
          metric: {{name: loss, optimization: minimize}}
          {polytune}
        run:
          cmd: unused {{{{ c }}}}
        """
    )
    config = load_text(text, base_dir=tmp)
    store = new_group(config, workspace=tmp / "ws", name=None, stem="g")
    return store, config


def drive(
    store: GroupStore,
    curves: dict[str, Script],
    *,
    concurrency: int = 1,
    clock: Clock | None = None,
    **options: Any,
) -> tuple[Driver, FakeExecutor, Any]:
    from polytune.driver import load_group_config

    config, info = load_group_config(store)
    clock = clock or Clock()
    executor = FakeExecutor(concurrency, lambda p: curves[p["c"]], clock)
    driver = Driver(
        store,
        config,
        executor,
        make_searcher(config),
        seed=int(info["seed"]),
        options=DriverOptions(
            concurrency=concurrency, poll_interval=0.0, save_interval=0.0, **options
        ),
        clock=clock,
        is_alive=lambda e: False,
    )
    outcome = driver.run()
    return driver, executor, outcome


def by_config(store: GroupStore) -> dict[str, Any]:
    return {e.config["c"]: e for e in store.experiments()}


MEDIAN = "[{metric: loss, optimization: minimize, policy: {kind: median, min_samples: 2, min_interval: 2}}]"


# ---------------------------------------------------------------------------------------------
# Per-experiment policies
# ---------------------------------------------------------------------------------------------


def test_median_stops_only_the_bad_curve_at_the_first_evaluated_step(tmp_path: Path) -> None:
    curves = {
        "a": Script([1.0, 0.8, 0.6, 0.5, 0.4]),
        "b": Script([1.0, 0.7, 0.5, 0.4, 0.3]),
        "bad": Script([2.0, 1.9, 1.8, 1.7, 1.6]),
        "late": Script([3.0, 0.7, 0.2, 0.1, 0.05]),  # bad at step 1, but min_interval is 2
    }
    store, _ = group(tmp_path, curves, rules=MEDIAN)
    _driver, _ex, outcome = drive(store, curves)
    assert outcome.status == "done"
    exps = by_config(store)
    assert exps["bad"].status is Status.STOPPED
    # at step 2: best 1.9 vs the median of the running averages 0.9 and 0.85
    assert exps["bad"].reason.startswith(
        "early_stopping:median (step 2: best loss 1.9 worse than the median 0.875"
    )
    assert exps["bad"].metric_lines == 2 and stopped_early(exps["bad"])
    assert [exps[k].status for k in ("a", "b", "late")] == [Status.SUCCEEDED] * 3
    assert exps["late"].metric_lines == 5
    # grid: the stopped point is finished; a resume runs nothing again
    _, ex2, again = drive(store, curves)
    assert ex2.starts == [] and again.status == "done"


def test_policy_waits_for_min_samples_and_evaluation_interval(tmp_path: Path) -> None:
    curves = {
        "a": Script([1.0, 1.0, 1.0, 1.0]),
        "bad": Script([2.0, 2.0, 2.0, 2.0]),  # one other only: min_samples 2 not met
        "bad2": Script([2.0, 2.0, 2.0, 2.0]),  # two others from now on; evaluated at step 3 only
    }
    rules = "[{metric: loss, optimization: minimize, policy: {kind: median, min_samples: 2, evaluation_interval: 3}}]"
    store, _ = group(tmp_path, curves, rules=rules)
    drive(store, curves)
    exps = by_config(store)
    assert exps["bad"].status is Status.SUCCEEDED
    assert exps["bad2"].status is Status.STOPPED and exps["bad2"].reason.startswith(
        "early_stopping:median (step 3:"
    )


def test_truncation_and_diff_with_concurrency(tmp_path: Path) -> None:
    """Four experiments in lockstep: each is judged against the others' curves at the same step."""
    curves = {
        "a": Script([0.5, 0.4, 0.3]),
        "b": Script([0.6, 0.5, 0.4]),
        "c": Script([0.9, 0.9, 0.9]),
        "d": Script([5.0, 5.0, 5.0]),
    }
    rules = "[{metric: loss, optimization: minimize, policy: {kind: diff, percent: 100, min_samples: 3}}]"
    store, _ = group(tmp_path, curves, rules=rules, concurrency=4)
    drive(store, curves, concurrency=4)
    exps = by_config(store)
    # step 1: the best of the others is 0.5; only d (5.0 > 2 x 0.5) is more than 100 % away
    assert exps["d"].status is Status.STOPPED and exps["d"].reason.startswith(
        "early_stopping:diff (step 1:"
    )
    assert all(exps[k].status is Status.SUCCEEDED for k in "abc")

    tmp2 = tmp_path / "t"
    tmp2.mkdir()
    rules = "[{metric: loss, optimization: minimize, policy: {kind: truncation, percent: 25, min_samples: 3}}]"
    store, _ = group(tmp2, curves, rules=rules, concurrency=4)
    drive(store, curves, concurrency=4)
    exps = by_config(store)
    # 4 runs, 25 %: the single worst is cut. Within a tick the lines are read in id order, so
    # at step 1 only d (read last) sees 3 others at its step; after that d is gone and nobody
    # has 3 others any more: a, b and c run to the end.
    assert exps["d"].status is Status.STOPPED and exps["d"].reason.startswith(
        "early_stopping:truncation (step 1:"
    )
    assert all(exps[k].status is Status.SUCCEEDED for k in "abc")


def test_a_stopped_experiments_slot_is_refilled_at_once(tmp_path: Path) -> None:
    curves = {
        "a": Script([1.0] * 4),
        "b": Script([1.0] * 4),
        "bad": Script([9.0] * 20),
        "next": Script([1.0] * 2),
    }
    store, _ = group(tmp_path, curves, rules=MEDIAN)
    _driver, ex, _ = drive(store, curves)
    ids = {k: e.id for k, e in by_config(store).items()}
    end_bad = next(t for t, i, why in ex.ends if i == ids["bad"])
    start_next = next(t for t, i in ex.starts if i == ids["next"])
    assert start_next == end_bad  # same tick: no wait between the end and the next start


# ---------------------------------------------------------------------------------------------
# Group rules
# ---------------------------------------------------------------------------------------------

THRESHOLD = "[{metric: loss, value: 0.45, optimization: minimize}]"


def test_threshold_stops_the_group_on_the_line_that_crosses(tmp_path: Path) -> None:
    curves = {
        "a": Script([1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2]),
        "b": Script([1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]),
        "c": Script([1.0] * 5),
    }
    store, _ = group(tmp_path, curves, rules=THRESHOLD, concurrency=2)
    _driver, _ex, outcome = drive(store, curves, concurrency=2)
    assert outcome.status == "early_stopped"
    exps = by_config(store)
    assert "c" not in exps  # nothing new started
    a, b = exps["a"], exps["b"]
    assert a.metric_lines == 5 and b.metric_lines == 5  # stopped on the tick of the crossing
    assert a.status is Status.STOPPED and b.status is Status.STOPPED
    detail = f"experiment {a.id} reported loss=0.4 at step 5, reaching loss <= 0.45"
    assert outcome.reason == f"early_stopping:threshold: {detail}"
    assert b.reason == f"early_stopping:threshold (group stopped: {detail})"
    info = store.read_group()
    assert info["status"] == "early_stopped" and info["reason"] == outcome.reason
    assert info["early_stop"]["experiment"] == a.id and info["early_stop"]["value"] == 0.4

    # resume: finished, nothing runs
    _driver2, ex2, outcome2 = drive(store, curves, concurrency=2)
    assert outcome2.status == "early_stopped" and outcome2.reason == outcome.reason
    assert ex2.starts == []


def test_threshold_lets_running_experiments_finish_when_asked(tmp_path: Path) -> None:
    curves = {
        "a": Script([1.0, 0.4, 0.3]),
        "b": Script([1.0, 0.9, 0.8, 0.7, 0.6]),
        "c": Script([1.0] * 5),
    }
    store, _ = group(
        tmp_path, curves, rules=THRESHOLD, concurrency=2, polytune="on_early_stop: finish"
    )
    _, _ex, outcome = drive(store, curves, concurrency=2, on_early_stop="finish")
    assert outcome.status == "early_stopped"
    exps = by_config(store)
    assert "c" not in exps
    assert exps["a"].status is Status.SUCCEEDED and exps["b"].status is Status.SUCCEEDED
    assert exps["b"].metric_lines == 5


def test_failure_early_stopping(tmp_path: Path) -> None:
    curves = {
        k: Script([1.0], exit_code=1 if k.startswith("f") else 0)
        for k in ("ok1", "f1", "ok2", "f2", "ok3", "f3")
    }
    rules = "[{kind: failure_early_stopping, percent: 30}]"
    # v0 hptuning does not know failure_early_stopping: use the v2 layout
    text = textwrap.dedent(
        f"""
        version: 1.1
        kind: operation
        matrix:
          kind: grid
          concurrency: 1
          params:
            c: {{kind: choice, value: {json.dumps(list(curves))}}}
          earlyStopping: {rules}
        component:
          inputs: [{{name: c, type: str}}]
          run:
            kind: job
            container: {{image: x, command: [unused, "{{{{ c }}}}"]}}
        """
    )
    config = load_text(text, base_dir=tmp_path)
    store = new_group(config, workspace=tmp_path / "ws", name=None, stem="f")
    _, _ex, outcome = drive(store, curves)
    assert outcome.status == "early_stopped"
    assert outcome.reason == "early_stopping:failures: 2 of 6 experiments failed (>= 30 %)"
    assert [e.config["c"] for e in store.experiments()] == ["ok1", "f1", "ok2", "f2"]


def test_a_threshold_met_before_an_interruption_holds_on_resume(tmp_path: Path) -> None:
    """The driver was interrupted while stopping the group: resume re-derives the crossing from
    the records and finishes the group without rerunning anything."""
    curves = {"a": Script([0.4]), "b": Script([1.0]), "c": Script([1.0])}
    store, _ = group(tmp_path, curves)  # no rule yet: run one experiment
    exp = store.new_experiment(config={"c": "a"}, params={"c": "a"}, meta={}, created_at=0.0)
    store.save(
        exp.with_(
            status=Status.STOPPED,
            reason="interrupted: Ctrl-C",
            metrics={"loss": 0.4},
            metrics_min={"loss": 0.4},
            metrics_max={"loss": 0.4},
            metric_lines=1,
        ),
        durable=True,
    )
    store.update_group(status="stopped")
    # the rule is in the saved polyaxonfile
    text = store.read_polyaxonfile().replace("early_stopping: []", f"early_stopping: {THRESHOLD}")
    store.polyaxonfile.write_text(text)
    _, ex, outcome = drive(store, curves)
    assert outcome.status == "early_stopped" and ex.starts == []
    [only] = store.experiments()
    assert only.status is Status.STOPPED and only.reason.startswith("early_stopping:threshold")


# ---------------------------------------------------------------------------------------------
# Stall watchdog (fake clock: one second per wait)
# ---------------------------------------------------------------------------------------------


def test_stall_watchdog(tmp_path: Path) -> None:
    curves = {
        "silent": Script([1.0, 1.0], hang=True),
        "chatty": Script([1.0, 1.0, 1.0], chatter=True),
        "slow": Script([1.0, None, None, 1.0, None, None, 1.0]),
    }
    store, _ = group(tmp_path, curves, concurrency=3, polytune="stall_timeout: 3")
    # chatty never ends on its own: stop the group once the others are done
    clock = Clock()
    driver_box: list[Driver] = []

    class Stopper:
        def started(self, d: Driver) -> None:
            driver_box.append(d)

        def event(self, d: Driver, e: Any, what: str) -> None:
            pass

        def tick(self, d: Driver) -> None:
            if clock.now >= 1030:
                d.request_stop("test over")

        def finished(self, d: Driver, o: Any) -> None:
            pass

    from polytune.driver import load_group_config
    from polytune.errors import Interrupted

    config, _info = load_group_config(store)
    ex = FakeExecutor(3, lambda p: curves[p["c"]], clock)
    driver = Driver(
        store,
        config,
        ex,
        make_searcher(config),
        seed=1,
        options=DriverOptions(concurrency=3, poll_interval=0.0, stall_timeout=3.0),
        progress=Stopper(),
        clock=clock,
        is_alive=lambda e: False,
    )
    with pytest.raises(Interrupted):
        driver.run()
    exps = by_config(store)
    silent = exps["silent"]
    assert (
        silent.status is Status.STOPPED
        and silent.reason == "stalled (no metric line or output for 3 s)"
    )
    # its last line came at t=1002; stopped when 3 s had passed, ended on the next wait
    assert silent.ended_at == 1006.0
    assert exps["slow"].status is Status.SUCCEEDED  # two silent seconds at a time: not stalled
    assert exps["chatty"].reason.startswith("interrupted")  # output counts as activity


# ---------------------------------------------------------------------------------------------
# How stopped experiments count (item 5), and resume
# ---------------------------------------------------------------------------------------------


def test_random_search_counts_stopped_experiments_and_resume_keeps_them(tmp_path: Path) -> None:
    names = [f"n{i}" for i in range(10)]
    curves = {n: Script([1.0 + (5.0 if i % 3 == 2 else 0.0)] * 4) for i, n in enumerate(names)}
    store, _config = group(
        tmp_path, curves, rules=MEDIAN, algorithm="random_search: {n_experiments: 6}"
    )
    _, _ex, _outcome = drive(store, curves)
    exps = store.experiments()
    assert len(exps) == 6  # stopped experiments use up their configuration: no extra draws
    assert len({e.config["c"] for e in exps}) == 6
    stopped = [e for e in exps if e.status is Status.STOPPED]
    assert stopped and all(stopped_early(e) for e in stopped)
    assert all(e.config["c"] in {n for i, n in enumerate(names) if i % 3 == 2} for e in stopped)
    # the same seed without the policy draws the same configurations in the same order
    tmp2 = tmp_path / "nopolicy"
    tmp2.mkdir()
    store2, _ = group(tmp2, curves, algorithm="random_search: {n_experiments: 6}")
    drive(store2, curves)
    assert [e.config for e in store2.experiments()] == [e.config for e in exps]
    # resume: nothing to run again
    _, ex3, outcome3 = drive(store, curves)
    assert ex3.starts == [] and outcome3.status == "done"
    assert [e.status for e in store.experiments()] == [e.status for e in exps]


def test_curves_are_rebuilt_from_metrics_files_on_resume(tmp_path: Path) -> None:
    curves = {
        "a": Script([1.0, 1.0, 1.0]),
        "b": Script([1.0, 1.0, 1.0]),
        "bad": Script([5.0, 5.0, 5.0]),
    }
    store, _ = group(tmp_path, curves, rules=MEDIAN)

    class StopAfterTwo:
        def started(self, d: Driver) -> None:
            pass

        def event(self, d: Driver, e: Any, what: str) -> None:
            if (
                what == "succeeded"
                and sum(x.status is Status.SUCCEEDED for x in d.exps.values()) == 2
            ):
                d.request_stop("test")

        def tick(self, d: Driver) -> None:
            pass

        def finished(self, d: Driver, o: Any) -> None:
            pass

    from polytune.driver import load_group_config
    from polytune.errors import Interrupted

    config, _info = load_group_config(store)
    ex = FakeExecutor(1, lambda p: curves[p["c"]], Clock())
    d = Driver(
        store,
        config,
        ex,
        make_searcher(config),
        seed=1,
        options=DriverOptions(poll_interval=0.0),
        progress=StopAfterTwo(),
        is_alive=lambda e: False,
    )
    with pytest.raises(Interrupted):
        d.run()
    assert len(store.experiments()) == 2
    # a new driver knows the curves of a and b only from their metrics files
    _, _ex2, _outcome = drive(store, curves)
    exps = by_config(store)
    assert exps["bad"].status is Status.STOPPED and exps["bad"].reason.startswith(
        "early_stopping:median (step 2:"
    )


def test_restart_of_one_experiment_applies_no_group_rule(tmp_path: Path) -> None:
    curves = {"a": Script([0.1]), "b": Script([1.0])}
    store, _ = group(tmp_path, curves, rules=THRESHOLD)
    drive(store, curves)
    assert store.read_group()["status"] == "early_stopped"
    from polytune.driver import load_group_config

    config, _info = load_group_config(store)
    source = store.experiments()[0]
    new = store.new_experiment(
        config=dict(source.config),
        params=dict(source.params),
        meta={},
        created_at=0.0,
        restart_of=source.id,
    )
    ex = FakeExecutor(1, lambda p: curves[p["c"]], Clock())
    d = Driver(
        store,
        config,
        ex,
        make_searcher(config),
        seed=1,
        options=DriverOptions(poll_interval=0.0),
        only={new.id},
        is_alive=lambda e: False,
    )
    d.run()
    assert store.get(new.id).status is Status.SUCCEEDED
    assert open_group(store.path).read_group()["status"] == "early_stopped"


# ---------------------------------------------------------------------------------------------
# Multi-fidelity and model-based searchers take stopped experiments as observations (item 5)
# ---------------------------------------------------------------------------------------------

FAMILY = {f"n{i:02d}": Script([1.0 + (5.0 if i % 3 == 2 else i / 100)] * 4) for i in range(20)}


def test_hyperband_with_a_policy_completes_its_schedule(tmp_path: Path) -> None:
    """A stopped experiment has ended: its rung does not wait for it, and the schedule runs to
    the end (nothing deadlocks, nothing is rerun)."""
    algorithm = (
        "hyperband: {max_iter: 9, eta: 3, resource: {name: epochs, type: int}, "
        "metric: {name: loss, optimization: minimize}}"
    )
    store, _config = group(tmp_path, FAMILY, rules=MEDIAN, concurrency=2, algorithm=algorithm)
    driver, _ex, outcome = drive(store, FAMILY, concurrency=2)
    assert outcome.status == "done"
    exps = store.experiments()
    assert len(exps) == driver.planned_total
    stopped = [e for e in exps if e.status is Status.STOPPED]
    assert stopped and all(stopped_early(e) for e in stopped)
    assert all(e.status in (Status.SUCCEEDED, Status.STOPPED) for e in exps)
    _, ex2, again = drive(store, FAMILY, concurrency=2)
    assert ex2.starts == [] and again.status == "done"


def test_bo_takes_stopped_experiments_as_observations(tmp_path: Path) -> None:
    pytest.importorskip("scipy")
    algorithm = (
        "bo: {n_initial_trials: 4, n_iterations: 3, metric: {name: loss, optimization: minimize}, "
        "utility_function: {acquisition_function: ei, eps: 0.0, "
        "gaussian_process: {kernel: matern, nu: 2.5, n_restarts_optimizer: 0}}}"
    )
    store, _ = group(tmp_path, FAMILY, rules=MEDIAN, concurrency=2, algorithm=algorithm)
    _, _ex, outcome = drive(store, FAMILY, concurrency=2)
    assert outcome.status == "done"
    exps = store.experiments()
    assert len(exps) == 7
    assert any(stopped_early(e) for e in exps)
    assert len({e.config["c"] for e in exps}) == 7
