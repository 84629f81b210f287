"""Random search with and without the median stopping rule, same seeds: compute spent and the
final best loss.

The experiment is ``examples/mlp_epochs.py`` (a numpy MLP on scikit-learn's digits, one metric
line per epoch: validation ``loss`` and ``accuracy``), run through polytune's real driver and local
executor (in process, real subprocesses). For every seed the two groups draw the same
configurations in the same order (the searcher's RNG depends on the seed and the history's
length only), so the only difference is which experiments the median rule stops.

Compute is measured three ways: epochs trained (metric lines: the resource the stopping rule
controls, Hyperband's budget unit, and deterministic — the target is judged on it), CPU seconds
(each experiment reports the CPU time it has used, start-up included, with every epoch) and
experiment-seconds (the sum of the experiments' wall-clock durations). The last two include each
process's start-up (about 0.2 CPU-s, some ten epochs' worth, which no stopping rule can save)
and are noisy on a shared machine: the same epoch costs 15 to 20 ms of CPU and 30 to 70 ms of
wall time depending on what else runs. "Within noise" compares
the difference of the best losses with the spread of the unstopped best loss across seeds.

Target (issue 10): at least 40 % less compute, final best loss within noise.

Usage: python benchmarks/early_stopping.py [--seeds 1 2 3] [--n 24] [--epochs 40] [--augment 2]
       [--concurrency 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from polytune.config import load
from polytune.driver import Driver, DriverOptions, NullProgress, new_group
from polytune.executors.local import LocalExecutor
from polytune.experiment import Objective, Status
from polytune.searchers import make_searcher

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mlp_epochs.py"
POLICY = "{kind: median, evaluation_interval: 1, min_interval: 2, min_samples: 2}"


def polyaxonfile(
    seed: int, n: int, epochs: int, augment: int, concurrency: int, median: bool
) -> str:
    rules = f"[{{metric: loss, optimization: minimize, policy: {POLICY}}}]" if median else "[]"
    return textwrap.dedent(
        f"""
        version: 1
        kind: group
        hptuning:
          concurrency: {concurrency}
          seed: {seed}
          random_search: {{n_experiments: {n}}}
          matrix:
            learning_rate: {{loguniform: [-9.2, 0.5]}}   # 1e-4 .. 1.6
            alpha: {{loguniform: [-11.5, -2.3]}}         # 1e-5 .. 0.1
            hidden: {{values: [16, 32, 64, 128]}}
            batch_size: {{values: [16, 32, 64, 128]}}
            momentum: {{values: [0.0, 0.5, 0.9]}}
          early_stopping: {rules}
        polytune:
          metric: {{name: loss, optimization: minimize}}
          env: {{OMP_NUM_THREADS: "1", OPENBLAS_NUM_THREADS: "1", MKL_NUM_THREADS: "1"}}
        params:
          epochs: {epochs}
          augment: {augment}
        run:
          cmd: {sys.executable} {EXAMPLE} --learning-rate={{{{ learning_rate }}}} --alpha={{{{ alpha }}}}
               --hidden={{{{ hidden }}}} --batch-size={{{{ batch_size }}}} --momentum={{{{ momentum }}}}
               --epochs={{{{ epochs }}}} --augment={{{{ augment }}}}
        """
    )


def run_group(workdir: Path, seed: int, args: argparse.Namespace, median: bool) -> dict[str, Any]:
    name = f"{'median' if median else 'plain'}-{seed}"
    path = workdir / f"{name}.yaml"
    concurrency = args.concurrency
    path.write_text(polyaxonfile(seed, args.n, args.epochs, args.augment, concurrency, median))
    config = load([path])
    store = new_group(config, workspace=workdir / "ws", name=name, stem=name)
    start = time.perf_counter()
    with store.lock():
        executor = LocalExecutor(concurrency)
        try:
            driver = Driver(
                store,
                config,
                executor,
                make_searcher(config),
                seed=seed,
                options=DriverOptions(concurrency=concurrency, env=dict(config.polytune.env)),
                progress=NullProgress(),
            )
            outcome = driver.run()
        finally:
            executor.close()
    wall = time.perf_counter() - start
    exps = store.experiments()
    objective = Objective("loss", "minimize")
    complete = [e for e in exps if e.status is Status.SUCCEEDED]
    best_all = objective.best(exps)
    best_complete = objective.best(complete)
    return {
        "name": name,
        "status": outcome.status,
        "configs": [e.config for e in exps],
        "stopped": sum(e.status is Status.STOPPED for e in exps),
        "failed": sum(e.status is Status.FAILED for e in exps),
        "seconds": sum(e.duration or 0.0 for e in exps),
        "epochs": sum(e.metric_lines for e in exps),
        "cpu": sum(float(e.metrics.get("cpu", 0.0)) for e in exps),
        "best": objective.value(best_all) if best_all else float("nan"),
        "best_complete": objective.value(best_complete) if best_complete else float("nan"),
        "wall": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--n", type=int, default=24, help="experiments per group")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--augment", type=int, default=2, help="shifted copies per epoch")
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory(prefix="polytune-es-") as tmp:
        for seed in args.seeds:
            plain = run_group(Path(tmp), seed, args, median=False)
            median = run_group(Path(tmp), seed, args, median=True)
            assert plain["configs"] == median["configs"], (
                "the same seed must draw the same configurations"
            )
            rows.append((seed, plain, median))
            print(
                f"seed {seed}: done ({plain['wall'] + median['wall']:.0f} s)",
                file=sys.stderr,
                flush=True,
            )

    print(
        f"random search, {args.n} experiments x {args.epochs} epochs (augment {args.augment}), "
        f"concurrency {args.concurrency}; median rule {POLICY}"
    )
    head = (
        f"{'seed':>4} {'rule':>6} {'stopped':>7} {'epochs':>6} {'cpu-s':>7} {'exp-s':>7} "
        f"{'best loss':>9} {'best (complete)':>15}"
    )
    print(head)
    print("-" * len(head))
    for seed, plain, median in rows:
        for label, r in (("none", plain), ("median", median)):
            print(
                f"{seed:>4} {label:>6} {r['stopped']:>7} {r['epochs']:>6} {r['cpu']:>7.1f} "
                f"{r['seconds']:>7.1f} "
                f"{r['best']:>9.4f} {r['best_complete']:>15.4f}"
            )
    plain_s = sum(p["seconds"] for _, p, _ in rows)
    median_s = sum(m["seconds"] for _, _, m in rows)
    plain_e = sum(p["epochs"] for _, p, _ in rows)
    median_e = sum(m["epochs"] for _, _, m in rows)
    saved_s = 1 - median_s / plain_s
    saved_e = 1 - median_e / plain_e
    saved_c = 1 - sum(m["cpu"] for _, _, m in rows) / sum(p["cpu"] for _, p, _ in rows)
    bests = [p["best"] for _, p, _ in rows]
    noise = statistics.stdev(bests) if len(bests) > 1 else 0.0
    diffs = [m["best"] - p["best"] for _, p, m in rows]
    print("-" * len(head))
    print(
        f"compute saved by the median rule: {saved_c:.0%} of CPU seconds, {saved_e:.0%} of "
        f"epochs, {saved_s:.0%} of experiment-seconds"
    )
    print(
        f"best loss, median rule minus none, per seed: {', '.join(f'{d:+.4f}' for d in diffs)} "
        f"(spread of the unstopped best loss across seeds: sd {noise:.4f})"
    )
    within = all(abs(d) <= max(noise, 1e-12) for d in diffs)
    verdict = "MET" if saved_e >= 0.40 and within else "NOT MET"
    print(f"target (>= 40 % fewer epochs, best loss within noise): {verdict}")


if __name__ == "__main__":
    main()
