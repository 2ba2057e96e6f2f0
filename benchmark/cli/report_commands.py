"""`mmbench report` and `mmbench compare`: the leaderboard in any registered format, and the CI gate."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import typer
from rich.console import Console

from benchmark.api.boards import BoardRequest, leaderboard
from benchmark.cli.app import DEFAULT_RESULTS, app
from benchmark.cli.output import OutputClosed, fail, internal_error, note, say, stdout
from benchmark.compare.render import render_json, render_markdown, summary_line
from benchmark.compare.run import EXIT_INTERNAL, compare_results
from benchmark.compare.verdicts import Thresholds
from benchmark.errors import MMBenchError
from benchmark.report.columns import resolve_columns
from benchmark.report.render import Choice
from benchmark.report.writers import ReportRequest, get_writer, writer_names

_FORMATS = ", ".join(writer_names(plugins=False))


def _columns(wide: bool, columns: str | None) -> Choice | None:
    """The columns --wide or --columns ask for (None: the format's own choice)."""
    if wide and columns:
        raise MMBenchError("--wide and --columns: give one (--wide is every column)")
    if columns is not None:
        return Choice(names=resolve_columns(columns))
    return Choice() if wide else None


def _report_console() -> Console:
    """The table fits the terminal: its width, or $COLUMNS when set; piped without $COLUMNS, 240 characters (the
    width of `stdout`), as a log or a file has no width of its own."""
    columns = os.environ.get("COLUMNS", "")
    return Console(soft_wrap=True, width=int(columns)) if columns.isdigit() and int(columns) > 0 else stdout


@app.command()
def report(
    results: Path = typer.Option(DEFAULT_RESULTS, "--results", help="results directory"),
    output_format: str = typer.Option(
        "table", "--format", help=f"{_FORMATS} or a plug-in's (html needs -o; png and svg need --plot and -o)"
    ),
    output: Path | None = typer.Option(None, "-o", "--output", help="write the report (html, png, svg) to this file"),
    plot: str | None = typer.Option(
        None, "--plot", help="png/svg: tradeoff, pareto-memory, pareto-time, tpme, scaling, memory or tta"
    ),
    group_by: str | None = typer.Option(None, "--group-by", help="comma-separated columns that define comparable work"),
    weights: str = typer.Option("0.45,0.1,0.45", "--weights", help="TPME weights a1,a2,a3 (time, params, memory)"),
    suite: str | None = typer.Option(None, "--suite", help="only rows of this suite"),
    run_ids: list[str] | None = typer.Option(None, "--run-id", help="only rows of this run (repeatable)"),
    statuses: list[str] | None = typer.Option(
        None, "--status", help="only rows with this status: ok, oom, error, crashed, timeout (repeatable)"
    ),
    all_runs: bool = typer.Option(False, "--all-runs", help="keep every run of a cell, not only the latest"),
    sort: str = typer.Option(
        "tpme", "--sort", help="order within a group: tpme (per epoch, the paper's) or tpme_amortized"
    ),
    as_json: bool = typer.Option(False, "--json", help="the same as --format json"),
    wide: bool = typer.Option(False, "--wide", help="table: every column, even wider than the terminal"),
    columns: str | None = typer.Option(
        None, "--columns", help="table, md: these columns, comma-separated (an unknown name lists them all)"
    ),
) -> None:
    """Print the leaderboard: one row per configuration, with its spread, TPME and TPME-FFT per group of comparable
    work. The table shows the columns that fit the terminal, most telling first; --wide shows all.

    Example: mmbench report --results results --suite smoke --group-by dataset,towers,precision --sort tpme_amortized
    """
    groups = tuple(c.strip() for c in group_by.split(",") if c.strip()) if group_by else None
    board_request = BoardRequest(
        results, suite, tuple(run_ids or ()), tuple(statuses or ()), groups, weights, all_runs, sort
    )
    try:
        writer = get_writer("json" if as_json else output_format)
        writer.check(output, wide or columns is not None)
        choice = _columns(wide, columns)  # checked before anything is read
        board, rows = leaderboard(board_request, note)
        writer.write(ReportRequest(board, rows, _report_console(), output, plot, choice))
    except OSError as error:
        fail(MMBenchError(f"{output}: cannot write: {error.strerror or error}"))
    except (MMBenchError, ValueError) as error:
        fail(error)
    if writer.writes_file:
        say(str(output))


def _percent(value: float, option: str) -> float:
    if not 0 <= value < 100:
        raise MMBenchError(f"{option}: a percentage from 0 to 100, got {value}")
    return value / 100.0


@app.command()
def compare(
    baseline: Path = typer.Argument(..., help="baseline results: a results directory, a run directory or a .parquet"),
    current: Path = typer.Argument(..., help="current results, the same kinds"),
    time_threshold: float = typer.Option(5.0, "--time-threshold", help="percent slowdown of the median step time"),
    memory_threshold: float = typer.Option(2.0, "--memory-threshold", help="percent growth of the peak memory"),
    alpha: float = typer.Option(0.05, "--alpha", help="significance level of the one-sided time test"),
    min_samples: int = typer.Option(5, "--min-samples", help="step samples a side needs before time can be judged"),
    allow_param_change: bool = typer.Option(False, "--allow-param-change", help="parameter counts may change"),
    allow_hardware_mismatch: bool = typer.Option(
        False, "--allow-hardware-mismatch", help="compare across GPU, driver major, CUDA or torch (said in the output)"
    ),
    fail_on_inconclusive: bool = typer.Option(
        False, "--fail-on-inconclusive", help="exit 1 also when a figure is inconclusive"
    ),
    suite: str | None = typer.Option(None, "--suite", help="only rows of this suite, on both sides"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Compare two result sets for a CI gate: a Markdown table (cell, figure, baseline, current, change, verdict).

    Configurations are matched by config id (the work without seed and repeat; all their runs pooled).
    Parameter counts must not change; peak memory may not grow beyond --memory-threshold; step time
    regresses only when the median is more than --time-threshold slower AND the slowdown is significant:
    a hierarchical bootstrap of the ratio of medians (runs resampled, then steps within each run),
    one-sided at --alpha. Too few samples, or a change beyond the threshold that is not significant, is
    `inconclusive`. Improvements are listed too. Failed cells of the current side are listed by name.

    Exit codes (each means one thing; where several hold, the first of 2, 1, 3, 4 wins):
    0 pass; 1 a figure regressed (or a configuration now runs out of memory); 2 unusable input (missing, empty or
    unreadable sides, other hardware, nothing in common); 3 cells failed in the current side (error, crash,
    timeout: not judged); 4 inconclusive figures, only with --fail-on-inconclusive; 70 a bug in mmbench.

    Example: mmbench compare baseline/ results/regression-cpu-20261130T120000Z --memory-threshold 5
    """
    try:
        if not 0 < alpha < 0.5:
            raise MMBenchError(f"--alpha: a significance level between 0 and 0.5, got {alpha}")
        thresholds = Thresholds(
            time=_percent(time_threshold, "--time-threshold"),
            memory=_percent(memory_threshold, "--memory-threshold"),
            alpha=alpha,
            min_samples=max(1, min_samples),
            allow_param_change=allow_param_change,
        )
        comparison = compare_results(
            baseline, current, thresholds, allow_hardware_mismatch, suite, fail_on_inconclusive
        )
    except MMBenchError as error:
        fail(error)
    except Exception as error:  # noqa: BLE001 - a CI gate reads exit 1 as "regression": a bug must not say that
        internal_error("compare", error, EXIT_INTERNAL)
    for warning in comparison.baseline.warnings + comparison.current.warnings:
        note(f"warning: {warning}")
    with contextlib.suppress(OutputClosed):  # `| head` may stop reading; the exit code is the verdict all the same
        sys.stdout.write(render_json(comparison) if as_json else render_markdown(comparison))
        sys.stdout.flush()
    note(summary_line(comparison))
    raise typer.Exit(comparison.exit_code)
