"""Benchmark objectives: synthetic functions with known optima and scikit-learn tasks on bundled
datasets (Bayesmark style: a model, a dataset, cross-validated loss, lower is better).

Each task has a polyaxonfile ``matrix`` (the search space as a user would write it), a loss
function of a configuration, and the known optimum (None for the ML tasks).

As a script (how ``polytune run`` calls it; see ``benchmarks/*.yaml``):

    python objectives.py TASK            # reads the params from $POLYTUNE_PARAMS
    python objectives.py TASK --params '{"x1": 1.0, "x2": 2.0}'

and reports ``loss`` with ``polytune.tracking.log_metrics``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

# ----------------------------------------------------------------------------------------
# Synthetic functions (Surjanovic & Bingham, "Virtual Library of Simulation Experiments")
# ----------------------------------------------------------------------------------------


def branin(c: Mapping[str, Any]) -> float:
    x1, x2 = float(c["x1"]), float(c["x2"])
    b, cc, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + cc * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


_H_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H_A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
_H_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)


def hartmann6(c: Mapping[str, Any]) -> float:
    x = np.array([float(c[f"x{i}"]) for i in range(1, 7)])
    return float(-np.sum(_H_ALPHA * np.exp(-np.sum(_H_A * (x - _H_P) ** 2, axis=1))))


def rosenbrock4(c: Mapping[str, Any]) -> float:
    x = np.array([float(c[f"x{i}"]) for i in range(1, 5)])
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2))


def ackley5(c: Mapping[str, Any]) -> float:
    x = np.array([float(c[f"x{i}"]) for i in range(1, 6)])
    a = -20.0 * math.exp(-0.2 * math.sqrt(float(np.mean(x * x))))
    b = -math.exp(float(np.mean(np.cos(2 * math.pi * x))))
    return a + b + 20.0 + math.e


# ----------------------------------------------------------------------------------------
# scikit-learn tasks (bundled datasets, fixed folds: deterministic given the configuration)
# ----------------------------------------------------------------------------------------


@cache
def _data(name: str) -> tuple[Any, Any]:
    from sklearn import datasets

    loader = {
        "breast_cancer": datasets.load_breast_cancer,
        "diabetes": datasets.load_diabetes,
        "digits": datasets.load_digits,
        "wine": datasets.load_wine,
    }[name]
    X, y = loader(return_X_y=True)
    if name == "digits":  # a stratified-enough third of it: the MLP task stays ~0.3 s a run
        X, y = X[:600], y[:600]
    return X, y


def _cv_loss(model: Any, dataset: str, scoring: str, folds: int = 3) -> float:
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = _data(dataset)
    classify = dataset != "diabetes"
    cv = (StratifiedKFold if classify else KFold)(folds, shuffle=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = cross_val_score(
            make_pipeline(StandardScaler(), model), X, y, cv=cv, scoring=scoring
        )
    return float(-np.mean(scores))


def svc_breast_cancer(c: Mapping[str, Any]) -> float:
    """SVC (RBF) on breast_cancer, log-scaled C and gamma; 5-fold CV error rate (+1)."""
    from sklearn.svm import SVC

    model = SVC(C=float(c["C"]), gamma=float(c["gamma"]))
    return _cv_loss(model, "breast_cancer", "accuracy", folds=5) + 1.0


def enet_diabetes(c: Mapping[str, Any]) -> float:
    """Elastic net on diabetes: log alpha, l1_ratio; 5-fold CV mean squared error / 1000."""
    from sklearn.linear_model import ElasticNet

    model = ElasticNet(alpha=float(c["alpha"]), l1_ratio=float(c["l1_ratio"]), max_iter=5000)
    return _cv_loss(model, "diabetes", "neg_mean_squared_error", folds=5) / 1000.0


def mlp_digits(c: Mapping[str, Any]) -> float:
    """A small MLP on digits: log learning rate, log alpha, hidden units, activation
    (categorical); 3-fold CV log loss."""
    from sklearn.neural_network import MLPClassifier

    model = MLPClassifier(
        hidden_layer_sizes=(int(c["hidden"]),),
        activation=str(c["activation"]),
        alpha=float(c["alpha"]),
        learning_rate_init=float(c["learning_rate"]),
        max_iter=25,
        random_state=0,
    )
    return _cv_loss(model, "digits", "neg_log_loss")


def tree_wine(c: Mapping[str, Any]) -> float:
    """A decision tree on wine: depth, min samples per leaf, criterion (categorical), share of
    features; 5-fold CV error rate (+1)."""
    from sklearn.tree import DecisionTreeClassifier

    model = DecisionTreeClassifier(
        max_depth=int(c["max_depth"]),
        min_samples_leaf=int(c["min_samples_leaf"]),
        criterion=str(c["criterion"]),
        max_features=float(c["max_features"]),
        random_state=0,
    )
    return _cv_loss(model, "wine", "accuracy", folds=5) + 1.0


@dataclass(frozen=True)
class Task:
    name: str
    matrix: Mapping[str, Any]
    loss: Callable[[Mapping[str, Any]], float]
    optimum: float | None  # None: the best loss any method found
    kind: str  # "synthetic" | "ml"


def _box(names: list[str], lo: float, hi: float) -> dict[str, Any]:
    return {n: {"uniform": [lo, hi]} for n in names}


TASKS: dict[str, Task] = {
    t.name: t
    for t in [
        Task(
            "branin",
            {"x1": {"uniform": [-5, 10]}, "x2": {"uniform": [0, 15]}},
            branin,
            0.397887357729739,
            "synthetic",
        ),
        Task(
            "hartmann6",
            _box([f"x{i}" for i in range(1, 7)], 0.0, 1.0),
            hartmann6,
            -3.32236801141551,
            "synthetic",
        ),
        Task(
            "rosenbrock4",
            _box([f"x{i}" for i in range(1, 5)], -5.0, 10.0),
            rosenbrock4,
            0.0,
            "synthetic",
        ),
        Task(
            "ackley5",
            _box([f"x{i}" for i in range(1, 6)], -32.768, 32.768),
            ackley5,
            0.0,
            "synthetic",
        ),
        Task(
            "svc_breast_cancer",
            # natural-log bounds (Polyaxon's loguniform): C in [1e-3, 1e3], gamma in [1e-5, 10]
            {"C": {"loguniform": [-6.908, 6.908]}, "gamma": {"loguniform": [-11.513, 2.303]}},
            svc_breast_cancer,
            None,
            "ml",
        ),
        Task(
            "enet_diabetes",
            {"alpha": {"loguniform": [-9.21, 2.303]}, "l1_ratio": {"uniform": [0.0, 1.0]}},
            enet_diabetes,
            None,
            "ml",
        ),
        Task(
            "mlp_digits",
            {
                "learning_rate": {"loguniform": [-9.21, -1.609]},
                "alpha": {"loguniform": [-11.513, 0.0]},
                "hidden": {"range": [8, 129, 8]},
                "activation": {"values": ["relu", "tanh", "logistic"]},
            },
            mlp_digits,
            None,
            "ml",
        ),
        Task(
            "tree_wine",
            {
                "max_depth": {"range": [1, 16, 1]},
                "min_samples_leaf": {"range": [1, 31, 1]},
                "criterion": {"values": ["gini", "entropy", "log_loss"]},
                "max_features": {"uniform": [0.1, 1.0]},
            },
            tree_wine,
            None,
            "ml",
        ),
    ]
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=sorted(TASKS))
    parser.add_argument("--params", default=None, help="JSON (default: $POLYTUNE_PARAMS)")
    args = parser.parse_args()
    params = json.loads(args.params or os.environ.get("POLYTUNE_PARAMS") or "{}")
    loss = TASKS[args.task].loss(params)
    from polytune.tracking import log_metrics

    log_metrics(loss=loss)


if __name__ == "__main__":
    main()
