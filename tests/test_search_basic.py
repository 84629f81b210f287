"""Grid, mapping and random search, and the contract every searcher must honour.

``check_searcher_contract(make_searcher, space)`` is meant for reuse by every searcher's tests
(Hyperband, BO, ...): ``from test_search_basic import check_searcher_contract``. It drives a fresh
searcher the way the driver does (history in id order, running experiments included, the RNG made
from the seed and the history length) and checks at every step that

* the suggestion is deterministic: the same searcher asked again, and a *fresh* searcher given the
  same history (a resumed group after a crash), suggest the same thing;
* nothing is suggested once ``is_finished`` is true;
* the number of experiments never exceeds ``planned_total()``;
* every configuration names exactly the space's parameters, lies in their domains and holds only
  plain JSON types;
* the search ends.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import DISTRIBUTION_METHODS, GRID_METHODS, in_domain, is_plain, spaces

from polytune.algorithms.grid import GridSearch, MappingSearch
from polytune.algorithms.random_search import RandomSearch
from polytune.experiment import Experiment, Searcher, Status, Suggestion
from polytune.space import Space, config_key, space_from_matrix

# ----------------------------------------------------------------------------------------
# Helpers (reusable)
# ----------------------------------------------------------------------------------------


def make_space(matrix: Mapping[str, Any]) -> Space:
    return space_from_matrix(dict(matrix), "hptuning.matrix")


def experiment(
    exp_id: int,
    config: Mapping[str, Any],
    *,
    status: Status = Status.SUCCEEDED,
    meta: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
) -> Experiment:
    """A fake experiment record as the store would hold it."""
    return Experiment(
        id=exp_id,
        config=dict(config),
        params=dict(config),
        status=status,
        meta=dict(meta or {}),
        metrics=dict(metrics or {}),
    )


def history_of(configs: Sequence[Mapping[str, Any]], **kwargs: Any) -> list[Experiment]:
    return [experiment(i + 1, c, **kwargs) for i, c in enumerate(configs)]


def fake_metric(config: Mapping[str, Any], extra: Mapping[str, Any]) -> float:
    """A deterministic pseudo-objective of a configuration (and resource, for Hyperband)."""
    return zlib.crc32(config_key({**config, **extra}).encode()) / 2**32


def rng_for(seed: int, history: Sequence[Experiment]) -> np.random.Generator:
    """What the driver passes to ``suggest``."""
    return np.random.default_rng([seed, len(history)])


def _same(a: Suggestion | None, b: Suggestion | None) -> bool:
    if a is None or b is None:
        return a is b
    return (
        config_key(a.config) == config_key(b.config)
        and config_key(a.meta) == config_key(b.meta)
        and config_key(a.extra_params) == config_key(b.extra_params)
        and a.outputs_from == b.outputs_from
    )


def check_searcher_contract(
    make_searcher: Callable[[], Searcher],
    space: Space,
    *,
    seed: int = 0,
    concurrency: int = 2,
    metric: str = "loss",
    evaluate: Callable[[Mapping[str, Any], Mapping[str, Any]], float] = fake_metric,
    max_steps: int = 5000,
    check_fresh: bool = True,
) -> list[Experiment]:
    """Drive ``make_searcher()`` to the end like the driver does; assert the searcher contract
    at every step (see the module docstring). Returns the final history.

    Up to ``concurrency`` experiments run at once; when the slots are full, or the searcher has
    nothing to start, the oldest running experiment succeeds with ``{metric: evaluate(config,
    extra_params)}``. ``check_fresh`` also asks a fresh searcher at every step (set it False for
    searchers that are slow to build).
    """
    searcher = make_searcher()
    planned = searcher.planned_total()
    history: list[Experiment] = []
    extras: dict[int, Mapping[str, Any]] = {}

    def finish_oldest_running() -> bool:
        for i, exp in enumerate(history):
            if exp.status is Status.RUNNING:
                value = evaluate(exp.config, extras[exp.id])
                history[i] = exp.with_(status=Status.SUCCEEDED, metrics={metric: value})
                return True
        return False

    for _ in range(max_steps):
        if searcher.is_finished(history):
            for other in (rng_for(seed, history), np.random.default_rng(12345)):
                assert searcher.suggest(list(history), other) is None, "suggested once finished"
            break
        suggestion = searcher.suggest(list(history), rng_for(seed, history))
        again = searcher.suggest(list(history), rng_for(seed, history))
        assert _same(suggestion, again), "same history and seed gave another suggestion"
        if check_fresh:
            replay = make_searcher().suggest(list(history), rng_for(seed, history))
            assert _same(suggestion, replay), "a fresh searcher (a resumed group) disagrees"
        if suggestion is None:
            if not finish_oldest_running():
                break  # nothing runs and nothing to start: the driver ends the search here
            continue
        config = dict(suggestion.config)
        assert sorted(config) == sorted(space.names), config
        for name, value in config.items():
            assert in_domain(space[name], value), (name, value, space[name].describe())
        assert is_plain(config) and is_plain(dict(suggestion.extra_params)), suggestion
        assert is_plain(dict(suggestion.meta)), suggestion.meta
        exp_id = len(history) + 1
        extras[exp_id] = dict(suggestion.extra_params)
        params = {**config, **suggestion.extra_params}
        history.append(
            Experiment(
                id=exp_id,
                config=config,
                params=params,
                status=Status.RUNNING,
                meta=dict(suggestion.meta),
            )
        )
        if planned is not None:
            assert len(history) <= planned, f"more than planned_total() = {planned}"
        if sum(e.status is Status.RUNNING for e in history) >= concurrency:
            finish_oldest_running()
    else:
        pytest.fail(f"the search did not end within {max_steps} steps")
    return history


# ----------------------------------------------------------------------------------------
# Grid search
# ----------------------------------------------------------------------------------------

GRID_MATRIX = {
    "lr": {"values": [0.1, 0.2]},
    "dropout": {"values": [0.2, 0.5]},
    "act": {"values": ["relu", "sigmoid"]},
}


def run_to_end(searcher: Searcher, seed: int = 0) -> list[Experiment]:
    """Suggest until finished, every experiment completing at once."""
    history: list[Experiment] = []
    while not searcher.is_finished(history):
        s = searcher.suggest(history, rng_for(seed, history))
        if s is None:
            break
        history.append(experiment(len(history) + 1, s.config, meta=s.meta))
        assert len(history) < 10_000
    return history


def test_grid_runs_the_product_last_key_fastest() -> None:
    space = make_space(GRID_MATRIX)
    searcher = GridSearch(space, None)
    configs = [e.config for e in run_to_end(searcher)]
    assert configs == list(space.grid())
    assert configs[:3] == [
        {"lr": 0.1, "dropout": 0.2, "act": "relu"},
        {"lr": 0.1, "dropout": 0.2, "act": "sigmoid"},
        {"lr": 0.1, "dropout": 0.5, "act": "relu"},
    ]
    assert searcher.planned_total() == 8


@pytest.mark.parametrize(("n", "expected"), [(None, 8), (3, 3), (8, 8), (100, 8), (1, 1)])
def test_grid_truncates_to_n_experiments(n: int | None, expected: int) -> None:
    searcher = GridSearch(make_space(GRID_MATRIX), n)
    history = run_to_end(searcher)
    assert searcher.planned_total() == expected == len(history)
    assert searcher.is_finished(history)
    assert searcher.suggest(history, rng_for(0, history)) is None


def test_grid_never_enumerates_a_huge_grid() -> None:
    # 100**6 = 10**12 points: index arithmetic, not enumeration.
    space = make_space({f"p{i}": {"range": [0, 100, 1]} for i in range(6)})
    searcher = GridSearch(space, 5)
    assert space.size == 10**12
    assert searcher.planned_total() == 5
    configs = [e.config for e in run_to_end(searcher)]
    assert configs == [{**{f"p{i}": 0 for i in range(5)}, "p5": k} for k in range(5)]
    whole = GridSearch(space, None)
    assert whole.planned_total() == 10**12
    last = history_of([space.point(10**12 - 2)], meta=None)
    # A history holding only the second-last point: the next suggestion is still the first.
    suggestion = whole.suggest(last, rng_for(0, last))
    assert suggestion is not None and suggestion.meta == {"grid_index": 0}
    assert space.point(10**12 - 1) == {f"p{i}": 99 for i in range(6)}


def test_grid_suggestion_does_not_depend_on_the_rng() -> None:
    searcher = GridSearch(make_space(GRID_MATRIX), None)
    a = searcher.suggest([], np.random.default_rng(1))
    b = searcher.suggest([], np.random.default_rng(2))
    assert a is not None and b is not None and a.config == b.config


def test_grid_fills_gaps_and_ignores_repeats() -> None:
    space = make_space(GRID_MATRIX)
    searcher = GridSearch(space, None)
    # Positions 0, 2 and 2 again (a re-run), recorded in meta: position 1 comes next.
    history = [
        experiment(1, space.point(0), meta={"grid_index": 0}),
        experiment(2, space.point(2), meta={"grid_index": 2}),
        experiment(3, space.point(2), meta={"grid_index": 2}, status=Status.FAILED),
    ]
    s = searcher.suggest(history, rng_for(0, history))
    assert s is not None and s.meta == {"grid_index": 1} and s.config == space.point(1)
    assert not searcher.is_finished(history)


def test_grid_matches_experiments_without_meta_by_config() -> None:
    space = make_space(GRID_MATRIX)
    searcher = GridSearch(space, 4)
    history = history_of([space.point(0), space.point(1)])  # no grid_index recorded
    s = searcher.suggest(history, rng_for(0, history))
    assert s is not None and s.meta == {"grid_index": 2}
    history = history_of([space.point(k) for k in range(4)])
    assert searcher.is_finished(history)


def test_grid_counts_running_experiments() -> None:
    space = make_space(GRID_MATRIX)
    searcher = GridSearch(space, 2)
    history = history_of([space.point(0), space.point(1)], status=Status.RUNNING)
    assert searcher.is_finished(history)
    assert searcher.suggest(history, rng_for(0, history)) is None


def test_grid_refuses_a_distribution() -> None:
    with pytest.raises(ValueError, match=r"hptuning\.matrix\.lr"):
        GridSearch(make_space({"lr": {"uniform": [0, 1]}}), None)


def test_grid_gives_fresh_copies_of_list_values() -> None:
    space = make_space({"layers": {"values": [[64, 64], [128]]}})
    searcher = GridSearch(space, None)
    s = searcher.suggest([], rng_for(0, []))
    assert s is not None
    s.config["layers"].append(1)
    assert space["layers"].values == [[64, 64], [128]]


# ----------------------------------------------------------------------------------------
# Mapping search
# ----------------------------------------------------------------------------------------

MAPPING = [{"lr": 0.1, "units": 32}, {"lr": 0.2, "units": 64}, {"lr": 0.1, "units": 32}]


def test_mapping_runs_every_dict_in_order_even_repeated() -> None:
    searcher = MappingSearch(MAPPING)
    history = run_to_end(searcher)
    assert [e.config for e in history] == MAPPING
    assert [e.meta for e in history] == [{"mapping_index": k} for k in range(3)]
    assert searcher.planned_total() == 3
    assert searcher.suggest(history, rng_for(0, history)) is None


def test_mapping_matches_history_without_meta() -> None:
    searcher = MappingSearch(MAPPING)
    history = history_of([MAPPING[0]])
    s = searcher.suggest(history, rng_for(0, history))
    assert s is not None and s.meta == {"mapping_index": 1}
    history = history_of([MAPPING[0], MAPPING[1], MAPPING[0]])
    assert searcher.is_finished(history)


def test_mapping_contract() -> None:
    configs = [{"a": i, "b": f"x{i}"} for i in range(7)]
    space = make_space(
        {"a": {"values": list(range(7))}, "b": {"values": [f"x{i}" for i in range(7)]}}
    )
    history = check_searcher_contract(lambda: MappingSearch(configs), space)
    assert [e.config for e in history] == configs


# ----------------------------------------------------------------------------------------
# Random search
# ----------------------------------------------------------------------------------------

RANDOM_MATRIX = {
    "lr": {"loguniform": [-9.2, -2.3]},
    "units": {"range": [16, 128, 16]},
    "act": {"pvalues": [["relu", 0.5], ["tanh", 0.5]]},
}


def test_random_same_seed_and_history_give_the_same_suggestion() -> None:
    space = make_space(RANDOM_MATRIX)
    a, b = RandomSearch(space, 10), RandomSearch(space, 10)
    history = run_to_end(a, seed=7)
    assert len(history) == 10
    # Replay every prefix on a fresh searcher (a group resumed after a crash at any point).
    for k in range(len(history)):
        prefix = history[:k]
        s = b.suggest(prefix, rng_for(7, prefix))
        assert s is not None and s.config == history[k].config
    other = run_to_end(RandomSearch(space, 10), seed=8)
    assert [e.config for e in other] != [e.config for e in history]


def test_random_never_repeats_a_configuration_in_history() -> None:
    space = make_space({"a": {"values": [1, 2, 3]}, "b": {"values": ["x", "y"]}})
    searcher = RandomSearch(space, 6)
    seen = history_of([{"a": 1, "b": "x"}, {"a": 2, "b": "y"}, {"a": 3, "b": "x"}])
    for seed in range(30):
        s = searcher.suggest(seen, rng_for(seed, seen))
        assert s is not None
        assert config_key(s.config) not in {config_key(e.config) for e in seen}


def test_random_runs_the_whole_small_discrete_space() -> None:
    space = make_space({"a": {"values": [1, 2]}, "b": {"range": [1, 3, 1]}})
    searcher = RandomSearch(space, 10)
    assert searcher.planned_total() == 4
    history = run_to_end(searcher)
    assert sorted(config_key(e.config) for e in history) == sorted(
        config_key(c) for c in space.grid()
    )
    assert searcher.is_finished(history)


def test_random_last_configurations_of_a_big_discrete_space_come_quickly() -> None:
    # 225 configurations, all requested: plain redrawing would need ~225 draws for the last one,
    # more than QUICK_DRAWS; the exact fallback draws it at once.
    space = make_space({"a": {"range": [0, 15, 1]}, "b": {"range": [0, 15, 1]}})
    history = run_to_end(RandomSearch(space, 225))
    assert len({config_key(e.config) for e in history}) == 225


def test_random_zero_probability_values_cap_the_count_and_end_the_search() -> None:
    # The last pvalues item gets 1 - 1.0 = 0: "c" is unreachable (Polyaxon looped forever).
    space = make_space({"act": {"pvalues": [["a", 0.5], ["b", 0.5], ["c", 0.0]]}})
    searcher = RandomSearch(space, 10)
    assert space.size == 3
    assert searcher.planned_total() == 2
    history = run_to_end(searcher)
    assert sorted(e.config["act"] for e in history) == ["a", "b"]
    assert searcher.is_finished(history)


@pytest.mark.parametrize(
    "matrix",
    [
        {"x": {"uniform": [1, 1]}},  # one value only
        {"x": {"quniform": [0, 1, 0.5]}},  # two values: 0.0 and 0.5
    ],
)
def test_random_stops_when_no_new_configuration_can_be_drawn(matrix: dict[str, Any]) -> None:
    space = make_space(matrix)
    searcher = RandomSearch(space, 50)
    assert searcher.planned_total() == 50  # continuous: not countable up-front
    history = run_to_end(searcher)
    assert 1 <= len(history) <= 2
    assert searcher.is_finished(history)
    assert searcher.suggest(history, rng_for(0, history)) is None


def test_random_continuous_space_is_not_capped() -> None:
    space = make_space({"a": {"values": [1, 2]}, "p": {"uniform": [0, 1]}})
    searcher = RandomSearch(space, 25)
    assert searcher.planned_total() == 25
    assert len(run_to_end(searcher)) == 25


def test_random_counts_running_and_failed_experiments() -> None:
    space = make_space({"a": {"values": [1, 2, 3, 4]}})
    searcher = RandomSearch(space, 2)
    history = [
        experiment(1, {"a": 1}, status=Status.RUNNING),
        experiment(2, {"a": 2}, status=Status.FAILED),
    ]
    assert searcher.is_finished(history)


def test_random_refuses_a_bad_count() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RandomSearch(make_space(RANDOM_MATRIX), 0)


# ----------------------------------------------------------------------------------------
# The contract, on every searcher here
# ----------------------------------------------------------------------------------------


def test_contract_grid() -> None:
    space = make_space({**GRID_MATRIX, "n": {"linspace": [0, 1, 3]}})
    history = check_searcher_contract(lambda: GridSearch(space, 20), space)
    assert len(history) == 20


def test_contract_random() -> None:
    space = make_space(RANDOM_MATRIX)
    history = check_searcher_contract(lambda: RandomSearch(space, 15), space, seed=3)
    assert len(history) == 15


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(space=spaces(GRID_METHODS, max_params=3, max_values=5), n=st.none() | st.integers(1, 30))
def test_contract_grid_property(space: Space, n: int | None) -> None:
    history = check_searcher_contract(lambda: GridSearch(space, n), space, check_fresh=False)
    assert len(history) == GridSearch(space, n).planned_total()
    assert [e.config for e in history] == [space.point(k) for k in range(len(history))]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    space=spaces((*GRID_METHODS, *DISTRIBUTION_METHODS), max_params=3, max_values=5),
    n=st.integers(1, 12),
    seed=st.integers(0, 2**32 - 1),
)
def test_contract_random_property(space: Space, n: int, seed: int) -> None:
    searcher = RandomSearch(space, n)
    history = check_searcher_contract(
        lambda: RandomSearch(space, n), space, seed=seed, check_fresh=False
    )
    keys = [config_key(e.config) for e in history]
    assert len(keys) == len(set(keys))
    assert len(history) <= searcher.planned_total()
    if space.is_discrete:
        assert len(history) == searcher.planned_total()
