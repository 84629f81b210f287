"""Scale: a group of N no-op experiments (`true`) through an in-process driver (store, local
executor, metrics, background fsync), each N in a fresh process, reporting its wall and CPU time,
peak RSS (getrusage) and the peak of Python allocations during the run (tracemalloc, which
slows the run down: it gets its own process); then the memory growth from the smallest N to the
largest (target: peak RSS within 1.5x).

Usage: python benchmarks/scale.py [--n 500 5000] [--concurrency 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path


def run_group(n: int, concurrency: int, workdir: Path, trace: bool) -> dict[str, float]:
    from overhead import noop_group_file

    from polytune.config import load
    from polytune.driver import Driver, DriverOptions, NullProgress, new_group
    from polytune.executors.local import LocalExecutor
    from polytune.searchers import make_searcher

    path = noop_group_file(workdir / "noop.yaml", n, concurrency)
    config = load([path])
    store = new_group(config, workspace=workdir / "ws", name=None, stem="noop")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if trace:
        tracemalloc.start()
    wall, cpu = time.perf_counter(), time.process_time()
    with store.lock(), LocalExecutor(concurrency) as executor:
        outcome = Driver(
            store,
            config,
            executor,
            make_searcher(config),
            seed=1,
            options=DriverOptions(concurrency=concurrency),
            progress=NullProgress(),
        ).run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert outcome.counts["succeeded"] == n, outcome.counts
    out = {
        "n": n,
        "wall_s": wall,
        "cpu_s": cpu,
        "rss_before_mib": rss_before / 1024,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if trace:
        out["traced_peak_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return out


def child(n: int, concurrency: int, trace: bool) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(n), "--concurrency", str(concurrency)]
        + (["--trace"] if trace else []),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    result: dict[str, float] = json.loads(proc.stdout.splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[500, 5000])
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        with tempfile.TemporaryDirectory(prefix="polytune-scale-") as tmp:
            print(json.dumps(run_group(args.child, args.concurrency, Path(tmp), args.trace)))
        return
    print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    rows = []
    for n in args.n:
        plain = child(n, args.concurrency, trace=False)
        traced = child(n, args.concurrency, trace=True)
        plain["traced_peak_mib"] = traced["traced_peak_mib"]
        rows.append(plain)
        print(
            f"N={n:6d}: wall {plain['wall_s']:7.2f} s ({n / plain['wall_s']:5.0f} exp/s), "
            f"CPU {plain['cpu_s']:6.2f} s, RSS before run {plain['rss_before_mib']:6.1f} MiB, "
            f"peak RSS {plain['peak_rss_mib']:6.1f} MiB, "
            f"peak Python allocations during the run {plain['traced_peak_mib']:6.2f} MiB",
            flush=True,
        )
    small, large = rows[0], rows[-1]
    ratio = large["peak_rss_mib"] / small["peak_rss_mib"]
    print(
        f"peak RSS at N={large['n']} / at N={small['n']}: {ratio:.2f}x (target <= 1.5x); "
        f"Python allocations per experiment: "
        f"{(large['traced_peak_mib'] - small['traced_peak_mib']) * 2**20 / (large['n'] - small['n']):.0f} B"
    )


if __name__ == "__main__":
    main()
