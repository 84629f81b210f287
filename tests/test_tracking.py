"""The helper training scripts import: real subprocesses, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from polytune import tracking
from polytune.metrics import parse_lines, parse_stdout_line

_ENV_NAMES = (
    "POLYTUNE_METRICS_FILE",
    "POLYTUNE_PARAMS",
    "POLYAXON_PARAMS",
    "POLYTUNE_OUTPUTS_PATH",
    "POLYAXON_RUN_OUTPUTS_PATH",
    "POLYTUNE_EXPERIMENT_ID",
    "POLYTUNE_GROUP_DIR",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


def _run(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k not in _ENV_NAMES}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
def test_a_script_logs_metrics_without_importing_numpy(tmp_path: Path) -> None:
    metrics_file = tmp_path / "metrics.jsonl"
    result = _run(
        """
        import sys
        from polytune.tracking import get_params, log_metrics
        assert "numpy" not in sys.modules, sorted(sys.modules)
        params = get_params()
        for step in range(3):
            log_metrics(step=step, loss=params["lr"] / (step + 1), acc=0.5)
        log_metrics(final=1)
        assert "numpy" not in sys.modules
        print("ok")
        """,
        {"POLYTUNE_METRICS_FILE": str(metrics_file), "POLYTUNE_PARAMS": '{"lr": 0.5}'},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"
    records = parse_lines(metrics_file.read_bytes().splitlines())
    assert records == [
        {"step": 0, "loss": 0.5, "acc": 0.5},
        {"step": 1, "loss": 0.25, "acc": 0.5},
        {"step": 2, "loss": 0.5 / 3, "acc": 0.5},
        {"final": 1.0},
    ]


@pytest.mark.slow
def test_concurrent_writers_never_interleave_lines(tmp_path: Path) -> None:
    metrics_file = tmp_path / "metrics.jsonl"
    script = """
        import sys
        from polytune.tracking import log_metrics
        writer = int(sys.argv[1])
        for i in range(300):
            log_metrics(step=i, writer=writer, padding=0.123456789, **{f"m{j}": j for j in range(20)})
        """
    env = {k: v for k, v in os.environ.items() if k not in _ENV_NAMES}
    env["POLYTUNE_METRICS_FILE"] = str(metrics_file)
    procs = [
        subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), str(w)], env=env)
        for w in range(4)
    ]
    assert [p.wait(60) for p in procs] == [0, 0, 0, 0]
    lines = metrics_file.read_bytes().splitlines()
    assert len(lines) == 1200
    records = parse_lines(lines)
    assert len(records) == 1200  # every line is one whole JSON object
    for w in range(4):
        steps = [r["step"] for r in records if r["writer"] == w]
        assert steps == list(range(300))


def test_numpy_scalars_become_plain_floats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    metrics_file = tmp_path / "metrics.jsonl"
    monkeypatch.setenv("POLYTUNE_METRICS_FILE", str(metrics_file))
    tracking.log_metrics(
        step=np.int64(4), loss=np.float32(0.5), acc=np.float64(0.25), n=np.int32(3)
    )
    assert json.loads(metrics_file.read_text()) == {"step": 4, "loss": 0.5, "acc": 0.25, "n": 3.0}


def test_without_polytune_lines_go_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    tracking.log_metrics(step=2, loss=0.5)
    out = capsys.readouterr().out
    assert out == 'polytune-metrics: {"step":2,"loss":0.5}\n'
    assert parse_stdout_line(out) == {"step": 2, "loss": 0.5}


def test_send_metrics_is_the_polyaxon_spelling() -> None:
    assert tracking.send_metrics is tracking.log_metrics


def test_bad_values_raise_clear_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYTUNE_METRICS_FILE", str(tmp_path / "m.jsonl"))
    with pytest.raises(TypeError, match="metric 'loss' must be a number"):
        tracking.log_metrics(loss="high")
    with pytest.raises(TypeError, match="step must be an integer"):
        tracking.log_metrics(step=1.5, loss=1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="step must be >= 0"):
        tracking.log_metrics(step=-1, loss=1.0)
    assert not (tmp_path / "m.jsonl").exists()  # nothing half-written


def test_get_params_prefers_polytune_then_polyaxon(monkeypatch: pytest.MonkeyPatch) -> None:
    assert tracking.get_params() == {}
    monkeypatch.setenv("POLYAXON_PARAMS", '{"lr": 0.1}')
    assert tracking.get_params() == {"lr": 0.1}
    monkeypatch.setenv("POLYTUNE_PARAMS", '{"lr": 0.2, "opt": "adam"}')
    assert tracking.get_params() == {"lr": 0.2, "opt": "adam"}
    monkeypatch.setenv("POLYTUNE_PARAMS", "{not json")
    with pytest.raises(ValueError, match="POLYTUNE_PARAMS is not valid JSON"):
        tracking.get_params()
    monkeypatch.setenv("POLYTUNE_PARAMS", "[1, 2]")
    with pytest.raises(ValueError, match="must hold a JSON object"):
        tracking.get_params()


def test_outputs_path_experiment_id_and_group_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    assert tracking.get_outputs_path() is None
    assert tracking.get_experiment_id() is None
    assert tracking.get_group_dir() is None
    monkeypatch.setenv("POLYAXON_RUN_OUTPUTS_PATH", "/old")
    assert tracking.get_outputs_path() == "/old"
    monkeypatch.setenv("POLYTUNE_OUTPUTS_PATH", "/new")
    assert tracking.get_outputs_path() == "/new"
    monkeypatch.setenv("POLYTUNE_EXPERIMENT_ID", "17")
    assert tracking.get_experiment_id() == 17
    monkeypatch.setenv("POLYTUNE_EXPERIMENT_ID", "x")
    with pytest.raises(ValueError, match="not an integer"):
        tracking.get_experiment_id()
    monkeypatch.setenv("POLYTUNE_GROUP_DIR", "/g")
    assert tracking.get_group_dir() == "/g"


def test_tracking_imports_only_the_standard_library() -> None:
    source = Path(tracking.__file__).read_text()
    imported = {
        line.split()[1].split(".")[0]
        for line in source.splitlines()
        if line.startswith(("import ", "from "))
    }
    assert imported <= {"__future__", "json", "operator", "os", "typing"}
