"""The group directory: the single source of truth of a group (DESIGN §4).

```
<workspace>/<group-name>/
  group.json          normalized config, seed, status, ... (written by the driver)
  polyaxonfile.yml    the input as given
  .lock               flock held by the group's one live driver
  driver.json         who holds the lock: pid, host, boot_id, start_ticks, started_at
  experiments/
    000001/ experiment.json  stdout.log  stderr.log  metrics.jsonl  outputs/
```

Rules this module keeps:

* **One writer.** Only the driver holding ``.lock`` writes ``group.json`` and the experiment
  records; it allocates experiment ids from an in-memory counter. Readers (``polytune status``
  while a group runs) never take the lock.
* **Every write is atomic**: a temp file in the same folder, then ``os.replace``; a reader sees
  the old file or the new one, never a mix. A new experiment directory is prepared under a hidden
  name and renamed into place, so readers never see a directory without its record.
* **Durable where a record becomes final** (``fsync`` of the file and of its directory): group
  creation, a new experiment, a status change. A running experiment's latest metrics are saved
  with ``durable=False`` — a crash loses at most those, and the metrics file still has them.
* **A damaged record never stops a reader**: :meth:`GroupStore.experiments` skips it and reports
  it in :meth:`GroupStore.damage`.
* A failed write (disk full, I/O error) leaves the previous file intact and raises
  :class:`~polytune.errors.StoreError`.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import itertools
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polytune import __version__, procutil
from polytune.errors import GroupBusy, GroupNotFound, StoreError, UsageError
from polytune.experiment import Experiment, Status
from polytune.suggest import closest

if TYPE_CHECKING:  # imported where a lock is taken: readers (`polytune status`) never pay for it
    import filelock

__all__ = [
    "DEFAULT_WORKSPACE",
    "Damage",
    "DriverLock",
    "ExperimentNotFound",
    "ExperimentPaths",
    "GroupStore",
    "atomic_write",
    "create_group",
    "is_lost",
    "list_groups",
    "open_group",
    "read_command_status",
    "resolve_group",
    "validate_group_name",
]

#: Visible on purpose: users should see where their groups (and outputs) are.
DEFAULT_WORKSPACE = "polytune-groups"

GROUP_FILE = "group.json"
POLYAXONFILE = "polyaxonfile.yml"
LOCK_FILE = ".lock"
DRIVER_FILE = "driver.json"
EXPERIMENTS_DIR = "experiments"
#: Damaged experiments the user chose to give up on (``polytune resume --set-aside-damaged``):
#: moved here whole, never read again; their ids are known gaps of ``experiments/``.
SET_ASIDE_DIR = "set-aside"
RECORD_FILE = "experiment.json"
STDOUT_FILE = "stdout.log"
STDERR_FILE = "stderr.log"
METRICS_FILE = "metrics.jsonl"
#: Written by the experiment's own shell: "started <attempt> <pid>", "exited <attempt> <code>".
STATUS_FILE = "command.status"
OUTPUTS_DIR = "outputs"

_NAME_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
_MAX_NAME = 200
_NEW_PREFIX = ".new-"
# A cached record is trusted only when its mtime was this far in the past when it was read: a
# later rewrite then always changes the mtime, even if it reuses the inode and the size.
_CACHE_SETTLE_NS = 2_000_000_000
_tmp_counter = itertools.count()


class ExperimentNotFound(UsageError):
    """The group has no experiment with that id."""


# ----- low-level atomic I/O ------------------------------------------------------------------
def _reason(e: OSError) -> str:
    return e.strerror or str(e)


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as e:
        raise StoreError(f"cannot open directory {directory} to sync it: {_reason(e)}") from e
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.EOPNOTSUPP):  # cannot sync dirs on this fs
            raise StoreError(f"cannot sync directory {directory}: {_reason(e)}") from e
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], data: bytes, *, durable: bool) -> None:
    """Replace ``path`` by ``data`` atomically (temp file in the same folder + ``os.replace``).

    ``durable`` also fsyncs the file before the rename and the directory after it. On any
    failure the previous file is left as it was, the temp file is removed, and
    :class:`StoreError` names the file and the reason.
    """
    target = os.fspath(path)
    directory, base = os.path.split(target)
    tmp = os.path.join(directory, f".{base}.{os.getpid()}.{next(_tmp_counter)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise StoreError(f"cannot write {target}: {_reason(e)}") from e
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise StoreError(f"cannot write {target}: {_reason(e)}") from e
        raise
    if durable:
        _fsync_dir(directory or ".")


def _encode(obj: Any, what: str) -> bytes:
    try:
        # indent=1: still readable by eye, and parses ~30% faster than indent=2.
        return (json.dumps(obj, indent=1, ensure_ascii=False) + "\n").encode("utf-8")
    except (TypeError, ValueError) as e:
        raise StoreError(f"cannot encode {what} as JSON: {e}") from e


def _read_bytes(path: str) -> tuple[bytes, os.stat_result]:
    """The whole file and the ``fstat`` of exactly the inode that was read."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        want = max(st.st_size + 1, 4096)
        chunks = []
        while True:
            chunk = os.read(fd, want)
            chunks.append(chunk)
            if len(chunk) < want:  # a short read of a regular file is its end
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks), st
    finally:
        os.close(fd)


def _read_json_object(path: str, what: str) -> dict[str, Any]:
    try:
        data, _ = _read_bytes(path)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise StoreError(f"cannot read {what} {path}: {_reason(e)}") from e
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise StoreError(f"{what} {path} is damaged (not valid JSON: {e})") from e
    if not isinstance(obj, dict):
        raise StoreError(f"{what} {path} is damaged (not a JSON object)")
    return obj


# ----- records -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Damage:
    """A record :meth:`GroupStore.experiments` had to skip, and why."""

    path: str
    problem: str
    exp_id: int | None = None

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


@dataclass(frozen=True)
class ExperimentPaths:
    dir: Path
    record: Path
    stdout: Path
    stderr: Path
    metrics: Path
    outputs: Path
    #: The command's own record of its start and exit (``LaunchSpec.status_path``).
    status: Path


def _decode_record(data: bytes, exp_id: int) -> Experiment | str:
    """The experiment in ``data``, or a description of what is wrong with it."""
    if not data.strip():
        return "empty record (truncated write?)"
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError) as e:
        return f"not valid JSON (truncated or corrupt): {e}"
    if not isinstance(obj, dict):
        return "not a JSON object"
    try:
        exp = Experiment.from_json(obj)
    except (KeyError, ValueError, TypeError) as e:
        return f"invalid record: {type(e).__name__}: {e}"
    if exp.id != exp_id:
        return f"record says id {exp.id} but lives in the directory of experiment {exp_id}"
    return exp


def is_lost(exp: Experiment) -> bool:
    """A ``running`` experiment whose process is known to be gone (the driver that watched it
    died). False when it may still run, including on another host (cannot know from here).

    Uses ``exp.executor["start_ticks"]`` (pid reuse) and ``exp.executor["pgid"]`` (a command's
    children may outlive its shell) when the executor recorded them.
    """
    if exp.status is not Status.RUNNING or exp.pid is None:
        return False
    ticks = exp.executor.get("start_ticks")
    alive = procutil.is_alive(
        exp.pid, exp.host, exp.boot_id, ticks if isinstance(ticks, int) else None
    )
    if alive is None or alive:
        return False
    if exp.boot_id and exp.boot_id != procutil.boot_id():
        return True
    pgid = exp.executor.get("pgid")
    if isinstance(pgid, int) and pgid > 1 and pgid != os.getpgrp():
        return not procutil.group_alive(pgid)
    return True


def read_command_status(
    path: str | os.PathLike[str],
) -> tuple[dict[int, int], dict[int, int], float]:
    """What an experiment's shell wrote into its status file (``LaunchSpec.status_path``):
    ``({attempt: pid}, {attempt: exit code}, mtime)``; empty when the file is missing. Lines that
    do not parse (a write cut short) are ignored."""
    started: dict[int, int] = {}
    exited: dict[int, int] = {}
    try:
        data, st = _read_bytes(os.fspath(path))
    except OSError:
        return started, exited, 0.0
    for line in data[:65536].decode("ascii", "replace").splitlines():
        parts = line.split()
        if len(parts) != 3 or not (parts[1].isdigit() and parts[2].isdigit()):
            continue
        if parts[0] == "started":
            started[int(parts[1])] = int(parts[2])
        elif parts[0] == "exited":
            exited[int(parts[1])] = int(parts[2])
    return started, exited, st.st_mtime


# ----- the driver lock -----------------------------------------------------------------------
class DriverLock:
    """The group's ``.lock``, held by its one driver; ``driver.json`` says who holds it."""

    def __init__(self, store: GroupStore, lock: filelock.BaseFileLock, info: dict[str, Any]):
        self.store = store
        self.info = info
        self._lock = lock

    @property
    def held(self) -> bool:
        return bool(self._lock.is_locked)

    def release(self) -> None:
        if not self._lock.is_locked:
            return
        # Remove driver.json while still holding the lock, so a driver that takes over next
        # never has its own driver.json deleted.
        with contextlib.suppress(OSError):
            os.unlink(self.store.driver_file)
        self._lock.release()

    def __enter__(self) -> DriverLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def tail_lines(
    path: str | os.PathLike[str], lines: int, *, max_bytes: int = 64 * 1024, width: int = 500
) -> list[str]:
    """The last ``lines`` lines of a log file (at most ``max_bytes`` read from its end, each line
    cut at ``width`` characters); ``[]`` when it cannot be read."""
    if lines <= 0:
        return []
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return [line[:width] for line in data.splitlines()[-lines:]]


# ----- background durability -------------------------------------------------------------------
class BackgroundSync:
    """fsyncs finished records on a thread, so the driver never waits for the disk.

    An fsync costs 1–5 ms on these machines, more than launching a short command; done inline
    for every finished experiment it made the driver 10x slower than a plain launch loop. The
    record is written and renamed into place at once (atomic, visible to readers, and safe when
    only the driver dies: the page cache keeps it); this thread then fsyncs the file and its
    directory, batching whatever queued up meanwhile. Only a power loss or kernel crash within
    those few milliseconds can lose a result, and then the experiment is found "running" or
    "created" and is rerun — never half-recorded. ``flush()`` waits for everything queued and
    re-raises a failed fsync as :class:`StoreError`.
    """

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._files: dict[str, None] = {}
        self._dirs: dict[str, None] = {}
        self._submitted = 0
        self._done = 0
        self._error: StoreError | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="polytune-fsync", daemon=True)
        self._thread.start()

    def add(self, file: str | None, directory: str) -> None:
        with self._cv:
            self.check()
            if file is not None:
                self._files[file] = None
            self._dirs[directory] = None
            self._submitted += 1
            self._cv.notify_all()

    def check(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._done == self._submitted and not self._closed:
                    self._cv.wait()
                if self._done == self._submitted and self._closed:
                    return
                files, self._files = list(self._files), {}
                dirs, self._dirs = list(self._dirs), {}
                target = self._submitted
            error: StoreError | None = None
            for path in files:
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    continue  # replaced or removed since: the newer write is queued too
                except OSError as e:
                    error = error or StoreError(f"cannot sync {path}: {_reason(e)}")
                    continue
                try:
                    os.fsync(fd)
                except OSError as e:
                    error = error or StoreError(f"cannot sync {path}: {_reason(e)}")
                finally:
                    os.close(fd)
            for directory in dirs:
                try:
                    _fsync_dir(directory)
                except StoreError as e:
                    error = error or e
            with self._cv:
                if error is not None and self._error is None:
                    self._error = error
                self._done = target
                self._cv.notify_all()

    def flush(self) -> None:
        with self._cv:
            while self._done != self._submitted and self._thread.is_alive():
                self._cv.wait(timeout=1.0)
            self.check()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            with self._cv:
                self._closed = True
                self._cv.notify_all()
            self._thread.join(timeout=10)


# ----- one group -----------------------------------------------------------------------------
class GroupStore:
    """Read and write one group directory (see the module docstring for the rules)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).absolute()
        self.name = self.path.name
        self.group_file = self.path / GROUP_FILE
        self.polyaxonfile = self.path / POLYAXONFILE
        self.lock_file = self.path / LOCK_FILE
        self.driver_file = self.path / DRIVER_FILE
        self.experiments_path = self.path / EXPERIMENTS_DIR
        self._root = str(self.path)
        self._exps = str(self.experiments_path)
        self._next_id: int | None = None
        self._cache: dict[int, tuple[tuple[int, int, int], Experiment]] = {}
        self._damage: list[Damage] = []
        self._sync: BackgroundSync | None = None

    # ----- durability ----------------------------------------------------------------------
    def start_background_sync(self) -> None:
        """From now on durable record writes are fsynced on a thread (see BackgroundSync);
        the driver calls this, and ``stop_background_sync`` before it exits."""
        if self._sync is None:
            self._sync = BackgroundSync()

    def flush(self) -> None:
        """Wait until every durable write so far is on disk."""
        if self._sync is not None:
            self._sync.flush()

    def stop_background_sync(self) -> None:
        if self._sync is not None:
            sync, self._sync = self._sync, None
            sync.close()

    def __repr__(self) -> str:
        return f"GroupStore({str(self.path)!r})"

    # ----- group.json ------------------------------------------------------------------------
    def read_group(self) -> dict[str, Any]:
        try:
            return _read_json_object(str(self.group_file), "group file")
        except FileNotFoundError:
            raise GroupNotFound(f"{self.path} is not a polytune group (no {GROUP_FILE})") from None
        except StoreError as e:
            # The seed, options and working directory live only there: no guessing them.
            raise StoreError(
                f"{e}; restore it from a backup (`polytune status` still lists the experiments)"
            ) from e

    def write_group(self, data: Mapping[str, Any], durable: bool = True) -> None:
        if durable:
            self.flush()  # the group's state never runs ahead of its experiments' records
        atomic_write(self.group_file, _encode(dict(data), str(self.group_file)), durable=durable)

    def update_group(self, **changes: Any) -> dict[str, Any]:
        """Read-modify-write of ``group.json`` (durable); the caller is the group's writer."""
        data = self.read_group()
        data.update(changes)
        self.write_group(data)
        return data

    def read_polyaxonfile(self) -> str:
        try:
            return self.polyaxonfile.read_text(encoding="utf-8")
        except OSError as e:
            raise StoreError(f"cannot read {self.polyaxonfile}: {_reason(e)}") from e

    # ----- experiments -----------------------------------------------------------------------
    def experiment_dir(self, exp_id: int) -> Path:
        return self.experiments_path / f"{exp_id:06d}"

    def paths(self, exp_id: int) -> ExperimentPaths:
        d = self.experiment_dir(exp_id)
        return ExperimentPaths(
            dir=d,
            record=d / RECORD_FILE,
            stdout=d / STDOUT_FILE,
            stderr=d / STDERR_FILE,
            metrics=d / METRICS_FILE,
            outputs=d / OUTPUTS_DIR,
            status=d / STATUS_FILE,
        )

    def experiments(self) -> list[Experiment]:
        """Every readable experiment, sorted by id. Lock-free; damaged records are skipped and
        listed by :meth:`damage`.

        Records unchanged since the previous call (same inode, size and mtime, and written long
        enough ago that a rewrite must change the mtime) come from a cache, so a driver that
        rescans every tick only parses what changed. The returned records are shared with that
        cache: treat them (and their dicts) as immutable and derive changes with ``with_``.
        """
        # Decoding 10,000 records allocates a million objects, none of them cyclic: without the
        # cyclic collector running over and over meanwhile, `polytune status` is ~15% faster.
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._experiments()
        finally:
            if collecting:
                gc.enable()

    def _experiments(self) -> list[Experiment]:
        root = self._exps
        cache = self._cache
        kept: dict[int, tuple[tuple[int, int, int], Experiment]] = {}
        found: list[tuple[int, Experiment]] = []
        damage: list[Damage] = []
        settled = time.time_ns() - _CACHE_SETTLE_NS
        try:
            entries = os.scandir(root)
        except FileNotFoundError:
            self._cache, self._damage = {}, [Damage(root, "experiments directory is missing")]
            return []
        except OSError as e:
            raise StoreError(f"cannot list {root}: {_reason(e)}") from e
        with entries:
            for entry in entries:
                name = entry.name
                if not (name.isdigit() and name.isascii()):
                    continue  # temp files, user files
                exp_id = int(name)
                record = f"{root}/{name}/{RECORD_FILE}"
                hit = cache.get(exp_id)
                try:
                    if hit is not None:
                        st = os.stat(record)
                        if hit[0] == (st.st_ino, st.st_size, st.st_mtime_ns):
                            kept[exp_id] = hit
                            found.append((exp_id, hit[1]))
                            continue
                    data, st = _read_bytes(record)
                except FileNotFoundError:
                    damage.append(Damage(record, f"missing {RECORD_FILE}", exp_id))
                    continue
                except OSError as e:
                    damage.append(Damage(record, f"unreadable: {_reason(e)}", exp_id))
                    continue
                result = _decode_record(data, exp_id)
                if isinstance(result, str):
                    damage.append(Damage(record, result, exp_id))
                    continue
                if st.st_mtime_ns < settled:
                    kept[exp_id] = ((st.st_ino, st.st_size, st.st_mtime_ns), result)
                found.append((exp_id, result))
        found.sort(key=lambda t: t[0])
        damage.extend(self._gaps(found, damage))
        damage.sort(key=lambda d: d.path)
        self._cache, self._damage = kept, damage
        return [exp for _, exp in found]

    def _gaps(self, found: list[tuple[int, Experiment]], damage: list[Damage]) -> list[Damage]:
        """Missing experiment directories: ids are allocated without gaps (a failed creation
        does not use one up), so an id below the highest one with no directory was deleted."""
        known = {exp_id for exp_id, _ in found}
        known.update(d.exp_id for d in damage if d.exp_id is not None)
        highest = max(known, default=0)
        if len(known) == highest:
            return []
        set_aside = self.set_aside_ids()
        return [
            Damage(
                f"{self._exps}/{i:06d}",
                f"experiment directory is missing (experiment {highest} exists)",
                i,
            )
            for i in range(1, highest)
            if i not in known and i not in set_aside
        ]

    def set_aside_ids(self) -> set[int]:
        """The ids of the experiments set aside (see ``SET_ASIDE_DIR``)."""
        try:
            names = os.listdir(self.path / SET_ASIDE_DIR)
        except OSError:
            return set()
        return {int(n) for n in names if n.isdigit() and n.isascii()}

    def set_aside(self, exp_id: int) -> Path:
        """Give up on a damaged or missing experiment: move its directory (all its files) to
        ``set-aside/`` — or, when it is missing, leave an empty directory there to say the gap is
        known — so that readers skip it and the search may run its configuration again. The
        caller holds the driver lock."""
        target_dir = self.path / SET_ASIDE_DIR
        target = target_dir / f"{exp_id:06d}"
        try:
            target_dir.mkdir(exist_ok=True)
            if os.path.lexists(target):
                target = target_dir / f"{exp_id:06d}-{time.time_ns()}"
            source = self.experiment_dir(exp_id)
            if os.path.lexists(source):
                os.rename(source, target)
            else:
                target.mkdir()
        except OSError as e:
            raise StoreError(
                f"cannot set experiment {exp_id} aside in {target_dir}: {_reason(e)}"
            ) from e
        _fsync_dir(str(target_dir))
        _fsync_dir(self._exps)
        self._cache.pop(exp_id, None)
        return target

    def damage(self) -> list[Damage]:
        """The records the last :meth:`experiments` call skipped, and why."""
        return list(self._damage)

    def get(self, exp_id: int) -> Experiment:
        record = self.paths(exp_id).record
        try:
            data, _ = _read_bytes(str(record))
        except FileNotFoundError:
            if record.parent.is_dir():
                raise StoreError(
                    f"experiment {exp_id} of group {self.name} is damaged: {record} is missing"
                ) from None
            raise ExperimentNotFound(f"group {self.name} has no experiment {exp_id}") from None
        except OSError as e:
            raise StoreError(f"cannot read {record}: {_reason(e)}") from e
        result = _decode_record(data, exp_id)
        if isinstance(result, str):
            raise StoreError(
                f"experiment {exp_id} of group {self.name} is damaged: {record}: {result}"
            )
        return result

    def save(self, exp: Experiment, durable: bool) -> None:
        """Atomically replace the record of an existing experiment.

        ``durable=True`` where the record becomes final or its status changes; ``False`` for
        transient updates (a running experiment's latest metrics).
        """
        record = self.paths(exp.id).record
        data = _encode(exp.to_json(), f"experiment {exp.id}")
        sync = self._sync
        try:
            atomic_write(record, data, durable=durable and sync is None)
            if durable and sync is not None:
                sync.add(str(record), str(record.parent))
        except StoreError:
            if not record.parent.is_dir():
                raise ExperimentNotFound(
                    f"group {self.name} has no experiment {exp.id} (create it with new_experiment)"
                ) from None
            raise

    def _scan_max_id(self) -> int:
        highest = 0
        try:
            with os.scandir(self._exps) as entries:
                for entry in entries:
                    name = entry.name
                    if name.isdigit() and name.isascii():
                        highest = max(highest, int(name))
            with os.scandir(self._root) as entries:
                for entry in entries:
                    if entry.name.startswith(_NEW_PREFIX):
                        self._remove_stale_new_dir(entry.path, entry.name)
        except OSError as e:
            raise StoreError(f"cannot list {self._exps}: {_reason(e)}") from e
        # A set-aside id is never given to a new experiment (no two experiments share an id).
        return max(highest, *self.set_aside_ids(), 0)

    @staticmethod
    def _remove_stale_new_dir(path: str, name: str) -> None:
        # ".new-000007-<pid>": left behind when a driver died between mkdir and rename.
        try:
            pid = int(name.rsplit("-", 1)[1])
        except (IndexError, ValueError):
            return
        if pid != os.getpid() and not procutil.is_alive(pid):
            shutil.rmtree(path, ignore_errors=True)

    def new_experiment(
        self,
        config: Mapping[str, Any],
        params: Mapping[str, Any],
        meta: Mapping[str, Any] | None = None,
        status: Status = Status.CREATED,
        created_at: float | None = None,
        restart_of: int | None = None,
        **fields: Any,
    ) -> Experiment:
        """Create the next experiment: its directory, ``outputs/`` and its record (durably).

        ``fields`` are further :class:`Experiment` fields (``command``, ``outputs_path`` to share
        another experiment's outputs, ...). ``outputs_path`` defaults to the new ``outputs/``.
        """
        if self._next_id is None:
            self._next_id = self._scan_max_id() + 1
        when = time.time() if created_at is None else created_at
        for _ in range(1000):
            exp_id = self._next_id  # consumed on success or collision, not on a failure
            final = self.experiment_dir(exp_id)
            # Staged next to experiments/, not inside it: experiments/ only ever holds complete
            # experiment directories, whoever lists it.
            staging = os.path.join(self._root, f"{_NEW_PREFIX}{exp_id:06d}-{os.getpid()}")
            values = dict(fields)
            values.setdefault("outputs_path", str(final / OUTPUTS_DIR))
            exp = Experiment(
                id=exp_id,
                config=dict(config),
                params=dict(params),
                meta=dict(meta or {}),
                status=status,
                created_at=when,
                restart_of=restart_of,
                **values,
            )
            data = _encode(exp.to_json(), f"experiment {exp_id}")
            try:
                shutil.rmtree(staging, ignore_errors=True)
                os.mkdir(staging)
                os.mkdir(os.path.join(staging, OUTPUTS_DIR))
                # durable: fsyncs the record and the staging directory that names it (on the
                # background thread when the driver runs one).
                atomic_write(os.path.join(staging, RECORD_FILE), data, durable=self._sync is None)
                try:
                    os.rename(staging, final)  # fails when `final` exists and is not empty
                except OSError as e:
                    if e.errno in (errno.EEXIST, errno.ENOTEMPTY):  # id taken: next one
                        shutil.rmtree(staging, ignore_errors=True)
                        self._next_id = exp_id + 1
                        continue
                    raise
            except OSError as e:
                shutil.rmtree(staging, ignore_errors=True)
                raise StoreError(
                    f"cannot create experiment {exp_id} in {self._exps}: {_reason(e)}"
                ) from e
            except StoreError:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            self._next_id = exp_id + 1
            if self._sync is None:
                _fsync_dir(self._exps)
            else:
                self._sync.add(os.path.join(final, RECORD_FILE), str(final))
                self._sync.add(None, self._exps)
            return exp
        raise StoreError(f"cannot allocate an experiment id in {self._exps}")

    # ----- the driver lock -------------------------------------------------------------------
    def read_driver(self) -> dict[str, Any] | None:
        """``driver.json`` (who holds or last held the lock), or None."""
        try:
            return _read_json_object(str(self.driver_file), "driver file")
        except (FileNotFoundError, StoreError):
            return None

    def driver_alive(self) -> bool | None:
        """Whether the driver named in ``driver.json`` still runs (None: another host)."""
        info = self.read_driver()
        if info is None or not isinstance(info.get("pid"), int):
            return False
        ticks = info.get("start_ticks")
        return procutil.is_alive(
            info["pid"],
            info.get("host"),
            info.get("boot_id"),
            ticks if isinstance(ticks, int) else None,
        )

    def _busy_message(self) -> str:
        info = self.read_driver()
        if info is None:
            return (
                f"group {self.name} is busy: another process holds {self.lock_file} "
                "(no driver.json yet)"
            )
        since = info.get("started_at")
        when = (
            time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(since))
            if isinstance(since, int | float)
            else ""
        )
        return (
            f"group {self.name} is busy: its driver (pid {info.get('pid')} on host "
            f"{info.get('host')}{when}) holds {self.lock_file}"
        )

    def acquire_driver_lock(self, extra: Mapping[str, Any] | None = None) -> DriverLock:
        """Take the group's lock without waiting and record the holder in ``driver.json``.

        Raises :class:`GroupBusy` (naming the holder's pid and host) when a live process holds
        it. A lock left by a dead process is free: ``flock`` locks die with their process. Keep
        the returned :class:`DriverLock` referenced (or use :meth:`lock`): the lock is released
        when it is garbage-collected.
        """
        # thread_local=False: the lock belongs to the process (the driver), whichever thread
        # later releases it.
        import filelock

        lock = filelock.FileLock(str(self.lock_file), timeout=0, thread_local=False)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise GroupBusy(self._busy_message()) from None
        except OSError as e:
            raise StoreError(f"cannot lock {self.lock_file}: {_reason(e)}") from e
        pid = os.getpid()
        info: dict[str, Any] = {
            "pid": pid,
            "host": procutil.hostname(),
            "boot_id": procutil.boot_id(),
            "start_ticks": procutil.process_start_ticks(pid),
            "started_at": time.time(),
            "polytune_version": __version__,
        }
        info.update(extra or {})
        try:
            atomic_write(self.driver_file, _encode(info, str(self.driver_file)), durable=False)
        except StoreError:
            lock.release()
            raise
        return DriverLock(self, lock, info)

    @contextlib.contextmanager
    def lock(self, extra: Mapping[str, Any] | None = None) -> Iterator[DriverLock]:
        """``with store.lock(): ...`` — :meth:`acquire_driver_lock`, released on exit."""
        held = self.acquire_driver_lock(extra)
        try:
            yield held
        finally:
            held.release()


# ----- groups in a workspace -----------------------------------------------------------------
def validate_group_name(name: str) -> str:
    """``name`` if it is a safe single path component, else :class:`UsageError`."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or len(name) > _MAX_NAME:
        raise UsageError(
            f"invalid group name {name!r}: use letters, digits, '.', '_' and '-' "
            f"(at most {_MAX_NAME} characters, not starting with '.')"
        )
    return name


def _safe_stem(stem: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip(".-")[:100].rstrip(".-")
    return cleaned or "group"


def _next_number(workspace: Path, stem: str) -> int:
    pattern = re.compile(re.escape(stem) + r"-(\d+)")
    highest = 0
    with contextlib.suppress(FileNotFoundError), os.scandir(workspace) as entries:
        for entry in entries:
            match = pattern.fullmatch(entry.name)
            if match:
                highest = max(highest, int(match.group(1)))
    return highest + 1


def create_group(
    workspace: str | os.PathLike[str],
    stem: str,
    name: str | None,
    group: Mapping[str, Any],
    polyaxonfile_text: str,
) -> GroupStore:
    """Create a new group directory in ``workspace`` and return its store.

    Named ``<stem>-<n>`` (``n`` one above the highest existing for that stem; ``stem`` is
    reduced to safe characters) unless ``name`` is given. ``os.mkdir`` is the arbiter, so
    concurrent creators always get distinct directories. ``group.json`` is written last and
    durably: a directory without it is not (yet) a group. ``created_at``, ``name`` and
    ``polytune_version`` are added to ``group.json`` when missing.
    """
    ws = Path(workspace)
    try:
        ws.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"cannot create workspace {ws}: {_reason(e)}") from e
    if name is not None:
        validate_group_name(name)
        path = ws / name
        try:
            os.mkdir(path)
        except FileExistsError:
            raise UsageError(f"group {name!r} already exists in {ws}") from None
        except OSError as e:
            raise StoreError(f"cannot create group directory {path}: {_reason(e)}") from e
    else:
        stem = _safe_stem(stem)
        for _ in range(10_000):
            path = ws / f"{stem}-{_next_number(ws, stem)}"
            try:
                os.mkdir(path)
                break
            except FileExistsError:
                continue  # a concurrent creator won this number: rescan
            except OSError as e:
                raise StoreError(f"cannot create group directory {path}: {_reason(e)}") from e
        else:
            raise StoreError(f"cannot find a free group name for {stem!r} in {ws}")
    store = GroupStore(path)
    data = dict(group)
    data["name"] = store.name
    data.setdefault("created_at", time.time())
    data.setdefault("polytune_version", __version__)
    try:
        try:
            os.mkdir(store.experiments_path)
        except OSError as e:
            raise StoreError(f"cannot create {store.experiments_path}: {_reason(e)}") from e
        atomic_write(store.polyaxonfile, polyaxonfile_text.encode("utf-8"), durable=True)
        store.write_group(data, durable=True)
        _fsync_dir(str(ws))
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)  # no half-made group left behind
        raise
    return store


def _is_group_dir(path: Path) -> bool:
    return (path / GROUP_FILE).is_file()


def open_group(path: str | os.PathLike[str]) -> GroupStore:
    """The store of an existing group directory (:class:`GroupNotFound` otherwise)."""
    p = Path(path)
    if not p.is_dir():
        raise GroupNotFound(f"group directory {p} does not exist")
    if not _is_group_dir(p):
        raise GroupNotFound(f"{p} is not a polytune group (no {GROUP_FILE})")
    store = GroupStore(p)
    store.read_group()  # damaged group.json → StoreError now, not later
    return store


def _created_at(path: Path) -> float:
    try:
        value = _read_json_object(str(path / GROUP_FILE), "group file").get("created_at")
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    except (OSError, StoreError):
        pass
    try:
        return (path / GROUP_FILE).stat().st_mtime
    except OSError:
        return 0.0


def list_groups(workspace: str | os.PathLike[str]) -> list[Path]:
    """The group directories of ``workspace``, oldest first (by ``created_at``, then name)."""
    ws = Path(workspace)
    try:
        candidates = [Path(e.path) for e in os.scandir(ws) if not e.name.startswith(".")]
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as e:
        raise StoreError(f"cannot list workspace {ws}: {_reason(e)}") from e
    groups = [p for p in candidates if _is_group_dir(p)]
    return sorted(groups, key=lambda p: (_created_at(p), _natural_key(p.name)))


def _natural_key(name: str) -> list[tuple[int, int | str]]:
    return [(1, int(t)) if t.isdigit() else (0, t) for t in re.split(r"(\d+)", name) if t]


def resolve_group(workspace: str | os.PathLike[str], ref: str | None) -> Path:
    """The group directory ``ref`` names: a group of ``workspace``, or the path of a group
    directory. ``None`` means the latest group of ``workspace``."""
    ws = Path(workspace)
    groups = list_groups(ws)
    if ref is None:
        if not groups:
            raise GroupNotFound(f"no experiment groups in {ws.absolute()}")
        return groups[-1].absolute()
    if _NAME_RE.fullmatch(ref) and _is_group_dir(ws / ref):
        return (ws / ref).absolute()
    as_path = Path(ref).expanduser()
    if _is_group_dir(as_path):
        return as_path.absolute()
    if as_path.is_dir():
        raise GroupNotFound(f"{as_path.absolute()} is not a polytune group (no {GROUP_FILE})")
    names = [p.name for p in groups]
    if not names:
        raise GroupNotFound(f"no group {ref!r}: there are no groups in {ws.absolute()}")
    hint = closest(ref, names)
    shown = ", ".join(names[-10:]) + (f" (and {len(names) - 10} older)" if len(names) > 10 else "")
    message = f"no group {ref!r} in {ws.absolute()}"
    if hint:
        message += f"; did you mean {hint!r}?"
    raise GroupNotFound(f"{message} (groups: {shown})")
