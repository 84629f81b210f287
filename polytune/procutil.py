"""Process facts used by the store (who holds a group's lock) and the executors (is an
experiment's process still there, stop its whole tree).

A pid alone does not name a process: pids are reused, a machine reboots, a group directory can be
shared between hosts. So a process is identified by ``(host, boot_id, pid, start_ticks)``, where
``start_ticks`` is the kernel's start time of the process in clock ticks since boot (field 22 of
``/proc/PID/stat``) — a reused pid has a different one. Linux-first: where ``/proc`` is missing
the checks degrade to what ``kill(pid, 0)`` can tell.
"""

from __future__ import annotations

import functools
import os
import signal
import socket

__all__ = [
    "boot_id",
    "group_alive",
    "hostname",
    "is_alive",
    "kill_group",
    "parse_stat",
    "process_start_ticks",
    "process_state",
]

_BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"


@functools.cache
def boot_id() -> str:
    """This boot's random id (changes at every reboot); ``""`` where the kernel offers none."""
    try:
        with open(_BOOT_ID_FILE, encoding="ascii") as f:
            return f.read().strip()
    except (OSError, ValueError):
        return ""


_current_boot_id = boot_id  # ``is_alive`` has a parameter of that name


def hostname() -> str:
    return socket.gethostname()


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after ``comm``, i.e. starting with field 3 (state).

    ``comm`` (field 2) is in parentheses and may itself contain spaces and parentheses, so the
    split happens after its *last* closing parenthesis.
    """
    if pid <= 0:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return parse_stat(data)


def parse_stat(data: bytes) -> list[str] | None:
    """Pure part of :func:`_stat_fields`: the fields of a ``/proc/PID/stat`` line after comm."""
    end = data.rfind(b")")
    if end < 0:
        return None
    return data[end + 1 :].decode("ascii", "replace").split() or None


def process_start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (``/proc/PID/stat`` field 22), or None
    when the process does not exist or ``/proc`` is unavailable."""
    fields = _stat_fields(pid)
    # Field 22 is index 22 - 3 = 19 of the fields that follow comm.
    if fields is None or len(fields) < 20:
        return None
    try:
        return int(fields[19])
    except ValueError:
        return None


def process_state(pid: int) -> str | None:
    """The one-letter state of ``pid`` (``R``, ``S``, ``Z`` for a zombie...), or None."""
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def is_alive(
    pid: int | None,
    host: str | None = None,
    boot_id: str | None = None,
    start_ticks: int | None = None,
) -> bool | None:
    """Whether the process identified by these facts still runs.

    Returns None ("cannot know") when ``host`` names another machine. False when the machine has
    rebooted since (``boot_id`` differs), the pid is gone or a zombie, or the pid now belongs to
    another process (``start_ticks`` differs). Facts given as None are not checked.
    """
    if pid is None or pid <= 0:
        return False
    if host and host != hostname():
        return None
    if boot_id:
        current_boot = _current_boot_id()
        if current_boot and current_boot != boot_id:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    fields = _stat_fields(pid)
    if fields is None:
        # No /proc (or the process vanished in between): trust kill(pid, 0) unless /proc exists.
        return not os.path.isdir("/proc/self")
    if fields[0] in ("Z", "X"):
        return False
    if start_ticks is not None and len(fields) >= 20:
        try:
            if int(fields[19]) != start_ticks:
                return False
        except ValueError:
            pass
    return True


def _check_pgid(pgid: int) -> None:
    # killpg(0, ...) signals our own group and killpg(1, ...) is init's: a bug upstream must never
    # turn into "kill everything", so refuse those and our own process group outright.
    if pgid <= 1 or pgid == os.getpgrp():
        raise ValueError(f"refusing to signal process group {pgid} (own group or invalid)")


def kill_group(pgid: int, sig: int = signal.SIGTERM) -> bool:
    """Send ``sig`` to every process of group ``pgid``; False when the group no longer exists."""
    _check_pgid(pgid)
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` still runs.

    Zombies do not count: after a kill, orphaned members stay zombies until init reaps them,
    which some container inits do only every few seconds. ``kill(0)`` answers first (cheap); only
    when it says yes is ``/proc`` scanned for a member that is not a zombie.
    """
    _check_pgid(pgid)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        names = os.listdir("/proc")
    except OSError:
        return True  # no /proc: trust kill(0)
    for name in names:
        if not name.isdigit():
            continue
        fields = _stat_fields(int(name))
        # Field 5 (pgrp) is index 2 of the fields after comm; field 3 (state) is index 0.
        if fields and len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False
