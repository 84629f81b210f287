"""End-to-end tests of `polytune run / status / stop / resume / restart` with real drivers,
real subprocesses and real group directories."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

JOB = Path(__file__).resolve().parent / "jobs" / "job.py"


def cli(
    *args: str, cwd: Path, timeout: float = 120, check: bool = False
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "polytune", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def start_cli(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "polytune", *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(textwrap.dedent(text))
    return path


def grid_file(
    tmp: Path,
    *,
    concurrency: int = 2,
    xs: str = "[1, 2, 3, 4, 5, 6]",
    extra: str = "",
    cmd_extra: str = "",
) -> Path:
    return write(
        tmp,
        "group.yaml",
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
        {extra}
        run:
          cmd: {sys.executable} {JOB} --x={{{{ x }}}} --stamps={tmp}/stamps.txt {cmd_extra}
        """,
    )


def random_file(
    tmp: Path, n: int = 12, concurrency: int = 2, sleep: float = 0.3, seed: int = 11
) -> Path:
    return write(
        tmp,
        "random.yaml",
        f"""
        version: 1
        kind: group
        hptuning:
          concurrency: {concurrency}
          seed: {seed}
          random_search:
            n_experiments: {n}
          matrix:
            x:
              uniform: [0, 6]
            y:
              values: [a, b, c]
        polytune:
          metric: {{name: loss, optimization: minimize}}
        run:
          cmd: {sys.executable} {JOB} --x={{{{ x }}}} --y={{{{ y }}}} --sleep={sleep} --steps=2
        """,
    )


def group_dirs(tmp: Path) -> list[Path]:
    ws = tmp / "polytune-groups"
    return sorted(p for p in ws.iterdir() if p.is_dir()) if ws.exists() else []


def records(group: Path) -> list[dict[str, Any]]:
    out = []
    for d in sorted((group / "experiments").iterdir()):
        if not d.name.isdigit():
            continue  # the store's staging folders of experiments being created
        out.append(json.loads((d / "experiment.json").read_text()))
    return out


def status_json(tmp: Path, *extra: str) -> dict[str, Any]:
    proc = cli("status", "--json", *extra, cwd=tmp, check=True)
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def wait_for(predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


# ------------------------------------------------------------------------------------------


def test_grid_runs_every_point_within_concurrency(tmp_path: Path) -> None:
    path = grid_file(tmp_path, concurrency=2, cmd_extra="--sleep=0.3")
    proc = cli("run", str(path), "--json", cwd=tmp_path, check=True)
    out = json.loads(proc.stdout)
    assert out["status"] == "done"
    assert out["counts"]["succeeded"] == 6
    [group] = group_dirs(tmp_path)
    assert group.name == "group-1"
    recs = records(group)
    assert [r["config"]["x"] for r in recs] == [1, 2, 3, 4, 5, 6]
    assert all(r["status"] == "succeeded" and r["exit_code"] == 0 for r in recs)
    # concurrency measured from the experiments' own stamps
    stamps = [
        tuple(map(float, line.split()[:2]))
        for line in (tmp_path / "stamps.txt").read_text().splitlines()
    ]
    assert len(stamps) == 6
    events = sorted([(s, 1) for s, _ in stamps] + [(e, -1) for _, e in stamps])
    live = peak = 0
    for _, delta in events:
        live += delta
        peak = max(peak, live)
    assert peak <= 2
    # the best by loss is x=3 and the metrics were read
    assert out["best"]["params"]["x"] == 3
    assert recs[2]["metrics"]["loss"] == pytest.approx(1.0)
    # a second run gets a new unique name
    cli("run", str(path), "--quiet", cwd=tmp_path, check=True)
    assert [g.name for g in group_dirs(tmp_path)] == ["group-1", "group-2"]


def test_params_reach_command_and_environment(tmp_path: Path) -> None:
    hostile = 'it\'s $(touch pwned) "q" ; echo x'
    path = write(
        tmp_path,
        "g.yaml",
        f"""
        version: 1
        kind: group
        hptuning:
          matrix:
            x:
              values: [7]
            text:
              values: [{json.dumps(hostile)}, "two words"]
        params:
          y: 1.5
        run:
          cmd: {sys.executable} {JOB} --x={{{{ x }}}} --y "{{{{ y }}}}" --text {{{{ text }}}}
        """,
    )
    cli("run", str(path), "--quiet", cwd=tmp_path, check=True)
    [group] = group_dirs(tmp_path)
    jobs = [
        json.loads((group / "experiments" / d / "job.json").read_text())
        for d in ("000001", "000002")
    ]
    assert [j["text"] for j in jobs] == [hostile, "two words"]
    assert not (tmp_path / "pwned").exists()
    assert jobs[0]["x"] == "7" and jobs[0]["y"] == "1.5"
    assert json.loads(jobs[0]["params_env"]) == {"y": 1.5, "x": 7, "text": hostile}
    assert jobs[0]["polyaxon_params_env"] == jobs[0]["params_env"]
    assert jobs[0]["env_x"] == "7"
    assert jobs[0]["cwd"] == str(tmp_path)
    assert jobs[0]["outputs"] == str(group / "experiments" / "000001" / "outputs")


def test_random_mapping_counts_and_seed(tmp_path: Path) -> None:
    path = random_file(tmp_path, n=5, sleep=0.0)
    cli("run", str(path), "--quiet", cwd=tmp_path, check=True)
    cli("run", str(path), "--quiet", cwd=tmp_path, check=True)
    a, b = group_dirs(tmp_path)
    ca = [r["config"] for r in records(a)]
    cb = [r["config"] for r in records(b)]
    assert len(ca) == 5 and ca == cb  # same seed → same configurations
    assert all(0 <= c["x"] < 6 and c["y"] in "abc" for c in ca)
    mapping = write(
        tmp_path,
        "m.yaml",
        f"""
        version: 1.1
        kind: operation
        matrix:
          kind: mapping
          values:
            - {{x: 1}}
            - {{x: 5}}
            - {{x: 3}}
        component:
          run:
            kind: job
            container:
              command: [{sys.executable}, {JOB}]
              args: ["--x={{{{ x }}}}"]
        """,
    )
    proc = cli("run", str(mapping), "--json", cwd=tmp_path, check=True)
    group = Path(json.loads(proc.stdout)["path"])
    assert [r["config"] for r in records(group)] == [{"x": 1}, {"x": 5}, {"x": 3}]


def test_failures_timeouts_and_restarts(tmp_path: Path) -> None:
    path = grid_file(tmp_path, xs="[1, 2, 3]", cmd_extra="--fail-if-x=2")
    proc = cli("run", str(path), "--json", "--max-restarts", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["counts"]["failed"] == 1 and out["counts"]["succeeded"] == 2
    [group] = group_dirs(tmp_path)
    failed = records(group)[1]
    assert failed["status"] == "failed" and failed["exit_code"] == 3 and failed["attempt"] == 2
    assert [a["status"] for a in failed["attempts"]] == ["failed", "failed"]
    assert (
        (group / "experiments" / "000002" / "attempt-1" / "stderr.log")
        .read_text()
        .startswith("failing on purpose")
    )
    # status shows the stderr tail of the failed one
    text = cli("status", cwd=tmp_path, check=True).stdout
    assert "failing on purpose" in text
    # timeout
    hang = grid_file(tmp_path, xs="[1]", cmd_extra="--hang")
    proc = cli("run", str(hang), "--json", "--timeout", "0.5", cwd=tmp_path)
    out = json.loads(proc.stdout)
    assert out["counts"]["failed"] == 1
    latest = status_json(tmp_path)
    assert "timeout" in latest["experiments"][0]["reason"]


def test_kill_driver_then_resume_matches_uninterrupted(tmp_path: Path) -> None:
    ref_dir = tmp_path / "ref"
    ref_dir.mkdir()
    cli("run", str(random_file(ref_dir, n=10, sleep=0.0)), "--quiet", cwd=ref_dir, check=True)
    [ref_group] = group_dirs(ref_dir)
    expected = [r["config"] for r in records(ref_group)]

    path = random_file(tmp_path, n=10, sleep=0.6)
    driver = start_cli("run", str(path), "--quiet", cwd=tmp_path)
    wait_for(
        lambda: (
            len(group_dirs(tmp_path)) == 1
            and sum(r["status"] == "succeeded" for r in records(group_dirs(tmp_path)[0])) >= 3
        )
    )
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and its experiments' sessions are separate
    driver.wait()
    [group] = group_dirs(tmp_path)
    before = {r["id"]: r for r in records(group)}
    finished_before = {i: r for i, r in before.items() if r["status"] == "succeeded"}
    state = status_json(tmp_path)
    assert state["state"].startswith("interrupted")
    proc = cli("resume", group.name, "--json", cwd=tmp_path, check=True)
    assert json.loads(proc.stdout)["status"] == "done"
    after = records(group)
    assert len(after) == 10
    assert [r["config"] for r in after] == expected
    assert all(r["status"] == "succeeded" for r in after)
    for i, r in finished_before.items():  # finished experiments untouched, never rerun
        assert after[i - 1]["attempt"] == r["attempt"] == 1
        assert after[i - 1]["ended_at"] == r["ended_at"]
    # The experiments running at the kill either finished while no driver watched (recorded
    # from their status file, never rerun) or are rerun as a new attempt.
    lost = [r for r in after if any(a["status"] == "lost" for a in r["attempts"])]
    recovered = [r for r in after if any(a.get("recovered") for a in r["attempts"])]
    assert lost or recovered
    assert all(r["attempt"] == 2 for r in lost)
    assert all(r["attempt"] == 1 and len(r["attempts"]) == 1 for r in recovered)


def test_ctrl_c_and_stop_leave_a_resumable_group(tmp_path: Path) -> None:
    path = random_file(tmp_path, n=6, sleep=30)
    driver = start_cli("run", str(path), "--quiet", cwd=tmp_path)
    wait_for(
        lambda: (
            len(group_dirs(tmp_path)) == 1
            and sum(r["status"] == "running" for r in records(group_dirs(tmp_path)[0])) == 2
        )
    )
    [group] = group_dirs(tmp_path)
    # a second driver is refused while the first one is alive
    busy = cli("resume", group.name, cwd=tmp_path)
    assert busy.returncode == 3, busy.stderr
    assert "Error:" in busy.stderr and "Traceback" not in busy.stderr
    # status works while running, without the lock
    state = status_json(tmp_path)
    assert state["state"] == "running" and state["counts"]["running"] == 2
    pgids = [r["executor"]["pgid"] for r in records(group) if r["status"] == "running"]
    driver.send_signal(signal.SIGINT)
    assert driver.wait(timeout=60) == 130
    recs = records(group)
    assert sum(r["status"] == "stopped" for r in recs) == 2
    for pgid in pgids:
        with pytest.raises(ProcessLookupError):
            os.killpg(pgid, 0)
    assert status_json(tmp_path)["state"] == "stopped"

    # resume, then `polytune stop` from another process
    again = start_cli("resume", group.name, "--quiet", cwd=tmp_path)
    wait_for(lambda: sum(r["status"] == "running" for r in records(group)) == 2)
    stopped = cli("stop", group.name, cwd=tmp_path, check=True)
    assert "stopped" in stopped.stdout
    assert again.wait(timeout=60) == 130
    assert status_json(tmp_path)["state"] == "stopped"
    recs = records(group)
    # the interrupted experiments ran again as a second attempt, and nothing else started
    assert len(recs) == 2 and all(r["status"] == "stopped" and r["attempt"] == 2 for r in recs)
    assert all(r["reason"].startswith("interrupted") for r in recs)


def test_second_run_of_same_name_and_bad_inputs(tmp_path: Path) -> None:
    path = grid_file(tmp_path, xs="[1]")
    cli("run", str(path), "--name", "exp", "--quiet", cwd=tmp_path, check=True)
    again = cli("run", str(path), "--name", "exp", cwd=tmp_path)
    assert again.returncode == 2 and "Error:" in again.stderr
    escape = cli("run", str(path), "--name", "../../x", cwd=tmp_path)
    assert escape.returncode == 2 and "Traceback" not in escape.stderr
    bad = write(
        tmp_path, "bad.yaml", "hptuning:\n  matrix:\n    x: {range: [3, 1, 1]}\nrun: {cmd: echo}\n"
    )
    proc = cli("run", str(bad), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "hptuning.matrix.x" in proc.stderr
    missing = cli("status", "nope", cwd=tmp_path)
    assert missing.returncode == 2 and "nope" in missing.stderr


def test_restart_records_a_new_experiment(tmp_path: Path) -> None:
    path = grid_file(tmp_path, xs="[1, 2]")
    cli("run", str(path), "--quiet", cwd=tmp_path, check=True)
    [group] = group_dirs(tmp_path)
    (group / "experiments" / "000001" / "outputs" / "ckpt").write_text("weights")
    proc = cli("restart", group.name, "1", "--copy", "--json", cwd=tmp_path, check=True)
    new = json.loads(proc.stdout)
    assert new["id"] == 3 and new["restart_of"] == 1 and new["status"] == "succeeded"
    assert new["params"] == records(group)[0]["params"]
    assert (group / "experiments" / "000003" / "outputs" / "ckpt").read_text() == "weights"
    assert json.loads((group / "group.json").read_text())["status"] == "done"


def test_status_query_sort_csv_and_groups(tmp_path: Path) -> None:
    path = grid_file(tmp_path)
    cli("run", str(path), "--quiet", cwd=tmp_path, check=True)
    data = status_json(tmp_path, "--query", "metrics.loss:<=2", "--sort", "params.x")
    assert [e["params"]["x"] for e in data["experiments"]] == [2, 3, 4]
    data = status_json(tmp_path, "--top", "2")
    assert [e["params"]["x"] for e in data["experiments"]] == [3, 2]  # best first, ties by id
    assert data["best"]["id"] == 3
    csv_text = cli("status", "--csv", cwd=tmp_path, check=True).stdout
    header = csv_text.splitlines()[0].split(",")
    assert "params.x" in header and "metrics.loss" in header
    assert len(csv_text.splitlines()) == 7
    table = cli("status", cwd=tmp_path, check=True).stdout
    assert "group-1" in table and "best" in table
    groups = json.loads(cli("groups", "--json", cwd=tmp_path, check=True).stdout)
    assert [g["name"] for g in groups] == ["group-1"] and groups[0]["state"] == "done"


def test_status_does_not_import_heavy_numerics(tmp_path: Path) -> None:
    path = grid_file(tmp_path, xs="[1]")
    cli("run", str(path), "--quiet", cwd=tmp_path, check=True)
    code = (
        "import sys\n"
        "from polytune.cli import main\n"
        "try:\n"
        "    main(['status'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('scipy', 'sklearn') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert "HEAVY []" in proc.stdout, proc.stdout + proc.stderr


def test_metrics_scraped_from_stdout_when_asked(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.yaml",
        """
        version: 1
        kind: group
        hptuning:
          matrix:
            x: {values: [1, 2]}
        polytune:
          metric: {name: loss, optimization: minimize}
          stdout_metrics: true
        run:
          cmd: >-
            echo "hello"; echo "loss={{ x }}.5 acc=0.9"; echo 'metrics: loss={{ x }}.25'
        """,
    )
    cli("run", str(path), "--quiet", cwd=tmp_path, check=True)
    data = status_json(tmp_path)
    assert [e["metrics"] for e in data["experiments"]] == [
        {"loss": 1.25, "acc": 0.9},
        {"loss": 2.25, "acc": 0.9},
    ]
