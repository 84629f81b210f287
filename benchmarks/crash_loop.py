"""Crash loop, the long variant of tests/test_crash.py: start a group with real drivers,
SIGKILL the driver at random moments, resume, repeat; then check that nothing was lost or done
twice (see tests/crash_harness.py for the checks) and print the figures.

Usage: python benchmarks/crash_loop.py [--kind random|hyperband|bo|all] [--n 200] [--kills 100]
           [--seed 1] [--max-sleep 0.15] [--max-delay 1.0]

Random and Hyperband groups are also run once without kills and compared (same experiments;
for Hyperband the same brackets, rungs and resources). Exit status 1 when a guarantee was
violated (the problems are printed).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from crash_harness import crash_loop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="random", choices=["random", "hyperband", "bo", "all"])
    parser.add_argument("--n", type=int, default=200, help="experiments (random, bo)")
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-sleep", type=float, default=0.15, help="longest experiment, s")
    parser.add_argument(
        "--max-delay", type=float, default=1.0, help="longest wait before a kill, s"
    )
    args = parser.parse_args()
    kinds = ["random", "hyperband", "bo"] if args.kind == "all" else [args.kind]
    failed = False
    for kind in kinds:
        with tempfile.TemporaryDirectory(prefix=f"polytune-crash-{kind}-") as tmp:
            figures = crash_loop(
                Path(tmp),
                kind,
                n=args.n,
                kills=args.kills,
                seed=args.seed,
                rng=random.Random(args.seed),
                max_sleep=args.max_sleep,
                max_delay=args.max_delay,
                compare=kind != "bo",  # also run it once without kills and compare
            )
        print(figures.summary(), flush=True)
        for problem in figures.problems:
            print(f"  PROBLEM: {problem}", flush=True)
        failed |= bool(figures.problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
