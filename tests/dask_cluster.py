"""A real local Dask cluster for tests and benchmarks: one ``dask scheduler`` and N
``dask worker`` processes on 127.0.0.1, each started in its own session and torn down by its
process id (never by name)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class LocalCluster:
    scheduler_file: Path
    address: str
    scheduler: subprocess.Popen[bytes]
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    workdir: Path = Path(".")

    def start_worker(self, name: str, nthreads: int = 2) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"worker-{name}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "distributed.cli.dask_worker",
                self.address,
                "--name",
                name,
                "--nthreads",
                str(nthreads),
                "--no-nanny",
                "--no-dashboard",
                "--host",
                "127.0.0.1",
                "--local-directory",
                str(self.workdir / f"worker-{name}"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            env=_env(),
        )
        log.close()
        self.workers[name] = proc
        return proc

    def wait_for_workers(self, n: int, timeout: float = 30.0) -> None:
        from distributed import Client

        with Client(self.address, timeout=timeout, set_as_default=False) as client:
            client.wait_for_workers(n, timeout=timeout)

    def kill_worker(self, name: str) -> None:
        proc = self.workers.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def close(self) -> None:
        for proc in [*self.workers.values(), self.scheduler]:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for proc in [*self.workers.values(), self.scheduler]:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.workers.clear()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # Worker loss must be seen by polytune at once, not retried by Dask (the guard would refuse
    # the retry anyway; this makes the scheduler say KilledWorker right away).
    env["DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES"] = "0"
    env["DASK_DISTRIBUTED__SCHEDULER__WORK_STEALING"] = "False"
    env["PYTHONWARNINGS"] = "ignore"
    return env


@contextlib.contextmanager
def local_cluster(workdir: Path, workers: int = 2, nthreads: int = 2) -> Iterator[LocalCluster]:
    workdir.mkdir(parents=True, exist_ok=True)
    sched_file = workdir / "scheduler.json"
    log = open(workdir / "scheduler.log", "ab")  # noqa: SIM115
    sched = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "distributed.cli.dask_scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(sched_file),
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
        env=_env(),
    )
    log.close()
    cluster: LocalCluster | None = None
    try:
        deadline = time.monotonic() + 30
        address = None
        while address is None:
            if sched.poll() is not None:
                raise RuntimeError((workdir / "scheduler.log").read_text())
            with contextlib.suppress(OSError, ValueError):
                address = json.loads(sched_file.read_text())["address"]
            if time.monotonic() > deadline:
                raise RuntimeError("the dask scheduler did not start in 30 s")
            time.sleep(0.05)
        cluster = LocalCluster(sched_file, address, sched, workdir=workdir)
        for i in range(workers):
            cluster.start_worker(f"w{i + 1}", nthreads)
        cluster.wait_for_workers(workers)
        yield cluster
    finally:
        if cluster is not None:
            cluster.close()
        else:
            sched.kill()
            sched.wait()
