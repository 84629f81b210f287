"""A simulated executor: the driver's loop, store and searcher at full speed, with a virtual clock.

The fake at the executor boundary (DESIGN.md §7.7; Syne Tune's simulator backend): ``start``
runs the experiment *in process and at once* through a ``job`` callable (which writes the
experiment's metrics, reads its outputs path, ...) and returns how long the experiment would have
taken; ``wait`` then advances the virtual clock to the next end instead of sleeping. So a schedule
of hundreds of experiments runs in a second, and ``busy`` intervals give slot utilization.

Give the driver the same clock (``Driver(..., clock=executor.clock)``) so its records carry the
virtual times. ``crash_after`` simulates ``kill -9`` of the driver: after that many ends,
``wait`` raises ``SimulatedCrash`` and ``stop_all`` records nothing, so the store keeps its
"running" experiments exactly as a killed driver leaves them.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass

from polytune.executors.base import ExecutorError, Finished, Handle, LaunchSpec

__all__ = ["Job", "JobResult", "SimulatedCrash", "SimulatedExecutor", "VirtualClock"]


class SimulatedCrash(BaseException):
    """The simulated driver died (``kill -9``): nothing more is recorded."""


class VirtualClock:
    """A clock that only moves when the simulated executor says so."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class JobResult:
    duration: float
    exit_code: int = 0


#: Runs one experiment in process (the rendered command, env and paths are in the spec) and says
#: how long it took in virtual seconds, and its exit code.
Job = Callable[[LaunchSpec], JobResult]


class SimulatedExecutor:
    name = "simulated"

    def __init__(
        self,
        capacity: int,
        job: Job,
        clock: VirtualClock | None = None,
        *,
        crash_after: int | None = None,
    ) -> None:
        self._capacity = capacity
        self.job = job
        self.clock = clock or VirtualClock()
        self.crash_after = crash_after
        self._ends: list[tuple[float, int]] = []  # heap of (end time, exp id)
        self._running: dict[int, tuple[float, int, str]] = {}  # id -> (start, exit code, reason)
        self._crashed = False
        self.ended = 0
        #: (exp id, start, end) of every experiment that ended: slot utilization.
        self.busy: list[tuple[int, float, float]] = []
        #: Every launch, in order.
        self.launched: list[LaunchSpec] = []

    def capacity(self) -> int:
        return self._capacity

    def free_slots(self) -> int:
        return self._capacity - len(self._running)

    def running(self) -> list[int]:
        return sorted(self._running)

    def start(self, spec: LaunchSpec) -> Handle:
        if self.free_slots() <= 0:
            raise ExecutorError(f"no free slot for experiment {spec.exp_id}")
        now = self.clock()
        result = self.job(spec)
        self.launched.append(spec)
        self._running[spec.exp_id] = (now, result.exit_code, "exited")
        heapq.heappush(self._ends, (now + max(0.0, result.duration), spec.exp_id))
        return Handle(
            exp_id=spec.exp_id,
            pid=4_000_000 + spec.exp_id,
            pgid=4_000_000 + spec.exp_id,
            host="simulated",
            boot_id="simulated",
            start_ticks=None,
            started_at=now,
        )

    def _finish(self, exp_id: int, reason: str) -> Finished:
        start, code, _ = self._running.pop(exp_id)
        now = self.clock()
        self.busy.append((exp_id, start, now))
        self.ended += 1
        stopped = reason == "stopped"
        return Finished(exp_id, None if stopped else code, 15 if stopped else None, reason, now)

    def wait(self, timeout: float) -> list[Finished]:
        if self.crash_after is not None and self.ended >= self.crash_after:
            self._crashed = True
            raise SimulatedCrash(f"simulated kill -9 after {self.ended} experiments ended")
        while self._ends and self._ends[0][1] not in self._running:
            heapq.heappop(self._ends)  # stopped earlier
        if not self._ends:
            return []
        self.clock.now = max(self.clock.now, self._ends[0][0])
        out = []
        while self._ends and self._ends[0][0] <= self.clock.now:
            _, exp_id = heapq.heappop(self._ends)
            if exp_id in self._running:
                out.append(self._finish(exp_id, self._running[exp_id][2]))
        return out

    def stop(self, exp_id: int, grace: float) -> None:
        if exp_id in self._running:
            start, code, _ = self._running[exp_id]
            self._running[exp_id] = (start, code, "stopped")
            heapq.heappush(self._ends, (self.clock(), exp_id))

    def stop_all(self, grace: float) -> list[Finished]:
        if self._crashed:
            return []  # a killed driver records nothing
        return [self._finish(i, "stopped") for i in sorted(self._running)]

    def close(self) -> None:
        self._running.clear()
        self._ends.clear()

    def utilization(self) -> float:
        """Busy slot-time over capacity times the span from the first start to the last end."""
        if not self.busy:
            return 0.0
        span = max(e for _, _, e in self.busy) - min(s for _, s, _ in self.busy)
        work = sum(e - s for _, s, e in self.busy)
        return work / (self._capacity * span) if span > 0 else 1.0
