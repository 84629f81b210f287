"""The keeper: the leader of a Dask experiment's process group, on the worker's machine.

Run as ``python -I -S _keeper.py <worker pid> <script>`` (standard library only, no polytune
import, so it starts in milliseconds) in a new session by the guard (``dask.run_guarded``). It
runs ``/bin/sh -c <script>`` as its child, in its own group, and exits with the shell's status
(the same exit code, or killed by the same signal).

Why it exists: ``PR_SET_PDEATHSIG`` only reaches the process that set it, so setting it on the
shell would leave its children (the real training program) running when the worker dies. The
keeper sets it on itself with SIGUSR1 and answers by SIGKILLing its whole group: a worker that
is killed (OOM, ``kill -9``, a lost node) takes the experiment's processes with it. TERM, INT and
HUP are caught (not ignored: handlers are reset at ``exec``, so the command still sees them), so
a stop's TERM to the group reaches the command while the keeper stays to report its status; the
guard's KILL after the grace ends everything.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys

_PR_SET_PDEATHSIG = 1


def _kill_group(*_: object) -> None:
    os.killpg(0, signal.SIGKILL)


def main(argv: list[str]) -> int:
    parent, script = int(argv[1]), argv[2]
    signal.signal(signal.SIGUSR1, _kill_group)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: None)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGUSR1, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the worker died before the prctl
        _kill_group()
    child = subprocess.Popen(["/bin/sh", "-c", script])
    rc = child.wait()
    if rc < 0:
        signal.signal(-rc, signal.SIG_DFL)
        os.kill(os.getpid(), -rc)
    return rc if rc >= 0 else 128 - rc


if __name__ == "__main__":
    sys.exit(main(sys.argv))
