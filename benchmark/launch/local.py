"""Run cells one after another, each in its own subprocess, with a rich progress bar on stderr.

A subprocess per cell gives every cell a fresh CUDA context and clean peak counters, and
an OOM, crash or hang in one cell is recorded as that cell's row without stopping the suite.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from benchmark.launch.child_process import ChildResult, run_child
from benchmark.launch.device_lock import device_keys, device_locks
from benchmark.launch.devices import PoolDevice
from benchmark.launch.placement import LAUNCHER, placement_columns
from benchmark.launch.rank_failures import clear_rank_failures, rank_died, read_rank_failures, root_cause
from benchmark.launch.resume import finished_elsewhere, launcher_hardware_columns
from benchmark.progress import BarRenderer, ProgressEvent, ProgressSink
from benchmark.results.cell_row import begin_row, finish_row
from benchmark.results.run_status import SKIPPED_MARK
from benchmark.results.store import cell_file_name, read_row, write_row
from benchmark.suite.matrix import Cell

LOG_TAIL_CHARS = 1500
# torchrun's summary of failed ranks, at the end of a distributed cell's log.
DISTRIBUTED_LOG_TAIL_CHARS = 20000
# The per-cell program; tests swap it for one that crashes or hangs.
CELL_COMMAND = [sys.executable, "-m", "benchmark.launch.cell_main"]
CACHE_COMMAND = [sys.executable, "-m", "benchmark.launch.cache_build_main"]
# A distributed cell's: torchrun, which starts CELL_COMMAND's module on every rank.
RANK_LAUNCHER_COMMAND = [sys.executable, "-m", "benchmark.launch.rank_launcher"]


@dataclass
class CellOutcome:
    cell_id: str
    status: str
    error: str | None
    row_path: Path


def _log_tail(log_path: Path, chars: int = LOG_TAIL_CHARS) -> str:
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-chars:].strip()


def _fallback_row(
    cell: Cell,
    run_id: str,
    status: str,
    error: str,
    started: dt.datetime,
    device_lock: str,
    environment: dict[str, str],
) -> dict[str, Any]:
    """The row of a cell that did not write its own: what the launcher knows of it and of this machine."""
    row = begin_row(cell.config, run_id, device_lock, started, placement_columns({**os.environ, **environment}))
    row.update(launcher_hardware_columns(cell.config))
    row.update(cell.prediction or {})
    return finish_row(row, status, error)


@dataclass(frozen=True)
class CellFiles:
    """Where one cell's JSON, prediction, log and row go in its run directory."""

    cell_json: Path
    log: Path
    row: Path
    prediction: Path | None  # the prediction's row columns, for the cell process to put on its row

    @classmethod
    def prepare(cls, cell: Cell, run_dir: Path) -> CellFiles:
        stem = cell_file_name(cell.cell_id).removesuffix(".parquet")
        cells = run_dir / "cells"
        prediction = cells / f"{stem}.prediction.json" if cell.prediction is not None else None
        files = cls(cells / f"{stem}.json", run_dir / "logs" / f"{stem}.log", run_dir / f"{stem}.parquet", prediction)
        files.cell_json.parent.mkdir(parents=True, exist_ok=True)
        files.log.parent.mkdir(parents=True, exist_ok=True)
        files.cell_json.write_text(json.dumps(cell.config.to_dict(), indent=2, sort_keys=True))
        if prediction is not None:
            prediction.write_text(json.dumps(cell.prediction, indent=2, sort_keys=True))
        return files


def _environment(device: PoolDevice | None, launcher: str) -> dict[str, str]:
    return {LAUNCHER: launcher, **(device.environment if device is not None else {})}


def _lock(cell: Cell, lock: bool, device: PoolDevice | None, say: Callable[[str], None]) -> Any:
    if not lock:
        return contextlib.nullcontext()
    return device_locks(list(device.lock_keys) if device is not None else device_keys(cell.config), say)


def _bar(progress: Progress | None, line: Any, label: str) -> ProgressSink:
    """Where a child's progress events go: one line of the progress display, labelled, or nowhere."""
    renderer = BarRenderer(progress, line) if progress is not None and line is not None else None

    def show(event: ProgressEvent) -> None:
        if renderer is not None:
            renderer.show(event, label)

    return show


def _say(progress: Progress | None) -> Callable[[str], None]:
    def say(text: str) -> None:
        (progress.console if progress is not None else Console(stderr=True)).print(text, markup=False, highlight=False)

    return say


def record_crash(
    cell: Cell,
    run_dir: Path,
    run_id: str,
    error: str,
    lock: bool = True,
    device: PoolDevice | None = None,
    launcher: str = "local",
    status: str = "crashed",
    started: dt.datetime | None = None,
) -> CellOutcome:
    """The row a launcher writes for a cell that could not write its own."""
    row_path = run_dir / cell_file_name(cell.cell_id)
    row_path.parent.mkdir(parents=True, exist_ok=True)
    started = started or dt.datetime.now(dt.timezone.utc)
    device_lock_state = "held" if lock else "disabled"
    row = _fallback_row(cell, run_id, status, error, started, device_lock_state, _environment(device, launcher))
    write_row(row_path, row)
    return CellOutcome(cell.cell_id, status, error, row_path)


def _build_caches(
    files: CellFiles, timeout_s: float, show: ProgressSink, environment: dict[str, str]
) -> tuple[list[str], tuple[str, str] | None]:
    """Run the cache-build process: (digests it built, None) or ([], (status, error)) when it failed."""
    build = run_child([*CACHE_COMMAND, str(files.cell_json)], files.log, timeout_s, show, environment)
    if build.timed_out:
        reason = f"cache build exceeded the cell timeout of {timeout_s:.0f} s and was killed (log: {files.log})"
        return [], ("timeout", reason)
    if build.final is None:
        return [], ("crashed", _died(build, files.log, "cache build"))
    if build.final.status != "ok":
        failure = build.final.error or _died(build, files.log, "cache build")
        return [], (build.final.status or "crashed", failure)
    return list(build.final.built), None


def prebuild_cell_caches(
    cell: Cell,
    run_dir: Path,
    progress: Progress | None = None,
    line: Any = None,
    lock: bool = True,
    device: PoolDevice | None = None,
) -> None:
    """Build a cached cell's hidden-state caches ahead of its run (a pool does this before the fan-out).

    A failure here is not the cell's row: the cell meets it again in its own run and records it there.
    """
    files = CellFiles.prepare(cell, run_dir)
    label = f"{device.label}: caches of {cell.cell_id}" if device is not None else f"caches of {cell.cell_id}"
    show = _bar(progress, line, label)
    with _lock(cell, lock, device, _say(progress)):
        _build_caches(files, float(cell.config.timeout_s), show, _environment(device, "pool"))


def run_cell_subprocess(
    cell: Cell,
    run_dir: Path,
    run_id: str,
    progress: Progress | None = None,
    step_task: Any = None,
    lock: bool = True,
    device: PoolDevice | None = None,
    launcher: str = "local",
    label: str | None = None,
) -> CellOutcome:
    """Build the cell's caches in one process (if it has any), then run the cell in a fresh one; always leave a row.

    With `lock`, both hold the device's lock, so no other mmbench run times a cell on that device meanwhile.
    A pooled `device` pins both processes to it (CUDA_VISIBLE_DEVICES) and names it on the row.
    """
    files = CellFiles.prepare(cell, run_dir)
    files.log.write_text("")
    started = dt.datetime.now(dt.timezone.utc)
    timeout_s = float(cell.config.timeout_s)
    environment = _environment(device, launcher)
    show = _bar(progress, step_task, label or cell.cell_id)

    def record(status: str, error: str) -> CellOutcome:
        return record_crash(cell, run_dir, run_id, error, lock, device, launcher, status, started)

    try:
        with _lock(cell, lock, device, _say(progress)):
            done_by = finished_elsewhere(cell, run_dir) if lock else None
            if done_by is not None:
                reason = f"finished by another run meanwhile ({done_by}); not measured twice"
                files.log.write_text(f"{SKIPPED_MARK} {reason}\n")
                return CellOutcome(cell.cell_id, "skipped", reason, done_by)
            built: list[str] = []
            if cell.uses_cache:
                built, failure = _build_caches(files, timeout_s, show, environment)
                if failure is not None:
                    return record(*failure)
            distributed = cell.config.train.distributed != "none"
            if distributed:
                clear_rank_failures(files.row)
            command = [
                *([*RANK_LAUNCHER_COMMAND, str(cell.config.train.nproc_per_node)] if distributed else CELL_COMMAND),
                str(files.cell_json),
                str(files.row),
                run_id,
                "--built",
                ",".join(built),
                "--device-lock",
                "held" if lock else "disabled",
                *(["--prediction", str(files.prediction)] if files.prediction is not None else []),
            ]
            result = run_child(command, files.log, timeout_s, show, environment)
    except KeyboardInterrupt:
        record("crashed", "interrupted (Ctrl-C or SIGTERM) while running")
        raise
    if result.timed_out:
        return record("timeout", f"cell exceeded its timeout of {timeout_s:.0f} s and was killed (log: {files.log})")
    if distributed:
        failed = _distributed_failure(cell, files, result)
        if failed is not None:
            return _record_rank_failure(failed, files, record)
    if result.final is None or not files.row.exists():
        return record("crashed", _died(result, files.log, "cell"))
    return CellOutcome(cell.cell_id, result.final.status or "crashed", result.final.error, files.row)


@dataclass(frozen=True)
class _RankFailed:
    status: str
    error: str
    rank: int | None


def _distributed_failure(cell: Cell, files: CellFiles, result: ChildResult) -> _RankFailed | None:
    """How a distributed cell failed, from its ranks' failure files and torchrun's summary (None: it did not).

    A rank that failed first-hand (an exception, running out of memory) is the cause; a rank that died without a
    word (killed, a native crash) is named by torchrun's summary; a cell whose ranks all failed because another
    stopped answering is a hang, named by the first of them."""
    failures = read_rank_failures(files.row)
    cause = root_cause(failures)
    reported = {failure.rank for failure in failures}
    died = rank_died(_log_tail(files.log, DISTRIBUTED_LOG_TAIL_CHARS), reported) if result.returncode != 0 else None
    ranks = cell.config.train.nproc_per_node
    if cause is not None and not cause.collateral:
        return _RankFailed(cause.status, cause.describe(), cause.rank)
    if died is not None:
        rank, code = died
        how = f"signal {-code}" if code < 0 else f"exit code {code}"
        if code == -signal.SIGKILL:
            how += ", SIGKILL: killed, most likely by the kernel's out-of-memory killer or by hand"
        return _RankFailed("crashed", f"rank {rank} of {ranks} died ({how}) without writing its failure", rank)
    if cause is not None:
        return _RankFailed(cause.status, cause.describe(), cause.rank)
    if result.returncode != 0 and result.final is not None and result.final.status == "ok":
        # Rank 0 finished its row, yet torchrun failed: a rank ended badly after the row was written.
        return _RankFailed("crashed", _died(result, files.log, "distributed cell"), None)
    return None


def _record_rank_failure(
    failed: _RankFailed, files: CellFiles, record: Callable[[str, str], CellOutcome]
) -> CellOutcome:
    """The cell's one row: rank 0's (with what it measured before the failure) when it wrote one, else the
    launcher's; its status and error are the root cause's."""
    if not files.row.exists():
        outcome = record(failed.status, failed.error)
        row = read_row(outcome.row_path)
    else:
        row = read_row(files.row)
        row.update(status=failed.status, error=failed.error)
    row["failed_rank"] = failed.rank
    write_row(files.row, row)
    return CellOutcome(row["cell_id"], failed.status, failed.error, files.row)


def status_marker(status: str) -> str:
    """A cell's status in the progress display, in rich markup: green ok, yellow skipped, red anything else."""
    colour = {"ok": "green", "skipped": "yellow"}.get(status, "red")
    return f"[{colour}]{status}[/]"


def _died(result: ChildResult, log_path: Path, what: str) -> str:
    returncode = result.returncode
    reason = f"signal {-returncode}" if returncode < 0 else f"exit code {returncode}"
    if returncode == -signal.SIGKILL and not result.killed_here:
        # Neither the timeout nor this launcher sent it (both are recorded otherwise): the usual sender is the
        # kernel's out-of-memory killer, whose own record is the kernel log (often unreadable without privileges).
        memory = result.host_memory
        last = f"last host-memory reading: {memory.describe(result.ended_at)}" if memory else "no host-memory reading"
        reason = (
            f"signal 9, SIGKILL, not sent by mmbench: most likely the kernel's out-of-memory killer, the machine's "
            f"memory exhausted; {last}"
        )
    elif returncode == -signal.SIGKILL:
        reason = "signal 9, SIGKILL, sent by mmbench: the run was interrupted"
    return f"{what} process died ({reason}) before writing its row; log tail:\n{_log_tail(log_path)}"


def run_cells(
    cells: list[Cell], run_dir: Path, run_id: str, console: Console, lock: bool = True, launcher: str = "local"
) -> list[CellOutcome]:
    """The cells one at a time on this machine, with progress on `console`; rows name `launcher` (a plug-in that
    runs its cells this way names itself)."""
    outcomes: list[CellOutcome] = []
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=False) as progress:
        suite_task = progress.add_task("cells", total=len(cells))
        step_task = progress.add_task("", total=None)
        for cell in cells:
            progress.update(step_task, description=f"{cell.cell_id} [starting]", completed=0, total=None)
            outcome = run_cell_subprocess(cell, run_dir, run_id, progress, step_task, lock, launcher=launcher)
            outcomes.append(outcome)
            marker = status_marker(outcome.status)
            progress.console.print(
                f"{marker} {cell.cell_id}" + (f": {outcome.error.splitlines()[0]}" if outcome.error else "")
            )
            progress.advance(suite_task)
        progress.update(step_task, visible=False)
    return outcomes
