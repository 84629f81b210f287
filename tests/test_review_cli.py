"""`polytune experiment / logs / export / compare / report` end to end, on groups made by real
`polytune run`s: a finished group with failures, a running group and an empty group."""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_review import check_page
from test_run import JOB, cli, start_cli, wait_for, write

pytestmark = pytest.mark.slow


def group_file(
    tmp: Path, name: str, *, xs: str, sleep: float, concurrency: int = 2, extra: str = ""
) -> Path:
    return write(
        tmp,
        f"{name}.yaml",
        f"""
        version: 1
        kind: group
        hptuning:
          concurrency: {concurrency}
          matrix:
            x:
              values: {xs}
        polytune:
          metric: {{name: loss, optimization: minimize}}
        run:
          cmd: echo begin-{{{{ x }}}}; {sys.executable} {JOB} --x={{{{ x }}}} --steps=3 --sleep={sleep} {extra}; status=$?; echo end-{{{{ x }}}}; exit $status
        """,
    )


def records(group: Path) -> list[dict[str, Any]]:
    out = []
    for d in sorted((group / "experiments").iterdir()):
        if d.name.isdigit():
            out.append(json.loads((d / "experiment.json").read_text()))
    return out


def cli_json(*args: str, cwd: Path) -> Any:
    proc = cli(*args, "--json", cwd=cwd, check=True)
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with `done` (6 experiments, x=2 fails) and `empty` (no experiment yet)."""
    tmp = tmp_path_factory.mktemp("review")
    path = group_file(tmp, "done", xs="[1, 2, 3, 4, 5, 6]", sleep=0.0, extra="--fail-if-x=2")
    cli("run", str(path), "--name", "done", "--quiet", cwd=tmp, check=True)
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from polytune.config import load\n"
        "from polytune.driver import new_group\n"
        "new_group(load([sys.argv[1]], ()), workspace=Path('polytune-groups'), name='empty', stem='x')\n"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], cwd=tmp, check=True, timeout=60)
    return tmp


@pytest.fixture
def running(ws: Path) -> Iterator[Path]:
    """A group whose two experiments run for a long time (stopped at the end of the test)."""
    path = group_file(ws, "slow", xs="[7, 8, 9]", sleep=60.0, concurrency=2)
    name = f"running-{time.monotonic_ns()}"
    driver = start_cli("run", str(path), "--name", name, "--quiet", cwd=ws)
    group = ws / "polytune-groups" / name
    try:
        wait_for(
            lambda: group.is_dir() and sum(r["status"] == "running" for r in records(group)) == 2
        )
        wait_for(
            lambda: all(
                (group / "experiments" / f"{i:06d}" / "stdout.log").stat().st_size > 0
                for i in (1, 2)
            )
        )
        yield group
    finally:
        cli("stop", name, cwd=ws)
        driver.wait(timeout=60)


# ----------------------------------------------------------------------------------------
# experiment
# ----------------------------------------------------------------------------------------


def test_experiment_of_a_failed_and_a_succeeded_experiment(ws: Path) -> None:
    failed = cli_json("experiment", "done", "2", cwd=ws)
    assert failed["status"] == "failed" and failed["exit_code"] == 3
    assert failed["reason"] == "exit code 3" and failed["value"] == pytest.approx(1 + 1 / 3)
    assert any("failing on purpose" in line for line in failed["stderr_tail"])
    assert failed["command"].startswith("echo begin-2;")
    assert failed["params"] == {"x": 2} and failed["attempts"][0]["exit_code"] == 3
    assert failed["outputs_path"].endswith("experiments/000002/outputs")
    best = cli_json("experiment", "done", "3", cwd=ws)
    assert best["rank"] == {"rank": 1, "of": 6}
    assert best["metrics"]["loss"]["count"] == 3 and best["metrics"]["loss"][
        "best"
    ] == pytest.approx(1 / 3)
    assert best["duration_seconds"] > 0 and best["objective_curve"][-1] == pytest.approx(1 / 3)
    text = cli("experiment", "done", "2", cwd=ws, check=True).stdout
    for part in (
        "experiment 2 of group done",
        "failed",
        "exit code 3",
        "failing on purpose",
        "loss",
        "outputs:",
    ):
        assert part in text, part


def test_experiment_of_an_empty_group_and_bad_ids(ws: Path) -> None:
    proc = cli("experiment", "empty", "1", cwd=ws)
    assert proc.returncode == 2 and proc.stderr.startswith("Error: group empty has no experiment 1")
    proc = cli("experiment", "nope", "1", cwd=ws)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert cli("experiment", "done", "0", cwd=ws).returncode == 2


def test_experiment_while_running(ws: Path, running: Path) -> None:
    data = cli_json("experiment", running.name, "1", cwd=ws)
    assert data["status"] == "running" and not data["lost"]
    assert data["ended_at"] is None and data["duration_seconds"] > 0 and data["pid"]
    assert "running" in cli("experiment", running.name, "2", cwd=ws, check=True).stdout


# ----------------------------------------------------------------------------------------
# logs
# ----------------------------------------------------------------------------------------


def test_logs_of_finished_experiments(ws: Path) -> None:
    assert cli("logs", "done", "1", cwd=ws, check=True).stdout == "begin-1\nend-1\n"
    assert (
        "failing on purpose for x=2"
        in cli("logs", "done", "2", "--stderr", cwd=ws, check=True).stdout
    )
    assert cli("logs", "done", "1", "-n", "1", cwd=ws, check=True).stdout == "end-1\n"
    # --follow of an ended experiment prints it and returns at once
    proc = cli("logs", "done", "3", "--follow", cwd=ws, check=True, timeout=30)
    assert proc.stdout == "begin-3\nend-3\n"
    assert cli("logs", "empty", "1", cwd=ws).returncode == 2


def test_logs_follow_ends_when_the_experiment_ends(ws: Path) -> None:
    path = group_file(ws, "short", xs="[3]", sleep=2.0, concurrency=1)
    driver = start_cli("run", str(path), "--name", "short", "--quiet", cwd=ws)
    group = ws / "polytune-groups" / "short"
    wait_for(lambda: group.is_dir() and any(r["status"] == "running" for r in records(group)))
    start = time.monotonic()
    proc = cli("logs", "short", "1", "--follow", cwd=ws, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "begin-3\nend-3\n"  # what came after the start too
    assert time.monotonic() - start < 30
    assert driver.wait(timeout=60) == 0


def test_logs_follow_of_a_running_experiment_and_ctrl_c(ws: Path, running: Path) -> None:
    follower = subprocess.Popen(
        [sys.executable, "-m", "polytune", "logs", running.name, "1", "--follow"],
        cwd=ws,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)
    assert follower.poll() is None, "follow must go on while the experiment runs"
    follower.send_signal(signal.SIGINT)
    out, err = follower.communicate(timeout=30)
    assert follower.returncode == 130
    assert out.startswith("begin-7") and "Traceback" not in err
    # stopping the group ends the experiment, and so a follower
    follower = subprocess.Popen(
        [sys.executable, "-m", "polytune", "logs", running.name, "2", "--follow"],
        cwd=ws,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.0)
    cli("stop", running.name, cwd=ws, check=True)
    out, err = follower.communicate(timeout=60)
    assert follower.returncode == 0, err
    assert out.startswith("begin-8")


# ----------------------------------------------------------------------------------------
# export
# ----------------------------------------------------------------------------------------


def test_export_csv_and_json(ws: Path, tmp_path: Path) -> None:
    text = cli("export", "done", cwd=ws, check=True).stdout
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["id"] for r in rows] == ["1", "2", "3", "4", "5", "6"]
    assert rows[1]["status"] == "failed" and rows[1]["exit_code"] == "3"
    assert float(rows[2]["value"]) == pytest.approx(1 / 3) and float(
        rows[2]["best_value"]
    ) == pytest.approx(1 / 3)
    for column in (
        "params.x",
        "metrics.loss",
        "metrics.loss.min",
        "metrics.score.max",
        "duration_seconds",
        "started_at",
    ):
        assert column in rows[0], column
    data = cli_json("export", "done", cwd=ws)
    assert (
        len(data) == 6
        and data[0]["params.x"] == 1
        and isinstance(data[0]["duration_seconds"], float)
    )
    assert set(data[0]) == set(rows[0])  # one schema for both formats
    out = tmp_path / "rows.json"
    proc = cli(
        "export",
        "done",
        "-o",
        str(out),
        "--query",
        "status:succeeded",
        "--sort",
        "-metrics.loss",
        cwd=ws,
        check=True,
    )
    assert "wrote 5 experiments" in proc.stderr
    assert [r["params.x"] for r in json.loads(out.read_text())] == [6, 1, 5, 4, 3]
    csv_out = tmp_path / "rows.csv"
    cli("export", "done", "--csv", "-o", str(csv_out), cwd=ws, check=True)
    assert csv_out.read_text() == text


def test_export_of_an_empty_and_a_running_group(ws: Path, running: Path) -> None:
    assert cli("export", "empty", cwd=ws, check=True).stdout == "id\n"
    assert cli_json("export", "empty", cwd=ws) == []
    rows = cli_json("export", running.name, cwd=ws)
    assert [r["status"] for r in rows] == ["running", "running"]
    assert all(r["duration_seconds"] > 0 and r["ended_at"] is None for r in rows)


# ----------------------------------------------------------------------------------------
# compare
# ----------------------------------------------------------------------------------------


def test_compare_groups(ws: Path, running: Path) -> None:
    doc = cli_json("compare", "done", running.name, "empty", cwd=ws)
    assert [g["name"] for g in doc["groups"]] == ["done", running.name, "empty"]
    assert doc["same_metric"] and doc["best_group"] == "done"
    done, run, empty = doc["groups"]
    assert done["best"]["config"] == {"x": 3} and done["best"]["value"] == pytest.approx(1 / 3)
    assert done["counts"]["failed"] == 1 and done["counts"]["succeeded"] == 5
    assert done["compute_seconds"] > 0 and len(done["best_so_far"]) == 6
    assert run["state"] == "running" and run["counts"]["running"] == 2 and run["wall_seconds"] > 0
    assert empty["experiments"] == 0 and empty["best"] is None and empty["wall_seconds"] is None
    text = cli("compare", "done", running.name, "empty", cwd=ws, check=True).stdout
    for part in (
        "done ★",
        "best value",
        "best config",
        "x=3",
        "compute time",
        "best so far",
        "after 6",
    ):
        assert part in text, part
    every = cli_json("compare", cwd=ws)  # no GROUP: every group of the workspace
    assert {"done", "empty", running.name} <= {g["name"] for g in every["groups"]}
    assert cli("compare", "nope", cwd=ws).returncode == 2


# ----------------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------------


def test_report_of_real_groups(ws: Path, running: Path, tmp_path: Path) -> None:
    out = cli_json("report", "done", cwd=ws)
    check_page(Path(out["html"]))
    names = {Path(p).name for p in out["images"]}
    assert {"history.png", "curves.png", "timeline.png", "slices.png"} <= names
    live = cli_json("report", running.name, "--out", str(tmp_path / "live"), cwd=ws)
    check_page(Path(live["html"]))
    assert {Path(p).name for p in live["images"]} >= {"timeline.png"}
    empty = cli_json("report", "empty", cwd=ws)
    page = check_page(Path(empty["html"]))
    assert empty["images"] == [] and "no experiment" in " ".join(page.text)


# ----------------------------------------------------------------------------------------
# status, tables with --json, import discipline
# ----------------------------------------------------------------------------------------


def test_status_shows_shares_and_best_so_far(ws: Path) -> None:
    text = cli("status", "done", cwd=ws, check=True).stdout
    assert "6 experiments of 6: 5 succeeded (83%), 1 failed (17%)" in text
    assert "best so far:" in text
    data = cli_json("status", "done", cwd=ws)
    assert data["counts"]["failed"] == 1 and len(data["best_so_far"]) == 6


def test_every_table_command_has_json(ws: Path) -> None:
    from polytune.cli import main

    table_commands = ["check", "status", "groups", "compare", "experiment", "export"]
    for name in table_commands:
        command = main.commands[name]
        assert any("--json" in p.opts for p in command.params), name


def test_light_commands_never_import_heavy_libraries(ws: Path) -> None:
    for args in (
        ["--help"],
        ["status", "done"],
        ["groups"],
        ["stop", "done"],
        ["logs", "done", "1"],
    ):
        code = (
            "import sys\n"
            "from polytune.cli import main\n"
            "try:\n"
            f"    main({args!r})\n"
            "except SystemExit:\n"
            "    pass\n"
            "heavy = sorted(m for m in ('scipy', 'sklearn', 'matplotlib') if m in sys.modules)\n"
            "print('HEAVY', heavy, file=sys.stderr)\n"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code], cwd=ws, capture_output=True, text=True, timeout=60
        )
        assert "HEAVY []" in proc.stderr, (args, proc.stderr)
