"""Early stopping end to end: the real CLI, real drivers and real subprocesses
(``tests/jobs/curve.py`` reports known curves), checking which experiments each rule stops, at
which step, and that nothing else is disturbed."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

CURVE = Path(__file__).resolve().parent / "jobs" / "curve.py"


def cli(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "polytune", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def write_group(
    tmp: Path,
    curves: list[str],
    *,
    concurrency: int,
    rules: str = "[]",
    polytune: str = "",
    args: str = "",
) -> Path:
    path = tmp / "group.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            version: 1
            kind: group
            hptuning:
              concurrency: {concurrency}
              matrix:
                c:
                  values: {json.dumps(curves)}
              early_stopping: {rules}
            polytune:
              metric: {{name: loss, optimization: minimize}}
              stop_grace: 5
              {polytune}
            run:
              cmd: {sys.executable} {CURVE} --values={{{{ c }}}} {args}
            """
        )
    )
    return path


def records(tmp: Path) -> dict[str, dict[str, Any]]:
    [group] = sorted((tmp / "polytune-groups").iterdir())
    out = {}
    for d in sorted((group / "experiments").iterdir()):
        if d.name.isdigit():
            rec = json.loads((d / "experiment.json").read_text())
            rec["lines"] = (
                (d / "metrics.jsonl").read_text().splitlines()
                if (d / "metrics.jsonl").exists()
                else []
            )
            out[rec["config"]["c"]] = rec
    return out


def test_median_policy_stops_the_bad_curves_at_the_expected_step(tmp_path: Path) -> None:
    good1 = "1.0,0.8,0.6,0.5,0.4,0.3"
    good2 = "1.0,0.7,0.5,0.4,0.35,0.3"
    bad = "2.0,1.9,1.8,1.7,1.6,1.5"
    late = "1.2,0.9,1.0,1.1,1.2,1.3"  # good until step 3, then worse than the median
    best = "1.0,0.6,0.4,0.2,0.1,0.05"
    rules = "[{metric: loss, optimization: minimize, policy: {kind: median, min_samples: 2, min_interval: 2}}]"
    path = write_group(
        tmp_path, [good1, good2, bad, late, best], concurrency=1, rules=rules, args="--sleep=0.15"
    )
    proc = ok(cli("run", str(path), "--json", cwd=tmp_path))
    assert json.loads(proc.stdout)["status"] == "done"
    recs = records(tmp_path)
    assert recs[bad]["status"] == "stopped"
    assert recs[bad]["reason"].startswith("early_stopping:median (step 2: best loss 1.9 ")
    # running averages at step 4: 0.725, 0.65, (bad stopped before step 4), late's best 0.9 > 0.6875
    assert recs[late]["status"] == "stopped"
    assert recs[late]["reason"].startswith("early_stopping:median (step ")
    # step 3: best 0.9 against the median of the running averages 0.8 and 0.733 (and bad's
    # 1.9 when its third line got out before the stop); at step 2 it tied the median (0.9)
    assert recs[late]["reason"].startswith("early_stopping:median (step 3: best loss 0.9 ")
    # the process is stopped within about one line of the step the decision was made at
    assert len(recs[bad]["lines"]) <= 3 and len(recs[late]["lines"]) <= 4
    for c in (good1, good2, best):  # nothing else disturbed
        assert recs[c]["status"] == "succeeded" and len(recs[c]["lines"]) == 6
    status = json.loads(ok(cli("status", "--json", cwd=tmp_path)).stdout)
    assert status["early_stopping"][0].startswith("median policy on loss (minimize)")
    reasons = {e["config"]["c"]: e["reason"] for e in status["experiments"]}
    assert reasons[bad].startswith("early_stopping:median")
    text = ok(cli("status", cwd=tmp_path)).stdout
    assert "early stopping: median policy on loss" in text and "why" in text


def test_group_threshold_stops_the_group_within_one_line_of_the_crossing(tmp_path: Path) -> None:
    crossing = "1.0,0.8,0.6,0.5,0.4,0.3,0.2,0.1,0.05,0.01"  # crosses 0.45 at line 5
    slow = "1.0,0.95,0.9,0.85,0.8,0.75,0.7,0.65,0.6,0.55"
    never = "1.0,1.0"
    rules = "[{metric: loss, value: 0.45, optimization: minimize}]"
    path = write_group(
        tmp_path, [crossing, slow, never], concurrency=2, rules=rules, args="--sleep=0.4"
    )
    proc = cli("run", str(path), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr  # an early stop is a normal ending
    out = json.loads(proc.stdout)
    assert out["status"] == "early_stopped"
    assert out["reason"].startswith("early_stopping:threshold: experiment ")
    recs = records(tmp_path)
    assert never not in recs  # nothing new started
    assert 5 <= len(recs[crossing]["lines"]) <= 6  # within one metric line of the crossing
    for c in (crossing, slow):
        assert recs[c]["status"] == "stopped"
        assert recs[c]["reason"].startswith(
            f"early_stopping:threshold (group stopped: experiment {recs[crossing]['id']} reported loss=0.4 at step 5"
        )
    status = json.loads(ok(cli("status", "--json", cwd=tmp_path)).stdout)
    assert status["state"] == "early_stopped"
    assert (
        status["reason"]
        == f"early_stopping:threshold: experiment {recs[crossing]['id']} reported loss=0.4 at step 5, reaching loss <= 0.45"
    )
    assert status["early_stopping"][0] == "stop the group when an experiment's loss <= 0.45"
    # resume has nothing to do and says so
    again = ok(cli("resume", cwd=tmp_path))
    assert "is finished: it stopped early" in again.stdout
    assert records(tmp_path).keys() == recs.keys()


def test_threshold_can_let_running_experiments_finish(tmp_path: Path) -> None:
    crossing = "1.0,0.4"
    slow = "1.0,0.9,0.8,0.7,0.6"
    rules = "[{metric: loss, value: 0.45, optimization: minimize}]"
    path = write_group(
        tmp_path, [crossing, slow, "1,1"], concurrency=2, rules=rules, args="--sleep=0.2"
    )
    proc = ok(cli("run", str(path), "--json", "--on-early-stop", "finish", cwd=tmp_path))
    assert json.loads(proc.stdout)["status"] == "early_stopped"
    recs = records(tmp_path)
    assert set(recs) == {crossing, slow}
    assert recs[slow]["status"] == "succeeded" and len(recs[slow]["lines"]) == 5


def test_stall_watchdog_stops_only_the_silent_experiment(tmp_path: Path) -> None:
    """Under a 1.5 s limit, two experiments at once: one goes silent for 30 s after two lines
    (stopped as stalled), the other keeps printing to stdout for 2.5 s (output is activity)."""
    path = tmp_path / "stall.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            version: 1
            kind: group
            hptuning:
              concurrency: 2
              matrix:
                extra:
                  values: ["--hang=30", "--chatter=2.5"]
            polytune:
              stop_grace: 5
            run:
              cmd: {sys.executable} {CURVE} --values=0.5,0.4 --sleep=0.05 {{{{ extra }}}}
            """
        )
    )
    proc = ok(cli("run", str(path), "--json", "--stall-timeout", "1.5", cwd=tmp_path))
    assert json.loads(proc.stdout)["status"] == "done"
    [group] = sorted((tmp_path / "polytune-groups").iterdir())
    recs = {}
    for d in sorted((group / "experiments").iterdir()):
        if d.name.isdigit():
            rec = json.loads((d / "experiment.json").read_text())
            recs[rec["config"]["extra"]] = rec
    silent, chatty = recs["--hang=30"], recs["--chatter=2.5"]
    assert silent["status"] == "stopped"
    assert silent["reason"] == "stalled (no metric line or output for 1.5 s)"
    assert 1.5 <= silent["ended_at"] - silent["started_at"] < 10
    assert chatty["status"] == "succeeded"
    status = json.loads(ok(cli("status", "--json", cwd=tmp_path)).stdout)
    assert (
        "stop an experiment silent (no metric line, no output) for 1.5 s"
        in status["early_stopping"]
    )


def test_a_stopped_experiments_slot_is_refilled_at_once(tmp_path: Path) -> None:
    bad = "9,9,9,9,9,9,9,9,9,9"
    good = "1,1,1,1,1,1,1,1,1,1"
    rules = "[{metric: loss, optimization: minimize, policy: {kind: median, min_samples: 1, min_interval: 2}}]"
    path = write_group(
        tmp_path, [good, bad, "1,1", "2,2"], concurrency=2, rules=rules, args="--sleep=0.2"
    )
    ok(cli("run", str(path), cwd=tmp_path))
    recs = records(tmp_path)
    # step 2, or 3 when bad's second line was read before good's
    assert recs[bad]["status"] == "stopped"
    assert recs[bad]["reason"].startswith(
        ("early_stopping:median (step 2:", "early_stopping:median (step 3:")
    )
    third = recs["1,1"]
    # the freed slot goes to the next configuration as soon as the stopped one has ended
    assert 0 <= third["started_at"] - recs[bad]["ended_at"] < 1.0
    assert recs[good]["status"] == "succeeded" and len(recs[good]["lines"]) == 10


def test_failure_early_stopping(tmp_path: Path) -> None:
    """v2 failure_early_stopping: 30 % of the 6 planned experiments is 1.8, so the second failure
    (the 4th experiment) stops the group; the last two never start."""
    path = tmp_path / "op.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            version: 1.1
            kind: operation
            matrix:
              kind: grid
              concurrency: 1
              params:
                x: {{kind: choice, value: [1, 2, 3, 4, 5, 6]}}
              earlyStopping:
                - {{kind: failure_early_stopping, percent: 30}}
            component:
              inputs: [{{name: x, type: int}}]
              run:
                kind: job
                container:
                  image: python
                  command: [{sys.executable}, {CURVE}, "--values=1,1", "--x={{{{ x }}}}", "--fail-for=2,4"]
            """
        )
    )
    proc = cli("run", str(path), "--json", cwd=tmp_path)
    out = json.loads(proc.stdout)
    assert proc.returncode == 0 and out["status"] == "early_stopped"
    assert out["counts"]["failed"] == 2 and out["counts"]["succeeded"] == 2
    status = json.loads(ok(cli("status", "--json", cwd=tmp_path)).stdout)
    assert status["reason"] == "early_stopping:failures: 2 of 6 experiments failed (>= 30 %)"
    assert status["early_stopping"][0] == "stop the group when 30 % of the experiments failed"
