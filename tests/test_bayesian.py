"""Bayesian optimization: the searcher contract, the unit-box encoding, the GP and acquisition
numerics, failures, pending experiments, determinism and a convergence sanity check.

Small budgets and few candidates keep this module fast; no assertion depends on wall-clock time.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import in_domain, is_plain, spaces
from test_search_basic import check_searcher_contract, experiment, make_space, rng_for

from polytune.algorithms._acquisition import Acquisition, log_h
from polytune.algorithms._encoding import Encoder
from polytune.algorithms._gp import GP, Kernel, Prior, _objective, _sqdist, fit_gp
from polytune.algorithms.bayesian import BayesianSearch
from polytune.experiment import Experiment, Status
from polytune.model import BOSettings, MetricSpec
from polytune.space import Space, config_key

BO_METHODS = (
    "values",
    "pvalues",
    "range",
    "linspace",
    "logspace",
    "geomspace",
    "uniform",
    "quniform",
    "loguniform",
    "qloguniform",
)
DISCRETE = ("values", "pvalues", "range", "linspace", "logspace", "geomspace")

MIXED = {
    "lr": {"loguniform": [-9.2, -2.3]},
    "dropout": {"uniform": [0.0, 0.5]},
    "batch": {"quniform": [16, 256, 16]},
    "decay": {"qloguniform": [-4, 2, 0.5]},
    "units": {"range": [16, 129, 16]},
    "alpha": {"logspace": "-6:-1:6"},
    "act": {"values": ["relu", "tanh", "sigmoid"]},
    "opt": {"pvalues": [["adam", 0.7], ["sgd", 0.3]]},
}


def bo(
    space: Space,
    n_initial: int = 3,
    n_iterations: int = 5,
    *,
    optimization: str = "minimize",
    **kwargs: Any,
) -> BayesianSearch:
    options: dict[str, Any] = {"n_warmup": 256, "n_iter": 3, "n_restarts_optimizer": 2}
    options.update(kwargs)
    return BayesianSearch(
        space,
        BOSettings(
            n_initial_trials=n_initial,
            n_iterations=n_iterations,
            metric=MetricSpec("loss", optimization),  # type: ignore[arg-type]
            **options,
        ),
    )


def drive(
    searcher: BayesianSearch,
    loss: Any,
    *,
    seed: int = 0,
    concurrency: int = 1,
) -> list[Experiment]:
    """Suggest until finished; up to ``concurrency`` run at once, the oldest finishes first."""
    history: list[Experiment] = []
    while True:
        running = [i for i, e in enumerate(history) if e.status is Status.RUNNING]
        if len(running) < concurrency and not searcher.is_finished(history):
            s = searcher.suggest(list(history), rng_for(seed, history))
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
        if not running:
            return history
        i = running[0]
        value = loss(history[i].config)
        metrics = {} if value is None else {"loss": value}
        status = Status.FAILED if value is None else Status.SUCCEEDED
        history[i] = history[i].with_(status=status, metrics=metrics)


def quadratic(config: Mapping[str, Any]) -> float:
    return (config["x"] - 0.3) ** 2 + (config["y"] + 0.2) ** 2


QUAD = {"x": {"uniform": [-1, 1]}, "y": {"uniform": [-1, 1]}}


# ----------------------------------------------------------------------------------------
# The contract
# ----------------------------------------------------------------------------------------


def test_contract_on_a_mixed_space() -> None:
    space = make_space(MIXED)
    history = check_searcher_contract(lambda: bo(space, 3, 5), space, concurrency=2)
    assert len(history) == 8
    assert [e.meta["bo_phase"] for e in history] == ["initial"] * 3 + ["model"] * 5
    assert len({config_key(e.config) for e in history}) == 8


@pytest.mark.parametrize("acquisition", ["ucb", "ei", "poi"])
@pytest.mark.parametrize(
    "kernel", [("matern", 1.5), ("matern", 2.5), ("rbf", 2.5), ("matern", 1.9)]
)
def test_every_acquisition_and_kernel_runs(acquisition: str, kernel: tuple[str, float]) -> None:
    space = make_space(QUAD)
    searcher = bo(
        space, 3, 3, acquisition_function=acquisition, kernel=kernel[0], nu=kernel[1], eps=0.01
    )
    history = drive(searcher, quadratic)
    assert len(history) == 6
    assert all(in_domain(space[n], v) for e in history for n, v in e.config.items())


def test_planned_total_is_initial_plus_iterations_capped_by_the_space() -> None:
    assert bo(make_space(QUAD), 4, 6).planned_total() == 10
    small = make_space({"a": {"values": [1, 2, 3]}, "b": {"quniform": [0, 1, 0.5]}})
    searcher = bo(small, 2, 20)
    assert searcher.planned_total() == 9  # 3 values × {0.0, 0.5, 1.0}
    history = drive(searcher, lambda c: float(c["a"]) + c["b"])
    assert len({config_key(e.config) for e in history}) == len(history) == 9
    assert searcher.is_finished(history)
    assert searcher.suggest(history, rng_for(0, history)) is None


def test_a_single_configuration_space() -> None:
    space = make_space(
        {"a": {"values": [7]}, "b": {"pvalues": [["x", 0.5], ["y", 0.5], ["z", 0.0]]}}
    )
    searcher = bo(space, 1, 5)
    assert searcher.planned_total() == 2  # "z" has probability 0: never suggested
    history = drive(searcher, lambda c: 1.0)
    assert sorted(e.config["b"] for e in history) == ["x", "y"]


def test_maximize_is_minimizing_the_negated_metric() -> None:
    space = make_space(QUAD)
    history = drive(bo(space, 6, 10, optimization="maximize"), lambda c: -quadratic(c))
    best = max(history, key=lambda e: e.metrics["loss"])
    assert quadratic(best.config) < 0.02


# ----------------------------------------------------------------------------------------
# Encoding
# ----------------------------------------------------------------------------------------


def test_log_parameters_use_real_values_in_log_space() -> None:
    enc = Encoder(
        make_space(
            {
                "a": {"logspace": "0.01:0.1:5"},  # values 1.023 … 1.259, not 0.01 … 0.1
                "b": {"geomspace": "1:1000:4"},
                "c": {"loguniform": [math.log(1e-4), math.log(1e-1)]},
                "d": {"values": [0.0001, 0.001, 0.01, 0.1, 1.0]},
                "e": {"values": [10, 20, 30, 40, 50]},
            }
        )
    )
    a, b, c, d, e = enc.dims
    assert a.kind == "ordinal" and a.log and a.positions[0] == 0.0 and a.positions[-1] == 1.0
    np.testing.assert_allclose(b.positions, [0, 1 / 3, 2 / 3, 1], atol=1e-12)
    row = enc.encode({"a": a.values[2], "b": 10.0, "c": 1e-2, "d": 0.01, "e": 30})
    assert row[c.start] == pytest.approx(2 / 3)
    assert row[d.start] == pytest.approx(0.5)  # evenly spaced in log: modelled in log
    assert not e.log and row[e.start] == pytest.approx(0.5)  # evenly spaced: linear
    decoded = enc.decode(row)
    assert decoded["a"] == a.values[2] and decoded["b"] == 10.0 and decoded["d"] == 0.01
    assert decoded["c"] == pytest.approx(1e-2)
    # Every allowed value of the logspace can be decoded (Polyaxon's bounds collapsed them all).
    assert {enc.decode(np.array([x, 0, 0, 0, 0]))["a"] for x in np.linspace(0, 1, 50)} == set(
        a.values
    )


def test_categorical_one_hot_and_booleans() -> None:
    enc = Encoder(
        make_space({"act": {"values": ["relu", "tanh"]}, "flag": {"values": [True, False]}})
    )
    assert [d.kind for d in enc.dims] == ["categorical", "categorical"] and enc.width == 4
    row = enc.encode({"act": "tanh", "flag": False})
    assert row.tolist() == [0.0, 1.0, 0.0, 1.0]
    assert enc.decode(np.array([0.5, 0.5, 0.2, 0.1])) == {
        "act": "relu",
        "flag": True,
    }  # ties: first


def test_polyaxon_decode_vectors(shared_dir: Path) -> None:
    """Polyaxon's BO decode vectors (SEMANTICS.md §4.4): nearest feasible value, argmax for one-hot.
    Polyaxon's raw vectors are in value units; ours are positions in the unit box."""
    vectors = json.loads((shared_dir / "polyaxon" / "matrix_vectors.json").read_text())
    items = vectors if isinstance(vectors, list) else vectors.get("vectors", list(vectors.values()))
    spaces_by_size = {
        7: {
            "feature1": {"values": [1, 2, 3, 4, 5]},
            "feature2": {"linspace": [1, 5, 5]},
            "feature3": {"range": [1, 6, 1]},
            "feature4": {"uniform": [1, 5]},
            "feature5": {"values": ["a", "b", "c"]},
        },
        3: {
            "feature1": {"values": [1, 2, 3]},
            "feature2": {"linspace": [1, 2, 5]},
            "feature3": {"range": [1, 5, 1]},
        },
    }
    checked = 0
    for v in items:
        if v.get("category") != "bo_decode":
            continue
        raw = v["input"]["raw_vector"]
        matrix = spaces_by_size[len(raw)]
        enc = Encoder(make_space(matrix))
        row = np.zeros(enc.width)
        for dim in enc.dims:
            if dim.kind == "categorical":
                row[dim.start : dim.start + dim.width] = raw[len(matrix) - 1 :]
                continue
            i = list(matrix).index(dim.name)
            bounds = make_space(matrix)[dim.name].bounds()
            assert bounds is not None
            row[dim.start] = (raw[i] - bounds[0]) / (bounds[1] - bounds[0])
        decoded = enc.decode(row)
        for name, expected in v["expected"].items():
            assert decoded[name] == pytest.approx(expected), (v, decoded)
        checked += 1
    assert checked == 6


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(space=spaces(methods=DISCRETE, max_params=3, max_values=8), seed=st.integers(0, 2**16))
def test_discrete_configurations_round_trip_exactly(space: Space, seed: int) -> None:
    enc = Encoder(space)
    rng = np.random.default_rng(seed)
    for _ in range(5):
        config = space.sample(rng)
        if any(enc.dims[i].index_of(config[n]) is None for i, n in enumerate(enc.names)):
            continue  # a pvalues value of probability 0: never drawn, never suggested
        assert config_key(enc.decode(enc.encode(config))) == config_key(config)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(space=spaces(methods=BO_METHODS, max_params=4, max_values=8), seed=st.integers(0, 2**16))
def test_any_point_of_the_box_decodes_to_allowed_values(space: Space, seed: int) -> None:
    enc = Encoder(space)
    rng = np.random.default_rng(seed)
    rows = np.vstack([rng.random((20, enc.width)), rng.integers(0, 2, (4, enc.width))])
    for row in rows:
        config = enc.decode(row)
        assert is_plain(config)
        for name, value in config.items():
            assert in_domain(space[name], value), (name, value, space[name].describe())
        # Snapping is idempotent and lands on the same configuration.
        snapped = enc.snap(row)[0]
        assert config_key(enc.decode(snapped)) == config_key(config)
        assert np.array_equal(enc.snap(snapped)[0], snapped)
        # q-grid and discrete values survive a round trip.
        again = enc.decode(enc.encode(config))
        for d in enc.dims:
            if d.kind != "real":
                assert config_key({"v": again[d.name]}) == config_key({"v": config[d.name]})


@pytest.mark.parametrize(
    ("matrix", "values"),
    [
        ({"q": {"quniform": [0.05, 1.0, 0.1]}}, None),
        ({"q": {"qloguniform": [-3, 2, 1]}}, None),  # 0 is a value: exp(-3) // 1 == 0
        ({"q": {"qloguniform": [0, 0.0001, 1]}}, [1.0]),  # a single value: nothing to learn
    ],
)
def test_q_grids_round_trip_every_multiple(
    matrix: dict[str, Any], values: list[float] | None
) -> None:
    space = make_space(matrix)
    enc = Encoder(space)
    dim = enc.dims[0]
    count = dim.count
    assert count is not None
    allowed = (
        [float((dim.kmin + i) * dim.q) for i in range(count)]
        if dim.kind == "qgrid"
        else list(dim.values)
    )
    if values is not None:
        assert allowed == values
    for v in allowed:
        assert in_domain(space["q"], v)
        assert enc.decode(enc.encode({"q": v}))["q"] == v
    rows = enc.enumerate_all()
    assert sorted(enc.decode(r)["q"] for r in rows) == sorted(allowed)


# ----------------------------------------------------------------------------------------
# GP and acquisition numerics
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kernel", [Kernel("matern", 2.5), Kernel("matern", 1.5), Kernel("rbf"), Kernel("matern", 1.9)]
)
def test_gp_gradients_match_finite_differences(kernel: Kernel) -> None:
    from scipy.optimize import approx_fprime

    rng = np.random.default_rng(1)
    X, y = rng.random((15, 3)), rng.standard_normal(15)
    D2 = _sqdist(X, X)
    theta = np.array([-0.5, 0.2, 0.1, 0.3, -4.0])
    _, grad = _objective(theta, D2, y, kernel, Prior())
    numeric = approx_fprime(theta, lambda t: _objective(t, D2, y, kernel, Prior())[0], 1e-6)
    np.testing.assert_allclose(grad, numeric, rtol=1e-3, atol=1e-3)
    gp = GP(X, y, theta, kernel)
    for kind in ("ei", "poi", "ucb"):
        acq = Acquisition(gp, kind, float(y.min()), kappa=2.0, eps=0.01)
        x = rng.random((1, 3))
        v, g = acq.values_and_grads(x)
        assert v[0] == pytest.approx(acq.values(x)[0])
        num = approx_fprime(x[0], lambda z, acq=acq: float(acq.values(z[None])[0]), 1e-7)
        np.testing.assert_allclose(g[0], num, rtol=1e-3, atol=1e-4)


def test_log_ei_is_stable_far_from_the_incumbent() -> None:
    from scipy import special

    z = np.array([-1e10, -1e4, -40.0, -5.0, -1.0, -0.5, 0.0, 3.0, 50.0])
    lh = log_h(z)
    assert np.all(np.isfinite(lh)) and np.all(np.diff(lh) > 0)
    direct = np.log(
        np.exp(-0.5 * z[3:] ** 2) / math.sqrt(2 * math.pi) + z[3:] * special.ndtr(z[3:])
    )
    np.testing.assert_allclose(lh[3:], direct, rtol=1e-9)


def test_gp_fit_recovers_a_smooth_function_and_survives_repeated_points() -> None:
    rng = np.random.default_rng(0)
    X = rng.random((30, 2))
    f = np.sin(3 * X[:, 0]) + X[:, 1] ** 2
    X = np.vstack([X, X[:5]])  # exact repeats: the noise term keeps K positive definite
    y = np.concatenate([f, f[:5]])
    y = (y - y.mean()) / y.std()
    gp = fit_gp(X, y, Kernel(), [np.zeros(4)], n_optimize=1)
    Xt = rng.random((50, 2))
    ft = np.sin(3 * Xt[:, 0]) + Xt[:, 1] ** 2
    mean, var = gp.predict(Xt)
    pred = mean * np.concatenate([f, f[:5]]).std() + np.concatenate([f, f[:5]]).mean()
    assert np.max(np.abs(pred - ft)) < 0.1
    assert np.all(var > 0)


# ----------------------------------------------------------------------------------------
# History: failures, pending experiments, determinism
# ----------------------------------------------------------------------------------------


def _observed(space: Space, n: int, seed: int = 3) -> list[Experiment]:
    rng = np.random.default_rng(seed)
    configs = [space.sample(rng) for _ in range(n)]
    return [experiment(i + 1, c, metrics={"loss": quadratic(c)}) for i, c in enumerate(configs)]


def test_failed_and_metricless_experiments_never_crash_the_model() -> None:
    space = make_space(QUAD)
    searcher = bo(space, 2, 30)
    history = _observed(space, 4)
    history += [
        experiment(5, {"x": 0.9, "y": 0.9}, status=Status.FAILED),  # no metric at all
        experiment(
            6, {"x": -0.9, "y": 0.9}, status=Status.SUCCEEDED, metrics={"loss": float("nan")}
        ),
        experiment(7, {"x": 0.9, "y": -0.9}, status=Status.STOPPED, metrics={"loss": 0.5}),
        experiment(8, {"x": 0.0, "y": 0.0}, status=Status.FAILED, metrics={"loss": float("inf")}),
        experiment(9, {"x": 0.1, "y": 0.1}, status=Status.SUCCEEDED, metrics={"acc": 1.0}),
    ]
    s = searcher.suggest(history, rng_for(0, history))
    assert s is not None and s.meta["bo_phase"] == "model"
    assert config_key(s.config) not in {config_key(e.config) for e in history}


def test_only_failures_keep_the_initial_design_going() -> None:
    space = make_space(QUAD)
    searcher = bo(space, 2, 10)
    history = drive(searcher, lambda c: None)  # every experiment fails
    assert len(history) == 12 and all(e.status is Status.FAILED for e in history)
    assert {e.meta["bo_phase"] for e in history} == {"initial"}
    assert len({config_key(e.config) for e in history}) == 12


def test_same_history_and_seed_give_the_same_suggestion_also_when_resumed() -> None:
    space = make_space(MIXED)
    history = drive(bo(space, 3, 4), lambda c: float(c["dropout"]) + math.log(c["lr"]) / 10, seed=5)
    for k in range(len(history)):
        prefix = history[:k]
        fresh = bo(space, 3, 4).suggest(prefix, rng_for(5, prefix))  # a resumed group
        assert fresh is not None
        assert config_key(fresh.config) == config_key(history[k].config)
        assert config_key(fresh.meta) == config_key(history[k].meta)
    other = drive(bo(space, 3, 4), lambda c: float(c["dropout"]), seed=6)
    assert [e.config for e in other] != [e.config for e in history]


def test_pending_points_change_the_suggestion() -> None:
    space = make_space(QUAD)
    searcher = bo(space, 2, 30)
    history = _observed(space, 8)
    first = searcher.suggest(history, rng_for(0, history))
    assert first is not None
    running = [*history, experiment(9, first.config, status=Status.RUNNING)]
    # The same rng: only the pending experiment differs.
    second = searcher.suggest(running, rng_for(0, history))
    assert second is not None and config_key(second.config) != config_key(first.config)
    distance = math.dist(
        (first.config["x"], first.config["y"]), (second.config["x"], second.config["y"])
    )
    assert distance > 1e-3  # not a repeat of the running point, nor a hair away from it


def test_no_duplicates_in_a_small_discrete_space() -> None:
    space = make_space({"a": {"range": [0, 6, 1]}, "b": {"values": ["x", "y", "z"]}})
    searcher = bo(space, 3, 100)
    history = drive(searcher, lambda c: (c["a"] - 2) ** 2 + (c["b"] == "y"), concurrency=3)
    keys = [config_key(e.config) for e in history]
    assert len(keys) == len(set(keys)) == 18 == searcher.planned_total()


def test_fully_discrete_space_suggests_the_best_unevaluated_point() -> None:
    space = make_space({"a": {"range": [0, 20, 1]}})
    searcher = bo(space, 3, 5)
    history = drive(searcher, lambda c: (c["a"] - 10) ** 2)
    assert 10 in {e.config["a"] for e in history}


def test_converges_on_a_2d_quadratic() -> None:
    """A sanity check, not a benchmark: BO gets much closer than its initial design."""
    space = make_space(QUAD)
    for seed in range(3):
        history = drive(bo(space, 6, 14, n_warmup=512), quadratic, seed=seed)
        initial = min(e.metrics["loss"] for e in history[:6])
        best = min(e.metrics["loss"] for e in history)
        assert best < 1e-3 and best < initial / 10


def test_concurrency_keeps_suggesting_distinct_points() -> None:
    space = make_space(QUAD)
    history = drive(bo(space, 4, 12), quadratic, concurrency=4)
    assert len(history) == 16
    assert len({config_key(e.config) for e in history}) == 16
    assert min(e.metrics["loss"] for e in history) < 0.01


# ----------------------------------------------------------------------------------------
# Wiring: config → searcher, import discipline, the real CLI
# ----------------------------------------------------------------------------------------


def test_config_builds_the_bayesian_searcher(tmp_path: Path) -> None:
    from polytune.config import load
    from polytune.searchers import make_searcher

    path = tmp_path / "bo.yaml"
    path.write_text(
        textwrap.dedent(
            """
            version: 1
            kind: group
            hptuning:
              concurrency: 2
              bo:
                n_initial_trials: 3
                n_iterations: 4
                metric: {name: loss, optimization: minimize}
              matrix:
                lr: {loguniform: [-9, -2]}
                act: {values: [relu, tanh]}
            run:
              cmd: echo {{ lr }} {{ act }}
            """
        )
    )
    searcher = make_searcher(load([path]))
    assert isinstance(searcher, BayesianSearch)
    assert searcher.planned_total() == 7
    assert searcher.settings.acquisition_function == "ei"


def test_polytune_modules_do_not_import_scipy_or_sklearn() -> None:
    code = (
        "import sys\n"
        "import polytune.cli, polytune.config, polytune.driver, polytune.searchers, polytune.space\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('scipy', 'sklearn')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


OBJECTIVE = """\
import json, os
p = json.loads(os.environ["POLYTUNE_PARAMS"])
loss = (p["x"] - 0.3) ** 2 + (p["k"] - 4) ** 2 / 100 + (0 if p["c"] == "b" else 0.5)
if p["x"] > 0.95:
    raise SystemExit(2)
with open(os.environ["POLYTUNE_METRICS_FILE"], "a") as fh:
    fh.write(json.dumps({"loss": loss}) + "\\n")
"""


@pytest.mark.slow
def test_bo_group_end_to_end_through_the_cli(tmp_path: Path) -> None:
    (tmp_path / "objective.py").write_text(OBJECTIVE)
    (tmp_path / "bo.yaml").write_text(
        textwrap.dedent(
            f"""
            version: 1
            kind: group
            hptuning:
              concurrency: 2
              seed: 3
              bo:
                n_initial_trials: 4
                n_iterations: 6
                metric: {{name: loss, optimization: minimize}}
                utility_function: {{n_warmup: 256, n_iter: 3}}
              matrix:
                x: {{uniform: [0, 1]}}
                k: {{range: [0, 10, 1]}}
                c: {{values: [a, b]}}
            run:
              cmd: {sys.executable} objective.py
            """
        )
    )
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "polytune",
            "run",
            "bo.yaml",
            "--dir",
            str(tmp_path / "ws"),
            "--json",
            "-q",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert sum(doc["counts"].values()) == 10
    records = [
        json.loads(p.read_text())
        for p in sorted((tmp_path / "ws").glob("*/experiments/*/experiment.json"))
    ]
    assert len(records) == 10
    assert len({config_key(r["config"]) for r in records}) == 10
    assert [r["meta"]["bo_phase"] for r in records] == ["initial"] * 4 + ["model"] * 6
    assert doc["best"]["value"] < 0.5  # found c == b
