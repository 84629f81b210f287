"""Pure early-stopping rules (polytune/stopping.py): examples and Hypothesis properties against
naive oracles written straight from the definitions."""

from __future__ import annotations

import math
import statistics
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from polytune import stopping
from polytune.experiment import Experiment, Status
from polytune.model import FailureEarlyStopping, MetricEarlyStopping, StoppingPolicy
from polytune.stopping import Curve, decide, should_evaluate

# ---------------------------------------------------------------------------------------------
# Curve
# ---------------------------------------------------------------------------------------------

steps_st = st.integers(min_value=0, max_value=40)
values_st = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
points_st = st.lists(st.tuples(steps_st, values_st), max_size=40)


def model(points: list[tuple[int, float]]) -> dict[int, float]:
    """The oracle: a repeated step keeps its latest value."""
    out: dict[int, float] = {}
    for s, v in points:
        out[s] = v
    return dict(sorted(out.items()))


@given(points_st, steps_st)
def test_curve_agrees_with_a_dict_model(points: list[tuple[int, float]], at: int) -> None:
    curve = Curve(points)
    m = model(points)
    assert curve.points() == list(m.items())
    upto = [v for s, v in m.items() if s <= at]
    mean = curve.mean_upto(at)
    if upto:
        assert mean is not None and math.isclose(
            mean, math.fsum(upto) / len(upto), rel_tol=1e-9, abs_tol=1e-6
        )
        assert curve.best_upto(at, maximize=True) == max(upto)
        assert curve.best_upto(at, maximize=False) == min(upto)
    else:
        assert mean is None and curve.best_upto(at, True) is None
    assert curve.last_step == (max(m) if m else None)
    assert curve.reached(at) == (bool(m) and max(m) >= at)


def test_curve_examples() -> None:
    c = Curve([(1, 3.0), (2, 1.0), (3, 2.0)])
    assert c.mean_upto(2) == 2.0
    assert c.best_upto(3, maximize=False) == 1.0
    assert c.best_upto(3, maximize=True) == 3.0
    c.add(2, 5.0)  # a repeated step: the latest value wins
    assert c.points() == [(1, 3.0), (2, 5.0), (3, 2.0)]
    c.add(0, 0.0)  # back in steps: inserted
    assert c.points()[0] == (0, 0.0) and c.mean_upto(3) == 2.5
    assert len(c) == 4 and "Curve" in repr(c)


# ---------------------------------------------------------------------------------------------
# When a policy is evaluated
# ---------------------------------------------------------------------------------------------


def policy(kind: str = "median", **kw: Any) -> StoppingPolicy:
    return StoppingPolicy(kind=kind, **kw)  # type: ignore[arg-type]


@given(st.integers(1, 5), st.integers(1, 12), st.integers(1, 30))
def test_contiguous_steps_are_evaluated_at_multiples_after_min_interval(
    ei: int, mi: int, n: int
) -> None:
    p = policy(evaluation_interval=ei, min_interval=mi)
    evaluated = [s for s in range(1, n + 1) if should_evaluate(p, s - 1 if s > 1 else None, s)]
    assert evaluated == [s for s in range(1, n + 1) if s % ei == 0 and s >= mi]


@given(st.integers(1, 5), st.integers(1, 12), st.lists(st.integers(1, 6), min_size=1, max_size=20))
def test_sparse_steps_cover_every_boundary_once(ei: int, mi: int, gaps: list[int]) -> None:
    """Steps with gaps: every boundary (multiple of ei, >= mi) up to the last step is covered by
    exactly one evaluated point, the first whose step reaches it."""
    steps = [sum(gaps[: i + 1]) for i in range(len(gaps))]
    p = policy(evaluation_interval=ei, min_interval=mi)
    evaluated = [
        s for i, s in enumerate(steps) if should_evaluate(p, steps[i - 1] if i else None, s)
    ]
    boundaries = [b for b in range(1, steps[-1] + 1) if b % ei == 0 and b >= mi]
    expected = sorted({min(s for s in steps if s >= b) for b in boundaries})
    assert evaluated == expected


def test_no_evaluation_when_steps_go_back() -> None:
    assert not should_evaluate(policy(), 5, 5)
    assert not should_evaluate(policy(), 5, 3)
    assert should_evaluate(policy(), None, 1)
    assert not should_evaluate(policy(min_interval=3), None, 2)


# ---------------------------------------------------------------------------------------------
# Policies against oracles
# ---------------------------------------------------------------------------------------------


def oracle(
    p: StoppingPolicy,
    maximize: bool,
    cand: list[tuple[int, float]],
    others: list[list[tuple[int, float]]],
    s: int,
) -> bool:
    """Straight from the definitions (module docstring), on dict models of the curves."""
    c = {k: v for k, v in model(cand).items() if k <= s}
    if not c:
        return False
    best = max(c.values()) if maximize else min(c.values())
    reached = [model(o) for o in others if o and max(model(o)) >= s]
    upto = [[v for k, v in o.items() if k <= s] for o in reached]
    upto = [u for u in upto if u]
    if not upto or len(upto) < p.min_samples:
        return False

    def worse(a: float, b: float) -> bool:
        return a < b if maximize else a > b

    if p.kind in ("median", "average"):
        avgs = [math.fsum(u) / len(u) for u in upto]
        ref = statistics.median(avgs) if p.kind == "median" else math.fsum(avgs) / len(avgs)
        return worse(best, ref)
    bests = [max(u) if maximize else min(u) for u in upto]
    if p.kind == "truncation":
        n = len(bests) + 1
        k = math.floor(n * (p.percent or 0) / 100)
        rank = 1 + sum(1 for b in bests if worse(best, b))
        return k > 0 and rank > n - k
    top = max(bests) if maximize else min(bests)
    gap = top - best if maximize else best - top
    return gap > (p.percent or 0) / 100 * abs(top)


small_values = st.integers(-20, 20).map(float)  # ties are frequent: exercises the tie rules
curve_st = st.lists(st.tuples(st.integers(1, 8), small_values), max_size=8)
policy_st = st.one_of(
    st.builds(lambda ms: policy("median", min_samples=ms), st.integers(1, 3)),
    st.builds(lambda ms: policy("average", min_samples=ms), st.integers(1, 3)),
    st.builds(
        lambda pc, ms: policy("truncation", percent=pc, min_samples=ms),
        st.sampled_from([10.0, 25.0, 50.0, 75.0, 100.0]),
        st.integers(1, 3),
    ),
    st.builds(
        lambda pc, ms: policy("diff", percent=pc, min_samples=ms),
        st.sampled_from([0.0001, 5.0, 20.0, 50.0]),
        st.integers(1, 3),
    ),
)


@given(
    policy_st,
    st.booleans(),
    curve_st.filter(bool),
    st.lists(curve_st, max_size=6),
    st.integers(1, 8),
)
def test_decide_agrees_with_the_oracle(
    p: StoppingPolicy,
    maximize: bool,
    cand: list[tuple[int, float]],
    others: list[list[tuple[int, float]]],
    s: int,
) -> None:
    got = decide(p, "m", maximize, Curve(cand), [Curve(o) for o in others], s)
    assert (got is not None) == oracle(p, maximize, cand, others, s)
    if got is not None:
        assert got.reason.startswith(f"early_stopping:{p.kind} (step {s}:")
        assert got.samples >= p.min_samples


@given(policy_st, curve_st.filter(bool), st.lists(curve_st, max_size=6), st.integers(1, 8))
def test_maximizing_is_minimizing_the_negation(
    p: StoppingPolicy, cand: list[tuple[int, float]], others: list[list[tuple[int, float]]], s: int
) -> None:
    def neg(c: list[tuple[int, float]]) -> Curve:
        return Curve((k, -v) for k, v in c)

    a = decide(p, "m", True, Curve(cand), [Curve(o) for o in others], s)
    b = decide(p, "m", False, neg(cand), [neg(o) for o in others], s)
    assert (a is None) == (b is None)


@given(policy_st, st.booleans(), st.lists(curve_st, max_size=6), st.integers(1, 8))
def test_a_run_at_least_as_good_as_every_value_seen_is_never_stopped(
    p: StoppingPolicy, maximize: bool, others: list[list[tuple[int, float]]], s: int
) -> None:
    """Its best so far is no worse than any running average, any best: median, average and
    diff never stop it; truncation only when it cuts everyone (percent 100)."""
    values = [v for o in others for _, v in o]
    top = (max(values) if maximize else min(values)) if values else 0.0
    cand = Curve([(1, top)])
    got = decide(p, "m", maximize, cand, [Curve(o) for o in others], max(s, 1))
    if p.kind != "truncation" or (p.percent or 0) < 100:
        assert got is None or p.kind == "truncation"
    if p.kind == "truncation" and got is not None:
        # ties go to the candidate: it is cut only when the cut reaches the top rank
        n = got.samples + 1
        assert math.floor(n * (p.percent or 0) / 100) == n


def test_median_rule_examples() -> None:
    """Vizier: best so far vs the median of the others' running averages at the same step."""
    others = [Curve([(1, 1.0), (2, 0.5), (3, 0.3)]), Curve([(1, 1.0), (2, 0.7), (3, 0.5)])]
    bad = Curve([(1, 2.0), (2, 1.9)])
    got = decide(policy("median"), "loss", False, bad, others, 2)
    assert got is not None and got.reference == pytest.approx(0.8)  # median(0.75, 0.85)
    assert got.reason.startswith("early_stopping:median (step 2: best loss 1.9")
    good = Curve([(1, 1.0), (2, 0.6)])
    assert decide(policy("median"), "loss", False, good, others, 2) is None
    # min_samples: two others at step 2, not three
    assert decide(policy("median", min_samples=3), "loss", False, bad, others, 2) is None
    # others that have not reached the step are not compared
    assert decide(policy("median"), "loss", False, Curve([(1, 9), (5, 9)]), others, 5) is None


def test_truncation_and_diff_examples() -> None:
    others = [Curve([(1, v)]) for v in (0.9, 0.8, 0.7)]  # accuracy, maximize
    # n = 4, 50 % -> the worst 2 are cut: 0.75 ranks 3rd of 4 -> cut; 0.85 ranks 2nd -> kept
    assert (
        decide(policy("truncation", percent=50), "acc", True, Curve([(1, 0.75)]), others, 1)
        is not None
    )
    assert (
        decide(policy("truncation", percent=50), "acc", True, Curve([(1, 0.85)]), others, 1) is None
    )
    # diff 10 %: the best is 0.9, so anything below 0.81 is too far
    assert (
        decide(policy("diff", percent=10), "acc", True, Curve([(1, 0.80)]), others, 1) is not None
    )
    assert decide(policy("diff", percent=10), "acc", True, Curve([(1, 0.82)]), others, 1) is None


def test_population_leaves_out_succeeded_runs_when_asked() -> None:
    curves = {1: Curve([(1, 1.0)]), 2: Curve([(1, 2.0)]), 3: Curve([(1, 3.0)])}
    statuses = {1: Status.SUCCEEDED, 2: Status.RUNNING, 3: Status.RUNNING}
    assert len(stopping.population(policy("truncation", percent=50), 3, curves, statuses)) == 2
    only_running = policy("truncation", percent=50, include_succeeded=False)
    assert stopping.population(only_running, 3, curves, statuses) == [curves[2]]


# ---------------------------------------------------------------------------------------------
# Group rules
# ---------------------------------------------------------------------------------------------


def rule(
    metric: str = "loss", value: float | None = 0.5, optimization: str = "minimize"
) -> MetricEarlyStopping:
    return MetricEarlyStopping(metric=metric, value=value, optimization=optimization)  # type: ignore[arg-type]


def test_first_crossing_names_the_first_line_that_meets_a_rule() -> None:
    rules = [rule("loss", 0.5, "minimize"), rule("acc", 0.9, "maximize")]
    records = [{"loss": 0.9}, {"acc": 0.95, "step": 7}, {"loss": 0.1}]
    got = stopping.first_crossing(rules, 4, records, first_position=3)
    assert got is not None and got.experiment == 4 and got.metric == "acc" and got.step == 7
    assert (
        got.reason
        == "early_stopping:threshold: experiment 4 reported acc=0.95 at step 7, reaching acc >= 0.9"
    )
    got = stopping.first_crossing(rules, 4, [{"loss": 0.9}, {"loss": 0.5}], first_position=3)
    assert got is not None and got.step == 4 and got.value == 0.5  # position, and <= is inclusive
    assert stopping.first_crossing(rules, 4, [{"loss": 0.51}, {"other": 0.0}]) is None


def test_polyaxon_default_is_maximize() -> None:
    """`{metric: loss, value: 0.1}` without optimization stops once loss >= 0.1 (Polyaxon)."""
    r = MetricEarlyStopping(metric="loss", value=0.1, optimization_given=False)
    assert stopping.first_crossing([r], 1, [{"loss": 0.05}]) is None
    assert stopping.first_crossing([r], 1, [{"loss": 0.2}]) is not None


def exp(i: int, **kw: Any) -> Experiment:
    return Experiment(id=i, config={}, params={}, **kw)


def test_crossing_in_history_uses_the_extremes() -> None:
    rules = [rule("loss", 0.5, "minimize")]
    exps = [
        exp(2, metrics={"loss": 0.9}, metrics_min={"loss": 0.4}),
        exp(1, metrics_min={"loss": 0.6}),
    ]
    got = stopping.crossing_in_history(rules, exps)
    assert got is not None and got.experiment == 2 and got.value == 0.4 and got.step is None
    assert stopping.crossing_in_history(rules, exps[1:]) is None


@given(st.floats(0.01, 100), st.integers(0, 50), st.integers(0, 50))
def test_failure_rule(percent: float, failed: int, total: int) -> None:
    got = stopping.failure_stop(FailureEarlyStopping(percent), failed, total)
    expected = failed > 0 and total > 0 and failed / total * 100 >= percent - 1e-9
    if abs(failed / max(total, 1) * 100 - percent) > 1e-6:
        assert (got is not None) == expected
    if got is not None:
        assert got.reason.startswith("early_stopping:failures:")


def test_rule_selection() -> None:
    r1 = rule()
    r2 = MetricEarlyStopping(metric="acc", value=None, policy=policy())
    f1, f2 = FailureEarlyStopping(30), FailureEarlyStopping(10)
    rules = [r1, r2, f1, f2]
    assert stopping.thresholds(rules) == [r1]
    assert stopping.policies(rules) == [r2]
    assert stopping.failure_rule(rules) == f2
    assert stopping.failure_rule([r1]) is None


# ---------------------------------------------------------------------------------------------
# Stall watchdog, how stopped experiments count, descriptions
# ---------------------------------------------------------------------------------------------


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.one_of(st.none(), st.integers(1, 10**5)))
def test_stalled(last: int, elapsed: int, limit: int | None) -> None:
    """Times in milliseconds (exact in floats): silent for ``limit`` or longer is stalled."""
    got = stopping.stalled(
        last / 1000, (last + elapsed) / 1000, None if limit is None else limit / 1000
    )
    assert got == (limit is not None and (last + elapsed) / 1000 - last / 1000 >= limit / 1000)


def test_stall_reason() -> None:
    assert stopping.stall_reason(30) == "stalled (no metric line or output for 30 s)"


def test_stopped_early_tells_lower_fidelity_observations_apart() -> None:
    assert stopping.stopped_early(
        exp(1, status=Status.STOPPED, reason="early_stopping:median (step 3: ...)")
    )
    assert stopping.stopped_early(
        exp(1, status=Status.STOPPED, reason="stalled (no metric line ...)")
    )
    assert not stopping.stopped_early(exp(1, status=Status.STOPPED, reason="interrupted: Ctrl-C"))
    assert not stopping.stopped_early(exp(1, status=Status.SUCCEEDED))
    assert stopping.fidelity(exp(1, last_step=4)) == 4


def test_describe_rules() -> None:
    rules = [
        {
            "metric": "loss",
            "value": 0.1,
            "optimization": "maximize",
            "optimization_given": False,
            "policy": None,
        },
        {
            "metric": "loss",
            "value": None,
            "optimization": "minimize",
            "policy": {
                "kind": "truncation",
                "percent": 25,
                "evaluation_interval": 2,
                "min_interval": 4,
                "min_samples": 3,
                "include_succeeded": False,
            },
        },
        {"percent": 30},
    ]
    lines = stopping.describe_rules(rules, {"on_early_stop": "finish", "stall_timeout": 60})
    assert lines == [
        "stop the group when an experiment's loss >= 0.1 (maximize by default)",
        "truncation 25 % policy on loss (minimize): every 2 step(s) from step 4, with at least 3 other run(s), running runs only",
        "stop the group when 30 % of the experiments failed",
        "when the group stops early: running experiments finish",
        "stop an experiment silent (no metric line, no output) for 60 s",
    ]
    assert stopping.describe_rules([], {}) == []
    assert stopping.describe_rules(rules[1:2], {}) == [lines[1]]  # a policy alone: no group ending
