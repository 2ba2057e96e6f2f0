"""mmbench from Python (a notebook, a script): run a suite — a file, a shipped suite's name, or a dict — and get
its rows and its leaderboard back as polars DataFrames. The same functions `mmbench run` and `mmbench report` call,
with progress on stderr (or none, `quiet=True`).

    from benchmark import api
    result = api.run("smoke", results="results")
    result.leaderboard.select("method", "tpme", "test_ndcg@10")
    api.estimate("iisan-paper", device="h100").select("cell_id", "peak_process_gib", "fits", "step_ms")
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import yaml
from rich.console import Console

from benchmark.api.boards import BoardRequest
from benchmark.api.boards import leaderboard as build_board
from benchmark.api.notify import Notify
from benchmark.api.runs import RunRequest, execute_run, plan_run
from benchmark.results.read import RowFilter, read_results

SuiteSource = str | Path | Mapping[str, Any]


@dataclass(frozen=True)
class RunResult:
    run_dir: Path | None  # None: every cell was already done in `results`
    rows: pl.DataFrame  # the rows this run wrote (empty when nothing ran)
    leaderboard: pl.DataFrame  # one row per configuration, over every ok row of the suite in `results`
    failures: pl.DataFrame  # the suite's cells whose latest row did not finish ok
    warnings: list[str]  # what the suite may run with but probably should not

    @property
    def statuses(self) -> dict[str, str]:
        """Each cell's status in this run, by cell id."""
        return dict(zip(self.rows["cell_id"].to_list(), self.rows["status"].to_list(), strict=True))


def _notify(quiet: bool) -> Notify:
    def say(line: str) -> None:
        if not quiet:
            print(line, file=sys.stderr)

    return say


def _overrides(overrides: Mapping[str, Any] | Sequence[str]) -> tuple[str, ...]:
    """`{"train.batch_size": 16}` or `["train.batch_size=16"]`, as `--set` takes them (values as YAML)."""
    if isinstance(overrides, Mapping):
        return tuple(
            f"{key}={yaml.safe_dump(value, default_flow_style=True).strip()}" for key, value in overrides.items()
        )
    return tuple(overrides)


def run(
    suite: SuiteSource,
    results: str | Path = "results",
    *,
    only: str | None = None,
    overrides: Mapping[str, Any] | Sequence[str] = (),
    force: bool = False,
    quiet: bool = False,
) -> RunResult:
    """Run `suite` (a suite file, a shipped suite's name, or the suite as a dict) into the store `results`, as
    `mmbench run` does: validated first (a problem raises `SuiteError` listing every one), cells already done skipped
    unless `force`, each cell in its own process. Relative paths in a dict resolve from the working directory."""
    notify = _notify(quiet)
    with tempfile.TemporaryDirectory(prefix="mmbench-suite-") as scratch:
        path = Path(_suite_file(suite, Path(scratch)))
        request = RunRequest(path, Path(results), only=only, overrides=_overrides(overrides), force=force)
        warnings: list[str] = []
        planned = plan_run(request, warnings)
        for warning in warnings:
            notify(f"warning: {warning}")
        summary = execute_run(planned, request, Console(stderr=True, quiet=quiet), notify)
    name = planned.suite.name
    rows = read_results(summary.run_dir)[0] if summary.run_dir is not None else pl.DataFrame()
    board, _ = build_board(BoardRequest(Path(results), suite=name), notify)
    return RunResult(summary.run_dir, rows, board.table, board.failures, warnings)


def _suite_file(suite: SuiteSource, scratch: Path) -> str | Path:
    if not isinstance(suite, Mapping):
        return suite
    name = str(suite.get("name") or "suite")
    path = scratch / f"{name}.yaml"  # problems name this file, with the line of the key
    path.write_text(yaml.safe_dump(dict(suite), sort_keys=False))
    return path


def rows(results: str | Path = "results", suite: str | None = None, status: str | None = None) -> pl.DataFrame:
    """Every stored row under `results` (of one suite, of one status), one column per measurement."""
    frame, warnings = read_results(Path(results), RowFilter(suite, (), (status,) if status else ()))
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return frame


def leaderboard(
    results: str | Path = "results", suite: str | None = None, weights: str = "0.45,0.1,0.45", quiet: bool = False
) -> pl.DataFrame:
    """The leaderboard `mmbench report` prints, as a DataFrame: one row per configuration and hardware."""
    board, _ = build_board(BoardRequest(Path(results), suite=suite, weights=weights), _notify(quiet))
    return board.table


def estimate(
    suite: SuiteSource,
    *,
    device: str | None = None,
    memory_gib: float | None = None,
    only: str | None = None,
    overrides: Mapping[str, Any] | Sequence[str] = (),
    calibration: str | Path | None = None,
) -> pl.DataFrame:
    """What `mmbench estimate` prints, as a DataFrame: one row per cell with its predicted peak (GiB, and its parts
    as `<part>_gib` columns), step and epoch time, and whether it fits (`device`: a tabled card or "cpu";
    `memory_gib`: a GPU of that size; neither: the cell's own device; `calibration`: a file of `mmbench estimate
    calibrate`, else the suite's or the environment's)."""
    from benchmark.api.estimates import estimate_suite
    from benchmark.report.estimates import estimate_dicts

    with tempfile.TemporaryDirectory(prefix="mmbench-suite-") as scratch:
        path = Path(_suite_file(suite, Path(scratch)))
        result = estimate_suite(
            path,
            device=device,
            memory_gib=memory_gib,
            overrides=list(_overrides(overrides)),
            only=only,
            calibration=str(calibration) if calibration is not None else None,
        )
    flat = []
    for cell in estimate_dicts(result.cells):
        parts = cell.pop("parts_gib", {}) or {}
        cell.pop("on_common_cards", None)
        cell.pop("notes", None)
        flat.append({**cell, **{f"{name}_gib": value for name, value in parts.items()}})
    return pl.DataFrame(flat)
