"""A cell's or a cache build's process: started in its own session with the package importable, its progress relayed,
its resident memory watched, killed at its deadline or with the launcher."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from benchmark.launch.child import PARENT_PID_VARIABLE
from benchmark.launch.host_memory import HostMemoryReading, HostMemoryWatch
from benchmark.progress import ProgressEvent, ProgressSink


def _read_lines(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


# Cell processes running now (a pool runs several): Ctrl-C in the launcher must stop them all.
_running: set[subprocess.Popen[str]] = set()
# Processes this launcher killed itself: their SIGKILL is not the kernel's out-of-memory killer.
_killed_here: set[int] = set()
_running_lock = threading.Lock()


def kill_running_children() -> None:
    """Kill every cell process (and its session) this launcher started and that still runs."""
    with _running_lock:
        for process in list(_running):
            _killed_here.add(process.pid)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


@dataclass
class ChildResult:
    final: ProgressEvent | None  # the child's "done" event (None if it died first)
    returncode: int
    timed_out: bool
    host_memory: HostMemoryReading | None = None  # the last reading of the child's resident memory
    ended_at: float = 0.0  # time.monotonic() when the child was seen to end
    killed_here: bool = False  # this launcher sent the SIGKILL (interrupted pool)


def _child_environment(extra_environment: dict[str, str]) -> dict[str, str]:
    """This process's environment for a child, with the package importable and this PID to watch."""
    # The child checks this PID so that it stops if this process died before it could arm its parent-death signal.
    environment = {
        **os.environ,
        **extra_environment,
        "PYTHONUNBUFFERED": "1",
        PARENT_PID_VARIABLE: str(os.getpid()),
    }
    package_root = str(Path(__file__).resolve().parents[2])
    environment["PYTHONPATH"] = package_root + (
        os.pathsep + environment["PYTHONPATH"] if environment.get("PYTHONPATH") else ""
    )
    return environment


def run_child(
    command: list[str], log_path: Path, timeout_s: float, show: ProgressSink, extra_environment: dict[str, str]
) -> ChildResult:
    """Run one child in its own session, relay its progress events to `show`, kill it at the deadline.

    Ctrl-C or SIGTERM in the parent kills the child's whole session and re-raises.
    """
    environment = _child_environment(extra_environment)
    final: ProgressEvent | None = None
    timed_out = False
    with open(log_path, "a") as log:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=log, text=True, env=environment, start_new_session=True
        )
        with _running_lock:
            _running.add(process)
        lines: queue.Queue[str | None] = queue.Queue()
        reader = threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True)
        reader.start()
        deadline = time.monotonic() + timeout_s
        memory = HostMemoryWatch(process.pid)
        try:
            while True:
                memory.poll()
                try:
                    line = lines.get(timeout=0.2)
                except queue.Empty:
                    if time.monotonic() > deadline:
                        timed_out = True
                        os.killpg(process.pid, signal.SIGKILL)
                        break
                    continue
                if line is None:
                    break
                event = ProgressEvent.from_json(line)
                if event is None:
                    log.write(line)  # stray prints from libraries belong in the log, not the progress channel
                    continue
                if event.kind == "done":
                    final = event
                show(event)
        except KeyboardInterrupt:
            # The child runs in its own session, so the terminal's Ctrl-C does not reach it: stop it here.
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            with _running_lock:
                _running.discard(process)
            raise
        process.wait()
        ended_at = time.monotonic()
        reader.join(timeout=5)
        with _running_lock:
            _running.discard(process)
            killed_here = process.pid in _killed_here
            _killed_here.discard(process.pid)
    return ChildResult(final, process.returncode, timed_out, memory.last, ended_at, killed_here)
