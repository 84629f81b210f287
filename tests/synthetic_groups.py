"""Synthetic group directories written through the real store API (no driver, no subprocess):
fast fixtures for the review commands and the HTML report, and the 200-experiment group of
``benchmarks/report_speed.py``.

The objective is a known function of the parameters, so tests can check what the report
infers (``lr`` matters most, ``act`` a little, ``noise`` not at all).
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

from polytune.experiment import Status
from polytune.store import GroupStore, create_group

SPACE = [
    {
        "name": "lr",
        "method": "loguniform",
        "kind": "continuous",
        "categorical": False,
        "bounds": [1e-4, 1.0],
    },
    {
        "name": "layers",
        "method": "range",
        "kind": "discrete",
        "categorical": False,
        "values": [1, 2, 3, 4],
        "bounds": [1, 4],
    },
    {
        "name": "act",
        "method": "values",
        "kind": "discrete",
        "categorical": True,
        "values": ["relu", "tanh", "sigmoid"],
    },
    {
        "name": "noise",
        "method": "uniform",
        "kind": "continuous",
        "categorical": False,
        "bounds": [0.0, 1.0],
    },
]


def loss_of(config: dict[str, Any]) -> float:
    """The final loss: a valley in log10(lr) around 1e-2, a small penalty per activation."""
    lr_term = (math.log10(config["lr"]) + 2.0) ** 2
    act_term = {"relu": 0.0, "tanh": 0.15, "sigmoid": 0.3}[config["act"]]
    return 0.1 + lr_term + act_term + 0.02 * config["layers"]


def _config(rng: random.Random) -> dict[str, Any]:
    return {
        "lr": 10 ** rng.uniform(-4, 0),
        "layers": rng.choice([1, 2, 3, 4]),
        "act": rng.choice(["relu", "tanh", "sigmoid"]),
        "noise": rng.random(),
    }


def _write_metrics(store: GroupStore, exp_id: int, final: float, steps: int) -> list[float]:
    values = [final + (3.0 - final) * math.exp(-step / 2.5) for step in range(1, steps + 1)]
    lines = [
        json.dumps({"step": s, "loss": v, "acc": 1 / (1 + v)})
        for s, v in enumerate(values, start=1)
    ]
    store.paths(exp_id).metrics.write_text("\n".join(lines) + "\n")
    return values


def make_group(
    workspace: Path,
    name: str,
    n: int = 20,
    *,
    seed: int = 0,
    steps: int = 8,
    failed_every: int = 0,
    stopped_every: int = 0,
    running: int = 0,
    metric: bool = True,
    algorithm: str = "random",
) -> GroupStore:
    """A finished random-search-like group of ``n`` experiments (``running`` of the last ones
    still "running", every ``failed_every``-th failed, every ``stopped_every``-th stopped)."""
    t0 = 1_700_000_000.0
    info: dict[str, Any] = {
        "status": "running" if running else "done",
        "seed": seed,
        "algorithm": algorithm,
        "created_at": t0,
        "planned_total": n,
        "metric": {"name": "loss", "optimization": "minimize"} if metric else None,
        "config": {"space": SPACE, "polytune": {"stdout_metrics": False}},
    }
    store = create_group(workspace, "synthetic", name, info, "version: 1\n")
    rng = random.Random(seed)
    for i in range(1, n + 1):
        config = _config(rng)
        start = t0 + 1.0 + 2.0 * i
        exp = store.new_experiment(
            config=config, params={**config, "epochs": steps}, created_at=t0 + 0.5 * i
        )
        final = loss_of(config) + rng.gauss(0, 0.02)
        status, reason, exit_code, length = Status.SUCCEEDED, None, 0, steps
        if running and i > n - running:
            status, exit_code, length = Status.RUNNING, None, steps // 2
        elif failed_every and i % failed_every == 0:
            status, reason, exit_code, length = Status.FAILED, "exit code 3", 3, steps // 3
            store.paths(i).stderr.write_text(
                f"Traceback (most recent call last):\nValueError: diverged at lr={config['lr']:.3g}\n"
            )
        elif stopped_every and i % stopped_every == 0:
            status, reason, exit_code, length = (
                Status.STOPPED,
                "early stopping: median rule",
                -15,
                steps // 2,
            )
        values = _write_metrics(store, i, final, max(1, length)) if metric else []
        store.paths(i).stdout.write_text("".join(f"step {s}\n" for s in range(1, length + 1)))
        end = None if status is Status.RUNNING else start + 1.5 + 0.1 * length
        exp = exp.with_(
            status=status,
            attempt=1,
            command=f"python train.py --lr={config['lr']}",
            started_at=start,
            ended_at=end,
            exit_code=exit_code,
            reason=reason,
            metrics={"loss": values[-1], "acc": 1 / (1 + values[-1])} if values else {},
            metrics_min={"loss": min(values), "acc": 1 / (1 + max(values))} if values else {},
            metrics_max={"loss": max(values), "acc": 1 / (1 + min(values))} if values else {},
            metric_lines=len(values),
            last_step=len(values) or None,
            attempts=[]
            if end is None
            else [
                {
                    "attempt": 1,
                    "status": status.value,
                    "started_at": start,
                    "ended_at": end,
                    "exit_code": exit_code,
                    "reason": reason,
                    "pid": 1,
                    "host": "test",
                }
            ],
        )
        store.save(exp, durable=False)
    return store


def make_hyperband_group(workspace: Path, name: str, *, seed: int = 1) -> GroupStore:
    """A finished Hyperband group (max_iter 9, eta 3): brackets 2, 1, 0 with promotions; in
    bracket 2 one configuration per rung was early-stopped (ASHA-like)."""
    t0 = 1_700_000_000.0
    info: dict[str, Any] = {
        "status": "done",
        "seed": seed,
        "algorithm": "hyperband",
        "created_at": t0,
        "metric": {"name": "loss", "optimization": "minimize"},
        "config": {"space": SPACE},
    }
    store = create_group(workspace, "synthetic", name, info, "version: 1\n")
    rng = random.Random(seed)
    clock = t0
    schedule = {2: [(9, 1.0), (3, 3.0), (1, 9.0)], 1: [(3, 3.0), (1, 9.0)], 0: [(3, 9.0)]}
    for bracket, rungs in schedule.items():
        configs = [_config(rng) for _ in range(rungs[0][0])]
        for rung, (count, resource) in enumerate(rungs):
            scored = []
            for config in configs[:count]:
                # more resource, lower loss; the ranking stays the configuration's
                final = loss_of(config) + 1.0 / resource
                exp = store.new_experiment(
                    config=config,
                    params={**config, "epochs": resource},
                    meta={"bracket": bracket, "rung": rung, "resource": resource},
                    created_at=clock,
                )
                status = (
                    Status.STOPPED
                    if (bracket == 2 and len(scored) == count - 1 and count > 1)
                    else Status.SUCCEEDED
                )
                values = _write_metrics(store, exp.id, final, int(resource))
                exp = exp.with_(
                    status=status,
                    attempt=1,
                    started_at=clock,
                    ended_at=clock + resource,
                    exit_code=0 if status is Status.SUCCEEDED else -15,
                    reason="early stopping" if status is Status.STOPPED else None,
                    metrics={"loss": values[-1]},
                    metrics_min={"loss": min(values)},
                    metrics_max={"loss": max(values)},
                    metric_lines=len(values),
                    last_step=len(values),
                )
                store.save(exp, durable=False)
                clock += resource
                scored.append((values[-1], config))
            scored.sort(key=lambda t: t[0])
            configs = [c for _, c in scored]
    return store
