"""SIGINT, SIGTERM and SIGHUP to a real driver each leave a resumable group and no process of
it; a second Ctrl-C skips the stop grace and is still consistent."""

from __future__ import annotations

import json
import signal
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from crash_harness import cli, group_processes, start_cli

pytestmark = pytest.mark.slow


def slow_group(tmp: Path, *, n: int = 5, ignore_term: bool = False, grace: float = 10) -> Path:
    """While ``tmp/slow`` exists each command sleeps 30 s (ignoring SIGTERM if asked); without
    it, it completes at once. Each completion appends to ``tmp/ledger.txt``."""
    (tmp / "slow").touch()
    trap = "trap '' TERM; " if ignore_term else ""
    path = tmp / "g.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            version: 1
            kind: group
            hptuning:
              concurrency: 2
              matrix:
                x: {{range: [0, {n}, 1]}}
            polytune:
              stop_grace: {grace}
            run:
              cmd: >-
                {trap}if [ -e {tmp}/slow ]; then sleep 30; fi &&
                echo "{{{{ x }}}}" >> {tmp}/ledger.txt
            """
        )
    )
    return path


def records(group: Path) -> list[dict[str, Any]]:
    return [
        json.loads(p.read_text()) for p in sorted(group.glob("experiments/[0-9]*/experiment.json"))
    ]


def wait_running(group: Path, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            running = sum(r["status"] == "running" for r in records(group))
            if running == count and len(group_processes(group)) >= count:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"{count} experiments never ran")


def assert_resumable(tmp: Path, group: Path, n: int) -> None:
    recs = records(group)
    assert [r["status"] for r in recs] == ["stopped", "stopped"]
    assert all(r["reason"].startswith("interrupted") for r in recs)
    assert group_processes(group) == []
    state = json.loads(cli("status", "g", "--json", cwd=tmp).stdout)["state"]
    assert state == "stopped"
    (tmp / "slow").unlink()
    done = cli("resume", "g", "--json", cwd=tmp)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "done"
    recs = records(group)
    assert [r["status"] for r in recs] == ["succeeded"] * n
    assert [r["attempt"] for r in recs[:2]] == [2, 2]  # the interrupted ones, rerun once
    ledger = (tmp / "ledger.txt").read_text().split()
    assert sorted(ledger) == [str(i) for i in range(n)]  # each completed exactly once
    assert group_processes(group) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_stops_the_group_resumably(tmp_path: Path, signum: int) -> None:
    path = slow_group(tmp_path, n=4)
    driver = start_cli("run", str(path), "--name", "g", cwd=tmp_path)
    group = tmp_path / "polytune-groups" / "g"
    wait_running(group, 2)
    started = time.monotonic()
    driver.send_signal(signum)
    _, err = driver.communicate(timeout=60)
    assert driver.returncode == 130, err
    assert time.monotonic() - started < 8  # `sleep` dies of SIGTERM at once, no grace needed
    assert b"Traceback" not in err
    assert_resumable(tmp_path, group, 4)


def test_a_second_ctrl_c_skips_the_grace(tmp_path: Path) -> None:
    path = slow_group(tmp_path, n=4, ignore_term=True, grace=60)
    driver = start_cli("run", str(path), "--name", "g", cwd=tmp_path)
    group = tmp_path / "polytune-groups" / "g"
    wait_running(group, 2)
    driver.send_signal(signal.SIGINT)
    time.sleep(1.0)
    assert driver.poll() is None, "the first Ctrl-C waits for the grace (the commands ignore TERM)"
    started = time.monotonic()
    driver.send_signal(signal.SIGINT)
    _, err = driver.communicate(timeout=60)
    assert driver.returncode == 130, err
    assert time.monotonic() - started < 5
    assert b"Traceback" not in err
    assert_resumable(tmp_path, group, 4)
