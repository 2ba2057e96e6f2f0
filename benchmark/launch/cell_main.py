"""Entry point of the per-cell subprocess: run one cell, always write its row.

Usage: python -m benchmark.launch.cell_main CELL_JSON ROW_PARQUET RUN_ID [--built DIGEST,...] [--device-lock
held|disabled] [--prediction JSON]
Progress goes to stdout as JSON lines (the parent draws the bar); diagnostics go to stderr.
`--built` names the hidden-state caches the launcher built for this cell just before it
(their build time is this configuration's cost); `--device-lock` says whether the launcher
held the device's lock while the cell ran; `--prediction` holds what `mmbench estimate` predicted for it (row columns).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import traceback
from pathlib import Path

from benchmark.errors import CellSkipped
from benchmark.launch.child import EXIT_STOPPED, CellStopped, started_by_torchrun, stop_with_parent
from benchmark.launch.placement import placement_columns
from benchmark.launch.rank_failures import write_rank_failure
from benchmark.progress import ProgressEvent, done
from benchmark.results.cell_row import begin_row, finish_row
from benchmark.results.store import write_row
from benchmark.suite.config import CellConfig


def emit(event: ProgressEvent) -> None:
    """Progress to the parent: one JSON line on stdout."""
    try:
        sys.stdout.write(event.to_json() + "\n")
        sys.stdout.flush()
    except BrokenPipeError as error:  # nobody reads the progress any more: the parent is gone
        raise CellStopped("the mmbench run that started this cell stopped reading its progress") from error


def _is_out_of_memory(error: BaseException) -> bool:
    import torch

    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower()


def failure_status(error: BaseException) -> str:
    return "oom" if _is_out_of_memory(error) else "error"


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmark.launch.cell_main")
    parser.add_argument("cell_json", type=Path)
    parser.add_argument("row_parquet", type=Path)
    parser.add_argument("run_id")
    parser.add_argument("--built", default="", help="comma-separated digests of caches built for this cell")
    parser.add_argument("--device-lock", default="held", choices=("held", "disabled"))
    parser.add_argument("--prediction", type=Path, default=None, help="the launcher's prediction, as row columns")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    try:
        stop_with_parent()
        code = _run(_arguments(argv))
    except CellStopped as stopped:
        # No row: the cell did not finish. The parent, if alive, records it; a resumed run runs it again.
        print(f"cell stopped, no row written: {stopped}", file=sys.stderr)
        code = EXIT_STOPPED
    if started_by_torchrun():
        # A rank's work is written: end here, without the interpreter's teardown. Its process group is never
        # destroyed (train/distributed/world.py says why), and a rank that does not exit holds the whole cell.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _run(arguments: argparse.Namespace) -> int:
    from benchmark.methods.registry import method_options  # after the parent-death signal is armed: it imports torch

    config = CellConfig.from_dict(json.loads(arguments.cell_json.read_text()), method_options)
    # A rank of a distributed cell (torchrun started this process): rank 0 reports progress and writes the row,
    # every rank that fails leaves its failure for the launcher (launch/rank_failures.py).
    rank = int(os.environ["RANK"]) if config.train.distributed != "none" and started_by_torchrun() else None
    leader = rank is None or rank == 0
    progress = emit if leader else _quiet
    if not config.allow_download:
        # Nothing is ever fetched from a model hub unless the suite says so.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    started = dt.datetime.now(dt.timezone.utc)
    row = begin_row(config, arguments.run_id, arguments.device_lock, started, placement_columns(os.environ))
    if arguments.prediction is not None:
        row.update(json.loads(arguments.prediction.read_text()))
    exit_code = 0
    try:
        from benchmark.profile.environment import capture_environment
        from benchmark.train.loop import run_cell
        from benchmark.train.precision import resolve_device

        environment = capture_environment(resolve_device(config.train.device))
        environment["package_versions"] = json.dumps(environment["package_versions"], sort_keys=True)
        row.update({key: value for key, value in environment.items() if key in row})
        run_cell(config, row, progress, built_caches={digest for digest in arguments.built.split(",") if digest})
        finish_row(row, "ok", None)
    except CellStopped:
        raise
    except CellSkipped as skipped:  # by design on this machine: nothing failed, nothing was measured
        finish_row(row, "skipped", str(skipped))
        print(f"cell skipped: {skipped}", file=sys.stderr)
    except BaseException as error:  # noqa: BLE001 - every failure must still produce a row
        where = traceback.extract_tb(error.__traceback__)[-1] if error.__traceback__ else None
        location = f" (at {Path(where.filename).name}:{where.lineno})" if where else ""
        finish_row(row, failure_status(error), f"{type(error).__name__}: {error}{location}")
        traceback.print_exc(file=sys.stderr)
        exit_code = 3 if row["status"] == "oom" else 2
        if rank is not None:
            size = int(os.environ["WORLD_SIZE"])
            failure = write_rank_failure(
                arguments.row_parquet, rank, size, row["status"], type(error).__name__, f"{error}{location}"
            )
            row.update(error=failure.describe(), failed_rank=rank)
    if leader:
        write_row(arguments.row_parquet, row)
        emit(done(row["status"], row["error"]))
    return exit_code


def _quiet(event: ProgressEvent) -> None:
    """A rank other than 0 reports no progress: rank 0's is the cell's."""


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
