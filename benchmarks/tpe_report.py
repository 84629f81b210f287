"""The TPE target of issue 9, from a ``bo_compare.py --out`` results file: per task, the *median*
normalized score of every method (100 = the optimum, 0 = random search's expected best at the
same budget, as in ``bo_compare.py``), and the difference between polytune's TPE and Optuna's
TPESampler with a bootstrap interval (what "within noise" means here).

Usage:
    python benchmarks/bo_compare.py --methods random,tpe,tpe-c4,polytune-tpe,polytune-tpe-c4 \\
        --jobs 2 --out tpe_results.json
    python benchmarks/tpe_report.py tpe_results.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bo_compare

PAIRS = [("polytune-tpe", "tpe"), ("polytune-tpe-c4", "tpe-c4")]


def scores(runs: list[dict[str, Any]]) -> dict[str, dict[str, np.ndarray]]:
    table = bo_compare.summarize(runs)
    out: dict[str, dict[str, np.ndarray]] = {}
    for task, t in table.items():
        ref, opt = t["random_expected_best"], t["optimum"]
        out[task] = {}
        for method in t["methods"]:
            bests = [min(r["values"]) for r in runs if r["task"] == task and r["method"] == method]
            out[task][method] = np.array([100.0 * (ref - b) / (ref - opt) for b in bests])
    return out


def bootstrap_diff(a: np.ndarray, b: np.ndarray, n: int = 10_000) -> tuple[float, float]:
    """90% bootstrap interval of median(a) - median(b)."""
    rng = np.random.default_rng(0)
    ia = rng.integers(0, len(a), size=(n, len(a)))
    ib = rng.integers(0, len(b), size=(n, len(b)))
    d = np.median(a[ia], axis=1) - np.median(b[ib], axis=1)
    lo, hi = np.percentile(d, [5, 95])
    return float(lo), float(hi)


def render(runs: list[dict[str, Any]]) -> str:
    s = scores(runs)
    methods = [m for m in bo_compare.ALL_METHODS if any(m in t for t in s.values())]
    pairs = [(a, b) for a, b in PAIRS if a in methods and b in methods]
    head = ["task", *methods, *(f"{a} − {b} (90% CI)" for a, b in pairs)]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---|" * (len(head) - 1)]
    for task, t in s.items():
        cells = [f"{np.median(t[m]):.1f}" if m in t else "" for m in methods]
        for a, b in pairs:
            lo, hi = bootstrap_diff(t[a], t[b])
            cells.append(f"{np.median(t[a]) - np.median(t[b]):+.1f} [{lo:+.1f}, {hi:+.1f}]")
        lines.append(f"| {task} (median score) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="a JSON written by bo_compare.py --out")
    args = parser.parse_args()
    print(render(json.loads(Path(args.results).read_text())["runs"]))


if __name__ == "__main__":
    main()
