"""A driver that dies at any moment loses nothing and runs nothing twice.

* Crash loops with real drivers (``crash_harness``): SIGKILL at random moments, resume, repeat;
  then exactly the requested experiments succeeded, every configuration ran to completion once
  (the commands' own ledger), every JSON file parses, no process of the group is left.
* The pieces of recovery, each forced deterministically with an in-process driver: a command
  that exited while no driver watched (its status file), a launch the driver never recorded,
  an orphan still running at resume.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import textwrap
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from crash_harness import crash_loop, group_processes

from polytune.config import load
from polytune.driver import Driver, DriverOptions, NullProgress, new_group
from polytune.errors import Interrupted
from polytune.executors.local import LocalExecutor
from polytune.experiment import Status
from polytune.model import CommandTemplate
from polytune.searchers import make_searcher
from polytune.store import GroupStore


def grid_group(tmp: Path, xs: str = "[1, 2, 3]") -> tuple[Any, GroupStore]:
    path = tmp / "g.yaml"
    ledger = tmp / "ledger.txt"
    path.write_text(
        textwrap.dedent(
            f"""
            version: 1
            kind: group
            hptuning:
              matrix:
                x: {{values: {xs}}}
            polytune:
              metric: {{name: loss, optimization: minimize}}
            run:
              cmd: >-
                printf '{{"loss": %s}}\\n' {{{{ x }}}} >> "$POLYTUNE_METRICS_FILE" &&
                echo "{{{{ x }}}} $POLYTUNE_ATTEMPT" >> {ledger}
            """
        )
    )
    config = load([path])
    return config, new_group(config, workspace=tmp / "ws", name="g", stem="g")


def drive(config: Any, store: GroupStore, max_restarts: int = 0) -> None:
    with store.lock(), LocalExecutor(1) as executor:
        Driver(
            store,
            config,
            executor,
            make_searcher(config),
            seed=1,
            options=DriverOptions(concurrency=1, stop_grace=1.0, max_restarts=max_restarts),
            progress=NullProgress(),
        ).run()


def ledger(tmp: Path) -> list[str]:
    path = tmp / "ledger.txt"
    return path.read_text().splitlines() if path.exists() else []


def test_the_command_records_its_start_and_exit_status(tmp_path: Path) -> None:
    config, store = grid_group(tmp_path, "[1]")
    drive(config, store)
    status = store.paths(1).status.read_text().splitlines()
    assert status[0].startswith("started 1 ") and status[1] == "exited 1 0"
    assert ledger(tmp_path) == ["1 1"]


def test_an_exit_no_driver_saw_is_recorded_not_rerun(tmp_path: Path) -> None:
    """The driver died after the command exited and before it saved the result: the record
    says "running"; the status file says it exited. Resume records it; nothing reruns."""
    config, store = grid_group(tmp_path, "[1, 2]")
    exp = store.new_experiment(config={"x": 1}, params={"x": 1})
    paths = store.paths(exp.id)
    paths.metrics.write_text('{"loss": 0.5}\n{"loss": 0.25}\n')
    paths.status.write_text("started 1 999999999\nexited 1 0\n")
    store.save(
        exp.with_(status=Status.RUNNING, attempt=1, pid=999_999_999, started_at=1.0),
        durable=True,
    )
    drive(config, store)
    [first, second] = store.experiments()
    assert first.status is Status.SUCCEEDED and first.attempt == 1
    assert first.metrics == {"loss": 0.25} and first.metric_lines == 2
    assert first.attempts[-1]["recovered"] and first.attempts[-1]["exit_code"] == 0
    assert second.status is Status.SUCCEEDED
    assert ledger(tmp_path) == ["2 1"]  # only the second ran here


def test_a_failed_exit_no_driver_saw_is_retried_as_configured(tmp_path: Path) -> None:
    config, store = grid_group(tmp_path, "[1]")
    exp = store.new_experiment(config={"x": 1}, params={"x": 1})
    store.paths(exp.id).status.write_text("started 1 999999999\nexited 1 3\n")
    store.save(exp.with_(status=Status.RUNNING, attempt=1, pid=999_999_999), durable=True)
    drive(config, store, max_restarts=1)
    [done] = store.experiments()
    assert done.status is Status.SUCCEEDED and done.attempt == 2
    assert [a["status"] for a in done.attempts] == ["failed", "succeeded"]
    assert done.attempts[0]["exit_code"] == 3 and done.attempts[0]["recovered"]
    # the first attempt's files were set aside, the status file with them
    assert (store.paths(1).dir / "attempt-1" / "command.status").exists()


def test_a_launch_the_driver_never_recorded_is_found(tmp_path: Path) -> None:
    """The driver died between starting the command and saving "running": the record still
    says "created", the command's status file says attempt 1 started (and here, exited)."""
    config, store = grid_group(tmp_path, "[1]")
    exp = store.new_experiment(config={"x": 1}, params={"x": 1})
    store.paths(exp.id).status.write_text("started 1 999999999\nexited 1 0\n")
    drive(config, store)
    [done] = store.experiments()
    assert done.status is Status.SUCCEEDED and done.attempt == 1
    assert done.attempts[0]["unrecorded_launch"] and done.attempts[0]["recovered"]
    assert done.command and "printf" in done.command
    assert ledger(tmp_path) == []  # not run again


def test_an_unrecorded_launch_still_running_is_stopped_and_rerun(tmp_path: Path) -> None:
    config, store = grid_group(tmp_path, "[1]")
    exp = store.new_experiment(config={"x": 1}, params={"x": 1})
    paths = store.paths(exp.id)
    orphan = subprocess.Popen(
        ["/bin/sh", "-c", "sleep 60"],
        env={
            **os.environ,
            "POLYTUNE_EXPERIMENT_DIR": str(paths.dir),
            "POLYTUNE_ATTEMPT": "1",
            "POLYTUNE_GROUP_DIR": str(store.path),
        },
        start_new_session=True,
    )
    try:
        paths.status.write_text(f"started 1 {orphan.pid}\n")
        drive(config, store)
        assert orphan.wait(timeout=10) == -signal.SIGTERM
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait()
    [done] = store.experiments()
    assert done.status is Status.SUCCEEDED and done.attempt == 2
    assert [a["status"] for a in done.attempts] == ["lost", "succeeded"]
    assert done.attempts[0]["unrecorded_launch"]
    assert ledger(tmp_path) == ["1 2"]


def test_a_stranger_with_the_recorded_pid_is_left_alone(tmp_path: Path) -> None:
    """The status file names a pid that now belongs to another process: not ours to kill."""
    config, store = grid_group(tmp_path, "[1]")
    exp = store.new_experiment(config={"x": 1}, params={"x": 1})
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        store.paths(exp.id).status.write_text(f"started 1 {stranger.pid}\n")
        drive(config, store)
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()
    [done] = store.experiments()
    assert [a["status"] for a in done.attempts] == ["lost", "succeeded"]


def test_a_stop_that_lands_after_the_command_exited_keeps_its_result(tmp_path: Path) -> None:
    """The race a stop can lose: TERM reaches the shell after the command ended on its own,
    while the shell writes its exit status. Simulated with a command that writes that line and
    then lingers: the driver must record the exit, not "interrupted" (which would rerun it)."""
    config, store = grid_group(tmp_path, "[1]")
    lingering = CommandTemplate(
        kind="shell",
        parts=(
            'printf \'{"loss": 1}\\n\' >> "$POLYTUNE_METRICS_FILE" && '
            "printf 'exited 1 0\\n' >> \"$POLYTUNE_EXPERIMENT_DIR/command.status\" && sleep 30",
        ),
    )
    config = replace(config, command=lingering)
    with store.lock(), LocalExecutor(1) as executor:
        driver = Driver(
            store,
            config,
            executor,
            make_searcher(config),
            seed=1,
            options=DriverOptions(concurrency=1, stop_grace=5.0),
            progress=NullProgress(),
        )
        stopper = threading.Timer(1.5, driver.request_stop, args=("test",))
        stopper.start()
        try:
            with pytest.raises(Interrupted):
                driver.run()
        finally:
            stopper.cancel()
    [done] = store.experiments()
    assert done.status is Status.SUCCEEDED and done.exit_code == 0
    assert done.metrics == {"loss": 1.0}


# ----- crash loops with real drivers --------------------------------------------------------


@pytest.mark.slow
def test_crash_loop_random_search(tmp_path: Path) -> None:
    figures = crash_loop(
        tmp_path,
        "random",
        n=80,
        kills=12,
        max_delay=0.5,
        compare=True,
        rng=random.Random(20240611),
    )
    print(figures.summary())
    assert figures.problems == []
    assert figures.kills >= 3


@pytest.mark.slow
def test_crash_loop_hyperband(tmp_path: Path) -> None:
    """No promotion lost or doubled: the same (configuration, bracket, rung, resource) set as an
    uninterrupted run of the same seed, each completed once."""
    figures = crash_loop(
        tmp_path, "hyperband", n=100, kills=10, max_delay=0.8, compare=True, rng=random.Random(3)
    )
    print(figures.summary())
    assert figures.problems == []


@pytest.mark.slow
def test_crash_loop_bayesian_optimization(tmp_path: Path) -> None:
    figures = crash_loop(tmp_path, "bo", n=20, kills=8, max_delay=2.0, rng=random.Random(4))
    print(figures.summary())
    assert figures.problems == []


@pytest.mark.slow
def test_crash_loop_with_orphans_alive_at_resume(tmp_path: Path) -> None:
    """Experiments longer than a driver's restart: resume finds them still running, stops
    them and reruns them (and records those that exited in the meantime)."""
    figures = crash_loop(
        tmp_path, "random", n=12, kills=8, max_sleep=2.5, max_delay=2.0, rng=random.Random(5)
    )
    print(figures.summary())
    assert figures.problems == []


@pytest.mark.slow
def test_killed_driver_leaves_orphans_that_resume_stops(tmp_path: Path) -> None:
    """After a SIGKILL the experiments outlive their driver (they are in their own sessions);
    the next driver stops them before anything else, so none is left once it is done."""
    from crash_harness import cli, start_cli, write_group_file

    path = write_group_file(tmp_path, "random", n=4, max_sleep=0.01)
    text = path.read_text().replace("sleep ", "sleep 30 && sleep ", 1)
    path.write_text(text)
    driver = start_cli("run", str(path), "--name", "g", "--quiet", cwd=tmp_path)
    group = tmp_path / "polytune-groups" / "g"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(group_processes(group)) < 2:
        time.sleep(0.05)
    driver.send_signal(signal.SIGKILL)
    driver.communicate()
    assert group_processes(group), "orphans outlive a SIGKILLed driver"
    stopped = cli("stop", "g", cwd=tmp_path)
    assert stopped.returncode == 0 and "nothing to stop" in stopped.stdout
    # `resume` with a sleeping command would take a while: resume and stop it at once.
    resumed = start_cli("resume", "g", "--quiet", cwd=tmp_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        recs = [json.loads(p.read_text()) for p in group.glob("experiments/*/experiment.json")]
        if any(a["status"] == "lost" for r in recs for a in r["attempts"]):
            break
        time.sleep(0.05)
    resumed.send_signal(signal.SIGINT)
    resumed.communicate(timeout=60)
    assert resumed.returncode == 130
    assert group_processes(group) == []


@pytest.mark.slow
def test_background_children_of_a_dead_drivers_experiment_are_stopped(tmp_path: Path) -> None:
    """The command's shell ended while no driver watched, but left a background process in its
    group: resume records the exit and stops what is left (found by its environment)."""
    from crash_harness import cli, start_cli

    path = tmp_path / "bg.yaml"
    path.write_text(
        "hptuning:\n  matrix:\n    x: {values: [1]}\n"
        "run:\n  cmd: sleep 60 & sleep 1.5; echo {{ x }} >> ledger.txt\n"
    )
    driver = start_cli("run", str(path), "--name", "g", "--quiet", cwd=tmp_path)
    group = tmp_path / "polytune-groups" / "g"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(group_processes(group)) < 3:
        time.sleep(0.05)
    driver.send_signal(signal.SIGKILL)
    driver.communicate()
    while time.monotonic() < deadline and not (tmp_path / "ledger.txt").exists():
        time.sleep(0.05)
    time.sleep(0.2)
    assert len(group_processes(group)) == 1  # the background `sleep 60`
    done = cli("resume", "g", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert group_processes(group) == []
    rec = json.loads((group / "experiments" / "000001" / "experiment.json").read_text())
    assert rec["status"] == "succeeded" and rec["attempt"] == 1 and rec["attempts"][0]["recovered"]
    assert (tmp_path / "ledger.txt").read_text().split() == ["1"]
