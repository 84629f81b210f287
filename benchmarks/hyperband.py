"""Hyperband and ASHA on the multi-fidelity example (examples/train.py: an MLP on the digits, one
``partial_fit`` per epoch, checkpoints in the outputs path).

Everything runs through polytune's real driver, store, config loader and searchers, with the
simulated executor (``polytune.simulation``): experiments start in process and the clock is
virtual, so a schedule of hundreds of experiments takes seconds, and durations do not depend on
how loaded this shared machine is.

(a) Slot utilization of the packed schedule (brackets concurrent, polytune) against the
    sequential one (Polyaxon: a rung starts only when every experiment of the group ended), at
    concurrency 2 and 4, for max_iter 81 / eta 3 (206 experiments) over examples/hyperband.yaml's
    space. Durations are *simulated*: ``startup + epochs trained * epoch_time * (1 + hidden/128)``
    (a promoted experiment with ``resume: true`` trains only the epochs its checkpoint lacks),
    the metric a cheap stand-in; the defaults are close to examples/train.py on this machine
    (``--calibrate`` measures them from real runs instead).
(b) Best validation loss against total resource spent (epochs actually trained) for Hyperband
    (examples/hyperband.yaml), ASHA (examples/asha.yaml) and random search (every configuration
    at max_iter) at the same total resource as Hyperband. The training is *real*:
    examples/train.py's ``main`` runs in process for every experiment, on its rendered command
    line, resuming from its checkpoint. Reported: each one's final best, and the resource
    Hyperband and ASHA needed to reach random search's final best (target: at most a third).

Usage: python benchmarks/hyperband.py [--seeds 3] [--max-iter 27] [--skip-a] [--skip-b]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import yaml

from polytune.config import load_text
from polytune.driver import Driver, DriverOptions, new_group
from polytune.executors.base import LaunchSpec
from polytune.experiment import Experiment, Searcher, Suggestion
from polytune.model import Config
from polytune.searchers import make_searcher
from polytune.simulation import JobResult, SimulatedExecutor

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


# ----------------------------------------------------------------------------------------
# Running a group in process
# ----------------------------------------------------------------------------------------


def load_example(name: str, changes: Callable[[dict[str, Any]], None]) -> str:
    """An example polyaxonfile, edited by ``changes`` (a function of the YAML document)."""
    doc = yaml.safe_load((EXAMPLES / name).read_text())
    changes(doc)
    return yaml.safe_dump(doc, sort_keys=False)


def run_group(
    text: str,
    workdir: Path,
    job: Callable[[LaunchSpec], JobResult],
    *,
    concurrency: int,
    seed: int,
    wrap: Callable[[Searcher], Searcher] | None = None,
) -> tuple[list[Experiment], SimulatedExecutor]:
    config: Config = load_text(text, base_dir=EXAMPLES, source=str(workdir / "group.yaml"))
    store = new_group(config, workspace=workdir, name=None, stem="bench", seed=seed)
    executor = SimulatedExecutor(concurrency, job)
    searcher = make_searcher(config)
    driver = Driver(
        store,
        config,
        executor,
        wrap(searcher) if wrap else searcher,
        seed=seed,
        options=DriverOptions(concurrency=concurrency),
        clock=executor.clock,
    )
    with store.lock():
        driver.run()
    return driver.experiments(), executor


class Sequential:
    """Polyaxon 0.x's packing of the same schedule: a rung starts only once every experiment
    of the group has ended (rungs, then brackets, one after the other)."""

    def __init__(self, inner: Searcher) -> None:
        self.inner = inner

    def planned_total(self) -> int | None:
        return self.inner.planned_total()

    def is_finished(self, history: Sequence[Experiment]) -> bool:
        return self.inner.is_finished(history)

    def suggest(self, history: Sequence[Experiment], rng: np.random.Generator) -> Suggestion | None:
        s = self.inner.suggest(history, rng)
        if s is None:
            return None
        active = {(e.meta["bracket"], e.meta["rung"]) for e in history if not e.status.is_done}
        if active and (s.meta["bracket"], s.meta["rung"]) not in active:
            return None
        return s


def params_of(spec: LaunchSpec) -> dict[str, Any]:
    params: dict[str, Any] = json.loads(spec.env["POLYTUNE_PARAMS"])
    return params


def checkpoint_epochs(spec: LaunchSpec, name: str = "epochs.json") -> int:
    path = Path(spec.env["POLYTUNE_OUTPUTS_PATH"]) / name
    return int(json.loads(path.read_text())) if path.exists() else 0


# ----------------------------------------------------------------------------------------
# (a) slot utilization, simulated durations
# ----------------------------------------------------------------------------------------


def simulated_job(startup: float, epoch_time: float) -> Callable[[LaunchSpec], JobResult]:
    def job(spec: LaunchSpec) -> JobResult:
        params = params_of(spec)
        epochs = int(params["epochs"])
        done = checkpoint_epochs(spec)
        trained = max(0, epochs - done)
        (Path(spec.env["POLYTUNE_OUTPUTS_PATH"]) / "epochs.json").write_text(json.dumps(epochs))
        lr = float(params["learning_rate"])
        loss = abs(np.log10(lr) + 2.5) + 1.0 / epochs  # a stand-in: best near lr = 3e-3
        with open(spec.env["POLYTUNE_METRICS_FILE"], "a") as fh:
            fh.write(json.dumps({"step": epochs, "val_loss": loss}) + "\n")
        duration = startup + trained * epoch_time * (1 + int(params["hidden"]) / 128)
        return JobResult(duration)

    return job


def calibrate() -> tuple[float, float]:
    """Startup and per-epoch time of examples/train.py, from two real runs."""
    times = []
    for epochs in (1, 9):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "train.py", "--epochs", str(epochs), "--hidden", "64"],
            cwd=EXAMPLES,
            check=True,
            capture_output=True,
        )
        times.append(time.perf_counter() - start)
    epoch = (times[1] - times[0]) / 8
    return max(0.0, times[0] - epoch), epoch


def utilization(work: Path, startup: float, epoch_time: float) -> None:
    print(
        "(a) slot utilization, Hyperband max_iter=81 eta=3 (206 experiments), simulated "
        f"durations: startup {startup:.2f} s + epochs x {epoch_time * 1000:.0f} ms x (1 + hidden/128)"
    )
    print(
        f"{'concurrency':>11} {'schedule':>10} {'utilization':>12} {'makespan s':>11} {'speed-up':>9}"
    )

    def to_81(doc: dict[str, Any]) -> None:
        doc["hptuning"]["hyperband"]["max_iter"] = 81

    text = load_example("hyperband.yaml", to_81)
    for concurrency in (2, 4):
        spans = {}
        for label, wrap in (("sequential", Sequential), ("packed", None)):
            exps, ex = run_group(
                text,
                work / f"a-{label}-{concurrency}",
                simulated_job(startup, epoch_time),
                concurrency=concurrency,
                seed=1,
                wrap=wrap,
            )
            assert len(exps) == 206, len(exps)
            span = max(e for _, _, e in ex.busy) - min(s for _, s, _ in ex.busy)
            spans[label] = span
            speed = f"{spans['sequential'] / span:.2f}x" if label == "packed" else ""
            print(
                f"{concurrency:>11} {label:>10} {ex.utilization():>11.1%} {span:>11.0f} {speed:>9}"
            )


# ----------------------------------------------------------------------------------------
# (b) best validation loss against resource, real training
# ----------------------------------------------------------------------------------------


def load_train() -> ModuleType:
    spec = importlib.util.spec_from_file_location("polytune_example_train", EXAMPLES / "train.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def training_job(
    train: ModuleType, startup: float, epoch_time: float
) -> Callable[[LaunchSpec], JobResult]:
    """examples/train.py in process, on the experiment's rendered command line."""

    def job(spec: LaunchSpec) -> JobResult:
        argv = shlex.split(spec.command)[2:]  # after "python train.py"
        lines: list[dict[str, Any]] = []

        def log(step: int | None = None, **values: Any) -> None:
            lines.append({"step": step, **values})

        with contextlib.redirect_stdout(io.StringIO()):  # the script's progress lines
            train.main(argv, outputs=spec.env["POLYTUNE_OUTPUTS_PATH"], log=log)
        with open(spec.env["POLYTUNE_METRICS_FILE"], "a") as fh:
            fh.writelines(json.dumps(line) + "\n" for line in lines)
        return JobResult(startup + len(lines) * epoch_time)  # one line per epoch trained

    return job


def spent_epochs(exp: Experiment, ancestors: Mapping[int, Experiment], resume: bool) -> float:
    """The epochs an experiment trained: its resource, minus its parent's with resume."""
    epochs = float(exp.params["epochs"])
    parent = exp.meta.get("promoted_from")
    if resume and isinstance(parent, int):
        epochs -= float(ancestors[parent].params["epochs"])
    return max(0.0, epochs)


def curve(exps: Sequence[Experiment], resume: bool) -> list[tuple[float, float]]:
    """(cumulative epochs trained, best val_loss so far), in the order experiments ended."""
    by_id = {e.id: e for e in exps}
    spent, best, out = 0.0, float("inf"), []
    for e in sorted(exps, key=lambda e: (e.ended_at or 0.0, e.id)):
        spent += spent_epochs(e, by_id, resume)
        value = e.metrics.get("val_loss")
        if isinstance(value, float) and value < best:
            best = value
        out.append((spent, best))
    return out


def best_at(points: Sequence[tuple[float, float]], budget: float) -> float:
    values = [b for s, b in points if s <= budget + 1e-9]
    return min(values) if values else float("inf")


def reach(points: Sequence[tuple[float, float]], target: float) -> float | None:
    for spent, best in points:
        if best <= target:
            return spent
    return None


def hyperband_text(max_iter: int, concurrency: int) -> str:
    def change(doc: dict[str, Any]) -> None:
        doc["hptuning"]["hyperband"]["max_iter"] = max_iter
        doc["hptuning"]["concurrency"] = concurrency

    return load_example("hyperband.yaml", change)


def asha_text(max_iter: int, concurrency: int, n: int) -> str:
    def change(doc: dict[str, Any]) -> None:
        doc["matrix"].update(maxResource=max_iter, concurrency=concurrency, numRuns=n)

    return load_example("asha.yaml", change)


def random_text(max_iter: int, concurrency: int, n: int) -> str:
    """Random search over examples/hyperband.yaml's space, every configuration at max_iter."""

    def change(doc: dict[str, Any]) -> None:
        hp = doc["hptuning"]
        del hp["hyperband"]
        hp["random_search"] = {"n_experiments": n}
        hp["concurrency"] = concurrency
        doc["params"]["epochs"] = max_iter
        doc["polytune"]["metric"] = {"name": "val_loss", "optimization": "minimize"}

    return load_example("hyperband.yaml", change)


def quality(work: Path, seeds: int, max_iter: int, concurrency: int) -> None:
    train = load_train()
    startup, epoch_time = 1.5, 0.05
    print(
        f"\n(b) best val_loss vs epochs trained, examples/train.py (real training in process), "
        f"max_iter={max_iter}, eta=3, concurrency {concurrency}, {seeds} seeds"
    )
    print(
        f"{'seed':>4} {'budget':>7} {'random best':>12} {'HB best':>9} {'ASHA best':>10} "
        f"{'HB reaches it at':>17} {'ASHA reaches it at':>19}"
    )
    ratios: dict[str, list[float]] = {"hyperband": [], "asha": []}
    started = time.perf_counter()
    for seed in range(seeds):
        job = training_job(train, startup, epoch_time)
        hb_exps, _ = run_group(
            hyperband_text(max_iter, concurrency),
            work / f"b-hb-{seed}",
            job,
            concurrency=concurrency,
            seed=seed,
        )
        hb_curve = curve(hb_exps, resume=True)
        budget = hb_curve[-1][0]
        # enough configurations for ASHA to spend about Hyperband's budget (its curve is cut there)
        asha_exps, _ = run_group(
            asha_text(max_iter, concurrency, int(budget / 3)),
            work / f"b-asha-{seed}",
            job,
            concurrency=concurrency,
            seed=seed,
        )
        asha_curve = [p for p in curve(asha_exps, resume=True) if p[0] <= budget + 1e-9]
        random_exps, _ = run_group(
            random_text(max_iter, concurrency, max(1, round(budget / max_iter))),
            work / f"b-random-{seed}",
            job,
            concurrency=concurrency,
            seed=seed,
        )
        random_curve = curve(random_exps, resume=False)
        target = random_curve[-1][1]
        row = [f"{seed:>4}", f"{budget:>7.0f}", f"{target:>12.4f}"]
        row += [f"{best_at(hb_curve, budget):>9.4f}", f"{best_at(asha_curve, budget):>10.4f}"]
        for name, points, width in (("hyperband", hb_curve, 17), ("asha", asha_curve, 19)):
            at = reach(points, target)
            ratio = (at / random_curve[-1][0]) if at is not None else float("inf")
            ratios[name].append(ratio)
            shown = "never" if at is None else f"{at:.0f} ({ratio:.2f})"
            row.append(f"{shown:>{width}}")
        print(" ".join(row), flush=True)
    for name, values in ratios.items():
        print(
            f"{name}: resource to reach random search's final best / random's resource: "
            f"median {statistics.median(values):.2f} (target <= 0.33), "
            f"per seed {', '.join(f'{v:.2f}' for v in values)}"
        )
    print(f"(b) took {time.perf_counter() - started:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-iter", type=int, default=27)
    parser.add_argument("--concurrency", type=int, default=2, help="for (b)")
    parser.add_argument("--calibrate", action="store_true", help="measure (a)'s durations")
    parser.add_argument("--skip-a", action="store_true")
    parser.add_argument("--skip-b", action="store_true")
    args = parser.parse_args()
    startup, epoch_time = calibrate() if args.calibrate else (1.5, 0.05)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if not args.skip_a:
            utilization(work, startup, epoch_time)
        if not args.skip_b:
            quality(work, args.seeds, args.max_iter, args.concurrency)


if __name__ == "__main__":
    main()
