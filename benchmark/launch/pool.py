"""Fill every GPU of a box: one cell per device at a time, each cell still in its own processes.

Workers, one per device, take the next cell from a shared queue, so a device whose cell ended in
OOM or a crash simply takes the next one. The hidden-state caches that cached cells need are built
first, once per distinct cache, before the fan-out (a lock in the cache store keeps builders that
still meet from colliding). The progress display has one line per device.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from benchmark.launch.child_process import kill_running_children
from benchmark.launch.devices import PoolDevice
from benchmark.launch.local import (
    CellOutcome,
    prebuild_cell_caches,
    record_crash,
    run_cell_subprocess,
    status_marker,
)
from benchmark.suite.matrix import Cell


def cache_group(cell: Cell) -> str:
    """What a cell's hidden-state caches depend on: cells alike in it share their caches (repeats, batch sizes)."""
    config = cell.config.to_dict()
    return json.dumps(
        [config["dataset"], config["towers"], config["method"], config["train"]["precision"], config["seed"]],
        sort_keys=True,
    )


def caches_to_prebuild(cells: list[Cell]) -> list[Cell]:
    """One cached cell per distinct cache group, in suite order."""
    seen: set[str] = set()
    chosen = []
    for cell in cells:
        if not cell.uses_cache:
            continue
        group = cache_group(cell)
        if group not in seen:
            seen.add(group)
            chosen.append(cell)
    return chosen


class PlacementQueue:
    """The pool's pending cells, largest predicted peak first (a long, large cell started last would leave the
    other GPUs idle at the end, and the largest need the largest free device), each handed to a device whose memory
    holds its predicted peak. A cell no device holds goes to the largest device (it was asked to run anyway); a cell
    or device without a prediction or a known memory is placed anywhere."""

    def __init__(self, cells: list[Cell], devices: list[PoolDevice]):
        self.cells = sorted(cells, key=lambda cell: -(cell.predicted_peak_gib or 0.0))  # stable: suite order in ties
        memories = [device.memory_gib for device in devices]
        known = [memory for memory in memories if memory is not None]
        self.largest = max(known) if known and len(known) == len(memories) else None
        self.lock = threading.Lock()

    def _holds(self, device: PoolDevice, cell: Cell) -> bool:
        peak = cell.predicted_peak_gib
        if peak is None or device.memory_gib is None or peak <= device.memory_gib:
            return True
        return self.largest is not None and device.memory_gib >= self.largest

    def take(self, device: PoolDevice) -> Cell | None:
        """The largest pending cell `device` holds; None when it holds none of them (the rest wait for others)."""
        with self.lock:
            for index, cell in enumerate(self.cells):
                if self._holds(device, cell):
                    return self.cells.pop(index)
            return None


def ranks_needed(cell: Cell) -> int:
    """How many of the pool's devices a cell takes: one per rank for a distributed cell on GPUs, else one."""
    train = cell.config.train
    return train.ranks if train.device != "cpu" else 1


def gangs(devices: list[PoolDevice], size: int) -> list[PoolDevice]:
    """The pool's devices in disjoint groups of `size` (a distributed cell's ranks), in the pool's order."""
    if size == 1:
        return devices
    return [PoolDevice.gang(devices[start : start + size]) for start in range(0, len(devices) - size + 1, size)]


def run_pool(
    cells: list[Cell], run_dir: Path, run_id: str, console: Console, devices: list[PoolDevice], lock: bool = True
) -> list[CellOutcome]:
    """Every cell on the pool's devices. Cells on one device run first, then distributed cells, each on a gang of as
    many devices as it has ranks (disjoint gangs run side by side); a cell with more ranks than the pool has
    devices gets a row saying so."""
    outcomes: dict[str, CellOutcome] = {}
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    by_size: dict[int, list[Cell]] = {}
    for cell in cells:
        by_size.setdefault(ranks_needed(cell), []).append(cell)
    with Progress(*columns, console=console, transient=False) as progress:
        suite_task = progress.add_task("cells", total=len(cells))
        # Keyed by lock key: a gang's is its first device's, so a gang's progress goes on that device's line.
        lines = {device.lock_key: progress.add_task(f"{device.label}: idle", total=None) for device in devices}
        first = devices[0]
        for cell in caches_to_prebuild(cells):
            prebuild_cell_caches(cell, run_dir, progress, lines[first.lock_key], lock, first)
        for size in sorted(by_size):
            if size > len(devices):
                for cell in by_size[size]:
                    error = f"{size} ranks, one GPU each, and the pool has {len(devices)} device(s) (--gpus)"
                    outcomes[cell.cell_id] = record_crash(cell, run_dir, run_id, error, lock, None, "pool", "error")
                    progress.console.print(f"{status_marker('error')} {cell.cell_id}: {error}")
                    progress.advance(suite_task)
                continue
            _fill(by_size[size], gangs(devices, size), lines, progress, suite_task, outcomes, run_dir, run_id, lock)
        for line in lines.values():
            progress.update(line, visible=False)
    return [outcomes[cell.cell_id] for cell in cells if cell.cell_id in outcomes]


def _fill(
    cells: list[Cell],
    devices: list[PoolDevice],
    lines: dict[str, Any],
    progress: Progress,
    suite_task: Any,
    outcomes: dict[str, CellOutcome],
    run_dir: Path,
    run_id: str,
    lock: bool,
) -> None:
    """Run `cells` on `devices` (single devices or gangs), one worker per device, until none is left."""
    pending = PlacementQueue(cells, devices)

    def work(device: PoolDevice) -> None:
        line = lines[device.lock_key]
        while True:
            cell = pending.take(device)
            if cell is None:
                break
            label = f"{device.label}: {cell.cell_id}"
            progress.update(line, description=f"{label} [starting]", completed=0, total=None)
            try:
                outcome = run_cell_subprocess(cell, run_dir, run_id, progress, line, lock, device, "pool", label)
            except Exception as error:  # noqa: BLE001 - a launcher bug must still leave this cell a row
                outcome = record_crash(cell, run_dir, run_id, f"launcher error: {error!r}", lock, device, "pool")
            outcomes[cell.cell_id] = outcome
            marker = status_marker(outcome.status)
            first_line = f": {outcome.error.splitlines()[0]}" if outcome.error else ""
            progress.console.print(f"{marker} {cell.cell_id} on {device.label}{first_line}")
            progress.advance(suite_task)
        progress.update(line, description=f"{device.label}: idle", completed=0, total=None)

    workers = [threading.Thread(target=work, args=(device,), daemon=True) for device in devices]
    for worker in workers:
        worker.start()
    try:
        while any(worker.is_alive() for worker in workers):
            for worker in workers:
                worker.join(timeout=0.2)
    except KeyboardInterrupt:
        kill_running_children()  # each cell runs in its own session: Ctrl-C does not reach it
        for worker in workers:
            worker.join(timeout=10)
        raise
