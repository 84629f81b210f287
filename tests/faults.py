"""Injected write failures at the store's write boundary: ``os.write``, ``os.replace``,
``os.fsync`` and ``os.mkdir`` fail with an errno (ENOSPC, EIO...) once a number of calls on files
under a given directory have succeeded — a disk that fills up (or breaks) during a run.

In-process: ``install(...)`` / ``uninstall()``. For a CLI process: set ``POLYTUNE_TEST_FAULT``
to ``"<root>:<op>:<after>:<errno>"`` and run ``python tests/faults.py <polytune args>``.
"""

from __future__ import annotations

import errno
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

OPS = ("write", "replace", "fsync", "mkdir")
_real: dict[str, Callable[..., Any]] = {}


def _fd_path(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


def install(root: str, op: str, after: int, err: int = errno.ENOSPC) -> dict[str, Any]:
    """From the ``after + 1``-th ``op`` call on a file under ``root`` on, fail with ``err``
    (a full disk stays full). Returns a dict that counts the ``"calls"`` seen and the ones that
    ``"failed"``, and names the ``"threads"`` that saw a failure."""
    if op not in OPS:
        raise ValueError(op)
    uninstall()
    real = getattr(os, op)
    _real[op] = real
    seen: dict[str, Any] = {"calls": 0, "failed": 0, "threads": set()}
    lock = threading.Lock()
    root = os.path.realpath(root)

    def fake(*args: Any, **kwargs: Any) -> Any:
        if op in ("write", "fsync"):
            target = _fd_path(args[0])
        else:
            target = os.path.realpath(os.fspath(args[1] if op == "replace" else args[0]))
        if target.startswith(root):
            with lock:
                seen["calls"] += 1
                fail = seen["calls"] > after
                seen["failed"] += fail
                if fail:
                    seen["threads"].add(threading.current_thread().name)
            if fail:
                raise OSError(err, os.strerror(err))
        return real(*args, **kwargs)

    setattr(os, op, fake)
    return seen


def uninstall() -> None:
    for op, real in _real.items():
        setattr(os, op, real)
    _real.clear()


if __name__ == "__main__":
    root, op, after, err = os.environ["POLYTUNE_TEST_FAULT"].rsplit(":", 3)
    install(root, op, int(after), int(err))
    from polytune.cli import main

    main(sys.argv[1:], prog_name="polytune")
