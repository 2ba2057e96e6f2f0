"""What every cell and cache-build child process does first: stop when its parent does.

A CI timeout kills `mmbench run` with SIGKILL, which no handler in the parent can see. On Linux the
kernel then sends the child SIGTERM (`prctl(PR_SET_PDEATHSIG)`); elsewhere a watchdog thread notices
the re-parenting. Either way the child raises `CellStopped`, cleans its temporary files on the way
out and writes no row: the cell never finished, so a resumed run runs it again.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

PARENT_PID_VARIABLE = "MMBENCH_PARENT_PID"
PR_SET_PDEATHSIG = 1
EXIT_STOPPED = 143  # 128 + SIGTERM, what a shell reports for a terminated process


class CellStopped(BaseException):
    """The parent died or asked the cell to stop: end now and write no row (a BaseException, so no handler swallows
    it)."""


def _raise_stopped(signum: int, frame: object) -> None:
    raise CellStopped(f"stopped by signal {signum} (the mmbench run that started this cell ended)")


def _parent_death_signal(signum: int = signal.SIGTERM) -> bool:
    """Ask the kernel for `signum` when the parent dies; False where prctl does not exist."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    result: int = libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
    return result == 0


# torchrun's agent sets this in every rank it starts.
TORCHRUN_VARIABLE = "TORCHELASTIC_RUN_ID"


def started_by_torchrun() -> bool:
    return TORCHRUN_VARIABLE in os.environ and "LOCAL_RANK" in os.environ


def stop_rank_with_agent() -> None:
    """A rank of a distributed cell ends the moment torchrun's agent says so, or dies: when one rank fails, the
    agent sends the others SIGTERM, and a rank blocked inside a collective (native code, where no Python handler
    runs) must not wait for the collective's timeout. So SIGTERM keeps its default action, and the agent's death
    sends SIGKILL. The launcher writes the row of a cell whose ranks did not finish (launch/rank_failures.py)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    parent = os.getppid()
    if not _parent_death_signal(signal.SIGKILL):
        threading.Thread(target=_watch_parent, args=(parent,), name="parent-watchdog", daemon=True).start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)


def stop_with_parent() -> None:
    """Install the SIGTERM handler and the parent-death signal; stop at once if the parent is already gone."""
    if started_by_torchrun():
        stop_rank_with_agent()
        return
    signal.signal(signal.SIGTERM, _raise_stopped)
    expected = os.environ.get(PARENT_PID_VARIABLE)
    if not _parent_death_signal() and expected:
        threading.Thread(target=_watch_parent, args=(int(expected),), name="parent-watchdog", daemon=True).start()
    # The parent may have died between our fork and the prctl call: then no signal will ever come.
    if expected and os.getppid() != int(expected):
        raise CellStopped("the mmbench run that started this cell ended before the cell began")
