"""LocalExecutor with real subprocesses: slots, waking up, exit statuses, time limits, stops and
the process-group guarantees (no process of an experiment outlives it)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import polytune.executors.local as local_mod
from polytune.executors import (
    Executor,
    ExecutorError,
    Finished,
    LaunchSpec,
    LocalExecutor,
    kill_process_group,
)

# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------


def make_spec(
    tmp_path: Path,
    exp_id: int,
    command: str,
    *,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
    cwd: Path | None = None,
) -> LaunchSpec:
    return LaunchSpec(
        exp_id=exp_id,
        command=command,
        cwd=cwd or tmp_path,
        env=env or {},
        stdout_path=tmp_path / f"{exp_id}.out",
        stderr_path=tmp_path / f"{exp_id}.err",
        timeout=timeout,
    )


def wait_all(ex: LocalExecutor, n: int, timeout: float = 10.0) -> dict[int, Finished]:
    """Collect ``n`` ends (each exactly once) or fail after ``timeout`` seconds."""
    done: dict[int, Finished] = {}
    deadline = time.monotonic() + timeout
    while len(done) < n:
        left = deadline - time.monotonic()
        assert left > 0, f"only {sorted(done)} of {n} experiments ended in {timeout} s"
        for fin in ex.wait(left):
            assert fin.exp_id not in done, f"experiment {fin.exp_id} reported twice"
            done[fin.exp_id] = fin
    return done


def wait_for_text(path: Path, timeout: float = 10.0) -> str:
    """The content of a file that a command writes with ``echo ... > path`` (a whole line)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            text = path.read_text()
        except FileNotFoundError:
            text = ""
        if text.endswith("\n"):
            return text
        time.sleep(0.005)
    raise AssertionError(f"{path} was not written within {timeout} s")


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def pid_gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


def leader_exited(pid: int, timeout: float = 5.0) -> None:
    """Block until our child ``pid`` exited, without reaping it."""
    deadline = time.monotonic() + timeout
    while os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        assert time.monotonic() < deadline
        time.sleep(0.002)


@pytest.fixture
def ex() -> Iterator[LocalExecutor]:
    executor = LocalExecutor(2)
    yield executor
    executor.close()


# ----------------------------------------------------------------------------------------
# interface and bookkeeping
# ----------------------------------------------------------------------------------------


def test_satisfies_the_executor_protocol(ex: LocalExecutor) -> None:
    executor: Executor = ex
    assert isinstance(executor, Executor)
    assert ex.name == "local"
    assert ex.capacity() == 2 and ex.free_slots() == 2 and ex.running() == []


@pytest.mark.parametrize("capacity", [0, -1, 1.5, True])
def test_capacity_must_be_a_positive_integer(capacity: object) -> None:
    with pytest.raises(ExecutorError, match="capacity"):
        LocalExecutor(capacity)  # type: ignore[arg-type]


def test_handle_describes_the_process(ex: LocalExecutor, tmp_path: Path) -> None:
    before = time.time()
    h = ex.start(make_spec(tmp_path, 7, "sleep 30"))
    try:
        assert h.exp_id == 7
        assert h.pgid == h.pid == os.getpgid(h.pid) == os.getsid(h.pid)
        assert h.host == socket.gethostname()
        assert h.boot_id == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{h.pid}/stat").read_text()
        assert h.start_ticks == int(stat[stat.rfind(")") + 2 :].split()[19])
        assert before <= h.started_at <= time.time()
        assert ex.running() == [7] and ex.free_slots() == 1
    finally:
        ex.stop(7, 0)
        wait_all(ex, 1)
    assert ex.running() == [] and ex.free_slots() == 2


def test_start_errors(ex: LocalExecutor, tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ExecutorError, match=r"experiment 1: working directory .*nope"):
        ex.start(make_spec(tmp_path, 1, "true", cwd=missing))
    bad_log = LaunchSpec(1, "true", tmp_path, {}, missing / "o.log", tmp_path / "e.log")
    with pytest.raises(ExecutorError, match=r"experiment 1: cannot open log file .*o\.log"):
        ex.start(bad_log)
    assert ex.running() == [] and ex.free_slots() == 2

    ex.start(make_spec(tmp_path, 1, "sleep 30"))
    with pytest.raises(ExecutorError, match="experiment 1 is already running"):
        ex.start(make_spec(tmp_path, 1, "sleep 30"))
    ex.start(make_spec(tmp_path, 2, "sleep 30"))
    with pytest.raises(ExecutorError, match=r"experiment 3: no free slot \(2 running: 1, 2\)"):
        ex.start(make_spec(tmp_path, 3, "true"))
    assert ex.running() == [1, 2]


def test_close_kills_what_runs_and_refuses_new_work(tmp_path: Path) -> None:
    ex = LocalExecutor(1)
    h = ex.start(make_spec(tmp_path, 1, "sleep 100 & sleep 100; wait"))
    ex.close()
    assert group_gone(h.pgid)
    assert ex.running() == []
    ex.close()  # idempotent
    assert ex.wait(0.0) == []
    with pytest.raises(ExecutorError, match="closed"):
        ex.start(make_spec(tmp_path, 2, "true"))


def test_context_manager_closes(tmp_path: Path) -> None:
    with LocalExecutor(1) as ex:
        h = ex.start(make_spec(tmp_path, 1, "sleep 30"))
    assert group_gone(h.pgid)


# ----------------------------------------------------------------------------------------
# the command's contract: env, cwd, logs, exit statuses
# ----------------------------------------------------------------------------------------


def test_env_cwd_and_logs(
    ex: LocalExecutor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PT_INHERITED", "from-driver")
    monkeypatch.setenv("PT_OVERRIDDEN", "old")
    work = tmp_path / "work dir"
    work.mkdir()
    env = {"PT_PARAM": "a b 'c'", "PT_OVERRIDDEN": "new"}
    cmd = 'echo "$PT_PARAM|$PT_INHERITED|$PT_OVERRIDDEN"; pwd; echo oops >&2; read x; echo "in=$x"'
    ex.start(make_spec(tmp_path, 1, cmd, env=env, cwd=work))
    (fin,) = wait_all(ex, 1).values()
    assert fin.exit_code == 0 and fin.reason == "exited"
    out = (tmp_path / "1.out").read_text().splitlines()
    assert out == ["a b 'c'|from-driver|new", str(work), "in="]  # stdin is /dev/null
    assert (tmp_path / "1.err").read_text() == "oops\n"


def test_logs_are_appended_and_may_share_a_file(ex: LocalExecutor, tmp_path: Path) -> None:
    log = tmp_path / "both.log"
    for attempt in (1, 2):
        spec = LaunchSpec(5, f"echo out{attempt}; echo err{attempt} >&2", tmp_path, {}, log, log)
        ex.start(spec)
        wait_all(ex, 1)
    assert log.read_text() == "out1\nerr1\nout2\nerr2\n"


def test_exit_codes_and_signals(tmp_path: Path) -> None:
    cases = {
        1: ("true", 0, None),
        2: ("exit 3", 3, None),
        3: ("kill -TERM $$", None, signal.SIGTERM),
        4: ("kill -KILL $$", None, signal.SIGKILL),
    }
    with LocalExecutor(len(cases)) as ex:
        for exp_id, (cmd, _, _) in cases.items():
            ex.start(make_spec(tmp_path, exp_id, cmd))
        done = wait_all(ex, len(cases))
    for exp_id, (_, code, sig) in cases.items():
        assert (done[exp_id].exit_code, done[exp_id].signal) == (code, sig), cases[exp_id]
        assert done[exp_id].reason == "exited"


def test_failing_command_is_data_not_an_exception(ex: LocalExecutor, tmp_path: Path) -> None:
    ex.start(make_spec(tmp_path, 1, "no-such-program-polytune"))
    (fin,) = wait_all(ex, 1).values()
    assert fin.exit_code == 127 and fin.reason == "exited"
    assert "no-such-program-polytune" in (tmp_path / "1.err").read_text()


# ----------------------------------------------------------------------------------------
# waiting: event-driven, slots refilled
# ----------------------------------------------------------------------------------------


def test_wait_returns_as_soon_as_a_child_ends(ex: LocalExecutor, tmp_path: Path) -> None:
    ex.start(make_spec(tmp_path, 1, "true"))
    t0 = time.monotonic()
    done = ex.wait(30)
    assert [f.exp_id for f in done] == [1]
    assert time.monotonic() - t0 < 5  # well before the 30 s timeout

    ex.start(make_spec(tmp_path, 2, "sleep 30"))
    ex.start(make_spec(tmp_path, 3, "sleep 0.2"))
    t0 = time.monotonic()
    done = ex.wait(30)
    elapsed = time.monotonic() - t0
    assert [f.exp_id for f in done] == [3]
    assert 0.15 < elapsed < 5
    assert ex.running() == [2]


def test_wait_times_out_with_an_empty_list(ex: LocalExecutor, tmp_path: Path) -> None:
    t0 = time.monotonic()
    assert ex.wait(0.05) == []  # nothing running: it sleeps, it does not spin
    assert time.monotonic() - t0 >= 0.045
    ex.start(make_spec(tmp_path, 1, "sleep 30"))
    t0 = time.monotonic()
    assert ex.wait(0.1) == []
    assert time.monotonic() - t0 >= 0.095


def test_wait_zero_reports_an_end_that_already_happened(ex: LocalExecutor, tmp_path: Path) -> None:
    h = ex.start(make_spec(tmp_path, 1, "exit 2"))
    leader_exited(h.pid)
    (fin,) = ex.wait(0)
    assert fin.exp_id == 1 and fin.exit_code == 2


def test_concurrency_is_never_exceeded(ex: LocalExecutor, tmp_path: Path) -> None:
    """Capacity 2, six jobs; every job stamps its start and end, and the stamps may never show
    three jobs at once. The gap between an end and the next start is recorded (not asserted:
    shared machines are noisy; the event-driven wake-up is asserted above)."""
    stamp = 'date +%s.%N > "{d}/{i}.start"; sleep 0.15; date +%s.%N > "{d}/{i}.end"'
    queue = list(range(1, 7))
    done: dict[int, Finished] = {}
    while queue or ex.running():
        while queue and ex.free_slots() > 0:
            i = queue.pop(0)
            ex.start(make_spec(tmp_path, i, stamp.format(d=tmp_path, i=i)))
            assert len(ex.running()) <= 2
        for fin in ex.wait(10):
            done[fin.exp_id] = fin
    assert sorted(done) == list(range(1, 7))
    assert all(f.exit_code == 0 for f in done.values())

    spans = [
        (float((tmp_path / f"{i}.start").read_text()), float((tmp_path / f"{i}.end").read_text()))
        for i in range(1, 7)
    ]
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    level = peak = 0
    for _, delta in events:
        level += delta
        peak = max(peak, level)
    assert peak == 2
    starts = sorted(s for s, _ in spans)[2:]  # the jobs that waited for a slot
    ends = sorted(e for _, e in spans)
    gaps = [s - e for s, e in zip(starts, ends, strict=False)]
    assert all(g > 0 for g in gaps)
    print(f"end→next start gap (incl. sh + date startup): median {statistics.median(gaps):.4f} s")


def test_many_short_jobs_each_end_reported_once(ex: LocalExecutor, tmp_path: Path) -> None:
    n, started = 40, 0
    done: dict[int, Finished] = {}
    while len(done) < n:
        while started < n and ex.free_slots() > 0:
            started += 1
            ex.start(make_spec(tmp_path, started, "true"))
        for fin in ex.wait(10):
            assert fin.exp_id not in done
            done[fin.exp_id] = fin
    assert all(f.exit_code == 0 and f.reason == "exited" for f in done.values())
    assert ex.free_slots() == 2


def test_polling_fallback_without_pidfd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_mod, "_pidfd_open", lambda pid: None)
    with LocalExecutor(2) as ex:
        ex.start(make_spec(tmp_path, 1, "sleep 0.1"))
        ex.start(make_spec(tmp_path, 2, "sleep 30", timeout=0.2))
        t0 = time.monotonic()
        assert [f.exp_id for f in ex.wait(30)] == [1]
        assert time.monotonic() - t0 < 5
        (fin,) = ex.wait(30)
        assert fin.exp_id == 2 and fin.reason == "timeout"


# ----------------------------------------------------------------------------------------
# time limits
# ----------------------------------------------------------------------------------------


def test_timeout_terminates(ex: LocalExecutor, tmp_path: Path) -> None:
    h = ex.start(make_spec(tmp_path, 1, "sleep 30", timeout=0.5))
    t0 = time.monotonic()
    (fin,) = wait_all(ex, 1).values()
    assert 0.4 < time.monotonic() - t0 < 5
    assert (fin.reason, fin.exit_code, fin.signal) == ("timeout", None, signal.SIGTERM)
    assert group_gone(h.pgid)


def test_timeout_kills_a_command_that_ignores_term(ex: LocalExecutor, tmp_path: Path) -> None:
    ex.timeout_grace = 0.3
    h = ex.start(make_spec(tmp_path, 1, "trap '' TERM; sleep 30", timeout=0.3))
    t0 = time.monotonic()
    (fin,) = wait_all(ex, 1).values()
    assert 0.5 < time.monotonic() - t0 < 5
    assert (fin.reason, fin.signal) == ("timeout", signal.SIGKILL)
    assert group_gone(h.pgid)


# ----------------------------------------------------------------------------------------
# stopping and the process-group guarantees
# ----------------------------------------------------------------------------------------


def test_stop_kills_the_whole_tree(ex: LocalExecutor, tmp_path: Path) -> None:
    cmd = "sleep 100 & echo $! > bg.pid; sleep 100; wait"
    h = ex.start(make_spec(tmp_path, 1, cmd))
    bg = int(wait_for_text(tmp_path / "bg.pid"))
    ex.stop(1, grace=5)  # does not block
    (fin,) = wait_all(ex, 1).values()
    assert fin.reason == "stopped" and fin.signal == signal.SIGTERM
    with pytest.raises(ProcessLookupError):
        os.killpg(h.pgid, 0)
    assert pid_gone(bg)


def test_stop_kills_after_the_grace(ex: LocalExecutor, tmp_path: Path) -> None:
    h = ex.start(make_spec(tmp_path, 1, "trap '' TERM; sleep 30 & echo ready > ready.txt; wait"))
    wait_for_text(tmp_path / "ready.txt")  # the trap is set
    t0 = time.monotonic()
    ex.stop(1, grace=0.3)
    (fin,) = wait_all(ex, 1).values()
    assert 0.25 < time.monotonic() - t0 < 5
    assert (fin.reason, fin.signal) == ("stopped", signal.SIGKILL)
    assert group_gone(h.pgid)


def test_stop_gives_the_real_program_its_grace(ex: LocalExecutor, tmp_path: Path) -> None:
    """``sh`` dies of TERM at once, its child (the training script) traps TERM to save a
    checkpoint: the group is not KILLed when the shell dies but when the grace runs out (here the
    script finishes first)."""
    (tmp_path / "train.py").write_text(
        "import signal, sys, time\n"
        "def on_term(*_):\n"
        "    time.sleep(0.3)\n"
        "    open('saved.txt', 'w').write('saved\\n')\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, on_term)\n"
        "open('ready.txt', 'w').write('ready\\n')\n"
        "time.sleep(30)\n"
    )
    h = ex.start(make_spec(tmp_path, 1, f'"{sys.executable}" train.py; echo "exit $?"'))
    wait_for_text(tmp_path / "ready.txt")  # the handler is installed
    t0 = time.monotonic()
    ex.stop(1, grace=5)
    (fin,) = wait_all(ex, 1).values()
    elapsed = time.monotonic() - t0
    assert fin.reason == "stopped"
    assert (tmp_path / "saved.txt").read_text() == "saved\n"
    assert 0.25 < elapsed < 4
    assert group_gone(h.pgid)


def test_backgrounded_grandchild_does_not_outlive_a_normal_exit(
    ex: LocalExecutor, tmp_path: Path
) -> None:
    h = ex.start(make_spec(tmp_path, 1, "sleep 100 & echo $! > bg.pid; exit 0"))
    (fin,) = wait_all(ex, 1).values()
    assert (fin.reason, fin.exit_code) == ("exited", 0)
    bg = int((tmp_path / "bg.pid").read_text())
    assert group_gone(h.pgid)
    assert pid_gone(bg)


def test_stop_is_a_no_op_for_unknown_or_ended_experiments(
    ex: LocalExecutor, tmp_path: Path
) -> None:
    ex.stop(99, grace=1)
    h = ex.start(make_spec(tmp_path, 1, "exit 0"))
    leader_exited(h.pid)
    ex.stop(1, grace=1)  # it already ended on its own: reported as such
    (fin,) = wait_all(ex, 1).values()
    assert (fin.reason, fin.exit_code) == ("exited", 0)


def test_stop_all_blocks_until_everything_is_reaped(tmp_path: Path) -> None:
    with LocalExecutor(3) as ex:
        handles = [
            ex.start(make_spec(tmp_path, 1, "sleep 30")),
            ex.start(make_spec(tmp_path, 2, "trap '' TERM; echo r > r2.txt; sleep 30 & sleep 30")),
            ex.start(make_spec(tmp_path, 3, "exit 5")),
        ]
        leader_exited(handles[2].pid)
        wait_for_text(tmp_path / "r2.txt")  # the trap is set
        t0 = time.monotonic()
        done = {f.exp_id: f for f in ex.stop_all(grace=0.3)}
        elapsed = time.monotonic() - t0
        assert sorted(done) == [1, 2, 3]
        assert 0.25 < elapsed < 5
        assert (done[1].reason, done[1].signal) == ("stopped", signal.SIGTERM)
        assert (done[2].reason, done[2].signal) == ("stopped", signal.SIGKILL)
        assert (done[3].reason, done[3].exit_code) == ("exited", 5)
        assert ex.running() == [] and ex.free_slots() == 3
        assert all(group_gone(h.pgid) for h in handles)
        assert ex.wait(0) == []  # nothing is reported twice


def test_stop_all_also_returns_ends_that_wait_had_not_returned(
    ex: LocalExecutor, tmp_path: Path
) -> None:
    ex.start(make_spec(tmp_path, 1, "exit 1"))
    ex.start(make_spec(tmp_path, 2, "sleep 30"))
    time.sleep(0.1)
    done = {f.exp_id: f for f in ex.stop_all(grace=2)}
    assert sorted(done) == [1, 2]
    assert done[1].exit_code == 1 and done[2].reason == "stopped"


# ----------------------------------------------------------------------------------------
# kill_process_group (the driver's resume path)
# ----------------------------------------------------------------------------------------


def test_kill_process_group_terms_then_kills(tmp_path: Path) -> None:
    polite = subprocess.Popen(["/bin/sh", "-c", "sleep 30"], start_new_session=True)
    stubborn = subprocess.Popen(
        ["/bin/sh", "-c", "trap '' TERM; echo ready; sleep 30"],
        start_new_session=True,
        stdout=subprocess.PIPE,
    )
    assert stubborn.stdout is not None
    stubborn.stdout.readline()
    t0 = time.monotonic()
    kill_process_group(polite.pid, grace=5)
    assert time.monotonic() - t0 < 2  # no need to sit out the grace
    assert polite.wait(5) == -signal.SIGTERM
    kill_process_group(stubborn.pid, grace=0.2)
    assert stubborn.wait(5) == -signal.SIGKILL
    stubborn.stdout.close()
    kill_process_group(stubborn.pid, grace=1)  # gone: no error
    with pytest.raises(ExecutorError):
        kill_process_group(1, grace=0)


def test_group_is_killed_even_when_orphans_are_not_ours(ex: LocalExecutor, tmp_path: Path) -> None:
    """Without the subreaper, a killed grandchild is init's zombie to reap: the executor does not
    wait for that, but the grandchild is dead (SIGKILL) all the same."""
    ex._reaps_orphans = False
    ex.start(make_spec(tmp_path, 1, "sleep 100 & echo $! > bg.pid; exit 0"))
    (fin,) = wait_all(ex, 1).values()
    assert (fin.reason, fin.exit_code) == ("exited", 0)
    bg = int((tmp_path / "bg.pid").read_text())
    deadline = time.monotonic() + 5
    while not pid_gone(bg):
        try:
            stat = Path(f"/proc/{bg}/stat").read_text()
        except FileNotFoundError:
            break
        if stat[stat.rfind(")") + 2] == "Z":
            break
        assert time.monotonic() < deadline, "the grandchild survived"
        time.sleep(0.005)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(bg, 0)  # this test process may be its subreaper: do not leave a zombie


def test_subreaper_flag_lasts_only_while_an_executor_needs_it() -> None:
    before = local_mod._is_child_subreaper()
    a, b = LocalExecutor(1), LocalExecutor(1)
    assert local_mod._is_child_subreaper()
    a.close()
    assert local_mod._is_child_subreaper()  # b still needs it
    b.close()
    assert local_mod._is_child_subreaper() == before
    with LocalExecutor(1, subreaper=False):
        assert local_mod._is_child_subreaper() == before
