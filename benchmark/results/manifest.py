"""A run's manifest: which cells it will run, by which launcher, from which process, and (SLURM) which
job runs each cell. `mmbench status RUN_DIR` reads it with the rows to say what is pending, running,
done or failed; it is written (atomically) before the first cell starts."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmark.atomic import atomic_file
from benchmark.errors import ResultsError
from benchmark.results.store import cell_file_name
from benchmark.suite.matrix import Cell

MANIFEST = "manifest.json"


@dataclass
class Manifest:
    run_id: str
    suite: str
    launcher: str
    host: str
    pid: int
    cells: list[dict[str, str]]  # cell_id, config_hash, row file name
    jobs: dict[str, str] = field(default_factory=dict)  # cell_id -> submitit job id (slurm launcher)
    job_folder: str | None = None  # submitit's folder
    cluster: str | None = None  # submitit's cluster: slurm, local

    def write(self, run_dir: Path) -> None:
        with atomic_file(run_dir / MANIFEST) as temporary:
            temporary.write_text(json.dumps(asdict(self), indent=2))


def new_manifest(cells: list[Cell], run_id: str, suite: str, launcher: str) -> Manifest:
    return Manifest(
        run_id=run_id,
        suite=suite,
        launcher=launcher,
        host=socket.gethostname(),
        pid=os.getpid(),
        cells=[
            {"cell_id": cell.cell_id, "config_hash": cell.config_hash, "row": cell_file_name(cell.cell_id)}
            for cell in cells
        ],
    )


def read_manifest(run_dir: Path) -> Manifest:
    path = run_dir / MANIFEST
    if not path.is_file():
        raise ResultsError(f"{run_dir} is not a run directory of this mmbench version (no {MANIFEST})")
    try:
        return Manifest(**json.loads(path.read_text()))
    except (ValueError, TypeError) as error:
        raise ResultsError(f"{path}: unreadable manifest: {error}") from error
