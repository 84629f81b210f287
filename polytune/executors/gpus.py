"""GPU slots on one machine: a thin wrapper around another executor (the local one).

``GpuSlots(inner, gpus=["0", "1", "2", "3"], per_experiment=1)`` gives each started experiment
its own ``per_experiment`` devices from the list, as ``CUDA_VISIBLE_DEVICES`` in its environment
(the command sees only those, renumbered from 0 by CUDA), and takes them back when the
experiment's end is returned by ``wait`` or ``stop_all``: the inner executor reports an end only
once the experiment's whole process group is gone, so a device is never handed to the next
experiment while a process of the previous one may still hold it. Concurrency is bounded by the
inner executor's slots *and* by the free devices (``free_slots``).

The devices are names, not probed: ``--gpus 0,1,2,3`` is trusted as given (that also makes the
assignment testable without a GPU). The ids an experiment got are recorded in its
``experiment.executor["gpus"]``.

Why a wrapper and not code in ``LocalExecutor``: the slot bookkeeping is independent of how a
process is started, so it stays out of the process-group logic and is tested on its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from polytune.executors.base import Executor, ExecutorError, Finished, Handle, LaunchSpec

__all__ = ["GpuSlots", "parse_gpus"]


def parse_gpus(text: str) -> list[str]:
    """``"0,1,2,3"`` -> ``["0", "1", "2", "3"]`` (``ExecutorError`` on an empty or repeated id)."""
    ids = [part.strip() for part in text.split(",")]
    if not ids or any(not i for i in ids):
        raise ExecutorError(f"--gpus: expected a comma-separated list of device ids (got {text!r})")
    if len(set(ids)) != len(ids):
        raise ExecutorError(f"--gpus: a device id is listed twice (got {text!r})")
    return ids


class GpuSlots:
    """An executor that hands out GPU devices to the experiments of ``inner``."""

    def __init__(self, inner: Executor, gpus: Sequence[str], per_experiment: int = 1) -> None:
        gpus = [str(g) for g in gpus]
        if isinstance(per_experiment, bool) or per_experiment < 1:
            raise ExecutorError(f"gpus_per_experiment must be >= 1 (got {per_experiment!r})")
        if len(set(gpus)) != len(gpus):
            raise ExecutorError(f"gpus: a device id is listed twice (got {gpus})")
        if len(gpus) < per_experiment:
            raise ExecutorError(
                f"gpus_per_experiment is {per_experiment} but only {len(gpus)} GPU(s) are listed "
                f"({', '.join(gpus) or 'none'})"
            )
        self.inner = inner
        self.name = inner.name
        self.per_experiment = per_experiment
        self._free: list[str] = list(gpus)
        self._held: dict[int, list[str]] = {}

    # ----- Executor protocol --------------------------------------------------------------
    def capacity(self) -> int:
        total = len(self._free) + sum(len(v) for v in self._held.values())
        return min(self.inner.capacity(), total // self.per_experiment)

    def free_slots(self) -> int:
        return max(0, min(self.inner.free_slots(), len(self._free) // self.per_experiment))

    def running(self) -> list[int]:
        return self.inner.running()

    def start(self, spec: LaunchSpec) -> Handle:
        if len(self._free) < self.per_experiment:
            raise ExecutorError(
                f"experiment {spec.exp_id}: no free GPU (held: "
                + ", ".join(f"{k}: {','.join(v)}" for k, v in sorted(self._held.items()))
                + ")"
            )
        # Lowest ids first, so the assignment is predictable in logs.
        devices = sorted(self._free, key=_device_order)[: self.per_experiment]
        env = {**spec.env, "CUDA_VISIBLE_DEVICES": ",".join(devices)}
        handle = self.inner.start(dataclasses.replace(spec, env=env))
        for d in devices:
            self._free.remove(d)
        self._held[spec.exp_id] = devices
        return dataclasses.replace(handle, extra={**handle.extra, "gpus": list(devices)})

    def wait(self, timeout: float) -> list[Finished]:
        return self._release(self.inner.wait(timeout))

    def stop(self, exp_id: int, grace: float) -> None:
        self.inner.stop(exp_id, grace)

    def stop_all(self, grace: float) -> list[Finished]:
        return self._release(self.inner.stop_all(grace))

    def close(self) -> None:
        self.inner.close()
        for exp_id in list(self._held):
            self._free.extend(self._held.pop(exp_id))

    def held(self) -> dict[int, list[str]]:
        """Experiment id -> its devices (a copy), for tests and progress views."""
        return {k: list(v) for k, v in self._held.items()}

    def _release(self, done: list[Finished]) -> list[Finished]:
        for fin in done:
            self._free.extend(self._held.pop(fin.exp_id, []))
        return done


def _device_order(device: str) -> tuple[int, str]:
    return (int(device), "") if device.isdigit() else (1 << 30, device)
