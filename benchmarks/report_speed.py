"""How long `polytune report` takes on a finished 200-experiment group.

    python benchmarks/report_speed.py [--n 200] [--repeat 3]

Writes a synthetic group (tests/synthetic_groups.py: 4 parameters, 20 metric lines per
experiment, some failed and stopped) through the store, then times the whole command in a
fresh process (imports of matplotlib and scikit-learn included), as a user would run it. On a
shared, loaded machine the CPU seconds are the steadier number.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from synthetic_groups import make_group


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp)
        make_group(
            ws, "bench", n=args.n, steps=args.steps, failed_every=13, stopped_every=6, seed=5
        )
        walls, inner, cpu = [], [], []
        for _ in range(args.repeat):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "polytune", "report", "bench", "--dir", str(ws), "--json"],
                capture_output=True,
                text=True,
                check=True,
            )
            walls.append(time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
            inner.append(json.loads(proc.stdout)["seconds"])
        print(
            json.dumps(
                {
                    "experiments": args.n,
                    "metric_lines_per_experiment": args.steps,
                    "command_seconds_median": round(statistics.median(walls), 2),
                    "build_seconds_median": round(statistics.median(inner), 2),
                    # CPU time of the command: what it costs on an idle machine, near enough
                    "cpu_seconds_median": round(statistics.median(cpu), 2),
                    "runs": [round(w, 2) for w in walls],
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
