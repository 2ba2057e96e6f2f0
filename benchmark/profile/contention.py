"""What else used the machine while a cell trained: other processes' CPU time, the load average.

The CPU figure is the machine's busy core-seconds over the training window minus this process's
(and its DataLoader workers'), divided by the window: how many cores something else kept busy.
Other processes on the GPU come from the NVML sampler.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

from benchmark.profile.tracker import Tracker
from benchmark.results.pieces import ContentionFigures

# More than half a core busy with other work, or any other process on the GPU, marks a row contended.
OTHER_BUSY_CORES_LIMIT = 0.5


def _machine_busy_seconds() -> float:
    times = psutil.cpu_times()
    idle = float(times.idle) + float(getattr(times, "iowait", 0.0))
    return float(sum(times)) - idle


def _own_cpu_seconds(root: int) -> float:
    """CPU time of process `root` and its live children (the DataLoader workers; a distributed cell's ranks)."""
    process = psutil.Process(root)
    total = float(sum(process.cpu_times()[:2]))
    for child in process.children(recursive=True):
        try:
            total += float(sum(child.cpu_times()[:2]))
        except psutil.Error:  # a worker that exited between listing and reading
            continue
    return total


@dataclass(frozen=True)
class Contention:
    other_busy_cores: float | None
    load_avg_1m: float | None
    other_gpu_processes: int | None
    contended: bool
    reason: str | None


class ContentionMonitor:
    def __init__(self, own_root: int | None = None) -> None:
        """`own_root`: the process whose tree is the cell (default this one; a distributed rank's is torchrun's)."""
        self._started: tuple[float, float, float] | None = None
        self.own_root = own_root or os.getpid()

    def start(self) -> None:
        self._started = (time.perf_counter(), _machine_busy_seconds(), _own_cpu_seconds(self.own_root))

    def stop(self, other_gpu_pids: set[int] | None, cpu_cell: bool) -> Contention:
        other_cores = None
        if self._started is not None:
            wall = time.perf_counter() - self._started[0]
            machine = _machine_busy_seconds() - self._started[1]
            own = _own_cpu_seconds(self.own_root) - self._started[2]
            other_cores = max(machine - own, 0.0) / wall if wall > 0 else None
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        return judge(other_cores, load, other_gpu_pids, cpu_cell)


def judge(other_cores: float | None, load: float | None, other_gpu_pids: set[int] | None, cpu_cell: bool) -> Contention:
    """A GPU cell is contended by other processes on its GPU; a CPU cell by other work on the CPU cores."""
    reasons = []
    if other_gpu_pids:
        reasons.append(
            f"{len(other_gpu_pids)} other process(es) on the GPU (pids {', '.join(map(str, sorted(other_gpu_pids)))})"
        )
    if cpu_cell and other_cores is not None and other_cores > OTHER_BUSY_CORES_LIMIT:
        reasons.append(
            f"other work kept {other_cores:.2f} CPU cores busy (load average {load:.2f})"
            if load is not None
            else f"other work kept {other_cores:.2f} CPU cores busy"
        )
    return Contention(
        other_cores,
        load,
        len(other_gpu_pids) if other_gpu_pids is not None else None,
        bool(reasons),
        "; ".join(reasons) or None,
    )


class ContentionTracker(Tracker[ContentionFigures]):
    """Contention over the `with` block: other work on the CPU cores, other processes on the GPU (`other_gpu_pids`
    gives those the memory tracker's NVML sampler saw; None without NVML)."""

    def __init__(self, other_gpu_pids: Callable[[], set[int] | None], cpu_cell: bool, own_root: int | None = None):
        super().__init__()
        self.monitor = ContentionMonitor(own_root)
        self.other_gpu_pids = other_gpu_pids
        self.cpu_cell = cpu_cell

    def start(self) -> None:
        self.monitor.start()

    def stop(self) -> ContentionFigures:
        found = self.monitor.stop(self.other_gpu_pids(), cpu_cell=self.cpu_cell)
        return ContentionFigures(
            found.contended, found.reason, found.other_gpu_processes, found.other_busy_cores, found.load_avg_1m
        )
