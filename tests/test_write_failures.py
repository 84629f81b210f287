"""A disk that fills up or fails during a run: the driver stops with one clear line (exit 1),
the group stays consistent (every JSON file parses, no process of it is left, nothing is
recorded that did not happen), and once the disk is fine again `resume` finishes it with each
configuration run to completion exactly once."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import faults
import pytest
from crash_harness import group_processes, unparseable_json

from polytune.config import load
from polytune.driver import Driver, DriverOptions, NullProgress, new_group
from polytune.errors import StoreError
from polytune.executors.local import LocalExecutor
from polytune.experiment import Status
from polytune.searchers import make_searcher
from polytune.store import GroupStore

N = 6


def make_group(tmp: Path) -> tuple[Any, GroupStore]:
    path = tmp / "g.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            version: 1
            kind: group
            hptuning:
              concurrency: 2
              matrix:
                x: {{range: [0, {N}, 1]}}
            polytune:
              metric: {{name: loss, optimization: minimize}}
            run:
              cmd: >-
                sleep 0.01 &&
                printf '{{"loss": %s}}\\n' {{{{ x }}}} >> "$POLYTUNE_METRICS_FILE" &&
                echo {{{{ x }}}} >> {tmp}/ledger.txt
            """
        )
    )
    config = load([path])
    return config, new_group(config, workspace=tmp / "ws", name="g", stem="g")


def drive(config: Any, store: GroupStore) -> None:
    with store.lock(), LocalExecutor(2) as executor:
        Driver(
            store,
            config,
            executor,
            make_searcher(config),
            seed=1,
            options=DriverOptions(concurrency=2, stop_grace=1.0),
            progress=NullProgress(),
        ).run()


def check_consistent_then_resume(tmp: Path, config: Any, store: GroupStore) -> None:
    assert unparseable_json(store.path) == []
    assert group_processes(store.path) == []
    for exp in store.experiments():  # nothing claims success that the command did not report
        if exp.status is Status.SUCCEEDED:
            assert str(exp.params["x"]) in (tmp / "ledger.txt").read_text().split()
    drive(config, store)
    exps = store.experiments()
    assert [e.status for e in exps] == [Status.SUCCEEDED] * N
    assert sorted(e.params["x"] for e in exps) == list(range(N))
    ledger = Counter((tmp / "ledger.txt").read_text().split())
    # Each command completed exactly once, except in the one case no tuner can tell apart: the
    # stop's TERM landed after the command's last act (the ledger line) and before its shell
    # exited (no exit status). Then the attempt was recorded as stopped and ran again.
    for exp in exps:
        extra = ledger[str(exp.params["x"])] - 1
        killed_late = [
            a
            for a in exp.attempts[:-1]
            if a["status"] == "stopped"
            and "exited" not in _status_of(store, exp.id, a["attempt"], exp.attempt)
        ]
        assert 0 <= extra <= len(killed_late), (exp.id, ledger, exp.attempts)
    assert set(ledger) == {str(x) for x in range(N)}


def _status_of(store: GroupStore, exp_id: int, attempt: int, last: int) -> str:
    """The command.status text of one attempt (earlier attempts' files are set aside)."""
    exp_dir = store.paths(exp_id).dir
    path = exp_dir / "command.status" if attempt == last else exp_dir / f"attempt-{attempt}"
    if path.is_dir():
        path = path / "command.status"
    return path.read_text() if path.exists() else ""


@pytest.mark.parametrize(
    ("op", "after", "err"),
    [
        ("write", 0, errno.ENOSPC),  # the very first record write of the run
        ("write", 3, errno.ENOSPC),
        ("write", 9, errno.ENOSPC),
        ("write", 17, errno.EIO),
        ("replace", 1, errno.ENOSPC),
        ("replace", 6, errno.EIO),
        ("replace", 14, errno.ENOSPC),
        ("mkdir", 2, errno.ENOSPC),  # a new experiment's directory
        ("mkdir", 5, errno.EDQUOT),
        ("fsync", 0, errno.EIO),  # on the background sync thread
        ("fsync", 4, errno.EIO),
        ("fsync", 11, errno.EIO),
    ],
)
def test_a_write_failure_stops_the_run_consistently(
    tmp_path: Path, op: str, after: int, err: int
) -> None:
    config, store = make_group(tmp_path)
    seen = faults.install(str(store.path), op, after, err)
    try:
        with pytest.raises(StoreError) as info:
            drive(config, store)
    finally:
        faults.uninstall()
    assert seen["failed"] >= 1
    if op == "fsync" and after >= 4:
        assert "polytune-fsync" in seen["threads"]  # raised on the background sync thread
    message = str(info.value)
    assert os.strerror(err) in message and "\n" not in message
    # (a failure while taking the lock happens before the run: nothing to resume yet)
    assert "polytune resume g" in message or "driver.json" in message
    check_consistent_then_resume(tmp_path, config, store)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("op", "after", "err"), [("write", 6, errno.ENOSPC), ("fsync", 8, errno.EIO)]
)
def test_the_cli_says_it_in_one_line(tmp_path: Path, op: str, after: int, err: int) -> None:
    config, store = make_group(tmp_path)
    proc = subprocess.run(
        [sys.executable, str(Path(faults.__file__)), "resume", "g", "--dir", str(tmp_path / "ws")],
        env={**os.environ, "POLYTUNE_TEST_FAULT": f"{store.path}:{op}:{after}:{err}"},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    assert os.strerror(err) in lines[0] and "polytune resume g" in lines[0]
    assert json.loads((store.path / "group.json").read_text())["status"] in ("created", "running")
    check_consistent_then_resume(tmp_path, config, store)


@pytest.mark.slow
@pytest.mark.parametrize("op", faults.OPS)
def test_a_sweep_of_failure_points(tmp_path: Path, op: str) -> None:
    """The failure from the n-th call on, for every n until the whole run fits in n calls."""
    for after in range(200):
        tmp = tmp_path / f"n{after}"
        tmp.mkdir()
        config, store = make_group(tmp)
        seen = faults.install(str(store.path), op, after, errno.ENOSPC)
        try:
            drive(config, store)
        except StoreError as exc:
            assert "\n" not in str(exc)
        finally:
            faults.uninstall()
        check_consistent_then_resume(tmp, config, store)
        if not seen["failed"]:
            break
