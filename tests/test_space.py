"""The search space: properties over every method and spelling, error messages, and regressions.

Polyaxon's own vectors are in ``test_vectors_space.py``; the strategies in ``strategies.py``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from strategies import (
    GRID_METHODS,
    garbage_specs,
    in_domain,
    is_plain,
    matrices,
    matrix_entry,
    spaces,
)

from polytune.errors import ConfigError
from polytune.space import (
    MAX_MATERIALIZED,
    Param,
    Space,
    config_key,
    parse_param,
    plain,
    space_from_matrix,
)

PATH = "hptuning.matrix.x"
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parse(spec: Any) -> Param:
    return parse_param("x", spec, PATH)


def error_of(spec: Any) -> str:
    with pytest.raises(ConfigError) as info:
        parse(spec)
    return str(info.value)


# ----------------------------------------------------------------------------------------
# Properties
# ----------------------------------------------------------------------------------------


@FAST
@given(entry=matrix_entry(), seed=st.integers(0, 2**32 - 1))
def test_a_sample_lies_in_the_effective_domain(entry: dict[str, Any], seed: int) -> None:
    param = parse(entry)
    rng = np.random.default_rng(seed)
    for _ in range(5):
        value = param.sample(rng)
        assert in_domain(param, value), (entry, value, param.describe())
        assert is_plain(value), value


@FAST
@given(entry=matrix_entry(methods=("uniform", "quniform")), seed=st.integers(0, 2**32 - 1))
@example(entry={"uniform": [1, 0]}, seed=0)  # low > high: Polyaxon accepts it
@example(entry={"uniform": [3.5, 3.5]}, seed=0)
@example(entry={"quniform": [0.05, 1, 0.1]}, seed=1)  # floors below low
def test_uniform_stays_between_its_bounds_whatever_their_order(
    entry: dict[str, Any], seed: int
) -> None:
    param = parse(entry)
    bounds = param.bounds()
    assert bounds is not None
    rng = np.random.default_rng(seed)
    for _ in range(20):
        value = param.sample(rng)
        assert bounds[0] - 1e-9 <= value <= bounds[1] + 1e-9, (value, bounds)


@FAST
@given(entry=matrix_entry(methods=("loguniform", "qloguniform")), seed=st.integers(0, 2**16))
def test_loguniform_values_lie_within_the_exp_of_the_bounds(
    entry: dict[str, Any], seed: int
) -> None:
    param = parse(entry)
    low, high = sorted((float(param.args["low"]), float(param.args["high"])))
    rng = np.random.default_rng(seed)
    for _ in range(20):
        value = param.sample(rng)
        assert value <= math.exp(high) * (1 + 1e-12)
        if "q" not in param.args:
            assert value >= math.exp(low) * (1 - 1e-12)


@FAST
@given(
    entry=matrix_entry(methods=("quniform", "qloguniform", "qnormal", "qlognormal")),
    seed=st.integers(0, 2**16),
)
def test_quantized_values_are_multiples_of_q(entry: dict[str, Any], seed: int) -> None:
    param = parse(entry)
    q = float(param.args["q"])
    rng = np.random.default_rng(seed)
    for _ in range(20):
        k = param.sample(rng) / q
        assert abs(k - round(k)) <= 1e-9 * max(1.0, abs(k))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(space=spaces(GRID_METHODS, max_params=3, max_values=6))
def test_the_grid_has_exactly_size_distinct_configurations(space: Space) -> None:
    configs = list(space.grid())
    assert space.size == len(configs)
    keys = [config_key(c) for c in configs]
    assert len(set(keys)) == len(keys)
    for k, config in enumerate(configs):
        assert list(config) == space.names
        assert space.point(k) == config
        assert space.index_of(config) == k
        assert is_plain(config)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(spec=garbage_specs())
@example(spec={"range": [0, 10**400, 1]})
@example(spec={"range": [-1e308, 1e308, 1]})
@example(spec={"range": [0, 1e308, 1e-300]})
@example(spec={"range": "1:2:x"})
@example(spec={"linspace": "nan:1:2"})
@example(spec={"logspace": [-2000, -1, 3, 0.5]})
@example(spec={"logspace": "0.1:0.5:3:1"})
@example(spec={"lognormal": [1000, 1]})
@example(spec={"qnormal": [0, 1, 1e-320]})
@example(spec={"uniform": [-1e308, 1e308]})
@example(spec={"kind": "datetimerange", "value": ["0001-01-01", "9999-01-01", 1]})
@example(spec={"kind": "datetimerange", "value": ["2019-06-22T21:00+02:00", "2019-06-23", 60]})
@example(spec={"kind": "daterange", "value": ["2019-06-22", "2019-06-25", 10**400]})
@example(spec={"values": [[[[[[]]]]]]})
@example(spec={"pvalues": [[float("nan"), 0.5]]})
@example(spec={"kind": 3, "value": 1})
@example(spec={"uniform": [0, 1], "bogus\nkey": 1})
def test_parse_param_raises_only_config_errors_on_one_line(spec: Any) -> None:
    try:
        param = parse(spec)
    except ConfigError as exc:
        message = str(exc)
        assert "\n" not in message
        assert message.startswith(PATH)
        return
    # Whatever parses is usable.
    param.describe()
    json.dumps(param.to_json())
    assert is_plain(param.sample(np.random.default_rng(0)))


@FAST
@given(entry=matrix_entry(methods=(*GRID_METHODS, "pvalues")))
def test_materialized_values_are_plain_python(entry: dict[str, Any]) -> None:
    param = parse(entry)
    assert is_plain(param.values)
    assert all(type(p) is float for p in param.probabilities)
    assert math.fsum(param.probabilities) == pytest.approx(1.0)
    assert is_plain(param.to_json()["values"])


@FAST
@given(entry=matrix_entry())
def test_describe_and_to_json_never_raise(entry: dict[str, Any]) -> None:
    param = parse(entry)
    text = param.describe()
    assert text and "\n" not in text
    data = param.to_json()
    assert data["domain"] == text
    json.dumps(data)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(matrix=matrices(max_params=4))
def test_space_keeps_declaration_order_and_samples_every_parameter(
    matrix: dict[str, Any],
) -> None:
    space = space_from_matrix(matrix, "hptuning.matrix")
    assert space.names == list(matrix)
    config = space.sample(np.random.default_rng(0))
    assert list(config) == list(matrix)
    assert is_plain(config)
    json.dumps(space.to_json())


# ----------------------------------------------------------------------------------------
# Messages: one line, the key path and the bad value
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "where", "what"),
    [
        ({"range": [10, 1, 1]}, f"{PATH}.range", "start=10, stop=1"),
        ({"range": [1, 2, 0]}, f"{PATH}.range", "(got 0)"),
        ({"range": [1, 5, -1]}, f"{PATH}.range", "(got -1)"),
        ({"range": "1:2:x"}, f"{PATH}.range", "'x'"),
        ({"range": "1:10"}, f"{PATH}.range", "'1:10'"),
        ({"range": [0, 10**400, 1]}, f"{PATH}.range", "too large"),
        (
            {"range": [0, 10**9, 1]},
            f"{PATH}.range",
            f"1000000000 values, more than polytune allows ({MAX_MATERIALIZED})",
        ),
        ({"linspace": [0, 1, 2.5]}, f"{PATH}.linspace", "(got 2.5)"),
        ({"linspace": [0, 1, 0]}, f"{PATH}.linspace", "(got 0)"),
        ({"linspace": [0, "nan", 3]}, f"{PATH}.linspace", "(got 'nan')"),
        ({"linspace": [0, float("inf"), 3]}, f"{PATH}.linspace", "(got inf)"),
        ({"logspace": [1, 400, 3]}, f"{PATH}.logspace", "10**400"),
        ({"logspace": [1, 2, 3, -2]}, f"{PATH}.logspace", "(got -2)"),
        ({"geomspace": [-1, 10, 3]}, f"{PATH}.geomspace", "start=-1, stop=10"),
        ({"uniform": [0, "a"]}, f"{PATH}.uniform", "(got 'a')"),
        ({"uniform": [True, 2]}, f"{PATH}.uniform", "(got True)"),
        ({"quniform": [0, 1, 0]}, f"{PATH}.quniform", "(got 0)"),
        ({"normal": [0, -1]}, f"{PATH}.normal", "(got -1)"),
        ({"lognormal": [800, 1]}, f"{PATH}.lognormal", "loc=800, scale=1"),
        ({"loguniform": [0, 800]}, f"{PATH}.loguniform", "exp(800)"),
        ({"uniform": {"low": 0, "hi": 1}}, f"{PATH}.uniform", "'hi'"),
        ({"uniform": {"low": 0}}, f"{PATH}.uniform", "requires high"),
        ({"values": []}, PATH, "found none"),
        ({"values": "a,b"}, f"{PATH}.values", "(got 'a,b')"),
        ({"pvalues": [[1, 0.5], [2, 1]]}, f"{PATH}.pvalues[1]", "(got 1)"),
        ({"pvalues": [[1, 0.7], [2, 0.7]]}, f"{PATH}.pvalues", "1.4"),
        ({"pvalues": ["a"]}, f"{PATH}.pvalues[0]", "(got 'a')"),
        ({"ranges": [1, 2, 1]}, f"{PATH}.ranges", "did you mean 'range'"),
        ({"values": [1], "range": [1, 2, 1]}, PATH, "found values, range"),
        ({"kind": "grid", "value": [1]}, f"{PATH}.kind", "(got 'grid')"),
        ({"kind": "choice"}, f"{PATH}.value", "is required"),
        ({"kind": "choice", "value": [1], "size": 2}, f"{PATH}.size", "unknown key"),
        (
            {"kind": "daterange", "value": ["2019-13-01", "2019-12-02", 1]},
            f"{PATH}.value",
            "'2019-13-01'",
        ),
        ({"kind": "daterange", "value": "2019-01-01:2019-02-01:1"}, f"{PATH}.value", "2019-01-01"),
        (
            {"kind": "datetimerange", "value": ["2019-06-22T21:00+02:00", "2019-06-23", 60]},
            f"{PATH}.value",
            "time zone",
        ),
        (
            {"kind": "daterange", "value": ["2019-06-25", "2019-06-22", 1]},
            f"{PATH}.value",
            "start=2019-06-25, stop=2019-06-22",
        ),
        ("uniform", PATH, "(got 'uniform')"),
        ({"bad\nkey": [1]}, f"{PATH}.'bad\\nkey'", "unknown matrix method"),
    ],
)
def test_errors_name_the_key_path_and_the_bad_value_on_one_line(
    spec: Any, where: str, what: str
) -> None:
    message = error_of(spec)
    assert "\n" not in message
    assert message.startswith(f"{where}: "), message
    assert what in message, message


def test_space_from_matrix_errors_name_the_parameter() -> None:
    with pytest.raises(ConfigError, match=r"^hptuning\.matrix\.lr\.range: "):
        space_from_matrix({"ok": {"values": [1]}, "lr": {"range": [3, 1, 1]}}, "hptuning.matrix")
    with pytest.raises(ConfigError, match=r"^hptuning\.matrix: .*mapping"):
        space_from_matrix([1, 2], "hptuning.matrix")
    with pytest.raises(ConfigError, match=r"^hptuning\.matrix: parameter names .*\(got 3\)"):
        space_from_matrix({3: {"values": [1]}}, "hptuning.matrix")


# ----------------------------------------------------------------------------------------
# Regressions and decisions
# ----------------------------------------------------------------------------------------


def test_uniform_with_low_above_high_samples_between_them() -> None:
    # numpy's Generator.uniform raises on low > high; Polyaxon (RandomState) accepted it.
    param = parse({"uniform": [1, 0]})
    assert any("above high" in w for w in param.warnings)
    rng = np.random.default_rng(0)
    draws = [param.sample(rng) for _ in range(200)]
    assert all(0 <= d <= 1 for d in draws)
    assert param.bounds() == (0.0, 1.0)


def test_qlognormal_floors_the_lognormal_draw() -> None:
    # Polyaxon 0.6.1 returned exp(lognormal) and ignored q; polytune floors the lognormal draw.
    param = parse({"qlognormal": [0, 1, 0.5]})
    assert param.transform(math.log(2.71)) == 2.5
    rng = np.random.default_rng(3)
    assert all(param.sample(rng) % 0.5 == 0 for _ in range(50))


def test_repeated_values_are_dropped_with_a_warning() -> None:
    param = parse({"values": [1, 1, 1]})  # a real polyaxonfile (keras mnist example)
    assert param.values == [1] and param.size == 1
    assert any("repeated" in w for w in param.warnings)
    # 1, 1.0 and True are different values: they render differently on a command line.
    assert parse({"values": [1, 1.0, True]}).values == [1, 1.0, True]
    assert parse({"values": [[1], [1], {"a": 1}, {"a": 1}]}).values == [[1], {"a": 1}]


def test_repeated_pvalues_add_their_probabilities() -> None:
    param = parse({"pvalues": [["a", 0.2], ["b", 0.3], ["a", 0.1], ["c", 0.1]]})
    assert param.values == ["a", "b", "c"]
    # the last value gets 1 - 0.6 = 0.4 (numpy's rule), then "a" is merged: 0.2 + 0.1
    assert param.probabilities == pytest.approx([0.3, 0.3, 0.4])
    assert any("merged" in w for w in param.warnings)


def test_ranges_that_collapse_under_rounding_are_distinct() -> None:
    param = parse({"linspace": [1, 1 + 1e-15, 10]})
    assert len(param.values) == len(set(param.values)) < 10
    assert any("distinct" in w for w in param.warnings)
    base_one = parse({"logspace": "0.1:0.5:3:1"})  # base 1: every value is 1.0 (was a crash)
    assert base_one.values == [1.0]


def test_all_integer_ranges_are_exact_python_ints() -> None:
    param = parse({"range": [2**70, 2**70 + 3, 1]})
    assert param.values == [2**70, 2**70 + 1, 2**70 + 2]
    assert all(type(v) is int for v in param.values)


def test_ranges_keep_numpy_float_artefacts() -> None:
    assert parse({"range": [0, 1, 0.25]}).values == [0.0, 0.25, 0.5, 0.75]
    for spec in ("0:0.3:0.1", "0:0.7:0.1", "1.2:1.8:0.1", "-1:1:0.3"):
        start, stop, step = (float(x) for x in spec.split(":"))
        assert parse({"range": spec}).values == np.arange(start, stop, step).tolist()
    assert parse({"range": "1.2:1.8:0.1"}).values[-1] == 1.8000000000000005


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            ["20190622", "20190624", 1],
            ["2019-06-22", "2019-06-23"],
        ),  # compact ISO (was year 20190622)
        (
            [dt.date(2019, 6, 22), dt.date(2019, 6, 24), 1],
            ["2019-06-22", "2019-06-23"],
        ),  # YAML dates
        ([dt.datetime(2019, 6, 22, 5), "2019-06-24", 1.0], ["2019-06-22", "2019-06-23"]),
        (["2019-06-22", "2019-07-02", 7], ["2019-06-22", "2019-06-29"]),
    ],
)
def test_daterange(value: list[Any], expected: list[str]) -> None:
    assert parse({"kind": "daterange", "value": value}).values == expected


def test_datetimerange_compares_instants_not_strings() -> None:
    # "T" sorts after " ": as strings, start > stop here; as instants, 23:00 < 23:30.
    param = parse({"kind": "datetimerange", "value": ["2019-06-22T23:00", "2019-06-22 23:30", 600]})
    assert param.values == ["2019-06-22T23:00:00", "2019-06-22T23:10:00", "2019-06-22T23:20:00"]
    fraction = parse(
        {"kind": "datetimerange", "value": ["2019-06-22T21:00:00.5", "2019-06-22T22:00", 1800]}
    )
    assert fraction.values == ["2019-06-22T21:00:00.500000", "2019-06-22T21:30:00.500000"]


def test_yaml_dates_in_values_become_iso_strings() -> None:
    param = parse({"values": [dt.date(2019, 1, 1), dt.datetime(2019, 1, 1, 12)]})
    assert param.values == ["2019-01-01", "2019-01-01T12:00:00"]
    assert plain({"d": (dt.date(2020, 2, 2), np.float64(1.5), np.int64(3))}) == {
        "d": ["2020-02-02", 1.5, 3]
    }


def test_string_parts_keep_ints_and_floats() -> None:
    assert parse({"range": " 1 : 5 : 1"}).values == [1, 2, 3, 4]
    assert parse({"range": "0x0:0x4:1_0"}).args == {"start": 0, "stop": 4, "step": 10}
    assert parse({"uniform": "1e-3:1."}).args == {"low": 0.001, "high": 1.0}
    # v2 turns start/stop/low/high/loc/scale into floats
    assert parse({"kind": "range", "value": "0:3:1"}).values == [0.0, 1.0, 2.0]


def test_size_element_is_ignored_with_a_warning() -> None:
    param = parse({"uniform": [0, 1, 0.5]})
    assert param.args == {"low": 0, "high": 1}
    assert any("size" in w for w in param.warnings)


def test_normal_draws_are_clipped_so_they_always_fit() -> None:
    param = parse({"lognormal": [0, 70]})  # exp(0 + 10 * 70) still fits a float
    rng = np.random.default_rng(0)
    assert all(math.isfinite(param.sample(rng)) for _ in range(1000))
    assert param.transform(10_000.0) == math.inf  # transform itself never raises


def test_effective_domains_are_described() -> None:
    assert parse({"quniform": [0.05, 1, 0.1]}).describe() == (
        "quniform [0.05, 1, q=0.1] → multiples of 0.1 in [0, 1]"
    )
    text = parse({"loguniform": [-9.21, -2.3]}).describe()
    assert "natural-log bounds" in text and "1.00e-04" in text
    assert (
        parse({"logspace": "0.01:0.1:5"}).describe().endswith("1.023, 1.078, 1.135, 1.195, 1.259")
    )
    assert "median 1" in parse({"lognormal": [0, 1]}).describe()
    assert (
        "P('relu': 0.1, 'sigmoid': 0.9)"
        in parse({"pvalues": [["relu", 0.1], ["sigmoid", 0.8]]}).describe()
    )


def test_logspace_values_given_as_values_warn() -> None:
    param = parse({"logspace": "0.01:0.1:5"})
    assert any("exponents" in w and "-2:-1:5" in w for w in param.warnings)


def test_point_and_index_of_on_a_huge_grid() -> None:
    space = space_from_matrix(
        {f"p{i}": {"range": [0, 1000, 1]} for i in range(5)}, "hptuning.matrix"
    )
    assert space.size == 10**15
    index = 123_456_789_012_345
    config = space.point(index)
    assert config == {"p0": 123, "p1": 456, "p2": 789, "p3": 12, "p4": 345}
    assert space.index_of(config) == index
    assert space.index_of({**config, "p4": 1000}) is None
    assert space.index_of({"p0": 1}) is None
    with pytest.raises(IndexError):
        space.point(10**15)


def test_configurations_do_not_alias_the_space() -> None:
    space = space_from_matrix({"layers": {"values": [[32, 32]]}}, "m")
    for config in (space.sample(np.random.default_rng(0)), next(space.grid()), space.point(0)):
        config["layers"].append(1)
    assert space["layers"].values == [[32, 32]]


def test_config_key_is_canonical() -> None:
    assert config_key({"b": 1, "a": 0.5}) == config_key({"a": 0.5, "b": 1})
    assert config_key({"a": 1}) != config_key({"a": 1.0}) != config_key({"a": True})
    assert config_key({"a": np.float64(0.5)}) == config_key({"a": 0.5})
    assert config_key({"a": (1, 2)}) == config_key({"a": [1, 2]})
    assert Space.config_key({"a": [1, {"b": 2}]}) == config_key({"a": [1, {"b": 2}]})
