"""TPE (``polytune.algorithms.tpe``): the searcher contract, determinism, every matrix method,
the constant liar, failures, ``pvalues`` priors, ``rand``/``anneal``, convergence, and one run
through the real CLI."""

from __future__ import annotations

import ast
import json
import math
import subprocess
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import ALL_METHODS, spaces
from test_search_basic import check_searcher_contract, experiment, make_space, rng_for

from polytune.algorithms.random_search import RandomSearch
from polytune.algorithms.tpe import PHASE_KEY, TPESearch, default_gamma, default_weights, make
from polytune.config import load_text
from polytune.experiment import Experiment, Searcher, Status
from polytune.model import MetricSpec, TPESettings
from polytune.space import Space, config_key

LOSS = MetricSpec("loss", "minimize")

MIXED = {
    "lr": {"loguniform": [-9.2, -2.3]},
    "momentum": {"uniform": [0.5, 0.99]},
    "dropout": {"quniform": [0.0, 0.5, 0.05]},
    "batch": {"qloguniform": [3.0, 6.0, 8]},
    "wd": {"normal": [0.0, 1.0]},
    "scale": {"qlognormal": [0.0, 0.5, 0.1]},
    "units": {"range": [16, 129, 16]},
    "alpha": {"logspace": "-6:-1:6"},
    "act": {"pvalues": [["relu", 0.6], ["tanh", 0.3], ["elu", 0.1]]},
    "opt": {"values": ["adam", "sgd", True]},
    "day": {"daterange": ["2024-01-01", "2024-01-08", 1]},
}


def tpe(space: Space, n: int, **kwargs: Any) -> TPESearch:
    return TPESearch(space, n, LOSS, **kwargs)


def quadratic(config: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> float:
    return (float(config["x"]) - 0.3) ** 2 + (float(config["y"]) + 0.2) ** 2


QUADRATIC = {"x": {"uniform": [-2, 2]}, "y": {"uniform": [-2, 2]}}


def drive(
    searcher: Searcher,
    loss: Callable[[Mapping[str, Any]], float | None],
    seed: int,
    *,
    concurrency: int = 1,
) -> list[Experiment]:
    """Run to the end the way the driver does; ``loss`` None = the experiment failed."""
    history: list[Experiment] = []
    while True:
        running = sum(e.status is Status.RUNNING for e in history)
        if running < concurrency and not searcher.is_finished(history):
            s = searcher.suggest(list(history), rng_for(seed, history))
            assert s is not None, "a free slot got no suggestion"
            history.append(
                experiment(len(history) + 1, s.config, status=Status.RUNNING, meta=s.meta)
            )
            continue
        i = next((i for i, e in enumerate(history) if e.status is Status.RUNNING), None)
        if i is None:
            return history
        value = loss(history[i].config)
        if value is None:
            history[i] = history[i].with_(status=Status.FAILED)
        else:
            history[i] = history[i].with_(status=Status.SUCCEEDED, metrics={"loss": value})


def best(history: Sequence[Experiment]) -> float:
    return min(float(e.metrics["loss"]) for e in history if "loss" in e.metrics)


# ----------------------------------------------------------------------------------------
# The contract and determinism
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 4])
def test_contract_mixed_space(concurrency: int) -> None:
    space = make_space(MIXED)
    history = check_searcher_contract(
        lambda: tpe(space, 30, n_initial_trials=5), space, concurrency=concurrency, seed=5
    )
    assert len(history) == 30
    phases = [e.meta[PHASE_KEY] for e in history]
    assert phases[:5] == ["startup"] * 5
    assert set(phases[5:]) == {"model"}
    assert len({config_key(e.config) for e in history}) == 30


def test_contract_anneal() -> None:
    space = make_space(MIXED)
    history = check_searcher_contract(
        lambda: tpe(space, 25, n_initial_trials=5, algorithm="anneal"), space, concurrency=3
    )
    assert len(history) == 25
    assert {e.meta[PHASE_KEY] for e in history[5:]} == {"anneal"}


def test_contract_small_discrete_space_runs_every_configuration_once() -> None:
    space = make_space({"a": {"values": [1, 2, 3]}, "b": {"values": ["x", "y"]}})
    searcher = tpe(space, 50, n_initial_trials=2)
    assert searcher.planned_total() == 6
    history = check_searcher_contract(lambda: tpe(space, 50, n_initial_trials=2), space)
    assert sorted(config_key(e.config) for e in history) == sorted(
        config_key(c) for c in space.grid()
    )


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    space=spaces(ALL_METHODS, max_params=3, max_values=5),
    n=st.integers(1, 14),
    seed=st.integers(0, 2**32 - 1),
    concurrency=st.integers(1, 3),
    algorithm=st.sampled_from(["tpe", "anneal"]),
)
def test_contract_every_method_property(
    space: Space, n: int, seed: int, concurrency: int, algorithm: str
) -> None:
    """Every matrix method: suggestions lie in the domain, hold plain values, never repeat,
    and the search ends (``check_searcher_contract`` checks the domain with an oracle)."""
    history = check_searcher_contract(
        lambda: tpe(space, n, n_initial_trials=3, algorithm=algorithm),  # type: ignore[arg-type]
        space,
        seed=seed,
        concurrency=concurrency,
        check_fresh=False,
    )
    keys = [config_key(e.config) for e in history]
    assert len(keys) == len(set(keys))
    assert len(history) <= tpe(space, n).planned_total()


def test_same_seed_and_history_give_the_same_suggestion_after_resume() -> None:
    space = make_space(MIXED)
    history = drive(tpe(space, 40, n_initial_trials=5), lambda c: float(c["momentum"]), 11)
    # A group resumed at any point: a fresh searcher, the same history prefix, the same rng.
    replay = tpe(space, 40, n_initial_trials=5)
    for k in range(len(history)):
        prefix = history[:k]
        s = replay.suggest(prefix, rng_for(11, prefix))
        assert s is not None and config_key(s.config) == config_key(history[k].config)
    # An unrelated history on the same searcher object (its fold is reset, not reused).
    other = drive(tpe(space, 20, n_initial_trials=5), lambda c: float(c["momentum"]), 12)
    a = replay.suggest(other, rng_for(3, other))
    b = tpe(space, 40, n_initial_trials=5).suggest(other, rng_for(3, other))
    assert a is not None and b is not None and config_key(a.config) == config_key(b.config)


def test_another_seed_gives_other_suggestions() -> None:
    space = make_space(QUADRATIC)
    a = drive(tpe(space, 15), quadratic, 1)
    b = drive(tpe(space, 15), quadratic, 2)
    assert [e.config for e in a] != [e.config for e in b]


# ----------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------


def test_gamma_and_weights_follow_optuna() -> None:
    assert [default_gamma(n) for n in (1, 9, 10, 11, 100, 250, 1000)] == [1, 1, 1, 2, 10, 25, 25]
    assert list(default_weights(3)) == [1.0, 1.0, 1.0]
    w = default_weights(40)
    assert len(w) == 40 and w[0] == pytest.approx(1 / 40) and np.all(w[-25:] == 1.0)
    assert np.all(np.diff(w) >= 0)


def test_log_scale_parameters_are_modelled_in_log_space() -> None:
    searcher = tpe(make_space(MIXED), 10)
    dims = {d.param.name: d for d in searcher._dims}
    assert dims["lr"].encode(math.exp(-4.0)) == pytest.approx(-4.0)
    assert dims["lr"].decode(-4.0) == pytest.approx(math.exp(-4.0))
    # logspace / range / dates: the rank of the value (log-even, linear, by day)
    assert dims["alpha"].encode(1e-3) == 3.0
    assert dims["units"].encode(64) == 3.0
    assert dims["day"].encode("2024-01-03") == 2.0
    # quantized: the middle of the value's cell [v, v + q), in log space for qloguniform
    assert dims["batch"].encode(64.0) == pytest.approx(0.5 * (math.log(64) + math.log(72)))
    assert dims["dropout"].encode(0.1) == pytest.approx(0.125)
    # categorical: the index; the normal family keeps its prior
    assert dims["opt"].encode(True) == 2.0
    assert dims["wd"].prior_mu == 0.0 and dims["wd"].prior_sigma == 1.0


def test_values_outside_the_space_are_left_out_of_the_model() -> None:
    space = make_space(QUADRATIC)
    searcher = tpe(space, 30, n_initial_trials=2)
    history = [
        experiment(1, {"x": 0.1, "y": 0.2}, metrics={"loss": 1.0}),
        experiment(2, {"x": "oops", "y": 0.2}, metrics={"loss": 0.0}),
        experiment(3, {"y": 0.2}, metrics={"loss": 0.0}),
    ]
    s = searcher.suggest(history, rng_for(0, history))
    assert s is not None and s.meta[PHASE_KEY] == "model"


def test_pvalues_prior_shapes_the_model_and_zero_probability_values_never_come() -> None:
    space = make_space(
        {
            "act": {"pvalues": [["relu", 0.7], ["tanh", 0.3], ["elu", 0.0]]},
            "x": {"uniform": [0, 1]},
        }
    )
    counts = {"relu": 0, "tanh": 0, "elu": 0}
    for seed in range(4):
        history = drive(tpe(space, 40, n_initial_trials=5), lambda c: float(c["x"]), seed)
        for e in history[5:]:
            counts[e.config["act"]] += 1
    assert counts["elu"] == 0
    # The loss ignores `act`: both estimators keep the prior's shape, so relu stays ahead.
    assert counts["relu"] > 1.5 * counts["tanh"] > 0


def test_single_reachable_value_is_not_modelled() -> None:
    space = make_space(
        {
            "x": {"uniform": [0, 1]},
            "c": {"pvalues": [["a", 0.0], ["b", 1.0 - 1e-12]]},
            "k": {"values": [7]},
            "z": {"normal": [3.0, 0.0]},
        }
    )
    searcher = tpe(space, 20, n_initial_trials=2)
    assert [d.param.name for d in searcher._dims] == ["x"]
    history = drive(searcher, lambda c: float(c["x"]), 0)
    assert {(e.config["c"], e.config["k"], e.config["z"]) for e in history} == {("b", 7, 3.0)}


# ----------------------------------------------------------------------------------------
# Running experiments (constant liar) and failures
# ----------------------------------------------------------------------------------------


def _observed(space: Space, n: int, seed: int) -> list[Experiment]:
    rng = np.random.default_rng(seed)
    configs = [space.sample(rng) for _ in range(n)]
    return [experiment(i + 1, c, metrics={"loss": quadratic(c)}) for i, c in enumerate(configs)]


def test_constant_liar_changes_suggestions_while_experiments_run() -> None:
    """As the driver does: the model's suggestion starts running, and the next slot frees.
    The liar puts the running experiment in the bad set, so the next suggestion moves away;
    without it, the running experiment would not change the model at all."""
    space = make_space(QUADRATIC)
    done = _observed(space, 20, seed=0)
    changed = 0
    far_with, far_without = [], []
    for seed in range(40):
        first = tpe(space, 100).suggest(done, np.random.default_rng([seed, 0]))
        assert first is not None
        running = [experiment(21, first.config, status=Status.RUNNING)]
        rng = [seed, 1]
        liar = tpe(space, 100).suggest(done + running, np.random.default_rng(rng))
        honest = tpe(space, 100, constant_liar=False).suggest(
            done + running, np.random.default_rng(rng)
        )
        alone = tpe(space, 100).suggest(done, np.random.default_rng(rng))
        assert liar is not None and honest is not None and alone is not None
        if honest.config != first.config:  # (else it is the one repeat refused)
            assert honest.config == alone.config
        changed += liar.config != honest.config
        point = (first.config["x"], first.config["y"])
        far_with.append(math.dist((liar.config["x"], liar.config["y"]), point))
        far_without.append(math.dist((honest.config["x"], honest.config["y"]), point))
    assert changed >= 15
    assert np.mean(far_with) > 1.5 * np.mean(far_without)


def test_every_free_slot_gets_a_suggestion() -> None:
    space = make_space({"a": {"values": [1, 2, 3, 4, 5, 6, 7, 8]}, "x": {"quniform": [0, 4, 1]}})
    history = drive(tpe(space, 30, n_initial_trials=4), lambda c: float(c["a"]), 0, concurrency=8)
    assert len(history) == 30  # ``drive`` asserts that no free slot was refused


def test_failures_count_toward_the_total_but_are_not_observations() -> None:
    space = make_space(QUADRATIC)
    failed = [
        experiment(i + 1, space.sample(np.random.default_rng(i)), status=Status.FAILED)
        for i in range(12)
    ]
    searcher = tpe(space, 15, n_initial_trials=10)
    s = searcher.suggest(failed, rng_for(0, failed))
    assert s is not None and s.meta[PHASE_KEY] == "startup"  # nothing observed yet
    # A metric-less success is a failure too; a stopped experiment with a value is observed.
    history = [
        *failed,
        experiment(13, {"x": 0.0, "y": 0.0}, metrics={"acc": 1.0}),
        experiment(14, {"x": 0.5, "y": 0.5}, status=Status.STOPPED, metrics={"loss": 0.5}),
    ]
    s = searcher.suggest(history, rng_for(0, history))
    assert s is not None and s.meta[PHASE_KEY] == "model"
    history.append(experiment(15, s.config, status=Status.FAILED))
    assert searcher.is_finished(history)
    assert searcher.suggest(history, rng_for(0, history)) is None


def test_failed_regions_are_avoided() -> None:
    space = make_space({"x": {"uniform": [0, 10]}})
    xs = np.linspace(0.25, 9.75, 20)
    observed = [
        experiment(i + 1, {"x": float(x)}, metrics={"loss": float(x)}) for i, x in enumerate(xs)
    ]
    crashes = [
        experiment(21 + i, {"x": float(x)}, status=Status.FAILED)
        for i, x in enumerate(np.linspace(0.05, 1.5, 15))
    ]
    inside_with = inside_without = 0
    for seed in range(40):
        a = tpe(space, 100).suggest(observed + crashes, np.random.default_rng(seed))
        b = tpe(space, 100).suggest(observed, np.random.default_rng(seed))
        assert a is not None and b is not None
        inside_with += a.config["x"] <= 1.5
        inside_without += b.config["x"] <= 1.5
    assert inside_with < inside_without


# ----------------------------------------------------------------------------------------
# rand, anneal and convergence
# ----------------------------------------------------------------------------------------


def test_convergence_on_a_quadratic() -> None:
    space = make_space(QUADRATIC)
    seeds = range(6)
    tpe_best = [best(drive(tpe(space, 50), quadratic, s)) for s in seeds]
    anneal_best = [best(drive(tpe(space, 50, algorithm="anneal"), quadratic, s)) for s in seeds]
    random_best = [best(drive(RandomSearch(space, 50), quadratic, s)) for s in seeds]
    assert np.median(tpe_best) < 0.5 * np.median(random_best)
    assert np.median(anneal_best) < np.median(random_best)
    assert np.median(tpe_best) < 0.02


def _config(matrix_kind: dict[str, Any]) -> Any:
    doc = {
        "version": 1.1,
        "kind": "operation",
        "matrix": {
            **matrix_kind,
            "numRuns": 6,
            "maxIterations": 2,
            "metric": {"name": "loss", "optimization": "minimize"},
            "params": {
                "lr": {"kind": "loguniform", "value": [-5, -1]},
                "act": {"kind": "pchoice", "value": [["relu", 0.5], ["tanh", 0.5]]},
            },
        },
        "urlRef": "x",
    }
    return load_text(yaml.safe_dump(doc), Path("/tmp"))


def test_make_maps_the_hyperopt_algorithms() -> None:
    rand = make(_config({"kind": "hyperopt", "algorithm": "rand"}))
    assert isinstance(rand, RandomSearch) and rand.planned_total() == 12
    anneal = make(_config({"kind": "hyperopt", "algorithm": "anneal"}))
    assert isinstance(anneal, TPESearch) and anneal.algorithm == "anneal"
    v2 = make(_config({"kind": "tpe", "numInitialRuns": 4}))
    assert isinstance(v2, TPESearch) and v2.algorithm == "tpe" and v2.n_initial_trials == 4


def test_hptuning_tpe_block() -> None:
    doc = {
        "version": 1,
        "kind": "group",
        "hptuning": {
            "tpe": {
                "n_experiments": 40,
                "metric": {"name": "acc", "optimization": "maximize"},
                "n_initial_trials": 6,
                "n_ei_candidates": 48,
            },
            "matrix": {
                "d": {"daterange": ["2024-01-01", "2024-01-05", 1]},
                "u": {"values": [1, 2]},
            },
        },
        "run": {"cmd": "echo {{ d }} {{ u }}"},
    }
    config = load_text(yaml.safe_dump(doc), Path("/tmp"))
    assert config.settings == TPESettings(
        8, MetricSpec("acc", "maximize"), n_initial_trials=6, n_ei_candidates=48
    )
    assert any("only 8" in w for w in config.warnings)  # capped at the space size
    searcher = make(config)
    assert isinstance(searcher, TPESearch) and searcher.n_ei_candidates == 48


def test_refuses_bad_settings() -> None:
    space = make_space(QUADRATIC)
    with pytest.raises(ValueError, match="n_initial_trials"):
        tpe(space, 5, n_initial_trials=0)
    with pytest.raises(ValueError, match="n_ei_candidates"):
        tpe(space, 5, n_ei_candidates=0)


def test_scipy_stays_inside_the_algorithms() -> None:
    root = Path(__file__).resolve().parents[1] / "polytune"
    for path in root.rglob("*.py"):
        if "algorithms" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                assert not any(a.name.split(".")[0] == "scipy" for a in node.names), path
            elif isinstance(node, ast.ImportFrom):
                assert (node.module or "").split(".")[0] != "scipy", path
    code = (
        "import sys, polytune.cli, polytune.driver, polytune.config, polytune.searchers; "
        "print('scipy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ----------------------------------------------------------------------------------------
# End to end
# ----------------------------------------------------------------------------------------

JOB = Path(__file__).resolve().parent / "jobs" / "job.py"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "polytune", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.slow
def test_e2e_tpe_through_the_cli(tmp_path: Path) -> None:
    """A v1 ``hyperopt`` polyaxonfile through ``polytune run``; the job's loss is
    ``(x - 3)² + 1``. Twice with one slot and the same seed: the same configurations."""
    (tmp_path / "group.yaml").write_text(
        textwrap.dedent(
            f"""
            version: 1.1
            kind: operation
            matrix:
              kind: hyperopt
              algorithm: tpe
              numRuns: 14
              numInitialRuns: 4
              metric: {{name: loss, optimization: minimize}}
              params:
                x: {{kind: uniform, value: [0, 6]}}
                y: {{kind: choice, value: [a, b]}}
            component:
              run:
                kind: job
                container:
                  command: [{sys.executable}, {JOB}]
                  args: ["--x={{{{ x }}}}", "--y={{{{ y }}}}"]
            """
        )
    )
    runs = []
    for name, concurrency in (("one", "1"), ("two", "1"), ("busy", "3")):
        proc = _cli(
            "run", "group.yaml", "--dir", str(tmp_path / name), "--seed", "3",
            "--concurrency", concurrency, "--json", "-q",
            cwd=tmp_path,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)
        assert doc["status"] == "done" and doc["counts"]["succeeded"] == 14
        status = _cli("status", "--dir", str(tmp_path / name), "--json", cwd=tmp_path)
        assert status.returncode == 0, status.stderr
        rows = sorted(json.loads(status.stdout)["experiments"], key=lambda r: r["id"])
        assert [r["meta"][PHASE_KEY] for r in rows] == ["startup"] * 4 + ["model"] * 10
        runs.append((doc, rows))
    one, _two, busy = runs
    configs = [[(e["params"]["x"], e["params"]["y"]) for e in r[1]] for r in runs]
    assert configs[0] == configs[1]  # same seed, same history: same suggestions
    for doc, _ in runs:
        assert doc["best"]["value"] < 1.5  # (x - 3)² + 1 with x found within ~0.7 of 3
    assert one[0]["best"]["value"] <= min(
        (float(x) - 3) ** 2 + 1 for x, _ in configs[0][:4]
    )  # the model phase did not make it worse
    assert len(busy[1]) == 14


def test_example_polyaxonfile() -> None:
    from polytune.config import load

    path = Path(__file__).resolve().parents[1] / "examples" / "tpe.yaml"
    config = load([path])
    assert config.algorithm == "tpe" and config.concurrency == 2 and config.seed == 7
    assert config.settings == TPESettings(30, MetricSpec("accuracy", "maximize"))
    searcher = make(config)
    assert isinstance(searcher, TPESearch) and searcher.planned_total() == 30
    s = searcher.suggest([], rng_for(7, []))
    assert s is not None and s.meta[PHASE_KEY] == "startup"
