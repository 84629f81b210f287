"""Crash loops against real drivers: start a group, SIGKILL its driver at random moments,
resume, repeat; then check that no work was lost or done twice.

Shared by ``tests/test_crash.py`` (short loops, in CI) and ``benchmarks/crash_loop.py`` (long
loops that print figures). Every experiment's command appends one line to a *ledger* file as its
last act (``<key> <id> <attempt>``), so "ran to completion" is observable from outside polytune:
the ledger must name each requested configuration exactly once, and the group's records must say
exactly those succeeded.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FIDELITY = Path(__file__).resolve().parent / "jobs" / "fidelity.py"

#: What each kind of group runs. ``{ledger}`` is the ledger file; ``{n}`` the requested count.
_FILES = {
    # Random search: a shell-only command (starts in ~1 ms, so the driver launches and records
    # experiments as fast as it can: the kills land in every phase of its loop).
    "random": """
        version: 1
        kind: group
        hptuning:
          concurrency: {concurrency}
          seed: {seed}
          random_search:
            n_experiments: {n}
          matrix:
            x: {{uniform: [0, 1]}}
            s: {{uniform: [0, {max_sleep}]}}
        polytune:
          metric: {{name: loss, optimization: minimize}}
          stop_grace: 2
        run:
          cmd: >-
            sleep {{{{ s }}}} &&
            printf '{{"loss": %s}}\\n' {{{{ x }}}} >> "$POLYTUNE_METRICS_FILE" &&
            echo "{{{{ x }}}} $POLYTUNE_EXPERIMENT_ID $POLYTUNE_ATTEMPT" >> {ledger}
        """,
    # Hyperband: rungs promote the best configurations with more epochs; a (configuration,
    # epochs) pair must complete exactly once, and no promotion may be lost or doubled.
    "hyperband": """
        version: 1
        kind: group
        hptuning:
          concurrency: {concurrency}
          seed: {seed}
          hyperband:
            max_iter: {max_iter}
            eta: 3
            resource: {{name: epochs, type: int}}
            metric: {{name: loss, optimization: minimize}}
            resume: false
          matrix:
            x: {{uniform: [0, 6]}}
            s: {{uniform: [0, {max_sleep}]}}
        polytune:
          stop_grace: 2
        run:
          cmd: >-
            sleep {{{{ s }}}} &&
            printf '{{"loss": %s}}\\n' "$(echo "({{{{ x }}}} - 3)^2 + 1/{{{{ epochs }}}}" | bc -l)"
            >> "$POLYTUNE_METRICS_FILE" &&
            echo "{{{{ x }}}}/{{{{ epochs }}}} $POLYTUNE_EXPERIMENT_ID $POLYTUNE_ATTEMPT" >> {ledger}
        """,
    # Bayesian optimization: suggestions depend on the metrics of finished experiments.
    "bo": """
        version: 1
        kind: group
        hptuning:
          concurrency: {concurrency}
          seed: {seed}
          bo:
            n_iterations: {n_iter}
            n_initial_trials: {n_init}
            metric: {{name: loss, optimization: minimize}}
            utility_function:
              acquisition_function: ei
          matrix:
            x: {{uniform: [0, 1]}}
            s: {{uniform: [0, {max_sleep}]}}
        polytune:
          stop_grace: 2
        run:
          cmd: >-
            sleep {{{{ s }}}} &&
            printf '{{"loss": %s}}\\n' {{{{ x }}}} >> "$POLYTUNE_METRICS_FILE" &&
            echo "{{{{ x }}}} $POLYTUNE_EXPERIMENT_ID $POLYTUNE_ATTEMPT" >> {ledger}
        """,
}


def write_group_file(
    workdir: Path,
    kind: str = "random",
    *,
    n: int = 30,
    concurrency: int = 2,
    seed: int = 7,
    max_sleep: float = 0.15,
) -> Path:
    """The polyaxonfile of a crash-loop group of ``kind`` in ``workdir`` (ledger beside it)."""
    text = _FILES[kind].format(
        concurrency=concurrency,
        seed=seed,
        n=n,
        max_sleep=max_sleep,
        n_init=max(2, n // 3),
        n_iter=max(1, n - max(2, n // 3)),
        max_iter=9 if n <= 30 else 27 if n <= 120 else 81,
        ledger=workdir / "ledger.txt",
    )
    path = workdir / f"{kind}.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def cli(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "polytune", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def start_cli(*args: str, cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "polytune", *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # like a driver started from its own terminal
    )


def group_processes(group_dir: Path) -> list[int]:
    """Live processes started for this group: their environment names the group directory
    (POLYTUNE_GROUP_DIR), which every experiment's command and its children inherit."""
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
        if needle in env and state not in (b"Z", b"X"):
            found.append(int(name))
    return found


def unparseable_json(group_dir: Path) -> list[str]:
    """Every ``*.json`` file of the group directory that does not parse."""
    bad = []
    for path in group_dir.rglob("*.json"):
        try:
            json.loads(path.read_bytes())
        except (ValueError, OSError) as e:
            bad.append(f"{path}: {e}")
    return bad


@dataclass
class Figures:
    kind: str
    requested: int
    kills: int = 0
    kills_while_running: int = 0
    drivers_started: int = 0
    lost_attempts: int = 0
    recovered_from_exit_status: int = 0
    rerun_experiments: int = 0
    wall_seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    ledger_lines: int = 0
    records: int = 0

    def summary(self) -> str:
        return (
            f"{self.kind}: {self.requested} requested, {self.records} records, "
            f"{self.ledger_lines} ledger lines; {self.kills} SIGKILLs "
            f"({self.kills_while_running} with experiments running) over "
            f"{self.drivers_started} drivers; {self.lost_attempts} attempts lost and rerun, "
            f"{self.recovered_from_exit_status} results recovered from the exit status, "
            f"{self.rerun_experiments} experiments with more than one attempt; "
            f"{self.wall_seconds:.1f} s; problems: {len(self.problems)}"
        )


def _wait_for_driver(group_dir: Path, driver: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Until ``driver`` holds the group's lock (its pid in driver.json) or has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and driver.poll() is None:
        try:
            if json.loads((group_dir / "driver.json").read_bytes()).get("pid") == driver.pid:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.01)


def _records(group_dir: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    exps = group_dir / "experiments"
    if not exps.is_dir():
        return out
    for d in sorted(exps.iterdir()):
        if d.name.isdigit():
            try:
                out.append(json.loads((d / "experiment.json").read_bytes()))
            except (OSError, ValueError):
                out.append({"id": int(d.name), "status": "unreadable"})
    return out


def crash_loop(
    workdir: Path,
    kind: str = "random",
    *,
    n: int = 30,
    kills: int = 15,
    seed: int = 7,
    rng: random.Random | None = None,
    max_delay: float = 1.5,
    max_sleep: float = 0.15,
    concurrency: int = 2,
    compare: bool = False,
) -> Figures:
    """Run the loop and return what happened; ``Figures.problems`` lists every violated
    guarantee (empty when all hold)."""
    rng = rng or random.Random(seed)
    path = write_group_file(
        workdir, kind, n=n, concurrency=concurrency, seed=seed, max_sleep=max_sleep
    )
    ledger = workdir / "ledger.txt"
    ledger.touch()
    figures = Figures(kind=kind, requested=n)
    name = f"{kind}-crash"
    started = time.monotonic()
    group_dir = workdir / "polytune-groups" / name
    args: tuple[str, ...] = ("run", str(path), "--name", name, "--quiet")
    for _ in range(kills):
        if group_dir.joinpath("group.json").exists():
            args = ("resume", name, "--quiet")
        driver = start_cli(*args, cwd=workdir)
        figures.drivers_started += 1
        if rng.random() < 0.1:
            time.sleep(rng.uniform(0.0, 0.5))  # while it starts (imports, lock, recovery)
        else:
            # Python's imports take a second or more on a loaded machine: count from the moment
            # the driver holds the lock, so that the kills land in its loop.
            _wait_for_driver(group_dir, driver)
            time.sleep(rng.uniform(0.0, max_delay))
        if driver.poll() is not None:
            _, err = driver.communicate()
            if driver.returncode != 0 and b"busy" not in err:
                figures.problems.append(f"driver exited {driver.returncode}: {err.decode()!r}")
            if driver.returncode == 0:
                break  # the group is done before the next kill
            continue
        running = any(r.get("status") == "running" for r in _records(group_dir))
        driver.send_signal(signal.SIGKILL)
        driver.communicate()
        figures.kills += 1
        figures.kills_while_running += running
    # The last driver runs to the end.
    final = cli("resume", name, "--json", cwd=workdir)
    figures.drivers_started += 1
    figures.wall_seconds = time.monotonic() - started
    if final.returncode != 0:
        figures.problems.append(f"final resume exited {final.returncode}: {final.stderr.strip()}")
    else:
        status = json.loads(final.stdout)["status"]
        if status != "done":
            figures.problems.append(f"final resume ended {status!r}, not 'done'")
    figures.problems.extend(check_group(group_dir, ledger, kind, n, figures))
    if compare:
        # The same group run once without a kill: the same experiments (configuration, and for
        # Hyperband its bracket, rung and resource: no promotion lost or doubled). BO is left
        # out: its suggestions depend on which results are in when it asks, i.e. on timing.
        ref_dir = workdir / "reference"
        ref_dir.mkdir()
        reference = reference_configs(
            ref_dir, kind, n=n, concurrency=concurrency, seed=seed, max_sleep=max_sleep
        )
        crashed = final_configs(workdir, kind)
        if sorted(crashed) != sorted(reference):
            problems = sorted(set(crashed) ^ set(reference))[:5]
            figures.problems.append(f"differs from an uninterrupted run, e.g. {problems}")
    return figures


def check_group(group_dir: Path, ledger: Path, kind: str, n: int, figures: Figures) -> list[str]:
    """The guarantees, as a list of violations."""
    problems = []
    recs = _records(group_dir)
    figures.records = len(recs)
    statuses = Counter(r.get("status") for r in recs)
    succeeded = [r for r in recs if r.get("status") == "succeeded"]
    if kind in ("random", "bo") and (len(recs) != n or len(succeeded) != n):
        problems.append(f"expected {n} succeeded experiments, got {dict(statuses)}")
    if kind == "hyperband":
        # (how many: compared with an uninterrupted run, see crash_loop's ``compare``)
        figures.requested = len(recs)
        if statuses.keys() - {"succeeded"}:
            problems.append(f"every Hyperband experiment must succeed, got {dict(statuses)}")
    lines = ledger.read_text().splitlines()
    figures.ledger_lines = len(lines)
    ids = Counter(int(line.split()[1]) for line in lines)
    doubled = {i: c for i, c in ids.items() if c > 1}
    if doubled:
        problems.append(f"experiments that ran to completion more than once: {doubled}")
    if kind != "bo":  # distinct configurations (BO may suggest a point again, on purpose or not)
        keys = Counter(line.split()[0] for line in lines)
        doubled_keys = {k: c for k, c in keys.items() if c > 1}
        if doubled_keys:
            problems.append(f"configurations that ran to completion twice: {doubled_keys}")
    recorded = {r["id"] for r in succeeded}
    if set(ids) != recorded:
        problems.append(
            "ledger and records disagree: completed but not recorded "
            f"{sorted(set(ids) - recorded)}, recorded but never completed "
            f"{sorted(recorded - set(ids))}"
        )
    for line in lines:
        key, exp_id, attempt = line.split()
        rec = next((r for r in recs if r.get("id") == int(exp_id)), None)
        if rec is None or rec.get("attempt") != int(attempt) or _key(kind, rec) != key:
            problems.append(f"ledger line {line!r} is not the recorded attempt of {exp_id}")
    problems.extend(f"unparseable JSON: {b}" for b in unparseable_json(group_dir))
    leftover = group_processes(group_dir)
    if leftover:
        problems.append(f"processes of the group still running: {leftover}")
    for r in recs:
        attempts = r.get("attempts") or []
        figures.lost_attempts += sum(a.get("status") == "lost" for a in attempts)
        figures.recovered_from_exit_status += sum(bool(a.get("recovered")) for a in attempts)
        figures.rerun_experiments += r.get("attempt", 0) > 1
    return problems


def _key(kind: str, rec: dict[str, Any]) -> str:
    x = rec.get("params", {}).get("x")
    if kind == "hyperband":
        return f"{x}/{rec.get('params', {}).get('epochs')}"
    return str(x)


def reference_configs(workdir: Path, kind: str, **kw: Any) -> list[tuple[str, str]]:
    """(key, bracket/rung) of each experiment of an uninterrupted run of the same group."""
    path = write_group_file(workdir, kind, **kw)
    proc = cli("run", str(path), "--name", "reference", "--quiet", cwd=workdir)
    if proc.returncode != 0:
        raise AssertionError(proc.stderr)
    return _signature(kind, _records(workdir / "polytune-groups" / "reference"))


def final_configs(workdir: Path, kind: str) -> list[tuple[str, str]]:
    return _signature(kind, _records(workdir / "polytune-groups" / f"{kind}-crash"))


def _signature(kind: str, recs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    out = []
    for r in recs:
        meta = r.get("meta") or {}
        where = {k: meta.get(k) for k in ("bracket", "rung", "resource")}
        out.append((_key(kind, r), json.dumps(where, sort_keys=True)))
    return out
