"""The group directory: real files, real concurrent processes, and a state machine that runs the
same operations on the store and on a dict model."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from polytune import procutil, store
from polytune.errors import GroupBusy, GroupNotFound, StoreError, UsageError
from polytune.experiment import Experiment, Status
from polytune.store import (
    ExperimentNotFound,
    GroupStore,
    create_group,
    list_groups,
    open_group,
    resolve_group,
)

_GROUP = {"algorithm": "random", "seed": 7}
_YAML = "version: 1\nkind: group\nhptuning:\n  matrix:\n    lr: {values: [0.1, 0.2]}\n"


@pytest.fixture
def group(tmp_path: Path) -> GroupStore:
    return create_group(tmp_path / "ws", "mnist", None, _GROUP, _YAML)


def _python(script: str, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args], text=True, **kwargs
    )


def _tmp_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# ----- creating, opening and resolving groups ------------------------------------------------
def test_create_group_writes_the_layout(tmp_path: Path) -> None:
    g = create_group(tmp_path / "ws", "mnist", None, _GROUP, _YAML)
    assert g.path == (tmp_path / "ws" / "mnist-1").absolute()
    assert g.name == "mnist-1"
    data = g.read_group()
    assert data["algorithm"] == "random" and data["seed"] == 7
    assert data["name"] == "mnist-1"
    assert isinstance(data["created_at"], float)
    assert data["polytune_version"]
    assert g.read_polyaxonfile() == _YAML
    assert (g.path / "experiments").is_dir()
    assert g.experiments() == [] and g.damage() == []
    assert json.loads((g.path / "group.json").read_text())["seed"] == 7


def test_default_workspace_is_visible() -> None:
    assert store.DEFAULT_WORKSPACE == "polytune-groups"


def test_group_numbers_follow_the_highest_existing(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    names = [create_group(ws, "mnist", None, _GROUP, _YAML).name for _ in range(3)]
    assert names == ["mnist-1", "mnist-2", "mnist-3"]
    create_group(ws, "x", "mnist-9", _GROUP, _YAML)
    assert create_group(ws, "mnist", None, _GROUP, _YAML).name == "mnist-10"
    assert create_group(ws, "cifar", None, _GROUP, _YAML).name == "cifar-1"
    assert create_group(ws, "mnist-1", None, _GROUP, _YAML).name == "mnist-1-1"


@pytest.mark.parametrize(
    ("stem", "expected"),
    [("my model (v2)", "my-model-v2-1"), ("../../etc", "etc-1"), ("", "group-1"), (".x", "x-1")],
)
def test_stems_are_reduced_to_safe_names(tmp_path: Path, stem: str, expected: str) -> None:
    g = create_group(tmp_path / "ws", stem, None, _GROUP, _YAML)
    assert g.name == expected
    assert g.path.parent == (tmp_path / "ws").absolute()


@pytest.mark.parametrize(
    "name", ["../../x", "a/b", "", ".", "..", ".hidden", "a b", "x\x00y", "é", "a" * 201]
)
def test_unsafe_group_names_are_usage_errors(tmp_path: Path, name: str) -> None:
    with pytest.raises(UsageError, match="invalid group name"):
        create_group(tmp_path / "ws", "s", name, _GROUP, _YAML)
    assert list((tmp_path / "ws").iterdir()) == []


def test_an_existing_name_is_a_usage_error(tmp_path: Path) -> None:
    create_group(tmp_path / "ws", "s", "exp_1.v-2", _GROUP, _YAML)
    with pytest.raises(UsageError, match=r"'exp_1\.v-2' already exists"):
        create_group(tmp_path / "ws", "s", "exp_1.v-2", _GROUP, _YAML)


def test_a_failed_creation_leaves_no_half_made_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store.os, "replace", no_space)
    with pytest.raises(StoreError, match="No space left on device"):
        create_group(tmp_path / "ws", "s", "named", _GROUP, _YAML)
    monkeypatch.undo()
    assert list((tmp_path / "ws").iterdir()) == []
    assert create_group(tmp_path / "ws", "s", "named", _GROUP, _YAML).name == "named"


@pytest.mark.slow
def test_concurrent_creators_get_distinct_groups(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    go = tmp_path / "go"
    script = """
        import os, sys
        from polytune.store import create_group
        while not os.path.exists(sys.argv[2]):
            pass  # spin: every creator starts at the same moment
        for _ in range(15):
            print(create_group(sys.argv[1], "race", None, {}, "").name, flush=True)
        """
    procs = [_python(script, str(ws), str(go), stdout=subprocess.PIPE) for _ in range(6)]
    time.sleep(0.5)  # let every creator reach the starting line
    go.touch()
    names = [n for p in procs for n in p.communicate(timeout=120)[0].split()]
    assert [p.returncode for p in procs] == [0] * 6
    assert sorted(names, key=lambda n: int(n.split("-")[1])) == [f"race-{i}" for i in range(1, 91)]
    assert len(list_groups(ws)) == 90


def test_open_group_requires_a_group_directory(tmp_path: Path, group: GroupStore) -> None:
    assert open_group(group.path).path == group.path
    with pytest.raises(GroupNotFound, match="does not exist"):
        open_group(tmp_path / "nope")
    (tmp_path / "plain").mkdir()
    with pytest.raises(GroupNotFound, match="not a polytune group"):
        open_group(tmp_path / "plain")
    (group.path / "group.json").write_text('{"trunc')
    with pytest.raises(StoreError, match=r"group\.json is damaged"):
        open_group(group.path)


def _set_created(g: GroupStore, when: float) -> None:
    g.update_group(created_at=when)


def test_resolve_group_by_name_path_or_latest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = tmp_path / "ws"
    a = create_group(ws, "mnist", None, _GROUP, _YAML)
    b = create_group(ws, "mnist", None, _GROUP, _YAML)
    c = create_group(ws, "cifar", None, _GROUP, _YAML)
    _set_created(a, 300.0)  # the latest by created_at, although created first
    _set_created(b, 100.0)
    _set_created(c, 200.0)
    assert [p.name for p in list_groups(ws)] == ["mnist-2", "cifar-1", "mnist-1"]
    assert resolve_group(ws, None) == a.path
    assert resolve_group(ws, "cifar-1") == c.path
    assert resolve_group(ws, str(b.path)) == b.path
    monkeypatch.chdir(ws)
    assert resolve_group(tmp_path / "elsewhere", "./mnist-2") == b.path
    monkeypatch.chdir(b.path)
    assert resolve_group(ws, ".") == b.path


def test_resolve_group_falls_back_to_mtime_without_created_at(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    a = create_group(ws, "g", None, {}, "")
    b = create_group(ws, "g", None, {}, "")
    for g, mtime in ((a, 2000.0), (b, 1000.0)):
        data = g.read_group()
        del data["created_at"]
        g.write_group(data)
        os.utime(g.path / "group.json", (mtime, mtime))
    assert resolve_group(ws, None) == a.path


def test_resolve_group_errors_list_what_exists(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    with pytest.raises(GroupNotFound, match="no experiment groups in"):
        resolve_group(ws, None)
    with pytest.raises(GroupNotFound, match="there are no groups"):
        resolve_group(ws, "mnist-1")
    create_group(ws, "mnist", None, _GROUP, _YAML)
    create_group(ws, "cifar", None, _GROUP, _YAML)
    (ws / "not-a-group").mkdir()
    with pytest.raises(GroupNotFound) as info:
        resolve_group(ws, "mnist-2")
    message = str(info.value)
    assert "no group 'mnist-2'" in message
    assert "did you mean 'mnist-1'?" in message
    assert "mnist-1" in message and "cifar-1" in message and "not-a-group" not in message
    with pytest.raises(GroupNotFound, match=r"no group '\.\./\.\./nowhere'"):
        resolve_group(ws, "../../nowhere")
    with pytest.raises(GroupNotFound, match=r"ws is not a polytune group \(no group\.json\)"):
        resolve_group(ws, str(ws))
    assert info.value.exit_code == 2


# ----- group.json ----------------------------------------------------------------------------
def test_update_group_merges_and_persists(group: GroupStore) -> None:
    data = group.update_group(status="running", seed=11)
    assert data["status"] == "running" and data["seed"] == 11 and data["algorithm"] == "random"
    assert open_group(group.path).read_group() == data
    assert _tmp_files(group.path) == []


# ----- experiments ---------------------------------------------------------------------------
def test_new_experiment_allocates_ids_and_directories(group: GroupStore) -> None:
    e1 = group.new_experiment({"lr": 0.1}, {"lr": 0.1, "epochs": 3}, {"bracket": 0})
    e2 = group.new_experiment({"lr": 0.2}, {"lr": 0.2}, created_at=123.0, restart_of=1)
    e3 = group.new_experiment(
        {"lr": 0.3}, {}, status=Status.RUNNING, command="echo hi", outputs_path="/shared"
    )
    assert [e.id for e in (e1, e2, e3)] == [1, 2, 3]
    assert e1.meta == {"bracket": 0} and e1.status is Status.CREATED
    assert isinstance(e1.created_at, float)
    assert e2.created_at == 123.0 and e2.restart_of == 1
    assert e3.command == "echo hi" and e3.outputs_path == "/shared" and e3.status is Status.RUNNING
    paths = group.paths(1)
    assert paths.dir == group.path / "experiments" / "000001"
    assert paths.record.name == "experiment.json"
    assert paths.stdout.name == "stdout.log" and paths.stderr.name == "stderr.log"
    assert paths.metrics.name == "metrics.jsonl"
    assert paths.outputs.is_dir()
    assert e1.outputs_path == str(paths.outputs)
    assert group.experiment_dir(2) == paths.dir.parent / "000002"
    assert group.experiments() == [e1, e2, e3]
    assert group.get(2) == e2
    assert sorted(os.listdir(group.path / "experiments")) == ["000001", "000002", "000003"]


def test_a_reopened_store_continues_after_the_highest_id(group: GroupStore) -> None:
    for _ in range(3):
        group.new_experiment({}, {})
    (group.path / "experiments" / "000007").mkdir()  # a damaged leftover still owns its id
    again = open_group(group.path)
    assert again.new_experiment({}, {}).id == 8


def test_stale_staging_directories_of_dead_drivers_are_removed(group: GroupStore) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    stale = group.path / f".new-000001-{dead.stdout.strip()}"
    stale.mkdir()
    assert group.new_experiment({}, {}).id == 1
    assert not stale.exists()
    assert group.experiments()[0].id == 1


def test_save_and_get_round_trip(group: GroupStore) -> None:
    exp = group.new_experiment({"lr": 0.1}, {"lr": 0.1})
    done = exp.with_(
        status=Status.SUCCEEDED, exit_code=0, metrics={"loss": 0.5}, metric_lines=3, last_step=2
    )
    group.save(done, durable=True)
    assert group.get(exp.id) == done
    running = done.with_(metrics={"loss": 0.25})
    group.save(running, durable=False)
    assert group.experiments() == [running]
    assert _tmp_files(group.paths(exp.id).dir) == []


def test_unknown_experiments(group: GroupStore) -> None:
    with pytest.raises(ExperimentNotFound, match="has no experiment 5"):
        group.get(5)
    with pytest.raises(ExperimentNotFound, match="has no experiment 5"):
        group.save(Experiment(id=5, config={}, params={}), durable=False)
    assert not (group.path / "experiments" / "000005").exists()


_DAMAGE = {
    "truncated": b'{"id": 2, "config": {}, "params": {}, "stat',
    "empty": b"",
    "garbage": b"\x00\xff\xfe\x80 binary",
    "array": b"[1, 2]",
    "bad-status": b'{"id": 2, "config": {}, "params": {}, "status": "exploded"}',
    "no-id": b'{"config": {}, "params": {}}',
    "wrong-id": b'{"id": 9, "config": {}, "params": {}}',
    "bad-field": b'{"id": 2, "config": {}, "params": {}, "no_such": 1, "attempt": 0, "metrics": {}}',
}


@pytest.mark.parametrize("kind", sorted(_DAMAGE))
def test_damaged_records_are_skipped_and_reported(group: GroupStore, kind: str) -> None:
    for _ in range(3):
        group.new_experiment({}, {})
    record = group.paths(2).record
    record.write_bytes(_DAMAGE[kind])
    if kind == "bad-field":  # unknown keys are fine (newer versions): not damage
        assert [e.id for e in group.experiments()] == [1, 2, 3]
        assert group.damage() == []
        return
    assert [e.id for e in group.experiments()] == [1, 3]
    (damage,) = group.damage()
    assert damage.path == str(record) and damage.exp_id == 2
    assert str(damage).startswith(str(record) + ": ")
    with pytest.raises(StoreError, match="experiment 2 of group mnist-1 is damaged"):
        group.get(2)
    # The writer repairs it by saving a whole record again.
    group.save(Experiment(id=2, config={}, params={}), durable=True)
    assert [e.id for e in group.experiments()] == [1, 2, 3] and group.damage() == []


def test_missing_records_and_stray_files(group: GroupStore) -> None:
    group.new_experiment({}, {})
    group.new_experiment({}, {})
    group.paths(1).record.unlink()
    (group.path / "experiments" / "notes.txt").write_text("hello")
    (group.path / "experiments" / ".experiment.json.123.0.tmp").write_text("{")
    (group.path / "experiments" / "000009").write_text("not a directory")
    assert [e.id for e in group.experiments()] == [2]
    problems = {d.exp_id: d.problem for d in group.damage()}
    assert problems[1] == "missing experiment.json"
    assert problems[9].startswith("unreadable")
    with pytest.raises(StoreError, match=r"000001/experiment.json is missing"):
        group.get(1)
    shutil.rmtree(group.path / "experiments")
    assert group.experiments() == []
    assert "missing" in group.damage()[0].problem


def test_the_cache_sees_every_rewrite(group: GroupStore) -> None:
    exp = group.new_experiment({}, {})
    record = group.paths(exp.id).record
    old = time.time() - 3600
    os.utime(record, (old, old))  # settled: the next scan caches it
    reader = open_group(group.path)
    assert reader.experiments() == [exp]
    assert reader.experiments()[0] is reader.experiments()[0]  # served from the cache
    group.save(exp.with_(status=Status.RUNNING), durable=False)
    assert reader.experiments()[0].status is Status.RUNNING
    # Rewritten by hand with the same size, even with the old mtime restored: a new inode.
    text = record.read_bytes().replace(b'"running"', b'"stopped"')
    tmp = record.with_name("x")
    tmp.write_bytes(text)
    os.utime(tmp, (old, old))
    os.replace(tmp, record)
    assert reader.experiments()[0].status is Status.STOPPED


# ----- atomicity and write failures ----------------------------------------------------------
@pytest.mark.slow
def test_readers_never_see_a_partial_record(group: GroupStore) -> None:
    exp = group.new_experiment({}, {})
    writer = _python(
        """
        import sys
        from polytune.experiment import Status
        from polytune.store import open_group
        g = open_group(sys.argv[1])
        exp = g.get(1)
        small = exp.with_(metrics={})
        big = exp.with_(status=Status.RUNNING, metrics={f"m{i}": float(i) for i in range(2000)})
        print("ready", flush=True)
        i = 0
        while True:
            g.save(big if i % 2 else small, durable=False)
            i += 1
        """,
        str(group.path),
        stdout=subprocess.PIPE,
    )
    assert writer.stdout is not None
    try:
        assert writer.stdout.readline() == "ready\n"
        seen = set()
        deadline = time.monotonic() + 1.0
        reader = open_group(group.path)
        while time.monotonic() < deadline:
            (got,) = reader.experiments()
            assert reader.damage() == []
            seen.add(len(got.metrics))
            assert reader.get(exp.id).id == exp.id
        assert seen == {0, 2000}  # both versions were read, never anything in between
    finally:
        writer.kill()
        writer.wait()
        writer.stdout.close()


@pytest.mark.parametrize("failing", ["write", "replace", "fsync"])
def test_a_failed_write_keeps_the_previous_record(
    group: GroupStore, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    exp = group.new_experiment({}, {})
    before = group.paths(exp.id).record.read_bytes()
    code = errno.ENOSPC if failing == "write" else errno.EIO

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(store.os, failing, broken)
    with pytest.raises(StoreError) as info:
        group.save(exp.with_(status=Status.FAILED), durable=True)
    monkeypatch.undo()
    assert f"cannot write {group.paths(exp.id).record}: {os.strerror(code)}" in str(info.value)
    assert group.paths(exp.id).record.read_bytes() == before
    assert _tmp_files(group.paths(exp.id).dir) == []
    assert group.get(exp.id) == exp


def test_a_failed_write_of_group_json_keeps_it(
    group: GroupStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = group.read_group()

    def broken(*args: Any, **kwargs: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store.os, "write", broken)
    with pytest.raises(StoreError, match=r"group\.json: No space left on device"):
        group.update_group(status="done")
    monkeypatch.undo()
    assert group.read_group() == before
    assert _tmp_files(group.path) == []


def test_new_experiment_failure_leaves_no_directory(
    group: GroupStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store.os, "write", broken)
    with pytest.raises(StoreError, match="No space left on device"):
        group.new_experiment({}, {})
    monkeypatch.undo()
    assert os.listdir(group.path / "experiments") == []
    assert [n for n in os.listdir(group.path) if n.startswith(".new-")] == []
    assert group.experiments() == [] and group.damage() == []
    assert group.new_experiment({}, {}).id == 1


def test_values_that_are_not_json_are_store_errors(group: GroupStore) -> None:
    with pytest.raises(StoreError, match="cannot encode experiment 1 as JSON"):
        group.new_experiment({"x": object()}, {})
    assert group.new_experiment({}, {}).id == 1  # a failure does not use up an id


# ----- the driver lock -----------------------------------------------------------------------
_HOLDER = """
    import sys, time
    from polytune.store import open_group
    lock = open_group(sys.argv[1]).acquire_driver_lock()
    print("locked", flush=True)
    time.sleep(60)
    """


@pytest.mark.slow
def test_a_live_holder_refuses_the_lock_and_a_killed_one_frees_it(group: GroupStore) -> None:
    holder = _python(_HOLDER, str(group.path), stdout=subprocess.PIPE)
    assert holder.stdout is not None
    try:
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(GroupBusy) as info:
            group.acquire_driver_lock()
        message = str(info.value)
        assert f"group {group.name} is busy" in message
        assert f"pid {holder.pid} on host {procutil.hostname()}" in message
        assert info.value.exit_code == 3
        driver = group.read_driver()
        assert driver is not None and driver["pid"] == holder.pid
        assert driver["start_ticks"] == procutil.process_start_ticks(holder.pid)
        assert group.driver_alive() is True
        group.new_experiment({}, {})  # readers and this test's writes need no lock
        assert len(group.experiments()) == 1
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
        assert group.driver_alive() is False  # driver.json is stale
        with group.lock() as held:
            assert held.held
            driver = group.read_driver()
            assert driver is not None and driver["pid"] == os.getpid()
            assert held.info == driver
        assert not held.held
        assert group.read_driver() is None  # removed on release
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        holder.stdout.close()


def test_the_lock_is_exclusive_within_a_process_too(group: GroupStore) -> None:
    first = group.acquire_driver_lock({"command": "polytune run"})
    try:
        assert group.read_driver() == first.info
        assert first.info["command"] == "polytune run"
        with pytest.raises(GroupBusy, match=f"pid {os.getpid()}"):
            open_group(group.path).acquire_driver_lock()
    finally:
        first.release()
    first.release()  # idempotent
    with open_group(group.path).lock():
        pass


def test_busy_without_driver_json(group: GroupStore) -> None:
    with group.lock():
        group.driver_file.unlink()
        with pytest.raises(GroupBusy, match=r"no driver\.json yet"):
            group.acquire_driver_lock()
        assert group.driver_alive() is False


# ----- lost experiments ----------------------------------------------------------------------
def test_is_lost(group: GroupStore) -> None:
    me = os.getpid()
    ticks = procutil.process_start_ticks(me)
    base = group.new_experiment({}, {}).with_(
        status=Status.RUNNING, pid=me, host=procutil.hostname(), boot_id=procutil.boot_id()
    )
    assert not store.is_lost(base)
    assert not store.is_lost(base.with_(executor={"start_ticks": ticks}))
    assert store.is_lost(base.with_(executor={"start_ticks": (ticks or 0) + 1}))
    assert store.is_lost(base.with_(boot_id="an-earlier-boot"))
    assert not store.is_lost(base.with_(host="another-host"))  # cannot know: not lost
    assert not store.is_lost(base.with_(status=Status.SUCCEEDED, pid=999_999_999))
    assert store.is_lost(base.with_(pid=999_999_999))  # above pid_max: no such process


@pytest.mark.slow
def test_a_dead_shell_with_live_children_is_not_lost(group: GroupStore) -> None:
    # The shell exits at once; its background child keeps the process group alive.
    shell = subprocess.Popen(
        ["/bin/sh", "-c", "sleep 30 </dev/null >/dev/null 2>&1 &"], start_new_session=True
    )
    shell.wait(10)
    exp = group.new_experiment({}, {}).with_(
        status=Status.RUNNING,
        pid=shell.pid,
        host=procutil.hostname(),
        executor={"pgid": shell.pid},
    )
    try:
        assert not store.is_lost(exp)
    finally:
        procutil.kill_group(shell.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while procutil.group_alive(shell.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.is_lost(exp)


# ----- the state machine: the store agrees with a dict model ---------------------------------
_params = st.dictionaries(
    st.sampled_from(["lr", "batch_size", "opt", "layers"]),
    st.one_of(
        st.integers(-1000, 1000),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=6),
        st.booleans(),
    ),
    max_size=3,
)


class StoreAgreesWithModel(RuleBasedStateMachine):
    """``new_experiment`` / ``save`` / ``get`` / ``experiments`` on a real group directory and on
    a dict; plus reopening the store (a resumed driver), corrupting and repairing records, and
    ageing files so that the stat cache is exercised."""

    ids = Bundle("ids")

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.mkdtemp(prefix="polytune-sm-")
        self.store = create_group(Path(self.tmp), "sm", None, {}, "")
        self.reader = open_group(self.store.path)  # a second process-like reader with a cache
        self.model: dict[int, Experiment] = {}
        self.damaged: set[int] = set()
        self.highest = 0

    def teardown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    @initialize()
    def start_empty(self) -> None:
        assert self.store.experiments() == []

    @rule(target=ids, config=_params, params=_params, meta=_params)
    def new(self, config: dict[str, Any], params: dict[str, Any], meta: dict[str, Any]) -> int:
        exp = self.store.new_experiment(config, params, meta)
        assert exp.id == self.highest + 1
        self.highest = exp.id
        self.model[exp.id] = exp
        return exp.id

    @rule(
        exp_id=ids,
        status=st.sampled_from(list(Status)),
        metrics=st.dictionaries(st.sampled_from(["loss", "acc"]), st.floats(-1e6, 1e6)),
        durable=st.booleans(),
    )
    def save(self, exp_id: int, status: Status, metrics: dict[str, float], durable: bool) -> None:
        exp = self.model[exp_id].with_(status=status, metrics=metrics, attempt=self.highest)
        self.store.save(exp, durable=durable)
        self.model[exp_id] = exp
        self.damaged.discard(exp_id)

    @rule(exp_id=ids)
    def get(self, exp_id: int) -> None:
        if exp_id in self.damaged:
            with pytest.raises(StoreError, match="damaged"):
                self.store.get(exp_id)
        else:
            assert self.store.get(exp_id) == self.model[exp_id]

    @rule(exp_id=ids, junk=st.sampled_from([b"", b"{", b"\xff\x00", b"[]"]))
    def corrupt(self, exp_id: int, junk: bytes) -> None:
        # Simulates a record broken behind the store's back (a disk problem, a bad edit).
        self.store.paths(exp_id).record.write_bytes(junk)
        self.damaged.add(exp_id)

    @rule()
    def reopen(self) -> None:
        # A resumed driver: the id counter comes back from the directory, damaged ids included.
        self.store = open_group(self.store.path)

    @rule()
    def age_files(self) -> None:
        old = time.time() - 3600
        for exp_id in self.model:
            os.utime(self.store.paths(exp_id).record, (old, old))

    @invariant()
    def experiments_agree(self) -> None:
        visible = [self.model[i] for i in sorted(self.model) if i not in self.damaged]
        for s in (self.store, self.reader):
            assert s.experiments() == visible
            assert {d.exp_id for d in s.damage()} == self.damaged


StoreAgreesWithModel.TestCase.settings = settings(
    max_examples=25, stateful_step_count=15, deadline=None
)
test_store_agrees_with_a_dict_model = StoreAgreesWithModel.TestCase
