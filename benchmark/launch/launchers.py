"""Running cells is one small interface with three built-in implementations, registered by name and chosen by
`--launcher` or the suite's `run.launcher`: `local` (one cell at a time), `pool` (one cell per GPU of this box)
and `slurm` (a job array through submitit). A launcher's settings live in the suite's `run:` section; one
`--launcher-option KEY=VALUE` overrides one of them (`option_keys` maps each option to its suite key, so that the
suite's validation checks it with the rest). Each keeps the per-cell contract: its own processes, its own timeout,
always a row, atomic writes; resume is by config hash in the shared results directory. A plug-in module (named in
MMBENCH_PLUGINS) adds one with `LAUNCHERS.register(name, its class)`; the class builds itself from a
`LaunchRequest` with `create`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

from rich.console import Console

from benchmark.errors import MMBenchError
from benchmark.launch.devices import PoolDevice, pool_devices
from benchmark.launch.local import CellOutcome, run_cells
from benchmark.registry import Registry, closest_hint
from benchmark.results.manifest import Manifest
from benchmark.suite.config import RunConfig, SlurmConfig
from benchmark.suite.matrix import Cell


@dataclass(frozen=True)
class LaunchRequest:
    """What the command line asks of a launcher, beside the suite's `run:` section."""

    run: RunConfig
    gpus: str | None = None  # pool: all, NVML indices, or fake:N
    lock: bool = True  # hold each device's lock while timing a cell on it
    # `--launcher-option` settings the launcher reads itself (those its `option_keys` map to None), as given.
    options: dict[str, str] = dataclasses.field(default_factory=dict)


class Launcher(Protocol):
    @property
    def name(self) -> str: ...  # read-only: the launchers are frozen dataclasses

    def run(
        self, cells: list[Cell], run_dir: Path, run_id: str, console: Console, manifest: Manifest
    ) -> list[CellOutcome]:
        """Run the cells; one outcome per cell that left a row."""
        ...


class LauncherType(Protocol):
    """A registered launcher: builds itself from a request, or says in one line why it cannot. `option_keys` maps
    each `--launcher-option` it accepts to the key of the suite's `run:` section that holds it (validated with the
    suite), or to None for an option it reads from `request.options` and checks itself (a plug-in's own)."""

    @property
    def option_keys(self) -> dict[str, str | None]: ...  # a class attribute of the launcher class

    def create(self, request: LaunchRequest) -> Launcher: ...


@dataclass(frozen=True)
class LocalLauncher:
    lock: bool = True
    name: str = "local"
    option_keys: ClassVar[dict[str, str | None]] = {}

    @classmethod
    def create(cls, request: LaunchRequest) -> LocalLauncher:
        if request.gpus:
            raise MMBenchError("--gpus needs --launcher pool (the local launcher runs one cell at a time)")
        return cls(request.lock)

    def run(
        self, cells: list[Cell], run_dir: Path, run_id: str, console: Console, manifest: Manifest
    ) -> list[CellOutcome]:
        return run_cells(cells, run_dir, run_id, console, self.lock)


@dataclass(frozen=True)
class PoolLauncher:
    devices: list[PoolDevice]
    lock: bool = True
    name: str = "pool"
    option_keys: ClassVar[dict[str, str | None]] = {"gpus": "run.gpus"}

    @classmethod
    def create(cls, request: LaunchRequest) -> PoolLauncher:
        spec = request.gpus or request.run.gpus
        if not spec:
            raise MMBenchError("--launcher pool needs --gpus (all, NVML indices like 0,1,3, or fake:N)")
        return cls(pool_devices(spec), request.lock)

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
    option_keys: ClassVar[dict[str, str | None]] = {
        f.name: f"run.slurm.{f.name}" for f in dataclasses.fields(SlurmConfig)
    }

    @classmethod
    def create(cls, request: LaunchRequest) -> SlurmLauncher:
        from benchmark.launch.slurm import import_submitit

        import_submitit()  # a clear message now, not after the run directory exists
        return cls(request.run.slurm, request.lock)

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


LAUNCHERS: Registry[LauncherType] = Registry("launcher")
LAUNCHERS.register("local", LocalLauncher)
LAUNCHERS.register("pool", PoolLauncher)
LAUNCHERS.register("slurm", SlurmLauncher)


def launcher_names() -> list[str]:
    return LAUNCHERS.names()


@dataclass(frozen=True)
class LauncherOptions:
    """`--launcher-option KEY=VALUE` settings sorted by who checks them: suite overrides (`run.slurm.partition=gpu`,
    validated with the suite) and the options the launcher reads itself."""

    suite_overrides: list[str]
    own: dict[str, str]


def sort_launcher_options(launcher: str, options: list[str]) -> LauncherOptions:
    """`options` for the launcher named `launcher`; an option it does not have is refused with the closest one."""
    keys = LAUNCHERS.get(launcher).option_keys
    sorted_options = LauncherOptions([], {})
    for option in options:
        key, separator, value = option.partition("=")
        key = key.strip()
        if not separator or not key:
            raise MMBenchError(f"--launcher-option {option}: expected KEY=VALUE")
        if key not in keys:
            raise MMBenchError(
                f"--launcher-option {option}: the {launcher} launcher has no option '{key}' "
                f"({closest_hint(key, list(keys))}options: {', '.join(keys) or 'none'})"
            )
        suite_key = keys[key]
        if suite_key is None:
            sorted_options.own[key] = value
        else:
            sorted_options.suite_overrides.append(f"{suite_key}={value}")
    return sorted_options


def make_launcher(request: LaunchRequest, launcher: str | None = None) -> Launcher:
    """The launcher `launcher` names (else the suite's `run.launcher`), built from the request; an unknown name
    is an error that lists the known ones."""
    return LAUNCHERS.get(launcher or request.run.launcher).create(request)
