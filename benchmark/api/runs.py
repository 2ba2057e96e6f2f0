"""Running a suite: plan it (load, check, choose cells), then carry it out into a run directory of the store."""

from __future__ import annotations

import datetime as dt
import fnmatch
import signal
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from benchmark.api.estimates import suite_calibration
from benchmark.api.notify import Notify
from benchmark.errors import MMBenchError, UnknownNameError
from benchmark.estimate.cells import predict_for_run
from benchmark.estimate.predict import CLEAR_MARGIN
from benchmark.launch.launchers import LAUNCHERS, LauncherOptions, LaunchRequest, make_launcher, sort_launcher_options
from benchmark.launch.local import CellOutcome, record_crash
from benchmark.launch.resume import ResumePlan, plan_resume
from benchmark.plan.cells import planned_cells
from benchmark.plan.loader import load_suite
from benchmark.results.compacted_file import COMPACTED_NAME
from benchmark.results.compaction import compact_run
from benchmark.results.manifest import new_manifest
from benchmark.results.store import ensure_writable
from benchmark.suite.config import SuiteConfig
from benchmark.suite.matrix import Cell

# Launchers whose cells run on this machine's devices: the only ones `run` can predict its cells for.
LAUNCHERS_ON_THIS_MACHINE = ("local", "pool")
# An OOM is a measurement (this method does not fit); these are failures, and make `mmbench run` exit 1.
FAILED_STATUSES = ("error", "crashed", "timeout")


@dataclass(frozen=True)
class RunRequest:
    """One `mmbench run`: the suite and how to run it."""

    suite: Path
    results: Path = Path("results")
    only: str | None = None  # a glob over cell ids
    overrides: tuple[str, ...] = ()  # `--set section.key=value`
    repeats: int | None = None
    launcher: str | None = None  # else the suite's run.launcher
    launcher_options: tuple[str, ...] = ()  # `--launcher-option KEY=VALUE`
    gpus: str | None = None
    lock: bool = True
    force: bool = False
    skip_failed: bool = False
    compact: bool = True
    estimate: bool = True  # predict every cell's memory and time first (rows carry it; the pool places by it)
    skip_predicted_oom: bool = True  # a cell predicted not to fit by a clear margin gets a predicted_oom row


@dataclass(frozen=True)
class PlannedRun:
    """A suite loaded and checked, its cells chosen: nothing has run or been written yet."""

    suite: SuiteConfig
    cells: list[Cell]
    launcher_options: LauncherOptions = field(default_factory=lambda: LauncherOptions([], {}))


@dataclass(frozen=True)
class RunSummary:
    run_dir: Path | None  # None: nothing was left to run
    outcomes: list[CellOutcome]
    skipped: list[dict[str, str]]
    compacted: Path | None = None

    @property
    def failed(self) -> bool:
        return any(outcome.status in FAILED_STATUSES for outcome in self.outcomes)

    def to_dict(self) -> dict[str, object]:
        cells = [
            {"cell_id": o.cell_id, "status": o.status, "error": o.error, "row": str(self.compacted or o.row_path)}
            for o in self.outcomes
        ]
        return {"run_dir": str(self.run_dir) if self.run_dir else None, "cells": cells, "skipped": self.skipped}


def select_cells(suite: SuiteConfig, only: str | None, where: Path) -> list[Cell]:
    """The suite's cells, or those whose id matches the `only` glob (an error when none does)."""
    cells = planned_cells(suite)
    if only:
        cells = [cell for cell in cells if fnmatch.fnmatch(cell.cell_id, only)]
        if not cells:
            raise MMBenchError(f"--only '{only}' matches no cell of {where} (see `mmbench run {where} --dry-run`)")
    return cells


def plan_run(request: RunRequest, warnings: list[str]) -> PlannedRun:
    """Load and check the suite with the request's overrides and choose the cells. A typo in a launcher's name or
    option is refused here, before anything runs (a dry run too); `warnings` gets the suite's warnings."""
    options = LauncherOptions([], {})
    try:
        if request.launcher is not None:
            LAUNCHERS.get(request.launcher)
        if request.launcher_options:
            suite_launcher = load_suite(request.suite, list(request.overrides), check_data=False).run.launcher
            options = sort_launcher_options(request.launcher or suite_launcher, list(request.launcher_options))
    except UnknownNameError as error:
        raise MMBenchError(f"--launcher: {error}") from error
    overrides = [*request.overrides, *options.suite_overrides]
    suite = load_suite(request.suite, overrides, request.repeats, warnings=warnings)
    return PlannedRun(suite, select_cells(suite, request.only, request.suite), options)


def _resume_notes(plan: ResumePlan, cells: list[Cell], results: Path, notify: Notify) -> list[dict[str, str]]:
    for problem in plan.unreadable:
        notify(f"warning: skipped unreadable result file {problem}")
    if plan.done:
        notify(
            f"resuming: {len(plan.done)} of {len(cells)} cell(s) already have an ok row in {results} "
            "(--force re-runs them)"
        )
    if plan.failed_kept:
        notify(f"--skip-failed: {len(plan.failed_kept)} cell(s) whose last row failed are not re-run")
    return [{"cell_id": c.cell_id, "status": "skipped", "reason": "ok row exists"} for c in plan.done] + [
        {"cell_id": c.cell_id, "status": "skipped", "reason": "failed before (--skip-failed)"} for c in plan.failed_kept
    ]


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def execute_run(planned: PlannedRun, request: RunRequest, console: Console, notify: Notify) -> RunSummary:
    """Run the planned cells not done yet into a new run directory of `request.results`, then merge its rows into
    one file. Ctrl-C or SIGTERM stops the running cell and keeps every row written (KeyboardInterrupt is raised
    on, with the run directory in the message sent to `notify`)."""
    launch_request = LaunchRequest(planned.suite.run, request.gpus, request.lock, planned.launcher_options.own)
    launcher = make_launcher(launch_request, request.launcher)
    ensure_writable(request.results)
    plan = plan_resume(planned.cells, request.results, request.force, request.skip_failed)
    skipped = _resume_notes(plan, planned.cells, request.results, notify)
    if not plan.to_run:
        notify(f"nothing to run: every cell of suite '{planned.suite.name}' is done in {request.results}")
        return RunSummary(None, [], skipped)
    cells = plan.to_run
    if request.estimate and launcher.name in LAUNCHERS_ON_THIS_MACHINE:
        cells = predicted_cells(planned.suite, cells, notify)
    elif request.estimate:
        notify(
            f"cells not predicted: the {launcher.name} launcher runs them on machines whose devices are not known "
            "here (`mmbench estimate SUITE --device NAME` predicts them for a card)"
        )
    not_fitting = [cell for cell in cells if request.skip_predicted_oom and predicted_not_to_fit(cell)]
    to_launch = [cell for cell in cells if cell not in not_fitting]
    run_id = f"{planned.suite.name}-{dt.datetime.now(dt.timezone.utc).strftime('%Y%m%dT%H%M%S%fZ')}"
    run_dir = request.results / run_id
    suite = planned.suite.name
    notify(f"running {len(to_launch)} cell(s) of suite '{suite}' with the {launcher.name} launcher -> {run_dir}")
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest = new_manifest(cells, run_id, planned.suite.name, launcher.name)
    manifest.write(run_dir)
    outcomes = [_record_predicted_oom(cell, run_dir, run_id, request, launcher.name, notify) for cell in not_fitting]
    signal.signal(signal.SIGTERM, _interrupt)  # a cancelled job stops its cell too, and keeps the rows written
    try:
        outcomes += launcher.run(to_launch, run_dir, run_id, console, manifest) if to_launch else []
    except KeyboardInterrupt:
        notify(f"interrupted: rows written so far are in {run_dir}")
        raise
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    notify(f"done: {', '.join(f'{n} {status}' for status, n in sorted(counts.items()))}; rows in {run_dir}")
    compacted = compact_finished_run(run_dir, notify) if request.compact else None
    return RunSummary(run_dir, outcomes, skipped, compacted)


def predicted_cells(suite: SuiteConfig, cells: list[Cell], notify: Notify) -> list[Cell]:
    """`cells` with their predictions on the devices they will run on (a second or so a cell)."""
    notify(f"predicting the memory and time of {len(cells)} cell(s) (mmbench estimate; --no-estimate skips this)")
    predicted, notes = predict_for_run(cells, suite_calibration(suite, None))
    for line in notes:
        notify(f"note: {line}")
    return predicted


def predicted_not_to_fit(cell: Cell) -> bool:
    return (cell.prediction or {}).get("predicted_fits") == "no"


def _record_predicted_oom(
    cell: Cell, run_dir: Path, run_id: str, request: RunRequest, launcher: str, notify: Notify
) -> CellOutcome:
    """The row of a cell not run because it is predicted not to fit: its prediction, and why."""
    prediction = cell.prediction or {}
    peak, on = prediction.get("predicted_peak_process_gib"), prediction.get("predicted_on")
    reason = (
        f"predicted not to fit: {peak:.2f} GiB at its peak on {on}, more than its memory by over "
        f"{CLEAR_MARGIN:.0%}; not run (--no-skip-predicted-oom runs it; the row holds the predicted parts)"
    )
    notify(f"predicted_oom {cell.cell_id}: {reason}")
    return record_crash(cell, run_dir, run_id, reason, request.lock, None, launcher, "predicted_oom")


def compact_finished_run(run_dir: Path, notify: Notify) -> Path | None:
    """Merge the finished run's per-cell files into one (a store of many runs then reads in seconds). A failure
    here loses nothing: the per-cell files stay, and `mmbench results compact` can try again."""
    try:
        result = compact_run(run_dir)
    except OSError as error:
        notify(f"warning: could not compact {run_dir} (rows stay one file per cell): {error}")
        return None
    for skipped in result.skipped:
        notify(f"warning: not compacted: {skipped}")
    return run_dir / COMPACTED_NAME if result.rows else None
