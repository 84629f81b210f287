"""Driver overhead and `status` latency, measured against peers on the same machine, same run.

1. N no-op experiments (`/bin/sh -c true`) through polytune's driver (in process: store, local
   executor, metrics reading, fsync'd results) at concurrency 1 and 2, against a plain loop of
   `subprocess` launches of the same command with the same concurrency. Printed as a ratio
   (target: polytune within 1.3x of the plain loop).
2. `polytune status --json` (a real CLI process) on a generated group of 10,000 experiments,
   against `python -c pass` started the same way (the floor of any CLI), and its absolute time
   (target: under 1 s).

Usage: python benchmarks/overhead.py [--n 200] [--status-n 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from polytune.config import load
from polytune.driver import Driver, DriverOptions, NullProgress, new_group
from polytune.executors.local import LocalExecutor
from polytune.experiment import Experiment, Status
from polytune.searchers import make_searcher
from polytune.store import create_group


def plain_loop(n: int, concurrency: int) -> float:
    """The peer: launch `/bin/sh -c true` n times, `concurrency` at a time, as fast as possible."""
    start = time.perf_counter()
    running: list[subprocess.Popen[bytes]] = []
    launched = 0
    while launched < n or running:
        while launched < n and len(running) < concurrency:
            running.append(
                subprocess.Popen(
                    ["/bin/sh", "-c", "true"],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
            launched += 1
        running[0].wait()
        running = [p for p in running if p.poll() is None]
    return time.perf_counter() - start


def noop_group_file(path: Path, n: int, concurrency: int) -> Path:
    """A grid group of ``n`` no-op experiments (also used by scale.py)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        textwrap.dedent(
            f"""
            version: 1
            kind: group
            hptuning:
              concurrency: {concurrency}
              matrix:
                i: {{range: [0, {n}, 1]}}
            run:
              cmd: "true"
            """
        )
    )
    return path


def polytune_loop(n: int, concurrency: int, workdir: Path) -> float:
    path = noop_group_file(workdir / f"noop-{concurrency}.yaml", n, concurrency)
    config = load([path])
    store = new_group(config, workspace=workdir / "ws", name=None, stem=path.stem)
    start = time.perf_counter()
    with store.lock():
        executor = LocalExecutor(concurrency)
        driver = Driver(
            store,
            config,
            executor,
            make_searcher(config),
            seed=1,
            options=DriverOptions(concurrency=concurrency),
            progress=NullProgress(),
        )
        outcome = driver.run()
        executor.close()
    elapsed = time.perf_counter() - start
    assert outcome.counts["succeeded"] == n, outcome.counts
    return elapsed


def make_big_group(workdir: Path, n: int) -> Path:
    store = create_group(
        workdir / "ws-status",
        "big",
        None,
        {
            "status": "done",
            "algorithm": "random",
            "seed": 1,
            "created_at": time.time(),
            "metric": {"name": "loss", "optimization": "minimize"},
        },
        "",
    )
    store.start_background_sync()  # fsyncs off the loop, as in a driver (10,000 of them)
    for i in range(n):
        exp = store.new_experiment(
            config={"lr": i / n, "act": "relu"},
            params={"lr": i / n, "act": "relu"},
            meta={},
            created_at=time.time(),
        )
        done = Experiment(
            **{
                **exp.__dict__,
                "status": Status.SUCCEEDED,
                "attempt": 1,
                "started_at": 1.0,
                "ended_at": 2.0,
                "exit_code": 0,
                "metrics": {"loss": (i * 7919 % n) / n, "accuracy": i / n},
            }
        )
        store.save(done, durable=False)
    store.stop_background_sync()
    return store.path


def time_cmd(args: list[str], cwd: Path, repeat: int) -> tuple[float, float]:
    """Median wall time and median CPU time (user + system of the child) of ``args``: the
    machine is shared, and CPU time is what a loaded machine does not inflate much."""
    times, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(args, cwd=cwd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return statistics.median(times), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--status-n", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print(f"driver overhead: {args.n} no-op experiments, median of {args.repeat} runs")
        print(
            f"{'concurrency':>11} {'plain loop s':>13} {'polytune s':>11} {'ratio':>7} {'per exp ms':>11}"
        )
        for concurrency in (1, 2):
            plain = statistics.median(plain_loop(args.n, concurrency) for _ in range(args.repeat))
            ours = statistics.median(
                polytune_loop(args.n, concurrency, work / f"r{i}") for i in range(args.repeat)
            )
            per = (ours - plain) / args.n * 1000
            print(
                f"{concurrency:>11} {plain:>13.3f} {ours:>11.3f} {ours / plain:>7.2f} {per:>11.2f}"
            )
        group = make_big_group(work, args.status_n)
        floor = time_cmd([sys.executable, "-c", "pass"], work, args.repeat)
        status = time_cmd(
            [sys.executable, "-m", "polytune", "status", str(group), "--json"], work, args.repeat
        )
        table = time_cmd(
            [sys.executable, "-m", "polytune", "status", str(group), "--top", "20"],
            work,
            args.repeat,
        )
        out = subprocess.run(
            [sys.executable, "-m", "polytune", "status", str(group), "--json"],
            cwd=work,
            capture_output=True,
            check=True,
        )
        assert json.loads(out.stdout)["experiment_count"] == args.status_n
        print(
            f"\nstatus on {args.status_n} experiments (median of {args.repeat}, whole CLI process):"
        )
        print(f"  (machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f})")
        print(f"  python -c pass     {floor[0]:.3f} s wall  {floor[1]:.3f} s CPU")
        print(
            f"  status --json      {status[0]:.3f} s wall  {status[1]:.3f} s CPU  "
            f"({status[0] / floor[0]:.1f}x the interpreter floor)"
        )
        print(f"  status --top 20    {table[0]:.3f} s wall  {table[1]:.3f} s CPU  target < 1 s")


if __name__ == "__main__":
    main()
