"""Process facts, against real processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from polytune import procutil

# A /proc/PID/stat line whose comm holds spaces and parentheses; field 22 (starttime) is 4242.
_STAT = (
    b"1234 (a) b (c d)) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 4242 "
    b"12345678 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
)


def test_parse_stat_splits_after_the_last_parenthesis_of_comm() -> None:
    fields = procutil.parse_stat(_STAT)
    assert fields is not None
    assert fields[0] == "S"  # field 3
    assert int(fields[19]) == 4242  # field 22
    assert procutil.parse_stat(b"garbage without parens") is None
    assert procutil.parse_stat(b"12 (x)") is None


def test_boot_id_and_hostname() -> None:
    with open("/proc/sys/kernel/random/boot_id") as f:
        assert procutil.boot_id() == f.read().strip()
    assert procutil.hostname() == socket.gethostname()


def test_own_process_is_alive_with_all_facts() -> None:
    pid = os.getpid()
    ticks = procutil.process_start_ticks(pid)
    assert isinstance(ticks, int) and ticks > 0
    assert procutil.process_state(pid) == "R"
    assert procutil.is_alive(pid, procutil.hostname(), procutil.boot_id(), ticks) is True
    assert procutil.is_alive(pid) is True


def test_is_alive_rejects_reused_pids_other_boots_and_bad_pids() -> None:
    pid = os.getpid()
    ticks = procutil.process_start_ticks(pid)
    assert ticks is not None
    assert procutil.is_alive(pid, start_ticks=ticks + 1) is False  # pid reused by another process
    assert procutil.is_alive(pid, boot_id="another-boot") is False
    assert procutil.is_alive(pid, host="some-other-host.example") is None  # cannot know
    assert procutil.is_alive(None) is False
    assert procutil.is_alive(0) is False
    assert procutil.is_alive(-5) is False


def test_dead_and_zombie_children_are_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    ticks = procutil.process_start_ticks(child.pid)
    deadline = time.monotonic() + 10
    while procutil.process_state(child.pid) != "Z" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert procutil.process_state(child.pid) == "Z"
    assert procutil.is_alive(child.pid, start_ticks=ticks) is False  # a zombie is dead
    child.wait()
    assert procutil.is_alive(child.pid) is False
    assert procutil.process_start_ticks(child.pid) is None


@pytest.mark.slow
def test_start_ticks_survive_a_comm_with_spaces_and_parentheses() -> None:
    script = (
        "import sys\n"
        "sys.stdin.readline()\n"
        "open('/proc/self/comm', 'w').write('x) (y z) (')\n"
        "print('renamed', flush=True)\n"
        "sys.stdin.readline()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        before = procutil.process_start_ticks(child.pid)
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline() == "renamed\n"
        with open(f"/proc/{child.pid}/comm") as f:
            assert f.read().strip() == "x) (y z) ("
        assert before is not None
        assert procutil.process_start_ticks(child.pid) == before
        assert procutil.process_state(child.pid) in ("S", "R")
        assert procutil.is_alive(child.pid, start_ticks=before) is True
    finally:
        child.stdin.close()
        child.stdout.close()
        child.wait(10)


@pytest.mark.slow
def test_kill_group_stops_the_whole_tree() -> None:
    # A shell that starts a grandchild: both live in the new process group.
    child = subprocess.Popen(["/bin/sh", "-c", "sleep 30 & sleep 30"], start_new_session=True)
    try:
        pgid = child.pid
        assert procutil.group_alive(pgid) is True
        assert procutil.kill_group(pgid, signal.SIGKILL) is True
        child.wait(10)
        deadline = time.monotonic() + 10
        while procutil.group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.01)
        # Dead at once, even while the orphaned grandchild waits (a zombie) for init to reap it.
        assert time.monotonic() < deadline - 9
        assert procutil.group_alive(pgid) is False
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.01)
        assert procutil.kill_group(pgid, signal.SIGTERM) is False
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


@pytest.mark.parametrize("pgid", [0, 1, -3])
def test_refuses_to_signal_invalid_groups(pgid: int) -> None:
    with pytest.raises(ValueError, match="refusing"):
        procutil.kill_group(pgid, signal.SIGTERM)
    with pytest.raises(ValueError, match="refusing"):
        procutil.group_alive(pgid)


def test_refuses_to_signal_its_own_group() -> None:
    with pytest.raises(ValueError, match="own group"):
        procutil.kill_group(os.getpgrp(), signal.SIGTERM)
