"""Resume: which cells of a suite already have a result in the results directory.

A cell counts as done on this machine when a row with its config hash, measured on the same
hardware, says `ok` (and, with --skip-failed, when it ended in any other status). Only pyarrow is
used, so `mmbench run` works where polars is not installed.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from benchmark.results.manifest import MANIFEST
from benchmark.results.store import result_files
from benchmark.suite.config import CellConfig
from benchmark.suite.matrix import Cell

_COLUMNS = ("config_hash", "status", "gpu_name", "cpu", "end_time")
# Scans of the store for a row another run wrote, repeated while files vanish under it (compaction).
_SCANS = 3


@dataclass(frozen=True)
class ResumePlan:
    to_run: list[Cell]
    done: list[Cell]  # an ok row exists
    failed_kept: list[Cell]  # failed before and skipped (--skip-failed)
    unreadable: list[str]  # result files that could not be read (named, not fatal)


def this_hardware(device: str) -> str:
    """The leaderboard's hardware label of the device a cell would run on: the GPU's name, else 'CPU <processor>'."""
    if device != "cpu":
        name = _gpu_name()
        if name is not None:
            return name
        if device == "cuda":
            return "cuda"
    return f"CPU {platform.processor() or platform.machine()}"


def launcher_hardware_columns(config: CellConfig) -> dict[str, Any]:
    """The hardware columns a row written by the launcher (crash, timeout) carries, so resume and reports place it."""
    import socket
    from importlib import metadata

    from benchmark import __version__

    gpu = _gpu_name() if config.train.device != "cpu" else None
    try:  # the launcher never imports torch (seconds, and a CUDA context on some builds): the installed version
        torch_version: str | None = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = None
    return {
        "mmbench_version": __version__,
        "torch_version": torch_version,
        "gpu_name": gpu,
        "cpu": platform.processor() or platform.machine(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python_version": platform.python_version(),
        "device": "cuda" if gpu else "cpu",
    }


def _gpu_name() -> str | None:
    """Through NVML, so the launcher never opens a CUDA context of its own on the device it measures."""
    try:
        import pynvml

        pynvml.nvmlInit()
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0].strip() or "0"
        handle = (
            pynvml.nvmlDeviceGetHandleByIndex(int(visible))
            if visible.isdigit()
            else pynvml.nvmlDeviceGetHandleByUUID(visible)
        )
        name = pynvml.nvmlDeviceGetName(handle)
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception:  # noqa: BLE001 - no NVML, no GPU, or a device NVML cannot name: not a GPU we can tell
        return None


def _row_hardware(row: dict[str, Any]) -> str:
    """The hardware label of a stored row, as `this_hardware` names the device a cell would run on."""
    return row.get("gpu_name") or f"CPU {row.get('cpu') or '?'}"


def _previous_outcomes(results_dir: Path) -> tuple[dict[tuple[str, str], str], list[str]]:
    """(config hash, hardware) -> the latest status recorded; plus unreadable files."""
    latest: dict[tuple[str, str], tuple[Any, str]] = {}
    unreadable = []
    if not results_dir.is_dir():
        return {}, []
    for path in result_files(results_dir):
        try:
            names = pq.read_schema(path).names
            table = pq.read_table(path, columns=[c for c in _COLUMNS if c in names])
        except Exception as error:  # noqa: BLE001 - pyarrow raises several types for corrupt files
            unreadable.append(f"{path}: {type(error).__name__}: {error}")
            continue
        if not {"config_hash", "status"} <= set(names):
            unreadable.append(f"{path}: not an mmbench result (no config_hash and status columns)")
            continue
        for row in table.to_pylist():
            key = (row.get("config_hash"), _row_hardware(row))
            ended = row.get("end_time")
            if key not in latest or (ended is not None and (latest[key][0] is None or ended >= latest[key][0])):
                latest[key] = (ended, row.get("status"))
    return {key: status for key, (_, status) in latest.items()}, unreadable


def finished_elsewhere(cell: Cell, run_dir: Path) -> Path | None:
    """The row file of another run, written since this run began, that finished `cell` (ok, on this hardware).

    Two `mmbench run` into one results directory: each planned its cells before the other finished any, so
    each cell is checked again just before it runs (with the device's lock held, so a run timing it on this
    device has written its row by then). Only files modified since this run's manifest was written are read:
    cheap however large the store.
    """
    manifest = run_dir / MANIFEST
    if not manifest.exists():
        return None
    since = manifest.stat().st_mtime_ns
    hardware = this_hardware(cell.config.train.device)
    for _ in range(_SCANS):
        vanished = False
        for path in result_files(run_dir.parent):
            if path.parent == run_dir:
                continue
            try:
                if path.stat().st_mtime_ns < since:
                    continue
                rows = pq.read_table(path, columns=["config_hash", "status", "gpu_name", "cpu"]).to_pylist()
            except FileNotFoundError:  # the other run compacted it away while we listed: its rows moved
                vanished = True
                continue
            except Exception:  # noqa: BLE001 - a damaged file is no evidence: the cell runs
                continue
            for row in rows:
                if row["config_hash"] == cell.config_hash and row["status"] == "ok" and _row_hardware(row) == hardware:
                    return path
        if not vanished:
            return None
    return None


def plan_resume(cells: list[Cell], results_dir: Path, force: bool = False, skip_failed: bool = False) -> ResumePlan:
    if force:
        return ResumePlan(list(cells), [], [], [])
    outcomes, unreadable = _previous_outcomes(results_dir)
    hardware: dict[str, str] = {}
    to_run, done, failed_kept = [], [], []
    for cell in cells:
        device = cell.config.train.device
        if device not in hardware:
            hardware[device] = this_hardware(device)
        status = outcomes.get((cell.config_hash, hardware[device]))
        if status == "ok":
            done.append(cell)
        elif status is not None and skip_failed:
            failed_kept.append(cell)
        else:
            to_run.append(cell)
    return ResumePlan(to_run, done, failed_kept, unreadable)
