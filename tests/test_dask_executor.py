"""The Dask executor against a real cluster: a ``dask scheduler`` and two ``dask worker``
processes on 127.0.0.1 (tests/dask_cluster.py starts them and tears them down by pid), driven by
the real CLI. A worker is killed mid-group; the driver is killed and resumed (reattach)."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("distributed") is None,
        reason="the Dask executor needs `distributed` (pip install 'polytune[dask]')",
    ),
]

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dask_cluster import LocalCluster, local_cluster  # noqa: E402

JOB = Path(__file__).resolve().parent / "jobs" / "stamp_job.py"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with local_cluster(tmp_path_factory.mktemp("dask"), workers=2, nthreads=2) as c:
        yield c


def group_file(tmp: Path, *, n: int, steps: int, sleep: float, seed: int = 5) -> Path:
    path = tmp / "g.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            version: 1
            kind: group
            hptuning:
              concurrency: 4
              seed: {seed}
              random_search: {{n_experiments: {n}}}
              matrix:
                x: {{uniform: [0, 4]}}
            polytune:
              metric: {{name: loss, optimization: minimize}}
            run:
              cmd: {sys.executable} {JOB} --x={{{{ x }}}} --stamps={tmp}/stamps.jsonl --sleep={sleep} --steps={steps}
            """
        )
    )
    return path


def polytune(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "polytune", *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def stamps(tmp: Path) -> list[dict[str, Any]]:
    path = tmp / "stamps.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def running_stamps(tmp: Path) -> list[dict[str, Any]]:
    ended = {(s["exp"], s["attempt"]) for s in stamps(tmp) if s["event"] == "end"}
    return [
        s for s in stamps(tmp) if s["event"] == "start" and (s["exp"], s["attempt"]) not in ended
    ]


def ancestors(pid: int, depth: int = 4) -> list[int]:
    out = []
    for _ in range(depth):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                data = f.read()
        except OSError:
            break
        pid = int(data[data.rfind(b")") + 2 :].split()[1])
        out.append(pid)
    return out


def live_processes_of(group_dir: Path) -> list[int]:
    """Processes (not zombies) whose environment names this group: commands, shells, keepers."""
    needle = f"POLYTUNE_GROUP_DIR={group_dir}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read().split(b"\0")
            with open(f"/proc/{name}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in env and state != b"Z":
            found.append(int(name))
    return found


def records(tmp: Path) -> list[dict[str, Any]]:
    return [
        json.loads(p.read_text())
        for p in sorted((tmp / "polytune-groups").glob("*/experiments/*/experiment.json"))
    ]


def wait_until(cond: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_worker_killed_mid_group(cluster: LocalCluster, tmp_path: Path) -> None:
    n = 10
    group_file(tmp_path, n=n, steps=4, sleep=0.3)
    driver = polytune(
        "run", "g.yaml", "--name", "wk", "--scheduler", cluster.address, "--json", cwd=tmp_path
    )
    try:
        victim_pid = cluster.workers["w1"].pid

        def on_victim() -> list[dict[str, Any]]:
            return [s for s in running_stamps(tmp_path) if victim_pid in ancestors(s["pid"])]

        victims = wait_until(on_victim, 30, "an experiment on worker w1")
        done_before = {s["exp"] for s in stamps(tmp_path) if s["event"] == "end"}
        cluster.kill_worker("w1")
        # Losing the worker takes its experiments' processes with it (keeper's PDEATHSIG).
        wait_until(
            lambda: all(
                not os.path.exists(f"/proc/{v['pid']}") or _zombie(v["pid"]) for v in victims
            ),
            5,
            "the lost experiments' processes to die",
        )
        out, err = driver.communicate(timeout=60)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
        cluster.start_worker("w3")
    assert driver.returncode == 0, err
    result = json.loads(out)
    assert result["counts"]["succeeded"] == n
    recs = records(tmp_path)
    assert [r["id"] for r in recs] == list(range(1, n + 1))  # exactly n experiments
    lost_ids = {v["exp"] for v in victims}
    for r in recs:
        statuses = [a["status"] for a in r["attempts"]]
        if r["id"] in lost_ids:
            assert statuses[0] == "lost" and statuses[-1] == "succeeded", r
            assert r["attempt"] >= 2
        assert statuses.count("succeeded") == 1
    # No finished experiment ran again: one "end" per experiment, and those that had ended
    # before the kill were started once.
    ends = [s["exp"] for s in stamps(tmp_path) if s["event"] == "end"]
    assert sorted(ends) == list(range(1, n + 1))
    starts = [s["exp"] for s in stamps(tmp_path) if s["event"] == "start"]
    assert all(starts.count(e) == 1 for e in done_before)
    group_dir = next((tmp_path / "polytune-groups").iterdir())
    assert live_processes_of(group_dir) == []


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
    except OSError:
        return True


def test_driver_killed_then_resumed_reattaches(cluster: LocalCluster, tmp_path: Path) -> None:
    cluster.wait_for_workers(2)
    n = 6
    group_file(tmp_path, n=n, steps=8, sleep=0.4, seed=9)
    driver = polytune(
        "run", "g.yaml", "--name", "rt", "--scheduler", cluster.address, "-q", cwd=tmp_path
    )
    try:
        wait_until(lambda: len(running_stamps(tmp_path)) >= 4, 30, "four running experiments")
        running_before = {(s["exp"], s["attempt"]) for s in running_stamps(tmp_path)}
        driver.send_signal(signal.SIGKILL)  # the driver only: its experiments live on workers
        driver.wait()
    finally:
        if driver.poll() is None:
            driver.kill()
        driver.communicate()
    # The experiments go on without a driver.
    time.sleep(0.5)
    assert {(s["exp"], s["attempt"]) for s in running_stamps(tmp_path)} & running_before
    resume = polytune("resume", "rt", "--json", cwd=tmp_path)
    out, err = resume.communicate(timeout=60)
    assert resume.returncode == 0, err
    assert json.loads(out)["counts"]["succeeded"] == n
    recs = records(tmp_path)
    assert [r["id"] for r in recs] == list(range(1, n + 1))
    by_id = {r["id"]: r for r in recs}
    for exp_id, attempt in running_before:
        r = by_id[exp_id]
        # Reattached, not rerun: still its first attempt, never lost.
        assert r["attempt"] == attempt == 1, r
        assert [a["status"] for a in r["attempts"]] == ["succeeded"], r
        assert r["metrics"]["loss"] == pytest.approx((r["params"]["x"] - 2) ** 2 + 1 / 8)
    starts = [s["exp"] for s in stamps(tmp_path) if s["event"] == "start"]
    assert sorted(starts) == list(range(1, n + 1))  # each command ran exactly once
    group_dir = next((tmp_path / "polytune-groups").iterdir())
    assert live_processes_of(group_dir) == []
