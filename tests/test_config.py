"""config.load / load_text: every layout, merging, overrides, every error class, and the
validation vectors of matrix_vectors.json (transcribed here; these tests never read ../shared)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from polytune.check import build_report, example_command, render_report
from polytune.config import (
    CONTEXT_NAMES,
    PLACEHOLDER_RE,
    deep_merge,
    load,
    load_text,
    parse_override,
    placeholders,
)
from polytune.errors import ConfigError
from polytune.model import (
    BOSettings,
    CommandTemplate,
    Config,
    FailureEarlyStopping,
    GridSettings,
    HyperbandSettings,
    MappingSettings,
    MetricEarlyStopping,
    MetricSpec,
    RandomSettings,
    StoppingPolicy,
    TPESettings,
)

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def from_yaml(text: str, overrides: tuple[str, ...] = ()) -> Config:
    return load_text(textwrap.dedent(text), Path("/tmp"), overrides=overrides)


def from_doc(doc: dict[str, Any], overrides: tuple[str, ...] = ()) -> Config:
    return load_text(yaml.safe_dump(doc, sort_keys=False), Path("/tmp"), overrides=overrides)


def error_of(doc: dict[str, Any] | str, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(ConfigError) as info:
        if isinstance(doc, str):
            from_yaml(doc, overrides)
        else:
            from_doc(doc, overrides)
    message = str(info.value)
    assert "\n" not in message
    return message


def hptuning(section: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"version": 1, "kind": "group", "hptuning": section, **top}


GRID_V0 = hptuning(
    {
        "concurrency": 2,
        "matrix": {"lr": {"values": [0.1, 0.2]}, "act": {"values": ["relu", "tanh"]}},
    },
    params={"batch": 32},
    run={"cmd": "python train.py --lr={{ lr }} --act={{ act }} --batch={{ batch }}"},
)

HB_BLOCK = {
    "max_iter": 81,
    "eta": 3,
    "resource": {"name": "steps", "type": "int"},
    "metric": {"name": "loss", "optimization": "minimize"},
}

BO_BLOCK = {
    "metric": {"name": "loss", "optimization": "minimize"},
    "n_initial_trials": 2,
    "n_iterations": 10,
}

# ---------------------------------------------------------------------------------------------
# matrix_vectors.json: validation (42 vectors)
# ---------------------------------------------------------------------------------------------

_UF = {
    "acquisition_function": "ucb",
    "kappa": 1.2,
    "gaussian_process": {
        "kernel": "matern",
        "length_scale": 1.0,
        "nu": 1.9,
        "n_restarts_optimizer": 2,
    },
}
_BO = {
    "metric": {"name": "loss", "optimization": "minimize"},
    "n_initial_trials": 2,
    "n_iterations": 10,
    "utility_function": _UF,
}
_HB_METRIC = {"name": "loss", "optimization": "minimize"}

# (schema, input, valid in Polyaxon, valid in polytune, fragment of polytune's message)
VALIDATION: list[tuple[str, dict[str, Any], bool, bool, str]] = [
    ("matrix", {}, False, False, "exactly one method"),
    ("matrix", {"values": [1, 2, 3], "linspace": "1:2:1"}, False, False, "exactly one method"),
    ("matrix", {"pvalues": [[1, 0.1], [2, 0.3], [3, 6]]}, False, False, "pvalues[2]"),
    ("matrix", {"pvalues": [[1, 0.1], [2, 0.3], [3, 0.8]]}, False, False, "sum to at most 1"),
    ("matrix", {"pvalues": [[1, 0.1], [2, 0.3], [3, -0.6]]}, False, False, "pvalues[2]"),
    ("matrix", {"pvalues": ["ok", "nook"]}, False, False, "pvalues[0]"),
    ("matrix", {"pvalues": [[1, 0.1], [2, 0.1], [3, 0.8]]}, True, True, ""),
    ("matrix", {"pvalues": [[1, 1.0]]}, False, False, "0 <= p < 1"),
    ("matrix", {"pvalues": [[1, 1]]}, False, False, "must be a float"),
    ("matrix", {"pvalues": [[1, 0.1], [2, 0.6]]}, True, True, ""),
    ("matrix", {"range": [2, 1, 1]}, False, False, "strictly above start"),
    ("matrix", {"range": [10, 1, -1]}, False, False, "strictly above start"),
    ("matrix", {"range": [1, 2, 0]}, False, False, "step cannot be 0"),
    ("matrix", {"range": "1:10"}, False, False, "requires 3 elements"),
    ("matrix", {"logspace": "1:2:3:4:5"}, False, False, "requires 3 or 4 elements"),
    ("matrix", {"quniform": [0, 1]}, False, False, "requires 3 or 4 elements"),
    ("matrix", {"uniform": [1, 0]}, True, True, ""),
    ("matrix", {"normal": "66:30"}, True, True, ""),
    ("matrix", {"range": ["a", 2, 1]}, False, False, "start must be a number"),
    (
        "hptuning",
        {"concurrency": 2, "random_search": {"n_experiments": 10}},
        False,
        False,
        "hptuning.matrix: is required",
    ),
    (
        "hptuning",
        {
            "concurrency": 2,
            "random_search": {"n_experiments": 10},
            "matrix": {"lr": {"pvalues": [[1, 0.3], [2, 0.3], [3, 0.3]]}},
        },
        True,
        True,
        "",
    ),
    (
        "hptuning",
        {
            "concurrency": 2,
            "random_search": {"n_experiments": 10},
            "grid_search": {"n_experiments": 10},
            "matrix": {"lr": {"values": [1, 2, 3]}},
        },
        False,
        False,
        "only one search algorithm",
    ),
    (
        "hptuning",
        {
            "concurrency": 2,
            "grid_search": {"n_experiments": 10},
            "matrix": {"lr": {"pvalues": [[1, 0.3], [2, 0.3], [3, 0.3]]}},
        },
        False,
        False,
        "hptuning.matrix.lr: 'lr' is a pvalues distribution, which grid search",
    ),
    ("hptuning", {"matrix": {"lr": {"uniform": [0, 1]}}}, False, False, "which grid search cannot"),
    (
        "hptuning",
        {"bo": _BO, "matrix": {"lr": {"pvalues": [[0.1, 0.1], [0.2, 0.9]]}}},
        False,
        False,
        "bayesian optimization",
    ),
    ("hptuning", {"bo": _BO, "matrix": {"lr": {"normal": [0.1, 0.2]}}}, False, False, "unbounded"),
    (
        "hptuning",
        {"bo": _BO, "matrix": {"lr": {"uniform": {"low": 0.1, "high": 0.2}}}},
        True,
        True,
        "",
    ),
    ("grid_search", {"n_experiments": 10}, True, True, ""),
    (
        "grid_search",
        {"n_experiments": -5},
        False,
        False,
        "grid_search.n_experiments: must be at least 1",
    ),
    (
        "grid_search",
        {"n_experiments": 0.5},
        False,
        False,
        "grid_search.n_experiments: must be a whole number",
    ),
    (
        "random_search",
        {"n_experiments": 0.5},
        False,
        False,
        "random_search.n_experiments: must be a whole number",
    ),
    (
        "hyperband",
        {
            "max_iter": 0,
            "eta": 3,
            "resource": {"name": "steps", "type": "int"},
            "metric": _HB_METRIC,
        },
        False,
        False,
        "hyperband.max_iter: must be at least 1",
    ),
    (
        "hyperband",
        {
            "max_iter": 3,
            "eta": -0.5,
            "resource": {"name": "steps", "type": "int"},
            "metric": _HB_METRIC,
        },
        False,
        False,
        "hyperband.eta: must be above 1",
    ),
    (
        "hyperband",
        {
            "max_iter": 3,
            "eta": 2.9,
            "resource": {"name": "steps", "type": "int"},
            "metric": _HB_METRIC,
        },
        True,
        True,
        "",
    ),
    # Polyaxon: "ucb requires kappa" / "poi requires eps". polytune takes its default kappa / eps
    # instead: the block is there to tune BO, not to make users restate defaults (module doc).
    ("utility_function", {"acquisition_function": "ucb"}, False, True, ""),
    ("utility_function", {"acquisition_function": "poi"}, False, True, ""),
    (
        "utility_function",
        {
            "acquisition_function": "ei",
            "eps": 1.2,
            "gaussian_process": {
                "kernel": "matern",
                "length_scale": 1.0,
                "nu": 1.9,
                "n_restarts_optimizer": 2,
            },
        },
        True,
        True,
        "",
    ),
    (
        "params",
        {"kind": "linspace", "value": {"start": 1.2, "stop": 1.8, "num": 0.1}},
        False,
        False,
        "whole number",
    ),
    ("params", {"kind": "range", "value": [10, 1, -1]}, False, False, "strictly above start"),
    ("params", {"kind": "range", "value": "1:5"}, False, False, "requires 3 elements"),
    (
        "params",
        {"kind": "pchoice", "value": [[1, 0.6], [2, 0.6]]},
        False,
        False,
        "sum to at most 1",
    ),
    ("params", {"kind": "pchoice", "value": [[1, 1.0]]}, False, False, "0 <= p < 1"),
]


def _vector_doc(schema: str, value: dict[str, Any]) -> dict[str, Any]:
    lr = {"lr": {"values": [0.1, 0.2]}}
    if schema == "matrix":
        return hptuning({"random_search": {"n_experiments": 1}, "matrix": {"p": value}})
    if schema == "hptuning":
        return hptuning(value)
    if schema in ("grid_search", "random_search", "hyperband"):
        return hptuning({schema: value, "matrix": lr})
    if schema == "utility_function":
        bo = {**BO_BLOCK, "utility_function": value}
        return hptuning({"bo": bo, "matrix": {"lr": {"uniform": [0, 1]}}})
    assert schema == "params"
    return {
        "version": 1.1,
        "kind": "operation",
        "matrix": {"kind": "random", "numRuns": 1, "params": {"p": value}},
    }


@pytest.mark.parametrize(("schema", "value", "polyaxon_valid", "valid", "fragment"), VALIDATION)
def test_validation_vectors(
    schema: str, value: dict[str, Any], polyaxon_valid: bool, valid: bool, fragment: str
) -> None:
    del polyaxon_valid  # documents the difference; ``valid`` is polytune's answer
    doc = _vector_doc(schema, value)
    if valid:
        assert isinstance(from_doc(doc), Config)
    else:
        assert fragment in error_of(doc)


def test_ucb_without_kappa_gets_the_default_kappa() -> None:
    config = from_doc(_vector_doc("utility_function", {"acquisition_function": "UCB"}))
    assert isinstance(config.settings, BOSettings)
    assert config.settings.acquisition_function == "ucb"
    assert config.settings.kappa == BOSettings.kappa


# ---------------------------------------------------------------------------------------------
# matrix_vectors.json: settings_n_experiments (5 vectors) — Jan–Mar 2018 settings
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_experiments", "expected"),
    [
        (0.3, 3),  # fraction < 1 => int(space * n)
        (5, 5),  # >= 1 and < space => int(n)
        (300, None),  # >= space => the whole space
        (10, None),  # == space => the whole space
        (5.7, 5),  # values >= 1 are truncated with int()
    ],
)
def test_settings_n_experiments_vectors(n_experiments: float, expected: int | None) -> None:
    doc = {
        "version": 1,
        "settings": {"concurrent_experiments": 2, "n_experiments": n_experiments},
        "matrix": {"x": {"values": list(range(10))}},
    }
    config = from_doc(doc)
    assert config.layout == "settings+matrix"
    assert config.settings == GridSettings(n_experiments=expected)
    assert config.concurrency == 2


def test_settings_random_search_method_resolves_n_experiments_against_the_space() -> None:
    doc = {
        "settings": {"search_method": "RANDOM", "n_experiments": 0.5},
        "matrix": {"x": {"values": list(range(10))}},
    }
    config = from_doc(doc)
    assert (config.algorithm, config.settings) == ("random", RandomSettings(5))
    # no n_experiments: the shuffled whole space (a random permutation of the grid)
    doc = {"settings": {"search_method": "random"}, "matrix": {"x": {"values": [1, 2, 3]}}}
    assert from_doc(doc).settings == RandomSettings(3)


@pytest.mark.parametrize("bad", [0, -1, 0.05, "half"])
def test_settings_n_experiments_errors(bad: Any) -> None:
    doc = {"settings": {"n_experiments": bad}, "matrix": {"x": {"values": list(range(10))}}}
    assert "settings.n_experiments" in error_of(doc)


# ---------------------------------------------------------------------------------------------
# matrix_vectors.json: early_stopping (7 vectors) — the loading part
# ---------------------------------------------------------------------------------------------


def test_early_stopping_vectors_v0() -> None:
    config = from_doc(
        hptuning(
            {
                "matrix": {"lr": {"values": [1, 2]}},
                "early_stopping": [
                    {"metric": "accuracy", "value": 0.9, "optimization": "maximize"},
                    {"metric": "loss", "value": 0.05, "optimization": "MINIMIZE"},
                    {"metric": "loss", "value": 0.1},
                ],
            }
        )
    )
    assert config.early_stopping == (
        MetricEarlyStopping("accuracy", 0.9, "maximize"),
        MetricEarlyStopping("loss", 0.05, "minimize"),
        # optimization omitted: maximize (Polyaxon's default), and a warning says so
        MetricEarlyStopping("loss", 0.1, "maximize", optimization_given=False),
    )
    assert any("early_stopping[2]" in w and "loss >= 0.1" in w for w in config.warnings)


@pytest.mark.parametrize(("percent", "warns"), [(30, False), (0.3, True)])
def test_early_stopping_vectors_failure(percent: float, warns: bool) -> None:
    doc = {
        "version": 1.1,
        "matrix": {
            "kind": "grid",
            "params": {"lr": {"kind": "choice", "value": [1, 2]}},
            "earlyStopping": [{"kind": "failure_early_stopping", "percent": percent}],
        },
    }
    config = from_doc(doc)
    assert config.early_stopping == (FailureEarlyStopping(percent),)
    assert any("0.3 %" in w for w in config.warnings) is warns


def test_early_stopping_settings_era_higher() -> None:
    doc = {
        "settings": {
            "early_stopping": [
                {"metric": "loss", "value": 0.01, "higher": False},
                {"metric": "acc", "value": 0.9, "higher": True},
            ]
        },
        "matrix": {"x": {"values": [1]}},
    }
    rules = from_doc(doc).early_stopping
    assert rules == (
        MetricEarlyStopping("loss", 0.01, "minimize"),
        MetricEarlyStopping("acc", 0.9, "maximize"),
    )


def test_early_stopping_policies() -> None:
    v0 = from_doc(
        hptuning(
            {
                "matrix": {"lr": {"values": [1]}},
                "early_stopping": [
                    {
                        "metric": "loss",
                        "value": 0.1,
                        "optimization": "minimize",
                        "policy": {
                            "kind": "Truncation",
                            "percent": 20,
                            "evaluation_interval": 2,
                            "min_interval": 3,
                            "min_samples": 4,
                        },
                    }
                ],
            }
        )
    )
    assert v0.early_stopping[0] == MetricEarlyStopping(
        "loss",
        0.1,
        "minimize",
        policy=StoppingPolicy(
            "truncation", evaluation_interval=2, min_interval=3, min_samples=4, percent=20
        ),
    )
    v2 = from_doc(
        {
            "version": 1.1,
            "matrix": {
                "kind": "grid",
                "params": {"lr": {"kind": "choice", "value": [1]}},
                "earlyStopping": [
                    {
                        "kind": "metric_early_stopping",
                        "metric": "loss",
                        "optimization": "minimize",
                        "policy": {"kind": "median", "evaluationInterval": 5, "minSamples": 3},
                    }
                ],
            },
        }
    )
    assert v2.early_stopping[0] == MetricEarlyStopping(
        "loss",
        None,
        "minimize",
        policy=StoppingPolicy("median", evaluation_interval=5, min_samples=3),
    )


@pytest.mark.parametrize(
    ("rule", "fragment"),
    [
        ({"metric": "loss"}, "early_stopping[0].value: is required"),
        ({"value": 1}, "early_stopping[0].metric: is required"),
        (
            {"metric": "loss", "value": 1, "optimisation": "minimize"},
            "early_stopping[0].optimisation: unknown key; did you mean 'optimization'?",
        ),
        ({"metric": "loss", "value": "low"}, "early_stopping[0].value: must be a number"),
        (
            {"metric": "loss", "value": 1, "optimization": "down"},
            "early_stopping[0].optimization: expected one of maximize, minimize",
        ),
        (
            {"metric": "loss", "value": 1, "higher": True, "optimization": "minimize"},
            "give either higher or optimization",
        ),
        (
            {"metric": "loss", "value": 1, "policy": {"kind": "truncation"}},
            "policy.percent: is required",
        ),
        (
            {"metric": "loss", "value": 1, "policy": {"kind": "median", "percent": 3}},
            "takes no percent",
        ),
        (
            {"metric": "loss", "value": 1, "policy": {"kind": "median", "evaluation_intervall": 3}},
            "did you mean 'evaluation_interval'?",
        ),
        (
            {"metric": "loss", "value": 1, "policy": {"kind": "bandit"}},
            "policy.kind: expected one of",
        ),
        ({"metric": "loss", "value": float("nan")}, "must be a finite number"),
    ],
)
def test_early_stopping_errors(rule: dict[str, Any], fragment: str) -> None:
    assert fragment in error_of(
        hptuning({"matrix": {"lr": {"values": [1]}}, "early_stopping": [rule]})
    )


def test_early_stopping_v1_errors() -> None:
    doc = {
        "version": 1.1,
        "matrix": {
            "kind": "grid",
            "params": {"lr": {"kind": "choice", "value": [1]}},
            "earlyStopping": [{"kind": "metric", "metric": "x", "value": 1}],
        },
    }
    assert (
        "matrix.earlyStopping[0].kind: expected one of metric_early_stopping, failure_early_stopping"
        in error_of(doc)
    )
    doc["matrix"]["earlyStopping"] = [{"kind": "failure_early_stopping", "percent": 0}]
    assert "matrix.earlyStopping[0].percent: must be a percentage" in error_of(doc)
    doc["matrix"]["earlyStopping"] = {"metric": "x"}
    assert "matrix.earlyStopping: must be a list" in error_of(doc)


# ---------------------------------------------------------------------------------------------
# layouts
# ---------------------------------------------------------------------------------------------


def test_matrix_top_layout() -> None:
    config = from_yaml(
        """
        version: 1
        project: {name: quick-start}
        declarations: {batch_size: 128}
        matrix:
          lr: {linspace: 0.001:0.1:5}
          act: {values: [relu, sigmoid]}
        run:
          image: tensorflow/tensorflow:1.4.1-py3
          steps: [pip install polyaxon-helper]
          cmd: python3 model.py --lr={{ lr }} --act={{ act }} --batch_size={{ batch_size }}
        """
    )
    assert config.layout == "matrix-top"
    assert config.algorithm == "grid"
    assert config.settings == GridSettings()
    assert config.space.names == ["lr", "act"]
    assert config.space.size == 10
    assert config.params == {"batch_size": 128}
    assert config.command == CommandTemplate(
        "shell", ("python3 model.py --lr={{ lr }} --act={{ act }} --batch_size={{ batch_size }}",)
    )
    assert any("run.image is ignored" in n for n in config.notes)
    assert any("build steps are not run" in n for n in config.notes)


def test_settings_plus_matrix_layout() -> None:
    config = from_yaml(
        """
        version: 1
        settings:
          concurrent_experiments: 3
          search_method: RANDOM
          n_experiments: 4
          early_stopping: [{metric: loss, value: 0.01, higher: false}]
          run_type: kubernetes
        matrix:
          lr: {values: [0.1, 0.2, 0.3]}
          dropout: {values: [0.25, 0.5]}
        run: {cmd: "train {{ lr }} {{ dropout }}"}
        """
    )
    assert config.layout == "settings+matrix"
    assert (config.algorithm, config.settings, config.concurrency) == (
        "random",
        RandomSettings(4),
        3,
    )
    assert config.early_stopping == (MetricEarlyStopping("loss", 0.01, "minimize"),)


def test_settings_layout_with_algorithms() -> None:
    config = from_yaml(
        """
        version: 1
        kind: group
        settings:
          concurrency: 2
          seed: 7
          hyperband:
            max_iter: 10
            eta: 3
            resource: {name: num_steps, type: INT}
            metric: {name: loss, optimization: Minimize}
            resume: true
          matrix:
            lr: {uniform: [0, 0.01]}
          logging: {level: INFO}
        declarations: {batch_size: 128}
        run: {cmd: "python3 model.py --steps={{ num_steps }} --lr={{ lr }} --b={{ batch_size }}"}
        """
    )
    assert config.layout == "settings"
    assert config.seed == 7
    assert config.settings == HyperbandSettings(
        10, 3.0, "num_steps", "int", MetricSpec("loss", "minimize"), resume=True
    )
    assert config.metric == MetricSpec("loss", "minimize")


def test_earliest_hyperband_resource_is_a_name() -> None:
    config = from_doc(
        hptuning(
            {"hyperband": {**HB_BLOCK, "resource": "steps"}, "matrix": {"lr": {"values": [1, 2]}}}
        )
    )
    assert isinstance(config.settings, HyperbandSettings)
    assert (config.settings.resource_name, config.settings.resource_type) == ("steps", "float")


def test_hptuning_layout_grid() -> None:
    config = from_doc(GRID_V0)
    assert config.layout == "hptuning"
    assert config.algorithm == "grid"
    assert config.concurrency == 2
    assert config.seed is None
    assert config.params == {"batch": 32}
    assert config.metric is None
    assert placeholders(config.command) == ["lr", "act", "batch"]  # type: ignore[arg-type]


def test_hptuning_random_bo_tpe() -> None:
    random = from_doc(
        hptuning(
            {
                "seed": 0,
                "random_search": {"n_experiments": 5},
                "matrix": {"lr": {"uniform": [0, 1]}},
            }
        )
    )
    assert (random.algorithm, random.settings, random.seed) == (
        "random",
        RandomSettings(5),
        0,
    )  # seed 0 is a seed
    bo = from_doc(
        hptuning(
            {
                "bo": {
                    **BO_BLOCK,
                    "utility_function": {
                        "acquisition_function": "EI",
                        "eps": 0.1,
                        "n_warmup": 5,
                        "n_iter": 3,
                        "gaussian_process": {
                            "kernel": "RBF",
                            "length_scale": 2.0,
                            "nu": 1.5,
                            "n_restarts_optimizer": 0,
                        },
                    },
                },
                "matrix": {
                    "lr": {"loguniform": [-9, -2]},
                    "act": {"values": ["a", "b"]},
                    "n": {"range": [1, 5, 1]},
                },
            }
        )
    )
    assert bo.settings == BOSettings(
        n_initial_trials=2,
        n_iterations=10,
        metric=MetricSpec("loss", "minimize"),
        acquisition_function="ei",
        eps=0.1,
        n_warmup=5,
        n_iter=3,
        kernel="rbf",
        length_scale=2.0,
        nu=1.5,
        n_restarts_optimizer=0,
    )
    tpe = from_doc(
        hptuning(
            {
                "tpe": {
                    "n_experiments": 30,
                    "metric": {"name": "acc", "optimization": "maximize"},
                    "n_initial_trials": 5,
                },
                "matrix": {"lr": {"normal": [0, 1]}},
            }
        )
    )
    assert tpe.settings == TPESettings(30, MetricSpec("acc", "maximize"), n_initial_trials=5)


def test_bo_block_needs_only_counts_and_metric() -> None:
    config = from_doc(hptuning({"bo": BO_BLOCK, "matrix": {"lr": {"uniform": [0, 1]}}}))
    assert config.settings == BOSettings(2, 10, MetricSpec("loss", "minimize"))


def test_bo_initial_trials_capped_by_small_discrete_space() -> None:
    config = from_doc(
        hptuning(
            {"bo": {**BO_BLOCK, "n_initial_trials": 10}, "matrix": {"lr": {"values": [1, 2, 3]}}}
        )
    )
    assert isinstance(config.settings, BOSettings)
    assert config.settings.n_initial_trials == 3
    assert any("only 3 configurations" in w for w in config.warnings)


V1_COMPONENT = {
    "version": 1.1,
    "kind": "operation",
    "matrix": {
        "kind": "random",
        "numRuns": 4,
        "concurrency": 2,
        "seed": 3,
        "params": {
            "lr": {"kind": "loguniform", "value": [-5, -1]},
            "bs": {"kind": "choice", "value": [16, 32]},
        },
        "earlyStopping": [
            {
                "kind": "metric_early_stopping",
                "metric": "acc",
                "value": 0.99,
                "optimization": "maximize",
            }
        ],
    },
    "params": {"epochs": {"value": 3}},
    "component": {
        "inputs": [
            {"name": "lr", "type": "float"},
            {"name": "bs", "type": "int"},
            {"name": "epochs", "type": "int", "isOptional": True, "value": 5},
            {"name": "seed", "type": "int", "isOptional": True, "value": 1},
            {"name": "note", "type": "str", "isOptional": True},
        ],
        "run": {
            "kind": "job",
            "container": {
                "image": "pytorch/pytorch:latest",
                "command": ["python", "-u", "train.py"],
                "args": [
                    "--lr={{ lr }}",
                    "--bs={{ bs }}",
                    "--epochs={{ epochs }}",
                    "--seed={{ seed }}",
                    "--out={{ globals.outputs_path }}",
                ],
            },
        },
    },
}


def test_v1_operation_with_inline_component() -> None:
    config = from_doc(V1_COMPONENT)
    assert config.layout == "v1"
    assert (config.algorithm, config.settings, config.concurrency, config.seed) == (
        "random",
        RandomSettings(4),
        2,
        3,
    )
    # op params override the input default; optional inputs with a value become params
    assert config.params == {"epochs": 3, "seed": 1}
    assert config.command is not None
    assert config.command.kind == "argv"
    assert config.command.parts[:3] == ("python", "-u", "train.py")
    assert any("image (pytorch/pytorch:latest) is ignored" in n for n in config.notes)
    assert config.early_stopping == (MetricEarlyStopping("acc", 0.99, "maximize"),)


def test_v1_optional_input_without_value_is_not_a_known_name() -> None:
    doc = deep_merge(
        V1_COMPONENT, {"component": {"run": {"container": {"args": ["--note={{ note }}"]}}}}
    )
    assert "unknown name {{ note }}" in error_of(doc)


def test_v1_required_input_without_value() -> None:
    doc = deep_merge(V1_COMPONENT, {"component": {"inputs": [{"name": "data", "type": "str"}]}})
    assert "component.inputs[0]: required input 'data' gets no value" in error_of(doc)


def test_v1_string_command_is_a_shell_command() -> None:
    doc = {
        "version": 1.1,
        "kind": "operation",
        "matrix": {"kind": "grid", "params": {"lr": {"kind": "choice", "value": [1, 2]}}},
        "component": {
            "run": {"kind": "job", "container": {"image": "foo", "command": "train --lr={{ lr }}"}}
        },
    }
    assert from_doc(doc).command == CommandTemplate("shell", ("train --lr={{ lr }}",))


@pytest.mark.parametrize("ref", ["urlRef", "pathRef", "hubRef", "dagRef"])
def test_v1_references_have_no_command(ref: str) -> None:
    doc = {
        "version": 1.1,
        "kind": "operation",
        "matrix": {"kind": "grid", "params": {"lr": {"kind": "choice", "value": [1, 2]}}},
        ref: "./polyaxonfile.yml",
    }
    config = from_doc(doc)
    assert config.command is None
    assert (
        config.command_note is not None
        and ref in config.command_note
        and "no command to run" in config.command_note
    )


def test_v1_hyperband_bayes_hyperopt_tpe() -> None:
    base = {"version": 1.1, "kind": "operation", "urlRef": "x"}
    params = {"lr": {"kind": "uniform", "value": [0, 1]}}
    hb = from_doc(
        {
            **base,
            "matrix": {
                "kind": "hyperband",
                "maxIterations": 10,
                "eta": 3,
                "resource": {"name": "steps", "type": "int"},
                "resume": False,
                "metric": {"name": "loss", "optimization": "minimize"},
                "params": params,
            },
        }
    )
    assert hb.settings == HyperbandSettings(10, 3.0, "steps", "int", MetricSpec("loss", "minimize"))
    bayes = from_doc(
        {
            **base,
            "matrix": {
                "kind": "bayes",
                "numInitialRuns": 5,
                "maxIterations": 7,
                "metric": {"name": "loss", "optimization": "minimize"},
                "utilityFunction": {
                    "acquisitionFunction": "ucb",
                    "kappa": 1.2,
                    "gaussianProcess": {
                        "kernel": "matern",
                        "lengthScale": 1.0,
                        "nu": 1.9,
                        "numRestartsOptimizer": 0,
                    },
                },
                "params": params,
            },
        }
    )
    assert bayes.settings == BOSettings(
        5,
        7,
        MetricSpec("loss", "minimize"),
        acquisition_function="ucb",
        kappa=1.2,
        nu=1.9,
        n_restarts_optimizer=0,
    )
    old_bayes = from_doc(
        {
            **base,
            "matrix": {
                "kind": "bayes",
                "numInitialRuns": 5,
                "numIterations": 7,
                "metric": {"name": "loss"},
                "params": params,
            },
        }
    )
    assert isinstance(old_bayes.settings, BOSettings) and old_bayes.settings.n_iterations == 7
    hyperopt = from_doc(
        {
            **base,
            "matrix": {
                "kind": "hyperopt",
                "algorithm": "Anneal",
                "numRuns": 20,
                "maxIterations": 3,
                "metric": {"name": "loss", "optimization": "minimize"},
                "params": params,
            },
        }
    )
    assert hyperopt.algorithm == "tpe"
    assert hyperopt.settings == TPESettings(60, MetricSpec("loss", "minimize"), algorithm="anneal")
    tpe = from_doc(
        {
            **base,
            "matrix": {
                "kind": "tpe",
                "numRuns": 20,
                "metric": {"name": "loss", "optimization": "minimize"},
                "params": params,
            },
        }
    )
    assert tpe.settings == TPESettings(20, MetricSpec("loss", "minimize"))
    assert any("without end" in n for n in tpe.notes)


def test_v1_mapping() -> None:
    doc = {
        "version": 1.1,
        "kind": "operation",
        "matrix": {
            "kind": "mapping",
            "concurrency": 2,
            "values": [{"lr": 0.1, "loss": "mse"}, {"loss": "mae", "lr": 0.2}],
        },
        "component": {
            "run": {
                "kind": "job",
                "container": {"command": ["train", "--lr={{ lr }}", "--loss={{ loss }}"]},
            }
        },
    }
    config = from_doc(doc)
    assert config.algorithm == "mapping"
    assert config.settings == MappingSettings(
        ({"lr": 0.1, "loss": "mse"}, {"loss": "mae", "lr": 0.2})
    )
    assert len(config.space) == 0  # the listed dicts are not a product space
    assert example_command(config) == "train --lr=0.1 --loss=mse"


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        (None, "matrix.values: is required"),
        ([], "matrix.values: must list at least one mapping"),
        ({"lr": 1}, "matrix.values: must be a non-empty list"),
        ([{"lr": 1}, 2], "matrix.values[1]: must be a mapping"),
        (
            [{"lr": 1}, {"lr": 2, "x": 3}],
            "matrix.values[1]: every mapping must have the same names",
        ),
        ([{}], "matrix.values[0]: is empty"),
    ],
)
def test_v1_mapping_errors(values: Any, fragment: str) -> None:
    doc = {"version": 1.1, "matrix": {"kind": "mapping", "values": values}, "urlRef": "x"}
    assert fragment in error_of(doc)


def test_v1_iterative_is_refused() -> None:
    doc = {
        "version": 1.1,
        "matrix": {"kind": "iterative", "maxIterations": 3, "tuner": {"hubRef": "x"}},
        "urlRef": "x",
    }
    assert (
        "matrix.kind: iterative needs a custom tuner; polytune does not run custom tuners"
        in error_of(doc)
    )


def test_v1_params_ref_and_connection_are_left_out() -> None:
    doc = {
        "version": 1.1,
        "matrix": {"kind": "grid", "params": {"lr": {"kind": "choice", "value": [1]}}},
        "params": {
            "up": {"ref": "ops.experiment", "value": "outputs.loss"},
            "dest": {"connection": "docker"},
            "n": {"value": 2},
        },
        "urlRef": "x",
    }
    config = from_doc(doc)
    assert config.params == {"n": 2}
    assert any("params.up" in n for n in config.notes)
    doc["params"] = {"n": 2}
    assert "params.n: must be a mapping {value: ...}" in error_of(doc)


@pytest.mark.parametrize(
    "doc",
    [
        {
            "version": 1.1,
            "kind": "component",
            "run": {
                "kind": "dag",
                "operations": [
                    {"name": "build", "hubRef": "kaniko"},
                    {
                        "name": "tune",
                        "dagRef": "x",
                        "matrix": {
                            "kind": "grid",
                            "params": {"lr": {"kind": "choice", "value": [1]}},
                        },
                    },
                ],
            },
        },
    ],
)
def test_dag_pipelines_are_refused(doc: dict[str, Any]) -> None:
    message = error_of(doc)
    assert message.startswith("run.operations[1].matrix: DAG pipelines are not supported")


def test_matrix_inside_a_job_run_is_refused() -> None:
    doc = {
        "version": 1.1,
        "kind": "component",
        "run": {"kind": "job", "matrix": {"kind": "grid"}, "container": {"command": ["x"]}},
    }
    assert error_of(doc).startswith("run.matrix: a matrix belongs at the top level")


def test_single_run_file_has_no_search_space() -> None:
    assert "no search space" in error_of(
        {"version": 1, "kind": "experiment", "run": {"cmd": "train"}}
    )


def test_run_cmd_list_and_folded_continuations() -> None:
    config = from_yaml(
        """
        version: 1
        kind: group
        hptuning: {matrix: {lr: {values: [1, 2]}}}
        run:
          cmd:
            - pip install -r requirements.txt
            - python train.py --lr={{ lr }} \\
              --verbose
        """
    )
    assert config.command == CommandTemplate(
        "shell", ("pip install -r requirements.txt", "python train.py --lr={{ lr }} --verbose")
    )
    assert any("continuations" in n for n in config.notes)


def test_conditional_cmd_is_refused() -> None:
    doc = hptuning(
        {"matrix": {"model": {"values": ["DNA", "CDNA"]}}},
        run={"cmd": {"if": {"cond": "'DNA' == '{{ model }}'", "do": "a", "else_do": "b"}}},
    )
    assert error_of(doc).startswith(
        "run.cmd: conditional commands (if/cond/do/else_do) are not supported"
    )


def test_model_library_files_have_no_command() -> None:
    config = from_doc(
        {
            "version": 1,
            "matrix": {"lr": {"values": [1]}},
            "model": {"classifier": {}},
            "train": {"steps": 3},
        }
    )
    assert config.command is None
    assert config.command_note is not None and "nothing to run" in config.command_note


def test_v0_inputs_defaults_are_params() -> None:
    doc = hptuning(
        {"matrix": {"p1": {"values": [1, 2]}}},
        inputs=[{"name": "input1", "type": "int", "default": 23, "is_optional": True}],
        run={"cmd": "train --p1={{ p1 }} --p3={{ input1 }}"},
    )
    assert from_doc(doc).params == {"input1": 23}
    doc["inputs"] = [{"name": "p1", "type": "int", "default": 3, "is_optional": True}]
    assert "input 'p1' has a default and is also a matrix parameter" in error_of(doc)


def test_matrix_value_from_a_param_template() -> None:
    doc = hptuning(
        {"matrix": {"loss": {"values": "{{ input1 }}"}}},
        inputs=[{"name": "input1", "type": "str", "default": ["mse", "mae"], "is_optional": True}],
        run={"cmd": 'train --loss="{{ loss }}"'},
    )
    assert from_doc(doc).space["loss"].values == ["mse", "mae"]


# ---------------------------------------------------------------------------------------------
# files, merging, YAML
# ---------------------------------------------------------------------------------------------


def test_load_deep_merges_files_in_order(tmp_path: Path) -> None:
    base = tmp_path / "polyaxonfile.yml"
    base.write_text(yaml.safe_dump(GRID_V0, sort_keys=False))
    override = tmp_path / "override.yml"
    override.write_text(
        "version: 1\nhptuning:\n  concurrency: 5\n  matrix:\n    lr: {values: [0.5]}\n"
    )
    config = load([base, str(override)])
    assert config.concurrency == 5
    assert config.space["lr"].values == [0.5]
    assert config.space.names == ["lr", "act"]  # merged, not replaced
    assert config.base_dir == tmp_path.resolve()
    assert config.sources == (str(base), str(override))
    assert config.document["hptuning"]["concurrency"] == 5


def test_deep_merge_rules() -> None:
    a = {"x": {"y": 1, "z": [1, 2]}, "k": 1}
    b = {"x": {"z": [3], "w": 2}, "k": {"new": True}}
    assert deep_merge(a, b) == {"x": {"y": 1, "z": [3], "w": 2}, "k": {"new": True}}
    assert a == {"x": {"y": 1, "z": [1, 2]}, "k": 1}


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yml: no such file"):
        load([tmp_path / "nope.yml"])
    with pytest.raises(ConfigError, match="is a directory"):
        load([tmp_path])
    (tmp_path / "bin.yml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load([tmp_path / "bin.yml"])
    (tmp_path / "empty.yml").write_text("")
    with pytest.raises(ConfigError, match=r"empty\.yml: the polyaxonfile is empty"):
        load([tmp_path / "empty.yml"])
    with pytest.raises(ConfigError, match="no polyaxonfile given"):
        load([])


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text("version: 1\nhptuning:\n  matrix: [1, 2\n")
    with pytest.raises(ConfigError) as info:
        load([path])
    assert str(info.value).startswith(f"{path}:4: invalid YAML")


def test_object_building_tags_are_refused() -> None:
    with pytest.raises(
        ConfigError, match=r"<string>:1: invalid YAML: .*tags that build objects are refused"
    ):
        load_text("!!python/object/apply:os.system ['echo hi']\n", Path("."))


@pytest.mark.parametrize("text", ["[1, 2]", "just a string", "42"])
def test_top_level_must_be_a_mapping(text: str) -> None:
    with pytest.raises(ConfigError, match="a polyaxonfile must be a mapping of sections"):
        load_text(text, Path("."))


def test_base60_numbers_stay_strings() -> None:
    # YAML 1.1 reads 1:10:1 as the base-60 integer 4201; polytune's loader keeps the text.
    config = from_yaml("hptuning: {matrix: {n: {range: 1:10:1}, m: {range: 3:50:5}}}")
    assert config.space["n"].values == list(range(1, 10))
    assert config.space["m"].values == list(range(3, 50, 5))


def test_self_referencing_yaml_is_an_error() -> None:
    with pytest.raises(ConfigError):
        load_text("hptuning: &a {matrix: {lr: {values: [1]}}, early_stopping: [*a]}\n", Path("."))


# ---------------------------------------------------------------------------------------------
# -P overrides
# ---------------------------------------------------------------------------------------------


def test_overrides_set_constant_params() -> None:
    config = from_doc(GRID_V0, ("batch=64", "extra=[1, 2]", "name=a b"))
    assert config.params == {"batch": 64, "extra": [1, 2], "name": "a b"}
    assert config.document["params"]["batch"] == 64  # the saved document reproduces the config


def test_overrides_v1_params_and_reload_is_idempotent() -> None:
    config = from_doc(V1_COMPONENT, ("epochs=9",))
    assert config.params["epochs"] == 9
    again = load_text(yaml.safe_dump(dict(config.document)), Path("/tmp"), overrides=("epochs=9",))
    assert again.params == config.params


def test_override_declarations_section() -> None:
    doc = {"matrix": {"lr": {"values": [1]}}, "declarations": {"steps": 1}}
    assert from_doc(doc, ("steps=5",)).params == {"steps": 5}


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("lr=0.3", "-P lr: 'lr' is a matrix parameter; -P only sets constant params"),
        ("noequals", "-P: expected name=value"),
        ("=3", "-P: expected name=value"),
        ("bad name=3", "-P bad name: is not a valid param name"),
        ("x=[1, 2", "-P x: the value is not valid YAML"),
    ],
)
def test_override_errors(override: str, fragment: str) -> None:
    assert fragment in error_of(GRID_V0, (override,))


def test_override_of_the_hyperband_resource_is_an_error() -> None:
    doc = hptuning({"hyperband": HB_BLOCK, "matrix": {"lr": {"values": [1, 2]}}})
    assert "-P steps: 'steps' is hyperband's resource" in error_of(doc, ("steps=3",))


def test_parse_override() -> None:
    assert parse_override("lr=0.1") == ("lr", 0.1)
    assert parse_override("act=relu") == ("act", "relu")
    assert parse_override("flag=true") == ("flag", True)
    assert parse_override("r=1:10:1") == ("r", "1:10:1")
    assert parse_override("empty=") == ("empty", None)


# ---------------------------------------------------------------------------------------------
# unknown keys, types, ranges
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        (
            hptuning({"matrix": {"lr": {"values": [1]}}, "concurency": 2}),
            "hptuning.concurency: unknown key; did you mean 'concurrency'?",
        ),
        (
            hptuning({"matrix": {"lr": {"values": [1]}}, "random_search": {"n_experiment": 2}}),
            "hptuning.random_search.n_experiment: unknown key; did you mean 'n_experiments'?",
        ),
        (
            hptuning(
                {"matrix": {"lr": {"values": [1]}}, "hyperband": {**HB_BLOCK, "max_iters": 3}}
            ),
            "hptuning.hyperband.max_iters: unknown key; did you mean 'max_iter'?",
        ),
        (
            hptuning(
                {
                    "matrix": {"lr": {"values": [1]}},
                    "bo": {**BO_BLOCK, "utility_function": {"acquisition": "ei"}},
                }
            ),
            "hptuning.bo.utility_function.acquisition: unknown key; did you mean 'acquisition_function'?",
        ),
        (
            hptuning(
                {
                    "matrix": {"lr": {"values": [1]}},
                    "bo": {
                        **BO_BLOCK,
                        "utility_function": {"gaussian_process": {"lengthscale": 1}},
                    },
                }
            ),
            "hptuning.bo.utility_function.gaussian_process.lengthscale: unknown key; did you mean 'length_scale'?",
        ),
        (
            hptuning(
                {
                    "matrix": {"lr": {"values": [1]}},
                    "hyperband": {**HB_BLOCK, "resource": {"name": "s", "typ": "int"}},
                }
            ),
            "hyperband.resource.typ: unknown key; did you mean 'type'?",
        ),
        (
            hptuning(
                {
                    "matrix": {"lr": {"values": [1]}},
                    "hyperband": {**HB_BLOCK, "metric": {"name": "l", "optimize": "min"}},
                }
            ),
            "hyperband.metric.optimize: unknown key",
        ),
        (
            {**GRID_V0, "hptunning": {}},
            "hptunning: unknown top-level key; did you mean 'hptuning'?",
        ),
        (
            {**GRID_V0, "polytune": {"time_out": 3}},
            "polytune.time_out: unknown key; did you mean 'timeout'?",
        ),
        (
            {
                "version": 1.1,
                "matrix": {
                    "kind": "random",
                    "nunRuns": 50,
                    "params": {"lr": {"kind": "choice", "value": [1]}},
                },
            },
            "matrix.nunRuns: unknown key; did you mean 'numRuns'?",
        ),
        (
            {
                "version": 1.1,
                "matrix": {
                    "kind": "grid",
                    "seed": 1,
                    "params": {"lr": {"kind": "choice", "value": [1]}},
                },
            },
            "matrix.seed: unknown key",
        ),
        (
            {"version": 1.1, "matrix": {"kind": "gird", "params": {}}},
            "matrix.kind: did you mean 'grid'?",
        ),
        (
            hptuning({"matrix": {"lr": {"value": [1]}}}),
            "hptuning.matrix.lr.value: unknown matrix method; did you mean 'values'?",
        ),
        (
            hptuning({"matrix": {"lr": {"values": [1]}}}, run={"cmd": "x", "imagee": "y"}),
            "run.imagee: unknown key; did you mean 'image'?",
        ),
    ],
)
def test_unknown_keys_name_the_path_and_the_closest_key(doc: dict[str, Any], fragment: str) -> None:
    assert fragment in error_of(doc)


def test_ignored_sections_are_accepted_with_notes() -> None:
    doc = {
        **GRID_V0,
        "project": {"name": "p"},
        "build": {"image": "python:3", "build_steps": ["pip install x"]},
        "environment": {"resources": {"gpu": 1}},
        "logging": {"level": "INFO"},
        "tags": ["a"],
        "framework": "pytorch",
    }
    config = from_doc(doc)
    assert any(n.startswith("build is ignored") for n in config.notes)
    assert any(n.startswith("environment") for n in config.notes)


@pytest.mark.parametrize(
    ("section", "fragment"),
    [
        ({"concurrency": 0}, "hptuning.concurrency: must be at least 1"),
        ({"concurrency": "2"}, "hptuning.concurrency: must be a whole number"),
        ({"concurrency": True}, "hptuning.concurrency: must be a whole number"),
        ({"concurrency": 2.0}, "hptuning.concurrency: must be a whole number"),
        ({"seed": -1}, "hptuning.seed: must be at least 0"),
        ({"seed": 2**70}, "hptuning.seed: must be below 2**63"),
        ({"seed": "abc"}, "hptuning.seed: must be a whole number"),
        (
            {"random_search": {}},
            "hptuning.random_search.n_experiments: is required for random search",
        ),
        (
            {"random_search": {"n_experiments": 0}},
            "hptuning.random_search.n_experiments: must be at least 1",
        ),
        ({"hyperband": {**HB_BLOCK, "eta": 1}}, "hptuning.hyperband.eta: must be above 1"),
        (
            {"hyperband": {**HB_BLOCK, "eta": float("inf")}},
            "hptuning.hyperband.eta: must be a finite number",
        ),
        ({"hyperband": {**HB_BLOCK, "eta": 1.0001}}, "brackets; polytune supports at most 64"),
        (
            {"hyperband": {**HB_BLOCK, "max_iter": 10**400}},
            "hptuning.hyperband.max_iter: is too large",
        ),
        (
            {"hyperband": {k: v for k, v in HB_BLOCK.items() if k != "metric"}},
            "hptuning.hyperband.metric: is required for hyperband",
        ),
        (
            {"hyperband": {**HB_BLOCK, "resource": {"name": "s", "type": "long"}}},
            "hptuning.hyperband.resource.type: expected one of int, float",
        ),
        (
            {"hyperband": {**HB_BLOCK, "resume": "yes"}},
            "hptuning.hyperband.resume: must be true or false",
        ),
        (
            {"bo": {**BO_BLOCK, "n_initial_trials": 0}},
            "hptuning.bo.n_initial_trials: must be at least 1",
        ),
        (
            {"bo": {**BO_BLOCK, "utility_function": {"acquisition_function": "pi"}}},
            "acquisition_function: did you mean 'poi'?",
        ),
        (
            {"bo": {**BO_BLOCK, "utility_function": {"gaussian_process": {"kernel": "linear"}}}},
            "kernel: expected one of matern, rbf",
        ),
        (
            {"bo": {**BO_BLOCK, "utility_function": {"kappa": -1}}},
            "utility_function.kappa: must not be negative",
        ),
        (
            {"bo": {k: v for k, v in BO_BLOCK.items() if k != "metric"}},
            "hptuning.bo.metric: is required",
        ),
        (
            {"grid_search": {}, "bo": BO_BLOCK},
            "only one search algorithm can be used; found grid_search, bo",
        ),
        ({"tpe": {"n_experiments": 3}}, "hptuning.tpe.metric: is required for tpe"),
        ({"matrix": {}}, "hptuning.matrix: the matrix has no parameters"),
        ({"matrix": [1, 2]}, "hptuning.matrix: must be a mapping of parameter names to methods"),
        ({"early_stopping": {"metric": "x"}}, "hptuning.early_stopping: must be a list"),
    ],
)
def test_hptuning_value_errors(section: dict[str, Any], fragment: str) -> None:
    full = {"matrix": {"lr": {"values": [1, 2]}}, **section}
    assert fragment in error_of(hptuning(full, run={"cmd": "x"}))


def test_enumerations_in_any_case() -> None:
    config = from_doc(
        hptuning(
            {
                "bo": {
                    **BO_BLOCK,
                    "metric": {"name": "l", "optimization": "Maximize"},
                    "utility_function": {
                        "acquisition_function": "UCB",
                        "gaussian_process": {"kernel": "Matern"},
                    },
                },
                "matrix": {"lr": {"uniform": [0, 1]}},
            }
        )
    )
    assert isinstance(config.settings, BOSettings)
    assert (
        config.settings.metric.optimization,
        config.settings.acquisition_function,
        config.settings.kernel,
    ) == ("maximize", "ucb", "matern")


def test_metric_without_optimization_warns() -> None:
    config = from_doc(
        hptuning(
            {
                "hyperband": {**HB_BLOCK, "metric": {"name": "loss"}},
                "matrix": {"lr": {"values": [1, 2]}},
            }
        )
    )
    assert config.metric == MetricSpec("loss", "maximize")
    assert any("hyperband.metric: no optimization given" in w for w in config.warnings)


def test_params_and_declarations_together() -> None:
    assert "declarations: give either params or declarations, not both" in error_of(
        {**GRID_V0, "declarations": {"a": 1}}
    )


def test_constant_and_matrix_collision() -> None:
    doc = {**GRID_V0, "params": {"lr": 0.1}}
    assert error_of(doc).startswith(
        "params.lr: 'lr' is both a constant param and a matrix parameter"
    )
    doc = {**V1_COMPONENT, "params": {"bs": {"value": 8}}}
    assert error_of(doc).startswith(
        "params.bs: 'bs' is both a constant param and a matrix parameter"
    )


def test_hyperband_resource_collisions() -> None:
    doc = hptuning({"hyperband": HB_BLOCK, "matrix": {"steps": {"values": [1, 2]}}})
    assert (
        "hptuning.matrix.steps: 'steps' is hyperband's resource and cannot also be a matrix parameter"
        in error_of(doc)
    )
    doc = hptuning(
        {"hyperband": HB_BLOCK, "matrix": {"lr": {"values": [1, 2]}}}, params={"steps": 3}
    )
    assert "params.steps: 'steps' is hyperband's resource" in error_of(doc)


def test_hyperband_resource_is_a_known_placeholder() -> None:
    doc = hptuning(
        {"hyperband": HB_BLOCK, "matrix": {"lr": {"values": [1, 2]}}},
        run={"cmd": "train --steps={{ steps }} --lr={{ lr }}"},
    )
    config = from_doc(doc)
    assert config.algorithm == "hyperband"
    report = build_report(config)
    assert report["hyperband"]["total_experiments"] == 206
    assert report["command"]["example"] in ("train --steps=1 --lr=1", "train --steps=1 --lr=2")


def test_hyperband_small_discrete_space_warns() -> None:
    config = from_doc(hptuning({"hyperband": HB_BLOCK, "matrix": {"lr": {"values": [1, 2]}}}))
    assert any("brackets draw at most 2 distinct ones" in w for w in config.warnings)


def test_random_search_over_a_small_discrete_space_is_capped() -> None:
    config = from_doc(
        hptuning(
            {
                "random_search": {"n_experiments": 50},
                "matrix": {"lr": {"values": [1, 2, 3]}, "b": {"range": [0, 2, 1]}},
            }
        )
    )
    assert config.settings == RandomSettings(6)
    assert any("asks for 50 experiments" in w and "runs all 6" in w for w in config.warnings)


def test_bo_accepts_the_four_bounded_distributions_and_rejects_the_rest() -> None:
    for method, value in [
        ("uniform", [0, 1]),
        ("quniform", [0, 10, 1]),
        ("loguniform", [-5, 0]),
        ("qloguniform", [0, 3, 1]),
    ]:
        assert (
            from_doc(hptuning({"bo": BO_BLOCK, "matrix": {"p": {method: value}}})).algorithm == "bo"
        )
    for method, value in [
        ("normal", [0, 1]),
        ("lognormal", [0, 1]),
        ("qnormal", [0, 1, 1]),
        ("qlognormal", [0, 1, 1]),
    ]:
        message = error_of(hptuning({"bo": BO_BLOCK, "matrix": {"p": {method: value}}}))
        assert (
            f"hptuning.matrix.p: 'p' is a {method} distribution, which bayesian optimization cannot search"
            in message
        )
    assert "cannot search pvalues" not in error_of(
        hptuning({"bo": BO_BLOCK, "matrix": {"p": {"pvalues": [[1, 0.5], [2, 0.5]]}}})
    )


def test_tpe_accepts_pvalues_and_dates() -> None:
    # polytune's TPE takes pchoice probabilities as the categorical prior (Polyaxon refused
    # them) and models date ranges as ordered values.
    doc = {
        "version": 1.1,
        "urlRef": "x",
        "matrix": {
            "kind": "tpe",
            "numRuns": 3,
            "metric": {"name": "l"},
            "params": {
                "a": {"kind": "pchoice", "value": [[1, 0.5], [2, 0.5]]},
                "d": {"kind": "daterange", "value": ["2024-01-01", "2024-02-01", 1]},
            },
        },
    }
    assert from_doc(doc).algorithm == "tpe"


# ---------------------------------------------------------------------------------------------
# run.cmd placeholders
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cmd",
    [
        "train --lr={{lr}} --act={{ act }} --batch={{  batch  }}",
        "train --out={{ globals.outputs_path }} --id={{ globals.uuid }} --lr={{ lr }}",
        "echo {no placeholder} {{",
    ],
)
def test_known_placeholders(cmd: str) -> None:
    assert from_doc({**GRID_V0, "run": {"cmd": cmd}}).command is not None


@pytest.mark.parametrize(
    ("cmd", "fragment"),
    [
        (
            "train --lr={{ lrr }}",
            "run.cmd: unknown name {{ lrr }}: did you mean 'lr'? known names are batch, lr, act",
        ),
        ("train {{ a > b }}", "run.cmd: {{ a > b }} is not a name"),
        ("train {{ lr | round }}", "run.cmd: {{ lr | round }} is not a name"),
        ("train {{ globals.nothing }}", "unknown name {{ globals.nothing }}"),
        ("{% if lr %}train{% endif %}", "run.cmd: Jinja statements and comments"),
        ("", "run.cmd: is empty"),
        (3, "run.cmd: must be a command string or a list of them"),
    ],
)
def test_unknown_placeholders(cmd: Any, fragment: str) -> None:
    assert fragment in error_of({**GRID_V0, "run": {"cmd": cmd}})


def test_placeholder_helpers() -> None:
    template = CommandTemplate("shell", ("a {{ x }} {{y}} {{ x }}", "{{ globals.uuid }}"))
    assert placeholders(template) == ["x", "y", "globals.uuid"]
    assert PLACEHOLDER_RE.findall("{{ a }}{{b}}") == ["a", "b"]
    assert "globals.outputs_path" in CONTEXT_NAMES


def test_placeholders_checked_in_v1_args() -> None:
    doc = deep_merge(
        V1_COMPONENT, {"component": {"run": {"container": {"args": ["--x={{ nope }}"]}}}}
    )
    assert "component.run.container: unknown name {{ nope }}" in error_of(doc)


# ---------------------------------------------------------------------------------------------
# polytune section
# ---------------------------------------------------------------------------------------------


def test_polytune_section() -> None:
    config = from_doc(
        {
            **GRID_V0,
            "polytune": {
                "metric": {"name": "acc", "optimization": "maximize"},
                "timeout": 60,
                "max_restarts": 2,
                "stop_grace": 0,
                "env": {"CUDA_VISIBLE_DEVICES": 0, "FLAG": True},
                "stdout_metrics": True,
            },
        }
    )
    p = config.polytune
    assert (p.metric, p.timeout, p.max_restarts, p.stop_grace, p.stdout_metrics) == (
        MetricSpec("acc", "maximize"),
        60.0,
        2,
        0.0,
        True,
    )
    assert p.env == {"CUDA_VISIBLE_DEVICES": "0", "FLAG": "true"}
    assert config.metric == MetricSpec("acc", "maximize")


@pytest.mark.parametrize(
    ("section", "fragment"),
    [
        ([], "polytune: must be a mapping"),
        ({"timeout": 0}, "polytune.timeout: must be positive"),
        ({"max_restarts": -1}, "polytune.max_restarts: must be at least 0"),
        ({"env": {"1BAD": "x"}}, "polytune.env.1BAD: is not a valid environment variable name"),
        ({"env": {"A": [1]}}, "polytune.env.A: must be a string or a number"),
        ({"stdout_metrics": "yes"}, "polytune.stdout_metrics: must be true or false"),
        ({"executor": "slurm"}, "polytune.executor: expected one of local"),
        ({"metric": {"optimization": "minimize"}}, "polytune.metric.name: is required"),
    ],
)
def test_polytune_section_errors(section: Any, fragment: str) -> None:
    assert fragment in error_of({**GRID_V0, "polytune": section})


# ---------------------------------------------------------------------------------------------
# odd documents never raise anything but ConfigError
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "doc",
    [
        {"hptuning": None},
        {"hptuning": []},
        {"hptuning": {"matrix": None}},
        {"hptuning": {"matrix": {"lr": None}}},
        {"hptuning": {"matrix": {"lr": {"values": [1]}}, "concurrency": float("nan")}},
        {"hptuning": {"matrix": {1: {"values": [1]}}}},
        {"matrix": {"kind": "grid"}},
        {"matrix": {"kind": "grid", "params": None}},
        {"version": 1.1, "matrix": {"kind": 3}},
        {
            "version": 1.1,
            "matrix": {"kind": "grid", "params": {"a": {"kind": "choice", "value": [1]}}},
            "component": [],
        },
        {
            "version": 1.1,
            "matrix": {"kind": "grid", "params": {"a": {"kind": "choice", "value": [1]}}},
            "component": {"run": {"container": {"command": [{"a": 1}]}}},
        },
        {
            "version": 1.1,
            "matrix": {"kind": "grid", "params": {"a": {"kind": "choice", "value": [1]}}},
            "component": {"inputs": [{"name": None}]},
        },
        {
            "version": 1.1,
            "matrix": {"kind": "grid", "params": {"a": {"kind": "choice", "value": [1]}}},
            "urlRef": "a",
            "pathRef": "b",
        },
        {"hptuning": {"matrix": {"lr": {"values": [1]}}}, "settings": {}},
        {"hptuning": {"matrix": {"lr": {"values": [1]}}}, "run": {"cmd": ["a", None]}},
        {"hptuning": {"matrix": {"lr": {"values": [1]}}}, "name": 3},
        {"hptuning": {"matrix": {"lr": {"range": [0, 1e308, 1e-308]}}}},
    ],
)
def test_odd_documents(doc: dict[Any, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(yaml.safe_dump(doc), Path("."))
    assert "\n" not in str(info.value)


_KEYS = st.sampled_from(
    [
        "version",
        "kind",
        "hptuning",
        "settings",
        "matrix",
        "params",
        "declarations",
        "inputs",
        "run",
        "cmd",
        "component",
        "container",
        "command",
        "args",
        "polytune",
        "concurrency",
        "seed",
        "random_search",
        "grid_search",
        "hyperband",
        "bo",
        "tpe",
        "n_experiments",
        "max_iter",
        "eta",
        "resource",
        "metric",
        "name",
        "optimization",
        "type",
        "early_stopping",
        "earlyStopping",
        "policy",
        "value",
        "values",
        "pvalues",
        "range",
        "uniform",
        "logspace",
        "numRuns",
        "maxIterations",
        "params",
        "urlRef",
        "utility_function",
        "lr",
    ]
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(
        [
            "grid",
            "random",
            "hyperband",
            "bayes",
            "mapping",
            "job",
            "dag",
            "int",
            "minimize",
            "1:10:1",
            "{{ lr }}",
            "0.1:1:3",
        ]
    ),
)
_TREES = st.recursive(
    _SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.one_of(_KEYS, st.text(max_size=6)), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=st.dictionaries(_KEYS, _TREES, max_size=6))
def test_arbitrary_documents_raise_only_config_errors(doc: dict[str, Any]) -> None:
    try:
        text = yaml.safe_dump(doc)
    except yaml.YAMLError:
        return
    try:
        config = load_text(text, Path("."))
    except ConfigError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(config, Config)
        build_report(config)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200))
def test_arbitrary_text_raises_only_config_errors(text: str) -> None:
    try:
        load_text(text, Path("."))
    except ConfigError as exc:
        assert "\n" not in str(exc)


# ---------------------------------------------------------------------------------------------
# check report
# ---------------------------------------------------------------------------------------------


def test_check_report_grid() -> None:
    report = build_report(from_doc(GRID_V0))
    assert report["algorithm"] == "grid"
    assert report["experiments"] == 4
    assert report["seed_text"] == "drawn at run time"
    assert [p["name"] for p in report["space"]["parameters"]] == ["lr", "act"]
    assert report["space"]["parameters"][0]["values"] == [0.1, 0.2]
    assert report["command"]["example"] == "python train.py --lr=0.1 --act=relu --batch=32"
    console = Console(record=True, width=120)
    render_report(report, console)
    text = console.export_text()
    assert "python train.py --lr=0.1 --act=relu --batch=32" in text
    assert "lr" in text and "values [0.1, 0.2]" in text


def test_check_report_hyperband_bo_tpe_and_warnings() -> None:
    hb = build_report(
        from_doc(
            hptuning(
                {
                    "hyperband": {**HB_BLOCK, "metric": {"name": "loss"}},
                    "matrix": {"lr": {"uniform": [0, 1]}},
                }
            )
        )
    )
    assert hb["hyperband"]["schedule"][0] == {
        "bracket": 4,
        "rung": 0,
        "experiments": 81,
        "resource": 1,
    }
    assert hb["experiments"] == 206
    assert any("no optimization given" in w for w in hb["warnings"])
    bo = build_report(
        from_doc(
            hptuning({"seed": 1, "bo": BO_BLOCK, "matrix": {"lr": {"logspace": "0.01:0.1:5"}}})
        )
    )
    assert bo["bo"] == {"initial_trials": 2, "iterations": 10, "total_experiments": 12}
    assert bo["seed_text"] == "1"
    assert any("logspace" in w for w in bo["warnings"])  # Param.warnings are included
    tpe = build_report(
        from_doc(
            hptuning(
                {
                    "tpe": {
                        "n_experiments": 30,
                        "metric": {"name": "a", "optimization": "maximize"},
                    },
                    "matrix": {"lr": {"uniform": [0, 1]}},
                }
            )
        )
    )
    assert tpe["tpe"]["guided_trials"] == 20
    for report in (hb, bo, tpe):
        console = Console(record=True, width=100)
        render_report(report, console)
        assert console.export_text()


@pytest.mark.parametrize(
    "doc",
    [
        {"hptuning": {"matrix": {"lr": {"values": [1]}}, "bad\nkey": 1}},
        {"hptu\nning": {}},
        {"hptuning": {"matrix": {"l\nr": {"values": [1]}}}},
        {"hptuning": {"matrix": {"lr": {"values": [1]}}}, "params": {"a\nb": 1}},
        {"hptuning": {"matrix": {"lr": {"values": [1]}}}, "run": {"cmd": "x {{ a\nb }}"}},
        {
            "version": 1.1,
            "urlRef": "x",
            "matrix": {"kind": "mapping", "values": [{"a": 1}, {"b\n": 2}]},
        },
    ],
)
def test_messages_stay_on_one_line_with_control_characters(doc: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(yaml.safe_dump(doc), Path("."))
    assert "\n" not in str(info.value)


LAYOUT_FILES = [
    (
        "matrix-top",
        "grid",
        """
        version: 1
        matrix: {lr: {values: [0.1, 0.2]}}
        run: {cmd: "train --lr={{ lr }}"}
        """,
    ),
    (
        "settings+matrix",
        "random",
        """
        version: 1
        settings: {concurrent_experiments: 2, search_method: random, n_experiments: 0.5}
        matrix: {lr: {values: [0.1, 0.2, 0.3, 0.4]}}
        run: {cmd: "train --lr={{ lr }}"}
        """,
    ),
    (
        "settings",
        "bo",
        """
        version: 1
        kind: group
        settings:
          concurrency: 2
          bo: {n_iterations: 5, n_initial_trials: 3, metric: {name: loss, optimization: minimize}}
          matrix: {lr: {uniform: [0.001, 0.01]}}
        run: {cmd: "train --lr={{ lr }}"}
        """,
    ),
    (
        "hptuning",
        "hyperband",
        """
        version: 1
        kind: group
        hptuning:
          concurrency: 2
          hyperband:
            max_iter: 27
            eta: 3
            resource: {name: epochs, type: int}
            metric: {name: loss, optimization: minimize}
          matrix: {lr: {uniform: [0.001, 0.01]}}
        params: {batch: 16}
        run: {cmd: "train --lr={{ lr }} --epochs={{ epochs }} --batch={{ batch }}"}
        """,
    ),
    (
        "v1",
        "grid",
        """
        version: 1.1
        kind: operation
        matrix:
          kind: grid
          params: {lr: {kind: choice, value: [0.1, 0.2]}}
        component:
          run:
            kind: job
            container: {image: python:3.11, command: [python, train.py], args: ["--lr={{ lr }}"]}
        """,
    ),
    (
        "v1",
        "random",
        """
        version: 1.1
        kind: component
        inputs: [{name: lr, type: float}, {name: epochs, type: int, isOptional: true, value: 2}]
        matrix:
          kind: random
          numRuns: 3
          params: {lr: {kind: uniform, value: [0, 1]}}
        run:
          kind: job
          container: {command: [python, train.py, "--lr={{ lr }}", "--epochs={{ epochs }}"]}
        """,
    ),
]


@pytest.mark.parametrize(("layout", "algorithm", "text"), LAYOUT_FILES)
def test_each_layout_from_a_file(tmp_path: Path, layout: str, algorithm: str, text: str) -> None:
    path = tmp_path / "polyaxonfile.yml"
    path.write_text(textwrap.dedent(text))
    config = load([path])
    assert (config.layout, config.algorithm) == (layout, algorithm)
    assert config.command is not None
    assert config.base_dir == tmp_path.resolve()
    assert config.sources == (str(path),)
    assert isinstance(config.document, dict)
    command = example_command(config)
    assert command is not None and "{{" not in command


def test_random_cap_counts_only_reachable_configurations() -> None:
    # the first pvalues item has probability 0: a random draw never gives it
    doc = hptuning(
        {
            "random_search": {"n_experiments": 10},
            "matrix": {"a": {"pvalues": [[1, 0.0], [2, 0.5]]}, "b": {"values": [1, 2]}},
        }
    )
    config = from_doc(doc)
    assert config.settings == RandomSettings(2)
    assert any("only 2 reachable configurations" in w for w in config.warnings)
