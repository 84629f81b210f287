"""Hyperband and ASHA through the real CLI: real drivers, real subprocesses (tests/jobs/fidelity.py),
checkpoint resume, status, and kill -9 of the driver in the middle of rungs."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from test_hyperband import simulate
from test_run import cli, group_dirs, records, start_cli, status_json, wait_for, write

from polytune.config import load
from polytune.searchers import make_searcher

pytestmark = pytest.mark.slow

FIDELITY = Path(__file__).resolve().parent / "jobs" / "fidelity.py"


def hyperband_file(
    tmp: Path, *, resume: bool = True, sleep: float = 0.0, concurrency: int = 3
) -> Path:
    return write(
        tmp,
        "hb.yaml",
        f"""
        version: 1
        kind: group
        hptuning:
          concurrency: {concurrency}
          seed: 5
          hyperband:
            max_iter: 9
            eta: 3
            resource: {{name: epochs, type: int}}
            metric: {{name: loss, optimization: minimize}}
            resume: {str(resume).lower()}
          matrix:
            x: {{uniform: [0, 6]}}
            y: {{uniform: [0, 2]}}
        run:
          cmd: {sys.executable} {FIDELITY} --x={{{{ x }}}} --y={{{{ y }}}} --epochs={{{{ epochs }}}} --sleep-per-epoch={sleep}
        """,
    )


def expected_schedule(path: Path) -> list[str]:
    """The uninterrupted schedule: the pure searcher driven to the end with the script's known
    metric (configurations depend on the seed only, promotions on the metric only)."""
    config = load([path])
    history = simulate(make_searcher(config), concurrency=3, seed=5)
    return sorted(json.dumps({**e.params, "rung": e.meta["rung"]}, sort_keys=True) for e in history)


def key(r: dict[str, Any]) -> str:
    return json.dumps({**r["params"], "rung": r["meta"]["rung"]}, sort_keys=True)


def seen(group: Path, exp_id: int) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (group / "experiments" / f"{exp_id:06d}" / "fidelity.json").read_text()
    )
    return data


def test_resume_hands_the_outputs_and_renders_each_rung(tmp_path: Path) -> None:
    proc = cli("run", str(hyperband_file(tmp_path)), "--json", cwd=tmp_path, check=True)
    assert json.loads(proc.stdout)["counts"]["succeeded"] == 22  # 9+3+1 | 5+1 | 3
    [group] = group_dirs(tmp_path)
    recs = {r["id"]: r for r in records(group)}
    promoted = [r for r in recs.values() if r["meta"]["rung"] > 0]
    assert len(promoted) == 5
    for r in promoted:
        parent, root = recs[r["meta"]["promoted_from"]], recs[r["meta"]["root"]]
        job = seen(group, r["id"])
        epochs = r["params"]["epochs"]
        # the ancestor's outputs path, with its checkpoint: training continues from there
        assert r["outputs_path"] == root["outputs_path"] == job["outputs"]
        assert job["start_epochs"] == parent["params"]["epochs"] < epochs
        # the command is rendered for this rung, and the env carries the same resource
        assert f"--epochs={epochs}" in r["command"] and f"--epochs={epochs}" in job["argv"]
        assert job["env_epochs"] == str(epochs) and json.loads(job["params"])["epochs"] == epochs
        assert r["metrics"]["loss"] == pytest.approx(
            (r["config"]["x"] - 3) ** 2 + (r["config"]["y"] - 1) ** 2 + 1 / epochs
        )
    # status: bracket / rung columns and the per-bracket summary
    state = status_json(tmp_path)
    assert [(r["bracket"], r["rung"], r["planned"], r["ended"]) for r in state["rungs"]] == [
        (2, 0, 9, 9),
        (2, 1, 3, 3),
        (2, 2, 1, 1),
        (1, 0, 5, 5),
        (1, 1, 1, 1),
        (0, 0, 3, 3),
    ]
    text = cli("status", cwd=tmp_path, check=True).stdout
    assert "Brackets" in text and "promoted" in text and "bracket" in text


def test_asha_end_to_end(tmp_path: Path) -> None:
    asha = write(
        tmp_path,
        "asha.yaml",
        f"""
        version: 1.1
        kind: operation
        matrix:
          kind: asha
          concurrency: 3
          seed: 2
          numRuns: 4
          minResource: 1
          maxResource: 3
          resume: true
          resource: {{name: epochs, type: int}}
          metric: {{name: loss, optimization: minimize}}
          params:
            x: {{kind: uniform, value: [0, 6]}}
        component:
          inputs: [{{name: x, type: float}}, {{name: epochs, type: int}}]
          run:
            kind: job
            container:
              command: [{sys.executable}, {FIDELITY}, "--x={{{{ x }}}}", "--epochs={{{{ epochs }}}}"]
        """,
    )
    cli("run", str(asha), "--quiet", cwd=tmp_path, check=True)
    [group] = group_dirs(tmp_path)
    recs = records(group)
    assert sum(r["meta"]["rung"] == 0 for r in recs) == 4
    assert {r["params"]["epochs"] for r in recs} == {1, 3} and len(recs) > 4
    for r in recs:
        if r["meta"]["rung"] > 0:
            assert seen(group, r["id"])["start_epochs"] > 0  # continued from the checkpoint
    assert status_json(tmp_path)["rungs"][0]["bracket"] == 0


def test_kill_9_in_rungs_then_resume_continues_the_schedule(tmp_path: Path) -> None:
    path = hyperband_file(tmp_path, sleep=0.2)
    expected = expected_schedule(path)

    def group() -> Path:
        return group_dirs(tmp_path)[0]

    def kill_when(condition: Any, *args: str) -> list[dict[str, Any]]:
        driver = start_cli(*args, cwd=tmp_path)
        wait_for(lambda: bool(group_dirs(tmp_path)) and condition(records(group())))
        os.killpg(driver.pid, signal.SIGKILL)  # the driver only: experiments have their own groups
        driver.wait()
        return records(group())

    def running(rung: int) -> Any:
        return lambda recs: (
            any(r["status"] == "running" and r["meta"]["rung"] == rung for r in recs)
            and sum(r["status"] == "succeeded" for r in recs) >= 3
        )

    # 1st kill: in the middle of a rung 0; 2nd: while a promoted experiment trains
    first = kill_when(running(0), "run", str(path), "--quiet")
    second = kill_when(running(1), "resume", group().name, "--quiet")
    assert status_json(tmp_path)["state"].startswith("interrupted")
    proc = cli("resume", group().name, "--json", cwd=tmp_path, check=True)
    assert json.loads(proc.stdout)["status"] == "done"
    after = {r["id"]: r for r in records(group())}
    assert sorted(key(r) for r in after.values()) == expected  # same schedule, nothing extra
    assert all(r["status"] == "succeeded" for r in after.values())
    for snapshot in (first, second):  # a finished rung experiment is never rerun
        for r in snapshot:
            if r["status"] == "succeeded":
                assert after[r["id"]]["attempts"] == r["attempts"]
                assert after[r["id"]]["ended_at"] == r["ended_at"]
    parents = [r["meta"]["promoted_from"] for r in after.values() if r["meta"]["rung"] > 0]
    assert len(parents) == len(set(parents)) == 5  # no promotion lost or doubled
    for snapshot in (first, second):  # what ran at a kill ended once: settled, or rerun
        for r in snapshot:
            if r["status"] == "running":
                states = [a["status"] for a in after[r["id"]]["attempts"]]
                assert states in (["succeeded"], ["lost", "succeeded"]), states
    for r in after.values():  # reruns of promoted experiments still end at the right value
        x, y, epochs = r["config"]["x"], r["config"]["y"], r["params"]["epochs"]
        assert r["metrics"]["loss"] == pytest.approx((x - 3) ** 2 + (y - 1) ** 2 + 1 / epochs)
