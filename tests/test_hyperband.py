"""Hyperband: the searcher against Polyaxon's formulas, its packing, promotions, resume and crash
safety (pure loops, and the in-process driver with a simulated executor)."""

from __future__ import annotations

import contextlib
import heapq
import json
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_search_basic import check_searcher_contract, experiment, make_space, rng_for

from polytune.algorithms import hyperband_schedule as hb
from polytune.algorithms import multifidelity as mf
from polytune.algorithms.hyperband import Hyperband
from polytune.config import load_text
from polytune.driver import Driver, DriverOptions, new_group
from polytune.executors.base import LaunchSpec
from polytune.experiment import Experiment, Searcher, Status
from polytune.model import HyperbandSettings, MetricSpec
from polytune.searchers import make_searcher
from polytune.simulation import JobResult, SimulatedCrash, SimulatedExecutor, VirtualClock
from polytune.space import config_key
from polytune.store import open_group

MATRIX = {"x": {"uniform": [0, 6]}, "y": {"uniform": [0, 2]}}


def settings(
    max_iter: float = 81, eta: float = 3, rtype: str = "int", resume: bool = False
) -> HyperbandSettings:
    return HyperbandSettings(
        max_iter=max_iter,
        eta=eta,
        resource_name="epochs",
        resource_type=rtype,  # type: ignore[arg-type]
        metric=MetricSpec("loss", "minimize"),
        resume=resume,
    )


def known_loss(config: Mapping[str, Any], resource: float) -> float:
    """The fake script's metric (tests/jobs/fidelity.py)."""
    return (config["x"] - 3) ** 2 + (config["y"] - 1) ** 2 + 1 / resource


# ----------------------------------------------------------------------------------------
# A pure event loop: the driver's scheduling without processes (durations in virtual time)
# ----------------------------------------------------------------------------------------


def simulate(
    searcher: Searcher,
    *,
    concurrency: int,
    seed: int = 0,
    loss: Callable[[Mapping[str, Any], float], float | None] = known_loss,
    duration: Callable[[Experiment], float] | None = None,
    fails: Callable[[Experiment], bool] = lambda e: False,
) -> list[Experiment]:
    """Run ``searcher`` to the end like the driver: fill free slots, then the earliest end."""
    history: list[Experiment] = []
    ends: list[tuple[float, int]] = []
    now = 0.0
    duration = duration or (lambda e: float(e.params["epochs"]))
    for _ in range(100_000):
        while len(ends) < concurrency and not searcher.is_finished(history):
            s = searcher.suggest(list(history), rng_for(seed, history))
            if s is None:
                break
            exp = Experiment(
                id=len(history) + 1,
                config=dict(s.config),
                params={**s.config, **s.extra_params},
                status=Status.RUNNING,
                meta=dict(s.meta),
                started_at=now,
            )
            history.append(exp)
            heapq.heappush(ends, (now + duration(exp), exp.id))
        if not ends:
            return history
        now, exp_id = heapq.heappop(ends)
        exp = history[exp_id - 1]
        if fails(exp):
            history[exp_id - 1] = exp.with_(status=Status.FAILED, ended_at=now)
        else:
            value = loss(exp.config, exp.params["epochs"])
            metrics = {} if value is None else {"loss": value}
            history[exp_id - 1] = exp.with_(status=Status.SUCCEEDED, metrics=metrics, ended_at=now)
    raise AssertionError("the search did not end")


def rungs_of(history: Sequence[Experiment]) -> dict[tuple[int, int], list[Experiment]]:
    out: dict[tuple[int, int], list[Experiment]] = {}
    for e in history:
        out.setdefault((e.meta["bracket"], e.meta["rung"]), []).append(e)
    return out


def check_against_formulas(
    history: Sequence[Experiment], s: HyperbandSettings, space_names: Sequence[str]
) -> None:
    """Every rung has Polyaxon's size and resource (no extra rung), rung 0 holds distinct fresh
    configurations, and rung j+1 holds exactly the best keep(s, j) of rung j by the metric."""
    schedule = hb.schedule(s.max_iter, s.eta, s.resource_type)
    rungs = rungs_of(history)
    assert sorted(rungs) == sorted((r.bracket, r.rung) for r in schedule)
    assert len(history) == hb.total_experiments(s.max_iter, s.eta, s.resource_type)
    by_id = {e.id: e for e in history}
    for r in schedule:
        exps = rungs[(r.bracket, r.rung)]
        assert len(exps) == r.n_experiments, r
        for e in exps:
            assert e.params["epochs"] == r.resource and e.meta["resource"] == r.resource
            assert type(e.params["epochs"]) is (int if s.resource_type == "int" else float)
            assert e.params["epochs"] <= s.max_iter
            assert sorted(e.config) == sorted(space_names)
        if r.rung == 0:
            assert len({config_key(e.config) for e in exps}) == len(exps)
            assert all(e.meta["promoted_from"] is None for e in exps)
            assert sorted(e.meta["index"] for e in exps) == list(range(len(exps)))
            continue
        below = rungs[(r.bracket, r.rung - 1)]
        k = hb.keep(s.max_iter, s.eta, r.bracket, r.rung - 1)
        best = sorted(below, key=lambda e: (e.metrics["loss"], e.id))[:k]
        assert sorted(e.meta["promoted_from"] for e in exps) == sorted(b.id for b in best)
        for e in exps:
            parent = by_id[e.meta["promoted_from"]]
            assert parent.config == e.config
            assert e.meta["root"] == mf.root_of(parent)
            assert by_id[e.meta["root"]].meta["rung"] == 0
    # fresh configurations in every bracket (Polyaxon redrew the same leading ones)
    firsts = [config_key(rungs[(b, 0)][0].config) for b in {r.bracket for r in schedule}]
    assert len(set(firsts)) == len(firsts)


# ----------------------------------------------------------------------------------------
# The schedule: max_iter 81 / eta 3 and max_iter 10 / eta 3 (float)
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 4])
def test_81_3_matches_the_formulas(concurrency: int) -> None:
    space = make_space(MATRIX)
    s = settings()
    history = simulate(Hyperband(space, s), concurrency=concurrency)
    sizes = Counter(e.meta["bracket"] for e in history if e.meta["rung"] == 0)
    assert [sizes[b] for b in (4, 3, 2, 1, 0)] == [81, 34, 15, 8, 5]
    check_against_formulas(history, s, space.names)
    assert Hyperband(space, s).planned_total() == 206


def test_10_3_float_resources() -> None:
    space = make_space(MATRIX)
    s = settings(10, 3, "float")
    history = simulate(Hyperband(space, s), concurrency=3)
    check_against_formulas(history, s, space.names)
    got = sorted((e.meta["bracket"], e.meta["rung"], e.params["epochs"]) for e in history)
    assert Counter(got) == Counter(
        {
            (2, 0, 10 * 3**-2): 9,
            (2, 1, 10 * 3**-2 * 3): 3,
            (2, 2, 10.0): 1,
            (1, 0, 10 * 3**-1): 5,  # Polyaxon: R * eta^-s * eta^j, float noise kept
            (1, 1, 10.0): 1,
            (0, 0, 10.0): 3,
        }
    )
    assert max(e.params["epochs"] for e in history) == 10.0  # no extra rung at 30


def test_same_seed_same_experiments_whatever_the_packing() -> None:
    """The set of (configuration, resource) experiments does not depend on the concurrency or
    on the order in which experiments end: only the packing changes."""
    space = make_space(MATRIX)
    s = settings(27, 3)

    def key(history: Sequence[Experiment]) -> list[str]:
        return sorted(config_key({**e.params, "rung": e.meta["rung"]}) for e in history)

    one = simulate(Hyperband(space, s), concurrency=1, seed=5)
    rng = np.random.default_rng(1)
    jitter = {i: float(rng.uniform(0.1, 10)) for i in range(1, 500)}
    four = simulate(Hyperband(space, s), concurrency=4, seed=5, duration=lambda e: jitter[e.id])
    assert key(one) == key(four)
    other = simulate(Hyperband(space, s), concurrency=1, seed=6)
    assert key(one) != key(other)


def test_brackets_run_concurrently_and_fill_the_slots() -> None:
    """While a rung waits for a straggler, other brackets' experiments start."""
    space = make_space(MATRIX)
    slow = {1}

    def duration(e: Experiment) -> float:
        return 1000.0 if e.id in slow else float(e.params["epochs"])

    history = simulate(Hyperband(space, settings(9, 3)), concurrency=2, duration=duration)
    straggler = history[0]
    assert straggler.meta == {**straggler.meta, "bracket": 2, "rung": 0}
    # bracket 2's rung 1 starts only once the straggler ended ...
    rung1 = [e for e in history if e.meta["bracket"] == 2 and e.meta["rung"] == 1]
    assert min(e.started_at or 0 for e in rung1) >= (straggler.ended_at or 0)
    # ... and meanwhile the other slot ran the other brackets' experiments
    others = [e for e in history if e.meta["bracket"] < 2]
    assert others and max(e.ended_at or 0 for e in others) < (straggler.ended_at or 0)


def test_contract() -> None:
    space = make_space(MATRIX)
    check_searcher_contract(lambda: Hyperband(space, settings(27, 3)), space, concurrency=3)
    check_searcher_contract(lambda: Hyperband(space, settings(10, 3, "float")), space)


def test_small_discrete_space_caps_rung_zero() -> None:
    space = make_space({"x": {"values": [1, 2, 3, 4]}, "y": {"values": [1]}})
    history = simulate(Hyperband(space, settings(9, 3)), concurrency=2)
    rungs = rungs_of(history)
    assert len(rungs[(2, 0)]) == 4 and len(rungs[(1, 0)]) == 4 and len(rungs[(0, 0)]) == 3
    assert len(rungs[(2, 1)]) == 3 and len(rungs[(2, 2)]) == 1  # keep(2, 0) = 3 of the 4
    assert len(history) <= Hyperband(space, settings(9, 3)).planned_total()


# ----------------------------------------------------------------------------------------
# Promotion rules, on hand-made histories
# ----------------------------------------------------------------------------------------


def bracket_history(
    losses: Sequence[float | None],
    statuses: Sequence[Status] | None = None,
    bracket: int = 1,
) -> list[Experiment]:
    """Rung 0 of bracket 1 of max_iter=3, eta=3 (3 experiments at resource 1, keep 1), plus the
    whole of bracket 0 (done) so that only bracket 1 is undecided."""
    out = []
    for i, value in enumerate(losses):
        status = statuses[i] if statuses else Status.SUCCEEDED
        meta = {"bracket": bracket, "rung": 0, "resource": 1, "promoted_from": None, "root": None}
        meta |= {"index": i, "search_seed": 7}
        metrics = {} if value is None else {"loss": value}
        out.append(
            experiment(i + 1, {"x": float(i), "y": 1.0}, status=status, meta=meta, metrics=metrics)
        )
    return out


def searcher3(resume: bool = False) -> Hyperband:
    return Hyperband(make_space(MATRIX), settings(3, 3, resume=resume))


def test_waits_for_stragglers_then_promotes_the_best() -> None:
    h = searcher3()
    assert hb.n_configs(3, 3, 1) == 3 and hb.keep(3, 3, 1, 0) == 1
    history = bracket_history([0.5, 0.2, 0.9], [Status.SUCCEEDED, Status.SUCCEEDED, Status.RUNNING])
    s = h.suggest(history, rng_for(0, history))
    assert s is not None and s.meta["bracket"] == 0  # bracket 0 fills the slot meanwhile
    history[2] = history[2].with_(status=Status.SUCCEEDED)
    s = h.suggest(history, rng_for(0, history))
    assert s is not None and s.meta["promoted_from"] == 2 and s.meta["rung"] == 1
    assert s.extra_params == {"epochs": 3} and s.config == history[1].config
    assert s.meta["search_seed"] == 7 and s.outputs_from is None


def test_lost_experiment_blocks_the_rung_until_rerun() -> None:
    history = bracket_history([0.5, 0.2, 0.9], [Status.SUCCEEDED, Status.LOST, Status.SUCCEEDED])
    s = searcher3().suggest(history, rng_for(0, history))
    assert s is not None and s.meta["bracket"] == 0


@pytest.mark.parametrize(
    ("losses", "statuses", "promoted"),
    [
        ([0.3, 0.3, 0.3], None, 1),  # a tie: the lower id
        ([0.9, 0.1, 0.5], [Status.SUCCEEDED, Status.FAILED, Status.SUCCEEDED], 3),  # failed: never
        ([0.9, None, 0.5], None, 3),  # never reported the metric
        ([0.9, 0.1, 0.5], [Status.SUCCEEDED, Status.STOPPED, Status.SUCCEEDED], 2),  # early-stopped
    ],
)
def test_promotion_ranking(
    losses: list[float | None], statuses: list[Status] | None, promoted: int
) -> None:
    history = bracket_history(losses, statuses)
    s = searcher3().suggest(history, rng_for(0, history))
    assert s is not None and s.meta["promoted_from"] == promoted


def test_maximize_promotes_the_highest() -> None:
    s = settings(3, 3)
    h = Hyperband(
        make_space(MATRIX),
        HyperbandSettings(**{**s.__dict__, "metric": MetricSpec("loss", "maximize")}),
    )
    history = bracket_history([0.3, 0.9, 0.5])
    got = h.suggest(history, rng_for(0, history))
    assert got is not None and got.meta["promoted_from"] == 2


def test_nothing_to_promote_ends_the_bracket() -> None:
    history = bracket_history([None, None, None], [Status.FAILED, Status.SUCCEEDED, Status.FAILED])
    h = searcher3()
    while (s := h.suggest(history, rng_for(0, history))) is not None:
        assert s.meta["bracket"] == 0
        meta = dict(s.meta)
        history.append(experiment(len(history) + 1, s.config, meta=meta, metrics={"loss": 1.0}))
    assert h.is_finished(history)
    assert not [e for e in history if e.meta["rung"] == 1]


def test_a_promotion_is_never_doubled() -> None:
    history = bracket_history([0.5, 0.2, 0.9])
    promoted = {
        "bracket": 1,
        "rung": 1,
        "resource": 3,
        "promoted_from": 2,
        "root": 2,
        "search_seed": 7,
    }
    history.append(experiment(4, history[1].config, status=Status.RUNNING, meta=promoted))
    s = searcher3().suggest(history, rng_for(0, history))
    assert s is not None and s.meta["bracket"] == 0


@pytest.mark.parametrize("resume", [True, False])
def test_resume_hands_the_root_outputs(resume: bool) -> None:
    h = Hyperband(make_space(MATRIX), settings(9, 3, resume=resume))
    history = simulate(h, concurrency=2)
    top = [e for e in history if e.meta["bracket"] == 2 and e.meta["rung"] == 2]
    assert len(top) == 1
    # replay the suggestion that created it
    before = history[: top[0].id - 1]
    s = h.suggest(before, rng_for(0, before))
    assert s is not None and s.meta["rung"] == 2
    root = s.meta["root"]
    assert history[root - 1].meta["rung"] == 0
    assert s.outputs_from == (root if resume else None)


def test_ignores_foreign_and_malformed_records() -> None:
    h = searcher3()
    junk = [
        experiment(1, {"x": 1.0, "y": 1.0}, meta={"bracket": 9, "rung": 0}),
        experiment(2, {"x": 1.0, "y": 1.0}, meta={"bracket": "1", "rung": None}),
        experiment(3, {"x": 1.0, "y": 1.0}, meta={}),
    ]
    s = h.suggest(junk, rng_for(0, junk))
    assert s is not None and s.meta["bracket"] == 1 and s.meta["index"] == 0


# ----------------------------------------------------------------------------------------
# Through the real driver and store, with a simulated executor (fast)
# ----------------------------------------------------------------------------------------

FIDELITY = Path(__file__).resolve().parent / "jobs" / "fidelity.py"


def group_yaml(
    max_iter: Any = 9, resume: bool = True, concurrency: int = 3, rtype: str = "int"
) -> str:
    return f"""
version: 1
kind: group
hptuning:
  concurrency: {concurrency}
  seed: 11
  hyperband:
    max_iter: {max_iter}
    eta: 3
    resource: {{name: epochs, type: {rtype}}}
    metric: {{name: loss, optimization: minimize}}
    resume: {str(resume).lower()}
  matrix:
    x: {{uniform: [0, 6]}}
    y: {{uniform: [0, 2]}}
run:
  cmd: python {FIDELITY} --x={{{{ x }}}} --y={{{{ y }}}} --epochs={{{{ epochs }}}}
"""


def fidelity_job(spec: LaunchSpec) -> JobResult:
    """tests/jobs/fidelity.py in process: trains from the checkpoint in the outputs path up to
    the resource in the command line; takes one virtual second per epoch."""
    params = json.loads(spec.env["POLYTUNE_PARAMS"])
    argv = dict(a.split("=", 1) for a in spec.command.split()[2:])
    epochs = float(argv["--epochs"])
    assert epochs == params["epochs"] == float(spec.env["POLYTUNE_PARAM_EPOCHS"])
    checkpoint = Path(spec.env["POLYTUNE_OUTPUTS_PATH"]) / "checkpoint.json"
    done = json.loads(checkpoint.read_text())["epochs"] if checkpoint.exists() else 0.0
    with open(spec.env["POLYTUNE_METRICS_FILE"], "a") as fh:
        fh.write(json.dumps({"step": epochs, "loss": known_loss(params, epochs)}) + "\n")
    checkpoint.write_text(json.dumps({"epochs": max(done, epochs)}))
    return JobResult(duration=max(epochs - done, 0.0) + 0.01)


def run_driver(
    tmp: Path, text: str, *, crash_after: int | None = None, concurrency: int = 3
) -> tuple[Driver, SimulatedExecutor]:
    config = load_text(text, base_dir=tmp, source=str(tmp / "hb.yaml"))
    store = new_group(config, workspace=tmp / "ws", name="g", stem="hb")
    return drive(store.path, crash_after=crash_after, concurrency=concurrency)


def drive(
    path: Path,
    *,
    crash_after: int | None = None,
    concurrency: int = 3,
    clock: VirtualClock | None = None,
) -> tuple[Driver, SimulatedExecutor]:
    from polytune.driver import load_group_config

    store = open_group(path)
    config, group = load_group_config(store)
    executor = SimulatedExecutor(concurrency, fidelity_job, clock, crash_after=crash_after)
    driver = Driver(
        store,
        config,
        executor,
        make_searcher(config),
        seed=int(group["seed"]),
        options=DriverOptions(concurrency=concurrency),
        clock=executor.clock,
        is_alive=lambda e: False,
        kill_group=lambda pgid, grace: None,
    )
    with store.lock(), contextlib.suppress(SimulatedCrash):
        driver.run()
    return driver, executor


def test_driver_runs_81_3_with_resume(tmp_path: Path) -> None:
    driver, executor = run_driver(tmp_path, group_yaml(81), concurrency=4)
    history = driver.experiments()
    space = make_space(MATRIX)
    check_against_formulas(history, settings(81, 3, resume=True), space.names)
    assert all(e.status is Status.SUCCEEDED for e in history)
    by_id = {e.id: e for e in history}
    for spec in executor.launched:
        exp = by_id[spec.exp_id]
        # the command is rendered for this rung: it carries the new resource, never a stale one
        assert f"--epochs={exp.params['epochs']}" in spec.command
        root = by_id[exp.meta["root"]] if exp.meta["rung"] > 0 else exp
        assert exp.outputs_path == root.outputs_path == spec.env["POLYTUNE_OUTPUTS_PATH"]
    # with resume, a promoted experiment trains only the epochs its ancestor did not
    spent = sum(e - s for _, s, e in executor.busy)
    assert spent == pytest.approx(297 + 276 + 279 + 324 + 405 + 0.01 * 206)
    assert executor.utilization() > 0.9


def test_driver_without_resume_gives_fresh_outputs(tmp_path: Path) -> None:
    driver, _executor = run_driver(tmp_path, group_yaml(9, resume=False))
    history = driver.experiments()
    assert len({e.outputs_path for e in history}) == len(history) == 22
    promoted = [e for e in history if e.meta["rung"] > 0]
    assert promoted and all(
        e.outputs_path != history[e.meta["root"] - 1].outputs_path for e in promoted
    )


@pytest.mark.parametrize("crash_after", [1, 5, 9, 10, 12])
def test_simulated_kill_then_resume_continues_the_schedule(
    tmp_path: Path, crash_after: int
) -> None:
    ref, _ = run_driver(tmp_path / "ref", group_yaml(9), concurrency=3)
    expected = sorted(config_key({**e.params, "rung": e.meta["rung"]}) for e in ref.experiments())

    crashed, executor = run_driver(tmp_path, group_yaml(9), crash_after=crash_after, concurrency=3)
    path = crashed.store.path
    before = {e.id: e for e in open_group(path).experiments()}
    assert any(e.status is Status.RUNNING for e in before.values())  # left as kill -9 leaves it
    ended_before = {i: e for i, e in before.items() if e.status.is_done}
    resumed, _ = drive(path, concurrency=3, clock=executor.clock)
    after = resumed.experiments()
    got = sorted(config_key({**e.params, "rung": e.meta["rung"]}) for e in after)
    assert got == expected  # same schedule, nothing lost, nothing doubled
    assert all(e.status is Status.SUCCEEDED for e in after)
    for i, e in ended_before.items():  # a finished rung experiment is never rerun
        assert resumed.exps[i].attempt == e.attempt == 1 and resumed.exps[i].ended_at == e.ended_at
    parents = [e.meta["promoted_from"] for e in after if e.meta["promoted_from"] is not None]
    assert len(parents) == len(set(parents))
    rerun = [e for e in after if e.attempt == 2]
    assert rerun and all(e.attempts[0]["status"] == "lost" for e in rerun)


def test_status_summary_rows(tmp_path: Path) -> None:
    driver, _ = run_driver(tmp_path, group_yaml(9))
    info = driver.store.read_group()
    rows = mf.rung_summary(driver.experiments(), driver.objective, mf.planned_rungs(info))
    assert [(r["bracket"], r["rung"], r["planned"], r["created"], r["ended"]) for r in rows] == [
        (2, 0, 9, 9, 9),
        (2, 1, 3, 3, 3),
        (2, 2, 1, 1, 1),
        (1, 0, 5, 5, 5),
        (1, 1, 1, 1, 1),
        (0, 0, 3, 3, 3),
    ]
    assert [r["promoted"] for r in rows] == [3, 1, 0, 1, 0, 0]
    copy = driver.experiments()[-1]
    copy = copy.with_(id=copy.id + 1, restart_of=copy.id, metrics={"loss": -1.0})
    again = mf.rung_summary([*driver.experiments(), copy], driver.objective, mf.planned_rungs(info))
    assert again == rows  # a `polytune restart` copy is not part of the schedule
    best = min(driver.experiments(), key=lambda e: e.metrics["loss"])
    assert any(r["best_id"] == best.id for r in rows)
    assert math.isclose(min(r["best"] for r in rows), best.metrics["loss"])


def test_memos_never_change_an_answer() -> None:
    """The searchers remember folds and rankings between calls (speed); a searcher that has seen
    other histories answers exactly like a fresh one, on every prefix of a history."""
    from polytune.algorithms.asha import ASHA
    from polytune.model import ASHASettings

    space = make_space(MATRIX)
    asha = ASHASettings(1, 27, 3, "epochs", "int", MetricSpec("loss", "minimize"), 40)
    for build in (lambda: Hyperband(space, settings(27, 3)), lambda: ASHA(space, asha)):
        used = build()
        simulate(used, concurrency=3, seed=1)
        history = simulate(build(), concurrency=4, seed=2)
        for n in (0, 5, 40, len(history) // 2, len(history)):
            for prefix in (history[:n], [e.with_(status=Status.RUNNING) for e in history[:n]]):
                a = used.suggest(prefix, rng_for(2, prefix))
                b = build().suggest(prefix, rng_for(2, prefix))
                assert (a and (a.config, a.meta, a.outputs_from)) == (
                    b and (b.config, b.meta, b.outputs_from)
                )
                assert used.is_finished(prefix) == build().is_finished(prefix)


def test_config_warns_when_int_truncates_a_resource_to_zero(tmp_path: Path) -> None:
    config = load_text(group_yaml(729), base_dir=tmp_path)
    assert any(
        "int() truncates the resource of bracket 6 rung 0 to 0 (0.9999999999999999)" in w
        for w in config.warnings
    )
    assert not any("truncates" in w for w in load_text(group_yaml(81), base_dir=tmp_path).warnings)
