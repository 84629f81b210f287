"""ASHA: rung resources, asynchronous promotion, the searcher contract, the config loader's asha
block in both layouts, and the check report."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from test_hyperband import MATRIX, known_loss, simulate
from test_search_basic import check_searcher_contract, experiment, make_space, rng_for

from polytune.algorithms.asha import ASHA, rung_resources
from polytune.check import build_report, example_command
from polytune.config import load_text
from polytune.errors import ConfigError
from polytune.experiment import Experiment, Status
from polytune.model import ASHASettings, MetricSpec
from polytune.searchers import make_searcher
from polytune.space import config_key


def settings(
    n: int = 30,
    r: float = 1,
    big_r: float = 27,
    eta: float = 3,
    rtype: str = "int",
    resume: bool = False,
) -> ASHASettings:
    return ASHASettings(
        min_resource=r,
        max_resource=big_r,
        eta=eta,
        resource_name="epochs",
        resource_type=rtype,  # type: ignore[arg-type]
        metric=MetricSpec("loss", "minimize"),
        n_experiments=n,
        resume=resume,
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((1, 81, 3, "int"), [1, 3, 9, 27, 81]),
        ((1, 100, 3, "int"), [1, 3, 9, 27, 100]),
        ((1, 10, 3, "int"), [1, 3, 10]),
        ((2, 2, 3, "int"), [2]),
        ((1, 8, 2, "int"), [1, 2, 4, 8]),
        ((1, 10, 1.5, "int"), [1, 2, 3, 5, 10]),  # 1, 1.5→1 (dropped), 2.25→2, 3.4→3, 5.1→5
        ((0.5, 4.5, 3, "float"), [0.5, 1.5, 4.5]),
        ((1, 243, 3, "int"), [1, 3, 9, 27, 81, 243]),  # log(243)/log(3) = 4.999…: still 5 steps
    ],
)
def test_rung_resources(args: tuple[Any, ...], expected: list[float]) -> None:
    got = rung_resources(*args)
    assert got == pytest.approx(expected)
    assert [type(v) for v in got] == [int if args[3] == "int" else float] * len(got)


def test_rung_resources_refuses_nonsense() -> None:
    for args in ((0, 9, 3), (9, 3, 3), (1, 9, 1)):
        with pytest.raises(ValueError):
            rung_resources(*args, "int")


def rung_exp(
    exp_id: int,
    rung: int,
    loss: float | None,
    status: Status = Status.SUCCEEDED,
    parent: int | None = None,
) -> Experiment:
    meta = {"bracket": 0, "rung": rung, "resource": 3**rung, "promoted_from": parent}
    meta |= {"root": parent, "search_seed": 1}
    metrics = {} if loss is None else {"loss": loss}
    return experiment(
        exp_id, {"x": float(exp_id), "y": 1.0}, status=status, meta=meta, metrics=metrics
    )


def test_promotes_as_soon_as_in_the_top_third() -> None:
    asha = ASHA(make_space(MATRIX), settings(n=10))
    history = [rung_exp(1, 0, 0.5), rung_exp(2, 0, 0.7)]
    s = asha.suggest(history, rng_for(0, history))
    assert s is not None and s.meta["rung"] == 0  # 2 ended: floor(2/3) = 0, nobody yet
    history.append(rung_exp(3, 0, 0.9))
    s = asha.suggest(history, rng_for(0, history))
    assert s is not None and s.meta["rung"] == 1 and s.meta["promoted_from"] == 1
    assert s.extra_params == {"epochs": 3} and s.config == history[0].config
    assert s.outputs_from is None
    # running experiments are not in the rung yet, and a promotion is never doubled
    history.append(rung_exp(4, 1, None, Status.RUNNING, parent=1))
    history += [rung_exp(5, 0, 0.1, Status.RUNNING)]
    s = asha.suggest(history, rng_for(0, history))
    assert s is not None and s.meta["rung"] == 0 and s.meta["index"] == 4
    # when #5 ends it is the best of four: top floor(4/3) = 1 → #5 goes up too
    history[4] = history[4].with_(status=Status.SUCCEEDED)
    s = asha.suggest(history, rng_for(0, history))
    assert s is not None and s.meta["promoted_from"] == 5


def test_top_rung_first_and_resume() -> None:
    asha = ASHA(make_space(MATRIX), settings(n=10, resume=True))
    history = [rung_exp(i, 0, 0.1 * i) for i in range(1, 7)]  # 6 ended: top 2 → #1, #2
    history += [
        rung_exp(7, 1, 0.3, parent=1),
        rung_exp(8, 1, 0.2, parent=2),
        rung_exp(9, 1, 0.4, parent=3),
    ]
    s = asha.suggest(history, rng_for(0, history))
    assert s is not None and s.meta["rung"] == 2 and s.meta["promoted_from"] == 8
    assert s.meta["root"] == 2 and s.outputs_from == 2  # the chain's rung-0 experiment


def test_failed_and_missing_metric_count_but_never_go_up() -> None:
    asha = ASHA(make_space(MATRIX), settings(n=3))
    history = [
        rung_exp(1, 0, 0.1, Status.FAILED),
        rung_exp(2, 0, None),
        rung_exp(3, 0, 0.9),
    ]
    s = asha.suggest(history, rng_for(0, history))
    assert s is not None and s.meta["promoted_from"] == 3
    history.append(rung_exp(4, 1, 0.5, parent=3))
    assert asha.suggest(history, rng_for(0, history)) is None  # rung 1 has 1 ended: floor(1/3) = 0
    assert asha.is_finished(history)


def test_not_finished_while_something_may_still_be_promoted() -> None:
    asha = ASHA(make_space(MATRIX), settings(n=3))
    history = [rung_exp(1, 0, 0.1), rung_exp(2, 0, 0.2), rung_exp(3, 0, 0.3, Status.RUNNING)]
    assert asha.suggest(history, rng_for(0, history)) is None
    assert not asha.is_finished(history)
    history[2] = history[2].with_(status=Status.LOST)
    assert not asha.is_finished(history)


def test_runs_to_the_end_within_the_rungs() -> None:
    asha = ASHA(make_space(MATRIX), settings(n=60, big_r=81))
    history = simulate(asha, concurrency=4)
    per_rung = Counter(e.meta["rung"] for e in history)
    assert per_rung[0] == 60
    assert max(per_rung) == 4 and per_rung[4] >= 1
    for k in range(
        1, 5
    ):  # every rung ends with at most a third (rounded) of the one below... or so
        assert per_rung[k] <= per_rung[k - 1]
    assert {e.params["epochs"] for e in history} == {1, 3, 9, 27, 81}
    assert len({config_key(e.config) for e in history if e.meta["rung"] == 0}) == 60
    by_id = {e.id: e for e in history}
    for e in history:
        if e.meta["rung"]:
            parent = by_id[e.meta["promoted_from"]]
            assert parent.meta["rung"] == e.meta["rung"] - 1 and parent.config == e.config
    best = min(history, key=lambda e: e.metrics["loss"])
    assert best.params["epochs"] == 81
    assert all(e.status is Status.SUCCEEDED for e in history)
    # the first configurations do not depend on the concurrency
    one = simulate(ASHA(make_space(MATRIX), settings(n=60, big_r=81)), concurrency=1)
    first = sorted(config_key(e.config) for e in one if e.meta["rung"] == 0)
    assert first == sorted(config_key(e.config) for e in history if e.meta["rung"] == 0)


def test_contract() -> None:
    space = make_space(MATRIX)
    check_searcher_contract(lambda: ASHA(space, settings(n=25)), space, concurrency=3)
    check_searcher_contract(
        lambda: ASHA(space, settings(n=8, r=0.5, big_r=4.5, rtype="float")), space
    )


def test_known_loss_improves_with_resource() -> None:
    assert known_loss({"x": 3, "y": 1}, 81) < known_loss({"x": 3, "y": 1}, 1)


# ----------------------------------------------------------------------------------------
# Config loader and check
# ----------------------------------------------------------------------------------------

V0 = """
version: 1
kind: group
hptuning:
  concurrency: 2
  asha:
    min_resource: 1
    max_resource: 27
    eta: 3
    resource: {name: epochs, type: int}
    metric: {name: loss, optimization: minimize}
    resume: true
    n_experiments: 20
  matrix:
    x: {uniform: [0, 6]}
run:
  cmd: python train.py --x={{ x }} --epochs={{ epochs }}
"""

V1 = """
version: 1.1
kind: operation
matrix:
  kind: asha
  concurrency: 2
  minResource: 1
  maxResource: 27
  numRuns: 20
  resume: true
  resource: {name: epochs, type: int}
  metric: {name: loss, optimization: minimize}
  params:
    x: {kind: uniform, value: [0, 6]}
component:
  inputs:
  - {name: x, type: float}
  - {name: epochs, type: int}
  run:
    kind: job
    container:
      command: [python, train.py, "--x={{ x }}", "--epochs={{ epochs }}"]
"""


@pytest.mark.parametrize("text", [V0, V1])
def test_config_layouts(text: str, tmp_path: Path) -> None:
    config = load_text(text, base_dir=tmp_path)
    assert config.algorithm == "asha"
    assert config.settings == ASHASettings(
        min_resource=1,
        max_resource=27,
        eta=3.0,
        resource_name="epochs",
        resource_type="int",
        metric=MetricSpec("loss", "minimize"),
        n_experiments=20,
        resume=True,
    )
    assert isinstance(make_searcher(config), ASHA)
    report = build_report(config)
    assert report["asha"]["configurations"] == 20
    assert [r["resource"] for r in report["asha"]["rungs"]] == [1, 3, 9, 27]
    assert report["experiments"] is None
    command = example_command(config)
    assert command is not None and "--epochs=1" in command


def test_v1_snake_case_spellings(tmp_path: Path) -> None:
    text = V1.replace("minResource", "min_resource").replace("numRuns", "n_experiments")
    config = load_text(text, base_dir=tmp_path)
    assert isinstance(config.settings, ASHASettings) and config.settings.min_resource == 1


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("    min_resource: 1\n", "", "hptuning.asha.min_resource: is required for asha"),
        (
            "n_experiments: 20",
            "n_experiments: 0",
            "hptuning.asha.n_experiments: must be at least 1",
        ),
        ("max_resource: 27", "max_resource: 0.5", "hptuning.asha.max_resource: must be at least"),
        ("min_resource: 1", "min_resource: 0.5", "must be at least 1 for an int resource"),
        ("min_resource: 1", "min_resource: -1", "hptuning.asha.min_resource: must be above 0"),
        ("eta: 3", "eta: 1", "hptuning.asha.eta: must be above 1"),
        ("type: int}", "type: float}", None),  # float: 1..27 by eta=1.01 is 332 rungs
        ("eta: 3", "eta: 1.000001", "rungs; polytune supports at most"),
        ("resume: true", "resume: maybe", "hptuning.asha.resume: must be true or false"),
        ("    eta: 3\n", "    eta: 3\n    max_iter: 9\n", "hptuning.asha.max_iter: unknown key"),
        ("x: {uniform: [0, 6]}", "epochs: {values: [1, 2]}", "'epochs' is asha's resource"),
    ],
)
def test_config_errors(old: str, new: str, message: str | None, tmp_path: Path) -> None:
    assert old in V0
    if message is None:  # float resource, eta too close to 1
        text, message = V0.replace(old, new).replace("eta: 3", "eta: 1.01"), "give 332 rungs"
    else:
        text = V0.replace(old, new)
    with pytest.raises(ConfigError) as info:
        load_text(text, base_dir=tmp_path)
    assert message in str(info.value)


def test_int_rounding_merges_rungs(tmp_path: Path) -> None:
    config = load_text(V0.replace("eta: 3", "eta: 1.01"), base_dir=tmp_path)
    assert build_report(config)["asha"]["rungs"][-1] == {
        "rung": 26,
        "resource": 27,
        "promote_top": "1/1.01",
    }


def test_v1_errors(tmp_path: Path) -> None:
    both = V1.replace("  numRuns: 20\n", "  numRuns: 20\n  n_experiments: 20\n")
    with pytest.raises(ConfigError, match="give either n_experiments or numRuns"):
        load_text(both, base_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"matrix\.numRuns: is required for asha"):
        load_text(V1.replace("  numRuns: 20\n", ""), base_dir=tmp_path)


def test_single_rung_warns(tmp_path: Path) -> None:
    config = load_text(V0.replace("min_resource: 1", "min_resource: 27"), base_dir=tmp_path)
    assert any("single rung" in w for w in config.warnings)
