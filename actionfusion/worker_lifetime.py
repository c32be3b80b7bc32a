"""Worker processes end with the command that started them.

After ``kill -9`` of a command, its pool workers (children of the forkserver, or of the command
itself) would otherwise finish their current sample, or idle, for a minute or more, each holding
100 MB or more, and keep the resource tracker alive. :func:`end_with_main_process`, called in a pool's
worker initializer, ends the worker within about half a second of the main process's death:

- Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: the kernel kills the worker when its parent (the
  forkserver or the main process) exits; the forkserver itself exits when its pipe from the main
  process closes;
- everywhere: a daemon thread polls the main process and the worker's parent every
  :data:`ORPHAN_CHECK_S` seconds and exits the worker once either is gone.

An unfinished sample stays invisible (files are published atomically, the meta last); the next
run redoes it and removes the leftovers.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time

ORPHAN_CHECK_S = 0.5
PR_SET_PDEATHSIG = 1


def end_with_main_process(main_pid: int) -> None:
    """In a worker: exit when ``main_pid`` (the command's process) or this worker's parent dies."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # no prctl: the watchdog below still works
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    parent = os.getppid()
    if not pid_alive(main_pid) or parent == 1:  # the command died before this worker started
        os._exit(1)
    threading.Thread(target=_exit_when_orphaned, args=(main_pid, parent), name="orphan-watch", daemon=True).start()


def _exit_when_orphaned(main_pid: int, parent_pid: int, interval_s: float = ORPHAN_CHECK_S) -> None:
    while True:
        time.sleep(interval_s)
        if os.getppid() != parent_pid or not pid_alive(main_pid):
            os._exit(1)


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
