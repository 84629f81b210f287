"""Every real polyaxonfile of the shared corpus loads, or is refused for a known, right reason.

The corpus (``../shared/polyaxon/polyaxonfiles``, 198 files from 13 repositories, 2017-2026) is read
in place, never copied. ``REJECTED`` lists each file polytune refuses, with the reason and the key
path its one-line message names; every other file must load. Reasons:

* ``dag`` — a v1 DAG pipeline whose operation carries the matrix: polytune runs one group.
* ``collision`` — a name that is both a constant param (``declarations``/``params``) and a matrix
  parameter or Hyperband's resource: Polyaxon silently searched nothing (polyaxon#768); polytune
  refuses (DESIGN.md §6).
* ``conditional-cmd`` — the 2018 test fixtures' ``cmd: {if: {cond, do, else_do}}`` (a Python
  expression evaluated by Polyaxon): not supported.
* ``grid-distribution`` — grid search (explicit or implicit) over a distribution: Polyaxon refuses
  it too (``wrong_grid_matrix_file``, and sampling fixtures without an algorithm).
* ``bo-distribution`` — BO over ``pvalues``: Polyaxon refuses it too.
* ``invalid`` — broken content Polyaxon refuses as well: a typo (``nunRuns``), a half-written
  list (``0.5, 0.75, 1.0]``), a 4-element range, a matrix kind that is an input name, a matrix put
  inside a job's ``run``, an early-stopping ``kind: metric``.
"""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from polytune.config import load
from polytune.errors import ConfigError

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "polyaxon" / "polyaxonfiles"
FILES = sorted(CORPUS.glob("*.yml")) if CORPUS.is_dir() else []

# file name -> (reason, the key path the message starts with)
REJECTED: dict[str, tuple[str, str]] = {
    "clark-wu+polyaxon-examples__in_cluster__sklearn__data_customization__polyaxonfile_hyperparams__01bb1801.yml": (
        "collision",
        "declarations.min_samples_leaf",
    ),
    "polyaxon+polyaxon-examples__in_cluster__keras__bidirectional_lstm__polyaxonfile_hyperparams__dce28531.yml": (
        "invalid",
        "matrix.nunRuns",
    ),
    "polyaxon+polyaxon-examples__in_cluster__mxnet__mnist__polyaxonfile_hyperparams__77850a87.yml": (
        "collision",
        "declarations.epochs",
    ),
    "polyaxon+polyaxon-examples__in_cluster__sklearn__newsgroup__polyaxon_hyperparams__dce28531.yml": (
        "invalid",
        "matrix.params.max_df.value",
    ),
    "polyaxon+polyaxon-examples__in_cluster__sklearn__random_forest__polyaxonfile_hyperparams__3b930884.yml": (
        "collision",
        "declarations.min_samples_leaf",
    ),
    "polyaxon+polyaxon-examples__in_cluster__sklearn__random_forest__polyaxonfile_hyperparams__b96714d3.yml": (
        "invalid",
        "hptuning.matrix.n_estimators.range",
    ),
    "polyaxon+polyaxon-examples__in_cluster__sklearn__random_forest__polyaxonfile_hyperparams__dce28531.yml": (
        "invalid",
        "matrix.params.n_estimators.value",
    ),
    "polyaxon+polyaxon-quick-start__automation__dag__c48490bc.yml": (
        "dag",
        "run.operations[2].matrix",
    ),
    "polyaxon+polyaxon-quick-start__automation__hyperparams_bo__65ae4405.yml": (
        "bo-distribution",
        "matrix.params.conv_activation",
    ),
    "polyaxon+polyaxon-quick-start__automation__hyperparams_early_stopping__65ae4405.yml": (
        "collision",
        "params.epochs",
    ),
    "polyaxon+polyaxon-quick-start__automation__hyperparams_hyperband__c48490bc.yml": (
        "collision",
        "params.epochs",
    ),
    "polyaxon+polyaxon-quick-start__build-containers__dag_with_container_build__380cd76c.yml": (
        "dag",
        "run.operations[2].matrix",
    ),
    "polyaxon+polyaxon-quick-start__dags__dag__380cd76c.yml": ("dag", "run.operations[1].matrix"),
    "polyaxon+polyaxon-quick-start__joins__map_reduce_tune_join__380cd76c.yml": (
        "dag",
        "run.operations[1].matrix",
    ),
    "polyaxon+polyaxon-quick-start__optimization__hyperparams_early_stopping__380cd76c.yml": (
        "collision",
        "params.epochs",
    ),
    "polyaxon+polyaxon-quick-start__optimization__hyperparams_early_stopping__64fb852e.yml": (
        "collision",
        "params.epochs",
    ),
    "polyaxon+polyaxon-quick-start__polyaxonfile_hyperparams_bo__5da4abcb.yml": (
        "bo-distribution",
        "settings.matrix.activation",
    ),
    "polyaxon+polyaxon-quick-start__scheduling__build-containers__dag_with_container_build__1b883e84.yml": (
        "dag",
        "run.operations[2].matrix",
    ),
    "polyaxon+polyaxon-quick-start__scheduling__dags__dag__1b883e84.yml": (
        "dag",
        "run.operations[1].matrix",
    ),
    "polyaxon+polyaxon-quick-start__scheduling__joins__map_reduce_tune_join__1b883e84.yml": (
        "dag",
        "run.operations[1].matrix",
    ),
    "polyaxon+polyaxon-quick-start__scheduling__op-build__dag__f0cefd45.yml": (
        "dag",
        "run.operations[1].matrix",
    ),
    "polyaxon+polyaxon-quick-start__scheduling__optimization__hyperparams_early_stopping__1b883e84.yml": (
        "collision",
        "params.epochs",
    ),
    "polyaxon+polyaxon-schemas__tests__fixtures__exec_matrix_file__46acd25a.yml": (
        "conditional-cmd",
        "exec.cmd",
    ),
    "polyaxon+polyaxon-schemas__tests__fixtures__plain__wrong_grid_matrix_file__bc37228e.yml": (
        "grid-distribution",
        "hptuning.matrix.lr",
    ),
    "polyaxon+polyaxon-schemas__tests__fixtures__run_exec_matrix_file__2058155b.yml": (
        "conditional-cmd",
        "run.cmd",
    ),
    "polyaxon+polyaxon-schemas__tests__fixtures__run_exec_matrix_file__a661b7ef.yml": (
        "conditional-cmd",
        "run.cmd",
    ),
    "polyaxon+polyaxon-schemas__tests__fixtures__run_exec_matrix_file__c2109a5d.yml": (
        "conditional-cmd",
        "run.cmd",
    ),
    "polyaxon+polyaxon-schemas__tests__fixtures__run_exec_matrix_sampling_file__5e1605d4.yml": (
        "grid-distribution",
        "settings.matrix.learning_rate",
    ),
    "polyaxon+polyaxon-schemas__tests__fixtures__run_exec_matrix_sampling_file__8eb70021.yml": (
        "conditional-cmd",
        "run.cmd",
    ),
    "polyaxon+polyaxon-schemas__tests__fixtures__run_exec_matrix_sampling_file__953a8558.yml": (
        "grid-distribution",
        "hptuning.matrix.learning_rate",
    ),
    "polyaxon+polyaxon-schemas__tests__fixtures__wrong_grid_matrix_file__692f114e.yml": (
        "grid-distribution",
        "hptuning.matrix.lr",
    ),
    "polyaxon+polyaxon__automation__hyperparams_bo__2cf33deb.yml": (
        "bo-distribution",
        "matrix.params.conv_activation",
    ),
    "polyaxon+polyaxon__automation__hyperparams_early_stopping__2cf33deb.yml": (
        "collision",
        "params.epochs",
    ),
    "polyaxon+polyaxon__core__tests__fixtures__pipelines__matrix_file__ad0e69a2.yml": (
        "dag",
        "run.operations[1].matrix",
    ),
    "polyaxon+polyaxon__core__tests__fixtures__pipelines__matrix_file_early_stopping__ad0e69a2.yml": (
        "dag",
        "run.operations[1].matrix",
    ),
    "polyaxon+polyaxon__core__tests__fixtures__pipelines__matrix_file_with_int_float_types__ad0e69a2.yml": (
        "dag",
        "run.operations[1].matrix",
    ),
    "polyaxon+polyaxon__core__tests__fixtures__typing__matrix_job_required_inputs_file_wrong_matrix_type__ad0e69a2.yml": (
        "invalid",
        "matrix.params.lr.kind",
    ),
    "polyaxon+polyaxon__examples__quick-start__automation__dag__a04cece0.yml": (
        "dag",
        "run.operations[2].matrix",
    ),
    "sleep3r+polyaxon-vastai-example__infra__sweep__464e0aaa.yml": ("invalid", "run.matrix"),
    "sleep3r+polyaxon-vastai-example__infra__sweep__78a199e7.yml": (
        "invalid",
        "matrix.earlyStopping[0].kind",
    ),
}

# what the message of each reason says (any of the alternatives)
_REASON_TEXT: dict[str, tuple[str, ...]] = {
    "dag": ("DAG pipelines are not supported",),
    "collision": ("is both a constant param and a matrix parameter", "is hyperband's resource"),
    "conditional-cmd": ("conditional commands",),
    "grid-distribution": ("which grid search cannot enumerate",),
    "bo-distribution": ("which bayesian optimization cannot search",),
    "invalid": ("",),
}


def _is_invalid_fixture(name: str) -> bool:
    return "wrong_" in name or "invalid" in name


@pytest.mark.parametrize("path", FILES or [None], ids=lambda p: p.name if p else "absent")
def test_corpus_file(path: Path | None) -> None:
    if path is None:
        pytest.skip(f"the shared polyaxonfile corpus is absent ({CORPUS})")
    expected = REJECTED.get(path.name)
    if expected is None and not _is_invalid_fixture(path.name):
        config = load([path])
        assert config.space.params or config.algorithm == "mapping"
        return
    with pytest.raises(ConfigError) as info:
        load([path])
    message = str(info.value)
    assert "\n" not in message
    if expected is not None:
        reason, key_path = expected
        assert message.startswith(f"{key_path}: ")
        assert any(text in message for text in _REASON_TEXT[reason])


def test_corpus_summary(capsys: pytest.CaptureFixture[str]) -> None:
    if not FILES:
        pytest.skip(f"the shared polyaxonfile corpus is absent ({CORPUS})")
    loaded: collections.Counter[str] = collections.Counter()
    rejected: dict[str, list[str]] = collections.defaultdict(list)
    for path in FILES:
        try:
            config = load([path])
        except ConfigError as exc:
            reason = REJECTED.get(path.name, ("unexpected", ""))[0]
            rejected[reason].append(f"{path.name}: {exc}")
        else:
            loaded[f"{config.layout}/{config.algorithm}"] += 1
    total_rejected = sum(len(v) for v in rejected.values())
    with capsys.disabled():
        print(f"\ncorpus: {sum(loaded.values())} loaded, {total_rejected} rejected of {len(FILES)}")
        for kind, count in sorted(loaded.items()):
            print(f"  loaded {kind}: {count}")
        for reason, items in sorted(rejected.items()):
            print(f"  rejected ({reason}): {len(items)}")
    assert "unexpected" not in rejected, rejected.get("unexpected")
    assert sum(loaded.values()) >= 0.75 * len(FILES)
    stale = set(REJECTED) - {p.name for p in FILES}
    assert not stale, f"REJECTED names files the corpus no longer has: {sorted(stale)}"
