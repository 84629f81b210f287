"""Hyperband's schedule against Polyaxon's numbers (matrix_vectors.json, transcribed here).

The ``hyperband_schedule`` vectors replay Polyaxon 0.6.1's control flow, which runs one extra
rung after the last bracket with resource ``max_iter * eta``. polytune stops every bracket after
rung ``j = s`` (DESIGN.md §6), so each vector is asserted twice: exactly, with
``polyaxon_extra_rung=True``, and without the extra rung for polytune's own schedule.
"""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from polytune.algorithms import hyperband_schedule as hb

# (max_iter, eta, resource type, s_max, B, Polyaxon's total, [(bracket, rung, n, resource)])
SCHEDULES = [
    # polyaxon 0.6.1 docs hyperband.md example (max_iter 81, eta 3, int resource) — docs table shows 27/9/6 configs for brackets 3/2/1; the code yields 34/15/8
    (
        81,
        3,
        "int",
        4,
        405,
        207,
        [
            (4, 0, 81, 1),
            (4, 1, 27, 3),
            (4, 2, 9, 9),
            (4, 3, 3, 27),
            (4, 4, 1, 81),
            (3, 0, 34, 3),
            (3, 1, 11, 9),
            (3, 2, 3, 27),
            (3, 3, 1, 81),
            (2, 0, 15, 9),
            (2, 1, 5, 27),
            (2, 2, 1, 81),
            (1, 0, 8, 27),
            (1, 1, 2, 81),
            (0, 0, 5, 81),
            (0, 1, 1, 243),
        ],
    ),
    # polyaxon 0.6.1 test_search_managers.py manager1 / quick-start v1 hyperband (maxIterations 10, eta 3)
    (
        10,
        3,
        "float",
        2,
        30,
        23,
        [
            (2, 0, 9, 1.1111111111111112),
            (2, 1, 3, 3.3333333333333335),
            (2, 2, 1, 10.0),
            (1, 0, 5, 3.333333333333333),
            (1, 1, 1, 10.0),
            (0, 0, 3, 10.0),
            (0, 1, 1, 30.0),
        ],
    ),
    # Oodapow/polyaxon_example hptune_hb*.yml (max_iter 256, eta 2)
    (
        256,
        2,
        "int",
        8,
        2304,
        1187,
        [
            (8, 0, 256, 1),
            (8, 1, 128, 2),
            (8, 2, 64, 4),
            (8, 3, 32, 8),
            (8, 4, 16, 16),
            (8, 5, 8, 32),
            (8, 6, 4, 64),
            (8, 7, 2, 128),
            (8, 8, 1, 256),
            (7, 0, 144, 2),
            (7, 1, 72, 4),
            (7, 2, 36, 8),
            (7, 3, 18, 16),
            (7, 4, 9, 32),
            (7, 5, 4, 64),
            (7, 6, 2, 128),
            (7, 7, 1, 256),
            (6, 0, 83, 4),
            (6, 1, 41, 8),
            (6, 2, 20, 16),
            (6, 3, 10, 32),
            (6, 4, 5, 64),
            (6, 5, 2, 128),
            (6, 6, 1, 256),
            (5, 0, 48, 8),
            (5, 1, 24, 16),
            (5, 2, 12, 32),
            (5, 3, 6, 64),
            (5, 4, 3, 128),
            (5, 5, 1, 256),
            (4, 0, 29, 16),
            (4, 1, 14, 32),
            (4, 2, 7, 64),
            (4, 3, 3, 128),
            (4, 4, 1, 256),
            (3, 0, 18, 32),
            (3, 1, 9, 64),
            (3, 2, 4, 128),
            (3, 3, 2, 256),
            (2, 0, 12, 64),
            (2, 1, 6, 128),
            (2, 2, 3, 256),
            (1, 0, 9, 128),
            (1, 1, 4, 256),
            (0, 0, 9, 256),
            (0, 1, 4, 512),
        ],
    ),
    # constructed — float quirk: log(243)/log(3)=4.999999999999999 -> s_max=4, so the smallest resource is 3, not 1
    (
        243,
        3,
        "int",
        4,
        1215,
        207,
        [
            (4, 0, 81, 3),
            (4, 1, 27, 9),
            (4, 2, 9, 27),
            (4, 3, 3, 81),
            (4, 4, 1, 243),
            (3, 0, 34, 9),
            (3, 1, 11, 27),
            (3, 2, 3, 81),
            (3, 3, 1, 243),
            (2, 0, 15, 27),
            (2, 1, 5, 81),
            (2, 2, 1, 243),
            (1, 0, 8, 81),
            (1, 1, 2, 243),
            (0, 0, 5, 243),
            (0, 1, 1, 729),
        ],
    ),
    # constructed — int cast truncates: some rungs get 99 instead of 100 and 33 instead of 33.3
    (
        100,
        3,
        "int",
        4,
        500,
        207,
        [
            (4, 0, 81, 1),
            (4, 1, 27, 3),
            (4, 2, 9, 11),
            (4, 3, 3, 33),
            (4, 4, 1, 100),
            (3, 0, 34, 3),
            (3, 1, 11, 11),
            (3, 2, 3, 33),
            (3, 3, 1, 99),
            (2, 0, 15, 11),
            (2, 1, 5, 33),
            (2, 2, 1, 100),
            (1, 0, 8, 33),
            (1, 1, 2, 99),
            (0, 0, 5, 100),
            (0, 1, 1, 300),
        ],
    ),
    # constructed — float quirk: s_max=2 (log ratio 2.9999999999999996)
    (
        1000,
        10,
        "int",
        2,
        3000,
        130,
        [
            (2, 0, 100, 10),
            (2, 1, 10, 100),
            (2, 2, 1, 1000),
            (1, 0, 15, 100),
            (1, 1, 1, 1000),
            (0, 0, 3, 1000),
        ],
    ),
]


@pytest.mark.parametrize(
    ("max_iter", "eta", "rtype", "s_max", "budget", "total", "rows"), SCHEDULES
)
def test_polyaxon_schedule_is_reproduced_exactly(
    max_iter: int,
    eta: float,
    rtype: hb.ResourceType,
    s_max: int,
    budget: int,
    total: int,
    rows: list[tuple[int, int, int, float]],
) -> None:
    assert hb.s_max(max_iter, eta) == s_max
    assert hb.budget(max_iter, eta) == budget
    got = hb.schedule(max_iter, eta, rtype, polyaxon_extra_rung=True)
    assert [(r.bracket, r.rung, r.n_experiments, r.resource) for r in got] == rows
    assert all(type(r.resource) is (int if rtype == "int" else float) for r in got)
    assert hb.total_experiments(max_iter, eta, rtype, polyaxon_extra_rung=True) == total


@pytest.mark.parametrize(
    ("max_iter", "eta", "rtype", "s_max", "budget", "total", "rows"), SCHEDULES
)
def test_polytune_schedule_drops_the_extra_rung(
    max_iter: int,
    eta: float,
    rtype: hb.ResourceType,
    s_max: int,
    budget: int,
    total: int,
    rows: list[tuple[int, int, int, float]],
) -> None:
    # polytune's value differs from Polyaxon's on purpose: the rung past bracket 0's rung 0 (at
    # max_iter * eta, e.g. 243 steps for max_iter 81) is not run.
    expected = [row for row in rows if row[1] <= row[0]]
    got = hb.schedule(max_iter, eta, rtype)
    assert [(r.bracket, r.rung, r.n_experiments, r.resource) for r in got] == expected
    extra = sum(row[2] for row in rows if row[1] > row[0])
    assert hb.total_experiments(max_iter, eta, rtype) == total - extra
    assert max(r.resource for r in got) <= max_iter


def test_schedule_totals_of_the_docs_example() -> None:
    # SEMANTICS.md §4.3: R=81, eta=3 runs 207 experiments in Polyaxon, 206 in polytune.
    assert hb.total_experiments(81, 3, "int", polyaxon_extra_rung=True) == 207
    assert hb.total_experiments(81, 3, "int") == 206


@pytest.mark.parametrize(
    ("max_iter", "eta", "rtype", "s_max", "budget", "n_configs", "resources"),
    [
        # polyaxon 0.6.1 tests/test_experiment_groups/test_search_managers.py
        (
            10,
            3,
            "float",
            2,
            30,
            {2: 9, 1: 5, 0: 3},
            {2: 1.1111111111111112, 1: 3.333333333333333, 0: 10},
        ),
        (81, 3, "int", 4, 405, {4: 81, 3: 34, 2: 15, 1: 8, 0: 5}, {4: 1, 3: 3, 2: 9, 1: 27, 0: 81}),
    ],
)
def test_brackets(
    max_iter: int,
    eta: float,
    rtype: hb.ResourceType,
    s_max: int,
    budget: int,
    n_configs: dict[int, int],
    resources: dict[int, float],
) -> None:
    assert hb.s_max(max_iter, eta) == s_max
    assert hb.budget(max_iter, eta) == budget
    for bracket, n in n_configs.items():
        assert hb.n_configs(max_iter, eta, bracket) == n
        assert hb.bracket_resource(max_iter, eta, bracket) == resources[bracket]
        assert hb.rung_resource(max_iter, eta, bracket, 0, rtype) == resources[bracket]


# (max_iter, eta, n = the bracket's initial count, rung that just finished, kept)
KEEP = [
    (10, 3, 9, 0, 3),
    (10, 3, 9, 1, 1),
    (10, 3, 9, 2, 0),
    (10, 3, 5, 0, 1),
    (10, 3, 5, 1, 0),
    (10, 3, 3, 0, 1),
    (81, 3, 81, 0, 27),
    (81, 3, 81, 1, 9),
    (81, 3, 81, 2, 3),
    (81, 3, 81, 3, 1),
    (81, 3, 81, 4, 0),
    (81, 3, 34, 0, 11),
    (81, 3, 34, 1, 3),
    (81, 3, 34, 2, 1),
    (81, 3, 34, 3, 0),
    (81, 3, 15, 0, 5),
    (81, 3, 15, 1, 1),
    (81, 3, 15, 2, 0),
    (81, 3, 8, 0, 2),
    (81, 3, 8, 1, 0),
    (81, 3, 5, 0, 1),
]


@pytest.mark.parametrize(("max_iter", "eta", "n", "rung", "kept"), KEEP)
def test_keep(max_iter: int, eta: float, n: int, rung: int, kept: int) -> None:
    bracket = next(
        s for s in range(hb.s_max(max_iter, eta) + 1) if hb.n_configs(max_iter, eta, s) == n
    )
    assert hb.keep(max_iter, eta, bracket, rung) == kept


def _should_reschedule(max_iter: int, eta: float, iteration: int, rung: int) -> bool:
    # Polyaxon 0.6.1: go to the next bracket once rung j reached s and a next bracket exists.
    top = hb.s_max(max_iter, eta)
    return rung >= top - iteration and top - (iteration + 1) >= 0


def _should_reduce(max_iter: int, eta: float, iteration: int, rung: int) -> bool:
    # Polyaxon 0.6.1: run another rung while keep(s, j) > 0, with keep = 0 once j == s + 1.
    bracket = hb.s_max(max_iter, eta) - iteration
    if bracket < 0 or rung == bracket + 1:
        return False
    return hb.keep(max_iter, eta, bracket, rung) > 0


@pytest.mark.parametrize(
    ("iteration", "rung", "reschedule", "reduce"),
    [
        # polyaxon 0.6.1 test_search_managers.py, max_iter=10, eta=3
        (0, 0, False, True),
        (0, 1, False, True),
        (0, 2, True, False),
        (0, 3, True, False),
        (1, 0, False, True),
        (1, 1, True, False),
        (1, 2, True, False),
        # (2, 0): reduce is True after the last bracket: Polyaxon's extra rung at max_iter * eta,
        # which polytune's schedule() leaves out (see test_polytune_schedule_drops_the_extra_rung).
        (2, 0, False, True),
        (2, 1, False, False),
        (5, 0, False, False),
    ],
)
def test_polyaxon_control_predicates(
    iteration: int, rung: int, reschedule: bool, reduce: bool
) -> None:
    assert _should_reschedule(10, 3, iteration, rung) is reschedule
    assert _should_reduce(10, 3, iteration, rung) is reduce


def test_extra_rung_only_when_bracket_zero_keeps_someone() -> None:
    # R=1000, eta=10: keep(0, 0) = int(3 / 10) = 0, so even Polyaxon runs no extra rung.
    assert hb.schedule(1000, 10, "int", polyaxon_extra_rung=True) == hb.schedule(1000, 10, "int")


def test_single_bracket_when_max_iter_is_below_eta() -> None:
    assert hb.schedule(2, 3, "int") == [hb.Rung(bracket=0, rung=0, n_experiments=1, resource=2)]
    assert hb.schedule(1, 3, "float") == [hb.Rung(0, 0, 1, 1.0)]


@given(
    max_iter=st.integers(min_value=1, max_value=10**6),
    eta=st.floats(min_value=1.5, max_value=10.0, allow_nan=False),
    rtype=st.sampled_from(["int", "float"]),
)
def test_schedule_properties(max_iter: int, eta: float, rtype: hb.ResourceType) -> None:
    rungs = hb.schedule(max_iter, eta, rtype)
    top = hb.s_max(max_iter, eta)
    assert [r.bracket for r in rungs if r.rung == 0] == list(range(top, -1, -1))
    for r in rungs:
        assert 0 <= r.rung <= r.bracket
        assert r.n_experiments >= 1
        assert r.resource <= max_iter * (1 + 1e-9)
    for a, b in itertools.pairwise(rungs):
        if a.bracket == b.bracket:
            assert b.rung == a.rung + 1
            assert b.n_experiments <= a.n_experiments
            assert b.resource >= a.resource
    last_of_bracket = {r.bracket: r for r in rungs}
    for bracket, r in last_of_bracket.items():
        if r.rung == bracket:  # the bracket ran to its end: its last rung gets ~max_iter
            assert math.isclose(
                hb.bracket_resource(max_iter, eta, bracket) * eta**bracket, max_iter, rel_tol=1e-9
            )
