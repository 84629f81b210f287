"""Run experiments as subprocesses of the driver, at most ``capacity`` at a time.

Decisions, and why:

* **One process group (and session) per experiment.** The command runs as
  ``/bin/sh -c <command>`` with ``start_new_session=True``, so the shell leads its own group and
  a stop signals the whole tree (``os.killpg``). Being in another session also keeps the
  terminal's Ctrl-C away from the experiments: only the driver gets it, and the driver stops them
  in order (``stop_all``), recording each one.

* **Event-driven wait.** Each child gets a pidfd (``os.pidfd_open``), registered in an epoll
  selector; ``wait`` sleeps in ``select`` until a pidfd becomes readable (the child exited), the
  caller's timeout, or the next deadline of this executor (a time limit, a pending KILL), so a
  freed slot is reported within about a millisecond. Where pidfds are unavailable (Linux < 5.3,
  seccomp...), the children are polled every ``poll_interval`` seconds with a non-reaping
  ``waitid(WNOWAIT)`` per child. Never ``waitpid(-1)``: that would steal the exit status of
  other subprocesses of the driver.

* **Nothing of a group outlives its experiment.** When the main process (the shell) exits on its
  own, every process left in its group is killed with SIGKILL at once: the experiment's contract
  is that the command's end is the experiment's end, and a backgrounded grandchild must not keep
  a GPU, a port or a file busy for the next experiment in that slot. The group is killed *before*
  the shell is reaped: its zombie keeps the group id reserved, so the signal cannot reach a
  recycled group (``pid_max`` can be as small as 32768). A *stopped* or timed-out experiment is
  different: TERM went to the whole group, and ``sh`` usually dies at once while the real program
  (its child) is still saving a checkpoint, so its group gets the rest of the grace period and is
  only KILLed when that runs out; the end is reported when the group is empty (or KILLed).
  Either way a slot is only freed once its group is gone.

* **Child subreaper (default on).** ``prctl(PR_SET_CHILD_SUBREAPER)`` makes orphans of the
  experiments (a backgrounded grandchild whose shell exited) children of the driver instead of
  PID 1. The executor reaps them by group (``waitpid(-pgid)``, which only ever matches that
  experiment's group), so when ``wait`` reports an end, the group is really gone, not lingering
  as zombies that a lazy init (containers) reaps seconds later, and "the group is empty" can be
  tested with ``os.killpg(pgid, 0)``. This is a process-wide setting of the driver process (not
  inherited by the experiments); it is on from the first executor's construction to the last
  one's ``close()`` (and left alone if the process was a subreaper already). Pass
  ``subreaper=False`` to leave it alone entirely.

* A process that left the group on purpose (``setsid``, a daemon) is out of reach of all this; a
  container or cgroup is the tool for that. (While the subreaper is on, such a daemon becomes the
  driver's child when its parent exits; the executor does not reap it: it is not in the group.)

* ``stop_all`` blocks until every main process is reaped; after SIGKILL that is normally at once,
  but a process stuck in uninterruptible sleep (a hung NFS mount) would block it too.

Not thread-safe: one driver thread calls it. ``wait`` buffers each end before returning it, so a
``KeyboardInterrupt`` inside ``wait`` loses nothing: the next ``wait`` or ``stop_all`` returns it.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import math
import os
import selectors
import shlex
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from polytune.executors.base import ExecutorError, Finished, Handle, LaunchSpec

__all__ = ["LocalExecutor", "kill_process_group"]

_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37


@dataclass
class _Proc:
    """Bookkeeping of one running experiment (mutable, private)."""

    spec: LaunchSpec
    handle: Handle
    popen: subprocess.Popen[bytes]
    pidfd: int | None
    #: ``time.monotonic()`` when the time limit runs out, or ``None``.
    deadline: float | None
    #: "exited" until a stop or the time limit asks it to end.
    reason: str = "exited"
    #: ``time.monotonic()`` when the group gets SIGKILL (set once TERM was sent).
    kill_at: float | None = None
    killed: bool = False

    @property
    def pid(self) -> int:
        return self.handle.pid

    @property
    def pgid(self) -> int:
        return self.handle.pgid

    @property
    def terminating(self) -> bool:
        return self.reason != "exited"


class LocalExecutor:
    """Subprocesses on this machine, ``capacity`` slots. See the module docstring."""

    name = "local"
    #: Seconds between TERM and KILL when an experiment's time limit runs out.
    timeout_grace: float = 5.0
    #: Polling period where no event is available (no pidfd; a stopped group draining).
    poll_interval: float = 0.005
    #: How long to wait for SIGKILLed orphans to die before reporting an end anyway.
    orphan_wait: float = 1.0

    def __init__(self, capacity: int, *, subreaper: bool = True) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ExecutorError(f"executor capacity must be an integer >= 1 (got {capacity!r})")
        self._capacity = capacity
        self._procs: dict[int, _Proc] = {}
        self._done: list[Finished] = []
        self._selector = selectors.DefaultSelector()
        self._closed = False
        self._host = socket.gethostname()
        self._holds_subreaper = subreaper
        subreaper_on = _Subreaper.acquire() if subreaper else _is_child_subreaper()
        # Orphans are ours to reap when we are their subreaper, or PID 1 (a container's init).
        self._reaps_orphans = subreaper_on or os.getpid() == 1

    # ----- Executor protocol --------------------------------------------------------------
    def capacity(self) -> int:
        return self._capacity

    def free_slots(self) -> int:
        return self._capacity - len(self._procs)

    def running(self) -> list[int]:
        return sorted(self._procs)

    def start(self, spec: LaunchSpec) -> Handle:
        if self._closed:
            raise ExecutorError(f"experiment {spec.exp_id}: the executor is closed")
        if spec.exp_id in self._procs:
            raise ExecutorError(f"experiment {spec.exp_id} is already running")
        if self.free_slots() <= 0:
            raise ExecutorError(
                f"experiment {spec.exp_id}: no free slot "
                f"({self._capacity} running: {', '.join(map(str, sorted(self._procs)))})"
            )
        if not spec.cwd.is_dir():
            raise ExecutorError(
                f"experiment {spec.exp_id}: working directory {str(spec.cwd)!r} does not exist "
                "or is not a directory"
            )
        popen = self._spawn(spec)
        pid = popen.pid
        pidfd: int | None = None
        try:
            # start_new_session: the child called setsid() before exec, and Popen returns only
            # after the exec, so its group id is its pid.
            handle = Handle(
                exp_id=spec.exp_id,
                pid=pid,
                pgid=pid,
                host=self._host,
                boot_id=_boot_id(),
                start_ticks=_start_ticks(pid),
                started_at=time.time(),
            )
            # The child is not reaped until ``wait`` handles its end, so the pid (and pidfd)
            # cannot refer to another process even when the command has already exited.
            pidfd = _pidfd_open(pid)
            if pidfd is not None:
                self._selector.register(pidfd, selectors.EVENT_READ, spec.exp_id)
            deadline = None if spec.timeout is None else time.monotonic() + spec.timeout
            self._procs[spec.exp_id] = _Proc(spec, handle, popen, pidfd, deadline)
        except BaseException:
            # Never leave an untracked experiment behind.
            _killpg(pid, signal.SIGKILL)
            popen.wait()
            if pidfd is not None:
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.unregister(pidfd)
                os.close(pidfd)
            raise
        return handle

    def wait(self, timeout: float) -> list[Finished]:
        if self._closed:
            return []
        end = time.monotonic() + max(0.0, timeout)
        delay = 0.0  # first look at what is already due, without blocking
        while True:
            self._advance(self._select(delay))
            if self._done:
                done, self._done = self._done, []
                return done
            now = time.monotonic()
            if now >= end:
                return []
            delay = min(end, self._next_wakeup(now)) - now

    def stop(self, exp_id: int, grace: float) -> None:
        proc = self._procs.get(exp_id)
        if proc is not None:
            self._terminate(proc, "stopped", grace)

    def stop_all(self, grace: float) -> list[Finished]:
        for proc in list(self._procs.values()):
            self._terminate(proc, "stopped", grace)
        done: list[Finished] = []
        # ``wait`` drives the KILL escalation; SIGKILL cannot be ignored, so this ends.
        while self._procs or self._done:
            done.extend(self.wait(60.0))
        return done

    def close(self) -> None:
        """Kill whatever still runs (no grace: call ``stop_all`` first for a polite stop), reap
        it, release the selector and the subreaper flag. Idempotent."""
        if self._closed:
            return
        if self._procs:
            self.stop_all(0.0)
        self._closed = True
        self._selector.close()
        if self._holds_subreaper:
            self._holds_subreaper = False
            _Subreaper.release()

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ----- starting -----------------------------------------------------------------------
    def _spawn(self, spec: LaunchSpec) -> subprocess.Popen[bytes]:
        files: list[IO[bytes]] = []
        try:
            try:
                out = open(spec.stdout_path, "ab")  # noqa: SIM115 - closed below, after the fork
                files.append(out)
                err = out
                if spec.stderr_path != spec.stdout_path:
                    err = open(spec.stderr_path, "ab")  # noqa: SIM115
                    files.append(err)
            except OSError as exc:
                raise ExecutorError(
                    f"experiment {spec.exp_id}: cannot open log file "
                    f"{str(exc.filename)!r}: {exc.strerror or exc}"
                ) from exc
            try:
                return subprocess.Popen(
                    ["/bin/sh", "-c", _with_status(spec)],
                    cwd=spec.cwd,
                    env={**os.environ, **spec.env},
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                )
            except (OSError, ValueError, TypeError) as exc:
                raise ExecutorError(
                    f"experiment {spec.exp_id}: cannot start {spec.command!r} "
                    f"in {str(spec.cwd)!r}: {exc}"
                ) from exc
        finally:
            # The child has its own copies; the driver must not keep one fd per experiment.
            for f in files:
                f.close()

    # ----- the event loop -----------------------------------------------------------------
    def _select(self, delay: float) -> set[int]:
        events = self._selector.select(max(0.0, delay))
        return {key.data for key, _ in events}

    def _next_wakeup(self, now: float) -> float:
        """The next moment ``wait`` must act on its own: a time limit, a KILL, a poll."""
        t = math.inf
        for p in self._procs.values():
            if p.deadline is not None and not p.terminating:
                t = min(t, p.deadline)
            if p.kill_at is not None and not p.killed:
                t = min(t, p.kill_at)
            if p.pidfd is None or p.popen.returncode is not None:
                t = min(t, now + self.poll_interval)
        return t

    def _advance(self, ready: set[int]) -> None:
        """Act on everything due: time limits, KILLs, exited leaders, drained groups."""
        now = time.monotonic()
        for proc in list(self._procs.values()):
            if proc.deadline is not None and not proc.terminating and now >= proc.deadline:
                self._terminate(proc, "timeout", self.timeout_grace)
            if proc.kill_at is not None and not proc.killed and now >= proc.kill_at:
                self._kill(proc)
            if proc.popen.returncode is None:
                if (proc.spec.exp_id in ready or proc.pidfd is None) and _has_exited(proc.pid):
                    self._on_leader_exit(proc)
            elif proc.killed:
                # Its shell is reaped and the group got SIGKILL (the grace ran out).
                self._await_killed_group(proc.pgid)
                self._finish(proc)
            elif not self._group_alive(proc.pgid):
                # A stopped experiment whose shell died first: its group drained in the grace.
                self._finish(proc)

    def _on_leader_exit(self, proc: _Proc) -> None:
        if not proc.terminating or proc.killed:
            # The zombie still holds the group id: this signal reaches this group only.
            _killpg(proc.pgid, signal.SIGKILL)
            proc.killed = True
        proc.popen.wait()  # a zombie: returns at once
        self._release_pidfd(proc)
        if proc.killed:
            self._await_killed_group(proc.pgid)
            self._finish(proc)
        elif not self._group_alive(proc.pgid):
            self._finish(proc)
        # else: TERM was sent and the rest of the group still runs; it has until ``kill_at``.

    def _finish(self, proc: _Proc) -> None:
        rc = proc.popen.returncode
        assert rc is not None  # internal invariant: called only after the leader was reaped
        self._release_pidfd(proc)
        self._done.append(
            Finished(
                exp_id=proc.spec.exp_id,
                exit_code=rc if rc >= 0 else None,
                signal=-rc if rc < 0 else None,
                reason=proc.reason,
                ended_at=time.time(),
            )
        )
        del self._procs[proc.spec.exp_id]

    def _release_pidfd(self, proc: _Proc) -> None:
        if proc.pidfd is not None:
            fd, proc.pidfd = proc.pidfd, None
            self._selector.unregister(fd)
            os.close(fd)

    # ----- signals ------------------------------------------------------------------------
    def _terminate(self, proc: _Proc, reason: str, grace: float) -> None:
        now = time.monotonic()
        if not proc.terminating:
            if proc.popen.returncode is not None or _has_exited(proc.pid):
                return  # it ended on its own first: ``wait`` reports it as "exited"
            proc.reason = reason
            proc.kill_at = now + max(0.0, grace)
            _killpg(proc.pgid, signal.SIGTERM)
            # A stopped (SIGSTOP) process would only act on the TERM once continued.
            _killpg(proc.pgid, signal.SIGCONT)
        elif proc.kill_at is not None:
            proc.kill_at = min(proc.kill_at, now + max(0.0, grace))
        if grace <= 0:
            self._kill(proc)

    def _kill(self, proc: _Proc) -> None:
        # Safe while the leader is unreaped (its zombie holds the group id) and while the group
        # still has members (the id stays reserved); ``_advance`` checked the latter moments ago.
        _killpg(proc.pgid, signal.SIGKILL)
        proc.killed = True

    # ----- groups -------------------------------------------------------------------------
    def _group_alive(self, pgid: int) -> bool:
        """Whether any process of the (reaped) leader's group is left; reaps our orphans."""
        _reap_group(pgid)
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # a member that changed its user id: still there
        return True

    def _await_killed_group(self, pgid: int) -> None:
        """After SIGKILL, wait (briefly) until the group's orphans are dead and reaped, so the
        reported end means the group is gone. Only possible when they are our children;
        otherwise SIGKILL is certain and the end is reported at once."""
        if not self._reaps_orphans:
            return
        deadline = time.monotonic() + self.orphan_wait
        pause = 0.0002
        while self._group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(pause)
            pause = min(pause * 2, 0.01)


# ----------------------------------------------------------------------------------------
# module helpers
# ----------------------------------------------------------------------------------------


def _with_status(spec: LaunchSpec) -> str:
    """The shell script that runs ``spec.command``, preceded (when ``spec.status_path`` is set)
    by the lines that record its start and its exit status (see ``LaunchSpec.status_path``).

    The EXIT trap runs when the command ends on its own (also through ``exit`` or ``set -e``), not
    when a signal kills the shell, and it keeps the shell's exit status. With a trap set, ``sh``
    no longer ``exec``s a last simple command: the shell stays the group's leader and the command
    runs as its child (same group, so stopping still reaches the whole tree). The user's command
    starts on its own line: a syntax error in it cannot prevent the prelude.
    """
    if spec.status_path is None:
        return spec.command
    path = shlex.quote(str(spec.status_path))
    attempt = int(spec.attempt)
    return (
        f"printf 'started {attempt} %s\\n' \"$$\" > {path}\n"
        f"__polytune_exit() {{ printf 'exited {attempt} %s\\n' \"$1\" >> {path}; }}\n"
        "trap '__polytune_exit \"$?\"' EXIT\n"
        f"{spec.command}"
    )


def kill_process_group(pgid: int, grace: float) -> None:
    """TERM a process group, wait up to ``grace`` seconds for it to end, then KILL what is left.

    For the driver's resume path: the group of an experiment left running by a dead driver. The
    caller must have checked that the group is still that experiment's (boot id, start ticks),
    since a group id can be reused. No error if the group is already gone; ``ExecutorError`` if
    it belongs to another user.
    """
    if pgid <= 1 or pgid == os.getpgrp():
        raise ExecutorError(f"refusing to signal process group {pgid} (not an experiment's)")
    try:
        os.killpg(pgid, signal.SIGTERM)
        os.killpg(pgid, signal.SIGCONT)
    except ProcessLookupError:
        return
    except PermissionError as exc:
        raise ExecutorError(f"cannot stop process group {pgid}: {exc.strerror}") from exc
    deadline = time.monotonic() + max(0.0, grace)
    # No reaping here: the members are not our children (the driver that started them is
    # gone), and a caller's own ``Popen`` child must keep its exit status.
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        if not _live_members(pgid):
            return  # only zombies left, waiting for their parent (or init) to reap them
        time.sleep(0.01)
    _killpg(pgid, signal.SIGKILL)


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass  # already gone
    except PermissionError:
        pass  # only members that changed user id are left; nothing more can be done


def _has_exited(pid: int) -> bool:
    """Whether our child ``pid`` has exited, without reaping it (the zombie keeps the pid and
    the group id from being reused)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True  # reaped behind our back (SIGCHLD ignored); Popen reports it as 0
    return info is not None


def _reap_group(pgid: int) -> None:
    """Reap the exited children of ours in group ``pgid`` (orphans we adopted as subreaper).
    Called only for groups whose leader ``Popen`` already reaped."""
    while True:
        try:
            pid, _ = os.waitpid(-pgid, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _live_members(pgid: int) -> list[int]:
    """The processes of group ``pgid`` that are not zombies (a /proc scan: slow, rare paths)."""
    found: list[int] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for name in entries:
        if not name.isdigit():
            continue
        fields = _stat_fields(int(name))
        # After "comm)": state is field 3, pgrp field 5.
        if fields is not None and len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            found.append(int(name))
    return found


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (which may hold spaces)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rfind(b")") + 2 :].decode("ascii", "replace").split()


def _start_ticks(pid: int) -> int | None:
    fields = _stat_fields(pid)
    # starttime is field 22 of stat; the list starts at field 3.
    if fields is None or len(fields) < 20:
        return None
    try:
        return int(fields[19])
    except ValueError:
        return None


@functools.cache
def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _pidfd_open(pid: int) -> int | None:
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        return None
    try:
        fd: int = pidfd_open(pid)
    except OSError:
        return None  # old kernel, seccomp: fall back to polling
    return fd


def _prctl(option: int, arg: int) -> int:
    """``prctl(option, arg, 0, 0, 0)``; -1 where it is unavailable."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return -1
    prctl.restype = ctypes.c_int
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    return int(prctl(option, arg, 0, 0, 0))


def _is_child_subreaper() -> bool:
    state = ctypes.c_int(0)
    ok = _prctl(_PR_GET_CHILD_SUBREAPER, ctypes.addressof(state)) == 0
    return ok and state.value != 0


class _Subreaper:
    """The process-wide "child subreaper" flag, on while at least one executor wants it.

    Turned off again when the last such executor closes, unless the process was a subreaper
    before (then it is not ours to change): the side effect lasts only as long as an executor
    that needs it, and later code of the process (other tests) sees orphans go to init again.
    """

    users = 0
    ours = False  # we turned it on, so we turn it off

    @classmethod
    def acquire(cls) -> bool:
        if cls.users == 0 and not _is_child_subreaper():
            cls.ours = _prctl(_PR_SET_CHILD_SUBREAPER, 1) == 0
        cls.users += 1
        return _is_child_subreaper()

    @classmethod
    def release(cls) -> None:
        cls.users -= 1
        if cls.users == 0 and cls.ours:
            _prctl(_PR_SET_CHILD_SUBREAPER, 0)
            cls.ours = False
