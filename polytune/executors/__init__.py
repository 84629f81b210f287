"""Executors: where and how experiments run. ``base`` holds the interface, ``local`` runs
subprocesses on this machine."""

from polytune.executors.base import REASONS, Executor, ExecutorError, Finished, Handle, LaunchSpec
from polytune.executors.local import LocalExecutor, kill_process_group

__all__ = [
    "REASONS",
    "Executor",
    "ExecutorError",
    "Finished",
    "Handle",
    "LaunchSpec",
    "LocalExecutor",
    "kill_process_group",
]
