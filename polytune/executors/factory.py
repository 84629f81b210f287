"""Build the executor a group asks for: the run's options (command line, saved in group.json),
then the polyaxonfile's ``polytune:`` section."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from polytune.executors.base import Executor, ExecutorError
from polytune.model import PolytuneSettings

__all__ = ["executor_settings", "make_executor"]


def executor_settings(
    opts: Mapping[str, Any], settings: PolytuneSettings, base_dir: Path
) -> dict[str, Any]:
    """The effective executor settings (plain JSON): name, scheduler, scheduler_file, gpus,
    gpus_per_experiment. Command-line values (in ``opts``) win; a scheduler given on the command
    line implies the dask executor. A relative scheduler file in the polyaxonfile is relative to
    the file's directory."""
    scheduler = opts.get("scheduler")
    scheduler_file = opts.get("scheduler_file")
    name = opts.get("executor") or ("dask" if scheduler or scheduler_file else settings.executor)
    if scheduler is None and scheduler_file is None:
        scheduler = settings.scheduler
        if settings.scheduler_file is not None:
            scheduler_file = str(base_dir / settings.scheduler_file)
    gpus = opts.get("gpus")
    if gpus is None:
        gpus = list(settings.gpus)
    elif isinstance(gpus, str):
        from polytune.executors.gpus import parse_gpus

        gpus = parse_gpus(gpus)
    per = opts.get("gpus_per_experiment") or settings.gpus_per_experiment
    return {
        "executor": str(name).lower(),
        "scheduler": scheduler,
        "scheduler_file": scheduler_file,
        "gpus": [str(g) for g in gpus],
        "gpus_per_experiment": int(per),
    }


def make_executor(
    settings: Mapping[str, Any], *, capacity: int, group: str, group_dir: Path
) -> Executor:
    name = settings["executor"]
    gpus = settings.get("gpus") or []
    if name == "local":
        from polytune.executors.local import LocalExecutor

        local = LocalExecutor(capacity)
        if not gpus:
            return local
        from polytune.executors.gpus import GpuSlots

        try:
            return GpuSlots(local, gpus, int(settings.get("gpus_per_experiment") or 1))
        except BaseException:
            local.close()
            raise
    if name == "dask":
        if gpus:
            raise ExecutorError(
                "gpus: GPU slots are for the local executor; on a Dask cluster give each worker "
                "its GPUs (one worker per GPU, CUDA_VISIBLE_DEVICES set when it starts)"
            )
        from polytune.executors.dask import DaskExecutor

        return DaskExecutor(
            capacity,
            group=group,
            group_dir=group_dir,
            address=settings.get("scheduler"),
            scheduler_file=settings.get("scheduler_file"),
        )
    raise ExecutorError(f"unknown executor {name!r} (known: local, dask)")
