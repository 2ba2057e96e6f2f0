"""SLURM through submitit: a suite's cells as one job array, one cell per task.

Each task runs the same per-cell code as the local launcher (its own processes, its own timeout,
always a row, atomic writes) into the shared results directory, and its row records the job id
and the node. submitit is an optional extra (`pip install mmbench[slurm]`), imported only here.
`cluster: local` runs the same array with submitit's local executor (no SLURM), which is how the
tests drive this path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from benchmark.errors import MMBenchError
from benchmark.launch.local import CellOutcome, run_cell_subprocess, status_marker
from benchmark.launch.placement import JOB_ID, NODE
from benchmark.results.manifest import Manifest
from benchmark.results.read import read_results
from benchmark.suite.config import CellConfig, SlurmConfig
from benchmark.suite.matrix import Cell

JOB_FOLDER = "slurm"


class SlurmUnavailableError(MMBenchError):
    """`--launcher slurm` without submitit installed."""


def import_submitit() -> Any:
    try:
        import submitit
    except ImportError as error:
        raise SlurmUnavailableError(
            "--launcher slurm needs submitit: pip install 'mmbench[slurm]' (or pip install submitit)"
        ) from error
    return submitit


def run_slurm_task(
    cell_json: dict[str, Any],
    cell_id: str,
    run_dir: str,
    run_id: str,
    lock: bool,
    uses_cache: bool = False,
    prediction: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One array task: one cell, as the local launcher runs it (module level: submitit pickles it). The cell travels
    as its JSON and is rebuilt here, where the plug-ins its options come from are loaded."""
    import os
    import socket

    submitit = import_submitit()
    job = submitit.JobEnvironment()
    os.environ[JOB_ID] = str(job.job_id)
    os.environ[NODE] = os.environ.get("SLURMD_NODENAME") or socket.gethostname()
    from benchmark.methods.registry import method_options  # in the task, not the submitting process

    config = CellConfig.from_dict(cell_json, method_options)
    cell = Cell(cell_id=cell_id, config=config, uses_cache=uses_cache, prediction=prediction)
    outcome = run_cell_subprocess(cell, Path(run_dir), run_id, lock=lock, launcher="slurm")
    return {"cell_id": outcome.cell_id, "status": outcome.status, "error": outcome.error}


@dataclass(frozen=True)
class SubmittedArray:
    jobs: dict[str, Any]  # cell_id -> submitit job


def executor_parameters(settings: SlurmConfig, timeout_s: float) -> dict[str, Any]:
    """submitit's parameters from the suite's `run.slurm` section (CLI options already merged in)."""
    parameters: dict[str, Any] = {
        "timeout_min": settings.time_min or max(1, int(timeout_s * 1.2 / 60) + 5),
        "cpus_per_task": settings.cpus_per_task,
        "slurm_array_parallelism": settings.array_parallelism,
    }
    if settings.cluster != "local":
        parameters["gpus_per_node"] = settings.gpus_per_task
    if settings.mem_gb is not None:
        parameters["mem_gb"] = settings.mem_gb
    for key in ("partition", "account", "qos"):
        if getattr(settings, key):
            parameters[f"slurm_{key}"] = getattr(settings, key)
    return parameters


def submit_cells(
    cells: list[Cell], run_dir: Path, run_id: str, settings: SlurmConfig, manifest: Manifest, lock: bool = True
) -> SubmittedArray:
    submitit = import_submitit()
    folder = run_dir / JOB_FOLDER
    executor = submitit.AutoExecutor(folder=str(folder), cluster=settings.cluster)
    executor.update_parameters(**executor_parameters(settings, max(cell.config.timeout_s for cell in cells)))
    jobs = executor.map_array(
        run_slurm_task,
        [cell.config.to_dict() for cell in cells],
        [cell.cell_id for cell in cells],
        [str(run_dir)] * len(cells),
        [run_id] * len(cells),
        [lock] * len(cells),
        [cell.uses_cache for cell in cells],
        [cell.prediction for cell in cells],
    )
    by_cell = {cell.cell_id: job for cell, job in zip(cells, jobs)}
    manifest.jobs = {cell_id: str(job.job_id) for cell_id, job in by_cell.items()}
    manifest.job_folder = str(folder)
    manifest.cluster = executor.cluster
    manifest.write(run_dir)
    return SubmittedArray(by_cell)


def wait_for_array(array: SubmittedArray, run_dir: Path, console: Console, poll_s: float = 2.0) -> list[CellOutcome]:
    """Wait until every task has ended, saying each cell's end as its row lands; the rows are the outcomes."""
    reported: set[str] = set()
    outcomes: dict[str, CellOutcome] = {}
    while True:
        finished = all(job.done() for job in array.jobs.values())
        rows, _ = read_results(run_dir) if any(run_dir.glob("*.parquet")) else (None, [])
        if rows is not None:
            for row in rows.iter_rows(named=True):
                cell_id = row["cell_id"]
                if cell_id in array.jobs and cell_id not in reported:
                    reported.add(cell_id)
                    outcomes[cell_id] = CellOutcome(cell_id, row["status"], row["error"], Path(row["file"]))
                    marker = status_marker(row["status"])
                    console.print(f"{marker} {cell_id} (job {row['slurm_job_id']}, {row['host']})")
        if finished:
            break
        time.sleep(poll_s)
    for cell_id, job in array.jobs.items():
        if cell_id not in outcomes:
            console.print(f"[red]no row[/] {cell_id}: job {job.job_id} ended {job.state} before writing a row")
    return [outcomes[cell_id] for cell_id in array.jobs if cell_id in outcomes]
