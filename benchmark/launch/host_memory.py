"""The host memory of a cell's process, read by the launcher while the cell runs.

When a cell outgrows the machine's memory, the kernel's out-of-memory killer ends it with SIGKILL: no handler
runs, no row is written, and the launcher only sees the signal. The launcher therefore reads the child's resident
memory itself, every READ_EVERY_S, from outside (no cooperation from the child, so a reading exists whatever phase
the cell was in), and the crash row quotes the last reading. Reading /proc/<pid>/status takes microseconds.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

READ_EVERY_S = 0.25
GIB = 1024**3


@dataclass(frozen=True)
class HostMemoryReading:
    rss_bytes: int
    peak_bytes: int | None  # the process's high-water mark (Linux VmHWM), None where not reported
    taken_at: float  # time.monotonic()

    def describe(self, ended_at: float) -> str:
        peak = f", peak {self.peak_bytes / GIB:.2f} GiB" if self.peak_bytes is not None else ""
        before = max(ended_at - self.taken_at, 0.0)
        return f"{self.rss_bytes / GIB:.2f} GiB resident{peak}, {before:.1f} s before it died"


def read_host_memory(pid: int) -> HostMemoryReading | None:
    """The resident and peak memory of process `pid`, or None when it is gone (or cannot be read)."""
    now = time.monotonic()
    try:
        with open(f"/proc/{pid}/status") as status:
            fields = dict(line.split(":", 1) for line in status if ":" in line)
        rss = int(fields["VmRSS"].split()[0]) * 1024  # "123456 kB"
        peak = int(fields["VmHWM"].split()[0]) * 1024 if "VmHWM" in fields else None
        return HostMemoryReading(rss, peak, now)
    except (OSError, KeyError, ValueError, IndexError):
        if os.path.exists("/proc/self/status"):
            return None  # gone, or a zombie (no VmRSS): the last reading stands
    try:  # no /proc (macOS): psutil's resident set size
        import psutil

        return HostMemoryReading(int(psutil.Process(pid).memory_info().rss), None, now)
    except Exception:  # noqa: BLE001 - a process that just ended, or no psutil: no reading
        return None


class HostMemoryWatch:
    """The last reading of one child's host memory; `poll` reads again when READ_EVERY_S has passed."""

    def __init__(self, pid: int):
        self.pid = pid
        self.last: HostMemoryReading | None = None
        self._next = 0.0

    def poll(self) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + READ_EVERY_S
        reading = read_host_memory(self.pid)
        if reading is not None and reading.rss_bytes > 0:  # an exiting process reads 0: keep the last real one
            self.last = reading
