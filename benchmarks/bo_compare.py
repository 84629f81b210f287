"""polytune's Bayesian optimization against its peers, same objectives, budgets and machine, one run.

Methods (each on every task and seed, single-threaded BLAS/torch for all):

* ``random``      polytune's random search
* ``polytune``    polytune's BO (``polytune.algorithms.bayesian``), concurrency 1
* ``polytune-c4`` the same with 4 experiments always running (asked with pending points)
* ``tpe``         Optuna TPESampler, library defaults; ``tpe-c4`` with 4 running trials
* ``optuna-gp``   Optuna GPSampler, library defaults; ``optuna-gp-c4`` with 4 running trials
* ``skopt``       scikit-optimize ``gp_minimize(acq_func="EI")``, otherwise defaults
* ``polytune-tpe`` polytune's TPE (``polytune.algorithms.tpe``, defaults: 10 start-up trials, 24
  EI candidates, multivariate, constant liar); ``polytune-tpe-c4`` with 4 running

Concurrency c is simulated in process: c suggestions are outstanding, the oldest completes
first, then the next is asked (every evaluation takes the same time). The searchers are called
in process (the statistical comparison); ``--e2e`` runs ``polytune run`` on Branin through the
real CLI and checks that it reaches the same quality.

Score (Bayesmark's normalized score, rescaled): 100 × (R − best) / (R − opt), where ``best`` is
the final best loss of a run, ``opt`` the known optimum (ML tasks: the best loss any method
found in this run) and ``R`` random search's expected best at the same budget (synthetic: from
20,000 uniform draws of the space; ML: from the pooled evaluations of the random-search runs).

Usage:
    python benchmarks/bo_compare.py [--suite synthetic|ml|all] [--seeds N] [--budget N]
        [--methods a,b,...] [--jobs N] [--out results.json] [--latency] [--e2e]
    python benchmarks/bo_compare.py --report results.json
"""

# ruff: noqa: E402  (thread limits must be set before numpy is imported)
from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import collections
import json
import math
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from objectives import TASKS, Task

from polytune.algorithms.bayesian import BayesianSearch
from polytune.algorithms.random_search import RandomSearch
from polytune.experiment import Experiment, Status
from polytune.model import BOSettings, MetricSpec
from polytune.space import Param, Space, space_from_matrix

SYNTHETIC = ["branin", "hartmann6", "rosenbrock4", "ackley5"]
ML = ["svc_breast_cancer", "enet_diabetes", "mlp_digits", "tree_wine"]
ALL_METHODS = [
    "random",
    "polytune",
    "polytune-c4",
    "tpe",
    "tpe-c4",
    "optuna-gp",
    "optuna-gp-c4",
    "skopt",
    "polytune-tpe",
    "polytune-tpe-c4",
]
N_INITIAL = 10  # polytune's n_initial_trials: the same start-up budget as every peer's default

Loss = Callable[[Mapping[str, Any]], float]


def space_of(task: Task) -> Space:
    return space_from_matrix(dict(task.matrix), "matrix")


# ----------------------------------------------------------------------------------------
# polytune (in process, the way the driver calls it)
# ----------------------------------------------------------------------------------------


def run_polytune(searcher: Any, loss: Loss, seed: int, concurrency: int) -> list[float]:
    history: list[Experiment] = []
    values: list[float] = []

    def finish_oldest() -> bool:
        for i, e in enumerate(history):
            if e.status is Status.RUNNING:
                v = loss(e.config)
                values.append(v)
                history[i] = e.with_(status=Status.SUCCEEDED, metrics={"loss": v})
                return True
        return False

    while True:
        running = sum(e.status is Status.RUNNING for e in history)
        if running < concurrency and not searcher.is_finished(history):
            s = searcher.suggest(list(history), np.random.default_rng([seed, len(history)]))
            if s is not None:
                history.append(
                    Experiment(
                        id=len(history) + 1,
                        config=dict(s.config),
                        params=dict(s.config),
                        status=Status.RUNNING,
                        meta=dict(s.meta),
                    )
                )
                continue
        if not finish_oldest():
            break
    return values


def bo_settings(budget: int) -> BOSettings:
    return BOSettings(
        n_initial_trials=N_INITIAL,
        n_iterations=budget - N_INITIAL,
        metric=MetricSpec("loss", "minimize"),
    )


def method_polytune(task: Task, seed: int, budget: int, concurrency: int) -> list[float]:
    return run_polytune(
        BayesianSearch(space_of(task), bo_settings(budget)), task.loss, seed, concurrency
    )


def method_random(task: Task, seed: int, budget: int, concurrency: int) -> list[float]:
    return run_polytune(RandomSearch(space_of(task), budget), task.loss, seed, 1)


def method_polytune_tpe(task: Task, seed: int, budget: int, concurrency: int) -> list[float]:
    from polytune.algorithms.tpe import TPESearch

    searcher = TPESearch(
        space_of(task), budget, MetricSpec("loss", "minimize"), n_initial_trials=N_INITIAL
    )
    return run_polytune(searcher, task.loss, seed, concurrency)


# ----------------------------------------------------------------------------------------
# Optuna
# ----------------------------------------------------------------------------------------


def optuna_distributions(space: Space) -> dict[str, Any]:
    import optuna.distributions as od

    out: dict[str, Any] = {}
    for p in space.params:
        out[p.name] = _optuna_dist(p, od)
    return out


def _optuna_dist(p: Param, od: Any) -> Any:
    a = p.args
    if p.method == "uniform":
        return od.FloatDistribution(float(a["low"]), float(a["high"]))
    if p.method == "loguniform":
        return od.FloatDistribution(math.exp(a["low"]), math.exp(a["high"]), log=True)
    if p.method == "range" and all(isinstance(v, int) for v in p.values):
        return od.IntDistribution(p.values[0], p.values[-1], step=int(a["step"]))
    if p.method == "values":
        return od.CategoricalDistribution(list(p.values))
    raise ValueError(f"no Optuna mapping for {p.method}")


def method_optuna(sampler_name: str) -> Callable[[Task, int, int, int], list[float]]:
    def run(task: Task, seed: int, budget: int, concurrency: int) -> list[float]:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        warnings.simplefilter("ignore")
        try:
            import torch

            torch.set_num_threads(1)
        except ImportError:
            pass
        sampler = (
            optuna.samplers.TPESampler(seed=seed)
            if sampler_name == "tpe"
            else optuna.samplers.GPSampler(seed=seed)
        )
        study = optuna.create_study(direction="minimize", sampler=sampler)
        dists = optuna_distributions(space_of(task))
        running: collections.deque[Any] = collections.deque()
        values: list[float] = []
        asked = 0
        while asked < budget or running:
            while asked < budget and len(running) < concurrency:
                running.append(study.ask(dists))
                asked += 1
            trial = running.popleft()
            v = task.loss(dict(trial.params))
            values.append(v)
            study.tell(trial, v)
        return values

    return run


# ----------------------------------------------------------------------------------------
# scikit-optimize
# ----------------------------------------------------------------------------------------


def method_skopt(task: Task, seed: int, budget: int, concurrency: int) -> list[float]:
    warnings.simplefilter("ignore")
    from skopt import gp_minimize
    from skopt.space import Categorical, Integer, Real

    space = space_of(task)
    dims: list[Any] = []
    decoders: list[Callable[[Any], Any]] = []
    for p in space.params:
        a = p.args
        if p.method == "uniform":
            dims.append(Real(float(a["low"]), float(a["high"]), name=p.name))
            decoders.append(float)
        elif p.method == "loguniform":
            dims.append(
                Real(math.exp(a["low"]), math.exp(a["high"]), prior="log-uniform", name=p.name)
            )
            decoders.append(float)
        elif p.method == "range":
            vals = list(p.values)
            dims.append(Integer(0, len(vals) - 1, name=p.name))
            decoders.append(lambda i, vals=vals: vals[int(i)])
        else:
            dims.append(Categorical(list(p.values), name=p.name))
            decoders.append(lambda v: v)
    names = space.names
    values: list[float] = []

    def f(x: list[Any]) -> float:
        config = {n: d(v) for n, d, v in zip(names, decoders, x, strict=True)}
        v = task.loss(config)
        values.append(v)
        return v

    gp_minimize(f, dims, n_calls=budget, random_state=seed, acq_func="EI")
    return values


METHODS: dict[str, tuple[Callable[[Task, int, int, int], list[float]], int]] = {
    "random": (method_random, 1),
    "polytune": (method_polytune, 1),
    "polytune-c4": (method_polytune, 4),
    "tpe": (method_optuna("tpe"), 1),
    "tpe-c4": (method_optuna("tpe"), 4),
    "optuna-gp": (method_optuna("gp"), 1),
    "optuna-gp-c4": (method_optuna("gp"), 4),
    "skopt": (method_skopt, 1),
    "polytune-tpe": (method_polytune_tpe, 1),
    "polytune-tpe-c4": (method_polytune_tpe, 4),
}


def run_unit(unit: tuple[str, str, int, int]) -> dict[str, Any]:
    task_name, method, seed, budget = unit
    fn, concurrency = METHODS[method]
    start = time.perf_counter()
    values = fn(TASKS[task_name], seed, budget, concurrency)
    return {
        "task": task_name,
        "method": method,
        "seed": seed,
        "budget": budget,
        "values": values,
        "seconds": time.perf_counter() - start,
    }


# ----------------------------------------------------------------------------------------
# Scores and the table
# ----------------------------------------------------------------------------------------


def expected_min(samples: list[float], n: int) -> float:
    """E[min of n draws] from the empirical distribution of ``samples`` (with replacement)."""
    v = np.sort(np.asarray(samples, dtype=np.float64))
    m = len(v)
    i = np.arange(m)
    p = ((m - i) / m) ** n - ((m - i - 1) / m) ** n
    return float(np.sum(p * v))


def random_reference(task: Task, budget: int, runs: list[dict[str, Any]]) -> float:
    if task.kind == "synthetic":
        space = space_of(task)
        rng = np.random.default_rng(20240601)
        samples = [task.loss(space.sample(rng)) for _ in range(20000)]
    else:
        samples = [v for r in runs if r["method"] == "random" for v in r["values"]]
    return expected_min(samples, budget)


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    by_task: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for r in runs:
        by_task[r["task"]].append(r)
    table: dict[str, Any] = {}
    for task_name, task_runs in by_task.items():
        task = TASKS[task_name]
        budget = task_runs[0]["budget"]
        ref = random_reference(task, budget, task_runs)
        best_any = min(min(r["values"]) for r in task_runs)
        opt = task.optimum if task.optimum is not None else best_any
        rows: dict[str, Any] = {}
        for method in ALL_METHODS:
            mr = [r for r in task_runs if r["method"] == method]
            if not mr:
                continue
            bests = [min(r["values"]) for r in mr]
            scores = [100.0 * (ref - b) / (ref - opt) if ref != opt else 100.0 for b in bests]
            q1, med, q3 = np.percentile(bests, [25, 50, 75])
            rows[method] = {
                "median": float(med),
                "q1": float(q1),
                "q3": float(q3),
                "score_mean": statistics.fmean(scores),
                "score_median": statistics.median(scores),
                "score_sem": statistics.stdev(scores) / math.sqrt(len(scores))
                if len(scores) > 1
                else 0.0,
                "seeds": len(mr),
                "seconds": statistics.fmean(r["seconds"] for r in mr),
            }
        table[task_name] = {"random_expected_best": ref, "optimum": opt, "methods": rows}
    return table


def fmt(x: float) -> str:
    if x == 0 or 1e-3 <= abs(x) < 1e5:
        return f"{x:.4g}"
    return f"{x:.3e}"


def render(table: dict[str, Any]) -> str:
    lines = []
    methods = [m for m in ALL_METHODS if any(m in t["methods"] for t in table.values())]
    lines.append("| task | " + " | ".join(methods) + " |")
    lines.append("|---|" + "---|" * len(methods))
    for task_name, t in table.items():
        cells = []
        for m in methods:
            r = t["methods"].get(m)
            cells.append(
                "" if r is None else f"{fmt(r['median'])} [{fmt(r['q1'])}, {fmt(r['q3'])}]"
            )
        lines.append(f"| {task_name} (median [IQR] best loss) | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("| task | " + " | ".join(methods) + " |")
    lines.append("|---|" + "---|" * len(methods))
    suites = {"synthetic": SYNTHETIC, "ml": ML}
    for task_name, t in table.items():
        cells = []
        for m in methods:
            r = t["methods"].get(m)
            cells.append("" if r is None else f"{r['score_mean']:.1f} ± {r['score_sem']:.1f}")
        lines.append(f"| {task_name} (mean score ± s.e.) | " + " | ".join(cells) + " |")
    for suite, names in suites.items():
        present = [n for n in names if n in table]
        if not present:
            continue
        cells = []
        for m in methods:
            scores = [
                table[n]["methods"][m]["score_mean"] for n in present if m in table[n]["methods"]
            ]
            cells.append(
                f"**{statistics.fmean(scores):.1f}**" if len(scores) == len(present) else ""
            )
        lines.append(f"| **{suite} mean score** | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------
# Latency
# ----------------------------------------------------------------------------------------


def latency(ns: list[int], repeat: int = 3) -> dict[str, dict[int, float]]:
    """Seconds to suggest one point after n observations of Hartmann-6 (median of ``repeat``)."""
    task = TASKS["hartmann6"]
    space = space_of(task)
    out: dict[str, dict[int, float]] = collections.defaultdict(dict)
    for n in ns:
        rng = np.random.default_rng(n)
        configs = [space.sample(rng) for _ in range(n)]
        losses = [task.loss(c) for c in configs]
        # polytune
        history = [
            Experiment(id=i + 1, config=c, params=c, status=Status.SUCCEEDED, metrics={"loss": v})
            for i, (c, v) in enumerate(zip(configs, losses, strict=True))
        ]
        searcher = BayesianSearch(
            space,
            BOSettings(
                n_initial_trials=10, n_iterations=n + 10, metric=MetricSpec("loss", "minimize")
            ),
        )
        times = []
        for k in range(repeat):
            t = time.perf_counter()
            searcher.suggest(history, np.random.default_rng([k, n]))
            times.append(time.perf_counter() - t)
        out["polytune"][n] = statistics.median(times)
        # Optuna GPSampler and TPE
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        warnings.simplefilter("ignore")
        dists = optuna_distributions(space)
        for name in ("optuna-gp", "tpe"):
            times = []
            for k in range(repeat):
                sampler = (
                    optuna.samplers.GPSampler(seed=k)
                    if name == "optuna-gp"
                    else optuna.samplers.TPESampler(seed=k)
                )
                study = optuna.create_study(direction="minimize", sampler=sampler)
                for c, v in zip(configs, losses, strict=True):
                    study.add_trial(
                        optuna.trial.create_trial(params=c, distributions=dists, value=v)
                    )
                t = time.perf_counter()
                study.ask(dists)
                times.append(time.perf_counter() - t)
            out[name][n] = statistics.median(times)
        # scikit-optimize
        from skopt import Optimizer
        from skopt.space import Real

        times = []
        for k in range(repeat):
            opt = Optimizer(
                [Real(0.0, 1.0)] * 6, acq_func="EI", random_state=k, n_initial_points=10
            )
            opt.tell([[c[f"x{i}"] for i in range(1, 7)] for c in configs[:-1]], losses[:-1])
            t = time.perf_counter()
            # skopt fits its GP and optimizes the acquisition in ``tell``; ``ask`` is then free
            opt.tell([configs[-1][f"x{i}"] for i in range(1, 7)], losses[-1])
            opt.ask()
            times.append(time.perf_counter() - t)
        out["skopt"][n] = statistics.median(times)
    return out


# ----------------------------------------------------------------------------------------
# End to end through the CLI
# ----------------------------------------------------------------------------------------


def e2e(seed: int = 0, concurrency: int = 2) -> dict[str, Any]:
    """``polytune run benchmarks/branin.yaml`` (real driver, subprocesses, group directory)."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "polytune",
                "run",
                str(HERE / "branin.yaml"),
                "--dir",
                tmp,
                "--seed",
                str(seed),
                "--concurrency",
                str(concurrency),
                "--json",
                "-q",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"polytune run failed ({proc.returncode}):\n{proc.stderr}")
        doc = json.loads(proc.stdout)
        status = subprocess.run(
            [sys.executable, "-m", "polytune", "status", "--dir", tmp, "--json"],
            capture_output=True,
            text=True,
            check=True,
        )
        experiments = json.loads(status.stdout).get("experiments", [])
    best = doc["best"]["value"]
    return {
        "best": best,
        "optimum": TASKS["branin"].optimum,
        "counts": doc["counts"],
        "experiments": len(experiments),
        "seconds": seconds,
    }


# ----------------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    out = {
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    for mod in ("polytune", "numpy", "scipy", "sklearn", "optuna", "skopt", "torch"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # pragma: no cover - optional peers
            out[mod] = "not installed"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=["synthetic", "ml", "all"], default="synthetic")
    parser.add_argument(
        "--tasks", default=None, help="comma-separated task names (default: the suite)"
    )
    parser.add_argument("--methods", default=",".join(ALL_METHODS))
    parser.add_argument("--seeds", type=int, default=None, help="default: 10 synthetic, 5 ML")
    parser.add_argument("--budget", type=int, default=None, help="default: 50 synthetic, 40 ML")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", default=None, help="write every run and the table here (JSON)")
    parser.add_argument("--merge", default=None, help="reuse the runs of these methods from a JSON")
    parser.add_argument(
        "--latency", action="store_true", help="also time one suggestion at 50/100/200 obs"
    )
    parser.add_argument("--e2e", action="store_true", help="also run Branin through `polytune run`")
    parser.add_argument("--report", default=None, help="only print the table of a results JSON")
    args = parser.parse_args()

    if args.report:
        doc = json.loads(Path(args.report).read_text())
        print(render(summarize(doc["runs"])))
        return

    if args.tasks:
        task_names = args.tasks.split(",")
    else:
        task_names = {"synthetic": SYNTHETIC, "ml": ML, "all": SYNTHETIC + ML}[args.suite]
    methods = [m for m in args.methods.split(",") if m]
    units = []
    for name in task_names:
        kind = TASKS[name].kind
        seeds = args.seeds or (10 if kind == "synthetic" else 5)
        budget = args.budget or (50 if kind == "synthetic" else 40)
        for method in methods:
            if kind == "ml" and method.endswith("-c4"):
                continue
            for seed in range(seeds):
                units.append((name, method, seed, budget))
    runs: list[dict[str, Any]] = []
    if args.merge:
        old = json.loads(Path(args.merge).read_text())["runs"]
        runs = [r for r in old if r["task"] in task_names and r["method"] not in methods]
    t0 = time.perf_counter()
    if args.jobs > 1:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
            for r in pool.imap_unordered(run_unit, units):
                runs.append(r)
                print(
                    f"{r['task']:18} {r['method']:13} seed {r['seed']}: best {min(r['values']):.5g} ({r['seconds']:.1f} s)",
                    flush=True,
                )
    else:
        for u in units:
            r = run_unit(u)
            runs.append(r)
            print(
                f"{r['task']:18} {r['method']:13} seed {r['seed']}: best {min(r['values']):.5g} ({r['seconds']:.1f} s)",
                flush=True,
            )
    table = summarize(runs)
    if runs:
        print()
        print(render(table))
    doc: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "versions": versions(),
        "seconds": time.perf_counter() - t0,
        "table": table,
        "runs": runs,
    }
    if args.latency:
        lat = latency([50, 100, 200])
        doc["latency"] = lat
        print("\nsuggestion latency (s) after n observations, Hartmann-6:")
        for name, row in lat.items():
            print(f"  {name:10} " + "  ".join(f"n={n}: {s:.3f}" for n, s in row.items()))
    if args.e2e:
        doc["e2e"] = e2e()
        print(f"\nend to end (polytune run benchmarks/branin.yaml): {doc['e2e']}")
    if args.out:
        Path(args.out).write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
