"""`mmbench validate`, `run` and `status`: a suite checked, its cells run, a run's cells followed."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from benchmark.cli.app import DEFAULT_RESULTS, JSON_HELP, app
from benchmark.cli.output import fail, note, print_data, print_json, say, stderr, warn_all
from benchmark.errors import MMBenchError, SuiteError
from benchmark.results.run_status import cell_states

if TYPE_CHECKING:
    from benchmark.api.runs import PlannedRun, RunRequest


@app.command()
def validate(
    suite: Path = typer.Argument(..., help="suite YAML file"),
    deep: bool = typer.Option(
        False, "--deep", help="also decode every media file the towers read (slower: opens every image and array)"
    ),
    as_json: bool = typer.Option(
        False, "--json", help="machine-readable output: {suite, ok, cells, problems, warnings}"
    ),
) -> None:
    """Check a suite against its schema, its towers, its data and this machine: every problem with file, line and
    key path, all at once.

    Example: mmbench validate suites/smoke.yaml --deep
    """
    # Imported when the command runs: the suite's methods import torch (seconds), which `--help`, `report` and
    # `compare` never need.
    from benchmark.plan.cells import planned_cells
    from benchmark.plan.loader import load_suite

    warnings: list[str] = []
    try:
        cells = planned_cells(load_suite(suite, warnings=warnings, decode_media=deep))
    except SuiteError as error:
        if as_json:
            print_json(
                {"suite": str(suite), "ok": False, "cells": None, "problems": error.problems, "warnings": warnings}
            )
            raise typer.Exit(2) from None
        warn_all(warnings)
        fail(error)
    except MMBenchError as error:
        fail(error)
    if as_json:
        print_json({"suite": str(suite), "ok": True, "cells": len(cells), "problems": [], "warnings": warnings})
        return
    warn_all(warnings)
    say(f"{suite}: ok ({len(cells)} cells" + (f", {len(warnings)} warning(s)" if warnings else "") + ")")


@app.command()
def run(
    suite: Path = typer.Argument(..., help="suite YAML file"),
    results: Path = typer.Option(DEFAULT_RESULTS, "--results", help="results directory"),
    only: str | None = typer.Option(None, "--only", help="run only cells whose id matches this glob"),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="list the cells, their config hashes and predicted memory and time; run nothing"
    ),
    overrides: list[str] | None = typer.Option(
        None, "--set", help="override a suite value, e.g. --set train.max_steps=5 (repeatable)"
    ),
    repeats: int | None = typer.Option(
        None, "--repeats", min=1, help="run every cell N times, each in a fresh process (overrides the suite)"
    ),
    no_lock: bool = typer.Option(
        False, "--no-lock", help="do not wait for other mmbench runs on the same device (rows say so)"
    ),
    force: bool = typer.Option(False, "--force", help="re-run cells that already have an ok row in --results"),
    skip_failed: bool = typer.Option(
        False, "--skip-failed", help="also skip cells whose last row failed (oom, error, crashed, timeout)"
    ),
    no_compact: bool = typer.Option(
        False, "--no-compact", help="keep one Parquet file per cell (default: merged into one file when the run ends)"
    ),
    launcher: str | None = typer.Option(
        None, "--launcher", help="local (one cell at a time), pool (one cell per GPU) or slurm (default: the suite's)"
    ),
    launcher_options: list[str] | None = typer.Option(
        None,
        "--launcher-option",
        help="one of the launcher's settings, KEY=VALUE (repeatable): slurm partition=gpu, time_min=90, "
        "cluster=local, ...; pool gpus=0,1 (see `mmbench list launchers`)",
    ),
    gpus: str | None = typer.Option(None, "--gpus", help="pool: all, NVML indices like 0,1,3, or fake:N"),
    no_estimate: bool = typer.Option(
        False, "--no-estimate", help="do not predict the cells' memory and time first (rows then carry no prediction)"
    ),
    no_skip_predicted_oom: bool = typer.Option(
        False, "--no-skip-predicted-oom", help="run cells predicted not to fit too (default: a predicted_oom row)"
    ),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output on stdout"),
) -> None:
    """Run every cell of a suite, each in its own subprocess; one Parquet row per cell. Cells with an ok row are
    skipped. Each cell's memory and time are predicted first (`mmbench estimate`): rows carry the prediction, the
    pool places the largest cells first, and a cell predicted not to fit by a clear margin is recorded as
    predicted_oom without running.

    Example: mmbench run suites/smoke.yaml --results results --repeats 3 --launcher pool --gpus all
    """
    # Imported when the command runs: the suite's methods import torch (seconds), which `--help`, `report` and
    # `compare` never need.
    from benchmark.api.runs import RunRequest

    request = RunRequest(
        suite, results, only, tuple(overrides or ()), repeats, launcher, tuple(launcher_options or ()), gpus,
        not no_lock, force, skip_failed, not no_compact, not no_estimate, not no_skip_predicted_oom,
    )  # fmt: skip
    _run(request, dry_run, as_json)


def _run(request: RunRequest, dry_run: bool, as_json: bool) -> None:
    from benchmark.api.runs import execute_run, plan_run  # imports torch: see `run`

    warnings: list[str] = []
    try:
        planned = plan_run(request, warnings)
    except MMBenchError as error:
        warn_all(warnings)
        fail(error)
    warn_all(warnings)
    if dry_run:
        try:
            _dry_run(planned, request, as_json)
        except MMBenchError as error:  # an unreadable calibration file, named
            fail(error)
        return
    try:
        summary = execute_run(planned, request, stderr, note)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except MMBenchError as error:
        fail(error)
    if as_json:
        print_json(summary.to_dict())
    if summary.failed:
        raise typer.Exit(1)


FITS_WORDS = {"yes": "fits", "tight": "tight on", "no": "does not fit"}


def _dry_run(planned: PlannedRun, request: RunRequest, as_json: bool) -> None:
    """The cells with their config hashes and, unless --no-estimate, their predictions on the device they would run
    on (peak memory, step and epoch time, whether they fit)."""
    from benchmark.api.runs import predicted_cells

    cells = predicted_cells(planned.suite, planned.cells, note) if request.estimate else planned.cells
    listed = [{"cell_id": c.cell_id, "config_hash": c.config_hash, **(c.prediction or {})} for c in cells]
    lines = []
    for cell in cells:
        prediction = cell.prediction
        if prediction is None:
            lines.append(f"{cell.config_hash}  {cell.cell_id}")
            continue
        step = prediction["predicted_step_ms"]
        epoch = prediction["predicted_epoch_s"]
        timing = f"step {step:.3g} ms, epoch {epoch:.3g} s" if step is not None and epoch is not None else "time -"
        lines.append(
            f"{cell.config_hash}  {cell.cell_id}  peak {prediction['predicted_peak_process_gib']:.2f} GiB "
            f"({FITS_WORDS[prediction['predicted_fits']]} {prediction['predicted_on']}), {timing}"
        )
    print_data(listed, as_json, lines)


@app.command()
def status(
    run_dir: Path = typer.Argument(..., help="a run directory (results/<suite>-<time>)"),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Show each cell of a run as pending, running, done, failed or stopped (from its rows, its logs and, for the
    slurm launcher, the state of each cell's job). Stopped cells have no row: `mmbench run` on the suite runs them.

    Example: mmbench status results/smoke-20261130T120000000000Z --json
    """
    warnings: list[str] = []
    try:
        manifest, states = cell_states(run_dir, warnings)
    except MMBenchError as error:
        fail(error)
    warn_all(warnings)
    counts: dict[str, int] = {}
    for state in states:
        counts[state.state] = counts.get(state.state, 0) + 1
    summary = ", ".join(f"{count} {name}" for name, count in sorted(counts.items()))
    data = {
        "run_id": manifest.run_id,
        "suite": manifest.suite,
        "launcher": manifest.launcher,
        "counts": counts,
        "cells": [vars(state) for state in states],
    }
    lines = [f"{manifest.run_id} ({manifest.launcher} launcher): {summary}"] + [
        f"{state.state:<8} {state.cell_id}" + (f"  {state.detail}" if state.detail else "") for state in states
    ]
    print_data(data, as_json, lines)
