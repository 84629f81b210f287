"""GPU slots (executors/gpus.py) with a fake device list: no GPU needed."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from polytune.config import load_text
from polytune.errors import ConfigError
from polytune.executors.base import ExecutorError, Finished, Handle, LaunchSpec
from polytune.executors.factory import executor_settings, make_executor
from polytune.executors.gpus import GpuSlots, parse_gpus
from polytune.executors.local import LocalExecutor

JOB = Path(__file__).resolve().parent / "jobs" / "stamp_job.py"


class FakeInner:
    """An executor whose experiments end when the test says so."""

    name = "fake"

    def __init__(self, capacity: int) -> None:
        self.cap = capacity
        self.specs: dict[int, LaunchSpec] = {}
        self.ending: list[int] = []

    def capacity(self) -> int:
        return self.cap

    def free_slots(self) -> int:
        return self.cap - len(self.specs)

    def running(self) -> list[int]:
        return sorted(self.specs)

    def start(self, spec: LaunchSpec) -> Handle:
        self.specs[spec.exp_id] = spec
        return Handle(spec.exp_id, 1, 1, "h", "b", None, 0.0)

    def wait(self, timeout: float) -> list[Finished]:
        done = [Finished(i, 0, None, "exited", 0.0) for i in self.ending]
        for i in self.ending:
            del self.specs[i]
        self.ending = []
        return done

    def stop(self, exp_id: int, grace: float) -> None:
        pass

    def stop_all(self, grace: float) -> list[Finished]:
        self.ending = list(self.specs)
        return self.wait(0)

    def close(self) -> None:
        pass


def spec(exp_id: int, tmp: Path) -> LaunchSpec:
    return LaunchSpec(
        exp_id=exp_id,
        command="true",
        cwd=tmp,
        env={"A": "1"},
        stdout_path=tmp / f"{exp_id}.out",
        stderr_path=tmp / f"{exp_id}.err",
    )


def test_slots_bounded_by_gpus_and_returned(tmp_path: Path) -> None:
    inner = FakeInner(capacity=8)
    ex = GpuSlots(inner, ["0", "1", "2", "3", "4"], per_experiment=2)
    assert ex.capacity() == 2 and ex.free_slots() == 2
    h1 = ex.start(spec(1, tmp_path))
    ex.start(spec(2, tmp_path))
    assert inner.specs[1].env["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert inner.specs[2].env["CUDA_VISIBLE_DEVICES"] == "2,3"
    assert inner.specs[1].env["A"] == "1"
    assert h1.extra["gpus"] == ["0", "1"]
    assert ex.free_slots() == 0  # one device left, two needed
    with pytest.raises(ExecutorError, match="no free GPU"):
        ex.start(spec(3, tmp_path))
    inner.ending = [1]
    assert [f.exp_id for f in ex.wait(0)] == [1]
    assert ex.free_slots() == 1
    ex.start(spec(3, tmp_path))
    assert set(inner.specs[3].env["CUDA_VISIBLE_DEVICES"].split(",")) <= {"0", "1", "4"}
    held = ex.held()
    devices = [d for ds in held.values() for d in ds]
    assert len(devices) == len(set(devices)) == 4
    ex.stop_all(0)
    assert ex.held() == {} and ex.free_slots() == 2


def test_inner_capacity_also_bounds(tmp_path: Path) -> None:
    ex = GpuSlots(FakeInner(capacity=1), ["0", "1"], per_experiment=1)
    assert ex.capacity() == 1
    ex.start(spec(1, tmp_path))
    assert ex.free_slots() == 0


def test_bad_settings() -> None:
    with pytest.raises(ExecutorError, match="only 1 GPU"):
        GpuSlots(FakeInner(1), ["0"], per_experiment=2)
    with pytest.raises(ExecutorError, match="twice"):
        parse_gpus("0,1,0")
    with pytest.raises(ExecutorError, match="comma-separated"):
        parse_gpus("0,,1")


def group_yaml(extra: str = "") -> str:
    return textwrap.dedent(
        f"""
        version: 1
        kind: group
        hptuning:
          concurrency: 4
          matrix:
            x: {{values: [1, 2, 3]}}
        polytune:
          executor: local
        {extra}
        run:
          cmd: echo {{{{ x }}}}
        """
    )


def test_config_section() -> None:
    text = group_yaml().replace(
        "executor: local", "executor: dask\n  scheduler: tcp://127.0.0.1:8786\n  gpus: [0, 1]"
    )
    cfg = load_text(text, base_dir=Path("/tmp"), source="g.yaml")
    assert cfg.polytune.executor == "dask"
    assert cfg.polytune.scheduler == "tcp://127.0.0.1:8786"
    assert cfg.polytune.gpus == ("0", "1") and cfg.polytune.gpus_per_experiment == 1
    bad = group_yaml().replace("executor: local", "executor: local\n  gpus: [0, 0]")
    with pytest.raises(ConfigError, match=r"polytune\.gpus"):
        load_text(bad, base_dir=Path("/tmp"), source="g.yaml")
    bad = group_yaml().replace("executor: local", "executor: ray")
    with pytest.raises(ConfigError, match=r"polytune\.executor"):
        load_text(bad, base_dir=Path("/tmp"), source="g.yaml")


def test_settings_command_line_wins() -> None:
    text = group_yaml().replace("executor: local", "executor: local\n  gpus: [0, 1]")
    cfg = load_text(text, base_dir=Path("/tmp"), source="g.yaml")
    s = executor_settings({"gpus": "2,3,4"}, cfg.polytune, cfg.base_dir)
    assert s["gpus"] == ["2", "3", "4"] and s["executor"] == "local"
    s = executor_settings({"scheduler": "tcp://127.0.0.1:1"}, cfg.polytune, cfg.base_dir)
    assert s["executor"] == "dask"
    with pytest.raises(ExecutorError, match="GPU slots are for the local executor"):
        make_executor({**s, "gpus": ["0"]}, capacity=1, group="g", group_dir=Path("/tmp"))


def _stamps(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _check_exclusive(stamps: list[dict[str, Any]]) -> None:
    """No device is used by two experiments whose [start, end] intervals overlap."""
    spans: dict[int, dict[str, Any]] = {}
    for s in stamps:
        spans.setdefault(s["exp"], {})[s["event"]] = s
    intervals = [
        (v["start"]["t"], v["end"]["t"], set(v["start"]["gpus"].split(","))) for v in spans.values()
    ]
    for i, (a0, a1, ga) in enumerate(intervals):
        for b0, b1, gb in intervals[i + 1 :]:
            if a0 < b1 and b0 < a1:
                assert not (ga & gb), f"devices {ga & gb} shared by overlapping experiments"


@pytest.mark.slow
def test_real_processes_never_share_a_device(tmp_path: Path) -> None:
    stamps = tmp_path / "stamps.jsonl"
    ex = GpuSlots(LocalExecutor(8), ["0", "1", "2", "3", "4"], per_experiment=2)
    try:
        next_id, started = 1, 0
        deadline = time.monotonic() + 30
        while started < 8 or ex.running():
            while started < 8 and ex.free_slots() > 0:
                s = spec(next_id, tmp_path)
                cmd = f"{sys.executable} {JOB} --stamps {stamps} --sleep 0.05 --steps 2"
                ex.start(
                    LaunchSpec(
                        exp_id=s.exp_id,
                        command=cmd,
                        cwd=tmp_path,
                        env={"POLYTUNE_EXPERIMENT_ID": str(next_id)},
                        stdout_path=s.stdout_path,
                        stderr_path=s.stderr_path,
                    )
                )
                next_id += 1
                started += 1
                assert len(ex.running()) <= 2
            for fin in ex.wait(1.0):
                assert fin.exit_code == 0
            assert time.monotonic() < deadline
    finally:
        ex.close()
    got = _stamps(stamps)
    assert len(got) == 16
    assert all(len(s["gpus"].split(",")) == 2 for s in got)
    _check_exclusive(got)
    # Concurrency was really 2 at some point (the test would be vacuous otherwise).
    assert len({s["gpus"] for s in got}) >= 2


@pytest.mark.slow
def test_cli_run_with_gpus(tmp_path: Path) -> None:
    stamps = tmp_path / "stamps.jsonl"
    (tmp_path / "g.yaml").write_text(
        textwrap.dedent(
            f"""
            version: 1
            kind: group
            hptuning:
              concurrency: 4
              matrix:
                x: {{values: [1, 2, 3, 4, 5, 6]}}
            polytune:
              gpus_per_experiment: 1
            run:
              cmd: {sys.executable} {JOB} --x={{{{ x }}}} --stamps={stamps} --sleep=0.1
            """
        )
    )
    proc = subprocess.run(
        [sys.executable, "-m", "polytune", "run", "g.yaml", "--gpus", "0,1", "-q", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["counts"]["succeeded"] == 6
    got = _stamps(stamps)
    assert {s["gpus"] for s in got} == {"0", "1"}
    _check_exclusive(got)
    recs = [
        json.loads(p.read_text())
        for p in (tmp_path / "polytune-groups").glob("*/experiments/*/experiment.json")
    ]
    assert sorted(r["executor"]["gpus"][0] for r in recs).count("0") >= 1
