"""Run experiments on a Dask distributed cluster (``polytune[dask]``).

The driver keeps its role (the only writer of the group directory; it reads each experiment's
metrics file while it runs); only *where* the command runs changes. One experiment = one Dask
task whose function is the guard, ``run_guarded``, shipped to a worker.

Decisions, and why:

* **Shared filesystem (required).** The experiment's working directory, logs, metrics file and
  status file are paths the driver chose in the group directory; the worker opens them at the
  same paths, so the driver reads metrics while the experiment runs exactly as with the local
  executor. On connect, every worker is asked whether it sees the group directory; one that
  does not is an error naming it. Without a shared filesystem (a bind mount, NFS, a cloud fuse
  mount at the same path) this executor does not work: metrics would have to be streamed through
  Dask (pub/sub) and the logs copied back, which polytune does not do.

* **The guard owns the experiment's process group.** It starts a tiny keeper process
  (``_keeper.py``) in a new session; the keeper runs ``/bin/sh -c <command>`` in that group.
  Stop, timeout and the end of the command are handled as in ``LocalExecutor``: TERM to the group,
  KILL after the grace, and when the command ends on its own, whatever is left of the group is
  KILLed before the keeper is reaped (the zombie keeps the group id reserved). The keeper has
  ``PR_SET_PDEATHSIG`` set and kills its whole group when the worker process dies (``kill -9``,
  OOM, a node lost): *losing a worker never leaves the command running*. A cancelled task (the
  driver cancelled it, or its client went away) is seen by the guard's watch loop through the
  worker's task state and kills the group at once.

* **Stop is immediate.** ``stop(exp, grace)`` sets a Dask ``Variable`` named after the task's key
  to the grace; the guard's watcher thread blocks on it (a long poll, no busy RPC), TERMs the
  group, KILLs it after the grace, and returns normally, so the end arrives through ``wait`` as
  "stopped" once the group is gone. A stop with no grace also cancels the task.

* **Worker loss = a lost attempt.** If a worker dies mid-experiment, Dask either marks the task
  erred (``KilledWorker``, when the scheduler's ``allowed-failures`` is exhausted) or silently
  reruns it on another worker. The guard refuses to be that silent rerun: a Dask ``Event`` named
  after the key records that the attempt started, and a second execution of the same key
  returns "lost" at once, without starting the command. Either way the driver records the attempt
  as ``lost`` and runs the experiment again as a new attempt (a new key), up to
  ``max_restarts + 1`` lost attempts (driver.py), so a command that kills its workers fails
  instead of looping. Finished experiments are never rerun.

* **Deterministic keys and reattach.** The key is ``polytune-<group>-<exp>-<attempt>`` and is
  recorded in ``experiment.executor["key"]``. Tasks are submitted with ``fire_and_forget``, so
  they keep running when the driver (the client) dies; ``polytune resume`` asks the scheduler
  about each key a dead driver left running and, if the task is still there, takes it back
  (``reattach``) instead of marking it lost. A task that ended while no driver watched is gone
  from the scheduler; its command's status file (shared filesystem) tells resume how it ended.

* **Version check.** polytune's version on each worker must equal the driver's (the guard is
  pickled by reference, and the contract between them is this module). Checked on connect for
  the workers present, and again by the guard on each task (workers that join later); a
  mismatch is a clear error, not a confusing traceback.

Overhead: see ``benchmarks/dask_overhead.py``.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polytune import __version__
from polytune.executors.base import ExecutorError, Finished, Handle, LaunchSpec
from polytune.executors.local import _killpg, _live_members, _with_status

__all__ = ["DaskExecutor", "run_guarded", "task_key"]

KEEPER = str(Path(__file__).with_name("_keeper.py"))
#: States of a worker's task in which the guard must stop its command.
_GONE = ("cancelled", "released", "forgotten", "error")


def _distributed() -> Any:
    """The ``distributed`` module, untyped on purpose (its annotations are partial)."""
    import importlib

    return importlib.import_module("distributed")


def task_key(group: str, exp_id: int, attempt: int) -> str:
    return f"polytune-{group}-{exp_id}-{attempt}"


# ----------------------------------------------------------------------------------------
# The guard: runs on a worker
# ----------------------------------------------------------------------------------------


def _worker_facts(group_dir: str) -> dict[str, Any]:
    """Run on each worker at connect (``Client.run``)."""
    return {
        "version": __version__,
        "host": socket.gethostname(),
        "sees_group_dir": os.path.isdir(group_dir),
        "python": sys.executable,
    }


def _key_state(key: str, dask_scheduler: Any = None) -> str | None:
    """Run on the scheduler: the state of task ``key``, or None when it is unknown."""
    ts = dask_scheduler.tasks.get(key)
    return None if ts is None else str(ts.state)


def _result(reason: str, exit_code: int | None = None, sig: int | None = None) -> dict[str, Any]:
    return {
        "reason": reason,
        "exit_code": exit_code,
        "signal": sig,
        "ended_at": time.time(),
        "host": socket.gethostname(),
    }


def _note(path: str, text: str) -> None:
    with contextlib.suppress(OSError), open(path, "a", encoding="utf-8") as f:
        f.write(f"polytune (dask worker {socket.gethostname()}): {text}\n")


def run_guarded(p: Mapping[str, Any]) -> dict[str, Any]:
    """The task of one experiment attempt: start the command in its own process group on this
    worker, watch it, and return how it ended (see the module docstring)."""
    dd = _distributed()
    key = str(p["key"])
    if p["version"] != __version__:
        msg = (
            f"polytune {__version__} on this worker differs from the driver's {p['version']}: "
            "install the same version on the workers"
        )
        _note(p["stderr"], msg)
        return {**_result("exited", 126), "error": msg}
    if not os.path.isdir(p["cwd"]):
        msg = f"working directory {p['cwd']!r} is not visible on this worker (shared filesystem?)"
        _note(p["stderr"], msg)
        return {**_result("exited", 126), "error": msg}
    worker = dd.get_worker()
    client = dd.get_client()
    started = dd.Event(f"{key}-started", client=client)
    if started.is_set():
        # Dask reran this attempt after its worker died: the driver reruns it as a new attempt.
        return _result("lost")
    started.set()
    try:
        out = open(p["stdout"], "ab")  # noqa: SIM115 - closed right after the spawn
        err = out if p["stderr"] == p["stdout"] else open(p["stderr"], "ab")  # noqa: SIM115
    except OSError as exc:
        return {**_result("exited", 126), "error": f"cannot open the logs: {exc}"}
    try:
        keeper = subprocess.Popen(
            [sys.executable, "-I", "-S", KEEPER, str(os.getpid()), p["script"]],
            cwd=p["cwd"],
            env={**os.environ, **p["env"]},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    except OSError as exc:
        _note(p["stderr"], f"cannot start the command: {exc}")
        return {**_result("exited", 126), "error": str(exc)}
    finally:
        out.close()
        if err is not out:
            err.close()
    pgid = keeper.pid
    stop_grace: list[float] = []  # set by the watcher thread
    done = threading.Event()

    def watch_stop() -> None:
        var = dd.Variable(f"{key}-stop", client=client)
        while not done.is_set():
            try:
                stop_grace.append(float(var.get(timeout=1.0)))
                return
            except Exception:  # TimeoutError; a scheduler hiccup: try again
                time.sleep(0.0 if done.is_set() else 0.01)

    watcher = threading.Thread(target=watch_stop, name=f"{key}-watch", daemon=True)
    watcher.start()
    deadline = None if p["timeout"] is None else time.monotonic() + float(p["timeout"])
    reason = "exited"
    kill_at: float | None = None
    pidfd = _pidfd(keeper.pid)
    try:
        while not _exited(keeper.pid, pidfd, 0.05):
            now = time.monotonic()
            ts = worker.state.tasks.get(key)
            if ts is None or ts.state in _GONE:
                reason, kill_at = "stopped", now  # cancelled: no grace
            elif reason == "exited" and stop_grace:
                reason, kill_at = "stopped", now + stop_grace[0]
                _signal_group(pgid)
            elif reason == "exited" and deadline is not None and now >= deadline:
                reason, kill_at = "timeout", now + float(p["timeout_grace"])
                _signal_group(pgid)
            if kill_at is not None and now >= kill_at:
                _killpg(pgid, signal.SIGKILL)
        if reason == "exited":
            _killpg(pgid, signal.SIGKILL)  # leftovers of a command that ended on its own
        else:
            # The rest of the grace for what the TERM did not end yet, then KILL.
            while kill_at is not None and time.monotonic() < kill_at and _live_members(pgid):
                time.sleep(0.02)
            _killpg(pgid, signal.SIGKILL)
        rc = keeper.wait()
    finally:
        done.set()
        if keeper.returncode is None:
            _killpg(pgid, signal.SIGKILL)
            keeper.wait()
        if pidfd is not None:
            os.close(pidfd)
    return _result(reason, rc if rc >= 0 else None, -rc if rc < 0 else None)


def _signal_group(pgid: int) -> None:
    _killpg(pgid, signal.SIGTERM)
    _killpg(pgid, signal.SIGCONT)


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (OSError, AttributeError):
        return None


def _exited(pid: int, pidfd: int | None, timeout: float) -> bool:
    """Wait up to ``timeout`` for child ``pid`` to exit, without reaping it."""
    if pidfd is not None:
        import select

        select.select([pidfd], [], [], timeout)
    else:
        time.sleep(timeout)
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


# ----------------------------------------------------------------------------------------
# The executor: runs in the driver
# ----------------------------------------------------------------------------------------


@dataclass
class _Task:
    spec: LaunchSpec | None
    key: str
    future: Any
    stderr: str
    stop_sent_at: float | None = None
    grace: float = 0.0


class DaskExecutor:
    """Experiments as tasks of a Dask cluster, ``capacity`` at a time (see module docstring)."""

    name = "dask"
    #: Seconds between TERM and KILL when an experiment's time limit runs out.
    timeout_grace: float = 5.0
    #: Beyond a stop's grace, how long to wait for the guard's answer before giving up on it
    #: (cancel; reported as stopped).
    stop_margin: float = 15.0

    def __init__(
        self,
        capacity: int,
        *,
        group: str,
        group_dir: Path,
        address: str | None = None,
        scheduler_file: str | None = None,
        connect_timeout: float = 20.0,
    ) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ExecutorError(f"executor capacity must be an integer >= 1 (got {capacity!r})")
        if (address is None) == (scheduler_file is None):
            raise ExecutorError(
                "the dask executor needs the scheduler: --scheduler tcp://HOST:PORT or "
                "--scheduler-file FILE (or `scheduler:` / `scheduler_file:` under `polytune:`)"
            )
        try:
            dd = _distributed()
        except ImportError as exc:
            raise ExecutorError(
                f"the dask executor needs the `distributed` package: pip install 'polytune[dask]' "
                f"({exc})"
            ) from None
        where = address or f"the scheduler of {scheduler_file}"
        try:
            self.client: Any = dd.Client(
                address,
                scheduler_file=scheduler_file,
                timeout=connect_timeout,
                set_as_default=False,
            )
        except (OSError, TimeoutError, ValueError) as exc:
            raise ExecutorError(f"cannot connect to the Dask scheduler at {where}: {exc}") from None
        self.address = str(self.client.scheduler.address)
        self._capacity = capacity
        self._group = group
        self._tasks: dict[int, _Task] = {}
        self._ended: queue.Queue[int] = queue.Queue()
        self._closed = False
        try:
            self._check_workers(group_dir)
        except BaseException:
            self.client.close()
            raise

    def _check_workers(self, group_dir: Path) -> None:
        facts: dict[str, dict[str, Any]] = self.client.run(_worker_facts, str(group_dir))
        wrong = [f"{w} has {f['version']}" for w, f in facts.items() if f["version"] != __version__]
        if wrong:
            raise ExecutorError(
                f"polytune {__version__} here, but on the Dask workers: {'; '.join(wrong)}. "
                "Install the same polytune version on the workers"
            )
        blind = [f"{w} ({f['host']})" for w, f in facts.items() if not f["sees_group_dir"]]
        if blind:
            raise ExecutorError(
                f"the group directory {group_dir} is not visible on the Dask workers "
                f"{', '.join(blind)}: the dask executor needs a filesystem shared at the same "
                "path (see the README)"
            )

    # ----- Executor protocol --------------------------------------------------------------
    def capacity(self) -> int:
        return self._capacity

    def free_slots(self) -> int:
        return self._capacity - len(self._tasks)

    def running(self) -> list[int]:
        return sorted(self._tasks)

    def start(self, spec: LaunchSpec) -> Handle:
        if self._closed:
            raise ExecutorError(f"experiment {spec.exp_id}: the executor is closed")
        if spec.exp_id in self._tasks:
            raise ExecutorError(f"experiment {spec.exp_id} is already running")
        if self.free_slots() <= 0:
            raise ExecutorError(f"experiment {spec.exp_id}: no free slot")
        key = task_key(self._group, spec.exp_id, spec.attempt)
        payload = {
            "key": key,
            "version": __version__,
            "script": _with_status(spec),
            "cwd": str(spec.cwd),
            "env": dict(spec.env),
            "stdout": str(spec.stdout_path),
            "stderr": str(spec.stderr_path),
            "timeout": spec.timeout,
            "timeout_grace": self.timeout_grace,
        }
        try:
            future = self.client.submit(run_guarded, payload, key=key, pure=False)
        except Exception as exc:
            raise ExecutorError(f"experiment {spec.exp_id}: cannot submit to Dask: {exc}") from exc
        _distributed().fire_and_forget(future)  # runs on when this driver dies: resume reattaches
        self._track(spec.exp_id, _Task(spec, key, future, str(spec.stderr_path)))
        return self._handle(spec.exp_id, key)

    def reattach(self, exp_id: int, attempt: int, info: Mapping[str, Any]) -> Handle | None:
        key = str(info.get("key") or task_key(self._group, exp_id, attempt))
        if self.client.run_on_scheduler(_key_state, key) is None:
            return None
        future = _distributed().Future(key, client=self.client)
        # A Future made from a key does not tell the scheduler that this client wants it: say
        # so, or its end would never be reported here (what ``fire_and_forget`` does, as us).
        self.client._send_to_scheduler({"op": "client-desires-keys", "keys": [key]})
        # It may have ended (and been forgotten) between the look-up and our interest in it.
        if self.client.run_on_scheduler(_key_state, key) is None:
            future.release()
            return None
        self._track(exp_id, _Task(None, key, future, ""))
        return self._handle(exp_id, key)

    def wait(self, timeout: float) -> list[Finished]:
        if self._closed:
            return []
        end = time.monotonic() + max(0.0, timeout)
        ids: list[int] = []
        while True:
            self._give_up_on_stuck_stops()
            try:
                ids.append(self._ended.get(timeout=max(0.0, min(end - time.monotonic(), 0.5))))
            except queue.Empty:
                if time.monotonic() >= end:
                    return []
                continue
            while True:
                try:
                    ids.append(self._ended.get_nowait())
                except queue.Empty:
                    break
            done = [f for i in ids if (f := self._finish(i)) is not None]
            if done or time.monotonic() >= end:
                return done
            ids = []

    def stop(self, exp_id: int, grace: float) -> None:
        task = self._tasks.get(exp_id)
        if task is None:
            return
        grace = max(0.0, grace)
        if task.stop_sent_at is not None and grace >= task.grace:
            return
        task.stop_sent_at, task.grace = time.monotonic(), grace
        with contextlib.suppress(Exception):
            _distributed().Variable(f"{task.key}-stop", client=self.client).set(grace)
        if grace <= 0:
            self.client.cancel(task.future)

    def stop_all(self, grace: float) -> list[Finished]:
        for exp_id in list(self._tasks):
            self.stop(exp_id, grace)
        done: list[Finished] = []
        while self._tasks:
            done.extend(self.wait(1.0))
        return done

    def close(self) -> None:
        if self._closed:
            return
        if self._tasks:
            self.stop_all(0.0)
        self._closed = True
        with contextlib.suppress(Exception):
            self.client.close()

    # ----- internals ----------------------------------------------------------------------
    def _handle(self, exp_id: int, key: str) -> Handle:
        return Handle(
            exp_id=exp_id,
            pid=0,  # the command runs on a worker: no pid of this machine
            pgid=0,
            host=f"dask {self.address}",
            boot_id="",
            start_ticks=None,
            started_at=time.time(),
            extra={"key": key, "scheduler": self.address},
        )

    def _track(self, exp_id: int, task: _Task) -> None:
        self._tasks[exp_id] = task
        # Called on the client's thread; the queue hands the end to ``wait``.
        task.future.add_done_callback(lambda _f: self._ended.put(exp_id))

    def _give_up_on_stuck_stops(self) -> None:
        """A stopped task whose guard does not answer (its worker hangs): cancel it."""
        now = time.monotonic()
        for task in self._tasks.values():
            if (
                task.stop_sent_at is not None
                and now > task.stop_sent_at + task.grace + self.stop_margin
                and not task.future.done()
            ):
                self.client.cancel(task.future)

    def _finish(self, exp_id: int) -> Finished | None:
        task = self._tasks.get(exp_id)
        if task is None or not task.future.done():
            return None
        del self._tasks[exp_id]
        status = task.future.status
        stopped = task.stop_sent_at is not None
        fin: Finished
        if status == "finished":
            try:
                res = task.future.result()
            except Exception as exc:  # pragma: no cover - finished futures hold a result
                res = {"reason": "lost", "error": str(exc)}
            reason = str(res.get("reason", "exited"))
            if res.get("error") and task.stderr:
                _note(task.stderr, str(res["error"]))
            fin = Finished(
                exp_id=exp_id,
                exit_code=res.get("exit_code"),
                signal=res.get("signal"),
                reason=reason,
                ended_at=float(res.get("ended_at") or time.time()),
            )
        elif status == "cancelled" and stopped:
            fin = Finished(exp_id, None, signal.SIGKILL, "stopped", time.time())
        else:
            # Erred (KilledWorker: its worker died) or cancelled by someone else.
            exc_text = ""
            with contextlib.suppress(Exception):
                exc_text = repr(task.future.exception(timeout=1))
            if task.stderr:
                _note(task.stderr, f"the Dask task ended as {status} {exc_text}".rstrip())
            fin = Finished(exp_id, None, None, "stopped" if stopped else "lost", time.time())
        self._forget(task)
        return fin

    def _forget(self, task: _Task) -> None:
        dd = _distributed()
        with contextlib.suppress(Exception):
            task.future.release()
        with contextlib.suppress(Exception):
            dd.Event(f"{task.key}-started", client=self.client).clear()
        if task.stop_sent_at is not None:
            with contextlib.suppress(Exception):
                dd.Variable(f"{task.key}-stop", client=self.client).delete()
