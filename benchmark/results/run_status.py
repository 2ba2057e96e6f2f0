"""`mmbench status RUN_DIR`: each cell of a run as pending, running, done, failed or stopped.

From the run's manifest (the cells it set out to run), the rows it wrote (done or failed, with the
status), each cell's log (it started), and who runs the cells: the launching process (local and
pool launchers) or the submitit job of the cell (slurm), asked for its state.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.results.manifest import Manifest, read_manifest
from benchmark.results.read import read_results

# The first word of the log of a cell another run finished first: this run skipped it (not measured twice).
SKIPPED_MARK = "skipped:"

# submitit / SLURM job states that mean "not finished yet".
_ALIVE_JOB_STATES = {"PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "RESIZING", "SUSPENDED"}


@dataclass(frozen=True)
class CellState:
    cell_id: str
    state: str  # pending, running, done, failed, stopped, skipped
    detail: str  # the row's status or error, the job's state, ...
    job_id: str | None = None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _process_alive(manifest: Manifest) -> bool | None:
    """Whether the launching process still runs (None: it ran on another host, so this one cannot tell)."""
    return _pid_alive(manifest.pid) if manifest.host == socket.gethostname() else None


def _job_states(manifest: Manifest) -> dict[str, str]:
    """cell_id -> submitit's job state, for the slurm launcher (empty when submitit or the jobs are not there)."""
    if not manifest.jobs or manifest.job_folder is None:
        return {}
    try:
        import submitit
    except ImportError:
        return {cell_id: "unknown (submitit not installed)" for cell_id in manifest.jobs}
    states = {}
    for cell_id, job_id in manifest.jobs.items():
        job: Any
        if manifest.cluster == "slurm":
            job = submitit.SlurmJob(folder=manifest.job_folder, job_id=job_id)
            states[cell_id] = str(job.state)
        else:  # the local executor's job id is the task process's PID
            states[cell_id] = _local_job_state(manifest, job_id)
    return states


def _local_job_state(manifest: Manifest, job_id: str) -> str:
    if manifest.host != socket.gethostname():
        return "UNKNOWN"
    if job_id.isdigit() and _pid_alive(int(job_id)):
        return "RUNNING"
    return "FINISHED" if any(Path(str(manifest.job_folder)).glob(f"{job_id}_*result.pkl")) else "ENDED"


def _skipped_because(log: Path) -> str | None:
    try:
        with open(log, encoding="utf-8", errors="replace") as handle:
            first = handle.readline()
    except OSError:
        return None
    return first.removeprefix(SKIPPED_MARK).strip() if first.startswith(SKIPPED_MARK) else None


def cell_states(run_dir: Path, warnings: list[str] | None = None) -> tuple[Manifest, list[CellState]]:
    """The manifest and each cell's state; files that could not be read are appended to `warnings` (named)."""
    manifest = read_manifest(run_dir)
    rows, unreadable = read_results(run_dir)
    if warnings is not None:
        warnings.extend(unreadable)
    by_cell = {row["cell_id"]: row for row in rows.iter_rows(named=True)} if not rows.is_empty() else {}
    jobs = _job_states(manifest)
    launcher_alive = _process_alive(manifest)
    states = []
    for cell in manifest.cells:
        cell_id = cell["cell_id"]
        job_id = manifest.jobs.get(cell_id)
        row = by_cell.get(cell_id)
        if row is not None:
            ok = row["status"] == "ok"
            detail = row["status"] if ok else f"{row['status']}: {(row['error'] or '').splitlines()[0][:120]}"
            state = "done" if ok else "skipped" if row["status"] == "skipped" else "failed"
            states.append(CellState(cell_id, state, detail, job_id))
            continue
        log = run_dir / "logs" / f"{cell['row'].removesuffix('.parquet')}.log"
        started = log.exists()
        skipped = _skipped_because(log) if started else None
        if skipped is not None:
            states.append(CellState(cell_id, "skipped", skipped, job_id))
            continue
        if cell_id in jobs:
            job_state = jobs[cell_id].split()[0].upper()
            if job_state in _ALIVE_JOB_STATES:
                state = "running" if started or job_state == "RUNNING" else "pending"
            elif job_state.startswith("UNKNOWN"):
                state = "pending"
            else:
                state = "stopped"
            states.append(CellState(cell_id, state, f"job {jobs[cell_id]}", job_id))
            continue
        if launcher_alive is False:
            states.append(CellState(cell_id, "stopped", "the run ended without a row for it", job_id))
        else:
            states.append(CellState(cell_id, "running" if started else "pending", "", job_id))
    return manifest, states
