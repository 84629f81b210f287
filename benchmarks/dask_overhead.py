"""The same random-search group on the local executor and on a local Dask cluster
(a ``dask scheduler`` and two ``dask worker`` processes with 2 threads each, on 127.0.0.1).

Per experiment, overhead = the time the driver recorded for it (started_at -> ended_at) minus
the time its command measured itself (its first line to its last, tests/jobs/stamp_job.py);
total = the driver's loop (group.json: driver_started_at -> ended_at) and the whole
``polytune run`` process (with the connection to the scheduler). Printed as dask/local ratios.

Usage: python benchmarks/dask_overhead.py [--n 40] [--concurrency 4] [--sleep 0.2] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from dask_cluster import local_cluster  # noqa: E402

JOB = ROOT / "tests" / "jobs" / "stamp_job.py"


def run_group(
    tmp: Path, n: int, concurrency: int, sleep: float, extra: list[str]
) -> dict[str, Any]:
    tmp.mkdir(parents=True)
    (tmp / "g.yaml").write_text(
        textwrap.dedent(
            f"""
            version: 1
            kind: group
            hptuning:
              concurrency: {concurrency}
              seed: 1
              random_search: {{n_experiments: {n}}}
              matrix:
                x: {{uniform: [0, 4]}}
            polytune:
              metric: {{name: loss, optimization: minimize}}
            run:
              cmd: {sys.executable} {JOB} --x={{{{ x }}}} --stamps={tmp}/stamps.jsonl --sleep={sleep} --steps=1
            """
        )
    )
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "polytune", "run", "g.yaml", "-q", "--json", *extra],
        cwd=tmp,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    assert json.loads(proc.stdout)["counts"]["succeeded"] == n
    group = next((tmp / "polytune-groups").iterdir())
    info = json.loads((group / "group.json").read_text())
    spans: dict[int, dict[str, float]] = {}
    for line in (tmp / "stamps.jsonl").read_text().splitlines():
        s = json.loads(line)
        spans.setdefault(s["exp"], {})[s["event"]] = s["t"]
    overheads = []
    for path in group.glob("experiments/*/experiment.json"):
        r = json.loads(path.read_text())
        own = spans[r["id"]]["end"] - spans[r["id"]]["start"]
        overheads.append(r["ended_at"] - r["started_at"] - own)
    return {
        "loop": info["ended_at"] - info["driver_started_at"],
        "wall": wall,
        "overhead": statistics.mean(overheads),
        "overhead_p90": sorted(overheads)[int(0.9 * (len(overheads) - 1))],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--sleep", type=float, default=0.2)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        t0 = time.perf_counter()
        with local_cluster(root / "cluster", workers=2, nthreads=2) as cluster:
            print(f"cluster (scheduler + 2 workers) up in {time.perf_counter() - t0:.1f} s")
            results: dict[str, list[dict[str, Any]]] = {"local": [], "dask": []}
            for i in range(args.repeat):
                for name, extra in (("local", []), ("dask", ["--scheduler", cluster.address])):
                    results[name].append(
                        run_group(root / f"{name}-{i}", args.n, args.concurrency, args.sleep, extra)
                    )
    med = {
        name: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        for name, rs in results.items()
    }
    print(
        f"{args.n} experiments of {args.sleep:g} s, concurrency {args.concurrency}, "
        f"median of {args.repeat}"
    )
    print(f"{'':8}{'overhead/exp':>14}{'p90':>10}{'driver loop':>14}{'polytune run':>14}")
    for name, m in med.items():
        print(
            f"{name:8}{m['overhead'] * 1000:11.1f} ms{m['overhead_p90'] * 1000:7.1f} ms"
            f"{m['loop']:12.2f} s{m['wall']:12.2f} s"
        )
    d, loc = med["dask"], med["local"]
    print(
        f"{'ratio':8}{d['overhead'] / loc['overhead']:12.1f}x{'':10}"
        f"{d['loop'] / loc['loop']:12.2f}x{d['wall'] / loc['wall']:13.2f}x"
    )
    print(f"dask - local per experiment: {(d['overhead'] - loc['overhead']) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
