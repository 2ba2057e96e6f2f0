"""`mmbench estimate` as a function: a suite's cells predicted on a device, before anything runs."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path

from benchmark.errors import MMBenchError
from benchmark.estimate.calibration import Calibration, find_calibration
from benchmark.estimate.cells import CellEstimate, Target, estimate_cell, resolve_target
from benchmark.plan.cells import planned_cells
from benchmark.plan.loader import load_suite
from benchmark.suite.config import SuiteConfig


@dataclass(frozen=True)
class SuiteEstimate:
    suite: str
    target: Target
    calibration: Calibration
    cells: list[CellEstimate]


def suite_calibration(suite: SuiteConfig, named: str | None) -> Calibration:
    """The calibration named on the command line, else the suite's (relative to its folder), else the
    environment's, else none."""
    if named is None and suite.run.estimate_calibration:
        chosen = Path(suite.run.estimate_calibration)
        if not chosen.is_absolute() and suite.source:
            chosen = Path(suite.source).parent / chosen
        named = str(chosen)
    return find_calibration(named)


def estimate_suite(
    suite_path: Path,
    *,
    device: str | None = None,
    memory_gib: float | None = None,
    overrides: list[str] | None = None,
    only: str | None = None,
    calibration: str | None = None,
) -> SuiteEstimate:
    suite = load_suite(suite_path, overrides or [], check_data=False)
    cells = planned_cells(suite)
    if only:
        cells = [cell for cell in cells if fnmatch.fnmatch(cell.cell_id, only)]
        if not cells:
            raise MMBenchError(f"--only '{only}' matches no cell of {suite_path}")
    chosen = suite_calibration(suite, calibration)
    targets: dict[str, Target] = {}
    estimates = []
    for cell in cells:
        cell_device = cell.config.train.device
        if cell_device not in targets:
            targets[cell_device] = resolve_target(device, memory_gib, cell_device)
        estimates.append(estimate_cell(cell, targets[cell_device], chosen))
    target = next(iter(targets.values())) if targets else resolve_target(device, memory_gib, "cpu")
    return SuiteEstimate(str(suite_path), target, chosen, estimates)
