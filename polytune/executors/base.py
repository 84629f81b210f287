"""The executor interface: how the driver starts, watches and stops experiments.

An executor owns a fixed number of slots (``capacity``). The driver fills free slots with
``start``, blocks in ``wait`` until at least one experiment ended (or its own tick is due), and
records each ``Finished``. ``stop`` asks one experiment to end (TERM now, KILL after a grace);
``stop_all`` ends everything and blocks until it is over (Ctrl-C, ``polytune stop``).

Plain frozen dataclasses cross this boundary, so a fake executor for the driver's tests is a few
lines and a real one can be swapped in without touching the loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from polytune.errors import PolytuneError

__all__ = [
    "REASONS",
    "Executor",
    "ExecutorError",
    "Finished",
    "Handle",
    "LaunchSpec",
    "Reattachable",
]

#: The values of ``Finished.reason``: the command ended on its own ("exited", whatever its exit
#: code), its time limit ran out ("timeout"), ``stop``/``stop_all`` ended it ("stopped"), or the
#: machine it ran on went away mid-run ("lost": a Dask worker died; the command was killed).
REASONS = ("exited", "timeout", "stopped", "lost")


class ExecutorError(PolytuneError):
    """An experiment cannot be started or managed (no free slot, missing working directory...)."""


@dataclass(frozen=True)
class LaunchSpec:
    """Everything needed to start one experiment."""

    exp_id: int
    #: A shell command string, run with ``/bin/sh -c`` (never split into argv by polytune).
    command: str
    cwd: Path
    #: Variables *added* to ``os.environ`` for this experiment (they win over inherited ones).
    env: Mapping[str, str] = field(repr=False)
    #: Opened in append mode, so a retried attempt does not erase an earlier one's output.
    stdout_path: Path
    stderr_path: Path
    #: Seconds from the start; ``None`` = no limit.
    timeout: float | None = None
    #: Where the command's shell records ``started <attempt> <pid>`` when it starts and
    #: ``exited <attempt> <code>`` when the command ends on its own (an EXIT trap; nothing when
    #: a signal kills the shell). The experiment's own testimony, written without the driver:
    #: a driver that dies while the command runs learns on resume whether it finished, and
    #: whether a launch it never recorded happened. ``None``: no such file.
    status_path: Path | None = None
    #: The attempt number written into ``status_path``.
    attempt: int = 1


@dataclass(frozen=True)
class Handle:
    """The facts about a started experiment that the store records (and resume checks)."""

    exp_id: int
    pid: int
    #: The experiment's process group: stopping it signals the whole tree.
    pgid: int
    host: str
    #: ``/proc/sys/kernel/random/boot_id``: a pid only means something within one boot.
    boot_id: str
    #: Field 22 of ``/proc/<pid>/stat`` (clock ticks after boot): tells a pid from its reuse.
    start_ticks: int | None
    #: ``time.time()`` right after the process started.
    started_at: float
    #: Executor-specific facts (plain JSON) recorded in ``experiment.executor`` next to the
    #: name and pgid: the Dask task key, the GPU ids... ``reattach`` gets them back.
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Finished:
    """One experiment's end, as returned by ``wait`` and ``stop_all``."""

    exp_id: int
    #: The main process's exit status; ``None`` when a signal killed it.
    exit_code: int | None
    #: The signal that killed the main process, or ``None``.
    signal: int | None
    #: One of ``REASONS``.
    reason: str
    #: ``time.time()`` when the executor saw the end.
    ended_at: float


@runtime_checkable
class Executor(Protocol):
    """What the driver needs from an executor. Not thread-safe: one driver thread calls it."""

    name: str

    def capacity(self) -> int:
        """The maximum number of experiments running at once."""
        ...

    def free_slots(self) -> int:
        """``capacity()`` minus the experiments started and not yet returned as finished."""
        ...

    def start(self, spec: LaunchSpec) -> Handle:
        """Start one experiment in a free slot; ``ExecutorError`` if there is none or the
        command cannot be started."""
        ...

    def wait(self, timeout: float) -> list[Finished]:
        """Block up to ``timeout`` seconds; return as soon as at least one experiment ended
        (event-driven, not a fixed sleep). ``[]`` when the time ran out first."""
        ...

    def stop(self, exp_id: int, grace: float) -> None:
        """TERM the experiment's whole process group now, KILL it after ``grace`` seconds if it
        is still alive. Does not block: the end arrives through ``wait`` with reason
        "stopped". A no-op for an experiment that is not running."""
        ...

    def stop_all(self, grace: float) -> list[Finished]:
        """Stop every running experiment (TERM all at once, KILL after ``grace``) and block until
        all have ended; return their ``Finished`` (and any not yet returned by ``wait``)."""
        ...

    def running(self) -> list[int]:
        """The ids of the experiments started and not yet returned as finished, sorted."""
        ...

    def close(self) -> None:
        """Release the executor's resources; experiments still running are killed."""
        ...


@runtime_checkable
class Reattachable(Protocol):
    """An optional method of executors whose experiments can outlive the driver (Dask).

    ``polytune resume`` calls it for each experiment a dead driver left running whose recorded
    ``experiment.executor["name"]`` is this executor's name, before it would kill the experiment
    and mark it lost. Executors without it (the local one) do not reattach: the experiment is
    settled as before (killed if still running, then lost or recorded from its status file).
    """

    def reattach(self, exp_id: int, attempt: int, info: Mapping[str, Any]) -> Handle | None:
        """Take attempt ``attempt`` of experiment ``exp_id`` back if it is still running (or has
        ended and its result is still held): it then counts as running and its end arrives
        through ``wait``. ``info`` is the recorded ``experiment.executor``. ``None``: not
        there any more (settle it as a dead driver's experiment)."""
        ...
