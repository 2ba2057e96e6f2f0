"""mmbench command line. Data goes to stdout; progress and diagnostics go to stderr."""

from __future__ import annotations

import contextlib
import datetime as dt
import fnmatch
import json
import signal
import sys
from enum import Enum
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from benchmark import __version__
from benchmark.data.sequence_rule import MIN_SEQUENCE_LENGTH, RULE
from benchmark.errors import DatasetProblems, MMBenchError, SuiteError
from benchmark.units import MIB

app = typer.Typer(
    add_completion=True,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Benchmark what adapting multimodal foundation models to sequential recommendation costs.",
)
# Off a terminal (CI logs, pipes) rich would squeeze tables into 80 columns.
stdout = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 240)
stderr = Console(stderr=True, soft_wrap=True)  # a wrapped path is a broken path

DEFAULT_RESULTS = Path("results")


def _show_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"mmbench {__version__}\n")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="print the version and exit"
    ),
) -> None:
    """Benchmark what adapting multimodal foundation models to sequential recommendation costs.

    Start with `mmbench run suites/smoke.yaml` and `mmbench report`.
    """


class ReportFormat(str, Enum):
    html = "html"
    png = "png"
    svg = "svg"
    table = "table"
    md = "md"
    csv = "csv"
    json = "json"


class ListWhat(str, Enum):
    methods = "methods"
    towers = "towers"
    datasets = "datasets"
    modalities = "modalities"


def _importable_formats() -> list[str]:
    from benchmark.formats.registry import format_names

    try:
        return format_names(importable_only=True)
    except MMBenchError:  # a broken MMBENCH_PLUGINS: the command that reads a registry says so in one line
        return format_names(importable_only=True, plugins=False)


class OutputClosed(Exception):
    """stdout's reader went away (`mmbench report | head -1`): what is left to print has nowhere to go."""


class _ClosedPipeGuard:
    """sys.stdout, whose writes turn a broken pipe into OutputClosed (click would make it exit 1, an exit code a CI
    job reads as failure) after pointing stdout at /dev/null, so that nothing fails again at interpreter exit."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def _closed(self) -> OutputClosed:
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self._stream.fileno())
        os.close(devnull)
        return OutputClosed()

    def write(self, text: str) -> int:
        try:
            return int(self._stream.write(text))
        except BrokenPipeError:
            raise self._closed() from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise self._closed() from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def main() -> None:
    """The `mmbench` program: the commands, with `| head` ending it quietly with exit 0."""
    sys.stdout = _ClosedPipeGuard(sys.stdout)  # type: ignore[assignment]
    try:
        app()
    except OutputClosed:
        sys.exit(0)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _say(text: str) -> None:
    """Data for the user, on stdout, printed as is (no rich markup or highlighting)."""
    stdout.print(text, markup=False, highlight=False)


def _note(text: str) -> None:
    """Progress and diagnostics, on stderr, printed as is."""
    stderr.print(text, markup=False, highlight=False)


def _print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _print_data(data: object, as_json: bool, lines: list[str]) -> None:
    """`data` as JSON with --json, else the human-readable `lines`."""
    if as_json:
        _print_json(data)
        return
    for line in lines:
        _say(line)


def _check_encoding(encoding: str) -> None:
    import codecs

    try:
        codecs.lookup(encoding)
    except LookupError as error:
        raise MMBenchError(f"--encoding: unknown text encoding '{encoding}' (e.g. utf-8, latin-1, cp1252)") from error


def _write_problems(path: Path | None, problems: list[str]) -> None:
    if path is None:
        return
    try:
        path.write_text("".join(f"{problem}\n" for problem in problems), encoding="utf-8")
    except OSError as error:
        raise MMBenchError(f"--problems {path}: cannot write: {error.strerror or error}") from error


def _more_problems(summary: dict, problems_file: Path | None) -> list[str]:
    hidden = summary["count"] - len(summary["first"])
    if hidden <= 0:
        return []
    where = f"all in {problems_file}" if problems_file else "--json or --problems FILE lists them all"
    return [f"  ... and {hidden} more ({where})"]


def _internal_error(command: str, error: Exception, code: int) -> None:
    """A bug, said in one line with its own exit code; MMBENCH_DEBUG=1 shows the traceback."""
    import os
    import traceback

    if os.environ.get("MMBENCH_DEBUG"):
        traceback.print_exception(error)
    _note(
        f"internal error in `mmbench {command}` ({type(error).__name__}: {error}); this is a bug in mmbench: "
        "please report it with the output of MMBENCH_DEBUG=1"
    )
    raise typer.Exit(code)


def _fail(error: Exception, code: int = 2) -> None:
    if isinstance(error, SuiteError):
        for problem in error.problems:
            _note(f"error: {problem}")
    else:
        _note(f"error: {error}")
    raise typer.Exit(code)


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
    from benchmark.errors import SuiteError
    from benchmark.plan.loader import load_suite
    from benchmark.suite.matrix import expand_cells

    warnings: list[str] = []
    try:
        loaded = load_suite(suite, warnings=warnings, decode_media=deep)
    except SuiteError as error:
        if as_json:
            _print_json(
                {"suite": str(suite), "ok": False, "cells": None, "problems": error.problems, "warnings": warnings}
            )
            raise typer.Exit(2) from None
        _warn_all(warnings)
        _fail(error)
    except MMBenchError as error:
        _fail(error)
    cells = expand_cells(loaded)
    if as_json:
        _print_json({"suite": str(suite), "ok": True, "cells": len(cells), "problems": [], "warnings": warnings})
        return
    _warn_all(warnings)
    _say(f"{suite}: ok ({len(cells)} cells" + (f", {len(warnings)} warning(s)" if warnings else "") + ")")


def _check_launcher_names(launcher: str | None, slurm_cluster: str | None) -> None:
    from benchmark.launch.launchers import LAUNCHERS

    if launcher is not None:
        try:
            LAUNCHERS.get(launcher)
        except MMBenchError as error:
            raise MMBenchError(f"--launcher: {error}") from error
    if slurm_cluster not in (None, "slurm", "local"):
        raise MMBenchError(f"--slurm-cluster: '{slurm_cluster}' is not slurm or local")


def _warn_all(warnings: list[str]) -> None:
    for warning in warnings:
        _note(f"warning: {warning}")


@app.command()
def run(
    suite: Path = typer.Argument(..., help="suite YAML file"),
    results: Path = typer.Option(DEFAULT_RESULTS, "--results", help="results directory"),
    only: str | None = typer.Option(None, "--only", help="run only cells whose id matches this glob"),
    dry_run: bool = typer.Option(False, "--dry-run", help="list the cells and their config hashes, run nothing"),
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
    gpus: str | None = typer.Option(None, "--gpus", help="pool: all, NVML indices like 0,1,3, or fake:N"),
    slurm_partition: str | None = typer.Option(None, "--slurm-partition", help="slurm: partition"),
    slurm_time: int | None = typer.Option(None, "--slurm-time", min=1, help="slurm: time limit per task, minutes"),
    slurm_gpus: int | None = typer.Option(None, "--slurm-gpus-per-task", min=0, help="slurm: GPUs per task"),
    slurm_cpus: int | None = typer.Option(None, "--slurm-cpus-per-task", min=1, help="slurm: CPU cores per task"),
    slurm_mem: float | None = typer.Option(None, "--slurm-mem-gb", min=1, help="slurm: memory per task, GB"),
    slurm_account: str | None = typer.Option(None, "--slurm-account", help="slurm: account"),
    slurm_qos: str | None = typer.Option(None, "--slurm-qos", help="slurm: quality of service"),
    slurm_parallelism: int | None = typer.Option(
        None, "--slurm-array-parallelism", min=1, help="slurm: tasks of the array running at once"
    ),
    slurm_cluster: str | None = typer.Option(
        None, "--slurm-cluster", help="slurm (default) or local: submitit's local executor, no SLURM needed"
    ),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output on stdout"),
) -> None:
    """Run every cell of a suite, each in its own subprocess; one Parquet row per cell. Cells with an ok row are
    skipped.

    Example: mmbench run suites/smoke.yaml --results results --repeats 3 --launcher pool --gpus all
    """
    from benchmark.launch.launchers import LaunchRequest, make_launcher
    from benchmark.launch.resume import plan_resume
    from benchmark.plan.loader import load_suite
    from benchmark.results.manifest import new_manifest
    from benchmark.results.store import ensure_writable
    from benchmark.suite.matrix import expand_cells

    warnings: list[str] = []
    try:
        _check_launcher_names(launcher, slurm_cluster)  # --dry-run too: a typo is refused before any run
        loaded = load_suite(suite, overrides, repeats, warnings=warnings)
    except MMBenchError as error:
        _warn_all(warnings)
        _fail(error)
    _warn_all(warnings)
    cells = expand_cells(loaded)
    if only:
        cells = [cell for cell in cells if fnmatch.fnmatch(cell.cell_id, only)]
        if not cells:
            _fail(MMBenchError(f"--only '{only}' matches no cell of {suite} (see `mmbench run {suite} --dry-run`)"))
    if dry_run:
        if as_json:
            _print_json([{"cell_id": c.cell_id, "config_hash": c.config_hash} for c in cells])
        else:
            for cell in cells:
                _say(f"{cell.config_hash}  {cell.cell_id}")
        return
    slurm_overrides = {
        "partition": slurm_partition,
        "time_min": slurm_time,
        "gpus_per_task": slurm_gpus,
        "cpus_per_task": slurm_cpus,
        "mem_gb": slurm_mem,
        "account": slurm_account,
        "qos": slurm_qos,
        "array_parallelism": slurm_parallelism,
        "cluster": slurm_cluster,
    }
    try:
        chosen = make_launcher(LaunchRequest(loaded.run, gpus, slurm_overrides, not no_lock), launcher)
        ensure_writable(results)
    except MMBenchError as error:
        _fail(error)
    plan = plan_resume(cells, results, force, skip_failed)
    for problem in plan.unreadable:
        _note(f"warning: skipped unreadable result file {problem}")
    if plan.done:
        _note(
            f"resuming: {len(plan.done)} of {len(cells)} cell(s) already have an ok row in {results} "
            "(--force re-runs them)"
        )
    if plan.failed_kept:
        _note(f"--skip-failed: {len(plan.failed_kept)} cell(s) whose last row failed are not re-run")
    run_id = f"{loaded.name}-{dt.datetime.now(dt.timezone.utc).strftime('%Y%m%dT%H%M%S%fZ')}"
    run_dir = results / run_id
    skipped = [{"cell_id": c.cell_id, "status": "skipped", "reason": "ok row exists"} for c in plan.done] + [
        {"cell_id": c.cell_id, "status": "skipped", "reason": "failed before (--skip-failed)"} for c in plan.failed_kept
    ]
    if not plan.to_run:
        _note(f"nothing to run: every cell of suite '{loaded.name}' is done in {results}")
        if as_json:
            _print_json({"run_dir": None, "cells": [], "skipped": skipped})
        return
    cells = plan.to_run
    _note(f"running {len(cells)} cell(s) of suite '{loaded.name}' with the {chosen.name} launcher -> {run_dir}")
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest = new_manifest(cells, run_id, loaded.name, chosen.name)
    manifest.write(run_dir)
    signal.signal(signal.SIGTERM, _interrupt)  # a cancelled job stops its cell too, and keeps the rows written
    try:
        outcomes = chosen.run(cells, run_dir, run_id, stderr, manifest)
    except KeyboardInterrupt:
        _note(f"interrupted: rows written so far are in {run_dir}")
        raise typer.Exit(130) from None
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    summary = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
    _note(f"done: {summary}; rows in {run_dir}")
    compacted = None if no_compact else _compact_finished_run(run_dir)
    if as_json:
        cells_run = [
            {"cell_id": o.cell_id, "status": o.status, "error": o.error, "row": str(compacted or o.row_path)}
            for o in outcomes
        ]
        _print_json({"run_dir": str(run_dir), "cells": cells_run, "skipped": skipped})
    # An OOM is a measurement (this method does not fit); errors, crashes and timeouts are failures.
    if any(o.status in ("error", "crashed", "timeout") for o in outcomes):
        raise typer.Exit(1)


# Reading costs about 0.5 ms a file whatever its size: past this many per-cell files, compaction is worth saying.
_MANY_CELL_FILES = 2000


def _suggest_compaction(rows: Any, results: Path) -> None:
    from benchmark.results.compacted_file import COMPACTED_NAME

    files = rows["file"].unique()
    per_cell = int((~files.str.ends_with(f"/{COMPACTED_NAME}")).sum())
    if per_cell > _MANY_CELL_FILES:
        _note(
            f"note: read {per_cell} per-cell result files; `mmbench results compact --results {results}` merges "
            "each finished run into one file, which reads many times faster"
        )


def _compact_finished_run(run_dir: Path) -> Path | None:
    """Merge the finished run's per-cell files into one (a store of many runs then reads in seconds). A failure
    here loses nothing: the per-cell files stay, and `mmbench results compact` can try again."""
    from benchmark.results.compacted_file import COMPACTED_NAME
    from benchmark.results.compaction import compact_run

    try:
        result = compact_run(run_dir)
    except OSError as error:
        _note(f"warning: could not compact {run_dir} (rows stay one file per cell): {error}")
        return None
    for skipped in result.skipped:
        _note(f"warning: not compacted: {skipped}")
    return run_dir / COMPACTED_NAME if result.rows else None


@app.command()
def status(
    run_dir: Path = typer.Argument(..., help="a run directory (results/<suite>-<time>)"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Show each cell of a run as pending, running, done, failed or stopped (from its rows, its logs and, for the
    slurm launcher, the state of each cell's job). Stopped cells have no row: `mmbench run` on the suite runs them.

    Example: mmbench status results/smoke-20261130T120000000000Z --json
    """
    from benchmark.results.run_status import cell_states

    warnings: list[str] = []
    try:
        manifest, states = cell_states(run_dir, warnings)
    except MMBenchError as error:
        _fail(error)
    for warning in warnings:
        _note(f"warning: {warning}")
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
    _print_data(data, as_json, lines)


@app.command()
def report(
    results: Path = typer.Option(DEFAULT_RESULTS, "--results", help="results directory"),
    output_format: ReportFormat = typer.Option(
        ReportFormat.table, "--format", help="table, md, csv, json, html (needs -o) or png/svg (needs --plot and -o)"
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
    if as_json:
        output_format = ReportFormat.json

    from benchmark.report.render import render_csv, render_json, render_markdown, render_table

    choice = _report_columns(output_format, wide, columns)
    from benchmark.analysis.leaderboard import build_leaderboard
    from benchmark.analysis.tpme import parse_weights
    from benchmark.results.read import RowFilter, read_results

    row_filter = RowFilter(suite, tuple(run_ids or ()), tuple(statuses or ()))
    try:
        parsed_weights = parse_weights(weights)
        rows, warnings = read_results(results, row_filter)
    except (MMBenchError, ValueError) as error:
        _fail(error)
    for warning in warnings:
        _note(f"warning: {warning}")
    _suggest_compaction(rows, results)
    if rows.is_empty():
        wanted = [f"suite '{suite}'" if suite else "", f"run {', '.join(run_ids)}" if run_ids else ""]
        wanted.append(f"status {', '.join(statuses)}" if statuses else "")
        described = ", ".join(w for w in wanted if w)
        _fail(MMBenchError(f"no result rows under {results}" + (f" for {described}" if described else "")))
    try:
        board = build_leaderboard(
            rows,
            [c.strip() for c in group_by.split(",") if c.strip()] if group_by else None,
            parsed_weights,
            all_runs,
            sort,
        )
    except ValueError as error:
        _fail(error)
    if output_format in (ReportFormat.html, ReportFormat.png, ReportFormat.svg):
        _write_visual_report(board, rows, output_format, output, plot)
    elif output_format == ReportFormat.table:
        render_table(board, _report_console(), choice)
    elif output_format == ReportFormat.md:
        sys.stdout.write(render_markdown(board, choice))
    else:
        sys.stdout.write({ReportFormat.csv: render_csv, ReportFormat.json: render_json}[output_format](board))


def _report_columns(output_format: ReportFormat, wide: bool, columns: str | None) -> Any:
    """The columns --wide or --columns ask for (None: the format's own choice), checked before anything is read."""
    from benchmark.report.columns import resolve_columns
    from benchmark.report.render import Choice

    if wide and columns:
        _fail(MMBenchError("--wide and --columns: give one (--wide is every column)"))
    if (wide or columns) and output_format not in (ReportFormat.table, ReportFormat.md):
        _fail(MMBenchError("--wide and --columns choose the columns of --format table or md"))
    if columns is not None:
        try:
            return Choice(names=resolve_columns(columns))
        except ValueError as error:
            _fail(error)
    return Choice() if wide else None


def _report_console() -> Console:
    """The table fits the terminal: its width, or $COLUMNS when set; piped without $COLUMNS, 240 characters (the
    width of `stdout`), as a log or a file has no width of its own."""
    import os

    columns = os.environ.get("COLUMNS", "")
    return Console(soft_wrap=True, width=int(columns)) if columns.isdigit() and int(columns) > 0 else stdout


def _write_visual_report(
    board: Any, rows: Any, output_format: ReportFormat, output: Path | None, plot: str | None
) -> None:
    """The HTML report or one figure, to a file; its path on stdout."""
    if output is None:
        _fail(MMBenchError(f"--format {output_format.value} writes a file: add -o FILE"))
    try:
        if output_format == ReportFormat.html:
            from benchmark.report.html import render_html

            text = render_html(board, rows)
            output.write_text(text, encoding="utf-8")
        else:
            from benchmark.report.static import write_figure

            if plot is None:
                _fail(MMBenchError(f"--format {output_format.value} draws one figure: add --plot NAME"))
            write_figure(board, plot, output, output_format.value)
    except OSError as error:
        _fail(MMBenchError(f"{output}: cannot write: {error.strerror or error}"))
    except MMBenchError as error:
        _fail(error)
    _say(str(output))


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
    from benchmark.compare.render import render_json, render_markdown, summary_line
    from benchmark.compare.run import EXIT_INTERNAL, compare_results
    from benchmark.compare.verdicts import Thresholds

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
        _fail(error)
    except Exception as error:  # noqa: BLE001 - a CI gate reads exit 1 as "regression": a bug must not say that
        _internal_error("compare", error, EXIT_INTERNAL)
    for warning in comparison.baseline.warnings + comparison.current.warnings:
        _note(f"warning: {warning}")
    with contextlib.suppress(OutputClosed):  # `| head` may stop reading; the exit code is the verdict all the same
        sys.stdout.write(render_json(comparison) if as_json else render_markdown(comparison))
        sys.stdout.flush()
    _note(summary_line(comparison))
    raise typer.Exit(comparison.exit_code)


def _list_entries(what: ListWhat) -> list[dict]:
    entries: list[dict] = []
    if what == ListWhat.methods:
        from benchmark.methods.registry import get_method_class, method_names
        from benchmark.suite.schema import choices_of, defaults_of

        for name in method_names():
            cls = get_method_class(name)
            entries.append(
                {
                    "name": name,
                    "description": cls.description,
                    "options": defaults_of(cls.Options),
                    "choices": {key: list(values) for key, values in choices_of(cls.Options).items()},
                    "needs": list(cls.required_modalities),
                    "uses_cache": cls.uses_cache,
                }
            )
    elif what == ListWhat.towers:
        from benchmark.models.presets_registry import get_preset, preset_names

        for name in preset_names():
            preset = get_preset(name)
            config = preset.config
            entries.append(
                {
                    "name": name,
                    "modality": preset.modality,
                    "shape_of": preset.shape_of,
                    "layers": config["num_hidden_layers"],
                    "hidden": config["hidden_size"],
                }
            )
    elif what == ListWhat.modalities:
        from benchmark.modalities.registry import describe, get_modality, modality_names

        entries.extend(describe(get_modality(name)) for name in modality_names())
    else:
        from benchmark.formats.registry import format_names, get_format

        for data_format in map(get_format, format_names()):
            entries.append(
                {
                    "name": data_format.name,
                    "needs_path": data_format.needs_path,
                    "description": data_format.description,
                    "options": data_format.options,
                }
            )
    return entries


@app.command("list")
def list_things(
    what: ListWhat = typer.Argument(..., help="methods, towers, datasets or modalities"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """List the methods, tower presets, dataset formats or modalities this install offers.

    Example: mmbench list methods --json
    """
    try:
        entries = _list_entries(what)
    except MMBenchError as error:
        _fail(error)
    lines = []
    for entry in entries:
        details = "  ".join(f"{k}={v}" for k, v in entry.items() if k != "name" and v not in ({}, [], None))
        lines.append(f"{entry['name']:<14} {details}")
    _print_data(entries, as_json, lines)


@app.command()
def env(as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """Show GPU, driver, CUDA, NVML availability and package versions.

    Example: mmbench env --json
    """
    from benchmark.profile.environment import capture_environment

    environment = capture_environment()
    if as_json:
        _print_json(environment)
        return
    for key, value in environment.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        _say(f"{key:<16} {value}")


results_app = typer.Typer(no_args_is_help=True, help="The results store.")
app.add_typer(results_app, name="results")


@results_app.command("compact")
def results_compact(
    results: Path = typer.Option(DEFAULT_RESULTS, "--results", help="results directory (or one run directory)"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Merge each finished run's per-cell Parquet files into one file per run (`compacted.parquet`).

    Safe at any moment: a kill loses and doubles no row (see README: Results at scale). Runs still running are
    left alone. `mmbench run` does this itself when a run ends.

    Example: mmbench results compact --results results
    """
    from benchmark.results.compact_store import compact_store

    try:
        outcomes = compact_store(results)
    except MMBenchError as error:
        _fail(error)
    if as_json:
        _print_json([outcome.to_dict() for outcome in outcomes])
        return
    for outcome in outcomes:
        typer.echo(outcome.line())


cache_app = typer.Typer(no_args_is_help=True, help="Hidden-state caches of the cached methods.")
app.add_typer(cache_app, name="cache")


@cache_app.command("build")
def cache_build(
    suite: Path = typer.Argument(..., help="suite YAML file"),
    only: str | None = typer.Option(None, "--only", help="only cells whose id matches this glob"),
    overrides: list[str] | None = typer.Option(None, "--set", help="override a suite value (repeatable)"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Build (or find) every hidden-state cache the suite's cached cells train from.

    Example: mmbench cache build suites/iisan-paper.yaml --only '*/iisan_cached/*'
    """
    from benchmark.launch.cache_command import build_suite_caches
    from benchmark.plan.loader import load_suite
    from benchmark.suite.matrix import expand_cells

    try:
        cells = expand_cells(load_suite(suite, overrides))
        if only:
            cells = [cell for cell in cells if fnmatch.fnmatch(cell.cell_id, only)]
        entries = build_suite_caches(cells, stderr)
    except MMBenchError as error:
        _fail(error)
    lines = [
        f"{entry['status']} {entry['modality']} cache for {entry['cell_id']}: {entry['directory']} "
        f"({entry['bytes'] / MIB:.1f} MiB, build {entry['build_seconds']:.1f} s)"
        for entry in entries
    ]
    _print_data(entries, as_json, lines or ["no cell of this suite uses a cache"])


@cache_app.command("list")
def cache_list(as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """List the hidden-state caches under $MMBENCH_CACHE.

    Example: mmbench cache list --json
    """
    from benchmark.data.hidden_state_store import list_caches

    entries = list_caches()
    lines = [
        f"{entry['digest']}  {entry['tower']}  layers={entry['layers']}  {entry['input']}  {entry['precision']}  "
        f"items={entry['n_items']}  {entry['bytes'] / MIB:.1f} MiB  built in {entry['build_seconds']:.1f} s"
        for entry in entries
    ]
    _print_data(entries, as_json, lines)


data_app = typer.Typer(no_args_is_help=True, help="Inspect datasets and import them into mmbench's layout.")
app.add_typer(data_app, name="data")


# The layouts `data inspect` and `data import` read: every registered format that reads a directory.
DataFormat = Enum("DataFormat", {name: name for name in _importable_formats()}, type=str)  # type: ignore[misc]
FORMAT_HELP = f"dataset layout: {', '.join(_importable_formats())}"


class OnError(str, Enum):
    skip = "skip"
    fail = "fail"


@data_app.command("inspect")
def data_inspect(
    path: Path = typer.Argument(..., help="dataset directory"),
    data_format: DataFormat = typer.Option(..., "--format", help=FORMAT_HELP),
    encoding: str = typer.Option("utf-8", "--encoding", help="text encoding of the dataset's files (e.g. latin-1)"),
    problems_file: Path | None = typer.Option(
        None, "--problems", help="write every problem found to this file, one per line"
    ),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Users, items, interactions, sequence lengths, items without text or image, and every problem found.

    Example: mmbench data inspect /data/Scientific --format amazon-iisan --problems problems.txt
    """
    from benchmark.formats.importer import inspect_dataset

    try:
        _check_encoding(encoding)
        report = inspect_dataset(path, data_format.value, encoding=encoding)
        _write_problems(problems_file, report["problems"]["all"])
    except MMBenchError as error:
        _fail(error)
    if as_json:
        _print_json(report)
        _exit_if_unusable(report)
        return
    lengths = report["sequence_length"]
    lines = [
        f"{report['path']} ({report['format']})",
        f"users {report['users']}  items {report['items']}  interactions {report['interactions']}",
        f"sequence length: min {lengths['min']}  p25 {lengths['p25']:g}  median {lengths['median']:g}  p75 "
        f"{lengths['p75']:g}  "
        f"max {lengths['max']}  mean {lengths['mean']:.2f}",
        f"items without text {report['items_without_text']}  without image {report['items_without_image']}  "
        f"unreadable images {report['unreadable_images']}  optional media "
        f"{', '.join(report['optional_media']) or 'none'}",
        f"problems {report['problems']['count']}"
        + "".join(f"  {kind}: {count}" for kind, count in report["problems"]["by_kind"].items()),
        *[f"  {problem}" for problem in report["problems"]["first"]],
        *_more_problems(report["problems"], problems_file),
    ]
    for line in lines:
        _say(line)
    _exit_if_unusable(report)


def _exit_if_unusable(report: dict) -> None:
    """A dataset no suite can split is unusable input (exit 2); problems in some rows leave it usable (exit 0)."""
    if not report["usable"]:
        unusable = [p["text"] for p in report["problems"]["details"] if p["kind"] == "unusable dataset"]
        _note(f"error: {unusable[0]}")
        raise typer.Exit(2)


@data_app.command("import")
def data_import(
    path: Path = typer.Argument(..., help="dataset directory"),
    data_format: DataFormat = typer.Option(..., "--format", help=FORMAT_HELP),
    out: Path = typer.Option(..., "--out", help="directory to create (format `mmbench` in suites)"),
    k_core: int = typer.Option(
        0,
        "--k-core",
        help="drop users and items with fewer interactions, repeatedly (default 0: off; "
        "published layouts are already filtered)",
    ),
    max_seq_len: int = typer.Option(
        10, "--max-seq-len", help="history length the suites will use (keeps the most recent items)"
    ),
    min_seq_len: int = typer.Option(
        MIN_SEQUENCE_LENGTH,
        "--min-seq-len",
        help=f"shorter sequences are problems (at least {MIN_SEQUENCE_LENGTH}: {RULE})",
    ),
    on_error: OnError = typer.Option(
        OnError.fail, "--on-error", help="skip bad rows with a summary, or fail writing nothing"
    ),
    verify_images: bool = typer.Option(False, "--verify-images", help="decode every image fully, not only its header"),
    copy_media: bool = typer.Option(False, "--copy-media", help="copy images and media instead of linking them"),
    force: bool = typer.Option(False, "--force", help="replace an earlier import at --out (never anything else)"),
    encoding: str = typer.Option("utf-8", "--encoding", help="text encoding of the dataset's files (e.g. latin-1)"),
    problems_file: Path | None = typer.Option(
        None, "--problems", help="write every problem found to this file, one per line"
    ),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Convert a dataset once: optional k-core filter, most-recent truncation, item id remap; never half-written.

    Example: mmbench data import /data/Scientific --format amazon-iisan --out /data/scientific-mm --on-error skip
    """
    from benchmark.formats.importer import import_dataset

    try:
        _check_encoding(encoding)
        summary = import_dataset(
            path,
            data_format.value,
            out,
            k_core,
            max_seq_len,
            min_seq_len,
            on_error.value,
            verify_images,
            copy_media,
            force,
            encoding,
        )
        _write_problems(problems_file, summary["skipped"]["all"])
    except DatasetProblems as error:
        try:
            _write_problems(problems_file, error.problems)
        except MMBenchError as write_error:
            _note(f"error: {write_error}")
        _fail(error)
    except MMBenchError as error:
        _fail(error)
    for warning in summary["warnings"]:
        _note(f"warning: {warning}")
    if as_json:
        _print_json(summary)
        return
    read, written, skipped, kept = summary["read"], summary["written"], summary["skipped"], summary["kept"]
    _say(f"imported {path} -> {out} in {summary['seconds']:.1f} s (k-core {k_core})")
    _say(f"read    users {read['users']}  items {read['items']}  interactions {read['interactions']}")
    _say(f"written users {written['users']}  items {written['items']}  interactions {written['interactions']}")
    _say("kept    " + "  ".join(f"{what} {share:.1%}" for what, share in kept.items() if share is not None))
    _say(f"skipped {skipped['count']} problem(s)" + "".join(f"  {k}: {c}" for k, c in skipped["by_kind"].items()))
    for line in [f"  {problem}" for problem in skipped["first"]] + _more_problems(skipped, problems_file):
        _say(line)
