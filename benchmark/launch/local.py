"""Run cells one after another, each in its own subprocess, with a rich progress bar on stderr.

A subprocess per cell gives every cell a fresh CUDA context and clean peak counters, and
an OOM, crash or hang in one cell is recorded as that cell's row without stopping the suite.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from benchmark.results.cell_row import describe_cell
from benchmark.results.schema import empty_row
from benchmark.results.store import cell_file_name, write_row
from benchmark.suite.matrix import Cell, config_hash

LOG_TAIL_CHARS = 1500
# The per-cell program; tests swap it for one that crashes or hangs.
CELL_COMMAND = [sys.executable, "-m", "benchmark.launch.cell_main"]


@dataclass
class CellOutcome:
    cell_id: str
    status: str
    error: str | None
    row_path: Path


def _read_lines(stream, lines: "queue.Queue[str | None]") -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _log_tail(log_path: Path) -> str:
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-LOG_TAIL_CHARS:].strip()


def _fallback_row(cell: Cell, run_id: str, status: str, error: str, started: dt.datetime) -> dict[str, Any]:
    row = empty_row()
    describe_cell(cell.config, row)
    row.update(run_id=run_id, config_hash=config_hash(cell.config), status=status, error=error,
               start_time=started, end_time=dt.datetime.now(dt.timezone.utc))
    return row


def run_cell_subprocess(cell: Cell, run_dir: Path, run_id: str, progress: Progress | None = None,
                        step_task: Any = None) -> CellOutcome:
    file_stem = cell_file_name(cell.cell_id).removesuffix(".parquet")
    cell_path = run_dir / "cells" / f"{file_stem}.json"
    log_path = run_dir / "logs" / f"{file_stem}.log"
    row_path = run_dir / cell_file_name(cell.cell_id)
    cell_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cell_path.write_text(json.dumps(cell.config, indent=2, sort_keys=True))
    started = dt.datetime.now(dt.timezone.utc)
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    package_root = str(Path(__file__).resolve().parents[2])
    environment["PYTHONPATH"] = package_root + (os.pathsep + environment["PYTHONPATH"] if environment.get("PYTHONPATH") else "")
    timeout_s = float(cell.config["timeout_s"])
    final: dict[str, Any] = {}
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [*CELL_COMMAND, str(cell_path), str(row_path), run_id],
            stdout=subprocess.PIPE, stderr=log, text=True, env=environment, start_new_session=True,
        )
        lines: "queue.Queue[str | None]" = queue.Queue()
        reader = threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True)
        reader.start()
        deadline = time.monotonic() + timeout_s
        timed_out = False
        try:
            while True:
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
                message = _parse(line, log)
                if message is None:
                    continue
                if message.get("event") == "done":
                    final = message
                if progress is not None and step_task is not None:
                    _show(progress, step_task, cell.cell_id, message)
        except KeyboardInterrupt:
            # The cell runs in its own session, so the terminal's Ctrl-C does not reach it: stop it here.
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            write_row(row_path, _fallback_row(cell, run_id, "crashed", "interrupted (Ctrl-C or SIGTERM) while running", started))
            raise
        process.wait()
        reader.join(timeout=5)
    if timed_out:
        error = f"cell exceeded its timeout of {timeout_s:.0f} s and was killed (log: {log_path})"
        write_row(row_path, _fallback_row(cell, run_id, "timeout", error, started))
        return CellOutcome(cell.cell_id, "timeout", error, row_path)
    if not final or not row_path.exists():
        reason = f"signal {-process.returncode}" if process.returncode < 0 else f"exit code {process.returncode}"
        error = f"cell process died ({reason}) before writing its row; log tail:\n{_log_tail(log_path)}"
        write_row(row_path, _fallback_row(cell, run_id, "crashed", error, started))
        return CellOutcome(cell.cell_id, "crashed", error, row_path)
    return CellOutcome(cell.cell_id, final["status"], final.get("error"), row_path)


def _parse(line: str, log) -> dict[str, Any] | None:
    try:
        message = json.loads(line)
        return message if isinstance(message, dict) else None
    except json.JSONDecodeError:
        log.write(line)  # stray prints from libraries belong in the log, not the progress channel
        return None


def _show(progress: Progress, task: Any, cell_id: str, message: dict[str, Any]) -> None:
    if message.get("event") == "phase":
        progress.update(task, description=f"{cell_id} [{message['phase']}]", total=message.get("total_steps"), completed=0)
    elif message.get("event") == "step":
        progress.update(task, completed=message["step"], total=message["total_steps"])


def run_cells(cells: list[Cell], run_dir: Path, run_id: str, console: Console) -> list[CellOutcome]:
    outcomes: list[CellOutcome] = []
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=False) as progress:
        suite_task = progress.add_task("cells", total=len(cells))
        step_task = progress.add_task("", total=None)
        for cell in cells:
            progress.update(step_task, description=f"{cell.cell_id} [starting]", completed=0, total=None)
            outcome = run_cell_subprocess(cell, run_dir, run_id, progress, step_task)
            outcomes.append(outcome)
            marker = "[green]ok[/]" if outcome.status == "ok" else f"[red]{outcome.status}[/]"
            progress.console.print(f"{marker} {cell.cell_id}" + (f": {outcome.error.splitlines()[0]}" if outcome.error else ""))
            progress.advance(suite_task)
        progress.update(step_task, visible=False)
    return outcomes
