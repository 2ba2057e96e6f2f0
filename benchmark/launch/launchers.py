"""Running cells is one small interface with three implementations, chosen by `--launcher` or the
suite's `run.launcher`: `local` (one cell at a time), `pool` (one cell per GPU of this box) and
`slurm` (a job array through submitit). Each keeps the per-cell contract: its own processes, its own
timeout, always a row, atomic writes; resume is by config hash in the shared results directory."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from rich.console import Console

from benchmark.errors import MMBenchError
from benchmark.launch.devices import PoolDevice, pool_devices
from benchmark.launch.local import CellOutcome, run_cells
from benchmark.launch.manifest import Manifest
from benchmark.suite.config import RunConfig, SlurmConfig
from benchmark.suite.matrix import Cell


class Launcher(Protocol):
    name: str

    def run(
        self, cells: list[Cell], run_dir: Path, run_id: str, console: Console, manifest: Manifest
    ) -> list[CellOutcome]:
        """Run the cells; one outcome per cell that left a row."""
        ...


@dataclass(frozen=True)
class LocalLauncher:
    lock: bool = True
    name: str = "local"

    def run(
        self, cells: list[Cell], run_dir: Path, run_id: str, console: Console, manifest: Manifest
    ) -> list[CellOutcome]:
        return run_cells(cells, run_dir, run_id, console, self.lock)


@dataclass(frozen=True)
class PoolLauncher:
    devices: list[PoolDevice]
    lock: bool = True
    name: str = "pool"

    def run(
        self, cells: list[Cell], run_dir: Path, run_id: str, console: Console, manifest: Manifest
    ) -> list[CellOutcome]:
        from benchmark.launch.pool import run_pool

        console.print(f"pool of {len(self.devices)} device(s): {', '.join(d.label for d in self.devices)}")
        return run_pool(cells, run_dir, run_id, console, self.devices, self.lock)


@dataclass(frozen=True)
class SlurmLauncher:
    settings: SlurmConfig
    lock: bool = True
    name: str = "slurm"

    def run(
        self, cells: list[Cell], run_dir: Path, run_id: str, console: Console, manifest: Manifest
    ) -> list[CellOutcome]:
        from benchmark.launch.slurm import submit_cells, wait_for_array

        array = submit_cells(cells, run_dir, run_id, self.settings, manifest, self.lock)
        first, *_ = array.jobs.values()
        console.print(
            f"submitted {len(cells)} task(s) as array {str(first.job_id).split('_')[0]} ({self.settings.cluster}); "
            f"Ctrl-C stops waiting, not the jobs: `mmbench status {run_dir}`"
        )
        return wait_for_array(array, run_dir, console)


def make_launcher(
    run: RunConfig, launcher: str | None, gpus: str | None, slurm_overrides: dict[str, object], lock: bool
) -> Launcher:
    """The launcher the CLI options (else the suite's `run:` section) ask for."""
    name = launcher or run.launcher
    if name == "local":
        if gpus:
            raise MMBenchError("--gpus needs --launcher pool (the local launcher runs one cell at a time)")
        return LocalLauncher(lock)
    if name == "pool":
        spec = gpus or run.gpus
        if not spec:
            raise MMBenchError("--launcher pool needs --gpus (all, NVML indices like 0,1,3, or fake:N)")
        return PoolLauncher(pool_devices(spec), lock)
    if name == "slurm":
        from benchmark.launch.slurm import import_submitit

        import_submitit()  # a clear message now, not after the run directory exists
        given = {key: value for key, value in slurm_overrides.items() if value is not None}
        return SlurmLauncher(dataclasses.replace(run.slurm, **given), lock)
    raise MMBenchError(f"unknown launcher '{name}' (local, pool or slurm)")
