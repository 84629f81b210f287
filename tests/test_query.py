"""Polyaxon-style queries and sorting (pure)."""

from __future__ import annotations

import pytest

from polytune.errors import UsageError
from polytune.experiment import Experiment, Status
from polytune.query import parse_query, parse_sort, select, sort_experiments


def exp(i: int, status: Status, loss: float | None, act: str) -> Experiment:
    metrics = {} if loss is None else {"loss": loss}
    return Experiment(
        id=i, config={"act": act}, params={"act": act, "lr": i / 10}, status=status, metrics=metrics
    )


EXPS = [
    exp(1, Status.SUCCEEDED, 0.5, "relu"),
    exp(2, Status.SUCCEEDED, 0.2, "sigmoid"),
    exp(3, Status.FAILED, None, "tanh"),
    exp(4, Status.SUCCEEDED, 0.3, "relu"),
]


@pytest.mark.parametrize(
    ("query", "ids"),
    [
        ("status:succeeded", [1, 2, 4]),
        ("status:~succeeded", [3]),
        ("metrics.loss:<=0.3", [2, 4]),
        ("metrics.loss:<0.3", [2]),
        ("metric.loss:>0.25", [1, 4]),
        ("params.act:relu|sigmoid", [1, 2, 4]),
        ("status:succeeded, params.act:relu, metrics.loss:<=0.3", [4]),
        ("params.lr:0.15..0.35", [2, 3]),
        ("metrics.loss:nil", [3]),
        ("id:2|3", [2, 3]),
        ("", [1, 2, 3, 4]),
    ],
)
def test_queries(query: str, ids: list[int]) -> None:
    assert [e.id for e in select(EXPS, parse_query(query))] == ids


@pytest.mark.parametrize("bad", ["status", "foo:1", "metrics.loss:<=x", "params.lr:1..z", ":x"])
def test_bad_queries_name_the_part(bad: str) -> None:
    with pytest.raises(UsageError):
        parse_query(bad)


def test_sorting_puts_missing_last_both_ways() -> None:
    asc = sort_experiments(EXPS, parse_sort("metrics.loss"))
    desc = sort_experiments(EXPS, parse_sort("-metrics.loss"))
    assert [e.id for e in asc] == [2, 4, 1, 3]
    assert [e.id for e in desc] == [1, 4, 2, 3]
    by_act = sort_experiments(EXPS, parse_sort("params.act,-id"))
    assert [e.id for e in by_act] == [4, 1, 2, 3]
